//! The local gateway, tested from the outside: a real process, plain HTTP, and a raw
//! tungstenite WebSocket client (the synchronous API tokio-tungstenite re-exports;
//! deliberately not the crate's own client). This file holds the shared helpers;
//! the tests are split by concern.

#[path = "../common/mod.rs"]
mod common;
mod http;
mod limits;
mod protocol;
mod security;

use common::Gateway;
use datanet::protocol::base64::decode_url;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, HandshakeError, Message, WebSocket};

pub const KEY: &str = "ak_test_key";
/// Longest wait for a frame that should come; only reached when a test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client must hear nothing to conclude that nothing was sent.
pub const QUIET: Duration = Duration::from_millis(150);

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&decode_url(payload).expect("base64url payload")).expect("JSON claims")
}

/// Opens `/ws`, offering `bearer, <token>` when a token is given.
pub fn open_ws(gateway: &Gateway, token: Option<&str>) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let mut request = format!("{}/ws", gateway.ws_url()).into_client_request()?;
    if let Some(token) = token {
        let protocols = HeaderValue::from_str(&format!("bearer, {token}")).unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocols);
    }
    let stream = TcpStream::connect(("127.0.0.1", gateway.port())).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(FRAME_TIMEOUT)).unwrap();
    match tungstenite::client(request, stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(HandshakeError::Failure(error)) => Err(error),
        Err(HandshakeError::Interrupted(_)) => unreachable!("blocking socket"),
    }
}

pub fn http_status(error: tungstenite::Error) -> u16 {
    match error {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// A connected raw WebSocket client.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub conn_id: String,
    pub connected: Value,
}

impl Client {
    pub fn connect(gateway: &Gateway) -> Client {
        Client::connect_with(gateway, &gateway.token(KEY))
    }

    pub fn connect_with(gateway: &Gateway, token: &str) -> Client {
        let ws = open_ws(gateway, Some(token)).expect("upgrade accepted");
        let mut client = Client { ws, conn_id: String::new(), connected: Value::Null };
        let connected = client.next_json();
        assert_eq!(connected["type"], "connected", "{connected}");
        client.conn_id = connected["connId"].as_str().expect("connId").to_string();
        client.connected = connected;
        client
    }

    pub fn send(&mut self, envelope: Value) {
        self.ws.send(Message::text(envelope.to_string())).unwrap();
    }

    /// Sends an envelope and returns the next frame, which must be its answer.
    pub fn ask(&mut self, envelope: Value) -> Value {
        self.send(envelope);
        self.next_json()
    }

    pub fn subscribe(&mut self, channel: &str) -> Value {
        let ack = self.ask(json!({"op": "sub", "ch": channel}));
        assert_eq!(ack["type"], "sub_ack", "{ack}");
        ack
    }

    /// The next data frame within `timeout`; `None` on silence. Pings and pongs are skipped.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<Message>, tungstenite::Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            self.ws.get_ref().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(message) => return Ok(Some(message)),
                Err(tungstenite::Error::Io(error))
                    if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub fn next_json(&mut self) -> Value {
        match self.next_frame(FRAME_TIMEOUT) {
            Ok(Some(Message::Text(text))) => serde_json::from_str(&text).expect("JSON text frame"),
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }

    pub fn expect_quiet(&mut self) {
        let frame = self.next_frame(QUIET).expect("connection stays open");
        assert!(frame.is_none(), "expected silence, got {frame:?}");
    }

    pub fn heartbeat(&mut self) -> Value {
        let ack = self.ask(json!({"op": "hb"}));
        assert_eq!(ack["type"], "hb_ack", "{ack}");
        ack
    }
}

/// Writes raw bytes and reads the whole answer (the gateway closes after each response).
pub fn raw_exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.set_read_timeout(Some(FRAME_TIMEOUT)).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A well-behaved client that keeps publishing to itself (every 10 ms) while a
/// test attacks the same gateway; each message must come back within
/// `FRAME_TIMEOUT` or the watcher's thread panics and `finish` fails the test.
pub struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Duration>>,
}

impl Watcher {
    pub fn start(gateway: &Gateway) -> Watcher {
        Watcher::start_with_token(gateway, &gateway.token("ak_watcher"), "project.demo.watch")
    }

    pub fn start_with_token(gateway: &Gateway, token: &str, channel: &str) -> Watcher {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut client = Client::connect_with(gateway, token);
        client.subscribe(channel);
        let channel = channel.to_string();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut round_trips = Vec::new();
            let mut seq = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                let sent = Instant::now();
                client.send(json!({"op": "pub", "ch": channel, "d": seq}));
                loop {
                    let frame = client.next_json();
                    assert_ne!(frame["type"], "error", "the well-behaved client was refused: {frame}");
                    if frame["type"] == "message" && frame["d"] == seq {
                        break;
                    }
                }
                round_trips.push(sent.elapsed());
                seq += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            round_trips
        });
        Watcher { stop, handle }
    }

    /// Stops and returns the round trips, sorted; every one of them arrived.
    pub fn finish(self) -> Vec<Duration> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut round_trips = self.handle.join().expect("the well-behaved client kept its delivery");
        assert!(!round_trips.is_empty(), "the well-behaved client published nothing");
        round_trips.sort();
        round_trips
    }
}

pub fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// A raw TCP connection to the gateway.
pub fn tcp(gateway: &Gateway) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", gateway.port())).unwrap();
    stream.set_read_timeout(Some(FRAME_TIMEOUT)).unwrap();
    stream
}

/// Waits until the peer closes (reads return 0 or fail) and says how long it took.
pub fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut sink = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut sink) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}
