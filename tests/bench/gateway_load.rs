//! Load and hostile-input benchmark of the local gateway, with Mosquitto 2.x side by
//! side where it is installed (Debian package `mosquitto`; the benchmark installs
//! it when it can, or says it skips it). One run, one machine: the figures go to
//! tests/RELIABILITY.md. Not a test: nothing here asserts a speed.
//!
//!     cargo bench --bench gateway_load                 # every scenario
//!     cargo bench --bench gateway_load -- fan-in idle  # some of them
//!     cargo bench --bench gateway_load -- fan-in mosquitto  # one server only
//!
//! Scenarios: `fan-in` (100 publishers, 1 subscriber), `fan-out` (1 publisher, 100
//! subscribers), `idle` (10,000 idle subscribed clients: RSS per connection),
//! `flood` (4 flooding connections, a well-behaved client's p99 and fresh
//! connects), `hostile` (oversized frames, 10,000 subscriptions, invalid JSON,
//! 200 slowloris, 1,000 half-open handshakes: p99 and RSS before/after).
//!
//! The load generator runs in this process on its own 2-worker runtime; its CPU
//! share and the server's, over each step's sending window, are printed with every
//! figure, so a step where either saturated is visible. Mosquitto runs with its
//! stock settings, and in the relay scenarios a second time with `set_tcp_nodelay`.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const STEP: Duration = Duration::from_secs(3);
const DRAIN: Duration = Duration::from_secs(1);
const PAD: usize = 60;
const IDLE_CLIENTS: usize = 10_000;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// A 100-byte JSON payload carrying its send time and step.
fn payload(step: u32) -> String {
    let text = json!({"t": now_ns(), "s": step, "p": ""}).to_string();
    let pad = 100usize.saturating_sub(text.len());
    json!({"t": now_ns(), "s": step, "p": "x".repeat(pad.min(PAD))}).to_string()
}

