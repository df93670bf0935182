//! One WebSocket connection, from the upgrade request to the last frame.
//!
//! tokio-tungstenite's `WebSocketStream` is only usable through the `futures`
//! `Stream`/`Sink` traits, which this crate cannot name without a new dependency.
//! So the session drives tungstenite's sans-IO `WebSocketContext` itself: the
//! socket's non-blocking `try_read`/`try_write` give tungstenite the `WouldBlock`
//! it understands, and tokio's `readable()`/`writable()` say when to try again.
//! One task per connection reads client frames and writes its outbox.

use crate::envelope::{self, ClientOp, GatewayError, Payload};
use crate::http::{Request, Response};
use crate::hub::{conn_label, ConnId, DeviceLimitReached, Hub, Registration};
use crate::jwt::Claims;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketContext};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Client frames handled per wake-up before the outbox gets a turn.
const READ_BATCH: usize = 64;
/// Outbox frames written per wake-up before one flush.
const WRITE_BATCH: usize = 256;
/// How long a refused connection waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Answers `GET /ws`: checks the bearer subprotocol, upgrades, and runs the session.
pub async fn serve(hub: Arc<Hub>, mut stream: TcpStream, request: Request, early_frames: Vec<u8>, peer: SocketAddr) {
    let is_upgrade = request.header("upgrade").is_some_and(|upgrade| upgrade.eq_ignore_ascii_case("websocket"));
    let Some(client_key) = request.header("sec-websocket-key").filter(|_| is_upgrade) else {
        let refusal = Response::error(400, "bad_request", "expected a WebSocket upgrade");
        return refusal.send(stream).await;
    };
    let claims = match bearer_token(request.header("sec-websocket-protocol")) {
        None => Err("missing bearer subprotocol".to_string()),
        Some(token) => hub.authorize(token).map_err(|error| error.to_string()),
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(why) => {
            crate::log(format_args!("refused /ws from {peer}: {why}"));
            return Response::error(401, "unauthorized", &why).send(stream).await;
        }
    };
    let accept = derive_accept_key(client_key.as_bytes());
    let switching = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: bearer\r\n\r\n"
    );
    if stream.write_all(switching.as_bytes()).await.is_err() {
        return;
    }
    let socket = Socket {
        tcp: stream,
        ws: WebSocketContext::from_partially_read(early_frames, Role::Server, None),
        output_pending: false,
    };
    match hub.register(&claims.sub) {
        Err(DeviceLimitReached(limit)) => {
            crate::log(format_args!("refused {peer}: device_limit_reached ({limit})"));
            socket.refuse(GatewayError::DeviceLimitReached { limit }).await;
        }
        Ok(Registration { id, outbox, kill }) => {
            let mut session = Session { label: conn_label(id), hub, id, claims, socket };
            crate::log(format_args!("connect {} key {} from {peer}", session.label, session.claims.sub));
            let end = session.run(outbox, kill).await;
            session.hub.unregister(id);
            crate::log(format_args!("disconnect {}: {end}", session.label));
        }
    }
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

/// Why a session ended, for the log.
enum End {
    ClosedByPeer,
    Dropped,
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClosedByPeer => f.write_str("closed by peer"),
            End::Dropped => f.write_str("dropped by admin"),
            End::Failed(why) => write!(f, "error: {why}"),
        }
    }
}

impl From<WsError> for End {
    fn from(error: WsError) -> Self {
        match error {
            WsError::ConnectionClosed | WsError::AlreadyClosed => End::ClosedByPeer,
            other => End::Failed(other.to_string()),
        }
    }
}

impl From<io::Error> for End {
    fn from(error: io::Error) -> Self {
        End::Failed(error.to_string())
    }
}

