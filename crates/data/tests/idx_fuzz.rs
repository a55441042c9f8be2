//! Property tests of the IDX reader against hostile input, with a fixed number of
//! cases each so that every `cargo test` run (CI included) does the same amount of
//! work. The long-running fuzzer is `crates/data/fuzz` (see its README).
//!
//! A counting global allocator checks that a header promising more data than the
//! file holds is refused without allocating what it promises. Allocation is counted
//! for the whole process, so the tests here run one at a time.

use std::alloc::System;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use data::{DataError, IdxImages, IdxLabels, LabelledImages, encode_idx as idx};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CASES: u32 = 2000;
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
/// What parsing a file may allocate beyond 64 bytes per input byte (the gzip
/// decoder's state is about 80 KiB).
const ALLOC_SLACK: usize = 1 << 20;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `test` on `CASES` values of `strategy`, one test at a time.
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let _serial = serial();
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}\n{runner}");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("in-memory write");
    encoder.finish().expect("in-memory write")
}

fn name() -> &'static Path {
    Path::new("prop-input")
}

/// Bytes requested from the allocator while `f` ran.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = INSTRUMENTED_SYSTEM.stats().bytes_allocated;
    let value = f();
    (value, INSTRUMENTED_SYSTEM.stats().bytes_allocated - before)
}

/// Raw or gzip-compressed, as a file on disk may be.
fn encode(bytes: Vec<u8>, gz: bool) -> Vec<u8> {
    if gz { gzip(&bytes) } else { bytes }
}

/// Arbitrary bytes, arbitrary bytes behind the gzip magic, gzip of arbitrary bytes,
/// and IDX-looking headers with arbitrary dimensions and payload.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop_oneof![
        Just(IMAGES_MAGIC),
        Just(LABELS_MAGIC),
        Just(0x0000_0800u32),
        Just(0x0000_08ffu32),
        any::<u32>()
    ];
    let dim = prop_oneof![Just(0u32), 1u32..16, Just(u32::MAX), any::<u32>()];
    let header = (
        magic,
        prop::collection::vec(dim, 0..4),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(magic, dims, payload)| idx(magic, &dims, &payload));
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|tail| [vec![0x1f, 0x8b], tail].concat()),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| gzip(&b)),
        header.clone(),
        header.prop_map(|b| gzip(&b)),
    ]
}

