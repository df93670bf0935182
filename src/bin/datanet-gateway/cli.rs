//! Command-line options. The flags and their defaults are a contract with the test
//! suites that spawn this binary and with docs/GATEWAY.md, so they are parsed
//! strictly, from one table: one row per flag, its help line beside its parser.
//! Secrets never come from argv (the process list shows it): only the names of
//! files that hold them, or the `DATANET_GATEWAY_SECRET` and
//! `DATANET_UPSTREAM_API_KEY` environment variables.

use crate::limits::Limits;
use crate::show::{self, ShowOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Where the HMAC secret that signs tokens comes from. `DATANET_GATEWAY_SECRET`
/// is read by `main`, which alone touches the environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretSource {
    /// Random per start: tokens do not survive a restart.
    #[default]
    Random,
    File(PathBuf),
    /// A fixed string published in this source: for tests only.
    FixedForTests,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub project: String,
    pub secret: SecretSource,
    pub token_ttl_secs: i64,
    pub admin: bool,
    pub admin_token_file: Option<PathBuf>,
    pub keys_file: Option<PathBuf>,
    pub allow_any_key: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub limits: Limits,
    /// Recording, replay and the venue relay (`show.rs`).
    pub show: ShowOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: "127.0.0.1".to_string(),
            port: 8080,
            project: "demo".to_string(),
            secret: SecretSource::Random,
            token_ttl_secs: 600,
            admin: false,
            admin_token_file: None,
            keys_file: None,
            allow_any_key: false,
            tls_cert: None,
            tls_key: None,
            limits: Limits::default(),
            show: ShowOptions::default(),
        }
    }
}

type Apply = fn(&mut Options, &str) -> Result<(), String>;

struct Flag {
    name: &'static str,
    /// `None` for a switch; otherwise the value's placeholder in the help.
    value: Option<&'static str>,
    /// Takes every following argument up to the next `--flag` as one more value.
    repeats: bool,
    help: &'static str,
    apply: Apply,
}

const fn flag(name: &'static str, value: &'static str, help: &'static str, apply: Apply) -> Flag {
    Flag { name, value: Some(value), repeats: false, help, apply }
}

const fn values(name: &'static str, value: &'static str, help: &'static str, apply: Apply) -> Flag {
    Flag { name, value: Some(value), repeats: true, help, apply }
}

const fn switch(name: &'static str, help: &'static str, apply: Apply) -> Flag {
    Flag { name, value: None, repeats: false, help, apply }
}

