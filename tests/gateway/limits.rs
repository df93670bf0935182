//! Issue 18's behaviours (not speeds: those are in the load benchmark): queues
//! bounded in bytes with a notice to the slow client, the frame limit, the idle
//! timeout, and rate-limited logging.

use super::*;
use common::Launch;

const QUEUE_BOUND: u64 = 256 * 1024;

/// The admin stats entry of one connection.
fn connection_stats(gateway: &Gateway, conn: &str) -> Value {
    let stats = gateway.stats();
    let entry = stats["per_connection"].as_array().unwrap().iter().find(|entry| entry["conn"] == conn).cloned();
    entry.unwrap_or(Value::Null)
}

#[test]
fn a_slow_subscriber_is_bounded_in_bytes_keeps_the_newest_and_is_told() {
    const COUNT: u64 = 1000;
    let bound = QUEUE_BOUND.to_string();
    let gateway = Gateway::start_with(&[
        "--max-queued-bytes",
        &bound,
        "--max-frames-per-second",
        "100000",
        "--max-bytes-per-second",
        "1000000000",
    ]);
    let mut slow = Client::connect(&gateway);
    slow.subscribe("project.demo.flood");
    let mut publisher = Client::connect_with(&gateway, &gateway.token("ak_publisher"));
    let pad = "x".repeat(32 * 1024);
    // 32 MiB for a reader that reads nothing: more than every socket buffer on the
    // way, so the gateway's queue must hold the rest or drop it.
    for n in 0..COUNT {
        publisher
            .ws
            .write(Message::text(
                json!({"op": "pub", "ch": "project.demo.flood", "d": {"n": n, "pad": pad}}).to_string(),
            ))
            .unwrap();
    }
    publisher.ws.flush().unwrap();
    publisher.heartbeat();
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let entry = connection_stats(&gateway, &slow.conn_id);
        assert!(entry["queued_bytes"].as_u64().unwrap() <= QUEUE_BOUND, "{entry}");
        if entry["dropped"].as_u64().unwrap() > 0 && gateway.stats()["published"] == COUNT {
            break entry;
        }
        assert!(Instant::now() < deadline, "nothing was dropped: {entry}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, public) = gateway.get_json("/stats", None);
    assert_eq!(status, 200);
    assert_eq!(public["slow_connections"][0]["conn"], json!(slow.conn_id), "{public}");
    assert!(public["dropped"].as_u64().unwrap() >= entry["dropped"].as_u64().unwrap());

    // Now it reads: the newest message is there, and so is a notice of the loss.
    let (mut last, mut told) = (None, 0);
    while let Ok(Some(Message::Text(text))) = slow.next_frame(Duration::from_secs(1)) {
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "error" {
            assert_eq!((&frame["error"], &frame["limit"]), (&json!("slow_consumer"), &json!(QUEUE_BOUND)), "{frame}");
            told += frame["dropped"].as_u64().unwrap();
        } else {
            last = frame["d"]["n"].as_u64();
        }
    }
    assert_eq!(last, Some(COUNT - 1), "the newest is kept");
    assert!(told > 0, "the slow subscriber was told");
    let dropped = connection_stats(&gateway, &slow.conn_id)["dropped"].as_u64().unwrap();
    assert_eq!(told, dropped, "told exactly what was counted");
    drop(slow);
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while gateway.stats()["queued_bytes"] != 0 {
        assert!(Instant::now() < deadline, "queued bytes not released: {}", gateway.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_default_frame_limit_is_the_clients_one_mebibyte() {
    let gateway = Gateway::start();
    let mut client = Client::connect(&gateway);
    client.subscribe("project.demo.big");
    // Read in full (1 MiB), but its relayed form would be over 1 MiB: refused.
    let just_under = "x".repeat(1024 * 1024 - 64);
    let refused = client.ask(json!({"op": "pub", "ch": "project.demo.big", "d": just_under}));
    assert_eq!((&refused["error"], &refused["limit"]), (&json!("message_too_large"), &json!(1024 * 1024)));
    client.send(json!({"op": "pub", "ch": "project.demo.big", "d": "fits"}));
    assert_eq!(client.next_json()["d"], "fits", "the connection stays");
    assert_eq!(gateway.stats()["oversized"], 1);
}

#[test]
fn an_idle_connection_is_closed_and_a_live_one_is_kept() {
    let gateway = Gateway::start_with(&["--idle-timeout", "0.5"]);
    let mut idle = Client::connect(&gateway);
    let mut live = Client::connect(&gateway);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        live.heartbeat();
        std::thread::sleep(Duration::from_millis(100));
    }
    match idle.next_frame(FRAME_TIMEOUT) {
        Ok(Some(Message::Close(Some(frame)))) => assert_eq!(frame.reason.as_str(), "idle_timeout"),
        other => panic!("expected an idle_timeout close, got {other:?}"),
    }
    live.heartbeat();
}

#[test]
fn warnings_are_rate_limited_per_connection_never_a_line_per_frame() {
    const FRAMES: usize = 2000;
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("flood-{}.log", std::process::id()));
    let gateway = Gateway::launch(Launch { log: Some(log.clone()), ..Launch::default() });
    let mut client = Client::connect(&gateway);
    for _ in 0..FRAMES {
        client.ws.write(Message::text("not json")).unwrap();
    }
    client.ws.flush().unwrap();
    for _ in 0..FRAMES {
        assert_eq!(client.next_json()["error"], "bad_request");
    }
    let label = client.conn_id.clone();
    drop(client);
    let deadline = Instant::now() + FRAME_TIMEOUT;
    let logged = loop {
        let logged = std::fs::read_to_string(&log).unwrap();
        if logged.contains(&format!("disconnect {label}")) {
            break logged;
        }
        assert!(Instant::now() < deadline, "no disconnect line: {logged}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let warnings: Vec<&str> = logged.lines().filter(|line| line.contains("bad_request")).collect();
    assert!(warnings.len() <= 2, "{} lines for {FRAMES} bad frames:\n{logged}", warnings.len());
    assert!(warnings.iter().any(|line| line.contains(&format!("{} x bad_request", FRAMES - 1))), "{logged}");
}