#[test]
fn arbitrary_bytes_never_panic_and_ok_means_consistent() {
    check(hostile_bytes(), |bytes| {
        match IdxImages::from_bytes(&bytes, name()) {
            Ok(images) => prop_assert_eq!(
                images.count.checked_mul(images.image_len()),
                Some(images.pixels.len())
            ),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
        match IdxLabels::from_bytes(&bytes, name()) {
            Ok(IdxLabels(labels)) => {
                if !bytes.starts_with(&[0x1f, 0x8b]) {
                    prop_assert_eq!(&labels[..], &bytes[8..]);
                }
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
        Ok(())
    });
}

/// `(count, rows, cols)` and that many pixels.
fn images_file() -> impl Strategy<Value = (u32, u32, u32, Vec<u8>)> {
    (1u32..=16, 1u32..=8, 1u32..=8).prop_flat_map(|(count, rows, cols)| {
        let pixels = prop::collection::vec(any::<u8>(), (count * rows * cols) as usize);
        (Just(count), Just(rows), Just(cols), pixels)
    })
}

#[test]
fn valid_images_round_trip_raw_and_gzip() {
    check(
        (images_file(), any::<bool>()),
        |((count, rows, cols, pixels), gz)| {
            let bytes = encode(idx(IMAGES_MAGIC, &[count, rows, cols], &pixels), gz);
            let images = IdxImages::from_bytes(&bytes, name())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                images,
                IdxImages {
                    count: count as usize,
                    rows: rows as usize,
                    cols: cols as usize,
                    pixels
                }
            );
            Ok(())
        },
    );
}

#[test]
fn valid_labels_round_trip_raw_and_gzip() {
    check(
        (prop::collection::vec(any::<u8>(), 1..300), any::<bool>()),
        |(labels, gz)| {
            let bytes = encode(idx(LABELS_MAGIC, &[labels.len() as u32], &labels), gz);
            let read = IdxLabels::from_bytes(&bytes, name())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(read, IdxLabels(labels));
            Ok(())
        },
    );
}

/// How a valid file is cut short: the raw file, the raw file before compression, or
/// the compressed stream.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Raw,
    BeforeGzip,
    GzipStream,
}

#[test]
fn every_truncation_of_a_valid_file_is_an_error() {
    let file = prop_oneof![
        images_file().prop_map(|(count, rows, cols, pixels)| (
            true,
            idx(IMAGES_MAGIC, &[count, rows, cols], &pixels)
        )),
        prop::collection::vec(any::<u8>(), 1..100)
            .prop_map(|labels| (false, idx(LABELS_MAGIC, &[labels.len() as u32], &labels))),
    ];
    let cut = prop_oneof![Just(Cut::Raw), Just(Cut::BeforeGzip), Just(Cut::GzipStream)];
    check(
        (file, cut, any::<prop::sample::Index>()),
        |((is_images, file), cut, at)| {
            let bytes = match cut {
                Cut::Raw => file[..at.index(file.len())].to_vec(),
                Cut::BeforeGzip => gzip(&file[..at.index(file.len())]),
                Cut::GzipStream => {
                    let gz = gzip(&file);
                    gz[..at.index(gz.len())].to_vec()
                }
            };
            let result = if is_images {
                IdxImages::from_bytes(&bytes, name()).map(|_| ())
            } else {
                IdxLabels::from_bytes(&bytes, name()).map(|_| ())
            };
            prop_assert!(
                matches!(
                    result,
                    Err(DataError::Truncated { .. }
                        | DataError::BadHeader { .. }
                        | DataError::Read { .. })
                ),
                "{:?} cut to {} bytes: {:?}",
                cut,
                bytes.len(),
                result
            );
            Ok(())
        },
    );
}

#[test]
fn a_header_promising_more_than_the_payload_fails_without_allocating_it() {
    // Small dimensions just past the payload, and huge ones (up to overflowing u64).
    let small = (1u32..=8, 1u32..=8, 1u32..=8);
    let huge = (256u32.., 256u32.., 256u32..);
    let dims = prop_oneof![
        small.prop_map(|(a, b, c)| [a, b, c]),
        huge.prop_map(|(a, b, c)| [a, b, c])
    ];
    check(
        (
            dims,
            any::<prop::sample::Index>(),
            any::<bool>(),
            any::<bool>(),
        ),
        |(dims, len, labels, gz)| {
            let promised: u128 = if labels {
                u128::from(dims[0])
            } else {
                dims.iter().map(|&d| u128::from(d)).product()
            };
            // Strictly less than promised, and at most 63 bytes.
            let payload: Vec<u8> = (0..len.index(promised.min(64) as usize))
                .map(|i| i as u8)
                .collect();
            let bytes = if labels {
                encode(idx(LABELS_MAGIC, &dims[..1], &payload), gz)
            } else {
                encode(idx(IMAGES_MAGIC, &dims, &payload), gz)
            };
            let (result, allocated) = allocated_by(|| {
                if labels {
                    IdxLabels::from_bytes(&bytes, name()).map(|_| ())
                } else {
                    IdxImages::from_bytes(&bytes, name()).map(|_| ())
                }
            });
            prop_assert!(
                matches!(
                    result,
                    Err(DataError::Truncated { .. } | DataError::BadHeader { .. })
                ),
                "{:?}",
                result
            );
            prop_assert!(
                allocated <= 64 * bytes.len() + ALLOC_SLACK,
                "{} bytes allocated for a {}-byte file promising {}",
                allocated,
                bytes.len(),
                promised
            );
            Ok(())
        },
    );
}

/// The inverse of odd `a` modulo 2^bits (Newton's iteration), so that `a * inverse`
/// wraps around to 1.
fn inverse_wrapping(a: usize) -> usize {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2usize.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

#[test]
fn from_parts_accepts_exactly_the_consistent_sizes() {
    let size = prop_oneof![
        0usize..10,
        any::<usize>(),
        Just(usize::MAX),
        Just(1usize << (usize::BITS / 2))
    ];
    let sizes = prop_oneof![
        (size.clone(), size),
        // rows * cols wraps around to a small number.
        (0usize..1000, 1usize..4)
            .prop_map(|(rows, k)| (rows | 1, inverse_wrapping(rows | 1).wrapping_mul(k))),
    ];
    let index = prop_oneof![0usize..20, any::<usize>(), Just(usize::MAX / 2 + 1)];
    check(
        (sizes, 0usize..8, any::<bool>(), index),
        |((rows, cols), labels_len, exact, index)| {
            let product = rows.wrapping_mul(cols).wrapping_mul(labels_len);
            let pixels_len = if exact && product < 4096 {
                product
            } else {
                product % 64
            };
            let image_len = rows.checked_mul(cols).filter(|&n| n > 0);
            let consistent = image_len.and_then(|n| n.checked_mul(labels_len)) == Some(pixels_len);
            let pixels: Vec<u8> = (0..pixels_len).map(|i| i as u8).collect();
            let set = LabelledImages::from_parts(rows, cols, pixels.clone(), vec![3; labels_len]);
            prop_assert_eq!(
                set.is_some(),
                consistent,
                "{} x {} x {} vs {}",
                rows,
                cols,
                labels_len,
                pixels_len
            );
            if let (Some(set), Some(n)) = (set, image_len) {
                prop_assert_eq!(set.len(), labels_len);
                let want = (index < labels_len).then(|| &pixels[index * n..(index + 1) * n]);
                let image = set.image(index);
                prop_assert_eq!(image.as_deref(), want);
                prop_assert_eq!(set.image(labels_len), None);
                prop_assert_eq!(set.label(index), (index < labels_len).then_some(3));
            }
            Ok(())
        },
    );
}
