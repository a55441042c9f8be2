//! Weights files sealed with a checksum: the burnpack bytes of a model or checkpoint
//! record followed by a trailer holding their length and CRC-32, so that a flipped bit
//! or a torn copy is reported as damage instead of trained on or served.
//!
//! Burn's reader ignores bytes after the last tensor, so a sealed file is still a
//! burnpack file to other tools; a file without the trailer (written before seals) is
//! read as it is.

use std::path::Path;

use burn::store::burn_pack::Bytes;

/// Marks the trailer; a burnpack file ends with tensor bytes, which this does not
/// spell by chance.
const TAG: &[u8; 8] = b"SEALCRC1";
/// The tag, the payload's length (u64) and its CRC-32 (u32), little-endian.
const TRAILER: usize = TAG.len() + 8 + 4;

/// Why a sealed file's contents cannot be trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Damage {
    #[error("damaged: its checksum says {sealed:08x}, its contents sum to {found:08x}")]
    Checksum { sealed: u32, found: u32 },
    #[error("damaged: its seal counts {sealed} bytes, it holds {found}")]
    Length { sealed: u64, found: u64 },
}

/// `payload` followed by its trailer.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(payload.len() + TRAILER);
    sealed.extend_from_slice(payload);
    sealed.extend_from_slice(TAG);
    sealed.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    sealed.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    sealed
}

/// The payload of `file`, checked against its trailer; a file with no trailer is its
/// own payload.
pub(crate) fn open(mut file: Vec<u8>) -> Result<Vec<u8>, Damage> {
    let Some(start) = file.len().checked_sub(TRAILER) else {
        return Ok(file);
    };
    let trailer = &file[start..];
    if &trailer[..TAG.len()] != TAG {
        return Ok(file);
    }
    let number = |range: std::ops::Range<usize>| {
        trailer[range]
            .iter()
            .rev()
            .fold(0u64, |n, &byte| (n << 8) | u64::from(byte))
    };
    let sealed_length = number(8..16);
    let sealed_checksum = number(16..20) as u32;
    if sealed_length != start as u64 {
        return Err(Damage::Length {
            sealed: sealed_length,
            found: start as u64,
        });
    }
    file.truncate(start);
    let found = crc32fast::hash(&file);
    if found != sealed_checksum {
        return Err(Damage::Checksum {
            sealed: sealed_checksum,
            found,
        });
    }
    Ok(file)
}

/// Why a sealed file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Damaged(#[from] Damage),
}

/// The checked payload of the sealed file at `path`, as the bytes Burn's records
/// read from.
pub(crate) fn read(path: &Path) -> Result<Bytes, ReadError> {
    let payload = open(std::fs::read(path)?)?;
    Ok(Bytes::from_bytes_vec(payload))
}

/// Writes `payload` sealed to `path`, atomically.
pub(crate) fn write(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    data::fs::write_atomically(path, &seal(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_payload_opens_to_itself() {
        let payload = b"burnpack bytes".to_vec();
        assert_eq!(open(seal(&payload)), Ok(payload));
    }

    #[test]
    fn every_flipped_bit_of_the_payload_is_damage() {
        let sealed = seal(&(0..=255u8).collect::<Vec<_>>());
        for bit in 0..256 * 8 {
            let mut file = sealed.clone();
            file[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(open(file), Err(Damage::Checksum { .. })),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_cut_or_grown_file_is_damage() {
        let sealed = seal(&[7; 100]);
        let mut cut = sealed.clone();
        cut.drain(10..20);
        assert!(matches!(open(cut), Err(Damage::Length { .. })));
        let mut grown = sealed[..100].to_vec();
        grown.push(0);
        grown.extend_from_slice(&sealed[100..]);
        assert!(matches!(open(grown), Err(Damage::Length { .. })));
    }

    #[test]
    fn a_file_written_before_seals_is_read_as_it_is() {
        let legacy = vec![1u8; 64];
        assert_eq!(open(legacy.clone()), Ok(legacy));
        assert_eq!(open(vec![1, 2]), Ok(vec![1, 2]));
    }
}