#[rustfmt::skip]
const FLAGS: &[Flag] = &[
    flag("--host", "<addr>", "address to bind (default 127.0.0.1; any other address turns on the LAN checks)",
         |o, v| { o.host = v.to_string(); Ok(()) }),
    flag("--port", "<port>", "port to bind, 0 picks a free one (default 8080)",
         |o, v| { o.port = number(v)?; Ok(()) }),
    flag("--project", "<id>", "project of tokens for keys without one (default demo)",
         |o, v| { o.project = v.to_string(); Ok(()) }),
    flag("--secret-file", "<file>", "file holding the HMAC secret that signs tokens (default: random per start)",
         |o, v| { o.secret = SecretSource::File(v.into()); Ok(()) }),
    switch("--fixed-secret-for-tests", "sign with a fixed secret published in the source (tests only)",
         |o, _| { o.secret = SecretSource::FixedForTests; Ok(()) }),
    flag("--token-ttl", "<seconds>", "lifetime of issued tokens (default 600)",
         |o, v| { o.token_ttl_secs = number::<u32>(v)?.into(); Ok(()) }),
    flag("--keys-file", "<file>", "API keys accepted, one per line (required off loopback)",
         |o, v| { o.keys_file = Some(v.into()); Ok(()) }),
    switch("--allow-any-key", "off loopback, accept any ak_ key without a keys file (warns)",
         |o, _| { o.allow_any_key = true; Ok(()) }),
    switch("--admin", "enable the test-control API under /_admin/",
         |o, _| { o.admin = true; Ok(()) }),
    flag("--admin-token-file", "<file>", "bearer token the admin API requires (required for --admin off loopback)",
         |o, v| { o.admin_token_file = Some(v.into()); Ok(()) }),
    flag("--tls-cert", "<file>", "PEM certificate chain: serve https:// and wss:// (with --tls-key)",
         |o, v| { o.tls_cert = Some(v.into()); Ok(()) }),
    flag("--tls-key", "<file>", "PEM private key of --tls-cert",
         |o, v| { o.tls_key = Some(v.into()); Ok(()) }),
    flag("--max-connections", "<n>", "open WebSocket sessions, all keys together (default 10000)",
         |o, v| { o.limits.max_connections = number(v)?; Ok(()) }),
    flag("--max-connections-per-key", "<n>", "open sessions per API key, 0 = no cap but the global one (default 0)",
         |o, v| { o.limits.max_connections_per_key = number(v)?; Ok(()) }),
    flag("--max-subscriptions", "<n>", "channels one connection may subscribe (default 1000)",
         |o, v| { o.limits.max_subscriptions = number(v)?; Ok(()) }),
    flag("--max-message-bytes", "<bytes>", "largest frame accepted or relayed (default 1048576, the client's)",
         |o, v| { o.limits.max_message_bytes = number(v)?; Ok(()) }),
    flag("--max-frames-per-second", "<n>", "frames one connection may send per second (default 5000)",
         |o, v| { o.limits.frames_per_second = number(v)?; Ok(()) }),
    flag("--max-bytes-per-second", "<bytes>", "bytes one connection may send per second (default 16777216)",
         |o, v| { o.limits.bytes_per_second = number(v)?; Ok(()) }),
    flag("--max-queued-bytes", "<bytes>", "frames waiting for one slow subscriber (default 4194304)",
         |o, v| { o.limits.queued_bytes_per_connection = number(v)?; Ok(()) }),
    flag("--max-queued-bytes-total", "<bytes>", "frames waiting for all subscribers together (default 536870912)",
         |o, v| { o.limits.queued_bytes_total = number(v)?; Ok(()) }),
    flag("--idle-timeout", "<seconds>", "close a connection that sent no frame for this long (default 75)",
         |o, v| { o.limits.idle_timeout = seconds(v)?; Ok(()) }),
    flag("--token-expiry-grace", "<seconds>", "time between token_expired and the close (default 30)",
         |o, v| { o.limits.token_expiry_grace = seconds(v)?; Ok(()) }),
    flag("--header-timeout", "<seconds>", "time to send a request's head (default 10)",
         |o, v| { o.limits.header_timeout = seconds(v)?; Ok(()) }),
    flag("--handshake-timeout", "<seconds>", "time to finish the TLS and WebSocket handshakes (default 10)",
         |o, v| { o.limits.handshake_timeout = seconds(v)?; Ok(()) }),
    switch("--help", "print this help", |_, _| Ok(())),
];

#[rustfmt::skip]
const RECORD_FLAGS: &[Flag] = &[
    flag("--record", "<file>", "append every relayed message to a recording (JSON lines)",
         |o, v| { o.show.record = Some(v.into()); Ok(()) }),
    flag("--record-max-bytes", "<n>", "stop recording at this file size (default 1G; K, M, G suffixes)",
         |o, v| { o.show.record_max_bytes = Some(size(v, u64::MAX)?); Ok(()) }),
    flag("--replay", "<file>", "publish a recording's messages with their recorded spacing",
         |o, v| { o.show.replay = Some(v.into()); Ok(()) }),
    flag("--speed", "<x>", "replay speed: 2 = twice as fast, 0 = as fast as possible (default 1)",
         |o, v| { o.show.speed = Some(non_negative(v)?); Ok(()) }),
    switch("--loop", "restart the replay at its end",
         |o, _| { o.show.looping = true; Ok(()) }),
    flag("--start", "<seconds>", "begin the replay this far into the recording",
         |o, v| { o.show.start = Some(non_negative(v)?); Ok(()) }),
    values("--channels", "<pattern>...", "only these channels (exact, or a prefix ending in *), for --record and --replay",
         |o, v| o.show.add_channel(v)),
];

