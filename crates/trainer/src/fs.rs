//! The trainer's writer of output files: [`data::fs::write_atomically`], whose one
//! implementation the MNIST cache shares, with errors that name the file.

use std::path::Path;

use crate::TrainerError;

/// Writes `contents` to `target` atomically (the old file or the new one, never half
/// of one), readable by all.
pub(crate) fn write_atomically(target: &Path, contents: &[u8]) -> Result<(), TrainerError> {
    data::fs::write_atomically(target, contents).map_err(|error| TrainerError::Write {
        path: target.to_path_buf(),
        error,
    })
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
        let missing = dir.path().join("missing").join("x.png");
        let err = write_atomically(&missing, b"png").expect_err("no such directory");
        assert!(!err.to_string().contains("missing/.tmp"), "{err}");
        assert!(err.to_string().contains("create it first"), "{err}");
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
