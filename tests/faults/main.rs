//! Reliability and security fault injection: outages, half-open paths, slow
//! consumers, hostile server input, fuzzing, ABI misuse under valgrind, TLS
//! verification and secret hygiene. Each scenario prints one line
//! `FIGURE <scenario>: <figure>` (see tests/RELIABILITY.md) and asserts behaviour,
//! never speed. `DATANET_SOAK=1` runs the longer variants.
//!
//! Tests that measure the whole process (threads, descriptors, resident memory) or
//! time a detection take the suite lock exclusively, so that a parallel test can
//! neither add to their figures nor starve their timers; the others share it.

mod abi;
#[path = "../common/mod.rs"]
mod common;
mod fuzzing;
mod half_open;
mod malformed;
mod outages;
mod proxy_check;
mod secrets;
mod slow_consumer;
mod tls;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::proxy::FaultProxy;
use common::tls::{server_cert, test_ca, TlsTerminator};
use common::Gateway;
use datanet::client::{Body, Client, Config, Event, State};
use datanet::protocol::envelope::{decode_binary_frame, decode_text, Payload, ServerEnvelope};
use datanet::protocol::error::DataNetError;
use serde_json::{json, Value};

const KEY: &str = "ak_faults";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Shared helpers

fn soak() -> bool {
    std::env::var("DATANET_SOAK").is_ok_and(|v| v == "1")
}

fn figure(scenario: &str, text: impl std::fmt::Display) {
    println!("FIGURE {scenario}: {text}");
}

static SUITE: RwLock<()> = RwLock::new(());

/// For tests whose figures are process-wide or timing-sensitive.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SUITE.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn shared() -> RwLockReadGuard<'static, ()> {
    SUITE.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Panics on the library's own threads (the client thread and its tokio blocking
/// pool). The connection thread catches them itself, so without this hook a
/// panic would only show up as a `failed` state.
static LIBRARY_PANICS: AtomicU64 = AtomicU64::new(0);

fn count_library_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            if name == "datanet-client" || name.starts_with("tokio-runtime") {
                LIBRARY_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn config_at(api_url: &str, ws_url: &str) -> Config {
    let mut c = Config::new(KEY);
    c.api_url = api_url.to_string();
    c.ws_url = ws_url.to_string();
    c.reconnect_base = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

fn config(gw: &Gateway) -> Config {
    config_at(&gw.url(), &gw.ws_url())
}

fn via_proxy(proxy: &FaultProxy) -> Config {
    config_at(&proxy.url(), &proxy.ws_url())
}

fn connected(config: Config) -> Client {
    let client = Client::new(config).expect("client");
    client.connect().unwrap();
    wait_event(&client, "connected", |e| matches!(e, Event::Connected { .. }));
    client
}

/// Takes events until one matches; panics after `WAIT`.
fn wait_event(client: &Client, what: &str, wanted: impl FnMut(&Event) -> bool) -> Event {
    common::wait_event(client, what, WAIT, wanted)
}

fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    common::wait_until(what, limit, done)
}

fn subscribed(client: &Client, channel: &str) {
    client.subscribe(channel).unwrap();
    wait_event(client, "sub_ack", |e| matches!(e, Event::SubAck { channel: c, .. } if c == channel));
}

fn counter(client: &Client, name: &str) -> u64 {
    client.status()["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name}"))
}

fn drain(client: &Client) -> Vec<Event> {
    std::iter::from_fn(|| client.next_event()).collect()
}

fn json_of(body: &Body) -> Value {
    match body {
        Body::Json(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not JSON: {other:?}"),
    }
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Resident set size in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
