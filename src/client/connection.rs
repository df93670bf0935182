//! The connection task: token, WebSocket, `connected`, then serve (read, write,
//! heartbeat, liveness) until the connection ends; reconnect on the jittered
//! schedule until stopped, out of attempts, or refused for good.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::event::{lock, Body, Event, Message};
use super::paced::PacedStream;
use super::proxy::{self, Route};
use super::status::{Counters, State};
use super::store::Numbers;
use super::Shared;
use crate::protocol::backoff::ReconnectPolicy;
use crate::protocol::envelope::{
    decode_binary_frame, decode_text, encode_subscribe, encode_unsubscribe, InboundMessage, Payload, ServerEnvelope,
    HEARTBEAT,
};
use crate::protocol::error::{
    DataNetError, AUTHENTICATION_FAILED, CONNECTION_FAILED, CONNECTION_LOST, GATEWAY_ERROR, NOT_CONNECTED,
    PRESENCE_FAILED,
};
use crate::protocol::jwt::{decode_claims, Claims};
use crate::protocol::lighting;
use crate::protocol::pickle::{self, Pickled};
use crate::protocol::rest::{join_url, parse_presence_response, parse_token_response, presence_path, TokenRequest};
use crate::protocol::subscriptions::Delivery;

type Ws = WebSocketStream<MaybeTlsStream<PacedStream>>;

/// Frames written per wake before reads get a turn.
const WRITE_BATCH: usize = 256;
/// Bytes asked of the socket per read (see `open`).
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Part of the disconnect budget given to the close handshake.
const CLOSE_BUDGET: Duration = Duration::from_millis(200);

/// The API side's handles into the task.
struct Control {
    stop: watch::Receiver<bool>,
    presence: mpsc::Receiver<String>,
}

/// How a connection (or an attempt at one) ended.
enum Ending {
    Stopped,
    Lost(DataNetError),
    Fatal(DataNetError),
}

/// Body of the client thread: runs the task on a current-thread runtime. A panic
/// inside is caught here, reported, and leaves the client `failed`; it never
/// reaches the C caller.
pub(super) fn run_thread(shared: Arc<Shared>, stop: watch::Receiver<bool>, presence: mpsc::Receiver<String>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            shared.report_error(DataNetError::new(GATEWAY_ERROR, format!("cannot start the runtime: {e}")));
            shared.set_state(State::Failed);
            return;
        }
    };
    let task = run(shared.clone(), Control { stop, presence });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(task)));
    if outcome.is_err() {
        shared.report_error(DataNetError::new(GATEWAY_ERROR, "internal error in the connection thread"));
        shared.set_state(State::Failed);
    }
    // A token request may still be running on the blocking pool: do not wait for it.
    runtime.shutdown_background();
}

async fn run(shared: Arc<Shared>, mut control: Control) {
    let config = &shared.config;
    let mut policy = ReconnectPolicy::new(config.reconnect_base, config.reconnect_max, config.max_reconnect_attempts);
    let mut tokens = TokenCache::default();
    let mut rng = Rng::seeded();
    let mut connected_before = false;
    loop {
        let (ending, uptime) = session(&shared, &mut control, &mut tokens, &mut connected_before).await;
        match ending {
            Ending::Stopped => break,
            Ending::Fatal(error) => {
                if uptime.is_some() {
                    shared.inbox.push(Event::Disconnected { reason: shared.redact(error.clone()).message });
                }
                shared.report_error(error);
                shared.set_state(State::Failed);
                idle_until_stopped(&shared, &mut control).await;
                return;
            }
            Ending::Lost(error) => {
                if let Some(uptime) = uptime {
                    policy.on_connection_ended(uptime);
                    let error = shared.redact(error);
                    shared.inbox.push(Event::Disconnected { reason: error.message.clone() });
                    lock(&shared.health).last_error = Some(error);
                } else {
                    shared.report_error(error);
                }
            }
        }
        let delay = policy.next_delay(rng.unit());
        {
            let mut health = lock(&shared.health);
            health.conn_id = None;
            health.reconnect_attempts = policy.attempts();
            health.state = if delay.is_some() { State::Reconnecting } else { State::Failed };
        }
        let Some(delay) = delay else {
            let attempts = config.max_reconnect_attempts;
            shared.report_error(DataNetError::new(
                CONNECTION_FAILED,
                format!("gave up after {attempts} reconnect attempts (max_reconnect_attempts)"),
            ));
            idle_until_stopped(&shared, &mut control).await;
            return;
        };
        if guarded(&shared, &mut control, tokio::time::sleep(delay)).await.is_none() {
            break;
        }
    }
    shared.set_state(State::Closed);
}

