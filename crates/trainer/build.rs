//! Names the commit being built for `trainer --version` (`TRAINER_COMMIT`): git's
//! short hash, or `unknown` outside a checkout.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=9", "HEAD"]) {
        Some(hash) if !hash.is_empty() => hash,
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=TRAINER_COMMIT={commit}");
    // A new commit or a change of branch moves HEAD or the ref it names.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs/heads");
    }
}