#[rustfmt::skip]
const RELAY_FLAGS: &[Flag] = &[
    flag("--upstream-api-url", "<url>", "the upstream DataNet (e.g. https://api.datanet.art)",
         |o, v| { o.show.upstream.api_url = Some(v.to_string()); Ok(()) }),
    flag("--upstream-ws-url", "<url>", "its WebSocket URL (e.g. wss://ws.datanet.art)",
         |o, v| { o.show.upstream.ws_url = Some(v.to_string()); Ok(()) }),
    flag("--upstream-key-file", "<file>", "file holding the upstream API key (default: $DATANET_UPSTREAM_API_KEY)",
         |o, v| { o.show.upstream.key_file = Some(v.into()); Ok(()) }),
    flag("--upstream-device-id", "<id>", "device id sent with the upstream token request",
         |o, v| { o.show.upstream.device_id = Some(v.to_string()); Ok(()) }),
    flag("--upstream-device-name", "<name>", "device name sent with the upstream token request",
         |o, v| { o.show.upstream.device_name = Some(v.to_string()); Ok(()) }),
    flag("--upstream-ca-file", "<file>", "extra CA certificates (PEM) for a self-hosted upstream",
         |o, v| { o.show.upstream.ca_file = Some(v.into()); Ok(()) }),
    flag("--upstream-buffer-messages", "<n>", "publishes held for upstream while it is down (default 10000)",
         |o, v| { o.show.upstream.buffer_messages = Some(in_range(number(v)?, 1, 10_000_000)?); Ok(()) }),
    flag("--upstream-buffer-bytes", "<n>", "bytes held for upstream while it is down (default 16M, at most 4G)",
         |o, v| { o.show.upstream.buffer_bytes = Some(buffer_bytes(v)?); Ok(()) }),
];

/// The help's sections, in order; `parse` looks flags up in all of them.
const SECTIONS: [(&str, &[Flag]); 3] = [
    ("OPTIONS:", FLAGS),
    ("RECORD AND REPLAY (docs/GATEWAY.md, \"Record and replay\"):", RECORD_FLAGS),
    ("VENUE RELAY (docs/GATEWAY.md, \"Venue relay\"):", RELAY_FLAGS),
];

const USAGE_HEAD: &str = "\
datanet-gateway: a local DataNet gateway for development, LAN shows and tests

USAGE:
    datanet-gateway [OPTIONS]
";

const USAGE_TAIL: &str = "
ENVIRONMENT:
    DATANET_GATEWAY_SECRET     the HMAC secret (instead of --secret-file)
    DATANET_UPSTREAM_API_KEY   the venue relay's upstream API key (instead of --upstream-key-file)

The first line on stdout is `datanet-gateway listening on http://HOST:PORT`
(https:// with TLS). Logs go to stderr. See docs/GATEWAY.md.";

pub fn usage() -> String {
    let mut text = String::from(USAGE_HEAD);
    for (heading, flags) in SECTIONS {
        text.push('\n');
        text.push_str(heading);
        for flag in flags {
            let left = match flag.value {
                Some(value) => format!("{} {value}", flag.name),
                None => flag.name.to_string(),
            };
            text.push_str(&format!("\n    {left:<34} {}", flag.help));
        }
        text.push('\n');
    }
    text.push_str(USAGE_TAIL);
    text
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Options>),
    Help,
}

/// Parses the arguments after the program name. Accepts `--flag value` and `--flag=value`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        if name == "--secret" {
            return Err("--secret is not accepted on the command line (the process list shows it): \
                        use --secret-file or DATANET_GATEWAY_SECRET"
                .to_string());
        }
        if let Some(refusal) = show::refuse_key_flag(&name) {
            return Err(refusal);
        }
        let Some(flag) = SECTIONS.iter().flat_map(|(_, flags)| flags.iter()).find(|flag| flag.name == name) else {
            return Err(format!("unknown argument: {name}"));
        };
        let value = match (flag.value, inline_value) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("{name} takes no value")),
            (Some(_), Some(value)) => value,
            // A list ends at the next flag, so it cannot swallow one.
            (Some(_), None) if flag.repeats => {
                args.next_if(|next| !next.starts_with("--")).ok_or_else(|| format!("{name} needs a value"))?
            }
            (Some(_), None) => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let mut values = vec![value];
        if flag.repeats {
            values.extend(std::iter::from_fn(|| args.next_if(|next| !next.starts_with("--"))));
        }
        for value in values {
            if flag.value.is_some() && value.is_empty() {
                return Err(format!("{name} needs a non-empty value"));
            }
            (flag.apply)(&mut options, &value).map_err(|why| format!("invalid {name}: {why}"))?;
        }
    }
    Ok(Command::Run(Box::new(options)))
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{value:?} is not a number in range"))
}

fn in_range<T: PartialOrd + std::fmt::Display>(value: T, low: T, high: T) -> Result<T, String> {
    if value < low || value > high {
        return Err(format!("{value} is not in {low}..={high}"));
    }
    Ok(value)
}