/// One attempt: token, handshake, serve. The uptime is `Some` when the
/// connection got as far as `connected`.
async fn session(
    shared: &Arc<Shared>,
    control: &mut Control,
    tokens: &mut TokenCache,
    connected_before: &mut bool,
) -> (Ending, Option<Duration>) {
    let token = match guarded(shared, control, tokens.get(shared)).await {
        None => return (Ending::Stopped, None),
        Some(Err(error)) => return (Ending::Lost(error), None),
        Some(Ok(token)) => token,
    };
    let timeout = shared.config.connect_timeout;
    let tunnel = match &shared.routes.ws {
        None => None,
        Some(route) => match guarded(shared, control, tokio::time::timeout(timeout, proxy::tunnel(route))).await {
            None => return (Ending::Stopped, None),
            Some(Err(_elapsed)) => return (Ending::Lost(proxy::timed_out(route, timeout)), None),
            Some(Ok(Err(error))) => return (Ending::Lost(error), None),
            Some(Ok(Ok(stream))) => Some(stream),
        },
    };
    let opening = tokio::time::timeout(timeout, open(shared, &token, tunnel));
    let (mut ws, conn_id) = match guarded(shared, control, opening).await {
        None => return (Ending::Stopped, None),
        Some(Err(_elapsed)) => {
            let message = format!("no `connected` from the gateway within {} ms", timeout.as_millis());
            return (Ending::Lost(DataNetError::new(CONNECTION_FAILED, message)), None);
        }
        Some(Ok(Err(OpenError::Unauthorized(error)))) => {
            tokens.invalidate(shared);
            return (Ending::Lost(error), None);
        }
        Some(Ok(Err(OpenError::Refused(Ending::Lost(error))))) if error.code == AUTHENTICATION_FAILED => {
            tokens.invalidate(shared);
            return (Ending::Lost(error), None);
        }
        Some(Ok(Err(OpenError::Refused(ending)))) => return (ending, None),
        Some(Ok(Ok((ws, conn_id)))) => {
            on_connected(shared, conn_id.clone(), connected_before);
            (ws, conn_id)
        }
    };
    let up_since = Instant::now();
    let ending = serve(shared, control, &mut ws, &conn_id).await;
    if let Ending::Stopped = ending {
        let _ = tokio::time::timeout(CLOSE_BUDGET, ws.close(None)).await;
    }
    (ending, Some(up_since.elapsed()))
}

fn on_connected(shared: &Shared, conn_id: String, connected_before: &mut bool) {
    if *connected_before {
        Counters::add(&shared.counters.reconnects, 1);
    }
    *connected_before = true;
    {
        let mut health = lock(&shared.health);
        health.state = State::Connected;
        health.conn_id = Some(conn_id.clone());
    }
    shared.inbox.push(Event::Connected { conn_id });
}

enum OpenError {
    /// The upgrade was refused for the token: fetch a new one next time.
    Unauthorized(DataNetError),
    Refused(Ending),
}

