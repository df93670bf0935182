//! `--record FILE`: every message the hub relays, appended to a recording
//! (format in `recording.rs`).
//!
//! The hub's hook only stamps the message's time and hands its frame to a bounded
//! queue (`try_send`, never a wait); a writer thread turns frames into lines and
//! writes them. A full queue drops and counts, so recording never slows the relay.
//! The writer flushes whenever the queue runs empty, and at least every second
//! under sustained load, so a crash loses at most the last second.

use crate::recording::{self, Channels};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Frames waiting for the writer, by count and by bytes.
const QUEUE_FRAMES: usize = 65_536;
const QUEUE_BYTES: u64 = 64 << 20;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Pause inserted on the timeline between the end of a file and a session appended to it.
const APPEND_GAP: Duration = Duration::from_secs(1);
/// Longest header line read when appending to an existing file.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub channels: Channels,
}

const RECORDING: u8 = 0;
const CAPPED: u8 = 1;
const FAILED: u8 = 2;

#[derive(Default)]
struct Counters {
    recorded: AtomicU64,
    /// The writer fell behind: the queue was full.
    dropped: AtomicU64,
    /// Not written because the file reached its cap (or writing failed).
    skipped: AtomicU64,
    queued_bytes: AtomicU64,
    file_bytes: AtomicU64,
    state: AtomicU8,
}

struct Item {
    offset: Duration,
    frame: Message,
}

/// The hub's side of the recorder.
pub struct Recorder {
    path: PathBuf,
    max_bytes: u64,
    channels: Channels,
    /// `t` of a frame = `base` + time since `started`.
    started: Instant,
    base: Duration,
    queue: crossbeam_channel::Sender<Item>,
    counters: Arc<Counters>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Owns the file until `spawn` hands it to the writer thread.
pub struct Writer {
    file: BufWriter<File>,
    path: PathBuf,
    max_bytes: u64,
    queue: crossbeam_channel::Receiver<Item>,
    counters: Arc<Counters>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Opens (or creates) the recording. An existing file must be a recording of this
/// version; its timeline continues after its last message.
pub fn open(options: &RecordOptions, project: &str) -> Result<(Recorder, Writer), String> {
    let path = &options.path;
    let context = |error: std::io::Error| format!("--record {}: {error}", path.display());
    let mut file =
        OpenOptions::new().read(true).create(true).truncate(false).write(true).open(path).map_err(context)?;
    let base = continue_existing(&mut file, path)?;
    let mut size = file.seek(SeekFrom::End(0)).map_err(context)?;
    if size == 0 {
        let header = recording::header_line(project, crate::unix_now_ms());
        file.write_all(header.as_bytes()).map_err(context)?;
        size = header.len() as u64;
    }
    let counters = Arc::new(Counters::default());
    counters.file_bytes.store(size, Ordering::Relaxed);
    let failure = Arc::new(Mutex::new(None));
    let (sender, receiver) = crossbeam_channel::bounded(QUEUE_FRAMES);
    let recorder = Recorder {
        path: path.clone(),
        max_bytes: options.max_bytes,
        channels: options.channels.clone(),
        started: Instant::now(),
        base,
        queue: sender,
        counters: counters.clone(),
        failure: failure.clone(),
    };
    let writer = Writer {
        file: BufWriter::new(file),
        path: path.clone(),
        max_bytes: options.max_bytes,
        queue: receiver,
        counters,
        failure,
    };
    if size >= options.max_bytes {
        writer.stop(CAPPED, &format!("{} is already at --record-max-bytes ({} bytes)", path.display(), size));
    }
    Ok((recorder, writer))
}

/// For a non-empty file: checks its header, cuts off an incomplete last line (a
/// recording interrupted mid-write), and returns where the new session's
/// timeline starts.
fn continue_existing(file: &mut File, path: &Path) -> Result<Duration, String> {
    let refuse = |why: String| format!("--record {}: cannot append: {why}", path.display());
    let io = |error: std::io::Error| refuse(error.to_string());
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    if size == 0 {
        return Ok(Duration::ZERO);
    }
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Read::by_ref(file).take(MAX_HEADER_BYTES).read_to_end(&mut head).map_err(io)?;
    let header_end = head.iter().position(|&byte| byte == b'\n');
    let header = std::str::from_utf8(&head[..header_end.unwrap_or(head.len())]).unwrap_or("");
    recording::check_header(header).map_err(|why| refuse(format!("line 1: {why}")))?;
    if header_end.is_none() {
        return Err(refuse("line 1: the header line is incomplete".into()));
    }
    let (last_line, complete_len) = last_line(file, size).map_err(io)?;
    if complete_len < size {
        file.set_len(complete_len).map_err(io)?;
        crate::log(format_args!(
            "--record {}: removed an incomplete last line ({} bytes) left by an interrupted recording",
            path.display(),
            size - complete_len
        ));
    }
    if recording::check_header(&last_line).is_ok() {
        return Ok(Duration::ZERO);
    }
    match recording::parse_line(&last_line) {
        Ok(Some(last)) => Ok(Duration::from_secs_f64(last.t) + APPEND_GAP),
        Ok(None) => Ok(APPEND_GAP),
        Err(why) => Err(refuse(format!("its last line is not a recording line: {why}"))),
    }
}

/// The last complete line of the file (without its newline), and the length of
/// the file up to and including that line's newline.
fn last_line(file: &mut File, size: u64) -> std::io::Result<(String, u64)> {
    const CHUNK: u64 = 64 * 1024;
    let mut tail: Vec<u8> = Vec::new();
    let mut start = size;
    // Newlines found so far, as offsets into the file, newest first.
    let mut newlines: Vec<u64> = Vec::new();
    while start > 0 && newlines.len() < 2 {
        let read_from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - read_from) as usize];
        file.seek(SeekFrom::Start(read_from))?;
        file.read_exact(&mut chunk)?;
        for (index, byte) in chunk.iter().enumerate().rev() {
            if *byte == b'\n' {
                newlines.push(read_from + index as u64);
                if newlines.len() == 2 {
                    break;
                }
            }
        }
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = read_from;
    }
    // `tail` holds the file from `start` on. The last complete line ends at the
    // newest newline and begins after the one before it (or at the file start).
    let Some(&end) = newlines.first() else {
        return Ok((String::new(), 0));
    };
    let begin = newlines.get(1).map_or(0, |&newline| newline + 1);
    let line = &tail[(begin - start) as usize..(end - start) as usize];
    Ok((String::from_utf8_lossy(line).into_owned(), end + 1))
}

