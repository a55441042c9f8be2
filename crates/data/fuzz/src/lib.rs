//! Fuzzing the IDX reader of the `data` crate.
//!
//! The target logic lives here once and is shared by the stable-Rust harness
//! `fuzz-idx` (`src/main.rs`, driven by [`run`]) and the libFuzzer target in
//! `cargo-fuzz/fuzz_targets/idx.rs`:
//!
//! * [`check_idx`] feeds one input to [`IdxImages::from_bytes`] and
//!   [`IdxLabels::from_bytes`] and panics on any violated property: the result must
//!   agree exactly with a small reference reading of the format (for raw files, and
//!   for gzip files whose stream decompresses cleanly), a corrupt gzip stream must
//!   never read as `Ok`, and no call may allocate more than
//!   [`ALLOC_FACTOR`] times the content the input really holds plus [`ALLOC_SLACK`];
//! * [`check_from_parts`] checks [`LabelledImages::from_parts`] and the accessors
//!   of what it builds, with arbitrary (also overflowing) sizes.
//!
//! Allocation is measured by a counting global allocator installed by this crate, so
//! every binary that links it (the harness, its tests, the libFuzzer target) checks
//! allocations too.

pub mod mutate;

use std::alloc::System;
use std::borrow::Cow;
use std::io::{ErrorKind, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use data::{DataError, IdxImages, IdxLabels, LabelledImages};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use crate::mutate::{Mutator, Rng};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

pub use data::{IMAGES_MAGIC, LABELS_MAGIC};
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One parse may allocate at most `ALLOC_FACTOR * content + ALLOC_SLACK` bytes in
/// total, where `content` is the larger of the input and what its gzip stream really
/// decompresses to. Counted is every byte requested (growths of a reallocation
/// included), which bounds any single allocation as well as the peak.
pub const ALLOC_FACTOR: usize = 64;
pub const ALLOC_SLACK: usize = 1 << 20;

/// The reference decompression stops here; inputs this harness makes stay far below.
const GUNZIP_CAP: usize = 256 << 20;

/// Bytes requested from the allocator so far, by every thread.
pub fn bytes_allocated() -> usize {
    INSTRUMENTED_SYSTEM.stats().bytes_allocated
}

/// How a parse ended: `Ok` or the variant of its [`DataError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Read,
    BadMagic,
    BadHeader,
    Truncated,
    TrailingData,
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Read,
        Outcome::BadMagic,
        Outcome::BadHeader,
        Outcome::Truncated,
        Outcome::TrailingData,
        Outcome::Other,
    ];

    pub fn of<T>(result: &Result<T, DataError>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(DataError::Read { .. }) => Outcome::Read,
            Err(DataError::BadMagic { .. }) => Outcome::BadMagic,
            Err(DataError::BadHeader { .. }) => Outcome::BadHeader,
            Err(DataError::Truncated { .. }) => Outcome::Truncated,
            Err(DataError::TrailingData { .. }) => Outcome::TrailingData,
            Err(_) => Outcome::Other,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "Ok",
            Outcome::Read => "Read",
            Outcome::BadMagic => "BadMagic",
            Outcome::BadHeader => "BadHeader",
            Outcome::Truncated => "Truncated",
            Outcome::TrailingData => "TrailingData",
            Outcome::Other => "Other",
        }
    }
}

/// What [`check_idx`] saw of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Report {
    pub images: Outcome,
    pub labels: Outcome,
    /// The input starts with the gzip magic, so the reader decompresses it.
    pub gzip: bool,
    /// The input is raw, or its gzip stream decompresses without error.
    pub complete: bool,
    /// The most bytes one of the two parses allocated.
    pub allocated: usize,
}

impl Report {
    /// What the harness's feedback tells inputs apart by.
    pub fn signature(&self) -> (Outcome, Outcome, bool, bool) {
        (self.images, self.labels, self.gzip, self.complete)
    }
}

/// What a correct reader returns for IDX `content` (already decompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec<'a> {
    Ok { dims: Vec<usize>, payload: &'a [u8] },
    BadHeader,
    BadMagic { found: u32 },
    Truncated { expected: u64, found: u64 },
    TrailingData { expected: u64 },
}

