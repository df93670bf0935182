//! The show tools (docs/GATEWAY.md): recording (`record.rs`), replay
//! (`replay.rs`) and the venue relay (`upstream.rs`). This module holds their
//! options (parsed with the others in `cli.rs`), checks everything before the
//! gateway starts listening, starts them afterwards, and is the one place the hub
//! calls into them.

use crate::hub::Hub;
use crate::record::{self, RecordOptions, Recorder};
use crate::recording::{Channels, Pattern};
use crate::replay::{Player, ReplayOptions, ReplayStats};
use crate::upstream::{self, Relay, UpstreamOptions};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

/// Flags someone might try for the upstream key; refused without echoing the value.
const KEY_FLAGS: [&str; 4] = ["--upstream-key", "--upstream-api-key", "--api-key", "--key"];

pub const DEFAULT_RECORD_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShowOptions {
    pub record: Option<PathBuf>,
    pub record_max_bytes: Option<u64>,
    pub replay: Option<PathBuf>,
    pub speed: Option<f64>,
    pub looping: bool,
    pub start: Option<f64>,
    pub channels: Vec<Pattern>,
    pub upstream: UpstreamOptions,
}

/// The refusal for a key given on the command line, if `flag` is such an attempt.
pub fn refuse_key_flag(flag: &str) -> Option<String> {
    KEY_FLAGS.contains(&flag).then(|| {
        format!(
            "{flag}: the upstream API key is never taken on the command line (process lists and shell \
             history would show it): set DATANET_UPSTREAM_API_KEY or use --upstream-key-file"
        )
    })
}

impl ShowOptions {
    pub fn add_channel(&mut self, pattern: &str) -> Result<(), String> {
        self.channels.push(Pattern::parse(pattern)?);
        Ok(())
    }
}

/// `1024`, `64K`, `500M`, `1G` (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 1u64 << 10),
        (at, 'm' | 'M') => (&text[..at], 1 << 20),
        (at, 'g' | 'G') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Everything checked and opened, not yet running.
pub struct Prepared {
    recorder: Option<(Recorder, record::Writer)>,
    player: Option<Player>,
    relay: Option<Relay>,
}

/// Checks the flags together, reads the replay file through, opens the
/// recording and builds the relay's client. Runs before the gateway listens, so
/// a mistake is one clear error and no half-started gateway.
pub fn prepare(options: &ShowOptions, project: &str) -> Result<Prepared, String> {
    let replaying = options.replay.is_some();
    let recording = options.record.is_some();
    if !replaying {
        for (given, flag) in
            [(options.speed.is_some(), "--speed"), (options.looping, "--loop"), (options.start.is_some(), "--start")]
        {
            if given {
                return Err(format!("{flag} needs --replay FILE"));
            }
        }
    }
    if options.record_max_bytes.is_some() && !recording {
        return Err("--record-max-bytes needs --record FILE".into());
    }
    if !options.channels.is_empty() && !replaying && !recording {
        return Err("--channels needs --record or --replay".into());
    }
    if let (Some(record), Some(replay)) = (&options.record, &options.replay) {
        let same = match (std::fs::canonicalize(record), std::fs::canonicalize(replay)) {
            (Ok(a), Ok(b)) => a == b,
            _ => record == replay,
        };
        if same {
            return Err("--record and --replay name the same file".into());
        }
    }
    let channels = Channels::new(options.channels.clone());
    let player = match &options.replay {
        None => None,
        Some(path) => Some(Player::prepare(ReplayOptions {
            path: path.clone(),
            speed: options.speed.unwrap_or(1.0),
            looping: options.looping,
            start: options.start.unwrap_or(0.0),
            channels: channels.clone(),
        })?),
    };
    let relay = upstream::prepare(&options.upstream)?;
    let recorder = match &options.record {
        None => None,
        Some(path) => {
            let max_bytes = options.record_max_bytes.unwrap_or(DEFAULT_RECORD_MAX_BYTES);
            Some(record::open(&RecordOptions { path: path.clone(), max_bytes, channels }, project)?)
        }
    };
    Ok(Prepared { recorder, player, relay })
}

impl Prepared {
    /// Installs the hub's hooks, then starts the threads. Call after the
    /// `listening on` line: the replay and the relay print on stdout too.
    pub fn start(self, hub: &Arc<Hub>) -> std::io::Result<()> {
        let (recorder, writer) = match self.recorder {
            Some((recorder, writer)) => (Some(recorder), Some(writer)),
            None => (None, None),
        };
        let relay = self.relay.map(Arc::new);
        let replay = self.player.as_ref().map(Player::stats);
        if recorder.is_none() && relay.is_none() && replay.is_none() {
            return Ok(());
        }
        hub.install_show(Hooks { recorder, relay: relay.clone(), replay });
        if let Some(writer) = writer {
            writer.spawn()?;
        }
        if let Some(relay) = relay {
            relay.start(hub.clone())?;
        }
        if let Some(player) = self.player {
            player.spawn(hub.clone())?;
        }
        Ok(())
    }
}

