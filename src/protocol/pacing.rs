//! When to read the socket on a timer instead of on every readiness wake.
//!
//! At hundreds of messages a second each message is its own TCP packet, and each
//! packet wakes the socket thread. A wake costs far more than the message: its
//! code and data are cold again, since TouchDesigner's main thread ran in
//! between (measured: ~29 µs of socket-thread CPU per wake at 1,000 msg/s, of
//! which the message's own work is a few µs). While reads come closer together
//! than the pace, reading every pace instead takes the same bytes in fewer wakes,
//! for at most one pace of added delay; a host that polls once a frame (16.7 ms
//! at 60 fps) sees most messages in the same frame as before. After a quiet spell
//! reads go back to readiness wakes, so sparse messages are not delayed at all.
//!
//! Pure: the I/O side (`client::paced`) reports what happened and asks which way
//! to read next.

use std::time::{Duration, Instant};

/// The pace never exceeds this part of the host's poll interval, so a host that
/// polls often (a tight loop, a high frame rate) is not made to wait, and at
/// most about this share of messages reach a host a poll later than they would
/// have; at 60 fps it is 4.2 ms.
pub(crate) const POLL_INTERVAL_SHARE: u32 = 4;
/// Below this the pace is off: tokio's timers tick in whole milliseconds.
pub(crate) const MIN_PACE: Duration = Duration::from_millis(1);

/// Reads closer together than the pace, in a row, that start reading on the timer.
pub(crate) const CLOSE_READS_TO_PACE: u32 = 4;
/// Timer ticks in a row that found nothing, that end reading on the timer.
pub(crate) const QUIET_TICKS_TO_WAKE: u32 = 8;