/// The IDX format, read the simplest way: magic, one big-endian `u32` per dimension
/// (the magic's last byte counts them), then exactly their product of bytes.
fn spec(content: &[u8], magic: u32) -> Spec<'_> {
    let word = |i: usize| {
        let bytes = content.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes(<[u8; 4]>::try_from(bytes).ok()?))
    };
    let Some(found) = word(0) else {
        return Spec::BadHeader;
    };
    if found != magic {
        return Spec::BadMagic { found };
    }
    let rank = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(rank);
    let mut expected = Some(1u64);
    for i in 1..=rank {
        match word(i) {
            None | Some(0) => return Spec::BadHeader,
            Some(d) => {
                dims.push(d as usize);
                expected = expected.and_then(|e| e.checked_mul(u64::from(d)));
            }
        }
    }
    let Some(expected) = expected else {
        return Spec::BadHeader;
    };
    let payload = &content[4 * (rank + 1)..];
    let found = payload.len() as u64;
    if found < expected {
        Spec::Truncated { expected, found }
    } else if found > expected {
        Spec::TrailingData { expected }
    } else {
        Spec::Ok { dims, payload }
    }
}

fn agrees(got: Result<(Vec<usize>, &[u8]), &DataError>, spec: &Spec<'_>) -> bool {
    match (got, spec) {
        (Ok((dims, data)), Spec::Ok { dims: d, payload }) => dims == *d && data == *payload,
        (Err(DataError::BadHeader { .. }), Spec::BadHeader) => true,
        (Err(DataError::BadMagic { found, .. }), Spec::BadMagic { found: f }) => found == f,
        (
            Err(DataError::Truncated {
                expected, found, ..
            }),
            Spec::Truncated {
                expected: e,
                found: f,
            },
        ) => expected == e && found == f,
        (Err(DataError::TrailingData { expected, .. }), Spec::TrailingData { expected: e }) => {
            expected == e
        }
        _ => false,
    }
}

/// Decompresses the first gzip member of `bytes` as the reader does (flate2's
/// `GzDecoder`), returning what came out and whether the stream ended cleanly.
pub fn gunzip(bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > GUNZIP_CAP {
                    return (out, false);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (out, false),
        }
    }
}

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Runs `parse` and panics if it allocated more than `limit` bytes.
fn measured<T>(
    what: &str,
    limit: usize,
    input_len: usize,
    parse: impl FnOnce() -> T,
) -> (T, usize) {
    let before = bytes_allocated();
    let result = parse();
    let used = bytes_allocated().wrapping_sub(before);
    assert!(
        used <= limit,
        "{what} allocated {used} bytes for a {input_len}-byte input (limit {limit})"
    );
    (result, used)
}

/// Parses `bytes` as an images file and as a labels file and panics on any property
/// violation (see the crate documentation).
pub fn check_idx(bytes: &[u8]) -> Report {
    let gzip = is_gzip(bytes);
    let (content, complete): (Cow<'_, [u8]>, bool) = if gzip {
        let (content, complete) = gunzip(bytes);
        (Cow::Owned(content), complete)
    } else {
        (Cow::Borrowed(bytes), true)
    };
    let limit = ALLOC_FACTOR
        .saturating_mul(bytes.len().max(content.len()))
        .saturating_add(ALLOC_SLACK);
    let name = Path::new("fuzz-input");

    let (images, images_alloc) = measured("IdxImages::from_bytes", limit, bytes.len(), || {
        IdxImages::from_bytes(bytes, name)
    });
    if let Ok(set) = &images {
        assert!(
            set.count.checked_mul(set.image_len()) == Some(set.pixels.len()),
            "IdxImages of {} x {} x {} holds {} pixels",
            set.count,
            set.rows,
            set.cols,
            set.pixels.len()
        );
    }
    check_against_spec(
        "IdxImages",
        images
            .as_ref()
            .map(|set| (vec![set.count, set.rows, set.cols], &set.pixels[..])),
        &content,
        IMAGES_MAGIC,
        complete,
    );

    let (labels, labels_alloc) = measured("IdxLabels::from_bytes", limit, bytes.len(), || {
        IdxLabels::from_bytes(bytes, name)
    });
    check_against_spec(
        "IdxLabels",
        labels
            .as_ref()
            .map(|IdxLabels(labels)| (vec![labels.len()], &labels[..])),
        &content,
        LABELS_MAGIC,
        complete,
    );

    Report {
        images: Outcome::of(&images),
        labels: Outcome::of(&labels),
        gzip,
        complete,
        allocated: images_alloc.max(labels_alloc),
    }
}

