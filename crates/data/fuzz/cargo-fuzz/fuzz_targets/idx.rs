//! libFuzzer target for the IDX reader: `cargo +nightly fuzz run --fuzz-dir
//! crates/data/fuzz/cargo-fuzz idx ...` (see crates/data/fuzz/README.md). The checks
//! are those of the stable harness `fuzz-idx`, shared through the `data-fuzz` crate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // Both parsers, checked against the IDX format and the allocation limit.
    data_fuzz::check_idx(bytes);
    // LabelledImages::from_parts with sizes taken from the first 40 bytes.
    data_fuzz::check_from_parts_bytes(bytes);
});
