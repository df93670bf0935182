//! The native client against the local gateway: every test is a real socket.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Gateway;
use datanet::client::{Body, Client, Config, Event, Message, State};
use serde_json::{json, Value};

const KEY: &str = "ak_integration";
const WAIT: Duration = Duration::from_secs(10);

fn config(gw: &Gateway) -> Config {
    let mut c = Config::new(KEY);
    c.api_url = gw.url();
    c.ws_url = gw.ws_url();
    c.reconnect_base = Duration::from_millis(50);
    c.reconnect_max = Duration::from_millis(200);
    c
}

fn connected(config: Config) -> Client {
    let client = Client::new(config).expect("client");
    client.connect().unwrap();
    wait_event(&client, |e| matches!(e, Event::Connected { .. }));
    client
}

fn wait_event(client: &Client, wanted: impl FnMut(&Event) -> bool) -> Event {
    common::wait_event(client, "a matching event", WAIT, wanted)
}

fn wait_message(client: &Client, channel: &str) -> Message {
    match wait_event(client, |e| matches!(e, Event::Message(m) if m.channel == channel)) {
        Event::Message(m) => (*m).clone(),
        _ => unreachable!(),
    }
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(what, WAIT, done)
}

fn subscribed(client: &Client, channel: &str) {
    client.subscribe(channel).unwrap();
    wait_event(client, |e| matches!(e, Event::SubAck { channel: c, .. } if c == channel));
}

fn counter(client: &Client, name: &str) -> u64 {
    client.status()["counters"][name].as_u64().unwrap()
}