fn check_against_spec(
    what: &str,
    got: Result<(Vec<usize>, &[u8]), &DataError>,
    content: &[u8],
    magic: u32,
    complete: bool,
) {
    if let Err(error) = &got {
        // Errors get printed; their messages must not panic either.
        let _ = error.to_string();
    }
    if complete {
        let want = spec(content, magic);
        assert!(
            agrees(
                got.as_ref().map(|(d, p)| (d.clone(), *p)).map_err(|e| *e),
                &want
            ),
            "{what}: the reader returned {:?} where the format says {want:?}",
            got.as_ref()
                .map(|(dims, data)| (dims, data.len()))
                .map_err(|e| e.to_string())
        );
    } else {
        assert!(
            got.is_err(),
            "{what}: a corrupt gzip stream read as Ok: {:?}",
            got.map(|(dims, _)| dims)
        );
    }
}

/// Checks [`LabelledImages::from_parts`] for `rows x cols` images, `pixels_len` pixels
/// and `labels_len` labels (both kept below 64 Ki here), then its accessors at a few
/// indices including `probe`. Returns whether the parts were accepted.
pub fn check_from_parts(
    rows: usize,
    cols: usize,
    pixels_len: usize,
    labels_len: usize,
    probe: usize,
) -> bool {
    let pixels_len = pixels_len % (1 << 16);
    let labels_len = labels_len % (1 << 16);
    let pixels: Vec<u8> = (0..pixels_len).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..labels_len).map(|i| (i % 10) as u8).collect();
    let image_len = rows.checked_mul(cols).filter(|&n| n > 0);
    let valid = image_len.and_then(|n| n.checked_mul(labels_len)) == Some(pixels_len);
    let set = LabelledImages::from_parts(rows, cols, pixels.clone(), labels.clone());
    assert_eq!(
        set.is_some(),
        valid,
        "LabelledImages::from_parts({rows}, {cols}, {pixels_len} pixels, {labels_len} labels)"
    );
    let (Some(set), Some(image_len)) = (set, image_len) else {
        return false;
    };
    assert_eq!(
        (
            set.len(),
            set.is_empty(),
            set.rows(),
            set.cols(),
            set.image_len()
        ),
        (labels_len, labels_len == 0, rows, cols, image_len)
    );
    assert_eq!(set.labels(), &labels[..]);
    let last = labels_len.saturating_sub(1);
    for index in [
        0,
        1,
        last,
        labels_len,
        labels_len + 1,
        probe,
        usize::MAX / 2,
        usize::MAX,
    ] {
        let want =
            (index < labels_len).then(|| &pixels[index * image_len..(index + 1) * image_len]);
        assert_eq!(set.image(index).as_deref(), want, "image({index}) of {labels_len}");
        assert_eq!(
            set.label(index),
            labels.get(index).copied(),
            "label({index})"
        );
    }
    true
}

/// [`check_from_parts`] with its arguments taken from the first 40 bytes of `bytes`
/// (little-endian `u64`s, zero-padded), for the libFuzzer target.
pub fn check_from_parts_bytes(bytes: &[u8]) -> bool {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        for (j, b) in bytes.iter().skip(8 * i).take(8).enumerate() {
            w[j] = *b;
        }
        u64::from_le_bytes(w) as usize
    };
    check_from_parts(word(0), word(1), word(2), word(3), word(4))
}

/// What to fuzz, for how long.
#[derive(Debug, Clone)]
pub struct Config {
    pub iterations: u64,
    pub seed: u64,
    /// Mutated raw inputs are cut to this length (gzip-wrapped ones may be slightly longer).
    pub max_len: usize,
    /// The seed inputs; must not be empty.
    pub corpus: Vec<Vec<u8>>,
}

/// Counts of one run of [`run`].
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Inputs given to [`check_idx`], each parsed as images and as labels.
    pub executions: u64,
    pub from_parts_checks: u64,
    pub from_parts_accepted: u64,
    pub images: [u64; 7],
    pub labels: [u64; 7],
    pub gzip_inputs: u64,
    pub gzip_complete: u64,
    pub max_input_len: usize,
    pub max_allocated: usize,
    pub elapsed: Duration,
}

