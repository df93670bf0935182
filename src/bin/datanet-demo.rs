//! Headless end-to-end demo: starts the local gateway, connects a sensor
//! publisher and a TD-like consumer that drains events once per 60 fps frame, and
//! prints a live view of the values and the per-frame cost. Exits 0 when every
//! message arrived with nothing dropped.
//!
//! `cargo run --release --bin datanet-demo [-- --seconds N --rate MSGS_PER_S]`

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datanet::client::{Client, Config, Event};

const CHANNELS: [&str; 3] = ["project.demo.sensor.a", "project.demo.sensor.b", "project.demo.sensor.c"];
const FRAME: Duration = Duration::from_micros(16_667);

fn main() {
    let (seconds, rate) = parse_args();
    let mut gateway = start_gateway();
    let url = gateway.1.clone();
    let result = run(&url, seconds, rate);
    let _ = gateway.0.kill();
    let _ = gateway.0.wait();
    match result {
        Ok(()) => println!("demo: ok"),
        Err(why) => {
            eprintln!("demo: FAILED: {why}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> (u64, u64) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (value("--seconds", 4), value("--rate", 300).max(1))
}

/// The gateway binary sits beside this one; `cargo run` builds only this
/// binary, so build the gateway when it is missing.
fn start_gateway() -> (Child, String) {
    let here = std::env::current_exe().expect("current exe");
    let exe = here.with_file_name(format!("datanet-gateway{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = here.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--bin", "datanet-gateway"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo to build the gateway");
        assert!(status.success(), "building the gateway failed");
    }
    let mut child = Command::new(PathBuf::from(&exe))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("gateway banner");
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    println!("gateway: {url}");
    (child, url)
}

fn client(url: &str, device: &str) -> Result<Client, String> {
    let mut config = Config::new("ak_demo");
    config.api_url = url.to_string();
    config.ws_url = url.replacen("http", "ws", 1);
    config.device_id = Some(device.to_string());
    let client = Client::new(config).map_err(|e| e.to_string())?;
    client.connect().map_err(|e| e.to_string())?;
    Ok(client)
}

fn run(url: &str, seconds: u64, rate: u64) -> Result<(), String> {
    let consumer = client(url, "touchdesigner")?;
    for channel in CHANNELS {
        consumer.subscribe(channel).map_err(|e| e.to_string())?;
    }
    let sensor = client(url, "sensor-rig")?;
    // Wait for both connections and the three subscriptions.
    let started = Instant::now();
    let mut acks = 0;
    while acks < CHANNELS.len() || sensor.status()["state"] != "connected" {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("not connected after 10 s: {}", consumer.status()));
        }
        while let Some(event) = consumer.next_event() {
            if matches!(event, Event::SubAck { .. }) {
                acks += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let total = seconds * rate;
    let mut published = 0u64;
    let mut received = 0u64;
    let mut frame_costs: Vec<Duration> = Vec::new();
    let begin = Instant::now();
    let mut next_frame = begin;
    let mut last_print = begin;
    while received < total && begin.elapsed() < Duration::from_secs(seconds + 5) {
        // The sensor rig publishes at the requested rate.
        let due = (begin.elapsed().as_secs_f64() * rate as f64) as u64;
        while published < due.min(total) {
            let t = published as f64 / rate as f64;
            let channel = CHANNELS[(published % 3) as usize];
            let reading = serde_json::json!({
                "temp": 20.0 + (t * 0.5).sin() * 3.0,
                "pos": {"x": (t * 2.0).cos(), "y": (t * 2.0).sin()},
                "active": published % 2 == 0,
                "seq": published,
            });
            sensor.publish_json(channel, &reading.to_string()).map_err(|e| e.to_string())?;
            published += 1;
        }
        // The TD frame: drain the events, read the values for a CHOP.
        let frame_start = Instant::now();
        while let Some(event) = consumer.next_event() {
            if let Event::Message(_) = event {
                received += 1;
            }
        }
        let snapshot = consumer.snapshot(None);
        frame_costs.push(frame_start.elapsed());
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            print_view(&consumer, &snapshot, published, received);
        }
        next_frame += FRAME;
        if let Some(wait) = next_frame.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    frame_costs.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let median = frame_costs.get(frame_costs.len() / 2).copied().unwrap_or_default();
    let worst = frame_costs.last().copied().unwrap_or_default();
    let status = consumer.status();
    println!(
        "frames: {} | main-thread cost per frame: median {:.1} us, max {:.1} us (budget 16667 us)",
        frame_costs.len(),
        micros(median),
        micros(worst)
    );
    println!("published {published}, received {received}, dropped inbound {}", status["counters"]["dropped_inbound"]);
    consumer.disconnect();
    sensor.disconnect();
    if received != total || status["counters"]["dropped_inbound"] != 0 {
        return Err(format!("expected {total} messages, received {received}; status {status}"));
    }
    Ok(())
}

fn print_view(consumer: &Client, snapshot: &datanet::client::Snapshot, published: u64, received: u64) {
    let status = consumer.status();
    println!("-- state {} | published {published} received {received} | rtt {} ms", status["state"], status["rtt_ms"]);
    for ((channel, key), value) in snapshot.names.iter().zip(&snapshot.values) {
        println!("   {channel:<24} {key:<8} {value:>10.3}");
    }
}
