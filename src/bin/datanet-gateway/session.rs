//! One WebSocket connection, from the upgrade request to the last frame.
//!
//! The upgrade is tokio-tungstenite's own server handshake; its callback checks
//! the bearer subprotocol. The session is one task: it reads client frames in
//! batches (yielding between batches, so a flooding connection never holds a
//! worker), writes its outbox, and keeps the timers of liveness (idle timeout),
//! token expiry and its rate budget. Replies and relayed frames go through the
//! `Sink` only when it is ready, so tungstenite's write buffer stays small; large
//! frames go out in fragments for the same reason.

use crate::envelope::{self, ClientOp, GatewayError, Payload, RateScope};
use crate::hub::{conn_label, ConnId, DeviceLimitReached, Hub, Kill, Registration, Stats};
use crate::jwt::Claims;
use crate::limits::{Limits, RateBudget};
use crate::net::Rewound;
use crate::outbox::Outbox;
use crate::throttle::Throttle;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{write_response, ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Ws<'a> = WebSocketStream<&'a mut Rewound>;

/// Client frames handled per turn; then the task yields to the others.
const READ_BATCH: usize = 64;
/// Outbox frames written per round, and rounds per turn.
const WRITE_BATCH: usize = 64;
const WRITE_ROUNDS: usize = 4;
/// Larger relayed frames go out in fragments of this size, so tungstenite's
/// write buffer never grows to the largest frame a connection was sent.
const FRAGMENT_BYTES: usize = 16 * 1024;
/// tungstenite's buffers: small, so an idle connection costs little.
const READ_BUFFER_BYTES: usize = 4 * 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// How long a closing connection waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A connection over its rate budget stops being read at least this long. Short,
/// so a flooder's refill is read in small, evenly spaced bursts (100 frames at
/// the default budget, two batches) rather than 100 ms worth at once, which put
/// several flooders' batches ahead of a well-behaved frame; long enough that a
/// flooder is told `rate_limited` at most 50 times a second.
const RATE_PAUSE: Duration = Duration::from_millis(20);
/// Slow-consumer notices to one connection, at most one per interval.
const NOTICE_INTERVAL: Duration = Duration::from_secs(1);

fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
}

/// Answers `GET /ws`: the handshake (with the bearer check), registration under the
/// connection caps, then the session.
// The callback's error type is tungstenite's `Callback` contract.
#[allow(clippy::result_large_err)]
pub async fn serve(hub: Arc<Hub>, mut stream: Rewound, peer: SocketAddr, pending: OwnedSemaphorePermit) {
    hub.wait_until_thawed().await;
    let mut claims = None;
    let callback = |request: &Request, response: Response| authorize(&hub, peer, request, response, &mut claims);
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(&mut stream, callback, Some(ws_config(&hub.limits)));
    let refusal = match timeout(hub.limits.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => {
            drop(pending);
            if let Some(claims) = claims {
                run_session(hub, ws, claims, peer).await;
            }
            return;
        }
        Err(_) => return crate::warn_peer(peer, "WebSocket handshake timed out"),
        // The callback refused and its answer is written.
        Ok(Err(WsError::Http(_))) => None,
        Ok(Err(WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed)) => return,
        Ok(Err(error)) => Some(error.to_string()),
    };
    if let Some(why) = refusal {
        crate::warn_peer(peer, "refused /ws: not a WebSocket upgrade");
        let answer = error_response(400, "bad_request", &format!("expected a WebSocket upgrade: {why}"));
        let mut bytes = Vec::new();
        if write_response(&mut bytes, &answer).is_ok() {
            bytes.extend_from_slice(answer.body().as_deref().unwrap_or_default().as_bytes());
            let _ = stream.write_all(&bytes).await;
        }
    }
    crate::net::linger_close(&mut stream).await;
}

