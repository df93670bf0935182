//! Issue 17: the gateway secure by default on a venue LAN. Each finding of the
//! issue is a test here that failed before the fix: forged tokens, any key off
//! loopback, no project isolation, admin open on the LAN, sessions outliving
//! their token or their key, and unbounded connections.

use super::*;
use common::{refused_start, Launch};
use ring::hmac;

/// The development secret the gateway used to sign with by default; it is in the
/// source, so anyone could forge tokens with it.
const PUBLISHED_SECRET: &str = "datanet-local-gateway-development-secret";

fn forge(secret: &str, claims: Value) -> String {
    use datanet::protocol::base64::encode_url;
    let header = encode_url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", encode_url(claims.to_string().as_bytes()));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), signing_input.as_bytes());
    format!("{signing_input}.{}", encode_url(tag.as_ref()))
}

fn ten_years() -> u64 {
    now_ms() / 1000 + 10 * 365 * 24 * 3600
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn lan(args: &[&str]) -> Launch {
    let mut launch = Launch::args(&["--host", "0.0.0.0"]);
    launch.args.extend(args.iter().map(|arg| arg.to_string()));
    launch.no_admin = true;
    launch
}

#[test]
fn a_token_forged_with_the_published_development_secret_is_refused() {
    let claims = json!({"sub": "anyone", "pid": "demo", "exp": ten_years(), "scopes": ["pub", "sub"]});
    let forged = forge(PUBLISHED_SECRET, claims.clone());
    for launch in [
        Launch { random_secret: true, ..Launch::default() },
        Launch { random_secret: true, no_admin: true, ..Launch::default() },
    ] {
        let gateway = Gateway::launch(launch);
        assert_eq!(http_status(open_ws(&gateway, Some(&forged)).unwrap_err()), 401);
    }
    // Control: the same forging signs valid tokens when it knows the real secret.
    let gateway = Gateway::start();
    Client::connect_with(&gateway, &forge(gateway.secret(), claims)).heartbeat();
}

#[test]
fn off_loopback_the_gateway_refuses_to_start_open() {
    let keys = temp_file("refusal-keys", "ak_listed\n").display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--host", "0.0.0.0"], "--keys-file"),
        (&["--host", "0.0.0.0", "--keys-file", &keys, "--admin"], "--admin-token-file"),
        (&["--host", "0.0.0.0", "--keys-file", &keys, "--fixed-secret-for-tests"], "loopback only"),
        (&["--secret", "hunter2-secret"], "--secret-file"),
        (&["--tls-cert", "c.pem"], "--tls-key"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = refused_start(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2-secret"), "the refusal echoed the secret: {stderr}");
    }
}

#[test]
fn off_loopback_only_listed_keys_get_tokens_with_their_project_scopes_and_devices() {
    let keys = temp_file("lan-keys", "# venue\nak_stage project=show devices=1\nak_phone project=show scopes=sub\n");
    let gateway = Gateway::launch(lan(&["--keys-file", &keys.display().to_string()]));
    let (status, answer) = gateway.post_json("/auth/token", &json!({"apiKey": KEY}));
    assert_eq!((status, &answer["code"]), (401, &json!("invalid_api_key")), "any ak_ key is refused");

    let stage_token = gateway.token("ak_stage");
    assert_eq!(jwt_claims(&stage_token)["pid"], "show");
    let mut stage = Client::connect_with(&gateway, &stage_token);
    stage.subscribe("project.show.cues");
    let refused = stage.ask(json!({"op": "sub", "ch": "project.demo.cues"}));
    assert_eq!((&refused["error"], &refused["operation"]), (&json!("channel_not_allowed"), &json!("sub")));

    let mut second = open_ws(&gateway, Some(&stage_token)).expect("the upgrade happens");
    let Message::Text(text) = second.read().unwrap() else { panic!("expected text") };
    let refusal: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((&refusal["error"], &refusal["limit"]), (&json!("device_limit_reached"), &json!(1)));

    let mut phone = Client::connect_with(&gateway, &gateway.token("ak_phone"));
    let refused = phone.ask(json!({"op": "pub", "ch": "project.show.cues", "d": 1}));
    assert_eq!(refused, json!({"type": "error", "error": "insufficient_scope", "required": "pub"}));
}

#[test]
fn allow_any_key_warns_at_start_and_in_stats() {
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("any-key-{}.log", std::process::id()));
    let gateway = Gateway::launch(Launch { log: Some(log.clone()), ..lan(&["--allow-any-key"]) });
    gateway.token(KEY);
    let (status, stats) = gateway.get_json("/stats", None);
    assert_eq!(status, 200);
    let warnings = stats["warnings"].as_array().expect("warnings in /stats");
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("--allow-any-key")), "{stats}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("warning: --allow-any-key"), "{logged}");
}