fn json_of(message: &Message) -> Value {
    match &message.body {
        Body::Json(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not JSON: {other:?}"),
    }
}

#[test]
fn json_values_flow_between_two_clients() {
    let gw = Gateway::start();
    let receiver = connected(config(&gw));
    let sender = connected(config(&gw));
    subscribed(&receiver, "project.demo.sensor");
    let sender_id = sender.status()["conn_id"].as_str().unwrap().to_string();
    let values = [
        json!(null),
        json!(true),
        json!(-7),
        json!(3.25),
        json!("héllo ✓"),
        json!([1, [2, {"a": null}]]),
        json!({"pos": {"x": 1.5, "y": -2}, "on": true, "name": "s1"}),
    ];
    for value in &values {
        sender.publish_json("project.demo.sensor", &value.to_string()).unwrap();
    }
    for value in &values {
        let message = wait_message(&receiver, "project.demo.sensor");
        assert_eq!(&json_of(&message), value);
        assert_eq!(message.from, sender_id);
        assert!(message.ts > 1_600_000_000_000, "server timestamp in ms: {}", message.ts);
    }
    // The last object was flattened into the numeric store.
    assert_eq!(receiver.value("project.demo.sensor", "pos/x"), Some(1.5));
    assert_eq!(receiver.value("project.demo.sensor", "on"), Some(1.0));
    assert_eq!(receiver.value("project.demo.sensor", "name"), None);
    let last = receiver.last_message("project.demo.sensor").unwrap();
    assert_eq!(json_of(&last), values[6]);
    assert_eq!(counter(&sender, "sent"), values.len() as u64);
    assert_eq!(counter(&receiver, "received"), values.len() as u64);
}

#[test]
fn binary_messages_keep_content_type_and_metadata() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.dmx");
    client.publish_binary("project.demo.dmx", &[1, 2, 3], "binary/dmx", Some(r#"{"universe":1}"#)).unwrap();
    client.publish_binary("project.demo.dmx", &[0xff, 0], "", None).unwrap();
    let first = wait_message(&client, "project.demo.dmx");
    assert_eq!(
        first.body,
        Body::Binary {
            data: vec![1, 2, 3],
            content_type: "binary/dmx".into(),
            meta: Some(r#"{"universe":1}"#.into()),
            raw: false
        }
    );
    let second = wait_message(&client, "project.demo.dmx");
    assert_eq!(
        second.body,
        Body::Binary { data: vec![0xff, 0], content_type: "application/octet-stream".into(), meta: None, raw: false }
    );
    assert!(client.publish_binary("project.demo.dmx", &[1], "x", Some("[1]")).is_err(), "metadata must be an object");
}

#[test]
fn unsubscribe_sends_unsub_only_for_the_last_subscriber() {
    let gw = Gateway::start();
    let receiver = connected(config(&gw));
    let sender = connected(config(&gw));
    subscribed(&receiver, "project.demo.u");
    receiver.subscribe("project.demo.u").unwrap(); // second local subscriber: no second `sub`
    assert!(receiver.unsubscribe("project.demo.u").unwrap());
    sender.publish_json("project.demo.u", "1").unwrap();
    assert_eq!(json_of(&wait_message(&receiver, "project.demo.u")), json!(1));
    assert_eq!(gw.stats()["subscriptions"]["project.demo.u"], 1);

    assert!(receiver.unsubscribe("project.demo.u").unwrap());
    wait_until("the gateway to drop the subscription", || {
        gw.stats()["subscriptions"].get("project.demo.u").and_then(Value::as_u64).unwrap_or(0) == 0
    });
    sender.publish_json("project.demo.u", "2").unwrap();
    // A marker on another channel proves the gateway has relayed everything sent before it.
    subscribed(&receiver, "project.demo.marker");
    sender.publish_json("project.demo.marker", "0").unwrap();
    let mut seen_after_unsub = 0;
    wait_event(&receiver, |e| match e {
        Event::Message(m) if m.channel == "project.demo.u" => {
            seen_after_unsub += 1;
            false
        }
        Event::Message(m) => m.channel == "project.demo.marker",
        _ => false,
    });
    assert_eq!(seen_after_unsub, 0);
    assert!(!receiver.unsubscribe("project.demo.u").unwrap(), "nothing left to unsubscribe");
    assert!(receiver.last_message("project.demo.u").is_none(), "last values forgotten with the subscription");
}

#[test]
fn forced_drop_reconnects_resubscribes_and_flows_again() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.r");
    let first_id = client.status()["conn_id"].as_str().unwrap().to_string();
    gw.admin_post("/_admin/drop", json!({}));
    wait_event(&client, |e| matches!(e, Event::Disconnected { .. }));
    let Event::Connected { conn_id } = wait_event(&client, |e| matches!(e, Event::Connected { .. })) else {
        unreachable!()
    };
    assert_ne!(conn_id, first_id);
    wait_event(&client, |e| matches!(e, Event::SubAck { channel, .. } if channel == "project.demo.r"));
    client.publish_json("project.demo.r", r#"{"after":"drop"}"#).unwrap();
    assert_eq!(json_of(&wait_message(&client, "project.demo.r")), json!({"after": "drop"}));
    assert_eq!(counter(&client, "reconnects"), 1);
    assert_eq!(client.state(), State::Connected);
}

#[test]
fn publishes_made_while_the_gateway_is_down_arrive_in_order() {
    let mut gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.outage");
    gw.kill();
    wait_event(&client, |e| matches!(e, Event::Disconnected { .. }));
    for n in 0..20 {
        client.publish_json("project.demo.outage", &n.to_string()).unwrap();
    }
    assert_eq!(counter(&client, "queued_outbound"), 20);
    gw.restart();
    let got: Vec<Value> = (0..20).map(|_| json_of(&wait_message(&client, "project.demo.outage"))).collect();
    assert_eq!(got, (0..20).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(counter(&client, "queued_outbound"), 0);
    assert_eq!(counter(&client, "dropped_outbound"), 0);
}

#[test]
fn outbound_overflow_drops_the_oldest_and_counts_exactly() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.outbound_max_messages = 5;
    let client = Client::new(c).unwrap();
    client.subscribe("project.demo.o").unwrap();
    for n in 0..12 {
        client.publish_json("project.demo.o", &n.to_string()).unwrap();
    }
    assert_eq!(counter(&client, "dropped_outbound"), 7);
    assert_eq!(counter(&client, "queued_outbound"), 5);
    client.connect().unwrap();
    let got: Vec<Value> = (0..5).map(|_| json_of(&wait_message(&client, "project.demo.o"))).collect();
    assert_eq!(got, (7..12).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(counter(&client, "sent"), 5);
}

#[test]
fn device_limit_reached_is_fatal() {
    let gw = Gateway::start();
    gw.admin_post("/_admin/device-limit", json!({"key": KEY, "limit": 0}));
    let client = Client::new(config(&gw)).unwrap();
    client.connect().unwrap();
    let Event::Error(error) = wait_event(&client, |e| matches!(e, Event::Error(_))) else { unreachable!() };
    assert_eq!(error.code, "device_limit_reached");
    assert_eq!(error.limit, Some(0));
    wait_until("state failed", || client.state() == State::Failed);
    let attempts = gw.stats()["connections_total"].as_u64().unwrap();
    // Many reconnect delays (50..200 ms) pass: no further attempt is made.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(gw.stats()["connections_total"].as_u64().unwrap(), attempts);
    assert_eq!(client.status()["last_error"]["code"], "device_limit_reached");
}

#[test]
fn bad_api_key_gives_authentication_failed_with_http_status() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.api_key = "not-a-key-secret".into();
    let client = Client::new(c).unwrap();
    client.connect().unwrap();
    let Event::Error(error) = wait_event(&client, |e| matches!(e, Event::Error(_))) else { unreachable!() };
    assert_eq!(error.code, "authentication_failed");
    assert_eq!(error.status, Some(401));
    let status = client.status().to_string();
    assert!(status.contains("authentication_failed"));
    assert!(!status.contains("not-a-key-secret"), "the key never appears in status");
}

#[test]
fn rate_limited_is_surfaced_with_its_fields() {
    let gw = Gateway::start();
    gw.admin_post("/_admin/rate-limit", json!({"channel": "project.demo.fast", "per_second": 2}));
    let client = connected(config(&gw));
    for n in 0..10 {
        client.publish_json("project.demo.fast", &n.to_string()).unwrap();
    }
    let Event::Error(error) = wait_event(&client, |e| matches!(e, Event::Error(_))) else { unreachable!() };
    assert_eq!(error.code, "rate_limited");
    assert_eq!(error.scope.as_deref(), Some("channel"));
    assert_eq!(error.channel.as_deref(), Some("project.demo.fast"));
    assert!(error.retry_ms.is_some_and(|ms| (1..=1000).contains(&ms)), "{error:?}");
    assert_eq!(client.state(), State::Connected, "rate limiting is not a disconnect");
}

#[test]
fn heartbeats_measure_round_trip_time() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.heartbeat_interval = Duration::from_millis(50);
    let client = connected(c);
    wait_until("an RTT figure", || client.status()["rtt_ms"].is_number());
    let rtt = client.status()["rtt_ms"].as_f64().unwrap();
    assert!((0.0..1000.0).contains(&rtt), "rtt {rtt}");
    // Several heartbeat intervals later the connection is still the same one.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(counter(&client, "reconnects"), 0);
    assert!(!std::iter::from_fn(|| client.next_event()).any(|e| matches!(e, Event::Disconnected { .. })));
}

#[test]
fn round_trip_time_is_known_soon_after_connected() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    // Far longer than the wait below: only a heartbeat sent at `connected` can
    // measure the round trip in time.
    c.heartbeat_interval = Duration::from_secs(600);
    let client = connected(c);
    wait_until("an RTT figure long before the first heartbeat interval", || client.status()["rtt_ms"].is_number());
}

#[test]
fn liveness_timeout_when_the_gateway_stops_answering() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.heartbeat_interval = Duration::from_millis(200);
    let client = connected(c);
    let frozen_at = Instant::now();
    gw.admin_post("/_admin/freeze", json!({}));
    let Event::Disconnected { reason } = wait_event(&client, |e| matches!(e, Event::Disconnected { .. })) else {
        unreachable!()
    };
    let silent = frozen_at.elapsed();
    assert!(reason.contains("no frame"), "{reason}");
    assert!(silent >= Duration::from_millis(390), "declared dead after {silent:?}, before 2 intervals");
    gw.admin_post("/_admin/thaw", json!({}));
}