/// The handshake callback: accepts `Sec-WebSocket-Protocol: bearer, <jwt>` with a
/// valid token, selecting `bearer`; anything else is a 401 with a JSON body.
#[allow(clippy::result_large_err)]
fn authorize(
    hub: &Hub,
    peer: SocketAddr,
    request: &Request,
    mut response: Response,
    claims: &mut Option<Claims>,
) -> Result<Response, ErrorResponse> {
    let offered = request.headers().get(SEC_WEBSOCKET_PROTOCOL).and_then(|value| value.to_str().ok());
    let verdict = match bearer_token(offered) {
        None => Err("missing bearer subprotocol".to_string()),
        Some(token) => hub.authorize(token).map_err(|error| error.to_string()),
    };
    match verdict {
        Ok(granted) => {
            *claims = Some(granted);
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("bearer"));
            Ok(response)
        }
        Err(why) => {
            crate::warn_peer(peer, &format!("refused /ws: {why}"));
            Err(error_response(401, "unauthorized", &why))
        }
    }
}

/// A JSON error answer to an upgrade request, `{"error": message, "code": code}`.
fn error_response(status: u16, code: &str, message: &str) -> ErrorResponse {
    let body = serde_json::json!({"error": message, "code": code}).to_string();
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    *response.body_mut() = Some(body);
    response
}

/// The JWT from `Sec-WebSocket-Protocol: bearer, <jwt>`.
fn bearer_token(protocols: Option<&str>) -> Option<&str> {
    let mut bearer = false;
    let mut token = None;
    for item in protocols?.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        if item.eq_ignore_ascii_case("bearer") {
            bearer = true;
        } else if token.is_none() {
            token = Some(item);
        }
    }
    token.filter(|_| bearer)
}

async fn run_session(hub: Arc<Hub>, mut ws: Ws<'_>, claims: Claims, peer: SocketAddr) {
    let Registration { id, outbox, kill } = match hub.register(&claims.sub) {
        Ok(registration) => registration,
        Err(DeviceLimitReached { limit, message }) => {
            crate::warn_peer(peer, "refused: device_limit_reached");
            let refusal = GatewayError::DeviceLimitReached { limit, message };
            return close_with(&mut ws, Some(refusal), CloseCode::Policy, "device_limit_reached").await;
        }
    };
    let label = conn_label(id);
    crate::log(format_args!("connect {label} key {} from {peer}", claims.sub));
    let mut session = Session::new(hub.clone(), id, label, claims, outbox, ws);
    let end = tokio::select! {
        end = session.run() => end,
        killed = kill => match killed {
            Ok(Kill::Revoked) => {
                close_with(&mut session.ws, Some(GatewayError::KeyRevoked), CloseCode::Policy, "key_revoked").await;
                End::Revoked
            }
            Ok(Kill::Dropped) | Err(_) => End::Dropped,
        },
    };
    hub.unregister(id);
    session.warnings.flush(&session.label);
    crate::log(format_args!("disconnect {}: {end}", session.label));
}

/// Sends an error envelope (if any) and a close frame, then waits briefly for the
/// client's close reply so the error is read before the socket goes away.
async fn close_with(ws: &mut Ws<'_>, error: Option<GatewayError>, code: CloseCode, reason: &'static str) {
    let close = CloseFrame { code, reason: reason.into() };
    let sent = async {
        if let Some(error) = error {
            ws.feed(Message::text(error.to_json())).await?;
        }
        ws.send(Message::Close(Some(close))).await
    };
    if let Ok(Ok(())) = timeout(CLOSE_GRACE, sent).await {
        let _ = timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    }
}

/// Why a session ended, for the log.
enum End {
    ClosedByPeer,
    Dropped,
    Revoked,
    IdleTimeout,
    TokenExpired,
    TooLarge(usize),
    /// The client did not read what it was sent for the idle timeout.
    Stalled,
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClosedByPeer => f.write_str("closed by peer"),
            End::Dropped => f.write_str("dropped by admin"),
            End::Revoked => f.write_str("key revoked"),
            End::IdleTimeout => f.write_str("idle timeout"),
            End::TokenExpired => f.write_str("token expired"),
            End::TooLarge(size) => write!(f, "sent a {size}-byte frame, over the limit"),
            End::Stalled => f.write_str("stopped reading"),
            End::Failed(why) => write!(f, "error: {why}"),
        }
    }
}

impl From<WsError> for End {
    fn from(error: WsError) -> Self {
        match error {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::ClosedByPeer,
            other => End::Failed(other.to_string()),
        }
    }
}

/// Resolves at once when frames are known to wait, else when the outbox signals.
async fn outbox_ready(outbox: &Outbox, pending: bool) {
    if !pending {
        outbox.ready().await;
    }
}

