//! The protocol as the gateway serves it: tokens, envelopes, acks, presence, the
//! admin controls, and the limits that existed before the LAN work.

use super::*;

#[test]
fn token_carries_the_documented_claims() {
    let gateway = Gateway::start();
    let body = json!({"apiKey": KEY, "deviceId": "d-1", "clientId": "c-9", "deviceName": "stage left"});
    let (status, answer) = gateway.post_json("/auth/token", &body);
    assert_eq!(status, 200, "{answer}");
    let token = answer["token"].as_str().unwrap();
    assert!(!token.contains(KEY));

    let header: Value = serde_json::from_slice(&decode_url(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    let claims = jwt_claims(token);
    assert_eq!(claims["pid"], "demo");
    let sub = claims["sub"].as_str().unwrap();
    assert_eq!(sub.len(), 16);
    assert!(sub.chars().all(|c| c.is_ascii_hexdigit()), "{sub}");
    assert!(!claims.to_string().contains(KEY));
    let now = (now_ms() / 1000) as i64;
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!((iat - now).abs() <= 2, "iat {iat} vs now {now}");
    assert_eq!(exp - iat, 600);
    assert_eq!(claims["did"], "d-1");
    assert_eq!(claims["cid"], "c-9");
    assert_eq!(claims["dname"], "stage left");
    assert_eq!(claims["scopes"], json!(["pub", "sub"]));

    let plain = jwt_claims(&gateway.token(KEY));
    assert!(plain.get("did").is_none() && plain.get("cid").is_none() && plain.get("dname").is_none());
    assert_eq!(plain["sub"], claims["sub"], "the key id is stable");
}

#[test]
fn token_endpoint_refuses_bad_keys_and_bad_json() {
    let gateway = Gateway::start();
    for body in [json!({}), json!({"apiKey": "sk_live"}), json!({"apiKey": "ak_"}), json!({"apiKey": 7})] {
        let (status, answer) = gateway.post_json("/auth/token", &body);
        assert_eq!(status, 401, "{body}");
        assert_eq!(answer, json!({"error": "Invalid API key", "code": "invalid_api_key"}));
    }
    for body in [json!("ak_test"), json!([1]), json!({"apiKey": KEY, "deviceId": 5})] {
        let (status, answer) = gateway.post_json("/auth/token", &body);
        assert_eq!((status, &answer["code"]), (400, &json!("bad_request")), "{body}");
    }
    let mut raw = TcpStream::connect(("127.0.0.1", gateway.port())).unwrap();
    let not_json = "POST /auth/token HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope";
    assert!(raw_exchange(&mut raw, not_json.as_bytes()).starts_with("HTTP/1.1 400 "));
}

#[test]
fn websocket_upgrade_needs_a_valid_unexpired_token() {
    let gateway = Gateway::start();
    assert_eq!(http_status(open_ws(&gateway, None).unwrap_err()), 401);
    assert_eq!(http_status(open_ws(&gateway, Some("not-a-jwt")).unwrap_err()), 401);

    let token = gateway.token(KEY);
    let (unsigned, _signature) = token.rsplit_once('.').unwrap();
    let forged = format!("{unsigned}.{}", "A".repeat(43));
    assert_eq!(http_status(open_ws(&gateway, Some(&forged)).unwrap_err()), 401);

    gateway.admin_post("token-ttl", json!({"seconds": -1}));
    let expired = gateway.token(KEY);
    assert_eq!(http_status(open_ws(&gateway, Some(&expired)).unwrap_err()), 401);
    assert!(open_ws(&gateway, Some(&token)).is_ok(), "the unexpired token still works");
}

#[test]
fn connected_envelope_names_connection_and_user() {
    let gateway = Gateway::start();
    let token = gateway.token(KEY);
    let first = Client::connect_with(&gateway, &token);
    let second = Client::connect_with(&gateway, &token);
    assert!(first.conn_id.starts_with("c-"), "{}", first.connected);
    assert_ne!(first.conn_id, second.conn_id);
    assert_eq!(first.connected["userId"], jwt_claims(&token)["sub"]);
}

#[test]
fn subscribe_acks_with_occupancy() {
    let gateway = Gateway::start();
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    assert_eq!(
        a.subscribe("project.demo.a"),
        json!({"type": "sub_ack", "op": "hereNow", "ch": "project.demo.a", "occupancy": 1})
    );
    assert_eq!(b.subscribe("project.demo.a")["occupancy"], 2);
    assert_eq!(a.subscribe("project.demo.a")["occupancy"], 2, "subscribing twice is one subscription");
    assert_eq!(gateway.stats()["subscriptions"], json!({"project.demo.a": 2}));
}

#[test]
fn json_publish_reaches_every_subscriber_including_the_sender() {
    let gateway = Gateway::start();
    let (mut a, mut b, mut outsider) =
        (Client::connect(&gateway), Client::connect(&gateway), Client::connect(&gateway));
    a.subscribe("project.demo.x");
    b.subscribe("project.demo.x");
    outsider.subscribe("project.demo.other");
    let sender = a.conn_id.clone();
    let before = now_ms();
    a.send(json!({"op": "pub", "ch": "project.demo.x", "d": {"level": 0.5, "tags": ["a"]}}));
    for client in [&mut a, &mut b] {
        let message = client.next_json();
        let ts = message["ts"].as_u64().expect("ts is an integer");
        assert!(ts >= before && ts <= now_ms(), "ts {ts}");
        assert_eq!(
            message,
            json!({"type": "message", "op": "pub", "ch": "project.demo.x",
                   "d": {"level": 0.5, "tags": ["a"]}, "ts": ts, "from": sender})
        );
    }
    outsider.expect_quiet();
}

#[test]
fn binary_publish_is_relayed_with_length_type_and_metadata() {
    let gateway = Gateway::start();
    let mut client = Client::connect(&gateway);
    client.subscribe("project.demo.dmx");
    // PROTOCOL.md §9's publish_binary vector.
    client.send(json!({"op": "pub", "ch": "project.demo.dmx", "bin": true, "b64": "AQID",
                       "ct": "binary/dmx", "meta": {"universe": 1}}));
    let message = client.next_json();
    let ts = message["ts"].clone();
    assert!(ts.is_u64());
    assert_eq!(
        message,
        json!({"type": "message", "op": "pub", "ch": "project.demo.dmx", "bin": true,
               "b64": "AQID", "ct": "binary/dmx", "bytes": 3, "ts": ts, "from": client.conn_id,
               "meta": {"universe": 1}})
    );

    client.send(json!({"op": "pub", "ch": "project.demo.dmx", "bin": true, "b64": "AAEC/w==",
                       "meta": "not an object"}));
    let message = client.next_json();
    assert_eq!(message["ct"], "application/octet-stream");
    assert_eq!(message["bytes"], 4);
    assert!(message.get("meta").is_none(), "{message}");

    let refused = client.ask(json!({"op": "pub", "ch": "project.demo.dmx", "bin": true, "b64": "AQI*"}));
    assert_eq!(
        refused,
        json!({"type": "error", "error": "invalid_payload", "channel": "project.demo.dmx",
               "operation": "pub"})
    );
    client.expect_quiet();
}

#[test]
fn unsubscribe_acks_and_stops_delivery() {
    let gateway = Gateway::start();
    let (mut listener, mut publisher) = (Client::connect(&gateway), Client::connect(&gateway));
    listener.subscribe("project.demo.u");
    let ack = listener.ask(json!({"op": "unsub", "ch": "project.demo.u"}));
    assert_eq!(ack, json!({"type": "unsub_ack", "op": "unsubAck", "ch": "project.demo.u"}));
    publisher.send(json!({"op": "pub", "ch": "project.demo.u", "d": 1}));
    publisher.heartbeat();
    listener.expect_quiet();
    assert_eq!(gateway.stats()["subscriptions"], json!({}));
}

#[test]
fn heartbeat_is_acked_with_server_time() {
    let gateway = Gateway::start();
    let mut client = Client::connect(&gateway);
    let before = now_ms();
    let ack = client.heartbeat();
    let timestamp = ack["timestamp"].as_u64().expect("integer timestamp");
    assert!(timestamp >= before && timestamp <= now_ms());
    assert_eq!(ack, json!({"type": "hb_ack", "op": "hb", "timestamp": timestamp}));
}

#[test]
fn presence_lists_subscribers_for_the_tokens_project() {
    let gateway = Gateway::start();
    let token = gateway.token(KEY);
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    a.subscribe("project.demo.stage/1");
    b.subscribe("project.demo.stage/1");

    let (status, answer) = gateway.get_json("/presence?channel=project.demo.stage%2F1&projectId=demo", Some(&token));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["occupancy"], 2);
    let mut members: Vec<&str> = answer["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    members.sort();
    let mut expected = vec![a.conn_id.as_str(), b.conn_id.as_str()];
    expected.sort();
    assert_eq!(members, expected);

    let (status, answer) = gateway.get_json("/presence?channel=project.demo.none", Some(&token));
    assert_eq!((status, answer), (200, json!({"occupancy": 0, "members": []})));

    let (status, answer) = gateway.get_json("/presence?channel=x&projectId=other", Some(&token));
    assert_eq!((status, answer), (403, json!({"error": "forbidden", "code": "presence_forbidden"})));

    for bearer in [None, Some("garbage")] {
        let (status, answer) = gateway.get_json("/presence?channel=x&projectId=demo", bearer);
        assert_eq!((status, &answer["code"]), (401, &json!("unauthorized")), "{bearer:?}");
    }
}

#[test]
fn admin_drop_closes_every_socket_without_a_close_frame() {
    let gateway = Gateway::start();
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    a.subscribe("project.demo.d");
    assert_eq!(gateway.admin_post("drop", json!({})), json!({"dropped": 2}));
    for client in [&mut a, &mut b] {
        match client.next_frame(FRAME_TIMEOUT) {
            Err(_) => {}
            other => panic!("expected the socket to be cut, got {other:?}"),
        }
    }
    let stats = gateway.stats();
    assert_eq!((&stats["connections"], &stats["subscriptions"]), (&json!(0), &json!({})));
    Client::connect(&gateway).heartbeat();
}

#[test]
fn admin_send_injects_raw_text_and_binary_frames() {
    let gateway = Gateway::start();
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    let injected = r#"{"type":"error","error":"rate_limited","retry_ms":250}"#;
    assert_eq!(gateway.admin_post("send", json!({"text": injected})), json!({"sent": 2}));
    for client in [&mut a, &mut b] {
        assert_eq!(client.next_frame(FRAME_TIMEOUT).unwrap(), Some(Message::text(injected)));
    }

    let only_b = json!({"binary_b64": "AAEC/w==", "conn": b.conn_id});
    assert_eq!(gateway.admin_post("send", only_b), json!({"sent": 1}));
    assert_eq!(b.next_frame(FRAME_TIMEOUT).unwrap(), Some(Message::binary(vec![0, 1, 2, 255])));
    a.expect_quiet();

    let (status, _) = gateway.post_json("/_admin/send", &json!({"binary_b64": "*"}));
    assert_eq!(status, 400);
}

#[test]
fn admin_freeze_silences_everything_but_the_admin_api_until_thaw() {
    let gateway = Gateway::start();
    let mut client = Client::connect(&gateway);
    gateway.admin_post("freeze", json!({}));
    client.send(json!({"op": "hb"}));
    let silent = client.next_frame(Duration::from_millis(500)).expect("socket stays open");
    assert!(silent.is_none(), "a frozen gateway answered {silent:?}");

    let (done_tx, done_rx) = mpsc::channel();
    let url = gateway.url();
    std::thread::spawn(move || {
        let answer = ureq::post(&format!("{url}/auth/token")).send_string(&json!({"apiKey": KEY}).to_string());
        let _ = done_tx.send(answer.map(|response| response.status()).map_err(|error| error.to_string()));
    });
    assert!(done_rx.recv_timeout(QUIET).is_err(), "a frozen gateway answered HTTP");
    assert_eq!(gateway.stats()["connections"], 1, "the admin API answers while frozen");

    gateway.admin_post("thaw", json!({}));
    assert_eq!(client.next_json()["type"], "hb_ack");
    assert_eq!(done_rx.recv_timeout(FRAME_TIMEOUT).unwrap(), Ok(200));
}

#[test]
fn admin_device_limit_refuses_the_extra_connection_then_closes() {
    let gateway = Gateway::start();
    gateway.admin_post("device-limit", json!({"key": KEY, "limit": 1}));
    let _first = Client::connect(&gateway);
    let mut second = open_ws(&gateway, Some(&gateway.token(KEY))).expect("upgrade still happens");
    let Message::Text(text) = second.read().unwrap() else { panic!("expected text") };
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"], "device_limit_reached");
    assert_eq!(error["code"], "device_limit_reached");
    assert_eq!(error["limit"], 1);
    assert!(error["message"].is_string());
    assert!(matches!(second.read(), Ok(Message::Close(_))), "a close frame follows");

    let _other_key = Client::connect_with(&gateway, &gateway.token("ak_other"));
    gateway.admin_post("device-limit", json!({"key": KEY, "limit": null}));
    let _now_allowed = Client::connect(&gateway);
}

#[test]
fn admin_rate_limit_refuses_publishes_over_budget() {
    let gateway = Gateway::start();
    gateway.admin_post("rate-limit", json!({"channel": "project.demo.r", "per_second": 2}));
    let mut client = Client::connect(&gateway);
    client.subscribe("project.demo.r");
    for n in 0..3 {
        client.send(json!({"op": "pub", "ch": "project.demo.r", "d": n}));
    }
    let frames: Vec<Value> = (0..3).map(|_| client.next_json()).collect();
    let delivered: Vec<&Value> = frames.iter().filter(|f| f["type"] == "message").map(|f| &f["d"]).collect();
    assert_eq!(delivered, [&json!(0), &json!(1)]);
    let error = frames.iter().find(|f| f["type"] == "error").expect("one rate_limited error");
    let retry_ms = error["retry_ms"].as_u64().expect("integer retry_ms");
    assert!((1..=1000).contains(&retry_ms), "{retry_ms}");
    assert_eq!(
        error,
        &json!({"type": "error", "error": "rate_limited", "retry_ms": retry_ms, "scope": "channel",
                "channel": "project.demo.r"})
    );
    client.expect_quiet();

    gateway.admin_post("rate-limit", json!({"channel": "project.demo.r", "per_second": null}));
    client.send(json!({"op": "pub", "ch": "project.demo.r", "d": "free"}));
    assert_eq!(client.next_json()["d"], "free");
}

#[test]
fn admin_scopes_restrict_publish_and_subscribe() {
    let gateway = Gateway::start();
    gateway.admin_post("scopes", json!({"key": "ak_listener", "scopes": ["sub"]}));
    gateway.admin_post("scopes", json!({"key": "ak_talker", "scopes": ["pub"]}));
    assert_eq!(jwt_claims(&gateway.token("ak_listener"))["scopes"], json!(["sub"]));

    let mut listener = Client::connect_with(&gateway, &gateway.token("ak_listener"));
    listener.subscribe("project.demo.s");
    let refused = listener.ask(json!({"op": "pub", "ch": "project.demo.s", "d": 1}));
    assert_eq!(refused, json!({"type": "error", "error": "insufficient_scope", "required": "pub"}));

    let mut talker = Client::connect_with(&gateway, &gateway.token("ak_talker"));
    let refused = talker.ask(json!({"op": "sub", "ch": "project.demo.s"}));
    assert_eq!(refused, json!({"type": "error", "error": "insufficient_scope", "required": "sub"}));
    talker.send(json!({"op": "pub", "ch": "project.demo.s", "d": 2}));
    assert_eq!(listener.next_json()["d"], 2);
}

#[test]
fn admin_revoke_refuses_the_key_and_its_tokens() {
    let gateway = Gateway::start();
    let token = gateway.token(KEY);
    gateway.admin_post("revoke", json!({"key": KEY}));
    let (status, answer) = gateway.post_json("/auth/token", &json!({"apiKey": KEY}));
    assert_eq!((status, &answer["code"]), (401, &json!("invalid_api_key")));
    assert_eq!(http_status(open_ws(&gateway, Some(&token)).unwrap_err()), 401);
    gateway.token("ak_another_key");
}

#[test]
fn admin_channel_cap_limits_new_channels_only() {
    let gateway = Gateway::start();
    gateway.admin_post("channel-cap", json!({"limit": 1}));
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    a.subscribe("project.demo.one");
    let refused = a.ask(json!({"op": "sub", "ch": "project.demo.two"}));
    assert_eq!(
        refused,
        json!({"type": "error", "error": "topic_limit_reached", "limit": 1,
               "channel": "project.demo.two", "operation": "sub"})
    );
    assert_eq!(b.subscribe("project.demo.one")["occupancy"], 2, "an existing channel is fine");
    gateway.admin_post("channel-cap", json!({"limit": null}));
    a.subscribe("project.demo.two");
}

#[test]
fn admin_stats_count_the_traffic() {
    let gateway = Gateway::start();
    let (mut a, mut b) = (Client::connect(&gateway), Client::connect(&gateway));
    a.subscribe("project.demo.s");
    b.subscribe("project.demo.s");
    a.send(json!({"op": "pub", "ch": "project.demo.s", "d": 1}));
    a.next_json();
    b.next_json();
    drop(b);
    let deadline = Instant::now() + FRAME_TIMEOUT;
    let stats = loop {
        let stats = gateway.stats();
        if stats["connections"] == 1 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let expected = json!({"connections": 1, "connections_total": 2, "subscriptions": {"project.demo.s": 1},
                          "published": 1, "delivered": 2, "dropped": 0, "auth_requests": 2, "frames_in": 3});
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&stats[field], value, "{field} in {stats}");
    }
}

#[test]
fn malformed_frames_get_bad_request_and_the_connection_survives() {
    let gateway = Gateway::start();
    let mut client = Client::connect(&gateway);
    let cases = [
        Message::text("not json"),
        Message::text(r#"{"op":"dance"}"#),
        Message::text(r#"{"op":"sub","ch":7}"#),
        Message::text(r#"{"op":"pub","ch":"project.demo.x"}"#),
        Message::binary(vec![1, 2, 3]),
    ];
    for frame in cases {
        client.ws.send(frame.clone()).unwrap();
        let answer = client.next_json();
        assert_eq!(answer["type"], "error", "{frame:?}");
        assert_eq!(answer["error"], "bad_request", "{frame:?}");
        assert!(answer["message"].is_string());
    }
    for (op, channel) in [("sub", String::new()), ("pub", "x".repeat(256)), ("unsub", String::new())] {
        let answer = client.ask(json!({"op": op, "ch": channel, "d": 0}));
        assert_eq!(answer["error"], "channel_not_allowed", "{op}");
        assert_eq!((&answer["channel"], &answer["operation"]), (&json!(channel), &json!(op)));
    }
    client.heartbeat();
}

#[test]
fn http_parser_refuses_oversized_and_malformed_requests() {
    let gateway = Gateway::start();
    let connect = || TcpStream::connect(("127.0.0.1", gateway.port())).unwrap();

    let big_body = format!("POST /auth/token HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 64 * 1024 + 1);
    assert!(raw_exchange(&mut connect(), big_body.as_bytes()).starts_with("HTTP/1.1 413 "));
    let big_head = format!("GET /presence HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(17 * 1024));
    assert!(raw_exchange(&mut connect(), big_head.as_bytes()).starts_with("HTTP/1.1 431 "));
    for garbage in [&b"\x00\x01\x02\r\n\r\n"[..], b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nbroken\r\n\r\n"] {
        assert!(raw_exchange(&mut connect(), garbage).starts_with("HTTP/1.1 400 "), "{garbage:?}");
    }
    let (status, answer) = gateway.get_json("/nowhere", None);
    assert_eq!((status, &answer["code"]), (404, &json!("not_found")));
    let (status, _) = gateway.get_json("/ws", None);
    assert_eq!(status, 400, "a plain GET /ws is not an upgrade");
    gateway.token(KEY);
}

#[test]
fn restart_keeps_port_and_secret() {
    let mut gateway = Gateway::start();
    let port = gateway.port();
    let token = gateway.token(KEY);
    gateway.kill();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "killed gateway still listening");
    gateway.restart();
    assert_eq!(gateway.port(), port);
    Client::connect_with(&gateway, &token).heartbeat();
}

#[test]
fn relays_many_small_messages_in_order_without_drops() {
    const COUNT: u64 = 20_000;
    // One burst of 20,000 frames: over the default per-connection budget (5,000/s).
    let gateway = Gateway::start_with(&["--max-frames-per-second", "100000"]);
    let mut publisher = Client::connect(&gateway);
    let mut subscriber = Client::connect(&gateway);
    subscriber.subscribe("project.demo.fast");
    let reader = std::thread::spawn(move || {
        for expected in 0..COUNT {
            let message = subscriber.next_json();
            assert_eq!(message["d"], expected);
        }
    });
    let started = Instant::now();
    for n in 0..COUNT {
        let envelope = json!({"op": "pub", "ch": "project.demo.fast", "d": n}).to_string();
        publisher.ws.write(Message::text(envelope)).unwrap();
    }
    publisher.ws.flush().unwrap();
    reader.join().expect("every message arrives in order");
    let elapsed = started.elapsed();
    eprintln!("relayed {COUNT} messages in {elapsed:?}");
    assert_eq!(gateway.stats()["dropped"], 0);
}
