//! Client configuration, read from the JSON object the C ABI receives. Unknown
//! keys are refused so that a typo in an artist's config is an error, not a
//! silently ignored setting.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::protocol::error::{DataNetError, INVALID_ARGUMENT};
use crate::protocol::proxy::ProxySetting;

pub(crate) const DEFAULT_API_URL: &str = "https://api.datanet.art";
pub(crate) const DEFAULT_WS_URL: &str = "wss://ws.datanet.art";
/// 2 ms: reads set this (and a timer tick) before the host's next poll reach it
/// even when its frame comes a little early, and only what arrives in those last
/// ms waits a frame (measured in README, "Reading the socket on a timer").
const DEFAULT_READ_PACE: Duration = Duration::from_millis(2);
/// A lead of several frames would only add delay.
const MAX_READ_PACE_MS: u64 = 50;

/// Every setting of one client. `Debug` is implemented by hand to keep the API
/// key out of any output.
#[derive(Clone)]
pub struct Config {
    pub api_key: String,
    pub api_url: String,
    pub ws_url: String,
    pub device_id: Option<String>,
    pub client_id: Option<String>,
    pub device_name: Option<String>,
    /// 0 = unlimited (the default for a live show).
    pub max_reconnect_attempts: u32,
    pub heartbeat_interval: Duration,
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    /// Limit for each of: the token request, the proxy tunnel for the WebSocket
    /// (when there is one), and the WebSocket handshake up to `connected`.
    pub connect_timeout: Duration,
    pub inbound_queue_capacity: usize,
    pub outbound_max_messages: usize,
    pub outbound_max_bytes: usize,
    pub max_events_per_poll: usize,
    pub max_message_bytes: usize,
    /// Upper bound on distinct numeric channels in the last-value store.
    pub max_numeric_channels: usize,
    /// Table rows kept for hosts that show messages in a table (0 = none).
    pub table_history: usize,
    /// Extra trusted CA certificates (PEM), for self-hosted gateways; added to
    /// whichever roots `tls_roots` chooses.
    pub ca_file: Option<PathBuf>,
    /// Which root certificates verify servers.
    pub tls_roots: TlsRoots,
    /// `None`: the proxy environment variables decide; `""` or `"direct"`: no
    /// proxy; otherwise `http://[user:password@]host[:port]`.
    pub proxy: Option<String>,
    /// Store DMX and Art-Net slots as 0..1 instead of 0..255.
    pub dmx_normalize: bool,
    /// Receive this connection's own messages (the gateway sends them back).
    pub echo: bool,
    /// While socket reads come closer together than this, read every this
    /// often instead of on every packet (`protocol::pacing`); zero: never.
    pub read_pace: Duration,
}

impl Config {
    pub fn new(api_key: &str) -> Self {
        Config {
            api_key: api_key.to_string(),
            api_url: DEFAULT_API_URL.into(),
            ws_url: DEFAULT_WS_URL.into(),
            device_id: None,
            client_id: None,
            device_name: None,
            max_reconnect_attempts: 0,
            heartbeat_interval: Duration::from_secs(30),
            reconnect_base: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            inbound_queue_capacity: 10_000,
            outbound_max_messages: 1_000,
            outbound_max_bytes: 4 << 20,
            max_events_per_poll: 1_000,
            max_message_bytes: 1 << 20,
            max_numeric_channels: 10_000,
            table_history: 1_000,
            ca_file: None,
            tls_roots: TlsRoots::default(),
            proxy: None,
            dmx_normalize: false,
            echo: true,
            read_pace: DEFAULT_READ_PACE,
        }
    }