/// The pace to read at: at most `limit` (the configured pace) and at most a
/// `POLL_INTERVAL_SHARE`th of the host's poll interval, when the host polls;
/// zero (read on every wake) below `MIN_PACE`.
pub fn pace_for(limit: Duration, host_poll_interval: Option<Duration>) -> Duration {
    let pace = host_poll_interval.map_or(limit, |interval| limit.min(interval / POLL_INTERVAL_SHARE));
    if pace < MIN_PACE {
        Duration::ZERO
    } else {
        pace
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Read when the event loop says the socket has data.
    OnWake,
    /// Read when the pace timer fires, until the socket has nothing more.
    OnTimer,
}

/// Which way to read, from what the reads found. The pace is given to each call
/// (`pace_for`), since the host's poll interval can change at any time.
#[derive(Debug, Clone)]
pub struct ReadPacing {
    mode: ReadMode,
    last_read: Option<Instant>,
    close_reads: u32,
    quiet_ticks: u32,
    /// The current tick has been neither found quiet nor seen data yet.
    tick_open: bool,
}

impl Default for ReadPacing {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadPacing {
    pub fn new() -> Self {
        ReadPacing { mode: ReadMode::OnWake, last_read: None, close_reads: 0, quiet_ticks: 0, tick_open: false }
    }

    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// A read on a wake returned data at `now`; returns how to read from now on.
    pub fn woken_read(&mut self, now: Instant, pace: Duration) -> ReadMode {
        if pace.is_zero() || self.mode == ReadMode::OnTimer {
            return self.mode;
        }
        let close = self.last_read.is_some_and(|last| now.saturating_duration_since(last) < pace);
        self.last_read = Some(now);
        self.close_reads = if close { self.close_reads + 1 } else { 0 };
        if self.close_reads >= CLOSE_READS_TO_PACE {
            self.mode = ReadMode::OnTimer;
            self.close_reads = 0;
            self.quiet_ticks = 0;
            // The read that switched is this first tick's data.
            self.tick_open = false;
        }
        self.mode
    }

    /// The pace timer fired: a new tick.
    pub fn tick(&mut self) {
        self.tick_open = true;
    }

    /// A read on the timer returned data.
    pub fn timed_read(&mut self) {
        self.tick_open = false;
        self.quiet_ticks = 0;
    }

    /// The socket had nothing more to read this tick; returns how to read next:
    /// on wakes again after `QUIET_TICKS_TO_WAKE` ticks in a row found nothing,
    /// or at once when the pace is now zero.
    pub fn drained(&mut self, pace: Duration) -> ReadMode {
        if self.mode == ReadMode::OnTimer && self.tick_open {
            self.tick_open = false;
            self.quiet_ticks += 1;
        }
        if self.mode == ReadMode::OnTimer && (self.quiet_ticks >= QUIET_TICKS_TO_WAKE || pace.is_zero()) {
            self.mode = ReadMode::OnWake;
            self.last_read = None;
        }
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Duration = Duration::from_millis(2);

    fn reads(pacing: &mut ReadPacing, start: Instant, gap: Duration, n: u32) -> Vec<ReadMode> {
        (0..n).map(|i| pacing.woken_read(start + gap * i, PACE)).collect()
    }

    #[test]
    fn reads_closer_than_the_pace_switch_to_the_timer() {
        let mut pacing = ReadPacing::new();
        let modes = reads(&mut pacing, Instant::now(), Duration::from_micros(500), CLOSE_READS_TO_PACE + 1);
        assert!(modes[..CLOSE_READS_TO_PACE as usize].iter().all(|&m| m == ReadMode::OnWake), "{modes:?}");
        assert_eq!(modes[CLOSE_READS_TO_PACE as usize], ReadMode::OnTimer);
        assert_eq!(pacing.mode(), ReadMode::OnTimer);
    }

    #[test]
    fn sparse_reads_stay_on_wakes() {
        let mut pacing = ReadPacing::new();
        let modes = reads(&mut pacing, Instant::now(), PACE, 50);
        assert!(modes.iter().all(|&m| m == ReadMode::OnWake));
    }

    #[test]
    fn one_sparse_read_restarts_the_count() {
        let mut pacing = ReadPacing::new();
        let start = Instant::now();
        let close = Duration::from_micros(100);
        for i in 0..CLOSE_READS_TO_PACE {
            assert_eq!(pacing.woken_read(start + close * i, PACE), ReadMode::OnWake);
        }
        let later = start + Duration::from_secs(1);
        assert_eq!(pacing.woken_read(later, PACE), ReadMode::OnWake);
        assert_eq!(pacing.woken_read(later + close, PACE), ReadMode::OnWake);
    }

    #[test]
    fn a_zero_pace_never_reads_on_the_timer() {
        let mut pacing = ReadPacing::new();
        let start = Instant::now();
        assert!((0..100).all(|_| pacing.woken_read(start, Duration::ZERO) == ReadMode::OnWake));
    }

    #[test]
    fn the_pace_is_the_limit_or_a_share_of_the_poll_interval_and_off_below_a_millisecond() {
        let ms = Duration::from_millis;
        assert_eq!(pace_for(ms(2), None), ms(2));
        assert_eq!(pace_for(ms(2), Some(Duration::from_micros(16_667))), ms(2), "60 fps");
        assert_eq!(pace_for(ms(5), Some(Duration::from_micros(16_667))), Duration::from_nanos(4_166_750));
        assert_eq!(pace_for(ms(2), Some(Duration::from_micros(6_000))), Duration::from_micros(1_500), "166 fps");
        assert_eq!(pace_for(ms(2), Some(ms(3))), Duration::ZERO, "a share below a millisecond");
        assert_eq!(pace_for(ms(2), Some(Duration::from_micros(200))), Duration::ZERO, "a tight loop");
        assert_eq!(pace_for(Duration::ZERO, None), Duration::ZERO);
    }

    #[test]
    fn a_pace_gone_to_zero_ends_the_timer_at_the_next_drain() {
        let mut pacing = paced();
        assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        pacing.tick();
        pacing.timed_read();
        assert_eq!(pacing.drained(Duration::ZERO), ReadMode::OnWake);
    }

    fn paced() -> ReadPacing {
        let mut pacing = ReadPacing::new();
        reads(&mut pacing, Instant::now(), Duration::ZERO, CLOSE_READS_TO_PACE + 1);
        assert_eq!(pacing.mode(), ReadMode::OnTimer);
        pacing
    }

    #[test]
    fn quiet_ticks_in_a_row_go_back_to_wakes() {
        let mut pacing = paced();
        // The tick that switched had data: its drain is not quiet.
        assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        for _ in 1..QUIET_TICKS_TO_WAKE {
            pacing.tick();
            assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        }
        pacing.tick();
        assert_eq!(pacing.drained(PACE), ReadMode::OnWake);
        // and starts counting close reads afresh
        assert_eq!(pacing.woken_read(Instant::now(), PACE), ReadMode::OnWake);
    }

    #[test]
    fn a_tick_with_data_restarts_the_quiet_count() {
        let mut pacing = paced();
        for _ in 0..3 * QUIET_TICKS_TO_WAKE {
            for _ in 0..QUIET_TICKS_TO_WAKE - 1 {
                pacing.tick();
                assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
            }
            pacing.tick();
            pacing.timed_read();
            assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        }
    }

    #[test]
    fn draining_twice_in_one_tick_counts_once() {
        let mut pacing = paced();
        pacing.drained(PACE);
        for _ in 0..QUIET_TICKS_TO_WAKE - 1 {
            pacing.tick();
            for _ in 0..5 {
                assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
            }
        }
    }
}