#[test]
fn inbound_overflow_keeps_the_newest_and_counts_exactly() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.inbound_queue_capacity = 10;
    let receiver = connected(c);
    subscribed(&receiver, "project.demo.flood");
    let sender = connected(config(&gw));
    for n in 0..50 {
        sender.publish_json("project.demo.flood", &json!({"n": n}).to_string()).unwrap();
    }
    wait_until("50 messages received", || counter(&receiver, "received") == 50);
    assert_eq!(receiver.pending_events(), 10);
    assert_eq!(counter(&receiver, "dropped_inbound"), 40);
    let kept: Vec<Value> = std::iter::from_fn(|| receiver.next_event())
        .map(|e| match e {
            Event::Message(m) => json_of(&m)["n"].clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kept, (40..50).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(receiver.value("project.demo.flood", "n"), Some(49.0), "the store holds the newest value");
}

/// A server that accepts TCP connections and never answers.
fn silent_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    (listener, format!("{address}"))
}

#[test]
fn disconnect_is_quick_when_the_token_request_hangs() {
    let (_listener, address) = silent_server();
    let mut c = Config::new(KEY);
    c.api_url = format!("http://{address}");
    c.ws_url = format!("ws://{address}");
    let client = Client::new(c).unwrap();
    client.connect().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    client.disconnect();
    assert!(started.elapsed() < Duration::from_millis(500), "disconnect took {:?}", started.elapsed());
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn disconnect_is_quick_when_the_websocket_hangs() {
    let gw = Gateway::start();
    let (_listener, address) = silent_server();
    let mut c = config(&gw);
    c.ws_url = format!("ws://{address}");
    let client = Client::new(c).unwrap();
    client.connect().unwrap();
    wait_until("the token", || gw.stats()["auth_requests"].as_u64() == Some(1));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(client);
    assert!(started.elapsed() < Duration::from_millis(500), "free took {:?}", started.elapsed());
}

#[test]
fn disconnect_is_quick_when_a_connected_gateway_freezes() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    gw.admin_post("/_admin/freeze", json!({}));
    let started = Instant::now();
    client.disconnect();
    assert!(started.elapsed() < Duration::from_millis(500), "disconnect took {:?}", started.elapsed());
    gw.admin_post("/_admin/thaw", json!({}));
}

