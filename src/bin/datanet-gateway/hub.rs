//! The gateway's shared state: open connections, channel subscriptions, the limits
//! set through the admin API, counters, and the freeze switch.
//!
//! One mutex guards everything that changes together (connections, channels, rate
//! windows, policy): every operation is a few map lookups, so contention stays low
//! and there is no lock ordering to get wrong (an outbox's own lock is only ever
//! taken inside it, never the other way round). Frames reach a connection through
//! its outbox, bounded in bytes, so a slow reader never blocks a publisher.
//!
//! The show tools (`show.rs`) hook in here: every local publish is offered to the
//! recorder and the venue relay, messages from a replay or from upstream enter
//! through `inject` and the same byte-bounded fan-out, and a channel's first and
//! last local subscriber open and close it upstream.

use crate::envelope::{self, Payload};
use crate::jwt::{Claims, JwtError, Signer};
use crate::keys::Keys;
use crate::limits::Limits;
use crate::outbox::{GlobalQueue, Outbox};
use crate::secure::AdminAccess;
use crate::show::{self, View};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Connections listed in the public `/stats`: the ones that lost the most.
const PUBLIC_STATS_CONNECTIONS: usize = 100;

pub type ConnId = u64;

/// The connection id clients see (`connId`, `from`, presence members).
pub fn conn_label(id: ConnId) -> String {
    format!("c-{id}")
}

pub fn parse_conn_label(label: &str) -> Option<ConnId> {
    label.strip_prefix("c-")?.parse().ok()
}

/// Gateway-wide counters, reported by `/stats` and `/_admin/stats`.
#[derive(Default)]
pub struct Stats {
    pub connections_total: AtomicU64,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub auth_requests: AtomicU64,
    pub frames_in: AtomicU64,
    /// Frames refused by a rate budget (per connection or per channel).
    pub rate_limited: AtomicU64,
    /// Frames over `--max-message-bytes`, read or about to be relayed.
    pub oversized: AtomicU64,
    /// Sessions refused at a connection cap.
    pub refused_connections: AtomicU64,
    /// TCP connections shed because too many were still in their handshakes.
    pub shed_connections: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Limits and grants set through the admin API. Keys appear only as key ids.
pub struct Policy {
    pub device_limits: HashMap<String, usize>,
    /// Messages per second, per channel.
    pub rate_limits: HashMap<String, u32>,
    pub scopes: HashMap<String, Vec<String>>,
    pub revoked: HashSet<String>,
    /// Most channels the project may have with subscribers at once.
    pub channel_cap: Option<usize>,
    pub token_ttl_secs: i64,
}

#[derive(Debug)]
pub enum AuthError {
    Token(JwtError),
    Revoked,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Token(error) => error.fmt(f),
            AuthError::Revoked => f.write_str("API key revoked"),
        }
    }
}

/// A connection cap was reached: `limit` and the message of `device_limit_reached`.
pub struct DeviceLimitReached {
    pub limit: usize,
    pub message: String,
}

pub struct TopicLimitReached(pub usize);
pub struct RateLimited {
    pub retry_ms: u64,
}

/// Why `inject` delivered nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum NotInjected {
    /// A binary payload whose base64 does not decode.
    InvalidBase64,
    /// The message envelope is over `--max-message-bytes`: this project's client
    /// would refuse it and reconnect, as for a local publish.
    TooLarge { size: usize, limit: usize },
}

impl std::fmt::Display for NotInjected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotInjected::InvalidBase64 => f.write_str("its binary payload is not valid base64"),
            NotInjected::TooLarge { size, limit } => {
                write!(f, "its {size}-byte envelope is over --max-message-bytes ({limit})")
            }
        }
    }
}

/// Why the hub ends a session from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// The admin's `drop`: cut at once, no close frame.
    Dropped,
    /// The key was revoked: told, then closed.
    Revoked,
}

/// What a new connection's task owns: its id, its outbox and its kill switch.
pub struct Registration {
    pub id: ConnId,
    pub outbox: Arc<Outbox>,
    pub kill: oneshot::Receiver<Kill>,
}

