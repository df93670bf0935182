//! Command-line options. The flags and their defaults are a contract with the test
//! suites that spawn this binary and with docs/GATEWAY.md, so they are parsed
//! strictly, from one table: one row per flag, its help line beside its parser.
//! Secrets never come from argv (the process list shows it): only the names of
//! files that hold them, or the `DATANET_GATEWAY_SECRET` environment variable.

use crate::limits::Limits;
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
        }
    }
}

type Apply = fn(&mut Options, &str) -> Result<(), String>;

struct Flag {
    name: &'static str,
    /// `None` for a switch; otherwise the value's placeholder in the help.
    value: Option<&'static str>,
    help: &'static str,
    apply: Apply,
}

const fn flag(name: &'static str, value: &'static str, help: &'static str, apply: Apply) -> Flag {
    Flag { name, value: Some(value), help, apply }
}

const fn switch(name: &'static str, help: &'static str, apply: Apply) -> Flag {
    Flag { name, value: None, help, apply }
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

const USAGE_HEAD: &str = "\
datanet-gateway: a local DataNet gateway for development, LAN shows and tests

USAGE:
    datanet-gateway [OPTIONS]

OPTIONS:";

const USAGE_TAIL: &str = "
ENVIRONMENT:
    DATANET_GATEWAY_SECRET   the HMAC secret (instead of --secret-file)

The first line on stdout is `datanet-gateway listening on http://HOST:PORT`
(https:// with TLS). Logs go to stderr. See docs/GATEWAY.md.";

pub fn usage() -> String {
    let mut text = String::from(USAGE_HEAD);
    for flag in FLAGS {
        let left = match flag.value {
            Some(value) => format!("{} {value}", flag.name),
            None => flag.name.to_string(),
        };
        text.push_str(&format!("\n    {left:<34} {}", flag.help));
    }
    text.push('\n');
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
    let mut args = args.into_iter();
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
        let Some(flag) = FLAGS.iter().find(|flag| flag.name == name) else {
            return Err(format!("unknown argument: {name}"));
        };
        let value = match (flag.value, inline_value) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("{name} takes no value")),
            (Some(_), Some(value)) => value,
            (Some(_), None) => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        if flag.value.is_some() && value.is_empty() {
            return Err(format!("{name} needs a non-empty value"));
        }
        (flag.apply)(&mut options, &value).map_err(|why| format!("invalid {name}: {why}"))?;
    }
    Ok(Command::Run(Box::new(options)))
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{value:?} is not a number in range"))
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
        for flag in FLAGS {
            assert!(help.contains(flag.name), "{}", flag.name);
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
