//! Venue and corporate networks (issue 15): an HTTP CONNECT proxy in front of
//! everything, and TLS whose trust anchors come from the operating system.
//!
//! The gateway sits behind a TLS terminator with a private CA. Its name,
//! `gateway.datanet.test`, is known to the test proxy only: the client cannot
//! resolve it, and port 443 on this machine is not the terminator's, so a
//! connection that did not go through the proxy cannot reach it. The address
//! 0.0.0.0 (which Linux connects to this machine) is not loopback, so only
//! `NO_PROXY` can send it direct; the proxy routes it too.
//!
//! Environment variables (proxy settings, `SSL_CERT_FILE`) are only ever set
//! for a child process running `child_process` below, never in this process.

mod common;

use std::ffi::CString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::connect_proxy::{basic, ConnectProxy};
use common::tls::{server_cert_for, test_ca, TlsTerminator};
use common::Gateway;
use datanet::client::{Body, Client, Config, Event, State, TlsRoots};
use datanet::protocol::proxy::{NO_PROXY_VARIABLES, PROXY_VARIABLES};
use serde_json::{json, Value};

const KEY: &str = "ak_proxy";
const WAIT: Duration = Duration::from_secs(10);
const CHANNEL: &str = "project.demo.proxy";
/// Resolvable by the test proxy only.
const GATEWAY_NAME: &str = "gateway.datanet.test";
const USER: &str = "venue-user";
const PASSWORD: &str = "Pr0xy-Pa55word";
const WRONG_PASSWORD: &str = "Wr0ng-Pa55word";
/// The child's configs, as a JSON array.
const CHILD_CONFIGS: &str = "DATANET_PROXY_TEST_CHILD_CONFIGS";

/// A gateway behind a TLS terminator (private CA), and a CONNECT proxy that
/// routes `gateway.datanet.test:443` and `0.0.0.0:<terminator port>` to it.
struct Venue {
    gw: Gateway,
    terminator: TlsTerminator,
    proxy: ConnectProxy,
    ca_file: PathBuf,
    rogue_ca_file: PathBuf,
}

impl Venue {
    fn start(name: &str) -> Venue {
        let gw = Gateway::start();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("proxy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_cert, ca) = test_ca("Venue test CA");
        let (rogue_cert, _) = test_ca("Somebody else's CA");
        let ca_file = dir.join("ca.pem");
        let rogue_ca_file = dir.join("rogue.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(&rogue_ca_file, rogue_cert.pem()).unwrap();
        let terminator = TlsTerminator::start(gw.port(), server_cert_for(&ca, &[GATEWAY_NAME, "0.0.0.0", "localhost"]));
        let proxy = ConnectProxy::start();
        proxy.route(&format!("{GATEWAY_NAME}:443"), terminator.port);
        proxy.route(&format!("0.0.0.0:{}", terminator.port), terminator.port);
        Venue { gw, terminator, proxy, ca_file, rogue_ca_file }
    }

    /// `https://NAME` and `wss://NAME` for `gateway.datanet.test` (only the proxy
    /// reaches it), `0.0.0.0:PORT` or `localhost:PORT`.
    fn urls(&self, host: &str) -> (String, String) {
        let authority =
            if host == GATEWAY_NAME { host.to_string() } else { format!("{host}:{}", self.terminator.port) };
        (format!("https://{authority}"), format!("wss://{authority}"))
    }

    fn config(&self, host: &str, proxy: Option<String>) -> Config {
        let (api_url, ws_url) = self.urls(host);
        let mut c = Config::new(KEY);
        c.api_url = api_url;
        c.ws_url = ws_url;
        c.ca_file = Some(self.ca_file.clone());
        c.tls_roots = TlsRoots::Webpki;
        c.proxy = proxy;
        c.reconnect_base = Duration::from_millis(20);
        c.reconnect_max = Duration::from_millis(200);
        c
    }

    fn proxy_address(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port())
    }
}

fn wait_event(client: &Client, what: &str, wanted: impl FnMut(&Event) -> bool) -> Event {
    common::wait_event(client, what, WAIT, wanted)
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(what, WAIT, done)
}

/// Subscribes, publishes and waits for the message to come back (echo).
fn round_trip(client: &Client, marker: &str) {
    client.subscribe(CHANNEL).unwrap();
    wait_event(client, "sub_ack", |e| matches!(e, Event::SubAck { channel, .. } if channel == CHANNEL));
    client.publish_json(CHANNEL, &json!({ "via": marker }).to_string()).unwrap();
    let Event::Message(message) = wait_event(client, "the message back", |e| matches!(e, Event::Message(_))) else {
        unreachable!()
    };
    let Body::Json(text) = &message.body else { panic!("not JSON: {:?}", message.body) };
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({ "via": marker }));
}