#[test]
fn a_token_reaches_only_its_own_project_like_the_cloud() {
    let gateway = Gateway::start();
    let token = gateway.token(KEY);
    let mut client = Client::connect_with(&gateway, &token);
    for op in ["sub", "pub", "unsub"] {
        let refused = client.ask(json!({"op": op, "ch": "project.other-project.private", "d": 1}));
        assert_eq!(refused["error"], "channel_not_allowed", "{op}: {refused}");
        assert_eq!((&refused["channel"], &refused["operation"]), (&json!("project.other-project.private"), &json!(op)));
        assert!(refused["message"].as_str().unwrap().contains("project.demo."), "{refused}");
    }
    let refused = client.ask(json!({"op": "sub", "ch": "project.demo.bad..name"}));
    assert!(refused["message"].as_str().unwrap().contains("empty segment"), "{refused}");
    let (status, _) = gateway.get_json("/presence?channel=project.other-project.private", Some(&token));
    assert_eq!(status, 403);
    client.subscribe("project.demo.mine");
}

#[test]
fn admin_off_loopback_needs_its_bearer_token() {
    let keys = temp_file("admin-keys", "ak_listed\n").display().to_string();
    let admin_token = "admin-token-for-the-test";
    let token_file = temp_file("admin-token", &format!("{admin_token}\n")).display().to_string();
    let mut launch = lan(&["--keys-file", &keys, "--admin", "--admin-token-file", &token_file]);
    launch.admin_token = Some(admin_token.to_string());
    let gateway = Gateway::launch(launch);
    let mut client = Client::connect_with(&gateway, &gateway.token("ak_listed"));
    for bearer in [None, Some("wrong"), Some("admin-token-for-the-tes")] {
        let (status, answer) = gateway.get_json("/_admin/stats", bearer);
        assert_eq!((status, &answer["code"]), (401, &json!("unauthorized")), "{bearer:?}");
        assert!(!answer.to_string().contains(admin_token));
    }
    let (status, _) = gateway.post_json("/_admin/drop", &json!({}));
    assert_eq!(status, 401);
    client.heartbeat();
    assert_eq!(gateway.admin_post("drop", json!({})), json!({"dropped": 1}), "the token opens it");
}