/// `(t, s)` from a payload or a relayed envelope, without a full parse.
fn stamp(text: &[u8]) -> Option<(u64, u32)> {
    let number_after = |key: &[u8]| -> Option<u64> {
        let at = text.windows(key.len()).position(|window| window == key)? + key.len();
        let digits: Vec<u8> = text[at..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    };
    Some((number_after(b"\"t\":")?, u32::try_from(number_after(b"\"s\":")?).ok()?))
}

// ---------------------------------------------------------------------------
// Processes under test

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds used so far by a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

struct Server {
    child: Child,
    port: u16,
    name: &'static str,
    /// Mosquitto, spoken to over MQTT; else the gateway over WebSocket.
    mqtt: bool,
}

impl Server {
    fn gateway(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_datanet-gateway"))
            .args(["--port", "0", "--max-connections", "20000"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        Server { child, port, name: "gateway", mqtt: false }
    }

    fn mosquitto(nodelay: bool) -> Option<Server> {
        if !mosquitto_installed() {
            return None;
        }
        let port = free_port();
        let config = std::env::temp_dir().join(format!("bench-mosquitto-{}.conf", std::process::id()));
        // Mosquitto's own defaults otherwise (no persistence, max_queued_messages
        // 1000, max_keepalive 65535). `set_tcp_nodelay` is off by default: Mosquitto
        // writes each packet with its own send() and Nagle's algorithm coalesces
        // them. With it on, every delivery is its own TCP segment: lower latency at
        // low rates, far less throughput. The relay scenarios measure both.
        let tuning = if nodelay { "set_tcp_nodelay true\n" } else { "" };
        std::fs::write(&config, format!("listener {port} 127.0.0.1\nallow_anonymous true\n{tuning}")).ok()?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let name = if nodelay { "mosquitto (set_tcp_nodelay)" } else { "mosquitto" };
        // Made before the wait, so a broker that never listens is still stopped.
        let server = Server { child, port, name, mqtt: true };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut listening = false;
        while !listening && Instant::now() < deadline {
            listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !listening {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Read at start-up: no longer needed.
        let _ = std::fs::remove_file(&config);
        if !listening {
            println!("SKIP {name}: it did not listen on port {port} within 5 s");
        }
        listening.then_some(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mosquitto_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let found =
            || Command::new("sh").args(["-c", "command -v mosquitto"]).output().is_ok_and(|o| o.status.success());
        if found() {
            return true;
        }
        println!("mosquitto is not installed: trying `apt-get install -y mosquitto`");
        let _ = Command::new("apt-get").args(["install", "-y", "mosquitto"]).stdout(Stdio::null()).status();
        if found() {
            return true;
        }
        println!("SKIP mosquitto: not installable here; gateway figures only");
        false
    })
}

#[path = "load_clients.rs"]
mod clients;
use clients::{token, ws_connect, ws_subscribe, Mqtt};

// ---------------------------------------------------------------------------
// Measurement

#[derive(Default)]
struct Tally {
    received: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

impl Tally {
    fn record(&self, text: &[u8], step: u32) {
        if let Some((sent_ns, s)) = stamp(text) {
            if s == step {
                self.received.fetch_add(1, Ordering::Relaxed);
                let latency = now_ns().saturating_sub(sent_ns) / 1000;
                self.latencies_us.lock().unwrap().push(latency.min(u64::from(u32::MAX)) as u32);
            }
        }
    }

    fn take(&self) -> (u64, Vec<u32>) {
        let received = self.received.swap(0, Ordering::Relaxed);
        let mut latencies = std::mem::take(&mut *self.latencies_us.lock().unwrap());
        latencies.sort_unstable();
        (received, latencies)
    }
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() as f64 * p) as usize).min(sorted_us.len() - 1);
    f64::from(sorted_us[index]) / 1000.0
}

/// Runs `work` for one step while sampling this process's and the server's CPU.
struct CpuShare {
    started: Instant,
    own: f64,
    server: f64,
    pid: u32,
}

impl CpuShare {
    fn start(pid: u32) -> CpuShare {
        CpuShare { started: Instant::now(), own: cpu_secs(std::process::id()), server: cpu_secs(pid), pid }
    }

    /// (generator %, server %) of one core.
    fn finish(&self) -> (f64, f64) {
        let wall = self.started.elapsed().as_secs_f64();
        let own = (cpu_secs(std::process::id()) - self.own) / wall * 100.0;
        let server = (cpu_secs(self.pid) - self.server) / wall * 100.0;
        (own, server)
    }
}

/// How many messages are due, in 10 ms ticks, to hold `per_second`.
struct Pacer {
    per_second: f64,
    started: Instant,
    done: u64,
    ticker: tokio::time::Interval,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Pacer { per_second, started: Instant::now(), done: 0, ticker }
    }

    async fn due(&mut self) -> u32 {
        self.ticker.tick().await;
        let due = (self.started.elapsed().as_secs_f64() * self.per_second) as u64;
        let count = due.saturating_sub(self.done);
        self.done = due.max(self.done);
        count as u32
    }
}

// ---------------------------------------------------------------------------
// Scenarios

struct Row {
    scenario: String,
    server: &'static str,
    figures: String,
}

fn report(rows: &[Row]) {
    println!("\n| scenario | server | figures |\n|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.scenario, row.server, row.figures);
    }
}

/// Many publishers to one subscriber, or one publisher to many subscribers,
/// stepping the rate; a step passes with >= 99% delivered and p99 < 50 ms.
async fn relay(server: &Server, publishers: usize, subscribers: usize, rates: &[f64], rows: &mut Vec<Row>) {
    let mqtt = server.mqtt;
    let port = server.port;
    let tally = Arc::new(Tally::default());
    let step_now = Arc::new(AtomicU64::new(0));
    let token =
        if mqtt { String::new() } else { tokio::task::spawn_blocking(move || token(port, "ak_bench")).await.unwrap() };
    for n in 0..subscribers {
        let (tally, step_now, token) = (tally.clone(), step_now.clone(), token.clone());
        if mqtt {
            let mut client = Mqtt::connect(port, &format!("sub-{n}")).await;
            client.subscribe("bench/relay").await;
            tokio::spawn(async move {
                while let Some((kind, body)) = client.next_packet().await {
                    if kind >> 4 == 3 {
                        tally.record(&body, step_now.load(Ordering::Relaxed) as u32);
                    }
                }
            });
        } else {
            let mut ws = ws_connect(port, &token).await;
            ws_subscribe(&mut ws, "project.demo.relay").await;
            tokio::spawn(async move {
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Text(text) = frame {
                        tally.record(text.as_bytes(), step_now.load(Ordering::Relaxed) as u32);
                    }
                }
            });
        }
    }
    let mut passed = None;
    let mut failed_in_a_row = 0;
    for (index, &rate) in rates.iter().enumerate() {
        if failed_in_a_row == 2 {
            // Past saturation a step only piles up backlog (its writers block for
            // many seconds); two failures in a row are the answer.
            println!("  {} {publishers}x{subscribers}: higher steps skipped after two failures", server.name);
            break;
        }
        let step = index as u32 + 1;
        step_now.store(u64::from(step), Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let began = Instant::now();
        for n in 0..publishers {
            let (stop, sent, token) = (stop.clone(), sent.clone(), token.clone());
            let per_publisher = rate / publishers as f64;
            if mqtt {
                let mut client = Mqtt::connect(port, &format!("pub-{step}-{n}")).await;
                tasks.push(tokio::spawn(async move {
                    let mut pacer = Pacer::new(per_publisher);
                    while !stop.load(Ordering::Relaxed) {
                        let count = pacer.due().await;
                        let mut bytes = Vec::new();
                        for _ in 0..count {
                            bytes.extend(Mqtt::publish_packet("bench/relay", payload(step).as_bytes()));
                        }
                        if client.stream.write_all(&bytes).await.is_err() {
                            break;
                        }
                        sent.fetch_add(u64::from(count), Ordering::Relaxed);
                    }
                }));
            } else {
                let ws = ws_connect(port, &token).await;
                tasks.push(tokio::spawn(async move {
                    // Replies (none expected) are read so the socket never stalls.
                    let (mut sink, mut stream) = ws.split();
                    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                    let mut pacer = Pacer::new(per_publisher);
                    while !stop.load(Ordering::Relaxed) {
                        let count = pacer.due().await;
                        for _ in 0..count {
                            let text = format!(r#"{{"op":"pub","ch":"project.demo.relay","d":{}}}"#, payload(step));
                            if sink.feed(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                        sent.fetch_add(u64::from(count), Ordering::Relaxed);
                    }
                }));
            }
        }
        // CPU is sampled over the sending window only: the connects before it and
        // the drain after it would dilute a saturated server's share.
        let cpu = CpuShare::start(server.pid());
        tokio::time::sleep(STEP).await;
        let (own, server_cpu) = cpu.finish();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        // Longer than STEP when a server stopped reading and the writers blocked.
        let sending = began.elapsed();
        tokio::time::sleep(DRAIN).await;
        let (received, latencies) = tally.take();
        let expected = sent.load(Ordering::Relaxed) * subscribers as u64;
        let delivered = received as f64 / expected.max(1) as f64 * 100.0;
        let p99 = percentile_ms(&latencies, 0.99);
        let per_second = received as f64 / sending.as_secs_f64();
        let ok = delivered >= 99.0 && p99 < 50.0;
        if ok {
            passed = Some((per_second, p99));
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
        }
        println!(
            "  {} {}x{} rate {:>7.0}/s: delivered {delivered:.1}% ({:.0}/s), p50 {:.2} ms, p99 {p99:.2} ms, \
             generator CPU {own:.0}%, server CPU {server_cpu:.0}%{}",
            server.name,
            publishers,
            subscribers,
            rate,
            per_second,
            percentile_ms(&latencies, 0.5),
            if ok { "" } else { "  <- fails the bar" }
        );
    }
    let scenario = format!("{publishers} -> {subscribers}, highest rate with >= 99% delivered and p99 < 50 ms");
    let figures = match passed {
        Some((per_second, p99)) => format!("{per_second:.0} deliveries/s (p99 {p99:.1} ms)"),
        None => "no step passed".to_string(),
    };
    rows.push(Row { scenario, server: server.name, figures });
}

/// RSS per idle, subscribed connection.
async fn idle(server: &Server, rows: &mut Vec<Row>) {
    let port = server.port;
    let mqtt = server.mqtt;
    let token =
        if mqtt { String::new() } else { tokio::task::spawn_blocking(move || token(port, "ak_idle")).await.unwrap() };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(server.pid());
    let mut held = Vec::with_capacity(IDLE_CLIENTS);
    for n in 0..IDLE_CLIENTS {
        if mqtt {
            let mut client = Mqtt::connect(port, &format!("idle-{n}")).await;
            client.subscribe(&format!("bench/idle/{}", n % 100)).await;
            held.push(Err(client));
        } else {
            let mut ws = ws_connect(port, &token).await;
            ws_subscribe(&mut ws, &format!("project.demo.idle.{}", n % 100)).await;
            held.push(Ok(ws));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    let per_connection = (after.saturating_sub(before)) as f64 / IDLE_CLIENTS as f64;
    println!(
        "  {} idle: {IDLE_CLIENTS} clients, RSS {:.1} MiB -> {:.1} MiB, {per_connection:.1} KiB per connection",
        server.name,
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    rows.push(Row {
        scenario: format!("{IDLE_CLIENTS} idle authenticated + subscribed clients"),
        server: server.name,
        figures: format!(
            "{per_connection:.1} KiB RSS per connection ({:.1} MiB in all)",
            (after - before) as f64 / 1024.0
        ),
    });
    drop(held);
}

/// A well-behaved client's round trips (publish to itself, 100 per second) for `span`.
async fn well_behaved(port: u16, mqtt: bool, span: Duration) -> Vec<u32> {
    let mut round_trips = Vec::new();
    let started = Instant::now();
    if mqtt {
        let mut client = Mqtt::connect(port, "well-behaved").await;
        client.subscribe("bench/wb").await;
        while started.elapsed() < span {
            let sent = Instant::now();
            client.stream.write_all(&Mqtt::publish_packet("bench/wb", b"ping")).await.unwrap();
            while let Some((kind, _)) = client.next_packet().await {
                if kind >> 4 == 3 {
                    break;
                }
            }
            round_trips.push(sent.elapsed().as_micros() as u32);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        let token = tokio::task::spawn_blocking(move || token(port, "ak_well_behaved")).await.unwrap();
        let mut ws = ws_connect(port, &token).await;
        ws_subscribe(&mut ws, "project.demo.wb").await;
        while started.elapsed() < span {
            let sent = Instant::now();
            ws.send(Message::text(r#"{"op":"pub","ch":"project.demo.wb","d":1}"#)).await.unwrap();
            while let Some(Ok(frame)) = ws.next().await {
                if frame.to_text().is_ok_and(|text| text.contains("\"message\"")) {
                    break;
                }
            }
            round_trips.push(sent.elapsed().as_micros() as u32);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    round_trips.sort_unstable();
    round_trips
}

/// Time from TCP connect to `connected` (gateway, token included) or CONNACK.
async fn fresh_connects(port: u16, mqtt: bool, count: usize) -> Vec<u32> {
    let mut times = Vec::new();
    for n in 0..count {
        let started = Instant::now();
        if mqtt {
            let _client = Mqtt::connect(port, &format!("fresh-{n}")).await;
        } else {
            let token = tokio::task::spawn_blocking(move || token(port, "ak_fresh")).await.unwrap();
            let _ws = ws_connect(port, &token).await;
        }
        times.push(started.elapsed().as_micros() as u32);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    times.sort_unstable();
    times
}

/// What the flood scenario measures, with and without flooders: a well-behaved
/// client's round trips while fresh clients connect beside it. The unloaded figure
/// is taken the same way, so the ratio compares like with like (the connects cost
/// the server a little work that lands on the probe's p99 either way).
async fn probe(port: u16, mqtt: bool) -> (Vec<u32>, Vec<u32>) {
    tokio::join!(well_behaved(port, mqtt, Duration::from_secs(5)), fresh_connects(port, mqtt, 20))
}

/// Four connections send valid heartbeats (gateway) or publishes nobody reads
/// (Mosquitto) as fast as they can, reading what comes back.
async fn flood(server: &Server, rows: &mut Vec<Row>) {
    let port = server.port;
    let mqtt = server.mqtt;
    let (quiet, quiet_connects) = probe(port, mqtt).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for n in 0..4 {
        let (stop, sent) = (stop.clone(), sent.clone());
        if mqtt {
            let client = Mqtt::connect(port, &format!("flood-{n}")).await;
            flooders.push(tokio::spawn(async move {
                let (mut reader, mut writer) = client.stream.into_split();
                tokio::spawn(async move {
                    let mut sink = [0u8; 16384];
                    while reader.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                });
                let batch: Vec<u8> = (0..100).flat_map(|_| Mqtt::publish_packet("bench/flood", b"{\"x\":1}")).collect();
                while !stop.load(Ordering::Relaxed) {
                    if writer.write_all(&batch).await.is_err() {
                        break;
                    }
                    sent.fetch_add(100, Ordering::Relaxed);
                }
            }));
        } else {
            let token = tokio::task::spawn_blocking(move || token(port, &format!("ak_flood_{n}"))).await.unwrap();
            let ws = ws_connect(port, &token).await;
            flooders.push(tokio::spawn(async move {
                let (mut sink, mut stream) = ws.split();
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..100 {
                        if sink.feed(Message::text(r#"{"op":"hb"}"#)).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                    sent.fetch_add(100, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = CpuShare::start(server.pid());
    let (loaded, connects) = probe(port, mqtt).await;
    let (own, server_cpu) = cpu.finish();
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.abort();
    }
    let figures = format!(
        "well-behaved p99 {:.2} ms, p50 {:.2} ms (unloaded: p99 {:.2} ms, p50 {:.2} ms), \
         fresh connects p50 {:.1} ms / max {:.1} ms (unloaded: max {:.1} ms); \
         flooders sent {} frames; generator CPU {own:.0}%, server CPU {server_cpu:.0}%",
        percentile_ms(&loaded, 0.99),
        percentile_ms(&loaded, 0.5),
        percentile_ms(&quiet, 0.99),
        percentile_ms(&quiet, 0.5),
        percentile_ms(&connects, 0.5),
        percentile_ms(&connects, 1.0),
        percentile_ms(&quiet_connects, 1.0),
        sent.load(Ordering::Relaxed)
    );
    println!("  {} flood: {figures}", server.name);
    rows.push(Row { scenario: "4 flooding connections".into(), server: server.name, figures });
}

/// Issue 17's hostile inputs, one after the other on one gateway: a well-behaved
/// client's p99 during each, and the gateway's RSS before and after.
async fn hostile(rows: &mut Vec<Row>) {
    let server = Server::gateway(&[]);
    let port = server.port;
    let token = tokio::task::spawn_blocking(move || token(port, "ak_hostile")).await.unwrap();
    type Attack = fn(u16, String, Arc<AtomicBool>) -> tokio::task::JoinHandle<u64>;
    let attacks: [(&str, Attack); 5] = [
        ("oversized frames (2 MiB, each on a new connection)", |port, token, stop| {
            tokio::spawn(async move {
                let mut count = 0;
                let big = "x".repeat(2 * 1024 * 1024);
                while !stop.load(Ordering::Relaxed) {
                    let mut ws = ws_connect(port, &token).await;
                    let _ = ws.send(Message::text(big.clone())).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    count += 1;
                }
                count
            })
        }),
        ("10,000 subscriptions on one connection", |port, token, stop| {
            tokio::spawn(async move {
                let ws = ws_connect(port, &token).await;
                let (mut sink, mut stream) = ws.split();
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                let mut count = 0;
                for n in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = sink
                        .send(Message::text(json!({"op": "sub", "ch": format!("project.demo.many.{n}")}).to_string()))
                        .await;
                    count += 1;
                }
                count
            })
        }),
        ("invalid JSON flood", |port, token, stop| {
            tokio::spawn(async move {
                let ws = ws_connect(port, &token).await;
                let (mut sink, mut stream) = ws.split();
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..100 {
                        let _ = sink.feed(Message::text("{not json")).await;
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                    count += 100;
                }
                count
            })
        }),
        ("200 slowloris clients (a header byte per second)", |port, _token, stop| {
            tokio::spawn(async move {
                let mut streams = Vec::new();
                for _ in 0..200 {
                    if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = stream.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
                        streams.push(stream);
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    for stream in &mut streams {
                        let _ = stream.write_all(b"x").await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                200
            })
        }),
        ("1,000 half-open WebSocket handshakes", |port, _token, stop| {
            tokio::spawn(async move {
                let mut streams = Vec::new();
                for _ in 0..1000 {
                    if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = stream.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await;
                        streams.push(stream);
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                streams.len() as u64
            })
        }),
    ];
    let quiet = well_behaved(port, false, Duration::from_secs(3)).await;
    println!("  hostile: unloaded p99 {:.2} ms", percentile_ms(&quiet, 0.99));
    rows.push(Row {
        scenario: "hostile: no attack".into(),
        server: "gateway",
        figures: format!("well-behaved p99 {:.2} ms", percentile_ms(&quiet, 0.99)),
    });
    for (name, attack) in attacks {
        let before = rss_kib(server.pid());
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = attack(port, token.clone(), stop.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = well_behaved(port, false, Duration::from_secs(5)).await;
        let peak = rss_kib(server.pid());
        stop.store(true, Ordering::Relaxed);
        let count =
            tokio::time::timeout(Duration::from_secs(15), attacker).await.ok().and_then(Result::ok).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(server.pid());
        let figures = format!(
            "well-behaved p99 {:.2} ms ({} round trips); RSS {:.1} MiB before, {:.1} MiB during, {:.1} MiB after; {count} attack units",
            percentile_ms(&during, 0.99),
            during.len(),
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            after as f64 / 1024.0
        );
        println!("  hostile {name}: {figures}");
        rows.push(Row { scenario: format!("hostile: {name}"), server: "gateway", figures });
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let (servers, scenarios): (Vec<&String>, Vec<&String>) =
        wanted.iter().partition(|name| *name == "gateway" || *name == "mosquitto");
    let runs = |name: &str| scenarios.is_empty() || scenarios.iter().any(|w| *w == name);
    let gateway_runs = servers.is_empty() || servers.iter().any(|w| *w == "gateway");
    let mosquitto_runs = servers.is_empty() || servers.iter().any(|w| *w == "mosquitto");
    let gateway = |extra: &[&str]| gateway_runs.then(|| Server::gateway(extra));
    let mosquitto = |nodelay| if mosquitto_runs { Server::mosquitto(nodelay) } else { None };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows = Vec::new();
    origin();
    println!("gateway load benchmark: {} cores; generator on 2 worker threads in this process", num_cores());
    runtime.block_on(async {
        if runs("fan-in") {
            let rates = [50_000.0, 100_000.0, 150_000.0, 200_000.0, 300_000.0, 400_000.0];
            if let Some(server) = gateway(&[]) {
                relay(&server, 100, 1, &rates, &mut rows).await;
            }
            for nodelay in [false, true] {
                if let Some(server) = mosquitto(nodelay) {
                    relay(&server, 100, 1, &rates, &mut rows).await;
                }
            }
        }
        if runs("fan-out") {
            // One publisher at these rates is beyond the per-connection default
            // (5,000 frames/s): lifted here, this measures the relay.
            let rates = [1_000.0, 2_000.0, 3_000.0, 5_000.0, 10_000.0, 20_000.0, 30_000.0];
            if let Some(server) =
                gateway(&["--max-frames-per-second", "1000000", "--max-bytes-per-second", "1000000000"])
            {
                relay(&server, 1, 100, &rates, &mut rows).await;
            }
            for nodelay in [false, true] {
                if let Some(server) = mosquitto(nodelay) {
                    relay(&server, 1, 100, &rates, &mut rows).await;
                }
            }
        }
        if runs("idle") {
            if let Some(server) = gateway(&[]) {
                idle(&server, &mut rows).await;
            }
            if let Some(server) = mosquitto(false) {
                idle(&server, &mut rows).await;
            }
        }
        if runs("flood") {
            if let Some(server) = gateway(&[]) {
                flood(&server, &mut rows).await;
            }
            if let Some(server) = mosquitto(false) {
                flood(&server, &mut rows).await;
            }
        }
        if runs("hostile") && gateway_runs {
            hostile(&mut rows).await;
        }
    });
    report(&rows);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
