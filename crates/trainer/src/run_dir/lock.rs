//! The lock of a run directory: one writer at a time, named to a second one, and the
//! scratch files a killed writer left removed once the lock is held.

use std::path::Path;

use super::{LOCK, RunDir};

/// How long a lock recorded as this process's own is waited for: see
/// [`RunDir::lock_for_writing`].
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
use crate::TrainerError;

/// Removes, in `dir` and the folders under it, the scratch files Burn writes a record
/// to before renaming it into place (`model-3.bpk.<pid>-<n>.tmp`): a writer killed
/// outright leaves them behind.
fn remove_scratch_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            remove_scratch_files(&path);
        } else if is_scratch_file(&name) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether `name` is `<record>.bpk.<pid>-<n>.tmp`.
fn is_scratch_file(name: &str) -> bool {
    let Some((record, suffix)) = name.strip_suffix(".tmp").and_then(|n| n.rsplit_once('.')) else {
        return false;
    };
    let numbered = suffix
        .split_once('-')
        .is_some_and(|(pid, n)| pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok());
    record.ends_with(".bpk") && numbered
}

/// The lock of a run directory held by the process writing it, released when dropped
/// or when the process ends, however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunDir {
    /// Locks the run for writing, making its directory if need be: refused, naming
    /// the process, while another holds it. Readers take no lock.
    pub(crate) fn lock_for_writing(&self) -> Result<RunLock, TrainerError> {
        use std::io::{Read, Seek, Write};
        self.create()?;
        let path = self.root.join(LOCK);
        let write_error = |error| TrainerError::Write {
            path: path.clone(),
            error,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_error)?;
        let asked = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file
                        .rewind()
                        .and_then(|()| file.read_to_string(&mut holder));
                    let holder: Option<u32> = holder.trim().parse().ok();
                    // A lock this process released can still be held for a moment by a
                    // child it is starting (a copy of the descriptor, closed when the
                    // child's program starts): wait that out. Any other holder is a
                    // writer.
                    if holder == Some(std::process::id()) && asked.elapsed() < RELEASE_WAIT {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    return Err(TrainerError::RunBusy {
                        dir: self.root.clone(),
                        holder,
                    });
                }
                Err(std::fs::TryLockError::Error(error)) => return Err(write_error(error)),
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .map_err(write_error)?;
        // No other process writes the run now: what a killed writer left half-written
        // is garbage.
        remove_scratch_files(&self.root);
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locking_a_run_removes_the_scratch_files_a_killed_writer_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path().join("run"));
        let checkpoints = run.root().join("checkpoint");
        std::fs::create_dir_all(&checkpoints).expect("mkdir");
        let scratch = ["model-1.bpk.13726-1.tmp", "optim-1.bpk.13726-0.tmp"];
        let kept = ["model-1.bpk", "notes.tmp", "data.bpk.x-1.tmp"];
        for name in scratch.iter().chain(&kept) {
            std::fs::write(checkpoints.join(name), b"x").expect("write");
        }
        let _lock = run.lock_for_writing().expect("locks");
        for name in scratch {
            assert!(!checkpoints.join(name).exists(), "{name} removed");
        }
        for name in kept {
            assert!(checkpoints.join(name).exists(), "{name} kept");
        }
    }
}
