//! `--replay FILE`: publishes a recording's messages to subscribers with the
//! recorded spacing, their original `from`, and `ts` stamped at sending.
//!
//! The whole file is checked before the gateway starts (one clear error naming
//! the line; an incomplete last line is skipped with a warning). Then a thread of
//! its own streams the file: each message has a planned instant, `start of the
//! pass + (t - --start) / --speed`, on the monotonic clock, and the thread sleeps
//! until it. Planned instants never depend on when the previous message actually
//! went out, so lateness (a busy machine) is caught up and never accumulates.
//! The clock starts when a client first subscribes to a channel the replay plays,
//! so nothing plays to an empty room.

use crate::hub::Hub;
use crate::recording::{self, Channels, Recorded};
use crate::throttle::Throttle;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages the hub refused: one stderr line per interval, not per message.
static REFUSALS: Throttle = Throttle::new();

const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often a waiting replay looks for its first subscriber.
const AUDIENCE_POLL: Duration = Duration::from_millis(10);
/// Shortest loop pass, so a zero-length recording cannot spin a core.
const MIN_PASS: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    pub path: PathBuf,
    /// 1 = as recorded, 2 = twice as fast, 0 = as fast as possible.
    pub speed: f64,
    pub looping: bool,
    /// Seconds into the recording to begin at.
    pub start: f64,
    pub channels: Channels,
}

/// What the check of the file found.
#[derive(Debug, PartialEq)]
pub struct Summary {
    /// Messages a pass plays (after `--start` and `--channels`).
    pub messages: u64,
    /// `t` of the recording's last message.
    pub duration: f64,
    pub channels: HashSet<String>,
    /// The 1-based number of an incomplete last line that is skipped.
    pub incomplete_line: Option<u64>,
}

/// Reads the whole file once; `Err` is one message naming the file and the line.
pub fn check(options: &ReplayOptions) -> Result<Summary, String> {
    let name = options.path.display();
    let file = File::open(&options.path).map_err(|error| format!("--replay {name}: {error}"))?;
    let mut lines = Lines::new(file);
    let header = match lines.next().map_err(|error| format!("--replay {name}: {error}"))? {
        None => return Err(format!("--replay {name}: the file is empty (line 1 should be the recording header)")),
        Some(line) => line,
    };
    let in_file = |number: u64, why: String| format!("--replay {name} line {number}: {why}");
    if !header.complete {
        return Err(in_file(1, "the header line is incomplete".into()));
    }
    recording::check_header(&header.text).map_err(|why| in_file(1, why))?;
    let mut summary = Summary { messages: 0, duration: 0.0, channels: HashSet::new(), incomplete_line: None };
    while let Some(line) = lines.next().map_err(|error| format!("--replay {name}: {error}"))? {
        match recording::parse_line(&line.text) {
            Ok(None) => {}
            Ok(Some(recorded)) => {
                summary.duration = summary.duration.max(recorded.t);
                if recorded.t >= options.start && options.channels.matches(&recorded.channel) {
                    summary.messages += 1;
                    summary.channels.insert(recorded.channel);
                }
            }
            // A crash while recording leaves a last line without its newline.
            Err(why) if !line.complete => {
                crate::log(format_args!(
                    "--replay {name} line {}: incomplete last line skipped (the recording was interrupted?): {why}",
                    line.number
                ));
                summary.incomplete_line = Some(line.number);
            }
            Err(why) => return Err(in_file(line.number, why)),
        }
    }
    if summary.messages == 0 {
        return Err(format!("--replay {name}: no message to play on the chosen channels at or after --start"));
    }
    if options.start > summary.duration {
        return Err(format!(
            "--replay {name}: --start {} is past the recording's end ({:.3} s)",
            options.start, summary.duration
        ));
    }
    Ok(summary)
}

struct Line {
    number: u64,
    text: String,
    /// Ends with a newline (only the last line of a file may not).
    complete: bool,
}

struct Lines {
    reader: BufReader<File>,
    number: u64,
    buffer: Vec<u8>,
}

impl Lines {
    fn new(file: File) -> Self {
        Lines { reader: BufReader::with_capacity(256 * 1024, file), number: 0, buffer: Vec::new() }
    }

    fn next(&mut self) -> std::io::Result<Option<Line>> {
        self.buffer.clear();
        if self.reader.read_until(b'\n', &mut self.buffer)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let complete = self.buffer.last() == Some(&b'\n');
        if complete {
            self.buffer.pop();
            if self.buffer.last() == Some(&b'\r') {
                self.buffer.pop();
            }
        }
        // Not UTF-8 is reported by the line parser as "not a JSON object".
        let text = String::from_utf8_lossy(&self.buffer).into_owned();
        Ok(Some(Line { number: self.number, text, complete }))
    }
}

