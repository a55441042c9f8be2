//! Input generation for the stable harness: a deterministic PRNG, the seed files, and
//! a coverage-free mutator that knows the IDX header layout and gzip framing.

use std::io::Write;

use flate2::{Compression, GzBuilder};

pub use data::encode_idx as idx;

use crate::{IMAGES_MAGIC, LABELS_MAGIC, Outcome, Report, gunzip, is_gzip};

/// SplitMix64: tiny, fast, and deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const INTERESTING_U8: [u8; 12] = [0, 1, 2, 3, 8, 0x10, 0x1f, 0x7f, 0x80, 0x8b, 0xfe, 0xff];

const INTERESTING_U32: [u32; 26] = [
    0,
    1,
    2,
    3,
    4,
    6,
    10,
    28,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    60_000,
    0x00ff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    u32::MAX,
    LABELS_MAGIC,
    IMAGES_MAGIC,
    0x1f8b_0800,
    0x0000_0c03,
];

const MAGICS: [u32; 10] = [
    LABELS_MAGIC,
    IMAGES_MAGIC,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    0x0000_0800,
    0x0000_0802,
    0x0000_0804,
    0x0000_08ff,
    0x0000_0d03,
    0x1f8b_0800,
];

/// Gzip-compresses `bytes` with flate2 at `level`, with optional header fields.
pub fn gzip_with(bytes: &[u8], level: u32, name: bool, comment: bool, extra: bool) -> Vec<u8> {
    let mut builder = GzBuilder::new();
    if name {
        builder = builder.filename("train-images-idx3-ubyte");
    }
    if comment {
        builder = builder.comment("fuzz");
    }
    if extra {
        builder = builder.extra(vec![b'F', b'Z', 2, 0, 0xab, 0xcd]);
    }
    let mut encoder = builder.write(Vec::new(), Compression::new(level));
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_with(bytes, 6, false, false, false)
}

fn random_gzip(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    // Mostly the cheap levels: level 0 (stored blocks) and 1; sometimes the rest.
    let level = if rng.one_in(4) {
        rng.below(10) as u32
    } else {
        rng.below(2) as u32
    };
    let flags = rng.next_u64();
    gzip_with(
        bytes,
        level,
        flags & 0x10 != 0,
        flags & 0x20 != 0,
        flags & 0x40 != 0,
    )
}

