//! The documentation, checked as a reader would use it: every ```console example in
//! README.md and docs/*.md runs, and prints what it shows; every relative link and
//! anchor there leads somewhere.
//!
//! An example is a `$ COMMAND` line followed by the output it prints (stdout and
//! stderr together), where `[..]` in a line stands for any text and a line `...` for
//! any number of lines. `? failed` right after the command says it must fail. Each
//! file's examples run in order, in a scratch directory holding copies of `configs/`
//! and `docs/`, with `trainer` on the PATH and `MNIST_DATA_DIR` set. Commands a
//! scratch directory cannot run (`cargo`, `git`, `cd`, `curl`, `open`, and `serve`,
//! which runs until stopped) are shown, not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::mnist_dir;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut stack = vec![root().join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One command of an example and what it should print.
#[derive(Debug)]
struct Example {
    command: String,
    fails: bool,
    expected: Vec<String>,
}

/// The examples of ```console blocks in `text`, in order.
fn examples(text: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut in_console = false;
    for line in text.lines() {
        let fence = line.trim_start();
        if fence.starts_with("```") {
            in_console = !in_console && fence.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            examples.push(Example {
                command: command.to_string(),
                fails: false,
                expected: Vec::new(),
            });
        } else if let Some(example) = examples.last_mut() {
            if line == "? failed" && example.expected.is_empty() {
                example.fails = true;
            } else {
                example.expected.push(line.trim_end().to_string());
            }
        }
    }
    examples
}

/// Whether an example's command is shown but not run here.
fn shown_only(command: &str) -> bool {
    ["cargo ", "git ", "cd ", "curl ", "open "]
        .iter()
        .any(|program| command.starts_with(program))
        || command.contains(" serve")
}

/// Whether `line` is `pattern`, `[..]` in it matching any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `lines` are `patterns`, a pattern `...` matching any number of lines.
fn lines_match(patterns: &[String], lines: &[&str]) -> bool {
    match patterns.split_first() {
        None => lines.is_empty(),
        Some((pattern, rest)) if pattern == "..." => {
            (0..=lines.len()).any(|skip| lines_match(rest, &lines[skip..]))
        }
        Some((pattern, rest)) => lines
            .split_first()
            .is_some_and(|(line, more)| line_matches(pattern, line) && lines_match(rest, more)),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readable").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copied");
        }
    }
}

/// Runs the examples of `file`; the first mismatch, said, if any.
fn run_examples(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).expect("readable");
    let examples = examples(&text);
    if examples.is_empty() {
        return None;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    for folder in ["configs", "docs"] {
        copy_dir(&root().join(folder), &scratch.path().join(folder));
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_trainer"))
        .parent()
        .expect("a folder");
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("a PATH");
    for example in examples.iter().filter(|e| !shown_only(&e.command)) {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{} 2>&1", example.command))
            .current_dir(scratch.path())
            .env("PATH", &path)
            .env("MNIST_DATA_DIR", mnist_dir())
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("sh runs");
        let printed = String::from_utf8_lossy(&output.stdout).to_string();
        let lines: Vec<&str> = printed.lines().map(str::trim_end).collect();
        let failed = !output.status.success();
        if failed != example.fails || !lines_match(&example.expected, &lines) {
            return Some(format!(
                "{}: `{}` {}; expected:\n{}\nprinted:\n{printed}",
                file.display(),
                example.command,
                if failed { "failed" } else { "succeeded" },
                example.expected.join("\n"),
            ));
        }
    }
    None
}

#[test]
fn the_docs_examples_print_what_they_show() {
    let mismatches: Vec<String> = documents().iter().filter_map(|f| run_examples(f)).collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation
/// dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `file`'s headings (outside code blocks).
fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            !in_code
        })
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect()
}

/// The targets of the Markdown links `[text](target)` in `text`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked = match path {
                "" => file.clone(),
                path => file.parent().expect("a folder").join(path),
            };
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
            } else if let Some(fragment) = fragment
                && linked.extension().is_some_and(|e| e == "md")
                && !anchors(&linked).iter().any(|a| a == fragment)
            {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn patterns_match_as_the_docs_say() {
    assert!(line_matches(
        "epoch 1/5  train loss [..] acc [..]%",
        "epoch 1/5  train loss 0.39 acc 89.1%"
    ));
    assert!(!line_matches(
        "saved [..]/model.bpk",
        "saved artifacts/model.onnx"
    ));
    assert!(line_matches("[..]", "anything"));
    let patterns = ["a".to_string(), "...".to_string(), "z".to_string()];
    assert!(lines_match(&patterns, &["a", "b", "c", "z"]));
    assert!(lines_match(&patterns, &["a", "z"]));
    assert!(!lines_match(&patterns, &["a", "b"]));
    assert_eq!(anchor(" Quick start"), "quick-start");
    assert_eq!(
        anchor(" Export to ONNX (opset 17)"),
        "export-to-onnx-opset-17"
    );
}