#[test]
fn everything_goes_through_the_tunnel() {
    let venue = Venue::start("tunnel");
    venue.proxy.require_credentials(USER, PASSWORD);
    let config = venue.config(GATEWAY_NAME, Some(venue.proxy.url(Some((USER, PASSWORD)))));
    let client = Client::new(config).unwrap();
    // Decided before any connection: both go through the proxy.
    let address = venue.proxy_address();
    assert_eq!(client.status()["proxy"], json!({"api": address, "ws": address}));

    client.connect().unwrap();
    wait_event(&client, "connected", |e| matches!(e, Event::Connected { .. }));
    round_trip(&client, "tunnel");
    client.request_presence(CHANNEL).unwrap();
    let Event::Presence { result, .. } = wait_event(&client, "presence", |e| matches!(e, Event::Presence { .. }))
    else {
        unreachable!()
    };
    assert_eq!(result.expect("presence through the tunnel").occupancy, 1);
    drop(client);

    let seen = venue.proxy.seen();
    // The token request and the WebSocket at least (presence may reuse the token's connection).
    assert!(seen.tunnels >= 2, "{seen:?}");
    let destination = format!("{GATEWAY_NAME}:443");
    assert!(seen.requested.iter().all(|d| *d == destination), "{seen:?}");
    assert_eq!((seen.unauthorized, seen.refused, seen.not_connect), (0, 0, 0), "{seen:?}");
    let expected = format!("Basic {}", basic(USER, PASSWORD));
    assert!(seen.authorizations.iter().all(|a| *a == expected), "{seen:?}");
    // Every TLS connection the terminator took came out of a tunnel.
    assert_eq!(venue.terminator.accepted(), seen.tunnels);
    assert!(venue.gw.stats()["auth_requests"].as_u64().unwrap() >= 1);
}

/// A client that must fail: its first error, with everything it showed.
fn first_error(config: Config, seen: &mut Vec<String>) -> (Client, datanet::protocol::error::DataNetError) {
    seen.push(format!("{config:?}"));
    let client = Client::new(config).unwrap();
    client.connect().unwrap();
    let event = wait_event(&client, "an error", |e| matches!(e, Event::Error(_) | Event::Connected { .. }));
    let Event::Error(error) = event else { panic!("connected through a refusing proxy") };
    let status = client.status();
    assert_eq!(status["last_error"]["message"], json!(error.message), "last_error is the reported error");
    assert_ne!(client.state(), State::Connected);
    seen.push(status.to_string());
    seen.push(error.to_json().to_string());
    seen.push(format!("{error:?}"));
    (client, *error)
}