#[test]
fn raw_binary_frames_are_delivered_marked_raw() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.any");
    gw.admin_post("/_admin/send", json!({"binary_b64": "/wABAg=="}));
    let Event::Message(message) = wait_event(&client, |e| matches!(e, Event::Message(_))) else { unreachable!() };
    assert_eq!(message.channel, "");
    assert_eq!(
        message.body,
        Body::Binary {
            data: vec![0xff, 0, 1, 2],
            content_type: "application/octet-stream".into(),
            meta: None,
            raw: true
        }
    );
}

#[test]
fn malformed_frames_are_reported_and_the_connection_survives() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.m");
    for text in ["not json", r#"{"op":"pub","ch":5}"#, r#"{"op":"pub","ch":"c","bin":true,"b64":"@@"}"#] {
        gw.admin_post("/_admin/send", json!({"text": text}));
    }
    for _ in 0..3 {
        let Event::Error(error) = wait_event(&client, |e| matches!(e, Event::Error(_))) else { unreachable!() };
        assert_eq!(error.code, "protocol_error");
    }
    client.publish_json("project.demo.m", "1").unwrap();
    assert_eq!(json_of(&wait_message(&client, "project.demo.m")), json!(1));
    assert_eq!(counter(&client, "malformed"), 3);
    assert_eq!(counter(&client, "reconnects"), 0);
}

#[test]
fn presence_answers_arrive_as_events() {
    let gw = Gateway::start();
    let offline = Client::new(config(&gw)).unwrap();
    offline.request_presence("project.demo.p").unwrap();
    let Event::Presence { result, .. } = wait_event(&offline, |e| matches!(e, Event::Presence { .. })) else {
        unreachable!()
    };
    assert_eq!(result.unwrap_err().code, "not_connected");

    let client = connected(config(&gw));
    subscribed(&client, "project.demo.p");
    client.request_presence("project.demo.p").unwrap();
    let Event::Presence { channel, result } = wait_event(&client, |e| matches!(e, Event::Presence { .. })) else {
        unreachable!()
    };
    assert_eq!(channel, "project.demo.p");
    let presence = result.unwrap();
    assert_eq!(presence.occupancy, 1);
    assert_eq!(presence.members, vec![client.status()["conn_id"].as_str().unwrap().to_string()]);
}

