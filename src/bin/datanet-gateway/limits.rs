//! The gateway's bounds, their defaults (documented in docs/GATEWAY.md), and the
//! per-connection rate budget. Defaults are generous for a show and still keep one
//! connection from costing the others.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open WebSocket sessions, all keys together.
    pub max_connections: usize,
    /// Open sessions per API key; 0 means only the global cap applies.
    pub max_connections_per_key: usize,
    pub max_subscriptions: usize,
    /// Largest frame read from a client, and largest frame relayed to one.
    pub max_message_bytes: usize,
    pub frames_per_second: u32,
    pub bytes_per_second: u64,
    /// Frames waiting for one subscriber; beyond it the oldest are dropped.
    pub queued_bytes_per_connection: usize,
    /// Frames waiting for all subscribers together.
    pub queued_bytes_total: usize,
    pub idle_timeout: Duration,
    pub token_expiry_grace: Duration,
    pub header_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_key: 0,
            max_subscriptions: 1_000,
            max_message_bytes: 1024 * 1024,
            frames_per_second: 5_000,
            bytes_per_second: 16 * 1024 * 1024,
            queued_bytes_per_connection: 4 * 1024 * 1024,
            queued_bytes_total: 512 * 1024 * 1024,
            // 2.5 heartbeat intervals of the SDKs' 30 s, like the cloud's liveness.
            idle_timeout: Duration::from_secs(75),
            token_expiry_grace: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// A token bucket over frames and bytes: a full second's budget may be spent at
/// once, and it refills continuously.
pub struct RateBudget {
    frames_per_second: f64,
    bytes_per_second: f64,
    frames: f64,
    bytes: f64,
    refilled: Instant,
}

impl RateBudget {
    pub fn new(limits: &Limits, now: Instant) -> Self {
        let frames_per_second = f64::from(limits.frames_per_second.max(1));
        let bytes_per_second = limits.bytes_per_second.max(1) as f64;
        RateBudget {
            frames_per_second,
            bytes_per_second,
            frames: frames_per_second,
            bytes: bytes_per_second,
            refilled: now,
        }
    }

    /// Spends one frame of `len` bytes. When the budget is spent, returns how long
    /// until it covers one more frame of that size.
    pub fn spend(&mut self, len: usize, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.frames = (self.frames + elapsed * self.frames_per_second).min(self.frames_per_second);
        self.bytes = (self.bytes + elapsed * self.bytes_per_second).min(self.bytes_per_second);
        let len = len as f64;
        if self.frames >= 1.0 && self.bytes >= len.min(self.bytes_per_second) {
            self.frames -= 1.0;
            self.bytes -= len;
            return Ok(());
        }
        let frames_wait = (1.0 - self.frames).max(0.0) / self.frames_per_second;
        let bytes_wait = (len.min(self.bytes_per_second) - self.bytes).max(0.0) / self.bytes_per_second;
        Err(Duration::from_secs_f64(frames_wait.max(bytes_wait)).max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(frames: u32, bytes: u64) -> Limits {
        Limits { frames_per_second: frames, bytes_per_second: bytes, ..Limits::default() }
    }

    #[test]
    fn frames_budget_refills_continuously() {
        let start = Instant::now();
        let mut budget = RateBudget::new(&limits(10, 1 << 30), start);
        for _ in 0..10 {
            assert!(budget.spend(1, start).is_ok());
        }
        let wait = budget.spend(1, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(budget.spend(1, start + Duration::from_millis(50)).is_err());
        assert!(budget.spend(1, start + Duration::from_millis(101)).is_ok());
    }

    #[test]
    fn bytes_budget_counts_sizes_and_a_huge_frame_still_passes_on_a_full_bucket() {
        let start = Instant::now();
        let mut budget = RateBudget::new(&limits(1000, 1000), start);
        assert!(budget.spend(600, start).is_ok());
        let wait = budget.spend(600, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // A frame larger than a second's budget needs a full bucket, not forever.
        let mut budget = RateBudget::new(&limits(1000, 1000), start);
        assert!(budget.spend(5000, start).is_ok());
        assert!(budget.spend(1, start + Duration::from_secs(5)).is_ok());
    }
}