#[test]
fn refusals_are_clear_keep_reconnecting_and_never_show_credentials() {
    let venue = Venue::start("refusals");
    let strict = &venue.proxy;
    strict.require_credentials(USER, PASSWORD);
    let forbidding = ConnectProxy::start();
    forbidding.refuse_with(403, "Forbidden");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let gw_direct = (venue.gw.url(), venue.gw.ws_url());

    let wrong = Some((USER, WRONG_PASSWORD));
    let cases: Vec<(&str, String, Option<u64>, Vec<&str>)> = vec![
        ("wrong credentials", strict.url(wrong), None, vec!["HTTP 407", "did not accept the credentials"]),
        ("no credentials", strict.url(None), None, vec!["HTTP 407", "it wants credentials"]),
        ("forbidden", forbidding.url(wrong), None, vec!["HTTP 403 Forbidden", "its rules"]),
        ("refused", format!("http://{USER}:{WRONG_PASSWORD}@127.0.0.1:{closed_port}"), None, vec!["cannot reach"]),
        ("silent", format!("http://{USER}:{WRONG_PASSWORD}@127.0.0.1:{silent_port}"), Some(300), vec!["within 300 ms"]),
    ];
    let mut seen = Vec::new();
    let mut figures = Vec::new();
    for (name, proxy_url, timeout_ms, needles) in cases {
        let proxy_address = proxy_url.rsplit('@').next().unwrap().trim_start_matches("http://").to_string();
        // The token request (ureq, blocking) and the WebSocket (tokio) each open their own tunnel.
        for path in ["token", "websocket"] {
            let mut config = venue.config(GATEWAY_NAME, Some(proxy_url.clone()));
            if path == "websocket" {
                config.api_url = gw_direct.0.clone();
            }
            if let Some(ms) = timeout_ms {
                config.connect_timeout = Duration::from_millis(ms);
            }
            let (client, error) = first_error(config, &mut seen);
            let text = &error.message;
            assert_eq!(error.code, "connection_failed", "{name}/{path}: {text}");
            assert!(text.contains(&proxy_address), "{name}/{path} names the proxy: {text}");
            assert!(needles.iter().all(|n| text.contains(n)), "{name}/{path}: {text}");
            assert_eq!(text.starts_with("token request failed"), path == "token", "{name}/{path}: {text}");
            if let Some(status) = needles[0].strip_prefix("HTTP ").map(|s| s[..3].parse::<u16>().unwrap()) {
                assert_eq!(error.status, Some(status), "{name}/{path}");
            }
            // Reconnection goes on, on the usual schedule.
            wait_until("two more attempts", || client.status()["reconnect_attempts"].as_u64().unwrap() >= 3);
            assert_eq!(client.state(), State::Reconnecting, "{name}/{path}");
            seen.push(client.status().to_string());
            seen.extend(std::iter::from_fn(|| client.next_event()).map(|e| format!("{e:?}")));
            if path == "websocket" {
                figures.push(format!("{name}: {text}"));
            }
        }
    }
    assert_eq!(strict.seen().tunnels + forbidding.seen().tunnels, 0);
    drop(silent);

    // An open tunnel to a server the client does not trust: the certificate is the
    // problem, not the proxy, on both paths.
    for path in ["token", "websocket"] {
        let mut config = venue.config(GATEWAY_NAME, Some(strict.url(Some((USER, PASSWORD)))));
        config.ca_file = None;
        if path == "websocket" {
            config.api_url = gw_direct.0.clone();
        }
        let (_client, error) = first_error(config, &mut seen);
        let text = error.message.to_lowercase();
        assert!(text.contains("certificate") && text.contains("unknownissuer"), "{path}: {text}");
        assert!(!text.contains("cannot reach") && !text.contains("refused the tunnel"), "{path}: {text}");
    }
    assert!(strict.seen().tunnels >= 2);

    // Configurations the C ABI refuses: the error text carries no credential either.
    for proxy in [
        format!("socks5://{USER}:{WRONG_PASSWORD}@proxy.corp:1080"),
        format!("https://{USER}:{WRONG_PASSWORD}@proxy.corp:443"),
        format!("http://{USER}:{WRONG_PASSWORD}@proxy.corp:port"),
    ] {
        let text = CString::new(json!({"api_key": KEY, "proxy": proxy}).to_string()).unwrap();
        let mut handle = 0u64;
        let rc = unsafe { datanet::ffi::dn_client_new(text.as_ptr(), &mut handle) };
        assert_eq!(rc, datanet::ffi::DN_ERR_INVALID_ARGUMENT, "{proxy}");
        let mut buffer = vec![0u8; 1024];
        let mut len = 0usize;
        assert_eq!(unsafe { datanet::ffi::dn_last_error(buffer.as_mut_ptr().cast(), buffer.len(), &mut len) }, 0);
        let error = String::from_utf8_lossy(&buffer[..len]).into_owned();
        assert!(error.contains("proxy"), "{error}");
        seen.push(error);
    }

    let all = seen.join("\n");
    let secrets = [PASSWORD, WRONG_PASSWORD, USER, &basic(USER, PASSWORD), &basic(USER, WRONG_PASSWORD)];
    for secret in secrets {
        assert!(!all.contains(secret), "{secret:?} appears in:\n{all}");
    }
    println!("FIGURE proxy_refusals: {} texts searched, 0 credentials; {}", seen.len(), figures.join("; "));
}