/// WebSocket handshake with the bearer subprotocol (over the proxy's tunnel when
/// there is one), then wait for `connected`.
async fn open(shared: &Shared, token: &str, tunnel: Option<TcpStream>) -> Result<(Ws, String), OpenError> {
    let config = &shared.config;
    let url = join_url(&config.ws_url, "/ws");
    let failed = |message: String| OpenError::Refused(Ending::Lost(DataNetError::new(CONNECTION_FAILED, message)));
    let mut request = url.as_str().into_client_request().map_err(|e| failed(format!("invalid ws_url: {e}")))?;
    let protocols = HeaderValue::from_str(&format!("bearer, {token}"))
        .map_err(|_| failed("the token cannot be sent in a header".into()))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocols);
    // tungstenite zero-fills its whole read buffer (128 KiB by default) before
    // every socket read: at a message per read that memset was the socket
    // thread's largest cost. 16 KiB still takes many small messages per read.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let connector = Some(Connector::Rustls(shared.tls.clone()));
    let stream = match tunnel {
        Some(stream) => stream,
        None => {
            let target = &shared.routes.ws_target;
            let stream = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| failed(format!("cannot connect to {url}: {e}")))?;
            // Messages are small and go out as soon as they are written.
            let _ = stream.set_nodelay(true);
            stream
        }
    };
    let reads = shared.counters.socket_reads.clone();
    let stream = PacedStream::new(stream, config.read_pace, shared.host_polls.clone(), reads);
    let handshake = tokio_tungstenite::client_async_tls_with_config(request, stream, Some(ws_config), connector).await;
    let (mut ws, _response) = handshake.map_err(|e| match e {
        tungstenite::Error::Http(response) if matches!(response.status().as_u16(), 401 | 403) => {
            let status = response.status().as_u16();
            OpenError::Unauthorized(
                DataNetError::new(AUTHENTICATION_FAILED, format!("WebSocket upgrade refused (HTTP {status})"))
                    .with_status(status),
            )
        }
        tungstenite::Error::Http(response) => {
            failed(format!("WebSocket upgrade refused (HTTP {})", response.status().as_u16()))
        }
        other => failed(format!("cannot connect to {url}: {other}")),
    })?;
    loop {
        let envelope = match ws.next().await {
            None => return Err(failed("the gateway closed the connection before `connected`".into())),
            Some(Err(e)) => return Err(failed(format!("connection failed before `connected`: {e}"))),
            Some(Ok(WsMessage::Text(text))) => decode_text(text.as_str()),
            Some(Ok(WsMessage::Binary(bytes))) => decode_binary_frame(bytes.to_vec()),
            Some(Ok(WsMessage::Close(_))) => {
                return Err(failed("the gateway closed the connection before `connected`".into()))
            }
            Some(Ok(_)) => continue,
        };
        match envelope {
            Ok(ServerEnvelope::Connected { conn_id, .. }) => return Ok((ws, conn_id)),
            Ok(ServerEnvelope::Error(error)) if error.is_fatal() => {
                return Err(OpenError::Refused(Ending::Fatal(error)))
            }
            Ok(ServerEnvelope::Error(error)) => return Err(OpenError::Refused(Ending::Lost(error))),
            // Non-JSON and other frames before `connected` are skipped (PROTOCOL.md §2).
            _ => continue,
        }
    }
}

/// Frames waiting to be written on the current connection.
#[derive(Default)]
struct Writer {
    /// Subscriptions as the gateway knows them on this connection.
    subscribed: BTreeSet<String>,
    seen_registry_version: Option<u64>,
    /// Sub/unsub/heartbeat frames; they go before publishes.
    control: VecDeque<Utf8Bytes>,
    /// A publish taken from the outbound buffer and not yet accepted by the
    /// socket; it goes back to the buffer if the connection ends.
    in_flight: Option<Utf8Bytes>,
    /// Streamed values taken when due and not yet accepted by the socket.
    streamed: VecDeque<Utf8Bytes>,
    /// When the next streamed value becomes due.
    next_stream_due: Option<Instant>,
}

impl Writer {
    fn reconcile(&mut self, shared: &Shared) {
        let version = shared.registry_version.load(Ordering::Acquire);
        if self.seen_registry_version == Some(version) {
            return;
        }
        self.seen_registry_version = Some(version);
        let registry = lock(&shared.registry);
        let wanted: BTreeSet<&str> = registry.channels().collect();
        for channel in &wanted {
            if !self.subscribed.contains(*channel) {
                self.control.push_back(encode_subscribe(channel).into());
                self.subscribed.insert(channel.to_string());
            }
        }
        let gone: Vec<String> = self.subscribed.iter().filter(|c| !wanted.contains(c.as_str())).cloned().collect();
        for channel in gone {
            self.control.push_back(encode_unsubscribe(&channel).into());
            self.subscribed.remove(&channel);
        }
    }