struct Connection {
    key_id: String,
    outbox: Arc<Outbox>,
    kill: oneshot::Sender<Kill>,
    channels: HashSet<String>,
}

struct RateWindow {
    started: Instant,
    count: u32,
}

/// Channel → subscribers. Ordered so presence lists members stably. A channel
/// with no subscribers is removed, so `len()` is the number of live channels.
type Channels = HashMap<String, BTreeMap<ConnId, Arc<Outbox>>>;

struct State {
    connections: HashMap<ConnId, Connection>,
    channels: Channels,
    rate_windows: HashMap<String, RateWindow>,
    policy: Policy,
}

/// How the hub is set up; everything but the limits comes from start-up checks.
pub struct Setup {
    pub project: String,
    pub secret: Vec<u8>,
    pub token_ttl_secs: i64,
    pub admin: AdminAccess,
    pub keys: Keys,
    pub limits: Limits,
    pub warnings: Vec<String>,
}

pub struct Hub {
    /// Project of tokens whose key names none.
    pub project: String,
    pub admin: AdminAccess,
    pub keys: Keys,
    pub limits: Limits,
    pub warnings: Vec<String>,
    pub stats: Stats,
    signer: Signer,
    state: Mutex<State>,
    frozen: watch::Sender<bool>,
    next_conn: AtomicU64,
    queued: Arc<GlobalQueue>,
    /// Recording, replay and the venue relay, when any of them runs.
    show: OnceLock<show::Hooks>,
}

impl Hub {
    pub fn new(setup: Setup) -> Self {
        let policy = Policy {
            device_limits: HashMap::new(),
            rate_limits: HashMap::new(),
            scopes: HashMap::new(),
            revoked: HashSet::new(),
            channel_cap: None,
            token_ttl_secs: setup.token_ttl_secs,
        };
        Hub {
            project: setup.project,
            admin: setup.admin,
            keys: setup.keys,
            queued: Arc::new(GlobalQueue::new(setup.limits.queued_bytes_total)),
            limits: setup.limits,
            warnings: setup.warnings,
            stats: Stats::default(),
            signer: Signer::new(&setup.secret),
            state: Mutex::new(State {
                connections: HashMap::new(),
                channels: HashMap::new(),
                rate_windows: HashMap::new(),
                policy,
            }),
            frozen: watch::Sender::new(false),
            next_conn: AtomicU64::new(1),
            show: OnceLock::new(),
        }
    }

    /// A panic elsewhere must not turn every later request into a panic too, and
    /// no critical section here leaves the state half-updated.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the show tools' hooks; only the first call has an effect.
    pub fn install_show(&self, hooks: show::Hooks) {
        let _ = self.show.set(hooks);
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn with_policy<R>(&self, change: impl FnOnce(&mut Policy) -> R) -> R {
        change(&mut self.state().policy)
    }

    /// Verifies a bearer token and that its key has not been revoked since.
    pub fn authorize(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.signer.verify(token, crate::unix_now_secs()).map_err(AuthError::Token)?;
        if self.state().policy.revoked.contains(&claims.sub) {
            return Err(AuthError::Revoked);
        }
        Ok(claims)
    }

    /// Admits a session under the global cap and its key's cap (the smallest of the
    /// admin's, the keys file's and `--max-connections-per-key`).
    pub fn register(&self, key_id: &str) -> Result<Registration, DeviceLimitReached> {
        let mut state = self.state();
        if state.connections.len() >= self.limits.max_connections {
            Stats::add(&self.stats.refused_connections, 1);
            let limit = self.limits.max_connections;
            let message = format!("the gateway already has {limit} open connection(s), its limit");
            return Err(DeviceLimitReached { limit, message });
        }
        let per_key = [
            state.policy.device_limits.get(key_id).copied(),
            self.keys.devices(key_id),
            Some(self.limits.max_connections_per_key).filter(|&limit| limit > 0),
        ];
        if let Some(limit) = per_key.into_iter().flatten().min() {
            let open = state.connections.values().filter(|conn| conn.key_id == key_id).count();
            if open >= limit {
                Stats::add(&self.stats.refused_connections, 1);
                let message = format!("this API key already has {limit} open connection(s)");
                return Err(DeviceLimitReached { limit, message });
            }
        }
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(self.limits.queued_bytes_per_connection, self.queued.clone()));
        // The session writes `connected` first, then its outbox: a client that
        // connects during an upstream outage hears of it right after `connected`.
        if let Some(greeting) = self.show.get().and_then(show::Hooks::greeting) {
            self.offer_all(std::iter::once(&outbox), &greeting);
        }
        let (kill_tx, kill_rx) = oneshot::channel();
        let connection =
            Connection { key_id: key_id.to_string(), outbox: outbox.clone(), kill: kill_tx, channels: HashSet::new() };
        state.connections.insert(id, connection);
        Stats::add(&self.stats.connections_total, 1);
        Ok(Registration { id, outbox, kill: kill_rx })
    }