/// The seed files, by name; `fuzz-idx --write-corpus` writes them to `corpus/idx/`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let images = |count: u32, rows: u32, cols: u32| {
        let n = (count * rows * cols) as usize;
        let pixels: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        idx(IMAGES_MAGIC, &[count, rows, cols], &pixels)
    };
    let labels = |count: u32| {
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        idx(LABELS_MAGIC, &[count], &labels)
    };
    let images_4x2x3 = images(4, 2, 3);
    let labels_4 = labels(4);
    let mut bad_crc = gzip(&labels_4);
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    let mut bad_isize = gzip(&labels_4);
    let isize_at = bad_isize.len() - 1;
    bad_isize[isize_at] ^= 0x01;
    let full = gzip(&images_4x2x3);
    let cut_gz = full[..full.len() / 2].to_vec();
    let two_members = [gzip(&images_4x2x3[..20]), gzip(&images_4x2x3[20..])].concat();
    let trailing_garbage = [gzip(&labels_4), b"garbage after the gzip member".to_vec()].concat();
    let mut gz_header_only = gzip(&labels_4);
    gz_header_only.truncate(10);
    let mut truncated_payload = images_4x2x3.clone();
    truncated_payload.pop();
    let mut trailing = labels_4.clone();
    trailing.push(9);
    let huge = idx(IMAGES_MAGIC, &[u32::MAX; 3], &[0; 4]);
    let big_claim = idx(IMAGES_MAGIC, &[1_000_000, 28, 28], &[0; 4]);
    let huge_labels = idx(LABELS_MAGIC, &[u32::MAX], &[7]);

    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("images-4x2x3.idx", images_4x2x3.clone()),
        ("images-4x2x3.idx.gz", gzip(&images_4x2x3)),
        ("labels-4.idx", labels_4.clone()),
        ("labels-4.idx.gz", gzip(&labels_4)),
        ("images-1x1x1.idx", images(1, 1, 1)),
        ("labels-1.idx", labels(1)),
        ("images-2x28x28.idx.gz", gzip(&images(2, 28, 28))),
        (
            "images-3x2x2-stored-named.idx.gz",
            gzip_with(&images(3, 2, 2), 0, true, true, true),
        ),
        (
            "labels-60-best.idx.gz",
            gzip_with(&labels(60), 9, false, false, false),
        ),
        ("empty.bin", Vec::new()),
        ("images-magic-only.idx", IMAGES_MAGIC.to_be_bytes().to_vec()),
        ("images-header-cut.idx", idx(IMAGES_MAGIC, &[5], &[])),
        ("images-zero-dim.idx", idx(IMAGES_MAGIC, &[5, 0, 28], &[])),
        ("images-dims-overflow.idx", huge.clone()),
        ("images-dims-overflow.idx.gz", gzip(&huge)),
        ("images-big-claim.idx", big_claim.clone()),
        ("images-big-claim.idx.gz", gzip(&big_claim)),
        ("labels-huge-claim.idx.gz", gzip(&huge_labels)),
        ("images-truncated.idx", truncated_payload.clone()),
        ("images-truncated.idx.gz", gzip(&truncated_payload)),
        ("labels-trailing.idx", trailing.clone()),
        ("labels-trailing.idx.gz", gzip(&trailing)),
        ("not-idx.txt", b"hello world, not idx".to_vec()),
        ("gz-magic-only.bin", crate::GZIP_MAGIC.to_vec()),
        ("gz-header-only.gz", gz_header_only),
        ("gz-cut-stream.gz", cut_gz),
        ("gz-bad-crc.gz", bad_crc),
        ("gz-bad-isize.gz", bad_isize),
        ("gz-two-members.gz", two_members),
        ("gz-trailing-garbage.gz", trailing_garbage),
    ];
    seeds.sort_by(|a, b| a.0.cmp(b.0));
    seeds
        .into_iter()
        .map(|(name, bytes)| (name.to_string(), bytes))
        .collect()
}

/// Arguments for [`crate::check_from_parts`]: valid and near-valid sizes, huge and
/// overflowing ones, and products that wrap around to a small number.
pub fn from_parts_args(rng: &mut Rng) -> (usize, usize, usize, usize, usize) {
    const INTERESTING: [usize; 10] = [
        0,
        1,
        2,
        3,
        1 << 32,
        (1 << 32) + 1,
        usize::MAX / 2,
        usize::MAX / 2 + 1,
        usize::MAX - 1,
        usize::MAX,
    ];
    let probe = match rng.below(3) {
        0 => rng.below(64),
        1 => rng.pick(&INTERESTING),
        _ => rng.next_u64() as usize,
    };
    let (rows, cols, labels) = match rng.below(4) {
        0 => (rng.below(9), rng.below(9), rng.below(9)),
        1 => (
            if rng.one_in(2) {
                rng.pick(&INTERESTING)
            } else {
                rng.below(9)
            },
            if rng.one_in(2) {
                rng.pick(&INTERESTING)
            } else {
                rng.next_u64() as usize
            },
            rng.below(9),
        ),
        2 => {
            // rows * cols wraps to a small number: cols = k * rows^-1 mod 2^64.
            let rows = (if rng.one_in(2) {
                rng.below(50)
            } else {
                rng.next_u64() as usize
            }) | 1;
            let k = 1 + rng.below(8);
            (
                rows,
                inverse_mod_2_64(rows).wrapping_mul(k),
                1 + rng.below(4),
            )
        }
        _ => (
            rng.next_u64() as usize,
            rng.next_u64() as usize,
            rng.below(64),
        ),
    };
    let product = rows.wrapping_mul(cols).wrapping_mul(labels);
    let pixels = match rng.below(4) {
        0 | 1 if product < 4096 => product,
        2 => product.wrapping_add(if rng.one_in(2) { 1 } else { usize::MAX }) % 4096,
        _ => rng.below(4096),
    };
    let (rows, cols) = if rng.one_in(2) {
        (rows, cols)
    } else {
        (cols, rows)
    };
    (rows, cols, pixels, labels, probe)
}

