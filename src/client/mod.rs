//! The client runtime: one native thread per client runs a tokio current-thread
//! runtime with the connection task; the API side only touches bounded queues,
//! the last-value store and counters, so no call ever waits on the network.

mod config;
mod connection;
mod event;
mod paced;
mod proxy;
mod rows;
mod status;
mod store;
mod tls;

pub use config::{Config, TlsRoots};
pub use event::{Body, Event, Message, Pending};
pub use rows::RowsRead;
pub use status::State;
pub use store::Snapshot;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::protocol::channel::validate_channel;
use crate::protocol::envelope::{encode_publish_binary, encode_publish_json};
use crate::protocol::error::{DataNetError, INVALID_ARGUMENT, NOT_CONNECTED, PRESENCE_FAILED};
use crate::protocol::lighting::{build_dmx_frame, ArtDmxHeader};
use crate::protocol::outbound::OutboundBuffer;
use crate::protocol::pickle::SharedStrings;
use crate::protocol::proxy::{ProxyEnvironment, ProxySetting};
use crate::protocol::streams::{StreamPayload, Streams, MAX_STREAMS};
use crate::protocol::subscriptions::{Delivery, SubscriptionRegistry};
use event::{lock, Inbox, LatestSlots};
use paced::HostPolls;
use rows::RowRing;
use status::{Counters, Gauges, Health};
use store::LastValues;

/// How long `disconnect` (and so `free`) may take, even against a gateway that
/// stopped answering: TD must never hang on project close.
pub(crate) const DISCONNECT_BUDGET: Duration = Duration::from_millis(500);
/// Presence requests allowed in flight at once; more are refused with an event.
const MAX_PRESENCE_IN_FLIGHT: usize = 4;

/// State shared by the API side and the connection task.
pub(crate) struct Shared {
    pub config: Config,
    pub tls: Arc<rustls::ClientConfig>,
    pub http: ureq::Agent,
    /// Which connections go through a proxy.
    pub routes: proxy::Routes,
    /// Proxy credentials in every form they could be written, for redaction.
    pub proxy_secrets: Vec<String>,
    pub registry: Mutex<SubscriptionRegistry>,
    /// Bumped on every registry change so the task reconciles only when needed.
    pub registry_version: AtomicU64,
    pub outbound: Mutex<OutboundBuffer>,
    pub inbox: Inbox,
    /// Channels delivered as `Latest`: their newest message, waiting for a poll.
    pub latest: Mutex<LatestSlots>,
    /// The newest messages as table rows.
    pub rows: Mutex<RowRing>,
    pub store: Mutex<LastValues>,
    /// What the poll path reads every frame, published without its lock: entries in
    /// `latest`, the newest row's number, the store's values version.
    pub polled: Polled,
    pub counters: Counters,
    pub health: Mutex<Health>,
    /// The current JWT, for presence requests and redaction.
    pub token: Mutex<Option<String>>,
    pub presence_in_flight: AtomicUsize,
    /// Latest values published at a capped rate per channel.
    pub streams: Mutex<Streams>,
    /// Wakes the connection task: outbound data or a registry change is waiting.
    pub wake: tokio::sync::Notify,
    /// The strings pickled messages share (written on the socket thread, read by
    /// a poll that defines them in its batch).
    pub pickle_strings: Mutex<SharedStrings>,
    /// The host's poll cadence, which bounds the socket's read pace.
    pub host_polls: Arc<HostPolls>,
}

impl Shared {
    /// Records and reports an error, with the API key, token and proxy
    /// credentials scrubbed out.
    pub fn report_error(&self, error: DataNetError) {
        let error = self.redact(error);
        lock(&self.health).last_error = Some(error.clone());
        self.inbox.push(Event::Error(Box::new(error)));
    }

    pub fn redact(&self, error: DataNetError) -> DataNetError {
        let token = lock(&self.token).clone();
        let mut secrets = vec![self.config.api_key.as_str()];
        if let Some(token) = token.as_deref() {
            secrets.push(token);
        }
        secrets.extend(self.proxy_secrets.iter().map(String::as_str));
        error.redacted(&secrets)
    }

    pub fn set_state(&self, state: State) {
        lock(&self.health).state = state;
    }

    fn presence_error(&self, channel: &str, error: DataNetError) {
        self.inbox.push(Event::Presence { channel: channel.to_string(), result: Box::new(Err(error)) });
    }
}

/// Figures the host's poll reads every frame, kept as atomics beside the structures
/// they describe (updated under those structures' locks), so a poll with nothing
/// to do takes no lock.
#[derive(Default)]
pub(crate) struct Polled {
    pub latest: AtomicUsize,
    pub newest_row: AtomicU64,
    pub values_version: AtomicU64,
    /// The host polls for pickles: the socket thread writes each JSON message it
    /// will hand over as one (`Message::pickled`).
    pub pickles_wanted: AtomicBool,
}

struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    presence: tokio::sync::mpsc::Sender<String>,
    done: crossbeam_channel::Receiver<()>,
    thread: JoinHandle<()>,
}

/// One DataNet connection.
pub struct Client {
    shared: Arc<Shared>,
    worker: Mutex<Option<Worker>>,
}

impl Client {
    /// Makes a client; the proxy environment variables are read now.
    pub fn new(config: Config) -> Result<Client, DataNetError> {
        config.validate()?;
        let environment = ProxyEnvironment::from_lookup(|name| std::env::var(name).ok());
        let routes = proxy::Routes::resolve(&config, &environment)?;
        let mut proxy_secrets = routes.secrets();
        if let Ok(ProxySetting::Url(configured)) = config.proxy_setting() {
            proxy_secrets.extend(configured.secrets());
        }
        let tls = tls::client_config(config.tls_roots, config.ca_file.as_deref())?;
        let http = proxy::http_agent(&config, tls.clone(), routes.api.as_ref());
        let shared = Shared {
            tls,
            http,
            routes,
            proxy_secrets,
            registry: Mutex::new(SubscriptionRegistry::default()),
            registry_version: AtomicU64::new(0),
            outbound: Mutex::new(OutboundBuffer::new(config.outbound_max_messages, config.outbound_max_bytes)),
            inbox: Inbox::new(config.inbound_queue_capacity),
            latest: Mutex::new(LatestSlots::default()),
            rows: Mutex::new(RowRing::new(config.table_history)),
            store: Mutex::new(LastValues::new(config.max_numeric_channels)),
            polled: Polled::default(),
            counters: Counters::default(),
            health: Mutex::new(Health::default()),
            token: Mutex::new(None),
            presence_in_flight: AtomicUsize::new(0),
            streams: Mutex::new(Streams::default()),
            wake: tokio::sync::Notify::new(),
            pickle_strings: Mutex::new(SharedStrings::default()),
            host_polls: Arc::default(),
            config,
        };
        Ok(Client { shared: Arc::new(shared), worker: Mutex::new(None) })
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Starts the connection thread; returns at once. Calling it while running is a no-op.
    pub fn connect(&self) -> Result<(), DataNetError> {
        let mut worker = lock(&self.worker);
        if worker.as_ref().is_some_and(|w| !w.thread.is_finished()) {
            return Ok(());
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (presence, presence_rx) = tokio::sync::mpsc::channel(MAX_PRESENCE_IN_FLIGHT * 4);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let shared = self.shared.clone();
        shared.set_state(State::Connecting);
        let thread = std::thread::Builder::new()
            .name("datanet-client".into())
            .spawn(move || {
                connection::run_thread(shared, stop_rx, presence_rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| DataNetError::new(INVALID_ARGUMENT, format!("cannot start the client thread: {e}")))?;
        *worker = Some(Worker { stop, presence, done, thread });
        Ok(())
    }

    /// Stops the connection within `DISCONNECT_BUDGET`; safe to call twice or
    /// before `connect`. Subscriptions and queued publishes are kept for a later
    /// `connect`.
    pub fn disconnect(&self) {
        let Some(worker) = lock(&self.worker).take() else { return };
        let _ = worker.stop.send(true);
        if worker.done.recv_timeout(DISCONNECT_BUDGET).is_ok() {
            let _ = worker.thread.join();
        }
        // Otherwise the thread is left to finish on its own: it holds only its Arc.
        let mut health = lock(&self.shared.health);
        if health.state != State::Failed {
            health.state = State::Closed;
        }
        health.conn_id = None;
    }

    pub fn subscribe(&self, channel: &str) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        if lock(&self.shared.registry).add(channel) {
            self.registry_changed();
        }
        Ok(())
    }

    /// Removes one subscriber; the channel is unsubscribed (and its last values
    /// forgotten) when it was the last. Returns false when nothing was subscribed.
    pub fn unsubscribe(&self, channel: &str) -> Result<bool, DataNetError> {
        validate_channel(channel)?;
        let mut registry = lock(&self.shared.registry);
        let known = registry.contains(channel);
        if registry.remove(channel) {
            drop(registry);
            let mut store = lock(&self.shared.store);
            store.remove_channel(channel);
            self.shared.polled.values_version.store(store.values_version(), Ordering::Release);
            self.registry_changed();
        }
        Ok(known)
    }

    /// Chooses how a subscribed channel's messages reach `next_event`/`take_latest`.
    /// Returns false when the channel is not subscribed.
    pub fn set_delivery(&self, channel: &str, delivery: Delivery) -> Result<bool, DataNetError> {
        validate_channel(channel)?;
        Ok(lock(&self.shared.registry).set_delivery(channel, delivery))
    }

    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.shared.registry).channels().map(str::to_string).collect()
    }

    fn registry_changed(&self) {
        self.shared.registry_version.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Publishes JSON text (any JSON value). Queued when not connected.
    pub fn publish_json(&self, channel: &str, json_text: &str) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        let frame = encode_publish_json(channel, json_text)
            .map_err(|e| DataNetError::new(INVALID_ARGUMENT, format!("publish data is not valid JSON: {e}")))?;
        self.enqueue(frame)
    }

    /// Publishes bytes with a content type (empty = application/octet-stream) and
    /// optional metadata given as JSON object text.
    pub fn publish_binary(
        &self,
        channel: &str,
        data: &[u8],
        content_type: &str,
        meta_json: Option<&str>,
    ) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        let meta = parse_meta(meta_json)?;
        self.enqueue(encode_publish_binary(channel, data, content_type, meta.as_deref()))
    }

