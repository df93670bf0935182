//! Command-line options. The flags and their defaults are a contract with the
//! test suites that spawn this binary, so they are parsed by hand and strictly.

/// Used when `--secret` is not given: fine for a development tool on loopback,
/// and stable so tokens survive a restart of the gateway.
const DEFAULT_SECRET: &str = "datanet-local-gateway-development-secret";

pub const USAGE: &str = "\
datanet-gateway: a local DataNet gateway for development and tests

USAGE:
    datanet-gateway [OPTIONS]

OPTIONS:
    --host <addr>          address to bind (default 127.0.0.1)
    --port <port>          port to bind, 0 picks a free one (default 8080)
    --project <id>         project id put in issued tokens (default demo)
    --secret <secret>      HMAC secret signing the tokens (default: a fixed dev string)
    --token-ttl <seconds>  lifetime of issued tokens (default 600)
    --admin                enable the test-control API under /_admin/
    --help                 print this help

The first line on stdout is `datanet-gateway listening on http://HOST:PORT`.
Logs go to stderr.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub project: String,
    pub secret: String,
    pub token_ttl_secs: i64,
    pub admin: bool,
    /// Recording, replay and the venue relay (`show.rs`).
    pub show: Box<crate::show::ShowOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: "127.0.0.1".to_string(),
            port: 8080,
            project: "demo".to_string(),
            secret: DEFAULT_SECRET.to_string(),
            token_ttl_secs: 600,
            admin: false,
            show: Box::default(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. Accepts `--flag value` and `--flag=value`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--admin" if inline_value.is_none() => options.admin = true,
            "--host" | "--port" | "--project" | "--secret" | "--token-ttl" => {
                let value = match inline_value {
                    Some(value) => value,
                    None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
                };
                apply_value(&mut options, &flag, value)?;
            }
            "--loop" if inline_value.is_none() => options.show.looping = true,
            "--channels" => {
                let mut patterns: Vec<String> = inline_value.into_iter().collect();
                while let Some(pattern) = args.next_if(|next| !next.starts_with("--")) {
                    patterns.push(pattern);
                }
                if patterns.is_empty() {
                    return Err("--channels needs at least one pattern".into());
                }
                for pattern in patterns {
                    options.show.add_channel(&pattern)?;
                }
            }
            flag if crate::show::VALUE_FLAGS.contains(&flag) => {
                let value = match inline_value {
                    Some(value) => value,
                    None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
                };
                if value.is_empty() {
                    return Err(format!("{flag} needs a non-empty value"));
                }
                options.show.apply(flag, value)?;
            }
            flag => {
                return Err(crate::show::refuse_key_flag(flag).unwrap_or_else(|| format!("unknown argument: {flag}")))
            }
        }
    }
    Ok(Command::Run(options))
}

fn apply_value(options: &mut Options, flag: &str, value: String) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{flag} needs a non-empty value"));
    }
    match flag {
        "--host" => options.host = value,
        "--port" => options.port = value.parse().map_err(|_| format!("invalid --port: {value}"))?,
        "--project" => options.project = value,
        // The secret itself never appears in an error message.
        "--secret" => options.secret = value,
        "--token-ttl" => {
            options.token_ttl_secs = value.parse::<u32>().map_err(|_| format!("invalid --token-ttl: {value}"))?.into()
        }
        _ => unreachable!("apply_value is only called for flags that take a value"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(args(&[])), Ok(Command::Run(Options::default())));
    }

    #[test]
    fn every_flag_in_both_forms() {
        let parsed = parse(args(&[
            "--host",
            "0.0.0.0",
            "--port=0",
            "--project",
            "p1",
            "--secret=s3",
            "--token-ttl",
            "5",
            "--admin",
        ]));
        let expected = Options {
            host: "0.0.0.0".into(),
            port: 0,
            project: "p1".into(),
            secret: "s3".into(),
            token_ttl_secs: 5,
            admin: true,
            show: Box::default(),
        };
        assert_eq!(parsed, Ok(Command::Run(expected)));
        assert_eq!(parse(args(&["--port", "1", "--help"])), Ok(Command::Help));
    }

    #[test]
    fn refuses_bad_input() {
        assert!(parse(args(&["--port"])).is_err());
        assert!(parse(args(&["--port", "99999"])).is_err());
        assert!(parse(args(&["--token-ttl", "-1"])).is_err());
        assert!(parse(args(&["--secret="])).is_err());
        assert!(parse(args(&["--admin=yes"])).is_err());
        assert!(parse(args(&["serve"])).is_err());
    }

    #[test]
    fn show_flags() {
        let Ok(Command::Run(options)) = parse(args(&[
            "--replay",
            "show.jsonl",
            "--channels",
            "project.demo.dmx",
            "project.demo.sensor.*",
            "--speed=2",
            "--loop",
            "--channels=x",
        ])) else {
            panic!("refused")
        };
        assert_eq!(options.show.channels.len(), 3);
        assert_eq!(options.show.speed, Some(2.0));
        assert!(options.show.looping);
        assert!(parse(args(&["--channels"])).is_err());
        assert!(parse(args(&["--channels", "--loop"])).is_err());
        let refused = parse(args(&["--upstream-key", "ak_secret_value"])).unwrap_err();
        assert!(refused.contains("DATANET_UPSTREAM_API_KEY") && !refused.contains("ak_secret_value"), "{refused}");
    }
}
