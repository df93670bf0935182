//! Connection state, counters and the status report.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::protocol::error::DataNetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connecting,
    Connected,
    Reconnecting,
    Closed,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Closed => "closed",
            State::Failed => "failed",
        }
    }
}

/// Monotonic counters, written by the socket thread and read by anyone.
#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped_outbound: AtomicU64,
    pub reconnects: AtomicU64,
    pub malformed: AtomicU64,
    /// Binary messages of content types without numeric fields.
    pub binary_other: AtomicU64,
    /// DMX, Art-Net or float-vector payloads that could not be decoded.
    pub binary_invalid: AtomicU64,
    /// Own messages dropped because `echo` is off.
    pub echo_suppressed: AtomicU64,
    /// Messages of `Latest` channels replaced by a newer one before a poll took them.
    pub replaced_latest: AtomicU64,
    /// Unix ms of the newest inbound message; 0 = none yet.
    pub last_message_ms: AtomicI64,
    /// Shared with the connection's stream, which counts them.
    pub socket_reads: Arc<SocketReads>,
}

/// Socket reads that returned data, by what started them: a readiness wake, or
/// the timer (set just before the host's next poll) while data comes often
/// (`read_pace_ms`).
#[derive(Default)]
pub struct SocketReads {
    pub on_wake: AtomicU64,
    pub on_timer: AtomicU64,
    /// How late the timer fired lately (median of its latest ticks), µs + 1; 0 = no tick yet.
    pub timer_late_us: AtomicU64,
    /// Times reads left the timer because it fired after the polls it was set for.
    pub timer_too_late: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The parts of the status that are not counters.
#[derive(Debug, Clone)]
pub struct Health {
    pub state: State,
    pub conn_id: Option<String>,
    pub last_error: Option<DataNetError>,
    pub rtt_ms: Option<f64>,
    pub reconnect_attempts: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health { state: State::Idle, conn_id: None, last_error: None, rtt_ms: None, reconnect_attempts: 0 }
    }
}

/// Figures owned by other parts of the client, gathered for one report.
pub struct Gauges {
    pub dropped_inbound: u64,
    pub events_pending: usize,
    pub queued_outbound: usize,
    pub queued_outbound_bytes: usize,
    pub subscriptions: usize,
    pub numeric_channels: usize,
    pub dropped_values: u64,
    pub coalesced: u64,
    pub streams_pending: usize,
}

pub fn status_json(health: &Health, counters: &Counters, gauges: &Gauges) -> Value {
    let c = |counter: &AtomicU64| Counters::get(counter);
    json!({
        "state": health.state.as_str(),
        "conn_id": health.conn_id,
        "counters": {
            "received": c(&counters.received),
            "sent": c(&counters.sent),
            "bytes_in": c(&counters.bytes_in),
            "bytes_out": c(&counters.bytes_out),
            "dropped_inbound": gauges.dropped_inbound,
            "dropped_outbound": c(&counters.dropped_outbound),
            "queued_outbound": gauges.queued_outbound,
            "queued_outbound_bytes": gauges.queued_outbound_bytes,
            "reconnects": c(&counters.reconnects),
            "malformed": c(&counters.malformed),
            "binary_other": c(&counters.binary_other),
            "binary_invalid": c(&counters.binary_invalid),
            "echo_suppressed": c(&counters.echo_suppressed),
            "replaced_latest": c(&counters.replaced_latest),
            "coalesced": gauges.coalesced,
            "streams_pending": gauges.streams_pending,
            "dropped_values": gauges.dropped_values,
            "reads_on_wake": c(&counters.socket_reads.on_wake),
            "reads_on_timer": c(&counters.socket_reads.on_timer),
            "read_timer_too_late": c(&counters.socket_reads.timer_too_late),
        },
        "read_timer_late_ms": Some(c(&counters.socket_reads.timer_late_us))
            .filter(|&us| us > 0)
            .map(|us| (us - 1) as f64 / 1000.0),
        "events_pending": gauges.events_pending,
        "subscriptions": gauges.subscriptions,
        "numeric_channels": gauges.numeric_channels,
        "last_error": health.last_error.as_ref().map(DataNetError::to_json),
        "last_message_ms": Some(counters.last_message_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0),
        "rtt_ms": health.rtt_ms,
        "reconnect_attempts": health.reconnect_attempts,
    })
}
