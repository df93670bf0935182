//! The venue relay (`--upstream-*`): one connection to an upstream DataNet,
//! through this project's own client (`datanet::client::Client`: token, TLS,
//! heartbeats, reconnection, the bounded outbound buffer), shared by every local
//! client.
//!
//! - Subscriptions: the hub reports a channel's first local subscriber and its
//!   last one leaving; the relay subscribes and unsubscribes upstream then, so
//!   upstream holds the union of local subscriptions, each once.
//! - Local publishes reach local subscribers at once (the hub) and are handed to
//!   the client, which sends them, or buffers them in order while upstream is down
//!   (bounded by count and bytes, oldest dropped and counted). The client runs
//!   with `echo` off, so what upstream sends back of the relay's own publishes is
//!   not delivered a second time.
//! - Upstream messages are injected into the hub with their original `from`/`ts`.
//! - Upstream state reaches local clients as error envelopes
//!   `upstream_unavailable` / `upstream_restored`; they stay connected.
//!
//! The API key comes from `DATANET_UPSTREAM_API_KEY` or `--upstream-key-file`
//! only, lives in the client's config (whose `Debug` hides it), and the client
//! scrubs it from every error it reports.

use crate::envelope::Payload;
use crate::hub::{parse_conn_label, ConnId, Hub};
use crate::throttle::Throttle;
use datanet::client::{Body, Client, Config, Event, State};
use datanet::protocol::base64;
use datanet::protocol::error::{
    DataNetError, AUTHENTICATION_FAILED, CONNECTION_FAILED, CONNECTION_LOST, DEVICE_LIMIT_REACHED, INSUFFICIENT_SCOPE,
    TOPIC_LIMIT_REACHED,
};
use datanet::protocol::rest::Presence;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const KEY_VARIABLE: &str = "DATANET_UPSTREAM_API_KEY";
pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
pub const UPSTREAM_RESTORED: &str = "upstream_restored";

const DEFAULT_BUFFER_MESSAGES: usize = 10_000;
const DEFAULT_BUFFER_BYTES: usize = 16 << 20;
/// One connection for a whole venue: recover fast, and notice a silent uplink
/// within two heartbeats instead of the client default's minute.
const HEARTBEAT: Duration = Duration::from_secs(5);
const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Upstream messages waiting for the relay thread.
const INBOUND_CAPACITY: usize = 100_000;
/// A local presence answer asks upstream again when its part is older than this.
const PRESENCE_FRESH: Duration = Duration::from_secs(1);
/// Channels whose last local publisher is remembered (for routing upstream errors).
const MAX_REMEMBERED_PUBLISHERS: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamOptions {
    pub api_url: Option<String>,
    pub ws_url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub buffer_messages: Option<usize>,
    pub buffer_bytes: Option<usize>,
}

/// The relay's client, configured and not yet connected; `None` without `--upstream-*`.
pub fn prepare(options: &UpstreamOptions) -> Result<Option<Relay>, String> {
    let (api_url, ws_url) = match (&options.api_url, &options.ws_url) {
        (Some(api_url), Some(ws_url)) => (api_url.clone(), ws_url.clone()),
        (None, None) => {
            let others = [options.key_file.is_some(), options.device_id.is_some(), options.device_name.is_some()]
                .into_iter()
                .chain([options.ca_file.is_some(), options.buffer_messages.is_some(), options.buffer_bytes.is_some()]);
            if others.into_iter().any(|given| given) {
                return Err("the --upstream-* options need --upstream-api-url and --upstream-ws-url".into());
            }
            return Ok(None);
        }
        _ => return Err("the venue relay needs both --upstream-api-url and --upstream-ws-url".into()),
    };
    let mut config = Config::new(&read_key(options)?);
    config.api_url = api_url;
    config.ws_url = ws_url.clone();
    config.device_id = options.device_id.clone();
    config.device_name = options.device_name.clone();
    config.ca_file = options.ca_file.clone();
    config.echo = false;
    // The relay hands each message on at once, to hosts that pace their own
    // reads: pacing here would only add its delay to theirs.
    config.read_pace = Duration::ZERO;
    config.heartbeat_interval = HEARTBEAT;
    config.reconnect_base = RECONNECT_BASE;
    config.reconnect_max = RECONNECT_MAX;
    config.inbound_queue_capacity = INBOUND_CAPACITY;
    config.outbound_max_messages = options.buffer_messages.unwrap_or(DEFAULT_BUFFER_MESSAGES);
    config.outbound_max_bytes = options.buffer_bytes.unwrap_or(DEFAULT_BUFFER_BYTES);
    // The hub already accepted these messages: do not refuse them for size here.
    config.max_message_bytes = config.outbound_max_bytes.min(64 << 20);
    let client = Client::new(config).map_err(|error| format!("venue relay: {}", error.message))?;
    Ok(Some(Relay {
        client,
        ws_url: without_credentials(&ws_url),
        state: Mutex::new(RelayState::default()),
        counters: RelayCounters::default(),
        presence: Mutex::new(HashMap::new()),
    }))
}