    fn enqueue(&self, frame: String) -> Result<(), DataNetError> {
        let max = self.shared.config.max_message_bytes;
        if frame.len() > max {
            return Err(DataNetError::new(
                INVALID_ARGUMENT,
                format!("message is {} bytes on the wire; max_message_bytes is {max}", frame.len()),
            ));
        }
        let dropped = lock(&self.shared.outbound).push(frame).map_err(|too_large| {
            DataNetError::new(
                INVALID_ARGUMENT,
                format!("message is {} bytes; outbound_max_bytes is {}", too_large.frame_bytes, too_large.max_bytes),
            )
        })?;
        Counters::add(&self.shared.counters.dropped_outbound, dropped);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Streams JSON: the channel sends its newest value at most `max_hz` times a
    /// second (0 = as often as offered); values replaced before sending are
    /// counted as coalesced.
    pub fn stream_json(&self, channel: &str, json_text: &str, max_hz: f64) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        encode_publish_json(channel, json_text)
            .map_err(|e| DataNetError::new(INVALID_ARGUMENT, format!("stream data is not valid JSON: {e}")))?;
        self.offer(channel, StreamPayload::Json(json_text.trim().to_string()), max_hz)
    }

    /// Streams a DMX frame built from `values` (PROTOCOL.md §9 rules) as `binary/dmx`.
    pub fn stream_dmx(
        &self,
        channel: &str,
        values: &[f64],
        length: i64,
        meta_json: Option<&str>,
        max_hz: f64,
    ) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        let meta = parse_meta(meta_json)?;
        self.offer(channel, StreamPayload::Dmx { frame: build_dmx_frame(values, length), meta }, max_hz)
    }

    /// Streams ArtDMX packets of `values` as `binary/artnet`; the Sequence field
    /// advances with every packet sent.
    pub fn stream_artnet(
        &self,
        channel: &str,
        values: &[f64],
        header: ArtDmxHeader,
        meta_json: Option<&str>,
        max_hz: f64,
    ) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        let meta = parse_meta(meta_json)?;
        let dmx = build_dmx_frame(values, values.len().max(2) as i64);
        self.offer(channel, StreamPayload::ArtNet { dmx, header, meta }, max_hz)
    }

    fn offer(&self, channel: &str, payload: StreamPayload, max_hz: f64) -> Result<(), DataNetError> {
        if max_hz.is_nan() || max_hz < 0.0 {
            return Err(DataNetError::new(INVALID_ARGUMENT, "max_hz must be 0 (no cap) or more"));
        }
        lock(&self.shared.streams)
            .offer(channel, payload, max_hz)
            .map_err(|_| DataNetError::new(INVALID_ARGUMENT, format!("more than {MAX_STREAMS} streamed channels")))?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Asks for a channel's presence; the answer arrives later as a `Presence` event.
    pub fn request_presence(&self, channel: &str) -> Result<(), DataNetError> {
        validate_channel(channel)?;
        let worker = lock(&self.worker);
        let Some(worker) = worker.as_ref().filter(|w| !w.thread.is_finished()) else {
            self.shared.presence_error(channel, DataNetError::new(NOT_CONNECTED, "presence needs a connection"));
            return Ok(());
        };
        if worker.presence.try_send(channel.to_string()).is_err() {
            let busy = DataNetError::new(PRESENCE_FAILED, "too many presence requests in flight");
            self.shared.presence_error(channel, busy.with_channel(channel));
        }
        Ok(())
    }

    /// From now on JSON messages arrive already written as pickles (a host in
    /// Python asks for them at each poll; the flag stays once set).
    pub fn want_pickles(&self) {
        if !self.shared.polled.pickles_wanted.load(Ordering::Relaxed) {
            self.shared.polled.pickles_wanted.store(true, Ordering::Relaxed);
        }
    }

    /// The host polls once a frame (or however often it does): the socket is
    /// never read at a pace above a share of that interval (`protocol::pacing`).
    pub fn polled(&self) {
        self.shared.host_polls.polled();
    }

    /// The strings pickled messages share, for the poll that defines them.
    pub fn pickle_strings(&self) -> &Mutex<SharedStrings> {
        &self.shared.pickle_strings
    }

    /// Takes the next event, if any.
    pub fn next_event(&self) -> Option<Event> {
        self.shared.inbox.pop()
    }

    /// Takes the next event, waiting up to `timeout` for one. For hosts with a
    /// thread of their own to spare (the gateway's venue relay); TD polls instead.
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        self.shared.inbox.pop_timeout(timeout)
    }

    /// Gives back an event taken by `next_event` that could not be delivered; it
    /// comes first next time.
    pub fn hold_event(&self, event: Event) {
        self.shared.inbox.hold(event);
    }

    /// Takes events a poll has delivered (see `Inbox::retire`); `events` is left empty.
    pub fn retire(&self, events: &mut Vec<Event>) {
        self.shared.inbox.retire(events);
    }

    /// Takes the newest message of every `Latest` channel that had one since the
    /// last call, with how many older ones each replaced.
    pub fn take_latest(&self) -> Vec<Pending> {
        if self.shared.polled.latest.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut latest = lock(&self.shared.latest);
        self.shared.polled.latest.store(0, Ordering::Release);
        latest.take_all()
    }

    /// Gives back an entry taken by `take_latest` that could not be delivered.
    pub fn give_back_latest(&self, entry: Pending) {
        let mut latest = lock(&self.shared.latest);
        latest.give_back(entry);
        self.shared.polled.latest.store(latest.len(), Ordering::Release);
    }

    /// Events waiting: queued events plus `Latest` channels with a message.
    pub fn pending_events(&self) -> usize {
        self.shared.inbox.len() + self.shared.polled.latest.load(Ordering::Acquire)
    }

    /// Appends to `out` the newest `max_rows` table rows after the row numbered
    /// `after` (see `rows` for the text layout).
    pub fn read_rows(&self, after: u64, max_rows: usize, out: &mut String) -> RowsRead {
        lock(&self.shared.rows).read(after, max_rows, out)
    }

    /// Sequence number of the newest table row (0 = none yet).
    pub fn newest_row(&self) -> u64 {
        self.shared.polled.newest_row.load(Ordering::Acquire)
    }

    /// Changes whenever a numeric last value changes.
    pub fn values_version(&self) -> u64 {
        self.shared.polled.values_version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self, known_names_generation: Option<u64>) -> Snapshot {
        lock(&self.shared.store).snapshot(known_names_generation)
    }

    pub fn last_message(&self, channel: &str) -> Option<Arc<Message>> {
        lock(&self.shared.store).message(channel)
    }

    pub fn value(&self, channel: &str, key: &str) -> Option<f64> {
        lock(&self.shared.store).value(channel, key)
    }

    pub fn state(&self) -> State {
        lock(&self.shared.health).state
    }

    /// Status as a JSON value: state, connection id, counters, last error, RTT,
    /// and the proxy each connection goes through.
    pub fn status(&self) -> Value {
        let health = lock(&self.shared.health).clone();
        let (queued_outbound, queued_outbound_bytes) = {
            let outbound = lock(&self.shared.outbound);
            (outbound.len(), outbound.bytes())
        };
        let (numeric_channels, dropped_values) = {
            let store = lock(&self.shared.store);
            (store.numeric_len(), store.dropped_numeric())
        };
        let (coalesced, streams_pending) = {
            let streams = lock(&self.shared.streams);
            (streams.coalesced(), streams.pending())
        };
        let gauges = Gauges {
            coalesced,
            streams_pending,
            dropped_inbound: self.shared.inbox.dropped(),
            events_pending: self.pending_events(),
            queued_outbound,
            queued_outbound_bytes,
            subscriptions: lock(&self.shared.registry).len(),
            numeric_channels,
            dropped_values,
        };
        let mut status = status::status_json(&health, &self.shared.counters, &gauges);
        if let Value::Object(fields) = &mut status {
            fields.insert("proxy".into(), self.shared.routes.to_json());
        }
        status
    }
}

/// Metadata given as JSON text: an object (kept as the caller's own text), or
/// null/absent for none.
fn parse_meta(meta_json: Option<&str>) -> Result<Option<String>, DataNetError> {
    let Some(text) = meta_json.map(str::trim) else { return Ok(None) };
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) if raw.get().starts_with('{') => Ok(Some(text.to_string())),
        Ok(raw) if raw.get() == "null" => Ok(None),
        _ => Err(DataNetError::new(INVALID_ARGUMENT, "metadata must be a JSON object")),
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.disconnect();
    }
}
