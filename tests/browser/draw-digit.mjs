// Draws digits on the page of `trainer serve` in a real headless Chromium, a 7 with
// the mouse and then, after Clear, a 1 with a finger (touch events), and checks that
// the page shows a prediction equal to what the API answers for the same drawing and
// for the same prepared pixels. Keeps a screenshot of the page with the drawn 7.
//
//   node tests/browser/draw-digit.mjs --run RUN_DIR [--trainer target/release/trainer]
//        [--screenshot artifacts/browser/drawn-digit.png] [--chromium /usr/bin/chromium]
//
// Starts and stops the server itself (SIGTERM, which must end it with status 0).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: options } = parseArgs({
  options: {
    run: { type: 'string' },
    trainer: { type: 'string', default: 'target/release/trainer' },
    screenshot: { type: 'string', default: 'artifacts/browser/drawn-digit.png' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!options.run) {
  console.error('usage: node draw-digit.mjs --run RUN_DIR [--trainer BIN] [--screenshot FILE] [--chromium BIN]');
  process.exit(2);
}

// Strokes in coordinates relative to the drawing pad (0..1 across and down).
const SEVEN = [[0.22, 0.2], [0.5, 0.19], [0.76, 0.2], [0.62, 0.45], [0.5, 0.65], [0.42, 0.86]];
const ONE = [[0.5, 0.14], [0.5, 0.5], [0.5, 0.86]];

/** Starts the server on a free port; resolves to its base URL once it listens. */
function startServer() {
  const server = spawn(options.trainer, ['serve', '--run', options.run, '--addr', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not listen within 60 s')), 60_000);
    createInterface({ input: server.stdout }).on('line', (line) => {
      const found = line.match(/^listening on (http:\/\/\S+)/);
      if (found) {
        clearTimeout(timer);
        resolve(`${found[1]}/`);
      }
    });
    exited.then(({ code, signal }) => reject(new Error(`the server exited (${code ?? signal}) before listening`)));
  });
  return { server, exited, url };
}

/** Points along a polyline, `per` steps per segment, in page coordinates. */
function path(box, stroke, per = 12) {
  const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
  const points = [at(stroke[0])];
  for (let i = 1; i < stroke.length; i++) {
    const [from, to] = [at(stroke[i - 1]), at(stroke[i])];
    for (let s = 1; s <= per; s++) {
      points.push([from[0] + (to[0] - from[0]) * s / per, from[1] + (to[1] - from[1]) * s / per]);
    }
  }
  return points;
}

async function drawWithMouse(page, box, stroke) {
  const [first, ...rest] = path(box, stroke);
  await page.mouse.move(...first);
  await page.mouse.down();
  for (const point of rest) await page.mouse.move(...point);
  await page.mouse.up();
}

/** Draws with a finger: real touch events through the DevTools protocol. */
async function drawWithTouch(page, box, stroke) {
  const cdp = await page.context().newCDPSession(page);
  const [first, ...rest] = path(box, stroke);
  const touch = ([x, y]) => [{ x, y, radiusX: 4, radiusY: 4, force: 1, id: 1 }];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: touch(first) });
  for (const point of rest) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: touch(point) });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

/** Waits until the page has answered for its final drawing; returns what it shows. */
async function shown(page, requestsBefore) {
  await page.waitForFunction(
    (before) => document.body.dataset.busy === 'false' && Number(document.body.dataset.requests) > before,
    requestsBefore,
    { timeout: 20_000 },
  );
  return page.evaluate(() => ({
    digit: document.getElementById('digit').textContent,
    probabilities: [...document.querySelectorAll('#probabilities li')].map((li) => Number(li.dataset.probability)),
    percentages: [...document.querySelectorAll('#probabilities li .pct')].map((span) => span.textContent),
    requests: Number(document.body.dataset.requests),
    png: document.getElementById('pad').toDataURL('image/png'),
  }));
}

async function predict(url, contentType, body) {
  const response = await fetch(`${url}api/predict`, { method: 'POST', headers: { 'content-type': contentType }, body });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return answer;
}

/** The page's prediction equals the API's for the same PNG and for its prepared pixels. */
async function checkAgainstApi(url, page) {
  const png = Buffer.from(page.png.split(',')[1], 'base64');
  const byImage = await predict(url, 'image/png', png);
  const byPixels = await predict(url, 'application/json', JSON.stringify({ pixels: byImage.pixels }));
  for (const answer of [byImage, byPixels]) {
    assert.equal(page.digit, String(answer.digit));
    assert.deepEqual(page.probabilities, answer.probabilities);
  }
  assert.deepEqual(page.percentages, byImage.probabilities.map((p) => `${(100 * p).toFixed(1)}%`));
  return byImage;
}

const { server, exited, url: listening } = startServer();
let browser;
try {
  const url = await listening;
  browser = await chromium.launch({ executablePath: options.chromium, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 760, height: 560 }, hasTouch: true });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
  await page.goto(url);
  await page.evaluate(() => {
    window.pointerTypes = new Set();
    document.getElementById('pad').addEventListener('pointerdown', (e) => window.pointerTypes.add(e.pointerType));
  });
  assert.equal(await page.textContent('#digit'), '–', 'nothing is predicted before drawing');
  const box = await page.locator('#pad').boundingBox();

  await drawWithMouse(page, box, SEVEN);
  const seven = await shown(page, 0);
  const sevenAnswer = await checkAgainstApi(url, seven);
  mkdirSync(dirname(options.screenshot), { recursive: true });
  await page.screenshot({ path: options.screenshot });
  assert.equal(seven.digit, '7', `the drawn 7 was read as ${seven.digit}`);

  await page.click('#clear');
  assert.equal(await page.textContent('#digit'), '–', 'Clear removes the prediction');
  assert.deepEqual(await page.locator('#probabilities .pct').allTextContents(), Array(10).fill('–'));

  await drawWithTouch(page, box, ONE);
  const one = await shown(page, seven.requests);
  await checkAgainstApi(url, one);
  assert.ok(await page.evaluate(() => window.pointerTypes.has('touch')), 'the 1 was drawn with touch events');
  assert.equal(one.digit, '1', `the drawn 1 was read as ${one.digit}`);
  assert.deepEqual(problems, [], 'no errors on the page');

  const top = (answer) => `${answer.digit} (${(100 * answer.probabilities[answer.digit]).toFixed(1)}%)`;
  console.log(`mouse-drawn 7: page shows ${seven.digit}, API ${top(sevenAnswer)}, after ${seven.requests} requests while drawing`);
  console.log(`touch-drawn 1: page shows ${one.digit}, ${one.requests - seven.requests} requests`);
  console.log(`screenshot: ${options.screenshot}`);
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(code, 0, `the server ended with ${code ?? signal} on SIGTERM`);
}