impl Recorder {
    /// The hub's hook, called for every relayed message in delivery order. Never waits.
    pub fn offer(&self, channel: &str, frame: &Message) {
        if !self.channels.matches(channel) {
            return;
        }
        let counters = &self.counters;
        if counters.state.load(Ordering::Relaxed) != RECORDING {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bytes = frame.len() as u64;
        if counters.queued_bytes.load(Ordering::Relaxed) + bytes > QUEUE_BYTES {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let item = Item { offset: self.base + self.started.elapsed(), frame: frame.clone() };
        match self.queue.try_send(item) {
            Ok(()) => {
                counters.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> Value {
        let counters = &self.counters;
        let state = match counters.state.load(Ordering::Relaxed) {
            RECORDING => "recording",
            CAPPED => "capped",
            _ => "failed",
        };
        json!({
            "file": self.path.display().to_string(),
            "state": state,
            "recorded": counters.recorded.load(Ordering::Relaxed),
            "dropped": counters.dropped.load(Ordering::Relaxed),
            "skipped": counters.skipped.load(Ordering::Relaxed),
            "bytes": counters.file_bytes.load(Ordering::Relaxed),
            "max_bytes": self.max_bytes,
            "error": *self.failure.lock().unwrap_or_else(PoisonError::into_inner),
        })
    }
}

impl Writer {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("datanet-recorder".into()).spawn(move || self.run())
    }

    fn run(mut self) {
        while let Ok(first) = self.queue.recv() {
            let mut flush_due = Instant::now() + FLUSH_EVERY;
            self.write(first);
            while let Ok(item) = self.queue.try_recv() {
                self.write(item);
                if Instant::now() >= flush_due {
                    self.flush();
                    flush_due = Instant::now() + FLUSH_EVERY;
                }
            }
            self.flush();
        }
        self.flush();
    }

    fn write(&mut self, item: Item) {
        let counters = self.counters.clone();
        counters.queued_bytes.fetch_sub(item.frame.len() as u64, Ordering::Relaxed);
        if counters.state.load(Ordering::Relaxed) != RECORDING {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let line = match item
            .frame
            .to_text()
            .map_err(|e| e.to_string())
            .and_then(|frame| recording::line_from_frame(frame, item.offset))
        {
            Ok(line) => line,
            Err(why) => {
                // Only the hub's own envelopes reach here: a failure is a bug, made visible.
                crate::log(format_args!("recording: skipped a frame: {why}"));
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let size = counters.file_bytes.load(Ordering::Relaxed);
        if size + line.len() as u64 > self.max_bytes {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            let why = format!("{} reached --record-max-bytes ({} bytes)", self.path.display(), self.max_bytes);
            self.stop(CAPPED, &why);
            return;
        }
        if let Err(error) = self.file.write_all(line.as_bytes()) {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            self.stop(FAILED, &format!("writing {} failed: {error}", self.path.display()));
            return;
        }
        counters.file_bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        counters.recorded.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&mut self) {
        if let Err(error) = self.file.flush() {
            if self.counters.state.load(Ordering::Relaxed) == RECORDING {
                self.stop(FAILED, &format!("writing {} failed: {error}", self.path.display()));
            }
        }
    }

    /// Stops recording for good, saying so once on stderr; later messages are
    /// counted as skipped.
    fn stop(&self, state: u8, why: &str) {
        if self.counters.state.swap(state, Ordering::Relaxed) == RECORDING {
            crate::log(format_args!("recording stopped: {why}; later messages are counted as skipped"));
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::json_message;
    use serde_json::value::RawValue;

    fn temp_path(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("datanet-record-{}-{name}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn options(path: &Path, max_bytes: u64) -> RecordOptions {
        RecordOptions { path: path.to_path_buf(), max_bytes, channels: Channels::default() }
    }

    fn frame(n: u64) -> Message {
        let data = RawValue::from_string(n.to_string()).unwrap();
        Message::text(json_message("ch", &data, n, "c-1"))
    }

    fn record(path: &Path, max_bytes: u64, count: u64) -> Value {
        let (recorder, writer) = open(&options(path, max_bytes), "demo").unwrap();
        let thread = writer.spawn().unwrap();
        for n in 0..count {
            recorder.offer("ch", &frame(n));
        }
        let mut recorder = recorder;
        // Dropping the last sender ends the writer once the queue is drained.
        drop(std::mem::replace(&mut recorder.queue, crossbeam_channel::bounded(1).0));
        thread.join().unwrap();
        recorder.stats()
    }

    #[test]
    fn appends_and_continues_the_timeline() {
        let path = temp_path("append");
        record(&path, 1 << 20, 2);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"t":7.5,"ch":"ch","d":"#); // a line cut off by a crash
        std::fs::write(&path, &text).unwrap();
        record(&path, 1 << 20, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "one header, three messages, the cut line gone: {text}");
        assert!(recording::check_header(lines[0]).is_ok());
        let t = |line: &str| recording::parse_line(line).unwrap().unwrap().t;
        assert!(t(lines[3]) >= t(lines[2]) + APPEND_GAP.as_secs_f64(), "{text}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn refuses_to_append_to_other_files() {
        let path = temp_path("other");
        std::fs::write(&path, "hello\n").unwrap();
        let error = open(&options(&path, 1 << 20), "demo").err().unwrap();
        assert!(error.contains("line 1: not a DataNet recording"), "{error}");
        std::fs::write(&path, "{\"format\":\"datanet-recording\",\"version\":9}\n").unwrap();
        let error = open(&options(&path, 1 << 20), "demo").err().unwrap();
        assert!(error.contains("line 1: recording format version 9"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn stops_at_the_cap_and_counts_the_rest() {
        let path = temp_path("cap");
        let header = recording::header_line("demo", 0).len() as u64;
        let line = recording::line_from_frame(frame(0).to_text().unwrap(), Duration::ZERO).unwrap().len() as u64;
        let stats = record(&path, header + 3 * line + line / 2, 10);
        assert_eq!(stats["state"], "capped");
        assert_eq!(stats["recorded"], 3);
        assert_eq!(stats["skipped"].as_u64().unwrap() + stats["dropped"].as_u64().unwrap(), 7);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), stats["bytes"].as_u64().unwrap());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn finds_the_last_line() {
        let path = temp_path("last");
        for (text, line, complete) in
            [("a\nbb\n", "bb", 5), ("a\nbb\ncc", "bb", 5), ("a\n", "a", 2), ("abc", "", 0), ("\n", "", 1)]
        {
            std::fs::write(&path, text).unwrap();
            let mut file = File::open(&path).unwrap();
            assert_eq!(last_line(&mut file, text.len() as u64).unwrap(), (line.to_string(), complete), "{text:?}");
        }
        let long = format!("h\n{}\nx", "y".repeat(200_000));
        std::fs::write(&path, &long).unwrap();
        let mut file = File::open(&path).unwrap();
        let (line, complete) = last_line(&mut file, long.len() as u64).unwrap();
        assert_eq!((line.len(), complete), (200_000, long.len() as u64 - 1));
        std::fs::remove_file(&path).unwrap();
    }
}
