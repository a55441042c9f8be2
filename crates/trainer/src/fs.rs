//! Writing the trainer's output files: each goes to a temporary file beside its target
//! and is renamed into place, so that a crash or a full disk at any moment leaves
//! either the old file or the new one.

use std::io::Write;
use std::path::Path;

use crate::TrainerError;

/// Writes `contents` to `target` atomically, readable by all (0644) like any file the
/// user creates.
pub fn write_atomically(target: &Path, contents: &[u8]) -> Result<(), TrainerError> {
    replace(target, contents).map_err(|error| TrainerError::Write {
        path: target.to_path_buf(),
        error,
    })
}

fn replace(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    // Temporary files are private (0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.as_file().sync_all()?;
    file.persist(target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.json");
        write_atomically(&target, b"old").expect("first write");
        write_atomically(&target, b"new").expect("second write");
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["out.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }
}
