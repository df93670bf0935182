//! A `datanet-gateway` process with show flags (`--record`, `--replay`,
//! `--upstream-*`): its stdout is read line by line on a thread of its own
//! (progress and upstream lines), its stderr goes to a file the test can read.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ShowGateway {
    child: Child,
    pub port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// How a gateway that refused to start ended.
pub struct Refused {
    pub status: ExitStatus,
    pub stderr: String,
}

fn command(args: &[&str], env: &[(&str, &str)], stderr_path: &Path) -> Command {
    let stderr = std::fs::File::create(stderr_path).expect("stderr file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_datanet-gateway"));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
    command.env_remove("DATANET_UPSTREAM_API_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

impl ShowGateway {
    /// Starts `datanet-gateway --port PORT --admin ARGS` and waits for its address line.
    pub fn start(port: u16, args: &[&str], env: &[(&str, &str)], stderr_path: &Path) -> ShowGateway {
        Self::try_start(port, args, env, stderr_path).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start(port: u16, args: &[&str], env: &[(&str, &str)], stderr_path: &Path) -> Result<ShowGateway, String> {
        let port_text = port.to_string();
        let mut all = vec!["--port", port_text.as_str(), "--admin"];
        all.extend_from_slice(args);
        let mut child = command(&all, env, stderr_path).spawn().expect("spawn the gateway");
        let stdout = child.stdout.take().expect("stdout pipe");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = mpsc::channel();
        let collected = lines.clone();
        std::thread::spawn(move || {
            let mut first = Some(first_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(first) = first.take() {
                    let _ = first.send(line.clone());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let first = match first_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
                return Err(format!("gateway printed no address line; stderr: {stderr}"));
            }
        };
        let address = first.strip_prefix("datanet-gateway listening on http://").expect("address line");
        let port = address.rsplit_once(':').unwrap().1.parse().unwrap();
        Ok(ShowGateway {
            child,
            port,
            stdout: lines,
            stderr_path: stderr_path.to_path_buf(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        })
    }

    /// Kills the process and starts it again on the same port with the same flags
    /// (retrying while the port is not yet free). Stdout lines start afresh.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let restarted = loop {
            match Self::try_start(self.port, &args, &env, &self.stderr_path) {
                Ok(restarted) => break restarted,
                Err(why) if Instant::now() > deadline => panic!("no restart on port {}: {why}", self.port),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        *self = restarted;
    }

    /// Runs the gateway expecting it to refuse to start; returns how it ended.
    pub fn refused(args: &[&str], env: &[(&str, &str)], stderr_path: &Path) -> Refused {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        let mut child = command(&all, env, stderr_path).spawn().expect("spawn the gateway");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the gateway started instead of refusing: {args:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Refused { status, stderr: std::fs::read_to_string(stderr_path).unwrap_or_default() }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until a stdout line contains `needle`.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.stdout_lines().into_iter().find(|line| line.contains(needle)) {
                return line;
            }
            assert!(Instant::now() < deadline, "no stdout line with {needle:?}: {:?}", self.stdout_lines());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stats(&self) -> Value {
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        let body = agent.get(&format!("{}/_admin/stats", self.url())).call().expect("stats").into_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// `GET /stats`, the view open to anyone who reaches the gateway.
    pub fn public_stats(&self) -> Value {
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        let body = agent.get(&format!("{}/stats", self.url())).call().expect("stats").into_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ShowGateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory under the system temp dir for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("datanet-show-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bare WebSocket client (tungstenite, blocking) for tests that need the
/// frames exactly as the gateway sent them, and when each arrived.
pub struct RawClient {
    socket: tokio_tungstenite::tungstenite::WebSocket<std::net::TcpStream>,
    pub conn_id: String,
}

impl RawClient {
    pub fn connect(port: u16, api_key: &str) -> RawClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        let answer = agent
            .post(&format!("http://127.0.0.1:{port}/auth/token"))
            .set("Content-Type", "application/json")
            .send_string(&serde_json::json!({"apiKey": api_key}).to_string())
            .expect("token")
            .into_string()
            .unwrap();
        let token = serde_json::from_str::<Value>(&answer).unwrap()["token"].as_str().unwrap().to_string();
        let mut request = format!("ws://127.0.0.1:{port}/ws").into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", format!("bearer, {token}").parse().unwrap());
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        let (socket, _) = tokio_tungstenite::tungstenite::client::client(request, stream).expect("handshake");
        let mut client = RawClient { socket, conn_id: String::new() };
        let connected = client.next_text(Duration::from_secs(10)).expect("connected");
        let connected: Value = serde_json::from_str(&connected).unwrap();
        client.conn_id = connected["connId"].as_str().expect("connected envelope").to_string();
        client
    }

    pub fn send(&mut self, text: &str) {
        self.socket.send(tokio_tungstenite::tungstenite::Message::text(text)).expect("send");
    }

    /// Subscribes and waits for the ack.
    pub fn subscribe(&mut self, channel: &str) {
        self.subscribe_all(&[channel]);
    }

    /// Sends every subscription at once, then waits for all the acks.
    pub fn subscribe_all(&mut self, channels: &[&str]) {
        for channel in channels {
            self.send(&serde_json::json!({"op": "sub", "ch": channel}).to_string());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut acks = 0;
        while acks < channels.len() {
            let Some(text) = self.next_text(deadline.saturating_duration_since(Instant::now())) else {
                panic!("{acks} sub_acks of {}", channels.len());
            };
            acks += usize::from(text.contains("\"sub_ack\""));
        }
    }

    /// The next text frame, or `None` when none came within `limit`.
    pub fn next_text(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.get_mut().set_read_timeout(Some(left)).unwrap();
            match self.socket.read() {
                Ok(tokio_tungstenite::tungstenite::Message::Text(text)) => return Some(text.to_string()),
                Ok(_) => {}
                Err(tokio_tungstenite::tungstenite::Error::Io(error))
                    if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return None
                }
                Err(error) => panic!("socket failed: {error}"),
            }
        }
    }

    /// The next `count` message envelopes (other frames skipped), each with its arrival time.
    pub fn messages(&mut self, count: usize, limit: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::with_capacity(count);
        while got.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(text) = self.next_text(left) else {
                panic!("{} of {count} messages within {limit:?}: {:?}", got.len(), got.last());
            };
            if text.contains(r#""type":"message""#) {
                got.push((Instant::now(), text));
            }
        }
        got
    }
}

/// A frame's top-level fields as raw JSON text.
pub fn fields(frame: &str) -> std::collections::BTreeMap<String, String> {
    let raw: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
    raw.into_iter().map(|(key, value)| (key, value.get().to_string())).collect()
}