    /// Reads a JSON object; `api_key` is required, everything else has a default.
    pub fn from_json(text: &str) -> Result<Config, DataNetError> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return Err(invalid("config must be a JSON object"));
        };
        let mut reader = Reader { map };
        let api_key = reader.string("api_key")?.ok_or_else(|| invalid("config needs a non-empty \"api_key\""))?;
        if api_key.is_empty() {
            return Err(invalid("config needs a non-empty \"api_key\""));
        }
        let mut c = Config::new(&api_key);
        if let Some(url) = reader.string("api_url")? {
            c.api_url = url;
        }
        if let Some(url) = reader.string("ws_url")? {
            c.ws_url = url;
        }
        c.device_id = reader.string("device_id")?;
        c.client_id = reader.string("client_id")?;
        c.device_name = reader.string("device_name")?;
        c.ca_file = reader.string("ca_file")?.filter(|p| !p.is_empty()).map(PathBuf::from);
        c.proxy = reader.string("proxy")?;
        if let Some(roots) = reader.string("tls_roots")? {
            c.tls_roots = TlsRoots::parse(&roots)
                .ok_or_else(|| invalid("config key \"tls_roots\" must be \"both\", \"os\" or \"webpki\""))?;
        }
        if let Some(n) = reader.integer("max_reconnect_attempts", 0, u32::MAX as u64)? {
            c.max_reconnect_attempts = n as u32;
        }
        let ms = |r: &mut Reader, key: &str, min: u64, target: &mut Duration| -> Result<(), DataNetError> {
            if let Some(n) = r.integer(key, min, 86_400_000)? {
                *target = Duration::from_millis(n);
            }
            Ok(())
        };
        ms(&mut reader, "heartbeat_interval_ms", 10, &mut c.heartbeat_interval)?;
        ms(&mut reader, "reconnect_base_ms", 1, &mut c.reconnect_base)?;
        ms(&mut reader, "reconnect_max_ms", 1, &mut c.reconnect_max)?;
        ms(&mut reader, "connect_timeout_ms", 10, &mut c.connect_timeout)?;
        let count = |r: &mut Reader, key: &str, max: u64, target: &mut usize| -> Result<(), DataNetError> {
            if let Some(n) = r.integer(key, 1, max)? {
                *target = n as usize;
            }
            Ok(())
        };
        count(&mut reader, "inbound_queue_capacity", 10_000_000, &mut c.inbound_queue_capacity)?;
        count(&mut reader, "outbound_max_messages", 10_000_000, &mut c.outbound_max_messages)?;
        count(&mut reader, "outbound_max_bytes", 1 << 32, &mut c.outbound_max_bytes)?;
        count(&mut reader, "max_events_per_poll", 10_000_000, &mut c.max_events_per_poll)?;
        count(&mut reader, "max_message_bytes", 1 << 30, &mut c.max_message_bytes)?;
        count(&mut reader, "max_numeric_channels", 10_000_000, &mut c.max_numeric_channels)?;
        // 0 is allowed here: a host without a table keeps no rows.
        if let Some(n) = reader.integer("table_history", 0, 1_000_000)? {
            c.table_history = n as usize;
        }
        if let Some(flag) = reader.boolean("dmx_normalize")? {
            c.dmx_normalize = flag;
        }
        if let Some(flag) = reader.boolean("echo")? {
            c.echo = flag;
        }
        // 0 is allowed: read on every packet.
        if let Some(n) = reader.integer("read_pace_ms", 0, MAX_READ_PACE_MS)? {
            c.read_pace = Duration::from_millis(n);
        }
        if let Some(unknown) = reader.map.keys().next() {
            return Err(invalid(format!("unknown config key \"{unknown}\"")));
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), DataNetError> {
        let scheme_ok =
            |url: &str, schemes: [&str; 2]| schemes.iter().any(|s| url.starts_with(s) && url.len() > s.len());
        if !scheme_ok(&self.api_url, ["http://", "https://"]) {
            return Err(invalid("api_url must start with http:// or https://"));
        }
        if !scheme_ok(&self.ws_url, ["ws://", "wss://"]) {
            return Err(invalid("ws_url must start with ws:// or wss://"));
        }
        if self.reconnect_max < self.reconnect_base {
            return Err(invalid("reconnect_max_ms must not be below reconnect_base_ms"));
        }
        self.proxy_setting()?;
        Ok(())
    }

    /// The `proxy` key, read. Its errors never repeat the value (it may hold a password).
    pub(crate) fn proxy_setting(&self) -> Result<ProxySetting, DataNetError> {
        ProxySetting::parse(self.proxy.as_deref()).map_err(|why| invalid(format!("config key \"proxy\": {why}")))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("ws_url", &self.ws_url)
            .field("device_id", &self.device_id)
            .field("tls_roots", &self.tls_roots)
            .field("proxy", &self.proxy.as_deref().map(shown_proxy))
            .finish_non_exhaustive()
    }
}

/// A proxy setting as `Debug` may show it: without credentials.
fn shown_proxy(text: &str) -> String {
    match ProxySetting::parse(Some(text)) {
        Ok(ProxySetting::Url(proxy)) => format!("{proxy:?}"),
        Ok(_) => "direct".into(),
        Err(_) => "[invalid]".into(),
    }
}

/// The trust anchors that verify servers. Verification itself is always on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The operating system's store (Windows and macOS through their own
    /// verifiers, Linux's system certificates), plus the webpki list.
    #[default]
    Both,
    /// The operating system's store only.
    Os,
    /// The webpki list built into the library (Mozilla's roots) only.
    Webpki,
}