/// A byte count, `1024`, `64K`, `500M`, `1G` (powers of 1024), at most `max`.
fn size(value: &str, max: u64) -> Result<u64, String> {
    show::parse_size(value)
        .filter(|bytes| *bytes <= max)
        .ok_or_else(|| format!("{value:?} is not a byte count up to {max} (e.g. 500M)"))
}

/// 1 byte to 4 GiB.
fn buffer_bytes(value: &str) -> Result<usize, String> {
    let bytes = in_range(size(value, 1 << 32)?, 1, 1 << 32)?;
    usize::try_from(bytes).map_err(|_| format!("{value:?} is more than this machine can address"))
}

/// A finite number, 0 or more (a speed, a position in seconds).
fn non_negative(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite() && *number >= 0.0)
        .ok_or_else(|| format!("{value:?} is not a number, 0 or more"))
}

/// Seconds, fractions allowed (tests use short timeouts).
fn seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| format!("{value:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{value:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Options {
        match parse(args(list)) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(run(&[]), Options::default());
    }

    #[test]
    fn flags_in_both_forms() {
        let parsed = run(&[
            "--host",
            "0.0.0.0",
            "--port=0",
            "--project",
            "p1",
            "--secret-file=/s",
            "--token-ttl",
            "5",
            "--admin",
            "--keys-file",
            "/k",
            "--idle-timeout",
            "0.5",
            "--max-message-bytes=100",
        ]);
        assert_eq!((parsed.host.as_str(), parsed.port, parsed.project.as_str()), ("0.0.0.0", 0, "p1"));
        assert_eq!(parsed.secret, SecretSource::File("/s".into()));
        assert_eq!((parsed.token_ttl_secs, parsed.admin), (5, true));
        assert_eq!(parsed.keys_file, Some("/k".into()));
        assert_eq!(parsed.limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(parsed.limits.max_message_bytes, 100);
        assert_eq!(run(&["--fixed-secret-for-tests"]).secret, SecretSource::FixedForTests);
        assert_eq!(parse(args(&["--port", "1", "--help"])), Ok(Command::Help));
    }

    #[test]
    fn every_flag_is_in_the_help() {
        let help = usage();
        for flag in SECTIONS.iter().flat_map(|(_, flags)| flags.iter()) {
            assert!(help.contains(flag.name), "{}", flag.name);
        }
    }

    #[test]
    fn show_flags() {
        let options = run(&[
            "--replay",
            "show.jsonl",
            "--channels",
            "project.demo.dmx",
            "project.demo.sensor.*",
            "--speed=2",
            "--loop",
            "--channels=x",
            "--record-max-bytes",
            "2M",
            "--upstream-buffer-bytes=64K",
        ]);
        assert_eq!(options.show.channels.len(), 3);
        assert_eq!((options.show.speed, options.show.looping), (Some(2.0), true));
        assert_eq!(options.show.record_max_bytes, Some(2 << 20));
        assert_eq!(options.show.upstream.buffer_bytes, Some(64 << 10));
        for bad in [
            &["--channels"][..],
            &["--channels", "--loop"],
            &["--channels", "a*b"],
            &["--loop=yes"],
            &["--speed", "-1"],
            &["--speed", "inf"],
            &["--start", "x"],
            &["--upstream-buffer-messages", "0"],
            &["--upstream-buffer-bytes", "5G"],
            &["--record-max-bytes", "G"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_upstream_key_on_argv_is_refused_without_echoing_it() {
        for bad in [&["--upstream-key", "ak_secret_value"][..], &["--api-key=ak_secret_value"]] {
            let error = parse(args(bad)).unwrap_err();
            assert!(error.contains("DATANET_UPSTREAM_API_KEY") && !error.contains("ak_secret_value"), "{error}");
        }
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            &["--port"][..],
            &["--port", "99999"],
            &["--token-ttl", "-1"],
            &["--secret-file="],
            &["--admin=yes"],
            &["serve"],
            &["--idle-timeout", "soon"],
            &["--idle-timeout", "-1"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_secret_on_argv_is_refused_without_echoing_it() {
        for bad in [&["--secret", "hunter2"][..], &["--secret=hunter2"]] {
            let error = parse(args(bad)).unwrap_err();
            assert!(error.contains("--secret-file") && !error.contains("hunter2"), "{error}");
        }
    }
}