const WAITING: u8 = 0;
const PLAYING: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    /// Messages the hub refused to deliver (over `--max-message-bytes`, bad base64).
    skipped: AtomicU64,
    passes: AtomicU64,
    state: AtomicU8,
}

/// A checked replay, ready to start.
pub struct Player {
    options: ReplayOptions,
    summary: Summary,
    counters: Arc<Counters>,
}

/// Stats of a running replay.
pub struct ReplayStats {
    path: PathBuf,
    messages: u64,
    counters: Arc<Counters>,
}

impl ReplayStats {
    pub fn stats(&self) -> Value {
        let state = match self.counters.state.load(Ordering::Relaxed) {
            WAITING => "waiting",
            PLAYING => "playing",
            DONE => "done",
            _ => "failed",
        };
        json!({
            "file": self.path.display().to_string(),
            "state": state,
            "messages_per_pass": self.messages,
            "sent": self.counters.sent.load(Ordering::Relaxed),
            "skipped": self.counters.skipped.load(Ordering::Relaxed),
            "passes": self.counters.passes.load(Ordering::Relaxed),
        })
    }
}

impl Player {
    pub fn prepare(options: ReplayOptions) -> Result<Player, String> {
        let summary = check(&options)?;
        Ok(Player { options, summary, counters: Arc::new(Counters::default()) })
    }

    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            path: self.options.path.clone(),
            messages: self.summary.messages,
            counters: self.counters.clone(),
        }
    }

    pub fn spawn(self, hub: Arc<Hub>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("datanet-replay".into()).spawn(move || {
            let result = self.run(&hub);
            let counters = &self.counters;
            match result {
                Ok(()) => counters.state.store(DONE, Ordering::Relaxed),
                Err(why) => {
                    counters.state.store(FAILED, Ordering::Relaxed);
                    crate::log(format_args!("replay stopped: {why}"));
                }
            }
        })
    }

    fn run(&self, hub: &Hub) -> Result<(), String> {
        let summary = &self.summary;
        say(format_args!(
            "replay: {} messages over {:.1} s on {} channel(s); waiting for a subscriber",
            summary.messages,
            self.pass_length_secs(),
            summary.channels.len()
        ));
        while !hub.any_subscribed(|channel| summary.channels.contains(channel)) {
            std::thread::sleep(AUDIENCE_POLL);
        }
        self.counters.state.store(PLAYING, Ordering::Relaxed);
        let mut next_progress = Instant::now() + PROGRESS_EVERY;
        let mut pass_start = Instant::now();
        loop {
            pass_start = self.play_pass(hub, pass_start, &mut next_progress)?;
            self.counters.passes.fetch_add(1, Ordering::Relaxed);
            if !self.options.looping {
                break;
            }
        }
        say(format_args!(
            "-- replay done | {:.1} s | sent {}",
            self.pass_length_secs(),
            self.counters.sent.load(Ordering::Relaxed)
        ));
        Ok(())
    }

    /// Plays the file once from `pass_start`; returns when the next pass starts.
    fn play_pass(&self, hub: &Hub, pass_start: Instant, next_progress: &mut Instant) -> Result<Instant, String> {
        let options = &self.options;
        let name = options.path.display();
        let file = File::open(&options.path).map_err(|error| format!("{name}: {error}"))?;
        let mut lines = Lines::new(file);
        lines.next().map_err(|error| format!("{name}: {error}"))?;
        while let Some(line) = lines.next().map_err(|error| format!("{name}: {error}"))? {
            let recorded = match recording::parse_line(&line.text) {
                Ok(Some(recorded)) => recorded,
                Ok(None) => continue,
                Err(_) if !line.complete && self.summary.incomplete_line == Some(line.number) => continue,
                Err(why) => {
                    return Err(format!("{name} line {}: {why} (the file changed during the replay?)", line.number))
                }
            };
            if recorded.t < options.start || !options.channels.matches(&recorded.channel) {
                continue;
            }
            let planned = pass_start + self.scaled(recorded.t - options.start);
            self.sleep_until(planned, pass_start, next_progress);
            self.send(hub, recorded);
        }
        let next_pass = pass_start + self.scaled(self.summary.duration - options.start).max(MIN_PASS);
        if options.looping && options.speed > 0.0 {
            self.sleep_until(next_pass, pass_start, next_progress);
            Ok(next_pass)
        } else {
            Ok(Instant::now().max(pass_start + MIN_PASS))
        }
    }

    fn send(&self, hub: &Hub, recorded: Recorded) {
        let Recorded { channel, from, payload, .. } = recorded;
        match hub.inject(&channel, &from, crate::unix_now_ms(), payload) {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                REFUSALS.warn_with("replay", "a message skipped", &format!("on {channel}: {why}"));
            }
        }
    }

    /// Recording time as replay time.
    fn scaled(&self, recording_secs: f64) -> Duration {
        if self.options.speed == 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((recording_secs / self.options.speed).max(0.0))
    }

    fn pass_length_secs(&self) -> f64 {
        self.summary.duration - self.options.start
    }

    /// Sleeps until `until`, printing the progress line whenever one is due.
    fn sleep_until(&self, until: Instant, pass_start: Instant, next_progress: &mut Instant) {
        loop {
            let now = Instant::now();
            if now >= *next_progress {
                self.print_progress(now, pass_start);
                // On a fresh grid: a stall is not followed by a burst of lines.
                *next_progress = now + PROGRESS_EVERY;
            }
            if now >= until {
                return;
            }
            std::thread::sleep(until.min(*next_progress) - now);
        }
    }

    fn print_progress(&self, now: Instant, pass_start: Instant) {
        let length = self.pass_length_secs();
        let speed = if self.options.speed == 0.0 { f64::INFINITY } else { self.options.speed };
        let position = ((now - pass_start).as_secs_f64() * speed).min(length);
        let pass = self.counters.passes.load(Ordering::Relaxed) + 1;
        let pass = if self.options.looping { format!(" | pass {pass}") } else { String::new() };
        say(format_args!(
            "-- replay {:.1} / {:.1} s{pass} | sent {}",
            self.options.start + position,
            self.summary.duration,
            self.counters.sent.load(Ordering::Relaxed)
        ));
    }
}