/// Who reads the stats: `/_admin/stats` gets everything; the public `/stats` only
/// counters and states (`public_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Admin,
    Public,
}

/// What anyone who reaches the gateway may see of a show section: numbers and the
/// `state` word. Every other text or list (file paths, the upstream URL and
/// connection id, channel names, error texts) stays in `/_admin/stats`, whatever
/// fields the sections gain later.
fn public_field(name: &str, value: &Value) -> bool {
    match value {
        Value::Number(_) | Value::Bool(_) | Value::Null => true,
        Value::String(_) => name == "state",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// What the hub calls. Every hook is cheap and never waits: some run under the hub's lock.
pub struct Hooks {
    recorder: Option<Recorder>,
    relay: Option<Arc<Relay>>,
    replay: Option<ReplayStats>,
}

impl Hooks {
    /// A client published `frame` (under the hub's lock, in delivery order).
    pub fn published(&self, channel: &str, frame: &Message) {
        if let Some(recorder) = &self.recorder {
            recorder.offer(channel, frame);
        }
        if let Some(relay) = &self.relay {
            relay.forward(frame);
        }
    }

    /// The replay or the relay injected `frame`: recorded, never sent upstream.
    pub fn injected(&self, channel: &str, frame: &Message) {
        if let Some(recorder) = &self.recorder {
            recorder.offer(channel, frame);
        }
    }

    /// A channel got its first local subscriber.
    pub fn channel_opened(&self, channel: &str) {
        if let Some(relay) = &self.relay {
            relay.subscribe(channel);
        }
    }

    /// A channel lost its last local subscriber.
    pub fn channel_closed(&self, channel: &str) {
        if let Some(relay) = &self.relay {
            relay.unsubscribe(channel);
        }
    }

    /// A frame every new connection gets after `connected` (the upstream state).
    pub fn greeting(&self) -> Option<Message> {
        self.relay.as_ref().and_then(|relay| relay.greeting())
    }

    /// Presence with the upstream's part added: (occupancy, members).
    pub fn presence(&self, channel: &str, local: Vec<String>) -> (usize, Vec<String>) {
        let mut members = local;
        let mut occupancy = members.len();
        if let Some(relay) = &self.relay {
            if let Some((others, upstream_members)) = relay.presence(channel) {
                occupancy += others;
                members.extend(upstream_members);
            }
        }
        (occupancy, members)
    }

    /// The `recording`, `replay` and `upstream` sections of a stats view.
    pub fn add_stats(&self, stats: &mut Map<String, Value>, view: View) {
        let sections = [
            ("recording", self.recorder.as_ref().map(Recorder::stats)),
            ("replay", self.replay.as_ref().map(ReplayStats::stats)),
            ("upstream", self.relay.as_ref().map(|relay| relay.stats())),
        ];
        for (name, section) in sections {
            let Some(mut section) = section else { continue };
            if let (View::Public, Value::Object(fields)) = (view, &mut section) {
                fields.retain(|name, value| public_field(name, value));
            }
            stats.insert(name.into(), section);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("500m"), Some(500 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("99999999999G"), None);
    }

    #[test]
    fn key_flags_are_refused() {
        assert!(refuse_key_flag("--upstream-key").unwrap().contains("DATANET_UPSTREAM_API_KEY"));
        assert!(refuse_key_flag("--record").is_none());
    }

    #[test]
    fn refuses_flag_combinations() {
        let mut options = ShowOptions { looping: true, ..ShowOptions::default() };
        assert!(prepare(&options, "demo").err().unwrap().contains("--loop needs --replay"));
        options.looping = false;
        options.channels.push(Pattern::parse("a").unwrap());
        assert!(prepare(&options, "demo").err().unwrap().contains("--channels needs"));
        let options = ShowOptions { record_max_bytes: Some(5), ..ShowOptions::default() };
        assert!(prepare(&options, "demo").err().unwrap().contains("--record-max-bytes needs"));
        let same = PathBuf::from("/tmp/datanet-same-file.jsonl");
        let options = ShowOptions { record: Some(same.clone()), replay: Some(same), ..ShowOptions::default() };
        assert!(prepare(&options, "demo").err().unwrap().contains("same file"));
    }
}
