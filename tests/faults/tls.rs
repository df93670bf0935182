//! 8. TLS verification.

use super::*;

fn tls_config(api_url: String, ws_url: String, ca_file: Option<&Path>) -> Config {
    let mut c = config_at(&api_url, &ws_url);
    c.ca_file = ca_file.map(Path::to_path_buf);
    c
}

/// Connects and returns the first error event; the client must not connect.
fn refused(config: Config) -> DataNetError {
    let client = Client::new(config).unwrap();
    client.connect().unwrap();
    let event = wait_event(&client, "an error", |e| matches!(e, Event::Error(_) | Event::Connected { .. }));
    let Event::Error(error) = event else { panic!("connected despite a bad certificate") };
    let last_error = client.status()["last_error"]["message"].as_str().unwrap_or("").to_string();
    assert_eq!(last_error, error.message, "status last_error is the reported error");
    assert_ne!(client.state(), State::Connected);
    *error
}

#[test]
fn tls_verification() {
    let _suite = shared();
    let gw = Gateway::start();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_cert, ca) = test_ca("DataNet test CA");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let (_, rogue) = test_ca("Somebody else's CA");
    let good = TlsTerminator::start(gw.port(), server_cert(&ca, "localhost"));
    let unknown_issuer = TlsTerminator::start(gw.port(), server_cert(&rogue, "localhost"));
    let wrong_host = TlsTerminator::start(gw.port(), server_cert(&ca, "gateway.example"));
    let https = |t: &TlsTerminator| format!("https://localhost:{}", t.port);
    let wss = |t: &TlsTerminator| format!("wss://localhost:{}", t.port);

    // Accepted with ca_file: token over https, WebSocket over wss, messages flow,
    // also while TLS reads the socket on the pace timer (20 ms: the messages'
    // 1 ms gaps stay inside it on a loaded machine).
    let mut c = tls_config(https(&good), wss(&good), Some(&ca_file));
    c.read_pace = Duration::from_millis(20);
    let client = connected(c);
    subscribed(&client, "project.demo.tls");
    client.publish_json("project.demo.tls", r#"{"over":"wss"}"#).unwrap();
    wait_event(&client, "a message over wss", |e| matches!(e, Event::Message(_)));
    for n in 0..100 {
        client.publish_json("project.demo.tls", &format!(r#"{{"n":{n}}}"#)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in 0..100 {
        let event = wait_event(&client, "the next message over wss", |e| matches!(e, Event::Message(_)));
        let Event::Message(message) = event else { unreachable!() };
        let Body::Json(text) = &message.body else { panic!("not JSON: {:?}", message.body) };
        assert_eq!(text, &format!(r#"{{"n":{n}}}"#), "in order, none lost");
    }
    assert!(client.status()["counters"]["reads_on_timer"].as_u64().unwrap() > 0, "TLS read on the pace timer");
    drop(client);
    let tokens_issued = gw.stats()["auth_requests"].as_u64().unwrap();

    // Refused: at the token request (https) and, with a plain api_url, at the
    // WebSocket (wss). Each error names the certificate problem.
    let cases: [(&str, Config, &[&str]); 5] = [
        (
            "unknown issuer (https)",
            tls_config(https(&unknown_issuer), wss(&unknown_issuer), Some(&ca_file)),
            &["unknownissuer", "unknown issuer"],
        ),
        (
            "unknown issuer (wss)",
            tls_config(gw.url(), wss(&unknown_issuer), Some(&ca_file)),
            &["unknownissuer", "unknown issuer"],
        ),
        (
            "wrong host name (https)",
            tls_config(https(&wrong_host), wss(&wrong_host), Some(&ca_file)),
            &["not valid for name", "notvalidforname"],
        ),
        (
            "wrong host name (wss)",
            tls_config(gw.url(), wss(&wrong_host), Some(&ca_file)),
            &["not valid for name", "notvalidforname"],
        ),
        ("test CA without ca_file", tls_config(https(&good), wss(&good), None), &["unknownissuer", "unknown issuer"]),
    ];
    let mut messages = Vec::new();
    for (name, config, needles) in cases {
        let error = refused(config);
        let text = error.message.to_lowercase();
        assert!(text.contains("certificate"), "{name}: {}", error.message);
        assert!(needles.iter().any(|n| text.contains(n)), "{name}: {}", error.message);
        let reason = error.message.split("invalid peer certificate: ").nth(1).unwrap_or(&error.message);
        messages.push(format!("{name}: {reason}"));
    }
    // The https refusals never reached the gateway: no token was issued.
    let wss_cases_tokens = 2; // the two wss cases fetch a token over plain http first
    assert_eq!(gw.stats()["auth_requests"].as_u64().unwrap(), tokens_issued + wss_cases_tokens);

    // No silent off switch: there is no config key for it, and unknown keys are refused.
    for key in ["insecure", "danger_accept_invalid_certs", "tls_verify", "verify_tls", "skip_verify"] {
        let text = json!({"api_key": KEY, key: true}).to_string();
        let error = Config::from_json(&text).expect_err(key);
        assert!(error.message.contains(&format!("unknown config key \"{key}\"")), "{key}: {}", error.message);
    }
    figure(
        "tls_verification",
        format!(
            "accepted with ca_file (https token + wss messages); refused 5/5 with the reason in last_error: {}; \
             `insecure`-style keys refused by Config::from_json (5/5)",
            messages.join("; ")
        ),
    );
}