/// The key from `--upstream-key-file` (when given) or the environment. Errors
/// never quote the file's contents.
fn read_key(options: &UpstreamOptions) -> Result<String, String> {
    let key = match &options.key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("--upstream-key-file {}: {error}", path.display()))?
            .trim()
            .to_string(),
        None => std::env::var(KEY_VARIABLE).unwrap_or_default().trim().to_string(),
    };
    if key.is_empty() {
        return Err(format!(
            "the venue relay needs the upstream API key: set {KEY_VARIABLE} or use --upstream-key-file FILE"
        ));
    }
    Ok(key)
}

#[derive(Default)]
struct RelayState {
    /// The relay's own connection id upstream.
    upstream_conn: Option<String>,
    /// Set while local clients have been told that upstream is unavailable.
    outage: Option<(String, Instant)>,
    last_publisher: HashMap<String, ConnId>,
    last_publisher_any: Option<ConnId>,
}

#[derive(Default)]
struct RelayCounters {
    relayed_in: AtomicU64,
    relayed_out: AtomicU64,
    /// Local publishes the client refused (never sent upstream).
    forward_refused: AtomicU64,
    /// Raw binary frames from an old upstream: they name no channel to deliver on.
    raw_skipped: AtomicU64,
    /// Upstream messages the hub refused to deliver (over `--max-message-bytes`).
    refused_in: AtomicU64,
    outages: AtomicU64,
}

/// Upstream's part of a channel's presence, without the relay itself.
#[derive(Default)]
struct UpstreamPresence {
    others: usize,
    members: Vec<String>,
    updated: Option<Instant>,
    requested: Option<Instant>,
}

pub struct Relay {
    client: Client,
    ws_url: String,
    state: Mutex<RelayState>,
    counters: RelayCounters,
    presence: Mutex<HashMap<String, UpstreamPresence>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Upstream messages refused by the hub: one stderr line per interval, not per message.
static REFUSALS: Throttle = Throttle::new();

/// A line on stdout: upstream state and errors no local client can be told about.
fn say(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "upstream: {line}");
    let _ = stdout.flush();
}

impl Relay {
    /// Connects and starts the thread that relays upstream events into the hub.
    pub fn start(self: &Arc<Self>, hub: Arc<Hub>) -> std::io::Result<()> {
        if let Err(error) = self.client.connect() {
            say(format_args!("cannot start: {}", error.message));
        }
        say(format_args!("connecting to {}", self.ws_url));
        let relay = self.clone();
        std::thread::Builder::new().name("datanet-relay".into()).spawn(move || loop {
            if let Some(event) = relay.client.wait_event(Duration::from_millis(500)) {
                relay.handle(&hub, event);
            }
        })?;
        Ok(())
    }

