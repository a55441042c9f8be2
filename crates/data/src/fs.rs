//! Writing files so that a crash, a kill or a full disk at any moment leaves either
//! the old file or the new one: each goes to a hidden partial file beside its target
//! and is renamed into place. The MNIST cache and every output of the trainer are
//! written so. A target that is no regular file is never replaced: a FIFO or a
//! character device (`/dev/stdout`, `/dev/null`) is written into as it is, through a
//! symbolic link too; anything else is refused.

use std::io::Write;
use std::path::Path;

/// Writes `contents` to `target` atomically, readable by all (0644) like any file the
/// user creates. Errors name no temporary file: they mean nothing to the user.
pub fn write_atomically(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no directory {}; create it first", dir.display()),
        ));
    }
    if target.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "it is a directory; name a file",
        ));
    }
    if let Ok(metadata) = std::fs::metadata(target)
        && !metadata.is_file()
    {
        return write_into_special(target, &metadata, contents);
    }
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it names no file",
        ));
    };
    // A write killed outright (SIGKILL, a power cut) leaves its partial file behind:
    // the next write of the same target removes it.
    remove_stale_partials(dir, &name);
    let partial = dir.join(partial_name(&name, std::process::id()));
    let written =
        write_and_sync(&partial, contents).and_then(|()| std::fs::rename(&partial, target));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Writes `contents` into a FIFO or a character device as a stream: there is no file to
/// replace, and replacing the node would break whatever it stands for.
fn write_into_special(
    target: &Path,
    metadata: &std::fs::Metadata,
    contents: &[u8],
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        if kind.is_fifo() || kind.is_char_device() {
            let mut stream = std::fs::OpenOptions::new().write(true).open(target)?;
            return stream.write_all(contents).and_then(|()| stream.flush());
        }
    }
    let _ = metadata;
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "it is not a regular file, a FIFO or a terminal; name a file",
    ))
}

/// `.model.onnx.1234.partial`: hidden, named for its target and its writer, so that
/// concurrent writers never share one.
fn partial_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.partial")
}

fn write_and_sync(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(contents)?;
    // As readable as any file the user creates, whatever the umask made of it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.sync_all()
}

/// Removes the partial files of `name` in `dir` whose writer no longer runs (Linux's
/// `/proc` tells; elsewhere none is removed).
fn remove_stale_partials(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".partial"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists();
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_fifo_a_device_and_a_link_to_one_are_written_into_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|status| status.success()), "mkfifo");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).expect("reads the fifo"))
        };
        write_atomically(&fifo, b"through the pipe").expect("written into");
        assert_eq!(reader.join().expect("joins"), b"through the pipe");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .expect("stat")
                .file_type()
                .is_fifo()
        );

        let null = Path::new("/dev/null");
        write_atomically(null, b"gone").expect("written into");
        assert!(
            std::fs::metadata(null)
                .expect("stat")
                .file_type()
                .is_char_device()
        );
        let link = dir.path().join("null");
        std::os::unix::fs::symlink(null, &link).expect("symlink");
        write_atomically(&link, b"gone").expect("written through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::metadata(null)
                .expect("stat")
                .file_type()
                .is_char_device()
        );
    }

    #[test]
    fn a_killed_writers_partial_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("model.onnx");
        // No process has this pid: Linux's pids stay below 2^22.
        let stale = dir.path().join(partial_name("model.onnx", 4_000_000_000));
        std::fs::write(&stale, b"half").expect("write");
        let other = dir.path().join(".other.bin.4000000000.partial");
        std::fs::write(&other, b"x").expect("write");
        write_atomically(&target, b"whole").expect("writes");
        assert_eq!(std::fs::read(&target).expect("read"), b"whole");
        assert!(!stale.exists(), "the stale partial file is removed");
        assert!(
            other.exists(),
            "another target's partial file is left alone"
        );
    }
}
