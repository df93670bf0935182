//! The show tools (docs/GATEWAY.md): recording (`record.rs`), replay
//! (`replay.rs`) and the venue relay (`upstream.rs`). This module holds their
//! command-line flags, checks everything before the gateway starts listening,
//! starts them afterwards, and is the one place the hub calls into them.

use crate::hub::Hub;
use crate::record::{self, RecordOptions, Recorder};
use crate::recording::{Channels, Pattern};
use crate::replay::{Player, ReplayOptions, ReplayStats};
use crate::upstream::{self, Relay, UpstreamOptions};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

pub const USAGE: &str = "\
RECORD AND REPLAY (docs/GATEWAY.md):
    --record <file>              append every relayed message to a recording
    --record-max-bytes <n>       stop recording at this file size (default 1G; K, M, G suffixes)
    --replay <file>              publish a recording's messages with their recorded spacing
    --speed <x>                  replay speed: 2 = twice as fast, 0 = as fast as possible (default 1)
    --loop                       restart the replay at its end
    --start <seconds>            begin the replay this far into the recording
    --channels <pattern>...      only these channels (exact, or a prefix ending in *), for --record and --replay

VENUE RELAY (docs/GATEWAY.md):
    --upstream-api-url <url>     the upstream DataNet (e.g. https://api.datanet.art)
    --upstream-ws-url <url>      its WebSocket URL (e.g. wss://ws.datanet.art)
    --upstream-key-file <file>   a file holding the upstream API key (default: $DATANET_UPSTREAM_API_KEY)
    --upstream-device-id <id>    device id sent with the upstream token request
    --upstream-device-name <n>   device name sent with the upstream token request
    --upstream-ca-file <file>    extra CA certificates (PEM) for a self-hosted upstream
    --upstream-buffer-messages <n>  publishes held for upstream while it is down (default 10000)
    --upstream-buffer-bytes <n>  bytes held for upstream while it is down (default 16M)";

/// Flags that take one value.
pub const VALUE_FLAGS: [&str; 13] = [
    "--record",
    "--record-max-bytes",
    "--replay",
    "--speed",
    "--start",
    "--upstream-api-url",
    "--upstream-ws-url",
    "--upstream-key-file",
    "--upstream-device-id",
    "--upstream-device-name",
    "--upstream-ca-file",
    "--upstream-buffer-messages",
    "--upstream-buffer-bytes",
];

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

// Speeds and starts are checked finite when parsed.
impl Eq for ShowOptions {}

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
    /// Applies one of `VALUE_FLAGS`.
    pub fn apply(&mut self, flag: &str, value: String) -> Result<(), String> {
        let invalid = |what: &str| format!("invalid {flag}: {value} ({what})");
        let upstream = &mut self.upstream;
        match flag {
            "--record" => self.record = Some(PathBuf::from(&value)),
            "--record-max-bytes" => {
                self.record_max_bytes = Some(parse_size(&value).ok_or_else(|| invalid("bytes, e.g. 500M"))?)
            }
            "--replay" => self.replay = Some(PathBuf::from(&value)),
            "--speed" => {
                let speed = value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
                self.speed = Some(speed.ok_or_else(|| invalid("a number, 0 or more"))?);
            }
            "--start" => {
                let start = value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
                self.start = Some(start.ok_or_else(|| invalid("seconds, 0 or more"))?);
            }
            "--upstream-api-url" => upstream.api_url = Some(value),
            "--upstream-ws-url" => upstream.ws_url = Some(value),
            "--upstream-key-file" => upstream.key_file = Some(PathBuf::from(value)),
            "--upstream-device-id" => upstream.device_id = Some(value),
            "--upstream-device-name" => upstream.device_name = Some(value),
            "--upstream-ca-file" => upstream.ca_file = Some(PathBuf::from(value)),
            "--upstream-buffer-messages" => {
                let count = value.parse::<usize>().ok().filter(|n| (1..=10_000_000).contains(n));
                upstream.buffer_messages = Some(count.ok_or_else(|| invalid("1 to 10000000"))?);
            }
            "--upstream-buffer-bytes" => {
                let bytes = parse_size(&value).filter(|n| (1..=1 << 32).contains(n));
                upstream.buffer_bytes = Some(bytes.ok_or_else(|| invalid("bytes up to 4G, e.g. 64M"))? as usize);
            }
            _ => unreachable!("apply is only called for VALUE_FLAGS"),
        }
        Ok(())
    }

    pub fn add_channel(&mut self, pattern: &str) -> Result<(), String> {
        self.channels.push(Pattern::parse(pattern).map_err(|why| format!("--channels: {why}"))?);
        Ok(())
    }
}

/// `1024`, `64K`, `500M`, `1G` (powers of 1024).
fn parse_size(text: &str) -> Option<u64> {
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

    pub fn add_stats(&self, stats: &mut Map<String, Value>) {
        if let Some(recorder) = &self.recorder {
            stats.insert("recording".into(), recorder.stats());
        }
        if let Some(replay) = &self.replay {
            stats.insert("replay".into(), replay.stats());
        }
        if let Some(relay) = &self.relay {
            stats.insert("upstream".into(), relay.stats());
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
    fn flag_values() {
        let mut options = ShowOptions::default();
        options.apply("--speed", "2.5".into()).unwrap();
        options.apply("--start", "10".into()).unwrap();
        options.apply("--record-max-bytes", "2M".into()).unwrap();
        assert_eq!((options.speed, options.start, options.record_max_bytes), (Some(2.5), Some(10.0), Some(2 << 20)));
        for (flag, value) in
            [("--speed", "-1"), ("--speed", "inf"), ("--start", "x"), ("--upstream-buffer-messages", "0")]
        {
            assert!(options.apply(flag, value.into()).is_err(), "{flag} {value}");
        }
        assert!(options.add_channel("a*b").is_err());
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