    /// The hub's hook for a local publish (its relayed envelope): hand it to the client.
    pub fn forward(&self, frame: &Message) {
        let Ok(text) = frame.to_text() else { return };
        let Ok(fields) = serde_json::from_str::<HashMap<String, &RawValue>>(text) else { return };
        let string = |name: &str| fields.get(name).and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let Some(channel) = string("ch") else { return };
        let publisher = string("from").as_deref().and_then(parse_conn_label);
        let sent = if fields.get("bin").map(|raw| raw.get()) == Some("true") {
            let data = string("b64").map(|b64| base64::decode(&b64));
            match data {
                Some(Ok(data)) => {
                    let content_type = string("ct").unwrap_or_default();
                    let meta = fields.get("meta").map(|raw| raw.get());
                    self.client.publish_binary(&channel, &data, &content_type, meta)
                }
                _ => return,
            }
        } else {
            match fields.get("d") {
                Some(data) => self.client.publish_json(&channel, data.get()),
                None => return,
            }
        };
        match sent {
            Ok(()) => {
                self.counters.relayed_out.fetch_add(1, Ordering::Relaxed);
                if let Some(publisher) = publisher {
                    let mut state = lock(&self.state);
                    if state.last_publisher.len() >= MAX_REMEMBERED_PUBLISHERS
                        && !state.last_publisher.contains_key(&channel)
                    {
                        state.last_publisher.clear();
                    }
                    state.last_publisher.insert(channel, publisher);
                    state.last_publisher_any = Some(publisher);
                }
            }
            Err(error) => {
                self.counters.forward_refused.fetch_add(1, Ordering::Relaxed);
                crate::log(format_args!("upstream: not forwarded on {channel}: {}", error.message));
            }
        }
    }

    pub fn subscribe(&self, channel: &str) {
        // Refused only for names the hub refuses too.
        let _ = self.client.subscribe(channel);
    }

    pub fn unsubscribe(&self, channel: &str) {
        let _ = self.client.unsubscribe(channel);
        lock(&self.presence).remove(channel);
    }

    /// While upstream is down, new local connections are told so at once.
    pub fn greeting(&self) -> Option<Message> {
        lock(&self.state).outage.as_ref().map(|(reason, _)| Message::text(unavailable_envelope(reason)))
    }

    fn handle(&self, hub: &Hub, event: Event) {
        match event {
            Event::Message(message) => self.relay_in(hub, &message),
            Event::Connected { conn_id } => self.connected(hub, conn_id),
            Event::Disconnected { reason } => self.lost(hub, &reason),
            Event::Error(error) => self.upstream_error(hub, *error),
            Event::SubAck { channel, occupancy } => {
                if let Some(occupancy) = occupancy {
                    self.update_presence(&channel, Presence { occupancy, members: Vec::new() }, false);
                }
            }
            Event::Presence { channel, result } => match *result {
                Ok(presence) => self.update_presence(&channel, presence, true),
                Err(_) => {
                    if let Some(entry) = lock(&self.presence).get_mut(&channel) {
                        entry.requested = None;
                    }
                }
            },
        }
    }