/// The inverse of odd `a` modulo 2^64 (Newton's iteration).
fn inverse_mod_2_64(a: usize) -> usize {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2usize.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// Generates inputs from the seeds and from inputs that showed a rare outcome.
#[derive(Debug)]
pub struct Mutator {
    seeds: Vec<Vec<u8>>,
    /// Inputs kept for a rare signature, in a ring of `POOL` entries.
    pool: Vec<Vec<u8>>,
    next_slot: usize,
    /// How often each signature was seen (small, fixed key space).
    seen: Vec<((Outcome, Outcome, bool, bool), u64)>,
    max_len: usize,
}

const POOL: usize = 1024;

impl Mutator {
    pub fn new(seeds: Vec<Vec<u8>>, max_len: usize) -> Self {
        assert!(!seeds.is_empty(), "the corpus is empty");
        Self {
            seeds,
            pool: Vec::new(),
            next_slot: 0,
            seen: Vec::new(),
            max_len: max_len.max(16),
        }
    }

    fn base(&mut self, rng: &mut Rng) -> Vec<u8> {
        if self.pool.is_empty() || rng.one_in(2) {
            self.seeds[rng.below(self.seeds.len())].clone()
        } else {
            self.pool[rng.below(self.pool.len())].clone()
        }
    }

    fn other<'a>(&'a self, rng: &mut Rng) -> &'a [u8] {
        let n = self.seeds.len() + self.pool.len();
        let i = rng.below(n);
        if i < self.seeds.len() {
            &self.seeds[i]
        } else {
            &self.pool[i - self.seeds.len()]
        }
    }

    /// Keeps `input` when its signature has been seen 1, 2, 4, 8, ... times, so rare
    /// outcomes (a valid file with odd dimensions, a gzip stream that still decodes)
    /// get mutated further.
    pub fn feedback(&mut self, rng: &mut Rng, input: Vec<u8>, report: &Report) {
        let signature = report.signature();
        let count = match self.seen.iter_mut().find(|(s, _)| *s == signature) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                self.seen.push((signature, 1));
                1
            }
        };
        let keep = count.is_power_of_two()
            || (report.images == Outcome::Ok || report.labels == Outcome::Ok) && rng.one_in(64);
        if keep && input.len() <= self.max_len + 256 {
            if self.pool.len() < POOL {
                self.pool.push(input);
            } else {
                self.pool[self.next_slot] = input;
                self.next_slot = (self.next_slot + 1) % POOL;
            }
        }
    }

    /// One new input.
    pub fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let base = self.base(rng);
        match rng.below(20) {
            // Byte-level havoc on whatever the base is (raw or gzip-compressed).
            0..=10 => {
                let mut data = base;
                self.havoc(rng, &mut data);
                data
            }
            // Mutate the decompressed content, then gzip-wrap it.
            11..=13 => {
                let mut raw = self.raw_of(base);
                self.havoc(rng, &mut raw);
                if rng.one_in(3) {
                    fix_dims(rng, &mut raw);
                }
                random_gzip(rng, &raw)
            }
            // Compress, then corrupt the compressed stream.
            14 | 15 => {
                let mut gz = if is_gzip(&base) {
                    base
                } else {
                    random_gzip(rng, &base)
                };
                self.havoc(rng, &mut gz);
                gz
            }
            // A valid file with random dimensions and content, raw or gzip.
            16 => {
                let file = self.synthesize(rng);
                if rng.one_in(3) {
                    random_gzip(rng, &file)
                } else {
                    file
                }
            }
            // Make the header agree with the payload (mostly valid files), maybe
            // with one more mutation, raw or gzip.
            _ => {
                let mut raw = self.raw_of(base);
                if rng.one_in(2) {
                    self.havoc(rng, &mut raw);
                }
                fix_dims(rng, &mut raw);
                if rng.one_in(8) {
                    self.mutate_once(rng, &mut raw);
                }
                if rng.one_in(3) {
                    random_gzip(rng, &raw)
                } else {
                    raw
                }
            }
        }
    }

    fn raw_of(&self, base: Vec<u8>) -> Vec<u8> {
        let mut raw = if is_gzip(&base) {
            gunzip(&base).0
        } else {
            base
        };
        raw.truncate(self.max_len);
        raw
    }

    fn synthesize(&self, rng: &mut Rng) -> Vec<u8> {
        let budget = self.max_len.saturating_sub(16).clamp(1, 2048);
        let mut payload_len = 1;
        let mut dims = Vec::new();
        let rank = if rng.one_in(2) { 1 } else { 3 };
        for _ in 0..rank {
            let room = (budget / payload_len).max(1);
            let d = 1 + rng.below(room.min(if rank == 1 { budget } else { 16 }));
            payload_len *= d;
            dims.push(d as u32);
        }
        let magic = if rank == 1 {
            LABELS_MAGIC
        } else {
            IMAGES_MAGIC
        };
        let fill = rng.below(3);
        let payload: Vec<u8> = (0..payload_len)
            .map(|i| match fill {
                0 => 0,
                1 => (i % 10) as u8,
                _ => rng.next_u64() as u8,
            })
            .collect();
        idx(magic, &dims, &payload)
    }

    /// A stack of 1 to 8 mutations (geometrically fewer of the long stacks).
    pub fn havoc(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let rounds = 1 + (rng.next_u64().trailing_zeros() as usize).min(7);
        for _ in 0..rounds {
            self.mutate_once(rng, data);
        }
        data.truncate(self.max_len + 256);
    }

    fn mutate_once(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let len = data.len();
        match rng.below(17) {
            // Bit flip.
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            // A byte set to an interesting value, biased to the header.
            1 if len > 0 => {
                let at = if rng.one_in(2) {
                    rng.below(len.min(20))
                } else {
                    rng.below(len)
                };
                data[at] = rng.pick(&INTERESTING_U8);
            }
            // A random byte.
            2 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next_u64() as u8;
            }
            // A header u32 field set to 0, 1, huge, u32::MAX, a length-derived value...
            3 => {
                let at = if rng.one_in(4) {
                    rng.below(len.max(1))
                } else {
                    4 * rng.below(4)
                };
                let payload = len.saturating_sub(16) as u32;
                let value = match rng.below(4) {
                    0 | 1 => rng.pick(&INTERESTING_U32),
                    2 => rng.pick(&[
                        payload,
                        payload.wrapping_add(1),
                        payload.wrapping_sub(1),
                        len as u32,
                    ]),
                    _ => rng.next_u64() as u32,
                };
                set_u32(data, at, value);
            }
            // Small arithmetic on a header field.
            4 => {
                let at = 4 * rng.below(4);
                if let Some(bytes) = data.get(at..at + 4) {
                    let mut word = [0u8; 4];
                    word.copy_from_slice(bytes);
                    let delta = 1 + rng.below(16) as u32;
                    let old = u32::from_be_bytes(word);
                    let new = if rng.one_in(2) {
                        old.wrapping_add(delta)
                    } else {
                        old.wrapping_sub(delta)
                    };
                    set_u32(data, at, new);
                }
            }
            // Truncation, biased into the header.
            5 => {
                let cut = if rng.one_in(2) {
                    rng.below(len.min(24) + 1)
                } else {
                    rng.below(len + 1)
                };
                data.truncate(cut);
            }
            // Extension.
            6 => {
                let n = match rng.below(3) {
                    0 => 1 + rng.below(8),
                    1 => 1 + rng.below(64),
                    _ => 1 + rng.below(1024),
                };
                let fill = rng.below(4);
                let last = data.last().copied().unwrap_or(0);
                for _ in 0..n {
                    data.push(match fill {
                        0 => 0,
                        1 => 0xff,
                        2 => last,
                        _ => rng.next_u64() as u8,
                    });
                }
            }
            // Splice: a prefix of this input and a suffix of another.
            7 => {
                let other = self.other(rng);
                let from = rng.below(other.len() + 1);
                let suffix = other[from..].to_vec();
                data.truncate(rng.below(len + 1));
                data.extend(suffix);
            }
            // Duplicate a chunk.
            8 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(64));
                let chunk = data[start..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            // Delete a chunk.
            9 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(64));
                data.drain(start..end);
            }
            // Another magic number.
            10 => {
                let magic = if rng.one_in(8) {
                    rng.next_u64() as u32 & 0xffff
                } else {
                    rng.pick(&MAGICS)
                };
                set_u32(data, 0, magic);
            }
            // Prepend or strip the gzip magic.
            11 => {
                if is_gzip(data) {
                    data.drain(..1 + rng.below(2));
                } else {
                    data.splice(0..0, crate::GZIP_MAGIC);
                }
            }
            // Overwrite a chunk with the same bytes of another input.
            12 if len > 0 => {
                let other = self.other(rng);
                let start = rng.below(len);
                let n = (1 + rng.below(32))
                    .min(len - start)
                    .min(other.len().saturating_sub(start));
                if n > 0 {
                    data[start..start + n].copy_from_slice(&other[start..start + n]);
                }
            }
            // A gzip header byte: method, flags (FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT,
            // reserved), mtime, xfl, os.
            13 if len >= 10 => {
                let at = 2 + rng.below(8);
                if at == 3 && rng.one_in(2) {
                    data[3] ^= 1 << rng.below(8);
                } else {
                    data[at] = if rng.one_in(2) {
                        rng.pick(&INTERESTING_U8)
                    } else {
                        rng.next_u64() as u8
                    };
                }
            }
            // The gzip trailer: CRC32 and ISIZE.
            14 if len >= 8 => {
                let at = len - 8 + rng.below(8);
                data[at] = if rng.one_in(2) {
                    rng.pick(&INTERESTING_U8)
                } else {
                    rng.next_u64() as u8
                };
            }
            // Insert a chunk of interesting bytes.
            15 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let byte = rng.pick(&INTERESTING_U8);
                data.splice(at..at, std::iter::repeat_n(byte, n));
            }
            // Make the header consistent with the payload.
            16 => fix_dims(rng, data),
            _ => {
                let at = rng.below(len + 1);
                data.insert(at, rng.next_u64() as u8);
            }
        }
    }
}