    /// Forgets a connection and its subscriptions. Harmless when already forgotten.
    pub fn unregister(&self, id: ConnId) {
        let mut state = self.state();
        if let Some(connection) = state.connections.remove(&id) {
            for channel in &connection.channels {
                self.remove_subscriber(&mut state.channels, channel, id);
            }
        }
    }

    /// Subscribes and returns the channel's occupancy afterwards. Refused beyond
    /// `--max-subscriptions` channels per connection, or the admin's channel cap.
    pub fn subscribe(&self, id: ConnId, channel: &str) -> Result<usize, TopicLimitReached> {
        let mut state = self.state();
        let State { connections, channels, policy, .. } = &mut *state;
        let Some(connection) = connections.get_mut(&id) else {
            // Dropped by the admin a moment ago; its task is about to end.
            return Ok(channels.get(channel).map_or(0, BTreeMap::len));
        };
        let new_here = !connection.channels.contains(channel);
        if new_here && connection.channels.len() >= self.limits.max_subscriptions {
            return Err(TopicLimitReached(self.limits.max_subscriptions));
        }
        let opened = !channels.contains_key(channel);
        if opened {
            if let Some(cap) = policy.channel_cap {
                if channels.len() >= cap {
                    return Err(TopicLimitReached(cap));
                }
            }
        }
        let subscribers = channels.entry(channel.to_string()).or_default();
        subscribers.insert(id, connection.outbox.clone());
        connection.channels.insert(channel.to_string());
        let occupancy = subscribers.len();
        if let (true, Some(show)) = (opened, self.show.get()) {
            show.channel_opened(channel);
        }
        Ok(occupancy)
    }

    pub fn unsubscribe(&self, id: ConnId, channel: &str) {
        let mut state = self.state();
        if let Some(connection) = state.connections.get_mut(&id) {
            if connection.channels.remove(channel) {
                self.remove_subscriber(&mut state.channels, channel, id);
            }
        }
    }

    /// The one publish path: queues `frame` for every subscriber of `channel`,
    /// unless the channel's rate budget for the current one-second window is spent.
    pub fn publish(&self, channel: &str, frame: Message) -> Result<(), RateLimited> {
        let mut state = self.state();
        let State { channels, rate_windows, policy, .. } = &mut *state;
        if let Some(&per_second) = policy.rate_limits.get(channel) {
            take_rate_budget(rate_windows, channel, per_second, Instant::now())?;
        }
        Stats::add(&self.stats.published, 1);
        if let Some(show) = self.show.get() {
            show.published(channel, &frame);
        }
        if let Some(subscribers) = channels.get(channel) {
            self.offer_all(subscribers.values(), &frame);
        }
        Ok(())
    }

