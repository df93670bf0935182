//! Integration-test harness: a real `datanet-gateway` process per test, on a free
//! port, with the admin API on. Each test file uses a subset of these helpers.
//!
//! Set `DATANET_GATEWAY_LOG=1` to see the gateway's log lines on stderr.
#![allow(dead_code)]

pub mod connect_proxy;
pub mod native;
pub mod proxy;
pub mod show;
pub mod tls;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest wait for the first stdout line of a starting gateway.
/// Waits until `done()` holds; fails the test after `limit`, naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Takes the client's events until one matches (the others are dropped); fails the
/// test after `limit`, naming `what`.
pub fn wait_event(
    client: &datanet::client::Client,
    what: &str,
    limit: Duration,
    mut wanted: impl FnMut(&datanet::client::Event) -> bool,
) -> datanet::client::Event {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match client.next_event() {
            Some(event) if wanted(&event) => return event,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    panic!("no {what} within {limit:?}; status {}", client.status());
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `restart` keeps retrying while the old port is not yet free.
const REBIND_WINDOW: Duration = Duration::from_secs(2);
const RETRY_PAUSE: Duration = Duration::from_millis(25);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Gateway {
    child: Option<Child>,
    /// Kept open so the gateway never writes into a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
    port: u16,
    /// It serves https:// and wss:// (`--tls-cert`).
    tls: bool,
    secret: String,
    /// How it was started, kept for `restart`.
    launch: Launch,
    agent: ureq::Agent,
}

/// How a test gateway is started, beyond `--port`.
#[derive(Clone, Default)]
pub struct Launch {
    pub args: Vec<String>,
    /// Leave `DATANET_GATEWAY_SECRET` unset: the gateway draws a random secret.
    pub random_secret: bool,
    /// Leave `--admin` out.
    pub no_admin: bool,
    /// Sent as `Authorization: Bearer` with admin requests.
    pub admin_token: Option<String>,
    /// The gateway's stderr goes to this file (else to the test's stderr with
    /// `DATANET_GATEWAY_LOG=1`, or nowhere).
    pub log: Option<std::path::PathBuf>,
}

impl Launch {
    pub fn args(args: &[&str]) -> Launch {
        Launch { args: args.iter().map(|arg| arg.to_string()).collect(), ..Launch::default() }
    }
}

impl Gateway {
    /// Starts a gateway with `--port 0 --admin` and a secret of its own, and waits
    /// until it answers HTTP.
    pub fn start() -> Gateway {
        Gateway::start_with(&[])
    }

    /// `start` with more flags (limits, timeouts); the secret still comes from the
    /// environment, never from argv.
    pub fn start_with(extra_args: &[&str]) -> Gateway {
        Gateway::launch(Launch::args(extra_args))
    }

    pub fn launch(launch: Launch) -> Gateway {
        let secret = unique_secret();
        let started = spawn(0, &secret, &launch).unwrap_or_else(|why| panic!("gateway did not start: {why}"));
        let gateway = Gateway {
            port: started.port,
            tls: started.tls,
            child: Some(started.child),
            _stdout: Some(started.stdout),
            secret,
            launch,
            agent: ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build(),
        };
        gateway.wait_until_answering();
        gateway
    }

    /// The secret the gateway signs with (unless launched with `random_secret`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT`: the WebSocket base URL (clients append `/ws`).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Stops the process; its port is free once this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self._stdout = None;
    }

    /// Starts the gateway again on the same port with the same secret, so tokens
    /// issued before still verify. Admin settings and counters start afresh.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + REBIND_WINDOW;
        let started = loop {
            match spawn(self.port, &self.secret, &self.launch) {
                Ok(started) => break started,
                Err(why) if Instant::now() >= deadline => {
                    panic!("gateway did not restart on port {}: {why}", self.port)
                }
                Err(_) => std::thread::sleep(RETRY_PAUSE),
            }
        };
        self.child = Some(started.child);
        self._stdout = Some(started.stdout);
        self.wait_until_answering();
    }

    /// `POST /_admin/<path>`; `path` may be given as `drop`, `/drop` or `/_admin/drop`.
    /// Panics unless the gateway answers 200.
    pub fn admin_post(&self, path: &str, body: Value) -> Value {
        let mut request =
            self.agent.post(&format!("{}{}", self.url(), admin_path(path))).set("Content-Type", "application/json");
        if let Some(token) = &self.launch.admin_token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let (status, answer) = read_answer(request.send_string(&body.to_string()));
        assert_eq!(status, 200, "POST {} answered {answer}", admin_path(path));
        answer
    }

    /// `GET /_admin/<path>`; panics unless the gateway answers 200.
    pub fn admin_get(&self, path: &str) -> Value {
        let (status, answer) = self.get_json(&admin_path(path), self.launch.admin_token.as_deref());
        assert_eq!(status, 200, "GET {} answered {answer}", admin_path(path));
        answer
    }

    pub fn stats(&self) -> Value {
        self.admin_get("stats")
    }

    /// A fresh JWT for `api_key`; panics unless the gateway issues one.
    pub fn token(&self, api_key: &str) -> String {
        let (status, answer) = self.post_json("/auth/token", &json!({"apiKey": api_key}));
        assert_eq!(status, 200, "token for a test key refused: {answer}");
        answer["token"].as_str().expect("token is a string").to_string()
    }

    /// Any POST with a JSON body: (status, JSON answer). Panics only on transport errors.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self.agent.post(&format!("{}{path}", self.url())).set("Content-Type", "application/json");
        read_answer(request.send_string(&body.to_string()))
    }

    /// Any GET, with an optional bearer token: (status, JSON answer).
    pub fn get_json(&self, path_and_query: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.get(&format!("{}{path_and_query}", self.url()));
        if let Some(token) = bearer {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        read_answer(request.call())
    }

    fn wait_until_answering(&self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        if self.tls {
            // The listener is bound before the first line is printed.
            assert!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(), "TLS gateway not listening");
            return;
        }
        let probe = ureq::AgentBuilder::new().timeout(Duration::from_millis(500)).build();
        let stats_url = format!("{}/stats", self.url());
        while matches!(probe.get(&stats_url).call(), Err(ureq::Error::Transport(_))) {
            assert!(Instant::now() < deadline, "gateway on port {} never answered", self.port);
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Started {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
    tls: bool,
}

fn spawn(port: u16, secret: &str, launch: &Launch) -> Result<Started, String> {
    let stderr = match &launch.log {
        Some(path) => Stdio::from(std::fs::File::create(path).map_err(|error| format!("log file: {error}"))?),
        None if std::env::var_os("DATANET_GATEWAY_LOG").is_some() => Stdio::inherit(),
        None => Stdio::null(),
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_datanet-gateway"));
    command.args(["--port", &port.to_string()]).args(&launch.args).env_remove("DATANET_GATEWAY_SECRET");
    if !launch.no_admin {
        command.arg("--admin");
    }
    if !launch.random_secret {
        command.env("DATANET_GATEWAY_SECRET", secret);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|error| format!("spawn failed: {error}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    match read_first_line(stdout) {
        Ok((line, stdout)) => match parse_port(&line) {
            Some(port) => Ok(Started { child, stdout, port, tls: line.contains("https://") }),
            None => {
                stop(child);
                Err(format!("unexpected first line: {line:?}"))
            }
        },
        Err(why) => {
            stop(child);
            Err(why)
        }
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the first stdout line on a helper thread so a silent child cannot hang the test.
fn read_first_line(stdout: ChildStdout) -> Result<(String, BufReader<ChildStdout>), String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let result = match reader.read_line(&mut line) {
            Ok(0) => Err("exited before printing its address".to_string()),
            Ok(_) => Ok((line, reader)),
            Err(error) => Err(format!("reading stdout failed: {error}")),
        };
        let _ = sender.send(result);
    });
    receiver.recv_timeout(STARTUP_TIMEOUT).unwrap_or_else(|_| Err("printed nothing in time".to_string()))
}

/// Runs the gateway with `args` (no secret in the environment) expecting it to refuse
/// to start: returns its exit code and stderr. Panics if it is still running after
/// the start-up timeout.
pub fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datanet-gateway"))
        .args(args)
        .env_remove("DATANET_GATEWAY_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the gateway");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the gateway") {
            break status;
        }
        if Instant::now() >= deadline {
            stop(child);
            panic!("the gateway started with {args:?}; it should have refused");
        }
        std::thread::sleep(RETRY_PAUSE);
    };
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr pipe"), &mut stderr);
    (status.code(), stderr)
}

/// The port in `datanet-gateway listening on http://HOST:PORT` (or https://).
fn parse_port(line: &str) -> Option<u16> {
    let line = line.trim_end().strip_prefix("datanet-gateway listening on ")?;
    let address = line.strip_prefix("http://").or_else(|| line.strip_prefix("https://"))?;
    address.rsplit_once(':')?.1.parse().ok()
}

fn admin_path(path: &str) -> String {
    let route = path.trim_start_matches('/');
    let route = route.strip_prefix("_admin/").unwrap_or(route);
    format!("/_admin/{route}")
}

fn read_answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("HTTP transport error: {error}"),
    };
    let status = response.status();
    let body = response.into_string().expect("readable body");
    let value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("status {status} with a non-JSON body: {body:?}"));
    (status, value)
}

/// Distinct per gateway so a test cannot accidentally pass with another one's token.
fn unique_secret() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test-secret-{}-{nanos}-{n}", std::process::id())
}
