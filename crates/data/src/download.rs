//! Fetching MNIST into Burn's dataset cache for users with a network. Each file is
//! verified against its known checksum and moved into place only when complete, so
//! an interrupted download never leaves a half-written file behind.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::DataError;
use crate::source::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, split_of};

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
        let contents = MIRRORS.iter().find_map(|mirror| {
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
        save_to_cache(&target, &contents).map_err(|error| DataError::Cache {
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

/// Moves verified `contents` into the cache under `target` through a temporary file,
/// so that an interrupted run never leaves a truncated file that looks complete.
fn save_to_cache(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(target.parent().unwrap_or(Path::new(".")))?;
    file.write_all(contents)?;
    file.persist(target).map(drop).map_err(|e| e.error)
}