impl TlsRoots {
    pub fn parse(text: &str) -> Option<TlsRoots> {
        match text {
            "both" => Some(TlsRoots::Both),
            "os" => Some(TlsRoots::Os),
            "webpki" => Some(TlsRoots::Webpki),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsRoots::Both => "both",
            TlsRoots::Os => "os",
            TlsRoots::Webpki => "webpki",
        }
    }
}

struct Reader {
    map: Map<String, Value>,
}

impl Reader {
    /// A string, or None for absent/null. Removes the key so leftovers are unknown keys.
    fn string(&mut self, key: &str) -> Result<Option<String>, DataNetError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("config key \"{key}\" must be a string"))),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, DataNetError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(invalid(format!("config key \"{key}\" must be true or false"))),
        }
    }

    fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, DataNetError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(invalid(format!("config key \"{key}\" must be an integer in {min}..={max}"))),
            },
            Some(_) => Err(invalid(format!("config key \"{key}\" must be an integer"))),
        }
    }
}

fn invalid(message: impl Into<String>) -> DataNetError {
    DataNetError::new(INVALID_ARGUMENT, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_json(r#"{"api_key":"ak_1"}"#).unwrap();
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.max_reconnect_attempts, 0);
        assert_eq!(c.read_pace, Duration::from_millis(2));
        let c = Config::from_json(
            r#"{"api_key":"ak_1","api_url":"http://localhost:1","ws_url":"ws://localhost:1","heartbeat_interval_ms":100,
                "outbound_max_messages":5,"device_id":"d","ca_file":null,"dmx_normalize":true,
                "read_pace_ms":0}"#,
        )
        .unwrap();
        assert_eq!(c.read_pace, Duration::ZERO);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(c.outbound_max_messages, 5);
        assert_eq!(c.device_id.as_deref(), Some("d"));
        assert!(c.dmx_normalize);
    }

    #[test]
    fn clear_errors() {
        for (text, needle) in [
            ("[]", "JSON object"),
            ("{}", "api_key"),
            (r#"{"api_key":""}"#, "api_key"),
            (r#"{"api_key":"k","heartbeat_interval_ms":-1}"#, "heartbeat_interval_ms"),
            (r#"{"api_key":"k","heartbeat_interval_ms":"5"}"#, "heartbeat_interval_ms"),
            (r#"{"api_key":"k","ws_url":"http://x"}"#, "ws_url"),
            (r#"{"api_key":"k","hearbeat":1}"#, "unknown config key \"hearbeat\""),
            (r#"{"api_key":"k","inbound_queue_capacity":0}"#, "inbound_queue_capacity"),
            (r#"{"api_key":"k","dmx_normalize":1}"#, "dmx_normalize"),
            (r#"{"api_key":"k","tls_roots":"none"}"#, "tls_roots"),
            (r#"{"api_key":"k","tls_roots":true}"#, "tls_roots"),
            (r#"{"api_key":"k","proxy":"socks5://proxy:1080"}"#, "config key \"proxy\": SOCKS"),
            (r#"{"api_key":"k","proxy":8080}"#, "proxy"),
            (r#"{"api_key":"k","read_pace_ms":51}"#, "read_pace_ms\" must be an integer in 0..=50"),
            (r#"{"api_key":"k","read_pace_ms":-1}"#, "read_pace_ms"),
        ] {
            let e = Config::from_json(text).unwrap_err();
            assert_eq!(e.code, INVALID_ARGUMENT);
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let c = Config::new("ak_topsecret");
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn proxy_and_tls_roots() {
        let c = Config::from_json(r#"{"api_key":"k"}"#).unwrap();
        assert_eq!((c.proxy.as_deref(), c.tls_roots), (None, TlsRoots::Both));
        for (roots, expected) in [("both", TlsRoots::Both), ("os", TlsRoots::Os), ("webpki", TlsRoots::Webpki)] {
            let c = Config::from_json(&format!(r#"{{"api_key":"k","tls_roots":"{roots}"}}"#)).unwrap();
            assert_eq!((c.tls_roots, c.tls_roots.as_str()), (expected, roots));
        }
        let c = Config::from_json(r#"{"api_key":"k","proxy":"http://venue:Pr0xyPa55@proxy.corp:3128"}"#).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("proxy.corp:3128") && !shown.contains("Pr0xyPa55") && !shown.contains("venue"),
            "{shown}"
        );
        let e = Config::from_json(r#"{"api_key":"k","proxy":"http://venue:Pr0xyPa55@proxy.corp:port"}"#).unwrap_err();
        assert!(e.message.contains("port") && !e.message.contains("Pr0xyPa55"), "{}", e.message);
        assert_eq!(Config::from_json(r#"{"api_key":"k","proxy":""}"#).unwrap().proxy.as_deref(), Some(""));
    }
}
