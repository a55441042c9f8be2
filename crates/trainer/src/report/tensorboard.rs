//! TensorBoard event files: scalar summaries written as `tensorflow.Event` protos in
//! TFRecord framing, which `tensorboard --logdir` reads without TensorFlow; and the
//! pruning of points past a step, so that a resumed run does not repeat them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// The version string TensorBoard expects in the first event of every file.
const FILE_VERSION: &str = "brain.Event:2";

/// Numbers the event files this process creates, so that two writers created in the
/// same second get different names.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The fields of `tensorflow.Event` (tensorflow/core/util/event.proto) that scalars use.
#[derive(PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

/// The `what` oneof of `tensorflow.Event`, reduced to the two members written here.
#[derive(PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary` (tensorflow/core/framework/summary.proto).
#[derive(PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorflow.Summary.Value`, with only `tag` and `simple_value`. `simple_value` is a
/// member of the `value` oneof in the real proto, hence `optional` here: it is then
/// written even when it is 0.0, which a plain proto3 `float` would leave out (and
/// TensorBoard would drop the point).
#[derive(PartialEq, Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// Appends scalar summaries to one new TensorBoard event file.
///
/// Records go through a buffer: call [`EventWriter::flush`] to make them visible to
/// a reader. Dropping the writer flushes too, but ignores errors.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it (never appends to an existing
    /// one: a resumed run writes a second file, and TensorBoard merges the files of a
    /// directory, in the order of their names).
    ///
    /// The first record, the file version, is written and flushed before this returns.
    pub fn create(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let host = hostname();
        let pid = std::process::id();
        let (path, file) = loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        };
        let mut writer = Self {
            path,
            out: BufWriter::new(file),
        };
        writer.write_event(&Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.to_owned())),
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// One scalar point; `wall_time` is taken now. TensorBoard stores the value as an
    /// `f32`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> io::Result<()> {
        let step = i64::try_from(step).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("step {step} does not fit TensorBoard's int64"),
            )
        })?;
        self.write_event(&Event {
            wall_time: now(),
            step,
            what: Some(What::Summary(Summary {
                value: vec![Value {
                    tag: tag.to_owned(),
                    simple_value: Some(value as f32),
                }],
            })),
        })
    }

    /// Pushes what was written to the OS, so a reader (or a crash) sees whole records.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The event file this writer writes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event as one record, in a single write to the buffer.
    fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.out.write_all(&record(&event.encode_to_vec()))
    }
}

/// Frames `data` as a TFRecord: the length as a little-endian u64, its masked CRC32C,
/// the data, and the data's masked CRC32C.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// CRC32C of `data`, masked as TFRecord does (a CRC of data that holds CRCs is weak).
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Seconds since the Unix epoch, as `Event.wall_time` holds them.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The host name for the file name, from Linux's procfs; "localhost" where that is
/// unreadable or empty. Only characters that are safe in a file name are kept.
fn hostname() -> String {
    let name: String = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Removes from every event file in `dir` the points logged after `step`: those of an
/// epoch that a killed run had begun and that its resumption trains again. Each file
/// is rewritten atomically; a directory without event files is left as it is.
pub(crate) fn prune_after(dir: &Path, step: u64) -> io::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let last = i64::try_from(step).unwrap_or(i64::MAX);
    for entry in entries {
        let path = entry?.path();
        let is_events = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("events.out.tfevents."));
        if !is_events {
            continue;
        }
        let bytes = fs::read(&path)?;
        let damaged = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a TensorBoard event file: {what}", path.display()),
            )
        };
        let mut kept = Vec::with_capacity(bytes.len());
        for data in records(&bytes).map_err(damaged)? {
            let event = Event::decode(data).map_err(|_| damaged("a record is no event"))?;
            if event.step <= last || !matches!(event.what, Some(What::Summary(_))) {
                kept.extend(record(data));
            }
        }
        if kept.len() != bytes.len() {
            crate::fs::write_atomically(&path, &kept)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
    }
    Ok(())
}