/// One line on stdout (the first stdout line is the gateway's address, printed
/// before any replay starts).
fn say(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::Pattern;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("datanet-replay-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn options(path: PathBuf) -> ReplayOptions {
        ReplayOptions { path, speed: 1.0, looping: false, start: 0.0, channels: Channels::default() }
    }

    const HEADER: &str = "{\"format\":\"datanet-recording\",\"version\":1}\n";

    #[test]
    fn summarises_a_recording() {
        let path = write(
            "summary",
            &format!(
                "{HEADER}{}\n\n{}\n{}\n{}",
                r#"{"t":0.5,"ch":"a","d":1}"#,
                r#"{"t":1.0,"ch":"b","d":2}"#,
                r#"{"t":2.0,"ch":"a","b64":"AQ=="}"#,
                r#"{"t":2.5,"ch":"a","d":[1,"#
            ),
        );
        let summary = check(&options(path.clone())).unwrap();
        assert_eq!(summary.messages, 3);
        assert_eq!(summary.duration, 2.0);
        assert_eq!(summary.incomplete_line, Some(6));
        let mut filtered = options(path.clone());
        filtered.channels = Channels::new(vec![Pattern::parse("a").unwrap()]);
        filtered.start = 0.75;
        let summary = check(&filtered).unwrap();
        assert_eq!((summary.messages, summary.channels.len()), (1, 1));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn names_the_bad_line() {
        for (name, text, expected) in [
            ("empty", String::new(), "the file is empty".to_string()),
            (
                "version",
                "{\"format\":\"datanet-recording\",\"version\":2}\n".to_string(),
                "line 1: recording format version 2".into(),
            ),
            ("notrec", "hello\n".to_string(), "line 1: not a DataNet recording".into()),
            (
                "corrupt",
                format!(
                    "{HEADER}{{\"t\":0,\"ch\":\"a\",\"d\":1}}\n{{\"t\":1,\"ch\":\n{{\"t\":2,\"ch\":\"a\",\"d\":1}}\n"
                ),
                "line 3: not a JSON object".into(),
            ),
            ("nothing", HEADER.to_string(), "no message to play".into()),
        ] {
            let path = write(name, &text);
            let error = check(&options(path.clone())).unwrap_err();
            assert!(error.contains(&expected), "{name}: {error}");
            std::fs::remove_file(path).unwrap();
        }
        let missing = check(&options(PathBuf::from("/nonexistent/recording.jsonl"))).unwrap_err();
        assert!(missing.contains("/nonexistent/recording.jsonl"), "{missing}");
    }
}
