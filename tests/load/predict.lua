-- wrk script: every request POSTs one 28x28 digit (a vertical bar, a "1") as JSON
-- pixels to /api/predict. At the end it prints one RESULT line for tests/load/run.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local pixels = {}
for i = 0, 783 do
  local x, y = i % 28, math.floor(i / 28)
  pixels[#pixels + 1] = (x >= 12 and x <= 15 and y >= 4 and y <= 23) and "0.9" or "0"
end
wrk.body = '{"pixels":[' .. table.concat(pixels, ",") .. ']}'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f socket_errors=%d non_2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