/// tungstenite's `Read + Write` view of the socket: never waits, says `WouldBlock`.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(error: &WsError) -> bool {
    matches!(error, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

struct Socket {
    tcp: TcpStream,
    ws: WebSocketContext,
    /// Frames sit in tungstenite's buffer because the socket would block.
    output_pending: bool,
}

impl Socket {
    /// The next complete frame, or `WouldBlock` when none has arrived yet.
    fn read(&mut self) -> Result<Message, WsError> {
        self.ws.read(&mut NonBlocking(&self.tcp))
    }

    /// Queues a frame (a close frame too).
    fn queue(&mut self, frame: Message) -> Result<(), WsError> {
        let written = self.ws.write(&mut NonBlocking(&self.tcp), frame);
        self.defer_if_blocked(written)
    }

    fn flush(&mut self) -> Result<(), WsError> {
        let flushed = self.ws.flush(&mut NonBlocking(&self.tcp));
        if flushed.is_ok() {
            self.output_pending = false;
        }
        self.defer_if_blocked(flushed)
    }

    /// A full socket is not an error: the bytes wait in tungstenite's buffer until
    /// the socket turns writable.
    fn defer_if_blocked(&mut self, result: Result<(), WsError>) -> Result<(), WsError> {
        match result {
            Err(error) if would_block(&error) => {
                self.output_pending = true;
                Ok(())
            }
            other => other,
        }
    }

    /// Sends an error envelope and a close frame, then waits briefly for the
    /// client's close reply so the error is read before the socket goes away.
    async fn refuse(mut self, error: GatewayError) {
        let close = CloseFrame { code: CloseCode::Policy, reason: error.code().into() };
        let queued = self.queue(Message::text(error.to_json())).and_then(|()| self.queue(Message::Close(Some(close))));
        if queued.is_ok() {
            let _ = tokio::time::timeout(CLOSE_GRACE, self.drain_until_closed()).await;
        }
    }

    async fn drain_until_closed(&mut self) -> Result<(), End> {
        loop {
            if self.output_pending {
                self.tcp.writable().await?;
                self.flush()?;
            } else {
                self.tcp.readable().await?;
                match self.read() {
                    Err(error) if would_block(&error) => {}
                    Err(error) => return Err(error.into()),
                    Ok(_) => {}
                }
            }
        }
    }
}

struct Session {
    hub: Arc<Hub>,
    id: ConnId,
    label: String,
    claims: Claims,
    socket: Socket,
}

impl Session {
    async fn run(&mut self, mut outbox: mpsc::Receiver<Message>, mut kill: oneshot::Receiver<()>) -> End {
        let connected = envelope::connected(&self.label, &self.claims.sub);
        if let Err(end) = self.reply(connected) {
            return end;
        }
        // Frames that came with the upgrade request are already buffered: the socket
        // may never turn readable for them.
        if let Err(end) = self.read_frames() {
            return end;
        }
        let mut frozen = self.hub.frozen_watch();
        // A relayed frame taken from the outbox just as a freeze began: written after the thaw.
        let mut parked: Option<Message> = None;
        loop {
            if *frozen.borrow_and_update() {
                // Frozen: no reads, no writes, the socket stays open.
                tokio::select! {
                    _ = &mut kill => return End::Dropped,
                    _ = frozen.changed() => continue,
                }
            }
            if let Some(frame) = parked.take() {
                if let Err(end) = self.write_outbox(frame, &mut outbox) {
                    return end;
                }
            }
            // Unbiased on purpose: a busy outbox must not starve client frames (and
            // their heartbeats), nor the other way round. Because it is unbiased, a
            // branch can win over a freeze that happened meanwhile: each one checks
            // the freeze before touching the socket, and the loop then waits.
            let step = tokio::select! {
                _ = &mut kill => return End::Dropped,
                _ = frozen.changed() => Ok(()),
                ready = self.socket.tcp.writable(), if self.socket.output_pending => {
                    ready.map_err(End::from).and_then(|()| {
                        if self.hub.is_frozen() { Ok(()) } else { Ok(self.socket.flush()?) }
                    })
                }
                // While output is stuck, client frames wait too: their replies would
                // only pile up behind it.
                ready = self.socket.tcp.readable(), if !self.socket.output_pending => {
                    ready.map_err(End::from).and_then(|()| if self.hub.is_frozen() { Ok(()) } else { self.read_frames() })
                }
                frame = outbox.recv(), if !self.socket.output_pending => match frame {
                    Some(frame) if self.hub.is_frozen() => {
                        parked = Some(frame);
                        Ok(())
                    }
                    Some(frame) => self.write_outbox(frame, &mut outbox),
                    // The hub let go of this connection: it was dropped.
                    None => return End::Dropped,
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn write_outbox(&mut self, first: Message, outbox: &mut mpsc::Receiver<Message>) -> Result<(), End> {
        self.socket.queue(first)?;
        for _ in 1..WRITE_BATCH {
            if self.socket.output_pending {
                break;
            }
            match outbox.try_recv() {
                Ok(frame) => self.socket.queue(frame)?,
                Err(_) => break,
            }
        }
        Ok(self.socket.flush()?)
    }

    fn read_frames(&mut self) -> Result<(), End> {
        for _ in 0..READ_BATCH {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    self.count_frame_in();
                    self.handle_text(&text)?;
                }
                Ok(Message::Binary(_)) => {
                    self.count_frame_in();
                    let message = "binary frames are not accepted: send JSON text envelopes";
                    self.reply_error(GatewayError::BadRequest { message: message.into() })?;
                }
                // tungstenite answers pings and close frames itself; a close ends the
                // session at the next read with `ConnectionClosed`.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {}
                Err(error) if would_block(&error) => break,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(self.socket.flush()?)
    }

    fn count_frame_in(&self) {
        crate::hub::Stats::add(&self.hub.stats.frames_in, 1);
    }

    fn handle_text(&mut self, text: &str) -> Result<(), End> {
        match envelope::parse(text) {
            Err(message) => self.reply_error(GatewayError::BadRequest { message }),
            Ok(ClientOp::Heartbeat) => self.reply(envelope::hb_ack(crate::unix_now_ms())),
            Ok(ClientOp::Subscribe { channel }) => self.subscribe(channel),
            Ok(ClientOp::Unsubscribe { channel }) => self.unsubscribe(channel),
            Ok(ClientOp::Publish { channel, payload }) => self.publish(channel, payload),
        }
    }

    fn subscribe(&mut self, channel: String) -> Result<(), End> {
        if !self.claims.has_scope("sub") {
            return self.reply_error(GatewayError::InsufficientScope { required: "sub" });
        }
        if !envelope::channel_allowed(&channel) {
            let operation = "sub";
            return self.reply_error(GatewayError::ChannelNotAllowed { channel, operation });
        }
        match self.hub.subscribe(self.id, &channel) {
            Ok(occupancy) => self.reply(envelope::sub_ack(&channel, occupancy)),
            Err(limit) => {
                let limit = limit.0;
                self.reply_error(GatewayError::TopicLimitReached { limit, channel })
            }
        }
    }

    fn unsubscribe(&mut self, channel: String) -> Result<(), End> {
        if !envelope::channel_allowed(&channel) {
            let operation = "unsub";
            return self.reply_error(GatewayError::ChannelNotAllowed { channel, operation });
        }
        self.hub.unsubscribe(self.id, &channel);
        self.reply(envelope::unsub_ack(&channel))
    }

    fn publish(&mut self, channel: String, payload: Payload) -> Result<(), End> {
        if !self.claims.has_scope("pub") {
            return self.reply_error(GatewayError::InsufficientScope { required: "pub" });
        }
        if !envelope::channel_allowed(&channel) {
            let operation = "pub";
            return self.reply_error(GatewayError::ChannelNotAllowed { channel, operation });
        }
        let Ok(frame) = envelope::message_frame(&channel, payload, crate::unix_now_ms(), &self.label) else {
            return self.reply_error(GatewayError::InvalidPayload { channel });
        };
        match self.hub.publish(&channel, Message::text(frame)) {
            Ok(()) => Ok(()),
            Err(limited) => {
                let retry_ms = limited.retry_ms;
                self.reply_error(GatewayError::RateLimited { retry_ms, channel })
            }
        }
    }

    fn reply(&mut self, envelope: String) -> Result<(), End> {
        Ok(self.socket.queue(Message::text(envelope))?)
    }

    fn reply_error(&mut self, error: GatewayError) -> Result<(), End> {
        // A client over its budget can trigger thousands of these a second; one log
        // line each would drown the log.
        if !matches!(error, GatewayError::RateLimited { .. }) {
            crate::log(format_args!("{}: {}", self.label, error.code()));
        }
        self.reply(error.to_json())
    }
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
