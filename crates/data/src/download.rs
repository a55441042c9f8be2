//! Fetching MNIST into Burn's dataset cache for users with a network. Each file is
//! verified against its known checksum and moved into place only when complete, so
//! an interrupted download never leaves a half-written file behind.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::DataError;
use crate::files::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, split_of};

/// The mirror burn-dataset downloads from, then the one torchvision uses.
const MIRRORS: [&str; 2] = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

/// MD5 of each file once decompressed, as published with MNIST.
const FILES: [(&str, &str); 4] = [
    (TRAIN_IMAGES, "6bbc9ace898e44ae57da46a324031adb"),
    (TRAIN_LABELS, "a25bea736e30d166cdddb491f175f624"),
    (TEST_IMAGES, "2646ac647ad5339dbf082846283269ea"),
    (TEST_LABELS, "27ae3e4e09519cfbb04c329615203637"),
];

/// Far above MNIST's largest file (~9.9 MB gzipped), to bound a misbehaving server.
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;

/// Downloads each of the four files missing from `cache`, trying the mirrors in turn.
pub(crate) fn into_cache(cache: &Path) -> Result<(), DataError> {
    into_cache_from(cache, &MIRRORS)
}

/// [`into_cache`] from these mirrors (URLs ending in `/`).
fn into_cache_from(cache: &Path, mirrors: &[&str]) -> Result<(), DataError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(300)))
        .build()
        .into();
    for (name, md5) in FILES {
        let dir = cache.join(split_of(name));
        let target = dir.join(name);
        if target.is_file() {
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(|error| DataError::Cache {
            path: dir.clone(),
            error,
        })?;
        let mut failures = Vec::new();
        let contents = mirrors.iter().find_map(|mirror| {
            let url = format!("{mirror}{name}.gz");
            match fetch_verified(&agent, &url, name, md5) {
                Ok(contents) => Some(contents),
                Err(reason) => {
                    failures.push(format!("{url}: {reason}"));
                    None
                }
            }
        });
        let Some(contents) = contents else {
            return Err(DataError::Download {
                reasons: failures.join("; "),
            });
        };
        crate::fs::write_atomically(&target, &contents).map_err(|error| DataError::Cache {
            path: target.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Downloads `url`, gunzips it and checks the MD5 of the result.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    name: &str,
    md5: &str,
) -> Result<Vec<u8>, String> {
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let body = response.into_body();
    let progress = ProgressBar::new(body.content_length().unwrap_or(0));
    progress.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_message(format!("downloading {name}"));
    let mut compressed = Vec::new();
    progress
        .wrap_read(body.into_reader().take(MAX_DOWNLOAD_BYTES))
        .read_to_end(&mut compressed)
        .map_err(|e| e.to_string())?;
    progress.finish_and_clear();

    let mut contents = Vec::new();
    GzDecoder::new(&compressed[..])
        .take(MAX_DOWNLOAD_BYTES)
        .read_to_end(&mut contents)
        .map_err(|e| format!("not a valid gzip file ({e})"))?;
    let digest = format!("{:x}", Md5::digest(&contents));
    if digest != md5 {
        return Err(format!("checksum {digest} differs from the expected {md5}"));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;

    use super::*;

    /// The real MNIST files, which the published checksums describe.
    fn mnist_dir() -> Option<PathBuf> {
        let dir = std::env::var_os("MNIST_DATA_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist"),
            PathBuf::from,
        );
        dir.join("t10k-labels-idx1-ubyte.gz")
            .is_file()
            .then_some(dir)
    }

    /// An HTTP server on loopback with three mirrors of `dir`'s files: `/good/`
    /// serves them, `/bad/` serves other content (a wrong checksum), `/short/`
    /// promises a whole file and sends half. It answers `requests` requests.
    fn serve(dir: PathBuf, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let Ok(mut stream) = stream else { continue };
                let mut request = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The rest of the request header.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (mirror, name) = path
                    .trim_start_matches('/')
                    .split_once('/')
                    .unwrap_or(("", ""));
                let real = std::fs::read(dir.join(name)).unwrap_or_default();
                let (body, length) = match mirror {
                    "good" => (real.clone(), real.len()),
                    "bad" => {
                        let mut other =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        other.write_all(b"not MNIST").expect("in memory");
                        let other = other.finish().expect("in memory");
                        let length = other.len();
                        (other, length)
                    }
                    _ => (real[..real.len() / 2].to_vec(), real.len()),
                };
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(header.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        format!("http://{address}")
    }

    fn cached_files(cache: &Path) -> Vec<String> {
        let mut names: Vec<String> = ["train", "test"]
            .iter()
            .flat_map(|split| std::fs::read_dir(cache.join(split)).into_iter().flatten())
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn downloads_verify_checksums_fall_back_to_the_next_mirror_and_keep_no_partial_file() {
        let Some(dir) = mnist_dir() else {
            eprintln!("skipped: real MNIST not found; set MNIST_DATA_DIR");
            return;
        };
        let server = serve(dir, 64);
        let (good, bad, short) = (
            format!("{server}/good/"),
            format!("{server}/bad/"),
            format!("{server}/short/"),
        );
        // Nothing listens on port 1 of loopback: the first mirror is down.
        let down = "http://127.0.0.1:1/";

        let cache = tempfile::tempdir().expect("tempdir");
        into_cache_from(cache.path(), &[down, &good]).expect("the second mirror serves");
        assert_eq!(
            cached_files(cache.path()),
            [
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte"
            ]
        );
        let test = crate::LabelledImages::read(
            &cache.path().join("test/t10k-images-idx3-ubyte"),
            &cache.path().join("test/t10k-labels-idx1-ubyte"),
        )
        .expect("the downloaded files read");
        assert_eq!(test.len(), 10_000);

        for (mirror, expected) in [(&bad, "checksum"), (&short, "short")] {
            let cache = tempfile::tempdir().expect("tempdir");
            let err = into_cache_from(cache.path(), &[mirror]).expect_err(expected);
            let message = err.to_string();
            assert!(message.contains(mirror.as_str()), "{message}");
            assert!(
                cached_files(cache.path()).is_empty(),
                "{expected}: a file was kept"
            );
            if expected == "checksum" {
                assert!(message.contains("checksum"), "{message}");
            }
        }
    }
}