    /// Delivers a message that no local client published (the replay, the venue
    /// relay) with the given `from` and `ts`, through the same byte-bounded
    /// fan-out as a publish; no rate budget applies.
    pub fn inject(&self, channel: &str, from: &str, ts_ms: u64, payload: Payload) -> Result<(), NotInjected> {
        let frame = envelope::message_frame(channel, payload, ts_ms, from).map_err(|_| NotInjected::InvalidBase64)?;
        let limit = self.limits.max_message_bytes;
        if frame.len() > limit {
            Stats::add(&self.stats.oversized, 1);
            return Err(NotInjected::TooLarge { size: frame.len(), limit });
        }
        let frame = Message::text(frame);
        let state = self.state();
        if let Some(show) = self.show.get() {
            show.injected(channel, &frame);
        }
        if let Some(subscribers) = state.channels.get(channel) {
            self.offer_all(subscribers.values(), &frame);
        }
        Ok(())
    }

    /// Whether any channel with subscribers passes `wanted`.
    pub fn any_subscribed(&self, wanted: impl Fn(&str) -> bool) -> bool {
        self.state().channels.keys().any(|channel| wanted(channel))
    }

    /// Queues a raw frame for one connection or all of them; returns how many took it.
    pub fn send_raw(&self, target: Option<ConnId>, frame: Message) -> u64 {
        let state = self.state();
        let outboxes = state
            .connections
            .iter()
            .filter(|(id, _)| target.is_none_or(|target| **id == target))
            .map(|(_, connection)| &connection.outbox);
        self.offer_all(outboxes, &frame)
    }