/// The data of each TFRecord in `bytes`, with both CRCs checked. A record cut short
/// at the end (a writer killed mid-record) ends the list.
fn records(mut bytes: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut found = Vec::new();
    while bytes.len() >= 12 {
        let (len, rest) = bytes.split_at(8);
        let (len_crc, rest) = rest.split_at(4);
        if len_crc != masked_crc(len).to_le_bytes() {
            return Err("a record length fails its checksum");
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(len);
        let Ok(len) = usize::try_from(u64::from_le_bytes(raw)) else {
            return Err("a record is longer than memory");
        };
        if rest.len() < len.saturating_add(4) {
            break;
        }
        let (data, rest) = rest.split_at(len);
        let (data_crc, rest) = rest.split_at(4);
        if data_crc != masked_crc(data).to_le_bytes() {
            return Err("a record fails its checksum");
        }
        found.push(data);
        bytes = rest;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &[u8]) -> Vec<Event> {
        records(bytes)
            .expect("intact")
            .into_iter()
            .map(|data| Event::decode(data).expect("an Event"))
            .collect()
    }

    #[test]
    fn crc32c_of_the_check_string() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn record_framing_byte_by_byte() {
        // The CRCs were computed apart from this crate, by a bitwise CRC32C in Python
        // and by tensorboard's own `masked_crc32c`.
        let expected: Vec<u8> = [
            &[9, 0, 0, 0, 0, 0, 0, 0][..],
            &[0x37, 0xf9, 0x71, 0x39], // masked crc32c of the length bytes: 0x3971f937
            b"123456789",
            &[0xe5, 0xb0, 0x8a, 0xc7], // mask(0xe3069283) = 0xc78ab0e5
        ]
        .concat();
        assert_eq!(record(b"123456789"), expected);
    }

    #[test]
    fn a_zero_value_is_still_written() {
        let value = Value {
            tag: "t".to_owned(),
            simple_value: Some(0.0),
        };
        // tag 1 (length-delimited) "t", then tag 2 (fixed32) and four zero bytes.
        assert_eq!(value.encode_to_vec(), [0x0a, 1, b't', 0x15, 0, 0, 0, 0]);
    }

    #[test]
    fn round_trip_through_prost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("nested/logs");
        let mut writer = EventWriter::create(&logs).expect("create");
        for step in 1..=3 {
            writer
                .scalar("train/loss", step, 1.0 / step as f64)
                .expect("scalar");
        }
        writer.scalar("train/lr", 7, 0.0).expect("scalar");
        writer.flush().expect("flush");

        let events = events(&fs::read(writer.path()).expect("read"));
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].step, 0);
        assert_eq!(
            events[0].what,
            Some(What::FileVersion(FILE_VERSION.to_owned()))
        );
        let points: Vec<(String, i64, Option<f32>)> = events[1..]
            .iter()
            .map(|event| match &event.what {
                Some(What::Summary(summary)) => {
                    assert_eq!(summary.value.len(), 1);
                    assert!(event.wall_time > 1.5e9, "wall_time is seconds since 1970");
                    let value = &summary.value[0];
                    (value.tag.clone(), event.step, value.simple_value)
                }
                other => panic!("not a summary: {other:?}"),
            })
            .collect();
        let expected = [
            ("train/loss", 1, 1.0),
            ("train/loss", 2, 0.5),
            ("train/loss", 3, (1.0_f64 / 3.0) as f32),
            ("train/lr", 7, 0.0),
        ]
        .map(|(tag, step, value)| (tag.to_owned(), step, Some(value)));
        assert_eq!(points, expected);
    }

    #[test]
    fn writers_in_one_second_get_their_own_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = EventWriter::create(dir.path()).expect("first");
        let second = EventWriter::create(dir.path()).expect("second");
        assert_ne!(first.path(), second.path());
        for writer in [&first, &second] {
            let name = writer.path().file_name().expect("a file name");
            assert!(name.to_string_lossy().starts_with("events.out.tfevents."));
            assert_eq!(events(&fs::read(writer.path()).expect("read")).len(), 1);
        }
        assert!(first.scalar("x", u64::MAX, 1.0).is_err(), "beyond int64");
    }

    #[test]
    fn pruning_keeps_the_points_up_to_a_step_and_the_file_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create(dir.path()).expect("create");
        for step in 1..=10 {
            writer
                .scalar("train/loss", step, step as f64)
                .expect("scalar");
        }
        writer.flush().expect("flush");
        let path = writer.path().to_path_buf();
        drop(writer);
        prune_after(dir.path(), 6).expect("prunes");
        let kept = events(&fs::read(&path).expect("read"));
        assert_eq!(kept.len(), 7, "the file version and steps 1 to 6");
        assert_eq!(kept.last().map(|e| e.step), Some(6));
        let mut cut = fs::read(&path).expect("read");
        cut.truncate(cut.len() - 3);
        assert_eq!(
            events(&cut).len(),
            6,
            "a half-written last record is dropped"
        );
        fs::write(&path, b"garbage that is not a record").expect("write");
        assert!(prune_after(dir.path(), 6).is_err());
    }
}
