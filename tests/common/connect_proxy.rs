//! An HTTP CONNECT proxy for tests, like a venue's: it opens tunnels only to the
//! destinations it is told about (`route`), so that a client can reach the test
//! gateway through it and only through it, and it counts every request. It can
//! demand credentials (407) or refuse every tunnel with a status (e.g. 403).
//! Anything other than CONNECT is answered 405 and counted.
//!
//! It runs on its own thread with a current-thread tokio runtime; requests are
//! read with a bounded head, tunnels are plain byte copies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const MAX_HEAD: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
struct Policy {
    /// `Basic <base64>` that must be sent, when set.
    credentials: Option<String>,
    /// Every CONNECT is answered with this status, when set.
    refuse_with: Option<(u16, &'static str)>,
    /// Destination (`host:port`) → port on 127.0.0.1.
    routes: HashMap<String, u16>,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Every CONNECT destination asked for, in order.
    pub requested: Vec<String>,
    /// CONNECTs answered 200 and relayed.
    pub tunnels: u64,
    /// CONNECTs answered 407.
    pub unauthorized: u64,
    /// CONNECTs refused with the configured status, or to an unknown destination.
    pub refused: u64,
    /// Requests that were not CONNECT.
    pub not_connect: u64,
    /// `Proxy-Authorization` values received, as sent.
    pub authorizations: Vec<String>,
}

struct Shared {
    policy: Mutex<Policy>,
    seen: Mutex<Seen>,
}

pub struct ConnectProxy {
    port: u16,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared { policy: Mutex::new(Policy::default()), seen: Mutex::new(Seen::default()) });
        let (shutdown, stop) = oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("connect-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(accept_loop(listener, thread_shared, stop));
            })
            .unwrap();
        ConnectProxy { port, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, or with credentials `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            None => format!("http://127.0.0.1:{}", self.port),
            Some((user, password)) => format!("http://{user}:{password}@127.0.0.1:{}", self.port),
        }
    }

    /// Tunnels to `destination` (`host:port`, as CONNECT names it) lead to 127.0.0.1:`port`.
    pub fn route(&self, destination: &str, port: u16) {
        lock(&self.shared.policy).routes.insert(destination.to_string(), port);
    }

    /// Answers 407 unless these credentials come with the CONNECT.
    pub fn require_credentials(&self, user: &str, password: &str) {
        lock(&self.shared.policy).credentials = Some(format!("Basic {}", basic(user, password)));
    }

    /// Answers every CONNECT with this status (e.g. 403 "Forbidden").
    pub fn refuse_with(&self, status: u16, reason: &'static str) {
        lock(&self.shared.policy).refuse_with = Some((status, reason));
    }

    pub fn seen(&self) -> Seen {
        lock(&self.shared.seen).clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `base64(user:password)`, as the Basic scheme writes it.
pub fn basic(user: &str, password: &str) -> String {
    datanet::protocol::base64::encode(format!("{user}:{password}").as_bytes())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let listener = TcpListener::from_std(listener).unwrap();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        if let Ok((client, _)) = accepted {
            tokio::spawn(serve(client, shared.clone()));
        }
    }
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(Some(head)) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await else { return };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut parts = request_line.split(' ');
    let (method, destination) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
    if method != "CONNECT" {
        lock(&shared.seen).not_connect += 1;
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n").await;
        return;
    }
    let authorization = headers.iter().find(|(name, _)| name == "proxy-authorization").map(|(_, v)| v.clone());
    let policy = lock(&shared.policy).clone();
    {
        let mut seen = lock(&shared.seen);
        seen.requested.push(destination.clone());
        seen.authorizations.extend(authorization.clone());
    }
    if let Some(expected) = &policy.credentials {
        if authorization.as_deref() != Some(expected.as_str()) {
            lock(&shared.seen).unauthorized += 1;
            let answer = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"venue\"\r\n\
                          Content-Length: 0\r\n\r\n";
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
    }
    let upstream_port = match (policy.refuse_with, policy.routes.get(&destination)) {
        (Some((status, reason)), _) => Err(format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n")),
        (None, None) => Err("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_string()),
        (None, Some(&port)) => Ok(port),
    };
    let port = match upstream_port {
        Ok(port) => port,
        Err(answer) => {
            lock(&shared.seen).refused += 1;
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
    };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
        return;
    }
    lock(&shared.seen).tunnels += 1;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The request head, up to the empty line; `None` if the client closed or sent too much.
async fn read_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || client.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}