    fn offer_all<'a>(&self, outboxes: impl Iterator<Item = &'a Arc<Outbox>>, frame: &Message) -> u64 {
        let (mut delivered, mut dropped) = (0, 0);
        for outbox in outboxes {
            let pushed = outbox.push(frame);
            delivered += u64::from(pushed.queued);
            dropped += pushed.dropped;
        }
        Stats::add(&self.stats.delivered, delivered);
        Stats::add(&self.stats.dropped, dropped);
        delivered
    }

    /// Ends every connection at once, without a close frame. Returns how many.
    pub fn drop_all(&self) -> usize {
        self.kill_where(Kill::Dropped, |_| true)
    }

    /// Refuses the key's tokens from now on and closes its live sessions.
    pub fn revoke(&self, key_id: &str) -> usize {
        self.with_policy(|policy| policy.revoked.insert(key_id.to_string()));
        self.kill_where(Kill::Revoked, |connection| connection.key_id == key_id)
    }

    fn kill_where(&self, kill: Kill, chosen: impl Fn(&Connection) -> bool) -> usize {
        let mut state = self.state();
        let ids: Vec<ConnId> = state.connections.iter().filter(|(_, c)| chosen(c)).map(|(&id, _)| id).collect();
        for id in &ids {
            if let Some(connection) = state.connections.remove(id) {
                for channel in &connection.channels {
                    self.remove_subscriber(&mut state.channels, channel, *id);
                }
                // Err only when the task already ended on its own.
                let _ = connection.kill.send(kill);
            }
        }
        ids.len()
    }

    /// Connection labels subscribed to `channel`, in connection order.
    pub fn members(&self, channel: &str) -> Vec<String> {
        let state = self.state();
        state
            .channels
            .get(channel)
            .map(|subscribers| subscribers.keys().map(|&id| conn_label(id)).collect())
            .unwrap_or_default()
    }

    /// Presence of a channel: its local subscribers, plus upstream's when relaying.
    pub fn presence(&self, channel: &str) -> (usize, Vec<String>) {
        let members = self.members(channel);
        match self.show.get() {
            Some(show) => show.presence(channel, members),
            None => (members.len(), members),
        }
    }

    /// The show tools' sections, added after the hub's lock is released (they
    /// read the relay client's status, which has locks of its own).
    fn with_show_stats(&self, mut stats: Map<String, Value>, view: View) -> Value {
        if let Some(show) = self.show.get() {
            show.add_stats(&mut stats, view);
        }
        Value::Object(stats)
    }

    /// The counters every stats view shares.
    fn totals(&self, state: &State) -> Map<String, Value> {
        let stats = &self.stats;
        let value = json!({
            "connections": state.connections.len(),
            "connections_total": Stats::get(&stats.connections_total),
            "published": Stats::get(&stats.published),
            "delivered": Stats::get(&stats.delivered),
            "dropped": Stats::get(&stats.dropped),
            "auth_requests": Stats::get(&stats.auth_requests),
            "frames_in": Stats::get(&stats.frames_in),
            "rate_limited": Stats::get(&stats.rate_limited),
            "oversized": Stats::get(&stats.oversized),
            "refused_connections": Stats::get(&stats.refused_connections),
            "shed_connections": Stats::get(&stats.shed_connections),
            "queued_bytes": self.queued.bytes(),
            "warnings": self.warnings,
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal"),
        }
    }

    /// `GET /_admin/stats`: everything, channel names and full key ids included.
    pub fn stats_json(&self) -> Value {
        let state = self.state();
        let mut stats = self.totals(&state);
        let subscriptions: Map<String, Value> =
            state.channels.iter().map(|(channel, subscribers)| (channel.clone(), json!(subscribers.len()))).collect();
        stats.insert("subscriptions".into(), Value::Object(subscriptions));
        let mut connections: Vec<(&ConnId, &Connection)> = state.connections.iter().collect();
        connections.sort_by_key(|(id, _)| **id);
        let per_connection = connections
            .into_iter()
            .map(|(&id, connection)| {
                json!({
                    "conn": conn_label(id), "key": connection.key_id, "channels": connection.channels.len(),
                    "dropped": connection.outbox.dropped(), "queued_bytes": connection.outbox.queued_bytes(),
                })
            })
            .collect();
        stats.insert("per_connection".into(), Value::Array(per_connection));
        drop(state);
        self.with_show_stats(stats, View::Admin)
    }

    /// `GET /stats`, open to anyone who reaches the gateway: counters, and the
    /// connections that lost frames, named by connection id and an 8-digit key-id
    /// prefix; the show tools' counters and states. No channel names, no secrets.
    pub fn public_stats_json(&self) -> Value {
        let state = self.state();
        let mut stats = self.totals(&state);
        let mut losing: Vec<(ConnId, &Connection)> = state
            .connections
            .iter()
            .map(|(&id, connection)| (id, connection))
            .filter(|(_, connection)| connection.outbox.dropped() > 0)
            .collect();
        losing.sort_by_key(|(id, connection)| (std::cmp::Reverse(connection.outbox.dropped()), *id));
        let per_connection = losing
            .into_iter()
            .take(PUBLIC_STATS_CONNECTIONS)
            .map(|(id, connection)| {
                json!({
                    "conn": conn_label(id), "key": &connection.key_id[..connection.key_id.len().min(8)],
                    "dropped": connection.outbox.dropped(), "queued_bytes": connection.outbox.queued_bytes(),
                })
            })
            .collect();
        stats.insert("slow_connections".into(), Value::Array(per_connection));
        drop(state);
        self.with_show_stats(stats, View::Public)
    }

    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    pub fn is_frozen(&self) -> bool {
        *self.frozen.borrow()
    }

    pub fn frozen_watch(&self) -> watch::Receiver<bool> {
        self.frozen.subscribe()
    }

    pub async fn wait_until_thawed(&self) {
        // Err only if the sender is gone, and the hub owns it.
        let _ = self.frozen_watch().wait_for(|frozen| !frozen).await;
    }

    /// Removes one subscriber; a channel left without any is closed (upstream too).
    fn remove_subscriber(&self, channels: &mut Channels, channel: &str, id: ConnId) {
        if let Some(subscribers) = channels.get_mut(channel) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                channels.remove(channel);
                if let Some(show) = self.show.get() {
                    show.channel_closed(channel);
                }
            }
        }
    }
}