/// Runs `child_process` in a child with `env` (and no other proxy or
/// certificate variable), once per config; returns what each config did.
fn in_child(env: &[(&str, String)], configs: &[Value]) -> Vec<Value> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["child_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    for name in PROXY_VARIABLES.iter().chain(&NO_PROXY_VARIABLES).chain(&["SSL_CERT_FILE", "SSL_CERT_DIR"]) {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v))).env(CHILD_CONFIGS, Value::from(configs.to_vec()).to_string());
    let output = command.stdin(Stdio::null()).output().expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let results: Vec<Value> = stdout
        .lines()
        // libtest may print "test child_process ... " on the same line first.
        .filter_map(|line| line.split_once("CHILD_RESULT ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(results.len(), configs.len(), "one result per config:\n{stdout}");
    results
}

/// The config of `Venue::config` as the JSON the C ABI takes.
fn json_config(venue: &Venue, host: &str, extra: Value) -> Value {
    let (api_url, ws_url) = venue.urls(host);
    let mut config = json!({
        "api_key": KEY, "api_url": api_url, "ws_url": ws_url, "ca_file": venue.ca_file, "tls_roots": "webpki",
        "reconnect_base_ms": 20, "reconnect_max_ms": 200,
    });
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    config
}

fn outcome(result: &Value) -> &str {
    result["outcome"].as_str().unwrap()
}

#[test]
fn environment_variables_and_no_proxy() {
    let venue = Venue::start("environment");
    venue.proxy.require_credentials(USER, PASSWORD);
    let with_credentials = venue.proxy.url(Some((USER, PASSWORD)));
    let address = json!(venue.proxy_address());
    let direct = json!({"api": null, "ws": null});
    let tunnels = || venue.proxy.seen().tunnels;
    let by_name = json_config(&venue, GATEWAY_NAME, json!({}));
    let by_address = json_config(&venue, "0.0.0.0", json!({}));

    // HTTPS_PROXY: both connections tunnelled, credentials from the variable.
    let before = tunnels();
    let results = in_child(&[("HTTPS_PROXY", with_credentials.clone())], std::slice::from_ref(&by_name));
    assert_eq!(outcome(&results[0]), "connected", "{}", results[0]);
    assert_eq!(results[0]["status"]["proxy"], json!({"api": address, "ws": address}));
    assert!(tunnels() >= before + 2);

    // all_proxy (lower case) carries 0.0.0.0 through the proxy like any other host...
    let before = tunnels();
    let results = in_child(&[("all_proxy", with_credentials.clone())], std::slice::from_ref(&by_address));
    assert_eq!(outcome(&results[0]), "connected", "{}", results[0]);
    assert!(tunnels() >= before + 2);

    // ...unless NO_PROXY names it; and config `proxy: ""` or "direct" turns the variables off.
    let before = tunnels();
    let env = [("ALL_PROXY", with_credentials.clone()), ("NO_PROXY", "venue.lan, 0.0.0.0".to_string())];
    let results = in_child(&env, std::slice::from_ref(&by_address));
    assert_eq!(outcome(&results[0]), "connected", "{}", results[0]);
    assert_eq!(results[0]["status"]["proxy"], direct);
    let off = [
        json_config(&venue, "0.0.0.0", json!({"proxy": ""})),
        json_config(&venue, "0.0.0.0", json!({"proxy": "direct"})),
    ];
    let results = in_child(&[("HTTPS_PROXY", with_credentials.clone())], &off);
    for result in &results {
        assert_eq!(outcome(result), "connected", "{result}");
        assert_eq!(result["status"]["proxy"], direct);
    }
    assert_eq!(tunnels(), before, "NO_PROXY and proxy:\"\" went direct");

    // A variable this client cannot use is a clear error where it would be used
    // (and names the variable, not its credentials); a loopback gateway ignores it.
    let socks = format!("socks5://{USER}:{PASSWORD}@127.0.0.1:1080");
    let local = json!({"api_key": KEY, "api_url": venue.gw.url(), "ws_url": venue.gw.ws_url()});
    let results = in_child(&[("ALL_PROXY", socks)], &[by_name, local]);
    assert_eq!(outcome(&results[0]), "invalid", "{}", results[0]);
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.contains("ALL_PROXY") && error.contains("SOCKS"), "{error}");
    assert!(!error.contains(PASSWORD) && !error.contains(USER), "{error}");
    assert_eq!(outcome(&results[1]), "connected", "{}", results[1]);
}

#[test]
fn tls_roots_choose_the_trust_anchors() {
    let venue = Venue::start("roots");
    let ca_file = venue.ca_file.to_str().unwrap().to_string();
    let with_roots = |roots: &str, ca_file: Option<&str>| {
        let mut config = json_config(&venue, "localhost", json!({"tls_roots": roots}));
        match ca_file {
            Some(path) => config["ca_file"] = json!(path),
            None => {
                config.as_object_mut().unwrap().remove("ca_file");
            }
        }
        config
    };
    let refused_for_the_issuer = |result: &Value| {
        assert_eq!(outcome(result), "refused", "{result}");
        let message = result["error"]["message"].as_str().unwrap().to_lowercase();
        let unknown_issuer = message.contains("unknownissuer") || message.contains("unknown issuer");
        assert!(message.contains("certificate") && unknown_issuer, "{message}");
    };

    // This process's own environment: the private CA is in no store, so only ca_file trusts it.
    let configs = [
        with_roots("webpki", None),
        with_roots("both", None),
        with_roots("webpki", Some(&ca_file)),
        with_roots("os", Some(&ca_file)),
        with_roots("both", Some(&ca_file)),
    ];
    let results = in_child(&[], &configs);
    refused_for_the_issuer(&results[0]);
    refused_for_the_issuer(&results[1]);
    for result in &results[2..] {
        assert_eq!(outcome(result), "connected", "ca_file still adds roots: {result}");
    }

    // The CA in the system store the platform verifier reads on Linux (SSL_CERT_FILE).
    let configs = [with_roots("os", None), with_roots("both", None), with_roots("webpki", None)];
    let results = in_child(&[("SSL_CERT_FILE", ca_file.clone())], &configs);
    assert_eq!(outcome(&results[0]), "connected", "os: {}", results[0]);
    assert_eq!(outcome(&results[1]), "connected", "both: {}", results[1]);
    refused_for_the_issuer(&results[2]);

    // Another CA in the store: still refused. An empty store: a clear error.
    let rogue = venue.rogue_ca_file.to_str().unwrap().to_string();
    let results = in_child(&[("SSL_CERT_FILE", rogue)], &[with_roots("os", None)]);
    refused_for_the_issuer(&results[0]);
    let empty = venue.ca_file.with_file_name("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let results = in_child(&[("SSL_CERT_FILE", empty.to_str().unwrap().to_string())], &[with_roots("os", None)]);
    assert_eq!(outcome(&results[0]), "refused", "{}", results[0]);
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("tls_roots \"os\": the system certificate store cannot be used"), "{message}");
}

/// Not a test on its own: the tests above run it in a child process with the
/// environment under test. Each config of `DATANET_PROXY_TEST_CHILD_CONFIGS` is
/// used for one client; one `CHILD_RESULT` line reports what happened.
#[test]
#[ignore = "run by the tests above in a child process with its own environment"]
fn child_process() {
    let Ok(configs) = std::env::var(CHILD_CONFIGS) else {
        eprintln!("{CHILD_CONFIGS} is not set: nothing to do");
        return;
    };
    let configs: Vec<Value> = serde_json::from_str(&configs).unwrap();
    for config in configs {
        let result = match Config::from_json(&config.to_string()).and_then(Client::new) {
            Err(error) => json!({"outcome": "invalid", "error": error.message}),
            Ok(client) => {
                client.connect().unwrap();
                let first = wait_event(&client, "connected or an error", |e| {
                    matches!(e, Event::Connected { .. } | Event::Error(_))
                });
                match first {
                    Event::Error(error) => {
                        json!({"outcome": "refused", "error": error.to_json(), "status": client.status()})
                    }
                    _ => {
                        round_trip(&client, "child");
                        json!({"outcome": "connected", "status": client.status()})
                    }
                }
            }
        };
        println!("CHILD_RESULT {result}");
    }
}