    /// Writes control frames, then up to a batch of publishes, then flushes.
    async fn write(&mut self, shared: &Shared, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        self.reconcile(shared);
        let counters = &shared.counters;
        let mut written = 0;
        while let Some(frame) = self.control.front() {
            let len = frame.len() as u64;
            ws.feed(WsMessage::Text(frame.clone())).await?;
            self.control.pop_front();
            Counters::add(&counters.bytes_out, len);
        }
        let due = lock(&shared.streams).take_due(std::time::Instant::now());
        self.streamed.extend(due.into_iter().map(Utf8Bytes::from));
        while let Some(frame) = self.streamed.front() {
            let len = frame.len() as u64;
            ws.feed(WsMessage::Text(frame.clone())).await?;
            self.streamed.pop_front();
            Counters::add(&counters.sent, 1);
            Counters::add(&counters.bytes_out, len);
        }
        self.next_stream_due = lock(&shared.streams).next_due().map(Instant::from_std);
        while written < WRITE_BATCH {
            if self.in_flight.is_none() {
                self.in_flight = lock(&shared.outbound).pop().map(Utf8Bytes::from);
            }
            let Some(frame) = self.in_flight.as_ref() else { break };
            let len = frame.len() as u64;
            ws.feed(WsMessage::Text(frame.clone())).await?;
            self.in_flight = None;
            Counters::add(&counters.sent, 1);
            Counters::add(&counters.bytes_out, len);
            written += 1;
        }
        ws.flush().await?;
        if !lock(&shared.outbound).is_empty() {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Gives an unwritten publish back to the outbound buffer, ahead of the rest;
    /// streamed values that were due but not written are counted as dropped (the
    /// stream's next value supersedes them).
    fn requeue(&mut self, shared: &Shared) {
        Counters::add(&shared.counters.dropped_outbound, self.streamed.len() as u64);
        self.streamed.clear();
        if let Some(frame) = self.in_flight.take() {
            let dropped = lock(&shared.outbound).push_front(frame.as_str().to_string());
            Counters::add(&shared.counters.dropped_outbound, dropped);
        }
    }
}

/// Reads, writes, heartbeats and watches liveness until the connection ends.
async fn serve(shared: &Arc<Shared>, control: &mut Control, ws: &mut Ws, conn_id: &str) -> Ending {
    let every = shared.config.heartbeat_interval;
    // The first heartbeat goes out at once, so the round-trip time is known right
    // after `connected` instead of one interval (30 s by default) later.
    let mut heartbeat = tokio::time::interval_at(Instant::now(), every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_frame_at = Instant::now();
    let mut heartbeat_sent_at: Option<Instant> = None;
    let mut writer = Writer::default();
    let mut retired = Vec::new();
    // The futures every turn of the loop waits on live as long as the loop: made
    // afresh per frame, each registered and removed a timer or a waiter per message.
    let stop = stop_requested(&mut control.stop);
    tokio::pin!(stop);
    let silence = tokio::time::sleep_until(last_frame_at + every * 2);
    tokio::pin!(silence);
    let wake = shared.wake.notified();
    tokio::pin!(wake);
    shared.wake.notify_one();
    let ending = loop {
        shared.inbox.free_retired(&mut retired);
        let write_needed = tokio::select! {
            biased;
            _ = &mut stop => break Ending::Stopped,
            _ = &mut silence => {
                let dead_at = last_frame_at + every * 2;
                if dead_at > Instant::now() {
                    silence.as_mut().reset(dead_at);
                    continue;
                }
                let silent = (every * 2).as_millis();
                break Ending::Lost(DataNetError::new(CONNECTION_LOST, format!("no frame from the gateway for {silent} ms")));
            }
            frame = ws.next() => {
                last_frame_at = Instant::now();
                match frame {
                    Some(Ok(frame)) => {
                        if let Some(ending) = on_frame(shared, frame, &mut heartbeat_sent_at, conn_id) {
                            break ending;
                        }
                        false
                    }
                    Some(Err(e)) => break Ending::Lost(DataNetError::new(CONNECTION_LOST, format!("connection lost: {e}"))),
                    None => break Ending::Lost(DataNetError::new(CONNECTION_LOST, "the gateway closed the connection")),
                }
            }
            _ = &mut wake => {
                wake.set(shared.wake.notified());
                true
            }
            _ = sleep_until_some(writer.next_stream_due) => true,
            _ = heartbeat.tick() => {
                writer.control.push_back(Utf8Bytes::from_static(HEARTBEAT));
                heartbeat_sent_at = Some(Instant::now());
                true
            }
            Some(channel) = control.presence.recv() => {
                start_presence(shared, channel);
                false
            }
        };
        if !write_needed {
            continue;
        }
        // Writing can stall when the gateway stops reading: keep it stoppable and
        // inside the liveness deadline.
        let dead_at = last_frame_at + every * 2;
        let outcome = tokio::select! {
            biased;
            _ = &mut stop => Some(Ending::Stopped),
            _ = tokio::time::sleep_until(dead_at) => {
                Some(Ending::Lost(DataNetError::new(CONNECTION_LOST, "the gateway stopped accepting data")))
            }
            result = writer.write(shared, ws) => {
                result.err().map(|e| Ending::Lost(DataNetError::new(CONNECTION_LOST, format!("connection lost: {e}"))))
            }
        };
        if let Some(ending) = outcome {
            break ending;
        }
    };
    writer.requeue(shared);
    ending
}

/// Handles one frame; returns how the connection ends, if this frame ends it.
fn on_frame(
    shared: &Shared,
    frame: WsMessage,
    heartbeat_sent_at: &mut Option<Instant>,
    conn_id: &str,
) -> Option<Ending> {
    let envelope = match frame {
        WsMessage::Text(text) => {
            Counters::add(&shared.counters.bytes_in, text.len() as u64);
            decode_text(text.as_str())
        }
        WsMessage::Binary(bytes) => {
            Counters::add(&shared.counters.bytes_in, bytes.len() as u64);
            decode_binary_frame(bytes.to_vec())
        }
        WsMessage::Close(frame) => {
            let why = frame.map(|f| format!(" ({} {})", u16::from(f.code), f.reason)).unwrap_or_default();
            return Some(Ending::Lost(DataNetError::new(
                CONNECTION_LOST,
                format!("the gateway closed the connection{why}"),
            )));
        }
        _ => return None,
    };
    match envelope {
        Err(error) => {
            Counters::add(&shared.counters.malformed, 1);
            shared.report_error(error);
        }
        Ok(ServerEnvelope::Message(message)) if !shared.config.echo && message.from == conn_id => {
            Counters::add(&shared.counters.echo_suppressed, 1);
        }
        Ok(ServerEnvelope::Message(message)) => deliver(shared, message),
        Ok(ServerEnvelope::SubAck { channel, occupancy }) => shared.inbox.push(Event::SubAck { channel, occupancy }),
        Ok(ServerEnvelope::HeartbeatAck { .. }) => {
            if let Some(sent) = heartbeat_sent_at.take() {
                lock(&shared.health).rtt_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Ok(ServerEnvelope::Error(error)) if error.is_fatal() => return Some(Ending::Fatal(error)),
        Ok(ServerEnvelope::Error(error)) => shared.report_error(error),
        Ok(ServerEnvelope::Connected { .. } | ServerEnvelope::UnsubAck { .. } | ServerEnvelope::Unknown) => {}
    }
    None
}

/// Parsed once here: the last-value store gets the numbers (flattened JSON, or
/// the slots of DMX, Art-Net and float-vector payloads) and the table rows get a
/// formatted row; then the channel's delivery decides whether the host's poll sees
/// the message, only its newest, or nothing. JSON stays the gateway's own text.
fn deliver(shared: &Shared, message: InboundMessage) {
    let counters = &shared.counters;
    Counters::add(&counters.received, 1);
    counters.last_message_ms.store(unix_ms(), Ordering::Relaxed);
    let InboundMessage { channel, from, ts, payload } = message;
    // Messages of channels no longer subscribed (in flight at an unsub) and raw
    // frames still reach the host as events; only subscribed channels feed the store.
    let delivery = lock(&shared.registry).delivery(&channel);
    let mut binary_numbers = None;
    let body = match payload {
        Payload::Json(text) => Body::Json(text),
        Payload::Binary { data, content_type, meta, raw } => {
            let normalize = shared.config.dmx_normalize;
            match lighting::binary_numbers(&content_type, &data, meta.as_deref(), normalize) {
                Ok(Some(numbers)) => binary_numbers = Some(numbers),
                Ok(None) => Counters::add(&counters.binary_other, 1),
                Err(error) => {
                    // Still delivered as bytes; counted and visible, not an event per frame.
                    Counters::add(&counters.binary_invalid, 1);
                    lock(&shared.health).last_error = Some(error.with_channel(&channel));
                }
            }
            Body::Binary { data, content_type, meta, raw }
        }
    };
    let wanted = delivery != Some(Delivery::StoreOnly) && shared.polled.pickles_wanted.load(Ordering::Relaxed);
    let pickled = match &body {
        Body::Json(text) if wanted => pickled(shared, &channel, &from, ts, text),
        _ => None,
    };
    let message = Arc::new(Message { channel, from, ts, body, pickled });
    if delivery.is_some() {
        let numbers = match (&message.body, &binary_numbers) {
            (Body::Json(text), _) => Some(Numbers::Json(text)),
            (_, Some(binary)) => Some(Numbers::Indexed(binary)),
            _ => None,
        };
        let mut store = lock(&shared.store);
        store.record(message.clone(), numbers);
        shared.polled.values_version.store(store.values_version(), Ordering::Release);
    }
    {
        let mut rows = lock(&shared.rows);
        rows.push(&message);
        shared.polled.newest_row.store(rows.newest_seq(), Ordering::Release);
    }
    match delivery.unwrap_or_default() {
        Delivery::Every => shared.inbox.push(Event::Message(message)),
        Delivery::Latest => {
            let mut latest = lock(&shared.latest);
            if latest.offer(message) {
                Counters::add(&counters.replaced_latest, 1);
            }
            shared.polled.latest.store(latest.len(), Ordering::Release);
        }
        Delivery::StoreOnly => {}
    }
}

/// One message as the pickle the host's poll will copy; `None` if the text is not
/// JSON after all (the poll then hands it over as text).
fn pickled(shared: &Shared, channel: &str, from: &str, ts: i64, text: &str) -> Option<Pickled> {
    thread_local! {
        static MEMO: std::cell::RefCell<pickle::Memo> = std::cell::RefCell::default();
    }
    let mut out = Vec::with_capacity(text.len() + channel.len() + from.len() + 32);
    let mut strings = lock(&shared.pickle_strings);
    let written = MEMO.with(|memo| {
        pickle::write_message(&mut out, &mut memo.borrow_mut(), Some(&mut strings), channel, from, ts, text)
    });
    written.ok().map(|slots| Pickled { bytes: out.into_boxed_slice(), slots })
}

/// Runs `work` while still answering stop and presence requests; `None` = stopped.
async fn guarded<F: Future>(shared: &Arc<Shared>, control: &mut Control, work: F) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            _ = stop_requested(&mut control.stop) => return None,
            Some(channel) = control.presence.recv() => start_presence(shared, channel),
            output = &mut work => return Some(output),
        }
    }
}

async fn idle_until_stopped(shared: &Arc<Shared>, control: &mut Control) {
    guarded(shared, control, std::future::pending::<()>()).await;
}

/// Sleeps until `when`, or forever without one.
async fn sleep_until_some(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

/// Resolves once a stop was requested (or the API side is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Presence is REST: done on the blocking pool, answered as an event.
fn start_presence(shared: &Arc<Shared>, channel: String) {
    let Some(token) = lock(&shared.token).clone() else {
        let error = DataNetError::new(NOT_CONNECTED, "presence needs a token; not connected yet");
        shared
            .inbox
            .push(Event::Presence { channel: channel.clone(), result: Box::new(Err(error.with_channel(&channel))) });
        return;
    };
    if shared.presence_in_flight.fetch_add(1, Ordering::AcqRel) >= super::MAX_PRESENCE_IN_FLIGHT {
        shared.presence_in_flight.fetch_sub(1, Ordering::AcqRel);
        let error = DataNetError::new(PRESENCE_FAILED, "too many presence requests in flight").with_channel(&channel);
        shared.inbox.push(Event::Presence { channel, result: Box::new(Err(error)) });
        return;
    }
    let project = decode_claims(&token).ok().and_then(|claims| claims.pid);
    let url = join_url(&shared.config.api_url, &presence_path(&channel, project.as_deref()));
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let response = shared.http.get(&url).set("Authorization", &format!("Bearer {token}")).call();
        let result = match response {
            Ok(response) => {
                let status = response.status();
                let body = response.into_string().unwrap_or_default();
                parse_presence_response(&channel, status, &body)
            }
            Err(ureq::Error::Status(status, response)) => {
                parse_presence_response(&channel, status, &response.into_string().unwrap_or_default())
            }
            Err(e) => {
                let why =
                    proxy::proxy_failure(&e, shared.routes.api.as_ref()).map_or_else(|| e.to_string(), |p| p.message);
                Err(DataNetError::new(PRESENCE_FAILED, format!("presence request failed: {why}"))
                    .with_channel(&channel))
            }
        };
        let result = result.map_err(|e| shared.redact(e));
        shared.inbox.push(Event::Presence { channel, result: Box::new(result) });
        shared.presence_in_flight.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The cached JWT; refreshed near `exp` and after an auth failure (PROTOCOL.md §1).
#[derive(Default)]
struct TokenCache {
    token: Option<String>,
    claims: Claims,
}

impl TokenCache {
    async fn get(&mut self, shared: &Arc<Shared>) -> Result<String, DataNetError> {
        if let Some(token) = &self.token {
            if !self.claims.needs_refresh(unix_ms() / 1000) {
                return Ok(token.clone());
            }
        }
        let config = &shared.config;
        let url = join_url(&config.api_url, "/auth/token");
        let body = TokenRequest {
            api_key: &config.api_key,
            device_id: config.device_id.as_deref(),
            client_id: config.client_id.as_deref(),
            device_name: config.device_name.as_deref(),
        }
        .body();
        let agent = shared.http.clone();
        let route = shared.routes.api.clone();
        let token = tokio::task::spawn_blocking(move || fetch_token(&agent, route.as_ref(), &url, &body))
            .await
            .map_err(|_| DataNetError::new(GATEWAY_ERROR, "the token request did not complete"))?
            .map_err(|e| shared.redact(e))?;
        self.claims = decode_claims(&token).unwrap_or_default();
        self.token = Some(token.clone());
        *lock(&shared.token) = Some(token.clone());
        Ok(token)
    }

    fn invalidate(&mut self, shared: &Shared) {
        self.token = None;
        *lock(&shared.token) = None;
    }
}

fn fetch_token(agent: &ureq::Agent, route: Option<&Route>, url: &str, body: &str) -> Result<String, DataNetError> {
    match agent.post(url).set("Content-Type", "application/json").send_string(body) {
        Ok(response) => {
            let status = response.status();
            let text = response.into_string().unwrap_or_default();
            parse_token_response(status, &text)
        }
        Err(ureq::Error::Status(status, response)) => {
            parse_token_response(status, &response.into_string().unwrap_or_default())
        }
        Err(e) => match proxy::proxy_failure(&e, route) {
            Some(error) => Err(DataNetError { message: format!("token request failed: {}", error.message), ..error }),
            None => Err(DataNetError::new(CONNECTION_FAILED, format!("token request failed: {e}"))),
        },
    }
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// xorshift64*: jitter needs spread across a fleet, not cryptographic strength.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let local = &nanos as *const u64 as u64;
        Rng((nanos ^ local.rotate_left(32) ^ u64::from(std::process::id())) | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}
