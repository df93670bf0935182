//! 9. Secrets never appear in status, events, ABI errors or logs.

use super::*;

/// A gateway whose log (stderr) goes to a file, to read what it wrote. Kept here
/// rather than in tests/common so the shared harness stays as it is.
struct LoggedGateway {
    child: std::process::Child,
    port: u16,
    agent: ureq::Agent,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl LoggedGateway {
    fn start(log: &Path) -> LoggedGateway {
        use std::io::BufRead;
        let secret = format!("faults-secret-{}-{:?}", std::process::id(), Instant::now());
        let mut child = Command::new(env!("CARGO_BIN_EXE_datanet-gateway"))
            .args(["--port", "0", "--admin"])
            .env("DATANET_GATEWAY_SECRET", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start the gateway");
        // The first stdout line names the port (a contract of the gateway); read it
        // on a helper thread so a silent child cannot hang the test.
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send((line, reader));
        });
        let (line, stdout) = receiver.recv_timeout(WAIT).expect("the gateway printed its address");
        let port = line.trim_end().rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let gateway =
            LoggedGateway { child, port, agent: ureq::AgentBuilder::new().timeout(WAIT).build(), _stdout: stdout };
        wait_until("the gateway to answer", WAIT, || {
            gateway.agent.get(&format!("{}/_admin/stats", gateway.url())).call().is_ok()
        });
        gateway
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn admin(&self, route: &str, body: Value) -> Value {
        let response = self.agent.post(&format!("{}/_admin/{route}", self.url())).send_string(&body.to_string());
        serde_json::from_str(&response.expect("admin call").into_string().unwrap()).unwrap()
    }
}

impl Drop for LoggedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a user or a log could see of a client: its status and events.
fn observe(client: &Client, seen: &mut Vec<String>) {
    seen.push(client.status().to_string());
    for event in drain(client) {
        if let Event::Error(error) = &event {
            seen.push(error.to_json().to_string());
        }
        seen.push(format!("{event:?}"));
    }
}

#[test]
fn secrets_never_leak() {
    let _suite = shared();
    let secret_key = "ak_live_S3cr3tK3y_9f8e7d6c5b4a";
    let refused_key = "sk_wrong_prefix_S3cr3t_1a2b3c";
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-{}.log", std::process::id()));
    let gw = LoggedGateway::start(&log);
    let with_key = |key: &str| {
        let mut c = config_at(&gw.url(), &gw.ws_url());
        c.api_key = key.to_string();
        c
    };
    let mut seen: Vec<String> = Vec::new();
    let step = |what: &str, seen: &mut Vec<String>| seen.push(format!("-- {what}"));

    // Connect, subscribe, publish, presence: the token travels in a header and a
    // query's Authorization, the key in the token request.
    step("connect", &mut seen);
    let client = connected(with_key(secret_key));
    subscribed(&client, "project.demo.secret");
    client.publish_json("project.demo.secret", r#"{"v":1}"#).unwrap();
    wait_event(&client, "the echo", |e| matches!(e, Event::Message(_)));
    client.request_presence("project.demo.secret").unwrap();
    wait_event(&client, "presence", |e| matches!(e, Event::Presence { .. }));
    observe(&client, &mut seen);

    // A gateway that echoes the key back in an error.
    step("echoed key", &mut seen);
    let echoed = json!({
        "type": "error", "error": "rate_limited", "message": format!("key {secret_key} is over budget"),
        "channel": secret_key, "scope": secret_key, "operation": secret_key, "required": secret_key,
    });
    gw.admin("send", json!({"text": echoed.to_string()}));
    let Event::Error(error) = wait_event(&client, "the echoed error", |e| matches!(e, Event::Error(_))) else {
        unreachable!()
    };
    assert!(error.message.contains("[redacted]"), "{error:?}");
    seen.push(error.to_json().to_string());
    observe(&client, &mut seen);

    // Device limit: a second device with the same key is refused for good.
    step("device limit", &mut seen);
    gw.admin("device-limit", json!({"key": secret_key, "limit": 1}));
    let second = Client::new(with_key(secret_key)).unwrap();
    second.connect().unwrap();
    wait_until("the second device to fail", WAIT, || second.state() == State::Failed);
    let status = second.status().to_string();
    assert!(status.contains("device_limit_reached"), "{status}");
    observe(&second, &mut seen);
    gw.admin("device-limit", json!({"key": secret_key, "limit": null}));

    // Revoked key: the next connection is refused at the upgrade and at the token.
    step("revoked", &mut seen);
    gw.admin("revoke", json!({"key": secret_key}));
    gw.admin("drop", json!({}));
    wait_event(&client, "authentication_failed", |e| {
        seen.push(format!("{e:?}"));
        let refused_token = |error: &DataNetError| error.message.contains("token request");
        matches!(e, Event::Error(error) if error.code == "authentication_failed" && refused_token(error))
    });
    observe(&client, &mut seen);
    client.request_presence("project.demo.secret").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    observe(&client, &mut seen);

    // A key the gateway refuses outright (wrong prefix).
    step("refused key", &mut seen);
    let wrong = Client::new(with_key(refused_key)).unwrap();
    wrong.connect().unwrap();
    let Event::Error(error) = wait_event(&wrong, "refusal", |e| matches!(e, Event::Error(_))) else { unreachable!() };
    assert_eq!((error.code.as_str(), error.status), ("authentication_failed", Some(401)));
    observe(&wrong, &mut seen);

    // The C ABI's error text, for configs that carry the key.
    step("ABI errors", &mut seen);
    for config in [
        json!({"api_key": secret_key, "ws_url": "http://wrong.scheme"}),
        json!({"api_key": secret_key, "heartbeat_interval_ms": "often"}),
        json!({"api_key": secret_key, "ca_file": "/nonexistent/ca.pem"}),
        json!({"api_key": secret_key, "typo_key": true}),
    ] {
        let text = CString::new(config.to_string()).unwrap();
        let mut handle = 0u64;
        let rc = unsafe { datanet::ffi::dn_client_new(text.as_ptr(), &mut handle) };
        assert_eq!(rc, datanet::ffi::DN_ERR_INVALID_ARGUMENT, "{config}");
        let mut buffer = vec![0u8; 1024];
        let mut len = 0usize;
        assert_eq!(unsafe { datanet::ffi::dn_last_error(buffer.as_mut_ptr().cast(), buffer.len(), &mut len) }, 0);
        seen.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
    }
    seen.push(format!("{:?}", with_key(secret_key)));
    drop((client, second, wrong));

    // The gateway's log: it did log this session, and nothing secret.
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("connect c-") && log_text.contains("revoked"), "the log was captured:\n{log_text}");
    // The search for "eyJ" is meaningful: the gateway's tokens do start with it.
    let probe = gw.agent.post(&format!("{}/auth/token", gw.url())).send_string(r#"{"apiKey":"ak_probe"}"#);
    let token = probe.unwrap().into_string().unwrap();
    assert!(token.contains("\"eyJ"), "{token}");

    let places = [("status, events and ABI errors", seen.join("\n")), ("gateway log", log_text)];
    for (place, text) in &places {
        for needle in [secret_key, refused_key, "eyJ", "S3cr3t"] {
            assert!(!text.contains(needle), "{needle:?} appears in the {place}:\n{text}");
        }
    }
    figure(
        "secrets_never_leak",
        format!(
            "known keys searched (and \"eyJ\") in {} status/event/ABI-error texts and {} gateway log lines across \
             connect, presence, an echoing gateway, device limit, revocation, a refused key and bad configs: 0 hits",
            seen.len(),
            places[1].1.lines().count()
        ),
    );
}