    fn relay_in(&self, hub: &Hub, message: &datanet::client::Message) {
        let payload = match &message.body {
            Body::Json(text) => match RawValue::from_string(text.clone()) {
                Ok(data) => Payload::Json(data),
                Err(_) => return,
            },
            Body::Binary { raw: true, .. } => {
                self.counters.raw_skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Body::Binary { data, content_type, meta, .. } => Payload::Binary {
                b64: base64::encode(data),
                content_type: Some(content_type.clone()),
                meta: meta.as_ref().and_then(|meta| RawValue::from_string(meta.clone()).ok()),
            },
        };
        let ts = u64::try_from(message.ts).unwrap_or(0);
        match hub.inject(&message.channel, &message.from, ts, payload) {
            Ok(()) => {
                self.counters.relayed_in.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                self.counters.refused_in.fetch_add(1, Ordering::Relaxed);
                REFUSALS.warn_with("upstream", "a message not delivered", &format!("on {}: {why}", message.channel));
            }
        }
    }

    fn connected(&self, hub: &Hub, conn_id: String) {
        let mut state = lock(&self.state);
        state.upstream_conn = Some(conn_id.clone());
        match state.outage.take() {
            None => say(format_args!("connected as {conn_id}")),
            Some((_, since)) => {
                drop(state);
                let buffered = self.client.status()["counters"]["queued_outbound"].as_u64().unwrap_or(0);
                say(format_args!(
                    "restored after {:.1} s, connected as {conn_id}; sending {buffered} buffered publish(es)",
                    since.elapsed().as_secs_f64()
                ));
                hub.send_raw(None, Message::text(restored_envelope()));
            }
        }
    }

    /// Tells local clients once per outage; they stay connected.
    fn lost(&self, hub: &Hub, reason: &str) {
        let mut state = lock(&self.state);
        if state.outage.is_some() {
            return;
        }
        state.outage = Some((reason.to_string(), Instant::now()));
        state.upstream_conn = None;
        drop(state);
        self.counters.outages.fetch_add(1, Ordering::Relaxed);
        say(format_args!("unavailable ({reason}); LAN traffic goes on, publishes for upstream are buffered"));
        hub.send_raw(None, Message::text(unavailable_envelope(reason)));
    }

    fn upstream_error(&self, hub: &Hub, error: DataNetError) {
        let code = error.code.as_str();
        if code == DEVICE_LIMIT_REACHED {
            self.lost(hub, &error.to_string());
            say(format_args!("refused for good: {error}; restart the relay once a device slot is free"));
            return;
        }
        if [CONNECTION_FAILED, CONNECTION_LOST, AUTHENTICATION_FAILED].contains(&code) {
            if self.client.state() != State::Connected {
                self.lost(hub, &error.to_string());
            }
            return;
        }
        let targets = self.error_targets(hub, &error);
        if targets.is_empty() {
            let channel = error.channel.as_deref().map(|ch| format!(" (channel {ch})")).unwrap_or_default();
            say(format_args!("error {error}{channel}"));
            return;
        }
        let frame = Message::text(local_error_envelope(&error));
        for target in targets {
            hub.send_raw(Some(target), frame.clone());
        }
    }

    /// The local connections an upstream error is about, where that is knowable:
    /// a refused subscription concerns the channel's local subscribers, a refused
    /// publish the channel's last local publisher.
    fn error_targets(&self, hub: &Hub, error: &DataNetError) -> Vec<ConnId> {
        let about_subscribing = error.operation.as_deref() == Some("sub") || error.code == TOPIC_LIMIT_REACHED;
        if let (Some(channel), true) = (&error.channel, about_subscribing) {
            // Not under the relay's lock: the hub calls into the relay under its own.
            return hub.members(channel).iter().filter_map(|label| parse_conn_label(label)).collect();
        }
        let state = lock(&self.state);
        match &error.channel {
            Some(channel) => state.last_publisher.get(channel).copied().into_iter().collect(),
            None if error.code == INSUFFICIENT_SCOPE && error.required.as_deref() == Some("pub") => {
                state.last_publisher_any.into_iter().collect()
            }
            None => Vec::new(),
        }
    }

    fn update_presence(&self, channel: &str, presence: Presence, with_members: bool) {
        let own = lock(&self.state).upstream_conn.clone();
        let mut members = presence.members;
        let before = members.len();
        members.retain(|member| Some(member) != own.as_ref());
        // A sub_ack counts the relay, which just subscribed; a presence answer
        // counts it when it lists it.
        let counted_self = if with_members { before != members.len() } else { true };
        let others =
            usize::try_from(presence.occupancy).unwrap_or(usize::MAX).saturating_sub(usize::from(counted_self));
        let mut cache = lock(&self.presence);
        let entry = cache.entry(channel.to_string()).or_default();
        entry.others = others;
        if with_members {
            entry.members = members;
            entry.requested = None;
        }
        entry.updated = Some(Instant::now());
    }

    /// Upstream's part of a channel's presence (others than the relay), as last
    /// heard; asks upstream again when that is older than `PRESENCE_FRESH`.
    pub fn presence(&self, channel: &str) -> Option<(usize, Vec<String>)> {
        let mut cache = lock(&self.presence);
        let entry = cache.entry(channel.to_string()).or_default();
        let stale = entry.updated.is_none_or(|updated| updated.elapsed() > PRESENCE_FRESH);
        let asked_recently = entry.requested.is_some_and(|asked| asked.elapsed() < PRESENCE_FRESH * 5);
        if stale && !asked_recently && self.client.state() == State::Connected {
            entry.requested = Some(Instant::now());
            let _ = self.client.request_presence(channel);
        }
        let answer = entry.updated.map(|_| (entry.others, entry.members.clone()));
        if entry.updated.is_none() && entry.requested.is_none() {
            cache.remove(channel);
        }
        answer
    }

    pub fn stats(&self) -> Value {
        let status = self.client.status();
        let counters = &status["counters"];
        let outage_secs = lock(&self.state).outage.as_ref().map(|(_, since)| since.elapsed().as_secs_f64());
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "state": status["state"],
            "url": self.ws_url,
            "conn_id": status["conn_id"],
            "outage_secs": outage_secs,
            "outages": count(&self.counters.outages),
            "relayed_in": count(&self.counters.relayed_in),
            "relayed_out": count(&self.counters.relayed_out),
            "sent": counters["sent"],
            "buffered": counters["queued_outbound"],
            "buffered_bytes": counters["queued_outbound_bytes"],
            "dropped": counters["dropped_outbound"],
            "dropped_inbound": counters["dropped_inbound"],
            "forward_refused": count(&self.counters.forward_refused),
            "raw_skipped": count(&self.counters.raw_skipped),
            "refused_in": count(&self.counters.refused_in),
            "reconnects": counters["reconnects"],
            "subscriptions": status["subscriptions"],
            "last_error": status["last_error"],
        })
    }
}