#[test]
fn short_lived_tokens_are_refreshed_on_reconnect() {
    let gw = Gateway::start();
    // Tokens that expire within the 60 s refresh margin are never reused.
    gw.admin_post("/_admin/token-ttl", json!({"seconds": 30}));
    let client = connected(config(&gw));
    assert_eq!(gw.stats()["auth_requests"], 1);
    gw.admin_post("/_admin/drop", json!({}));
    wait_event(&client, |e| matches!(e, Event::Disconnected { .. }));
    wait_event(&client, |e| matches!(e, Event::Connected { .. }));
    assert_eq!(gw.stats()["auth_requests"], 2);
}

#[test]
fn long_lived_tokens_are_reused_on_reconnect() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    gw.admin_post("/_admin/drop", json!({}));
    wait_event(&client, |e| matches!(e, Event::Disconnected { .. }));
    wait_event(&client, |e| matches!(e, Event::Connected { .. }));
    assert_eq!(gw.stats()["auth_requests"], 1);
}

#[test]
fn max_reconnect_attempts_ends_in_failed() {
    let (listener, address) = silent_server();
    drop(listener); // nothing listens: every attempt is refused at once
    let mut c = Config::new(KEY);
    c.api_url = format!("http://{address}");
    c.ws_url = format!("ws://{address}");
    c.reconnect_base = Duration::from_millis(10);
    c.reconnect_max = Duration::from_millis(20);
    c.max_reconnect_attempts = 3;
    let client = Client::new(c).unwrap();
    client.connect().unwrap();
    wait_until("state failed", || client.state() == State::Failed);
    let errors: Vec<String> = std::iter::from_fn(|| client.next_event())
        .filter_map(|e| match e {
            Event::Error(error) => Some(error.code),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 5, "4 failed attempts and the give-up: {errors:?}");
    assert_eq!(client.status()["reconnect_attempts"], 3);
}

#[test]
fn invalid_arguments_are_clear_errors() {
    let client = Client::new(Config::new(KEY)).unwrap();
    assert_eq!(client.subscribe("").unwrap_err().code, "invalid_argument");
    assert!(client.publish_json(&"x".repeat(256), "1").unwrap_err().message.contains("256"));
    assert!(client.publish_json("c", "{oops").unwrap_err().message.contains("not valid JSON"));
    let mut small = Config::new(KEY);
    small.max_message_bytes = 64;
    let client = Client::new(small).unwrap();
    assert!(client.publish_binary("c", &[0; 100], "", None).unwrap_err().message.contains("max_message_bytes"));
}

#[test]
fn device_limit_after_connected_disconnects_and_fails() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    let fatal = json!({"type": "error", "error": "device_limit_reached", "limit": 2}).to_string();
    gw.admin_post("/_admin/send", json!({"text": fatal}));
    wait_event(&client, |e| matches!(e, Event::Disconnected { .. }));
    let Event::Error(error) = wait_event(&client, |e| matches!(e, Event::Error(_))) else { unreachable!() };
    assert_eq!((error.code.as_str(), error.limit), ("device_limit_reached", Some(2)));
    wait_until("state failed", || client.state() == State::Failed);
    let connections = gw.stats()["connections_total"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gw.stats()["connections_total"].as_u64().unwrap(), connections, "no reconnect after a fatal error");
}

