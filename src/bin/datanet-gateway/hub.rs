//! The gateway's shared state: open connections, channel subscriptions, the limits
//! set through the admin API, counters, and the freeze switch.
//!
//! One mutex guards everything that changes together (connections, channels, rate
//! windows, policy): every operation is a few map lookups, so contention stays low
//! and there is no lock ordering to get wrong. Frames reach a connection through its
//! bounded outbox, filled with `try_send` so a slow reader never blocks a publisher.

use crate::envelope::{self, InvalidBase64, Payload};
use crate::jwt::{Claims, JwtError, Signer};
use crate::show;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

/// Frames waiting for one connection's writer; beyond this they are dropped and counted.
pub const OUTBOX_CAPACITY: usize = 65_536;

const RATE_WINDOW: Duration = Duration::from_secs(1);

pub type ConnId = u64;

/// The connection id clients see (`connId`, `from`, presence members).
pub fn conn_label(id: ConnId) -> String {
    format!("c-{id}")
}

pub fn parse_conn_label(label: &str) -> Option<ConnId> {
    label.strip_prefix("c-")?.parse().ok()
}

/// Counters reported by `GET /_admin/stats`.
#[derive(Default)]
pub struct Stats {
    pub connections_total: AtomicU64,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub auth_requests: AtomicU64,
    pub frames_in: AtomicU64,
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

pub struct DeviceLimitReached(pub usize);
pub struct TopicLimitReached(pub usize);
pub struct RateLimited {
    pub retry_ms: u64,
}

/// What a new connection's task owns: its id, its outbox and the admin's kill switch.
pub struct Registration {
    pub id: ConnId,
    pub outbox: mpsc::Receiver<Message>,
    pub kill: oneshot::Receiver<()>,
}

struct Connection {
    key_id: String,
    outbox: mpsc::Sender<Message>,
    kill: oneshot::Sender<()>,
    channels: HashSet<String>,
}

struct RateWindow {
    started: Instant,
    count: u32,
}

struct State {
    connections: HashMap<ConnId, Connection>,
    /// Channel → subscribers. Ordered so presence lists members stably. A channel
    /// with no subscribers is removed, so `len()` is the project's channel count.
    channels: HashMap<String, BTreeMap<ConnId, mpsc::Sender<Message>>>,
    rate_windows: HashMap<String, RateWindow>,
    policy: Policy,
}

pub struct Hub {
    pub project: String,
    pub admin_enabled: bool,
    pub stats: Stats,
    signer: Signer,
    state: Mutex<State>,
    frozen: watch::Sender<bool>,
    next_conn: AtomicU64,
    /// Recording, replay and the venue relay, when any of them runs.
    show: OnceLock<show::Hooks>,
}

impl Hub {
    pub fn new(project: String, secret: &str, token_ttl_secs: i64, admin_enabled: bool) -> Self {
        let policy = Policy {
            device_limits: HashMap::new(),
            rate_limits: HashMap::new(),
            scopes: HashMap::new(),
            revoked: HashSet::new(),
            channel_cap: None,
            token_ttl_secs,
        };
        Hub {
            project,
            admin_enabled,
            stats: Stats::default(),
            signer: Signer::new(secret.as_bytes()),
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

    pub fn register(&self, key_id: &str) -> Result<Registration, DeviceLimitReached> {
        let mut state = self.state();
        if let Some(&limit) = state.policy.device_limits.get(key_id) {
            let open = state.connections.values().filter(|conn| conn.key_id == key_id).count();
            if open >= limit {
                return Err(DeviceLimitReached(limit));
            }
        }
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        if let Some(greeting) = self.show.get().and_then(show::Hooks::greeting) {
            let _ = outbox_tx.try_send(greeting);
        }
        let (kill_tx, kill_rx) = oneshot::channel();
        let connection =
            Connection { key_id: key_id.to_string(), outbox: outbox_tx, kill: kill_tx, channels: HashSet::new() };
        state.connections.insert(id, connection);
        Stats::add(&self.stats.connections_total, 1);
        Ok(Registration { id, outbox: outbox_rx, kill: kill_rx })
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

    /// Subscribes and returns the channel's occupancy afterwards.
    pub fn subscribe(&self, id: ConnId, channel: &str) -> Result<usize, TopicLimitReached> {
        let mut state = self.state();
        let State { connections, channels, policy, .. } = &mut *state;
        let Some(connection) = connections.get_mut(&id) else {
            // Dropped by the admin a moment ago; its task is about to end.
            return Ok(channels.get(channel).map_or(0, BTreeMap::len));
        };
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

    /// Queues `frame` for every subscriber of `channel`, unless the channel's rate
    /// budget for the current one-second window is spent.
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
    /// relay) with the given `from` and `ts`; no rate budget applies.
    pub fn inject(&self, channel: &str, from: &str, ts_ms: u64, payload: Payload) -> Result<(), InvalidBase64> {
        let frame = Message::text(envelope::message_frame(channel, payload, ts_ms, from)?);
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

    fn offer_all<'a>(&self, outboxes: impl Iterator<Item = &'a mpsc::Sender<Message>>, frame: &Message) -> u64 {
        let (mut delivered, mut dropped) = (0, 0);
        for outbox in outboxes {
            match outbox.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(TrySendError::Full(_)) => dropped += 1,
                // Its task has ended and is unregistering: nobody to count it for.
                Err(TrySendError::Closed(_)) => {}
            }
        }
        Stats::add(&self.stats.delivered, delivered);
        Stats::add(&self.stats.dropped, dropped);
        delivered
    }

    /// Ends every connection at once, without a close frame. Returns how many.
    pub fn drop_all(&self) -> usize {
        let mut state = self.state();
        for (channel, _) in state.channels.drain() {
            if let Some(show) = self.show.get() {
                show.channel_closed(&channel);
            }
        }
        let connections = std::mem::take(&mut state.connections);
        let count = connections.len();
        for (_, connection) in connections {
            // Err only when the task already ended on its own.
            let _ = connection.kill.send(());
        }
        count
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

    /// Presence of a channel: its local subscribers, plus the upstream's when relaying.
    pub fn presence(&self, channel: &str) -> (usize, Vec<String>) {
        let members = self.members(channel);
        match self.show.get() {
            Some(show) => show.presence(channel, members),
            None => (members.len(), members),
        }
    }

    pub fn stats_json(&self) -> Value {
        let state = self.state();
        let subscriptions: Map<String, Value> =
            state.channels.iter().map(|(channel, subscribers)| (channel.clone(), json!(subscribers.len()))).collect();
        let stats = &self.stats;
        let mut answer = json!({
            "connections": state.connections.len(),
            "connections_total": Stats::get(&stats.connections_total),
            "subscriptions": subscriptions,
            "published": Stats::get(&stats.published),
            "delivered": Stats::get(&stats.delivered),
            "dropped": Stats::get(&stats.dropped),
            "auth_requests": Stats::get(&stats.auth_requests),
            "frames_in": Stats::get(&stats.frames_in),
        });
        drop(state);
        if let (Some(show), Value::Object(fields)) = (self.show.get(), &mut answer) {
            show.add_stats(fields);
        }
        answer
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

    fn remove_subscriber(
        &self,
        channels: &mut HashMap<String, BTreeMap<ConnId, mpsc::Sender<Message>>>,
        channel: &str,
        id: ConnId,
    ) {
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

    fn hub() -> Hub {
        Hub::new("demo".into(), "secret", 600, true)
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
    fn limits_devices_and_channels() {
        let hub = hub();
        hub.with_policy(|policy| {
            policy.device_limits.insert("k".into(), 1);
            policy.channel_cap = Some(1);
        });
        let first = hub.register("k").ok().unwrap();
        assert!(matches!(hub.register("k"), Err(DeviceLimitReached(1))));
        assert!(hub.register("other").is_ok());
        assert!(hub.subscribe(first.id, "a").is_ok());
        assert!(matches!(hub.subscribe(first.id, "b"), Err(TopicLimitReached(1))));
        hub.unregister(first.id);
        assert!(hub.register("k").is_ok());
    }

    #[test]
    fn full_outboxes_drop_and_count() {
        let hub = hub();
        let subscriber = hub.register("k").ok().unwrap();
        hub.subscribe(subscriber.id, "ch").ok().unwrap();
        for _ in 0..OUTBOX_CAPACITY + 3 {
            assert!(hub.publish("ch", Message::text("x")).is_ok());
        }
        let stats = hub.stats_json();
        assert_eq!(stats["delivered"], json!(OUTBOX_CAPACITY));
        assert_eq!(stats["dropped"], json!(3));
        assert_eq!(stats["published"], json!(OUTBOX_CAPACITY + 3));
    }

    #[test]
    fn drop_all_fires_every_kill_switch() {
        let hub = hub();
        let mut first = hub.register("k").ok().unwrap();
        let mut second = hub.register("k").ok().unwrap();
        hub.subscribe(first.id, "ch").ok().unwrap();
        assert_eq!(hub.drop_all(), 2);
        assert!(first.kill.try_recv().is_ok());
        assert!(second.kill.try_recv().is_ok());
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