/// Fixed one-second windows starting at the first publish after the previous one ended.
fn take_rate_budget(
    windows: &mut HashMap<String, RateWindow>,
    channel: &str,
    per_second: u32,
    now: Instant,
) -> Result<(), RateLimited> {
    let window = windows.entry(channel.to_string()).or_insert(RateWindow { started: now, count: 0 });
    let mut elapsed = now.duration_since(window.started);
    if elapsed >= RATE_WINDOW {
        *window = RateWindow { started: now, count: 0 };
        elapsed = Duration::ZERO;
    }
    if window.count >= per_second {
        let remaining = RATE_WINDOW - elapsed;
        let retry_ms = remaining.as_micros().div_ceil(1000).max(1);
        return Err(RateLimited { retry_ms: u64::try_from(retry_ms).unwrap_or(u64::MAX) });
    }
    window.count += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_with(limits: Limits) -> Hub {
        Hub::new(Setup {
            project: "demo".into(),
            secret: b"secret".to_vec(),
            token_ttl_secs: 600,
            admin: AdminAccess::new(true, None),
            keys: Keys::AnyDeveloperKey,
            limits,
            warnings: Vec::new(),
        })
    }

    fn hub() -> Hub {
        hub_with(Limits::default())
    }

    #[test]
    fn rate_windows_are_fixed_and_report_the_wait() {
        let mut windows = HashMap::new();
        let start = Instant::now();
        assert!(take_rate_budget(&mut windows, "a", 2, start).is_ok());
        assert!(take_rate_budget(&mut windows, "a", 2, start).is_ok());
        let refused = take_rate_budget(&mut windows, "a", 2, start + Duration::from_millis(300));
        assert_eq!(refused.err().map(|r| r.retry_ms), Some(700));
        let at_the_edge = take_rate_budget(&mut windows, "a", 2, start + Duration::from_micros(999_999));
        assert_eq!(at_the_edge.err().map(|r| r.retry_ms), Some(1));
        assert!(take_rate_budget(&mut windows, "a", 2, start + RATE_WINDOW).is_ok());
        assert!(take_rate_budget(&mut windows, "b", 2, start).is_ok());
    }

    #[test]
    fn subscriptions_follow_connections() {
        let hub = hub();
        let first = hub.register("k").ok().unwrap();
        let second = hub.register("k").ok().unwrap();
        assert_eq!(hub.subscribe(first.id, "ch").ok(), Some(1));
        assert_eq!(hub.subscribe(first.id, "ch").ok(), Some(1));
        assert_eq!(hub.subscribe(second.id, "ch").ok(), Some(2));
        assert_eq!(hub.members("ch"), vec![conn_label(first.id), conn_label(second.id)]);
        hub.unsubscribe(first.id, "ch");
        assert_eq!(hub.members("ch"), vec![conn_label(second.id)]);
        hub.unregister(second.id);
        assert!(hub.members("ch").is_empty());
        assert_eq!(hub.stats_json()["subscriptions"], json!({}));
    }

    #[test]
    fn limits_devices_connections_and_channels() {
        let hub = hub_with(Limits { max_connections: 2, ..Limits::default() });
        hub.with_policy(|policy| {
            policy.device_limits.insert("k".into(), 1);
            policy.channel_cap = Some(1);
        });
        let first = hub.register("k").ok().unwrap();
        assert!(matches!(hub.register("k"), Err(DeviceLimitReached { limit: 1, .. })));
        assert!(hub.register("other").is_ok());
        assert!(hub.subscribe(first.id, "a").is_ok());
        assert!(matches!(hub.subscribe(first.id, "b"), Err(TopicLimitReached(1))));
        hub.unregister(first.id);
        assert!(hub.register("k").is_ok());
        assert!(matches!(hub.register("third"), Err(DeviceLimitReached { limit: 2, .. })), "global cap");
        let few = hub_with(Limits { max_subscriptions: 2, ..Limits::default() });
        let conn = few.register("k").ok().unwrap();
        assert!(few.subscribe(conn.id, "a").is_ok() && few.subscribe(conn.id, "b").is_ok());
        assert!(matches!(few.subscribe(conn.id, "c"), Err(TopicLimitReached(2))));
        assert!(few.subscribe(conn.id, "a").is_ok(), "an existing subscription is no new one");
        assert_eq!(hub.stats_json()["refused_connections"], 2);
    }

    #[test]
    fn full_outboxes_drop_the_oldest_and_count() {
        let hub = hub_with(Limits { queued_bytes_per_connection: 10, ..Limits::default() });
        let subscriber = hub.register("k").ok().unwrap();
        hub.subscribe(subscriber.id, "ch").ok().unwrap();
        for _ in 0..13 {
            assert!(hub.publish("ch", Message::text("x")).is_ok());
        }
        let stats = hub.stats_json();
        assert_eq!((&stats["delivered"], &stats["dropped"], &stats["published"]), (&json!(13), &json!(3), &json!(13)));
        assert_eq!(stats["queued_bytes"], 10);
        let public = hub.public_stats_json();
        assert_eq!(public["slow_connections"][0]["dropped"], 3);
        assert_eq!(public["slow_connections"][0]["key"].as_str().map(str::len), Some(1), "key id prefix only");
        assert!(public.get("subscriptions").is_none(), "no channel names in the public view");
    }

    #[test]
    fn injected_messages_share_the_bounded_fan_out() {
        let hub = hub_with(Limits { queued_bytes_per_connection: 200, max_message_bytes: 150, ..Limits::default() });
        let subscriber = hub.register("k").ok().unwrap();
        hub.subscribe(subscriber.id, "project.demo.a").ok().unwrap();
        let json = |text: &str| Payload::Json(serde_json::value::RawValue::from_string(text.into()).unwrap());
        for n in 0..3 {
            assert_eq!(hub.inject("project.demo.a", "desk", 7, json(&format!("{{\"n\": {n}.50}}"))), Ok(()));
        }
        let stats = hub.stats_json();
        assert_eq!((&stats["delivered"], &stats["dropped"]), (&json!(3), &json!(1)), "{stats}");
        let mut frames = Vec::new();
        assert_eq!(subscriber.outbox.take(10, &mut frames), 1, "the subscriber is told of its loss");
        let newest = frames.last().unwrap().to_text().unwrap();
        assert!(newest.contains(r#""d":{"n": 2.50},"ts":7,"from":"desk""#), "{newest}");

        let too_large = hub.inject("project.demo.a", "desk", 7, json(&format!("\"{}\"", "x".repeat(150))));
        assert!(matches!(too_large, Err(NotInjected::TooLarge { limit: 150, .. })), "{too_large:?}");
        let binary = Payload::Binary { b64: "not base64!".into(), content_type: None, meta: None };
        assert_eq!(hub.inject("project.demo.a", "desk", 7, binary), Err(NotInjected::InvalidBase64));
        let stats = hub.stats_json();
        assert_eq!((&stats["delivered"], &stats["oversized"]), (&json!(3), &json!(1)), "{stats}");
    }

    #[test]
    fn drop_all_and_revoke_fire_kill_switches() {
        let hub = hub();
        let mut first = hub.register("k").ok().unwrap();
        let mut second = hub.register("k").ok().unwrap();
        let mut other = hub.register("other").ok().unwrap();
        hub.subscribe(first.id, "ch").ok().unwrap();
        assert_eq!(hub.revoke("other"), 1);
        assert_eq!(other.kill.try_recv(), Ok(Kill::Revoked));
        assert!(matches!(hub.authorize("x"), Err(AuthError::Token(_))));
        assert_eq!(hub.drop_all(), 2);
        assert_eq!(first.kill.try_recv(), Ok(Kill::Dropped));
        assert_eq!(second.kill.try_recv(), Ok(Kill::Dropped));
        assert_eq!(hub.stats_json()["connections"], json!(0));
        assert!(hub.members("ch").is_empty());
    }

    #[test]
    fn conn_labels_round_trip() {
        assert_eq!(parse_conn_label(&conn_label(42)), Some(42));
        assert_eq!(parse_conn_label("42"), None);
        assert_eq!(parse_conn_label("c-x"), None);
    }
}