struct Session<'a> {
    hub: Arc<Hub>,
    id: ConnId,
    label: String,
    claims: Claims,
    outbox: Arc<Outbox>,
    ws: Ws<'a>,
    budget: RateBudget,
    last_frame: Instant,
    /// When the token expires; `None` once the client was told.
    expires: Option<Instant>,
    /// End of the grace after `token_expired`.
    close_at: Option<Instant>,
    /// Reading stops until then: the rate budget is spent.
    paused_until: Option<Instant>,
    /// Frames are known to wait in the outbox (a turn ended before it was empty).
    outbox_pending: bool,
    unreported_drops: u64,
    last_notice: Option<Instant>,
    warnings: Throttle,
}

impl<'a> Session<'a> {
    fn new(hub: Arc<Hub>, id: ConnId, label: String, claims: Claims, outbox: Arc<Outbox>, ws: Ws<'a>) -> Self {
        let now = Instant::now();
        let left_ms = (claims.exp.saturating_mul(1000)).saturating_sub(crate::unix_now_ms() as i64).max(0);
        Session {
            budget: RateBudget::new(&hub.limits, now),
            expires: Some(now + Duration::from_millis(left_ms as u64)),
            hub,
            id,
            label,
            claims,
            outbox,
            ws,
            last_frame: now,
            close_at: None,
            paused_until: None,
            outbox_pending: false,
            unreported_drops: 0,
            last_notice: None,
            warnings: Throttle::new(),
        }
    }