/// The URL for stats and stdout, with any `user:password@` replaced.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn unavailable_envelope(reason: &str) -> String {
    let message = format!(
        "the venue relay cannot reach upstream ({reason}); LAN publishing goes on and publishes for upstream are \
         buffered"
    );
    json!({"type": "error", "error": UPSTREAM_UNAVAILABLE, "code": UPSTREAM_UNAVAILABLE, "message": message})
        .to_string()
}

fn restored_envelope() -> String {
    let message = "the venue relay reaches upstream again; buffered publishes are being sent";
    json!({"type": "error", "error": UPSTREAM_RESTORED, "code": UPSTREAM_RESTORED, "message": message}).to_string()
}

/// An upstream error for the local client it concerns: same code and fields, the
/// message marked as upstream's.
fn local_error_envelope(error: &DataNetError) -> String {
    let mut envelope = match error.to_json() {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    envelope.retain(|_, value| !value.is_null());
    envelope.insert("type".into(), json!("error"));
    envelope.insert("error".into(), json!(error.code));
    envelope.insert("message".into(), json!(format!("upstream: {}", error.message)));
    envelope.insert("upstream".into(), json!(true));
    Value::Object(envelope).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_both_urls_and_a_key() {
        let only_api = UpstreamOptions { api_url: Some("http://x".into()), ..UpstreamOptions::default() };
        assert!(prepare(&only_api).err().unwrap().contains("both"));
        let stray = UpstreamOptions { device_id: Some("d".into()), ..UpstreamOptions::default() };
        assert!(prepare(&stray).err().unwrap().contains("need --upstream-api-url"));
        assert!(prepare(&UpstreamOptions::default()).unwrap().is_none());
        let missing = std::env::temp_dir().join("datanet-no-such-key-file");
        let with_file = UpstreamOptions {
            api_url: Some("http://x".into()),
            ws_url: Some("ws://x".into()),
            key_file: Some(missing),
            ..UpstreamOptions::default()
        };
        assert!(prepare(&with_file).err().unwrap().contains("--upstream-key-file"));
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(without_credentials("wss://ws.datanet.art"), "wss://ws.datanet.art");
        assert_eq!(without_credentials("wss://venue:s3cret@host:443/x@y"), "wss://***@host:443/x@y");
        assert_eq!(without_credentials("not a url"), "not a url");
    }

    #[test]
    fn local_errors_keep_code_and_fields() {
        let mut error = DataNetError::new("rate_limited", "slow down");
        error.retry_ms = Some(250);
        error.channel = Some("project.demo.x".into());
        let envelope: Value = serde_json::from_str(&local_error_envelope(&error)).unwrap();
        assert_eq!(
            envelope,
            json!({"type": "error", "error": "rate_limited", "code": "rate_limited", "message": "upstream: slow down",
                   "retry_ms": 250, "channel": "project.demo.x", "upstream": true})
        );
        let unavailable: Value = serde_json::from_str(&unavailable_envelope("connection refused")).unwrap();
        assert_eq!(unavailable["code"], UPSTREAM_UNAVAILABLE);
        assert!(unavailable["message"].as_str().unwrap().contains("connection refused"));
    }
}