#[test]
fn lighting_payloads_fill_the_store_and_others_are_counted() {
    let gw = Gateway::start();
    let client = connected(config(&gw));
    subscribed(&client, "project.demo.light");
    let packet = datanet::protocol::lighting::build_art_dmx_packet(
        &[10, 20, 30],
        datanet::protocol::lighting::ArtDmxHeader::clamped(2, 1, 0, 0, 0),
    );
    let floats: Vec<u8> = [0.5f32, -1.25].iter().flat_map(|f| f.to_le_bytes()).collect();
    client.publish_binary("project.demo.light", &[0, 128, 255], "binary/dmx", Some(r#"{"universe":3}"#)).unwrap();
    client.publish_binary("project.demo.light", &packet, "binary/artnet", None).unwrap();
    client.publish_binary("project.demo.light", &floats, "binary/vecf32", None).unwrap();
    client.publish_binary("project.demo.light", &[1, 2], "binary/ble-adv-batch", None).unwrap();
    client.publish_binary("project.demo.light", &[1, 2, 3], "binary/vecf32", None).unwrap();
    for _ in 0..5 {
        wait_message(&client, "project.demo.light");
    }
    assert_eq!(client.value("project.demo.light", "u3/2"), Some(128.0), "binary/dmx slot 2 of universe 3");
    assert_eq!(client.value("project.demo.light", "u3/3"), Some(255.0));
    assert_eq!(client.value("project.demo.light", "u18/3"), Some(30.0), "Art-Net Port-Address 0x12 = 18");
    assert_eq!(client.value("project.demo.light", "1"), Some(-1.25), "vecf32 index 1");
    assert_eq!(counter(&client, "binary_other"), 1);
    assert_eq!(counter(&client, "binary_invalid"), 1);
    assert_eq!(client.status()["last_error"]["code"], "protocol_error");
}

#[test]
fn dmx_can_be_normalised_to_unit_range() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.dmx_normalize = true;
    let client = connected(c);
    subscribed(&client, "project.demo.n");
    client.publish_binary("project.demo.n", &[255, 51], "binary/dmx", None).unwrap();
    wait_message(&client, "project.demo.n");
    assert_eq!(client.value("project.demo.n", "1"), Some(1.0));
    assert_eq!(client.value("project.demo.n", "2"), Some(0.2));
}

#[test]
fn streams_send_the_newest_value_at_the_capped_rate() {
    let gw = Gateway::start();
    let receiver = connected(config(&gw));
    subscribed(&receiver, "project.demo.stream");
    let sender = connected(config(&gw));
    // 200 offers over ~1 s (a 200 fps source) on a 20 Hz stream.
    let started = Instant::now();
    for n in 0..200u32 {
        sender.stream_dmx("project.demo.stream", &[f64::from(n % 256)], 1, None, 20.0).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    wait_until("the stream to drain", || sender.status()["counters"]["streams_pending"] == 0);
    let status = sender.status();
    let sent = status["counters"]["sent"].as_u64().unwrap();
    let coalesced = status["counters"]["coalesced"].as_u64().unwrap();
    assert_eq!(sent + coalesced, 200, "every offer is sent or coalesced");
    let cap = (elapsed.as_secs_f64() * 20.0).ceil() as u64 + 1;
    assert!(sent <= cap, "{sent} frames in {elapsed:?} exceeds 20 Hz");
    assert!(sent >= cap / 2, "{sent} frames in {elapsed:?}: far below the cap");
    // The last frame carries the newest value.
    let mut last = None;
    wait_until("every streamed frame", || {
        while let Some(event) = receiver.next_event() {
            if let Event::Message(m) = event {
                last = Some(m);
            }
        }
        counter(&receiver, "received") == sent
    });
    let Body::Binary { data, content_type, .. } = &last.unwrap().body else { panic!("binary expected") };
    assert_eq!((data.as_slice(), content_type.as_str()), (&[199u8][..], "binary/dmx"));
}

#[test]
fn art_net_streams_number_their_packets() {
    let gw = Gateway::start();
    let receiver = connected(config(&gw));
    subscribed(&receiver, "project.demo.art");
    let header = datanet::protocol::lighting::ArtDmxHeader::clamped(1, 0, 0, 0, 0);
    for n in 0..3 {
        receiver.stream_artnet("project.demo.art", &[f64::from(n); 4], header, Some(r#"{"rig":"a"}"#), 0.0).unwrap();
        let message = wait_message(&receiver, "project.demo.art");
        let Body::Binary { data, meta, .. } = &message.body else { panic!("binary expected") };
        let packet = datanet::protocol::lighting::decode_art_dmx(data).unwrap();
        assert_eq!((packet.header.sequence, packet.data[0]), (n as u8 + 1, n as u8));
        assert_eq!(meta.as_deref(), Some(r#"{"rig":"a"}"#));
    }
}

#[test]
fn echo_off_drops_own_messages_and_counts_them() {
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.echo = false;
    let quiet = connected(c);
    let other = connected(config(&gw));
    subscribed(&quiet, "project.demo.echo");
    quiet.publish_json("project.demo.echo", r#""mine""#).unwrap();
    wait_until("the own message to be suppressed", || counter(&quiet, "echo_suppressed") == 1);
    other.publish_json("project.demo.echo", r#""theirs""#).unwrap();
    assert_eq!(json_of(&wait_message(&quiet, "project.demo.echo")), json!("theirs"));
    assert_eq!(counter(&quiet, "received"), 1);
}

/// A client subscribed to `channel` that reads the socket at `pace`.
fn reading_at(gw: &Gateway, pace: Duration, channel: &str) -> Client {
    let mut c = config(gw);
    c.read_pace = pace;
    let client = connected(c);
    subscribed(&client, channel);
    client
}

/// 20 ms: messages published 1 ms apart stay well inside it even on a loaded machine.
const TEST_PACE: Duration = Duration::from_millis(20);

#[test]
fn frequent_messages_are_read_on_the_pace_timer_in_order_and_sparse_ones_on_wakes() {
    let gw = Gateway::start();
    let channel = "project.demo.paced";
    let paced = reading_at(&gw, TEST_PACE, channel);
    let unpaced = reading_at(&gw, Duration::ZERO, channel);
    let sender = connected(config(&gw));
    let sent = 300;
    for n in 0..sent {
        sender.publish_json(channel, &json!({"n": n}).to_string()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    for receiver in [&paced, &unpaced] {
        wait_until("every message received", || counter(receiver, "received") == sent);
        let order: Vec<Value> = std::iter::from_fn(|| receiver.next_event())
            .filter_map(|e| match e {
                Event::Message(m) => Some(json_of(&m)["n"].clone()),
                _ => None,
            })
            .collect();
        assert_eq!(order, (0..sent).map(|n| json!(n)).collect::<Vec<_>>());
    }
    assert!(counter(&paced, "reads_on_timer") > 0, "{}", paced.status()["counters"]);
    assert_eq!(counter(&unpaced, "reads_on_timer"), 0);
    assert!(paced.status()["read_timer_late_ms"].is_number(), "how late the timer fires is shown");
    assert!(unpaced.status()["read_timer_late_ms"].is_null());
    // Quiet for far longer than the ticks that end pacing: a lone message is read on a wake.
    std::thread::sleep(Duration::from_secs(1));
    let timed = counter(&paced, "reads_on_timer");
    sender.publish_json(channel, r#"{"n":"last"}"#).unwrap();
    assert_eq!(json_of(&wait_message(&paced, channel))["n"], "last");
    assert_eq!(counter(&paced, "reads_on_timer"), timed, "read on a wake, not a tick");
}

#[test]
fn a_connection_dropped_while_read_on_the_pace_timer_reconnects_and_flows_again() {
    let gw = Gateway::start();
    let channel = "project.demo.paced-drop";
    let receiver = reading_at(&gw, TEST_PACE, channel);
    let sender = connected(config(&gw));
    let publishing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while publishing.load(Ordering::Relaxed) {
                sender.publish_json(channel, r#"{"n":1}"#).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        wait_until("reads on the pace timer", || counter(&receiver, "reads_on_timer") > 0);
        gw.admin_post("/_admin/drop", json!({}));
        wait_event(&receiver, |e| matches!(e, Event::Disconnected { .. }));
        wait_event(&receiver, |e| matches!(e, Event::Connected { .. }));
        wait_event(&receiver, |e| matches!(e, Event::SubAck { channel: c, .. } if c == channel));
        let before = counter(&receiver, "received");
        wait_until("messages again after the reconnect", || counter(&receiver, "received") > before + 50);
        publishing.store(false, Ordering::Relaxed);
    });
    assert_eq!(counter(&receiver, "reconnects"), 1);
    assert_eq!(receiver.state(), State::Connected);
}