    async fn run(&mut self) -> End {
        let connected = envelope::connected(&self.label, &self.claims.sub);
        if let Err(end) = self.reply(connected).await {
            return end;
        }
        if let Err(end) = self.flush().await {
            return end;
        }
        let mut frozen = self.hub.frozen_watch();
        // A frame read just as a freeze began: handled after the thaw.
        let mut parked: Option<Message> = None;
        loop {
            if *frozen.borrow_and_update() {
                // Frozen: no reads, no writes, the socket stays open.
                if frozen.changed().await.is_err() {
                    return End::Dropped;
                }
                continue;
            }
            if let Some(message) = parked.take() {
                if let Err(end) = self.on_read(Some(Ok(message))).await {
                    return end;
                }
            }
            let deadline = self.next_deadline();
            let (reading, pending) = (self.paused_until.is_none(), self.outbox_pending);
            // Unbiased on purpose: a busy outbox must not starve client frames (and
            // their heartbeats), nor the other way round. A branch may win over a
            // freeze that happened meanwhile: each checks it before using the socket.
            let step = tokio::select! {
                changed = frozen.changed() => changed.map_err(|_| End::Dropped),
                () = outbox_ready(&self.outbox, pending) => {
                    if self.hub.is_frozen() {
                        self.outbox_pending = true;
                        Ok(())
                    } else {
                        self.write_outbox().await
                    }
                }
                message = self.ws.next(), if reading => match message {
                    Some(Ok(message)) if self.hub.is_frozen() => {
                        parked = Some(message);
                        Ok(())
                    }
                    other => self.on_read(other).await,
                },
                () = tokio::time::sleep_until(deadline.into()) => self.on_timer().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let notice = (self.unreported_drops > 0).then(|| self.notice_due()).flatten();
        [Some(self.last_frame + self.hub.limits.idle_timeout), self.expires, self.close_at, self.paused_until, notice]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| self.last_frame + self.hub.limits.idle_timeout)
    }

    fn notice_due(&self) -> Option<Instant> {
        Some(self.last_notice.map_or_else(Instant::now, |last| last + NOTICE_INTERVAL))
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        if now >= self.last_frame + self.hub.limits.idle_timeout {
            self.warnings.warn(&self.label, "idle timeout");
            close_with(&mut self.ws, None, CloseCode::Away, "idle_timeout").await;
            return Err(End::IdleTimeout);
        }
        if self.expires.is_some_and(|expires| now >= expires) {
            self.expires = None;
            let grace = self.hub.limits.token_expiry_grace;
            self.close_at = Some(now + grace);
            let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
            self.reply_error(GatewayError::TokenExpired { grace_ms }).await?;
            self.flush().await?;
        }
        if self.close_at.is_some_and(|close_at| now >= close_at) {
            close_with(&mut self.ws, None, CloseCode::Policy, "token_expired").await;
            return Err(End::TokenExpired);
        }
        self.notify_drops().await?;
        self.flush().await
    }

    /// Handles what the stream gave, then whatever else is already readable (up to
    /// a batch), then flushes the replies once.
    async fn on_read(&mut self, message: Option<Result<Message, WsError>>) -> Result<(), End> {
        self.on_frame_or_end(message).await?;
        let mut handled = 1;
        while handled < READ_BATCH && self.paused_until.is_none() && !self.hub.is_frozen() {
            let Some(message) = self.ws.next().now_or_never() else { break };
            self.on_frame_or_end(message).await?;
            handled += 1;
        }
        self.flush().await?;
        if handled == READ_BATCH {
            // More is probably waiting: let the other connections have a turn first.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    async fn on_frame_or_end(&mut self, message: Option<Result<Message, WsError>>) -> Result<(), End> {
        match message {
            None => Err(End::ClosedByPeer),
            Some(Ok(message)) => self.on_frame(message).await,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                Stats::add(&self.hub.stats.oversized, 1);
                self.warnings.warn(&self.label, "message_too_large");
                let refusal = GatewayError::MessageTooLarge { limit: max_size, channel: None };
                close_with(&mut self.ws, Some(refusal), CloseCode::Size, "message_too_large").await;
                Err(End::TooLarge(size))
            }
            Some(Err(error)) => Err(error.into()),
        }
    }

    async fn on_frame(&mut self, message: Message) -> Result<(), End> {
        let now = Instant::now();
        self.last_frame = now;
        Stats::add(&self.hub.stats.frames_in, 1);
        if matches!(message, Message::Close(_)) {
            // tungstenite answers it; the next read ends the session.
            return Ok(());
        }
        if let Err(wait) = self.budget.spend(message.len(), now) {
            return self.rate_limited(wait.max(RATE_PAUSE), now).await;
        }
        match message {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(_) => {
                let message = "binary frames are not accepted: send JSON text envelopes";
                self.reply_error(GatewayError::BadRequest { message: message.into() }).await
            }
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// The frame that found the budget spent is refused; the connection is not read
    /// again until the budget has refilled for a while, so a flooder waits in its
    /// own socket buffer instead of costing the others.
    async fn rate_limited(&mut self, pause: Duration, now: Instant) -> Result<(), End> {
        Stats::add(&self.hub.stats.rate_limited, 1);
        self.paused_until = Some(now + pause);
        let retry_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.reply_error(GatewayError::RateLimited { retry_ms, scope: RateScope::Connection }).await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        match envelope::parse(text) {
            Err(message) => self.reply_error(GatewayError::BadRequest { message }).await,
            Ok(ClientOp::Heartbeat) => self.reply(envelope::hb_ack(crate::unix_now_ms())).await,
            Ok(ClientOp::Subscribe { channel }) => self.subscribe(channel).await,
            Ok(ClientOp::Unsubscribe { channel }) => self.unsubscribe(channel).await,
            Ok(ClientOp::Publish { channel, payload }) => self.publish(channel, payload).await,
        }
    }

    /// Name rule and project isolation; `Err` is the refusal to send.
    fn check_channel(&self, channel: &str, operation: &'static str) -> Result<(), GatewayError> {
        envelope::check_channel(channel, self.claims.pid.as_deref())
            .map_err(|message| GatewayError::ChannelNotAllowed { channel: channel.to_string(), operation, message })
    }

    async fn subscribe(&mut self, channel: String) -> Result<(), End> {
        if !self.claims.has_scope("sub") {
            return self.reply_error(GatewayError::InsufficientScope { required: "sub" }).await;
        }
        if let Err(refusal) = self.check_channel(&channel, "sub") {
            return self.reply_error(refusal).await;
        }
        match self.hub.subscribe(self.id, &channel) {
            Ok(occupancy) => self.reply(envelope::sub_ack(&channel, occupancy)).await,
            Err(limit) => self.reply_error(GatewayError::TopicLimitReached { limit: limit.0, channel }).await,
        }
    }

    async fn unsubscribe(&mut self, channel: String) -> Result<(), End> {
        if let Err(refusal) = self.check_channel(&channel, "unsub") {
            return self.reply_error(refusal).await;
        }
        self.hub.unsubscribe(self.id, &channel);
        self.reply(envelope::unsub_ack(&channel)).await
    }

    async fn publish(&mut self, channel: String, payload: Payload) -> Result<(), End> {
        if !self.claims.has_scope("pub") {
            return self.reply_error(GatewayError::InsufficientScope { required: "pub" }).await;
        }
        if let Err(refusal) = self.check_channel(&channel, "pub") {
            return self.reply_error(refusal).await;
        }
        let Ok(frame) = envelope::message_frame(&channel, payload, crate::unix_now_ms(), &self.label) else {
            return self.reply_error(GatewayError::InvalidPayload { channel }).await;
        };
        let limit = self.hub.limits.max_message_bytes;
        if frame.len() > limit {
            // Subscribers using this project's client would refuse it and reconnect.
            Stats::add(&self.hub.stats.oversized, 1);
            return self.reply_error(GatewayError::MessageTooLarge { limit, channel: Some(channel) }).await;
        }
        match self.hub.publish(&channel, Message::text(frame)) {
            Ok(()) => Ok(()),
            Err(limited) => {
                Stats::add(&self.hub.stats.rate_limited, 1);
                let scope = RateScope::Channel(channel);
                self.reply_error(GatewayError::RateLimited { retry_ms: limited.retry_ms, scope }).await
            }
        }
    }

    /// Writes queued frames: a few rounds per turn, then the others get one.
    async fn write_outbox(&mut self) -> Result<(), End> {
        for _ in 0..WRITE_ROUNDS {
            let mut batch = Vec::new();
            self.unreported_drops += self.outbox.take(WRITE_BATCH, &mut batch);
            self.notify_drops().await?;
            if batch.is_empty() {
                self.outbox_pending = false;
                return self.flush().await;
            }
            for frame in batch {
                self.send(frame).await?;
            }
        }
        self.outbox_pending = true;
        self.flush().await
    }

    /// Tells the client how many frames it lost, at most once per interval.
    async fn notify_drops(&mut self) -> Result<(), End> {
        if self.unreported_drops == 0 || self.notice_due().is_some_and(|due| Instant::now() < due) {
            return Ok(());
        }
        let dropped = std::mem::take(&mut self.unreported_drops);
        self.last_notice = Some(Instant::now());
        let limit = self.hub.limits.queued_bytes_per_connection;
        self.reply_error(GatewayError::SlowConsumer { dropped, limit }).await
    }

    async fn reply(&mut self, envelope: String) -> Result<(), End> {
        self.send(Message::text(envelope)).await
    }

    async fn reply_error(&mut self, error: GatewayError) -> Result<(), End> {
        // Rate-limited per connection: a client can provoke these thousands of
        // times a second, and one log line each would drown the log.
        self.warnings.warn(&self.label, error.code());
        self.reply(error.to_json()).await
    }

    /// Hands a frame to the sink once it is ready; a client that reads nothing for
    /// the idle timeout is given up on.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        let stall = self.hub.limits.idle_timeout;
        match timeout(stall, feed_in_fragments(&mut self.ws, message)).await {
            Ok(result) => result.map_err(End::from),
            Err(_) => Err(End::Stalled),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        match timeout(self.hub.limits.idle_timeout, self.ws.flush()).await {
            Ok(result) => result.map_err(End::from),
            Err(_) => Err(End::Stalled),
        }
    }
}

async fn feed_in_fragments(ws: &mut Ws<'_>, message: Message) -> Result<(), WsError> {
    let Message::Text(text) = &message else { return ws.feed(message).await };
    if text.len() <= FRAGMENT_BYTES {
        return ws.feed(message).await;
    }
    let bytes: &Bytes = text.as_ref();
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT_BYTES).min(bytes.len());
        let opcode = if start == 0 { Data::Text } else { Data::Continue };
        let fragment = Frame::message(bytes.slice(start..end), OpCode::Data(opcode), end == bytes.len());
        ws.feed(Message::Frame(fragment)).await?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn finds_the_bearer_token() {
        assert_eq!(bearer_token(Some("bearer, abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer_token(Some("abc, Bearer")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer")), None);
        assert_eq!(bearer_token(Some("abc.def.ghi")), None);
        assert_eq!(bearer_token(Some(" , ")), None);
        assert_eq!(bearer_token(None), None);
    }
}