#[test]
fn an_expired_token_is_told_and_its_session_closed_after_the_grace() {
    let gateway = Gateway::start_with(&["--token-expiry-grace", "0.5"]);
    gateway.admin_post("token-ttl", json!({"seconds": 2}));
    let mut client = Client::connect(&gateway);
    let told = client.next_frame(Duration::from_secs(10)).unwrap().expect("a token_expired notice");
    let Message::Text(text) = told else { panic!("expected text, got {told:?}") };
    let notice: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((&notice["error"], &notice["grace_ms"]), (&json!("token_expired"), &json!(500)), "{notice}");
    let closed = loop {
        match client.next_frame(Duration::from_secs(5)) {
            Ok(Some(Message::Close(frame))) => break frame,
            Ok(Some(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|frame| frame.reason.to_string()), Some("token_expired".to_string()));
}

#[test]
fn revoking_a_key_closes_its_live_sessions_only() {
    let gateway = Gateway::start();
    let mut revoked = Client::connect(&gateway);
    let mut other = Client::connect_with(&gateway, &gateway.token("ak_other"));
    assert_eq!(gateway.admin_post("revoke", json!({"key": KEY}))["closed"], 1);
    assert_eq!(revoked.next_json()["error"], "key_revoked");
    assert!(matches!(revoked.next_frame(FRAME_TIMEOUT), Ok(Some(Message::Close(_))) | Err(_)));
    other.heartbeat();
}

#[test]
fn each_bound_is_answered_with_its_error_while_a_well_behaved_client_keeps_its_delivery() {
    let gateway = Gateway::start_with(&[
        "--max-connections",
        "8",
        "--max-connections-per-key",
        "2",
        "--max-subscriptions",
        "5",
        "--max-message-bytes",
        "4096",
        "--max-frames-per-second",
        "200",
    ]);
    let watcher = Watcher::start(&gateway);
    let refusal = |ws: &mut WebSocket<TcpStream>| -> Value {
        let Message::Text(text) = ws.read().unwrap() else { panic!("expected text") };
        serde_json::from_str(&text).unwrap()
    };

    // Per key, then for the whole gateway (the watcher holds one connection).
    let greedy = gateway.token("ak_greedy");
    let _kept: Vec<Client> = (0..2).map(|_| Client::connect_with(&gateway, &greedy)).collect();
    let answer = refusal(&mut open_ws(&gateway, Some(&greedy)).unwrap());
    assert_eq!((&answer["error"], &answer["limit"]), (&json!("device_limit_reached"), &json!(2)));
    let _more: Vec<Client> =
        (0..5).map(|n| Client::connect_with(&gateway, &gateway.token(&format!("ak_more_{n}")))).collect();
    let answer = refusal(&mut open_ws(&gateway, Some(&gateway.token("ak_one_too_many"))).unwrap());
    assert_eq!((&answer["error"], &answer["limit"]), (&json!("device_limit_reached"), &json!(8)));
    assert_eq!(gateway.stats()["refused_connections"], 2);
    drop(_more);

    // Subscriptions per connection.
    let mut client = Client::connect_with(&gateway, &gateway.token("ak_subscriber"));
    for n in 0..5 {
        client.subscribe(&format!("project.demo.s{n}"));
    }
    let refused = client.ask(json!({"op": "sub", "ch": "project.demo.s5"}));
    assert_eq!((&refused["error"], &refused["limit"]), (&json!("topic_limit_reached"), &json!(5)));

    // A publish whose relayed form is over the limit: refused, connection kept.
    let refused = client.ask(json!({"op": "pub", "ch": "project.demo.s0", "d": "x".repeat(4040)}));
    assert_eq!((&refused["error"], &refused["channel"]), (&json!("message_too_large"), &json!("project.demo.s0")));
    client.heartbeat();

    // A burst over the per-connection rate: told with retry_ms, then served again.
    for _ in 0..400 {
        client.ws.write(Message::text(r#"{"op":"hb"}"#)).unwrap();
    }
    client.ws.flush().unwrap();
    let limited = loop {
        let frame = client.next_json();
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!((&limited["error"], &limited["scope"]), (&json!("rate_limited"), &json!("connection")), "{limited}");
    let retry_ms = limited["retry_ms"].as_u64().expect("retry_ms");
    assert!(retry_ms >= 1, "{limited}");

    // A frame over the limit: told, then closed with 1009.
    let mut oversized = Client::connect_with(&gateway, &gateway.token("ak_big"));
    oversized.send(json!({"op": "pub", "ch": "project.demo.s0", "d": "x".repeat(5000)}));
    assert_eq!(oversized.next_json()["error"], "message_too_large");
    match oversized.next_frame(FRAME_TIMEOUT) {
        Ok(Some(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }

    let round_trips = watcher.finish();
    eprintln!("well-behaved client during the bounds: {} round trips, p99 {:?}", round_trips.len(), p99(&round_trips));
}

#[test]
fn secrets_keys_and_tokens_never_appear_in_output_stats_or_errors() {
    let listed_key = "ak_listed_key_7f3e9a";
    let keys = temp_file("secret-keys", &format!("{listed_key} project=demo\n"));
    let admin_token = "admin-token-0c1d2e3f";
    let token_file = temp_file("secret-admin-token", admin_token);
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("secrets-{}.log", std::process::id()));
    let mut launch = Launch::args(&[
        "--keys-file",
        &keys.display().to_string(),
        "--admin-token-file",
        &token_file.display().to_string(),
    ]);
    launch.admin_token = Some(admin_token.to_string());
    launch.log = Some(log.clone());
    let gateway = Gateway::launch(launch);

    let mut seen = Vec::new();
    let token = gateway.token(listed_key);
    let mut client = Client::connect_with(&gateway, &token);
    seen.push(client.connected.to_string());
    for envelope in
        [json!({"op": "sub", "ch": "project.other.x"}), json!({"op": "dance"}), json!({"op": "pub", "ch": "x"})]
    {
        seen.push(client.ask(envelope).to_string());
    }
    for body in [json!({"apiKey": "ak_unlisted"}), json!({"apiKey": listed_key, "deviceId": 5})] {
        seen.push(gateway.post_json("/auth/token", &body).1.to_string());
    }
    seen.push(gateway.get_json("/_admin/stats", Some("wrong")).1.to_string());
    seen.push(gateway.get_json("/presence?channel=project.demo.x", Some("garbage")).1.to_string());
    seen.push(gateway.get_json("/stats", None).1.to_string());
    seen.push(gateway.stats().to_string());
    gateway.admin_post("revoke", json!({"key": listed_key}));
    let _ = client.next_frame(FRAME_TIMEOUT);
    drop(client);
    std::thread::sleep(Duration::from_millis(200));
    seen.push(std::fs::read_to_string(&log).unwrap());
    let everything = seen.join("\n");
    assert!(everything.contains("connect c-"), "the log was captured: {everything}");
    for secret in [gateway.secret(), listed_key, admin_token, token.as_str()] {
        assert!(!everything.contains(secret), "{secret:?} leaked into:\n{everything}");
    }
}

#[test]
fn tls_serves_https_and_wss_with_the_given_certificate() {
    use datanet::client::{Client as LibraryClient, Config, Event};
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let cert = temp_file("tls-cert.pem", &leaf_cert.pem());
    let key = temp_file("tls-key.pem", &leaf_key.serialize_pem());
    let ca_file = temp_file("tls-ca.pem", &ca_cert.pem());
    let launch = Launch {
        no_admin: true,
        ..Launch::args(&["--tls-cert", &cert.display().to_string(), "--tls-key", &key.display().to_string()])
    };
    let gateway = Gateway::launch(launch);
    assert!(gateway.is_tls());

    let mut config = Config::new(KEY);
    config.api_url = format!("https://localhost:{}", gateway.port());
    config.ws_url = format!("wss://localhost:{}", gateway.port());
    config.ca_file = Some(ca_file);
    let client = LibraryClient::new(config).unwrap();
    client.connect().unwrap();
    client.subscribe("project.demo.tls").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = false;
    loop {
        assert!(Instant::now() < deadline, "no message over wss; status {}", client.status());
        match client.next_event() {
            Some(Event::SubAck { .. }) if !published => {
                client.publish_json("project.demo.tls", "42").unwrap();
                published = true;
            }
            Some(Event::Message(_)) => break,
            Some(Event::Error(error)) => panic!("{error:?}"),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}
