//! A fault-injecting TCP proxy for tests: it sits between a client and the gateway
//! (point both `api_url` and `ws_url` at `port()`) and breaks the path on command:
//! cut every connection (FIN or RST), hold all bytes (a half-open path), add
//! latency, throttle, split writes into small pieces, or refuse new connections.
//!
//! It runs on its own thread with a current-thread tokio runtime, and is bounded:
//! at most `MAX_CONNECTIONS` live connections, and per direction at most
//! `QUEUE_CHUNKS` chunks of `CHUNK_BYTES` in flight (a held or throttled path
//! pushes back on the sender instead of buffering without limit).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Live connections at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Bytes read per chunk.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks queued per direction between reading and forwarding.
const QUEUE_CHUNKS: usize = 64;
/// Accept times remembered for `first_accept_after`.
const ACCEPT_HISTORY: usize = 4096;
/// Longest wait for the upstream connect, and for `drop_all`/`reset_all` to finish.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CUT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the pumps apply to every chunk, read afresh before each piece is written,
/// so a change takes effect mid-stream.
#[derive(Debug, Clone, Default)]
struct Settings {
    black_hole: bool,
    delay: Duration,
    /// Bytes per second, per direction.
    throttle: Option<u64>,
    /// Largest single write.
    slice: Option<usize>,
    refuse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Close both sockets normally (FIN).
    Close,
    /// Close both sockets with SO_LINGER 0 (RST).
    Reset,
}

/// One proxied connection, as the control side sees it.
struct Connection {
    cut: watch::Sender<Option<Cut>>,
    closed: AtomicBool,
}

struct Shared {
    settings: watch::Sender<Settings>,
    live: Mutex<Vec<Arc<Connection>>>,
    accepted: AtomicU64,
    refused: AtomicU64,
    accept_times: Mutex<std::collections::VecDeque<Instant>>,
    /// When the last `drop_all`/`reset_all` closed its sockets.
    last_cut: Mutex<Option<Instant>>,
}

pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            settings: watch::channel(Settings::default()).0,
            live: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accept_times: Mutex::new(std::collections::VecDeque::new()),
            last_cut: Mutex::new(None),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(accept_loop(listener, upstream, thread_shared, shutdown_rx));
                // Dropping the runtime drops every connection task and so closes its sockets.
            })
            .expect("spawn the proxy thread");
        FaultProxy { port, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for `api_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT`, for `ws_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Connections accepted and forwarded since the start (refused ones not counted).
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and closed at once (`refuse`, or the upstream was down).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.live).len()
    }

    /// The first forwarded connection accepted at or after `t`.
    pub fn first_accept_after(&self, t: Instant) -> Option<Instant> {
        lock(&self.shared.accept_times).iter().copied().find(|&at| at >= t)
    }

    /// When the last `drop_all`/`reset_all` closed its sockets.
    pub fn last_cut(&self) -> Option<Instant> {
        *lock(&self.shared.last_cut)
    }

    /// Closes both sides of every open connection at once (FIN); returns how many
    /// were cut, once their sockets are closed.
    pub fn drop_all(&self) -> usize {
        self.cut_all(Cut::Close)
    }

    /// As `drop_all`, with SO_LINGER 0 so both peers get a TCP RST.
    pub fn reset_all(&self) -> usize {
        self.cut_all(Cut::Reset)
    }

    /// On: sockets stay open and nothing is forwarded either way (the bytes wait,
    /// bounded, like a path that silently lost its route). Off: forwarding resumes.
    pub fn black_hole(&self, on: bool) {
        self.shared.settings.send_modify(|s| s.black_hole = on);
    }

    /// Latency added to every chunk, per direction.
    pub fn delay(&self, delay: Duration) {
        self.shared.settings.send_modify(|s| s.delay = delay);
    }

    /// At most `bytes_per_sec` per direction and connection; 0 lifts the limit.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.shared.settings.send_modify(|s| s.throttle = (bytes_per_sec > 0).then_some(bytes_per_sec));
    }

    /// Splits every write into pieces of at most `max_chunk` bytes (sockets are
    /// TCP_NODELAY, so each piece leaves as its own segment); 0 lifts it.
    pub fn slice(&self, max_chunk: usize) {
        self.shared.settings.send_modify(|s| s.slice = (max_chunk > 0).then_some(max_chunk));
    }

    /// On: new connections are accepted and closed at once. Open ones are kept.
    pub fn refuse(&self, on: bool) {
        self.shared.settings.send_modify(|s| s.refuse = on);
    }

    fn cut_all(&self, how: Cut) -> usize {
        let targets: Vec<Arc<Connection>> = lock(&self.shared.live).clone();
        for connection in &targets {
            connection.cut.send_replace(Some(how));
        }
        let deadline = Instant::now() + CUT_TIMEOUT;
        while !targets.iter().all(|c| c.closed.load(Ordering::SeqCst)) {
            assert!(Instant::now() < deadline, "proxy connections did not close within {CUT_TIMEOUT:?}");
            std::thread::sleep(Duration::from_micros(200));
        }
        targets.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let refuse = shared.settings.borrow().refuse || lock(&shared.live).len() >= MAX_CONNECTIONS;
        if refuse {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let (cut, cut_rx) = watch::channel(None);
        let connection = Arc::new(Connection { cut, closed: AtomicBool::new(false) });
        lock(&shared.live).push(connection.clone());
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        {
            let mut times = lock(&shared.accept_times);
            if times.len() == ACCEPT_HISTORY {
                times.pop_front();
            }
            times.push_back(Instant::now());
        }
        tokio::spawn(proxy_connection(client, upstream, shared.clone(), connection, cut_rx));
    }
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    mut cut: watch::Receiver<Option<Cut>>,
) {
    let connected = tokio::select! {
        how = wait_for_cut(&mut cut) => Err(Some(how)),
        result = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)) => match result {
            Ok(Ok(stream)) => Ok(stream),
            _ => Err(None),
        },
    };
    let how = match connected {
        Ok(mut server) => {
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let how = relay(&mut client, &mut server, &shared, &mut cut).await;
            close(server, how);
            how
        }
        Err(how) => {
            if how.is_none() {
                // The upstream is down: the client sees a connection closed at once.
                shared.refused.fetch_add(1, Ordering::SeqCst);
            }
            how
        }
    };
    if how.is_some() {
        *lock(&shared.last_cut) = Some(Instant::now());
    }
    close(client, how);
    lock(&shared.live).retain(|c| !Arc::ptr_eq(c, &connection));
    connection.closed.store(true, Ordering::SeqCst);
}

fn close(stream: TcpStream, how: Option<Cut>) {
    if how == Some(Cut::Reset) {
        let _ = stream.set_zero_linger();
    }
    drop(stream);
}

/// Forwards both directions until both ended, either failed, or a cut is ordered.
async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    shared: &Shared,
    cut: &mut watch::Receiver<Option<Cut>>,
) -> Option<Cut> {
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let upward = pump(client_read, server_write, shared.settings.subscribe());
    let downward = pump(server_read, client_write, shared.settings.subscribe());
    tokio::pin!(upward, downward);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            how = wait_for_cut(cut) => return Some(how),
            result = &mut upward, if !up_done => {
                if result.is_err() { return None; }
                up_done = true;
            }
            result = &mut downward, if !down_done => {
                if result.is_err() { return None; }
                down_done = true;
            }
        }
    }
    None
}

async fn wait_for_cut(cut: &mut watch::Receiver<Option<Cut>>) -> Cut {
    loop {
        if let Some(how) = *cut.borrow_and_update() {
            return how;
        }
        if cut.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One direction: a reader queues chunks with their arrival time; a writer
/// forwards them under the current settings. EOF is passed on as a write shutdown.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    settings: watch::Receiver<Settings>,
) -> std::io::Result<()> {
    let (queue, mut queued) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            let n = from.read(&mut buffer).await?;
            if n == 0 || queue.send((Instant::now(), buffer[..n].to_vec())).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let writer = async move {
        let mut settings = settings;
        while let Some((read_at, chunk)) = queued.recv().await {
            forward(&mut to, read_at, &chunk, &mut settings).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

async fn forward(
    to: &mut WriteHalf<'_>,
    read_at: Instant,
    chunk: &[u8],
    settings: &mut watch::Receiver<Settings>,
) -> std::io::Result<()> {
    let mut rest = chunk;
    while !rest.is_empty() {
        let current = open_path(settings).await;
        tokio::time::sleep_until((read_at + current.delay).into()).await;
        let mut piece = rest.len();
        if let Some(max) = current.slice {
            piece = piece.min(max);
        }
        if let Some(rate) = current.throttle {
            // Pieces of about 1/20 s worth keep a trickle smooth and let a change
            // of settings apply soon.
            piece = piece.min((rate / 20).max(1) as usize);
        }
        to.write_all(&rest[..piece]).await?;
        rest = &rest[piece..];
        if let Some(rate) = current.throttle {
            tokio::time::sleep(Duration::from_secs_f64(piece as f64 / rate as f64)).await;
        } else if current.slice.is_some() {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// The current settings, once the black hole (if any) is lifted.
async fn open_path(settings: &mut watch::Receiver<Settings>) -> Settings {
    loop {
        let current = settings.borrow_and_update().clone();
        if !current.black_hole {
            return current;
        }
        if settings.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