/// The input a property failed on.
#[derive(Debug, Clone)]
pub struct Crash {
    pub iteration: u64,
    pub message: String,
    /// The IDX input, or for `from_parts` a text line with its arguments.
    pub input: Vec<u8>,
    pub from_parts: bool,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Fuzzes for `config.iterations` inputs; deterministic for a given config. Calls
/// `progress` about every million executions.
pub fn run(config: &Config, mut progress: impl FnMut(&Summary)) -> Result<Summary, Crash> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut rng = Rng::new(config.seed);
    let mut mutator = Mutator::new(config.corpus.clone(), config.max_len);
    for iteration in 0..config.iterations {
        let input = mutator.generate(&mut rng);
        let report = match catch_unwind(|| check_idx(&input)) {
            Ok(report) => report,
            Err(payload) => {
                return Err(Crash {
                    iteration,
                    message: panic_message(payload.as_ref()),
                    input,
                    from_parts: false,
                });
            }
        };
        summary.executions += 1;
        summary.images[report.images.index()] += 1;
        summary.labels[report.labels.index()] += 1;
        summary.gzip_inputs += u64::from(report.gzip);
        summary.gzip_complete += u64::from(report.gzip && report.complete);
        summary.max_input_len = summary.max_input_len.max(input.len());
        summary.max_allocated = summary.max_allocated.max(report.allocated);
        mutator.feedback(&mut rng, input, &report);

        let (rows, cols, pixels, labels, probe) = mutate::from_parts_args(&mut rng);
        match catch_unwind(AssertUnwindSafe(|| {
            check_from_parts(rows, cols, pixels, labels, probe)
        })) {
            Ok(accepted) => summary.from_parts_accepted += u64::from(accepted),
            Err(payload) => {
                return Err(Crash {
                    iteration,
                    message: panic_message(payload.as_ref()),
                    input: format!(
                        "LabelledImages::from_parts rows={rows} cols={cols} pixels_len={pixels} labels_len={labels} probe={probe}\n"
                    )
                    .into_bytes(),
                    from_parts: true,
                });
            }
        }
        summary.from_parts_checks += 1;
        if (iteration + 1) % 1_000_000 == 0 {
            summary.elapsed = started.elapsed();
            progress(&summary);
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::encode_idx as idx;
    use std::sync::{Mutex, MutexGuard};

    /// Allocation is counted for the whole process, so tests that measure it run
    /// one at a time.
    fn serial() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn spec_reads_the_format() {
        let _serial = serial();
        let file = idx(IMAGES_MAGIC, &[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            spec(&file, IMAGES_MAGIC),
            Spec::Ok {
                dims: vec![2, 1, 3],
                payload: &[1, 2, 3, 4, 5, 6]
            }
        );
        assert_eq!(
            spec(&file, LABELS_MAGIC),
            Spec::BadMagic {
                found: IMAGES_MAGIC
            }
        );
        assert_eq!(
            spec(&file[..20], IMAGES_MAGIC),
            Spec::Truncated {
                expected: 6,
                found: 4
            }
        );
        assert_eq!(spec(&file[..14], IMAGES_MAGIC), Spec::BadHeader);
        let huge = idx(IMAGES_MAGIC, &[u32::MAX; 3], &[]);
        assert_eq!(spec(&huge, IMAGES_MAGIC), Spec::BadHeader);
    }

    #[test]
    fn seeds_pass_and_a_short_run_finds_nothing() {
        let _serial = serial();
        for (name, bytes) in mutate::seeds() {
            let report = check_idx(&bytes);
            assert!(
                report.allocated <= ALLOC_SLACK + ALLOC_FACTOR * bytes.len(),
                "{name}"
            );
        }
        let config = Config {
            iterations: 20_000,
            seed: 7,
            max_len: 4096,
            corpus: mutate::seeds()
                .into_iter()
                .map(|(_, bytes)| bytes)
                .collect(),
        };
        match run(&config, |_| {}) {
            Ok(summary) => {
                assert_eq!(summary.executions, 20_000);
                assert!(summary.images[Outcome::Ok.index()] > 0, "{summary:?}");
                assert!(summary.labels[Outcome::Ok.index()] > 0, "{summary:?}");
                assert!(summary.gzip_complete > 0, "{summary:?}");
            }
            Err(crash) => panic!("crash at {}: {}", crash.iteration, crash.message),
        }
    }

    #[test]
    fn the_committed_corpus_matches_the_built_in_seeds() {
        let _serial = serial();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/idx");
        // Compressed bytes depend on which deflate backend flate2 was built with (cargo
        // feature unification picks it), so gzip seeds are compared by what they
        // decompress to; a deliberately cut stream only has to be there.
        let inflate = |bytes: &[u8]| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .ok()
                .map(|_| out)
        };
        for (name, bytes) in mutate::seeds() {
            let on_disk = std::fs::read(dir.join(&name));
            assert!(
                on_disk.is_ok(),
                "corpus/idx/{name} is missing; run fuzz-idx --write-corpus"
            );
            let on_disk = on_disk.unwrap_or_default();
            let same = if bytes.starts_with(&[0x1f, 0x8b]) {
                inflate(&on_disk) == inflate(&bytes)
            } else {
                on_disk == bytes
            };
            assert!(
                same,
                "corpus/idx/{name} is stale; run fuzz-idx --write-corpus"
            );
        }
    }
}