/// Writes a big-endian `u32` at `at`, growing `data` with zeros if needed.
fn set_u32(data: &mut Vec<u8>, at: usize, value: u32) {
    if data.len() < at + 4 {
        data.resize(at + 4, 0);
    }
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Rewrites the dimensions so that they multiply to the payload length (keeping the
/// magic if it is a known one), which turns most inputs into valid files.
fn fix_dims(rng: &mut Rng, data: &mut Vec<u8>) {
    let magic = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|m| *m == IMAGES_MAGIC || *m == LABELS_MAGIC)
        .unwrap_or(if rng.one_in(2) {
            IMAGES_MAGIC
        } else {
            LABELS_MAGIC
        });
    let header = if magic == IMAGES_MAGIC { 16 } else { 8 };
    if data.len() <= header {
        let extra = header + 1 + rng.below(12) - data.len();
        data.extend(std::iter::repeat_n(0x55, extra));
    }
    let payload = data.len() - header;
    set_u32(data, 0, magic);
    if magic == LABELS_MAGIC {
        set_u32(data, 4, payload as u32);
    } else {
        let rows = random_divisor(rng, payload);
        let cols = random_divisor(rng, payload / rows);
        let count = payload / rows / cols;
        let mut dims = [count, rows, cols];
        if rng.one_in(2) {
            dims.swap(0, 1 + rng.below(2));
        }
        for (i, d) in dims.iter().enumerate() {
            set_u32(data, 4 + 4 * i, *d as u32);
        }
    }
}

fn random_divisor(rng: &mut Rng, n: usize) -> usize {
    for _ in 0..8 {
        let d = 1 + rng.below(n.min(64));
        if n.is_multiple_of(d) {
            return d;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_mod_2_64_inverts_odd_numbers() {
        for a in [1usize, 3, 5, 12345, usize::MAX] {
            assert_eq!(a.wrapping_mul(inverse_mod_2_64(a)), 1);
        }
    }

    #[test]
    fn fix_dims_makes_valid_files() {
        let mut rng = Rng::new(1);
        for n in 0..200 {
            let mut data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            fix_dims(&mut rng, &mut data);
            let is_images = data[..4] == IMAGES_MAGIC.to_be_bytes();
            let header = if is_images { 16 } else { 8 };
            let product: u64 = data[4..header]
                .chunks(4)
                .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
                .product();
            assert_eq!(product, (data.len() - header) as u64);
        }
    }
}
