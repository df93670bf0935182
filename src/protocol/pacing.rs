//! When and how often to read the socket while messages pour in.
//!
//! At hundreds of messages a second each message is its own TCP packet, and each
//! packet wakes the socket thread. A wake costs far more than the message: its
//! code and data are cold again, since TouchDesigner's main thread ran in
//! between (measured: ~15-29 µs of socket-thread CPU per wake at 1,000 msg/s, of
//! which the message's own work is a few µs). While reads come closer together
//! than the pace, the socket is read on a timer instead, and the timer is set
//! for what the host needs: the host takes messages once a frame, so one read
//! just before each of its polls delivers everything a read per packet would
//! have delivered to that poll, except what arrives in the last moments. The
//! timer fires `pace` before the host's next expected poll (one wake per frame:
//! 60 a second instead of 1,000); when the host's rhythm is not known, every
//! `pace`. After a quiet spell reads go back to readiness wakes, so sparse
//! messages are not delayed at all; they also go back for a while when the timer
//! fires too late to come before the polls (coarse platform timers).
//!
//! Pure: the I/O side (`client::paced`) reports what happened and asks which way
//! and when to read next.

use std::time::{Duration, Instant};

/// The pace never exceeds this part of the host's poll interval, so a host that
/// polls often (a tight loop, a high frame rate) is not made to wait, and at
/// most about this share of messages reach a host a poll later than they would
/// have; at 60 fps it is 4.2 ms.
pub(crate) const POLL_INTERVAL_SHARE: u32 = 4;
/// Below this the pace is off: tokio's timers tick in whole milliseconds.
pub(crate) const MIN_PACE: Duration = Duration::from_millis(1);

/// tokio's timers fire in the millisecond tick after their deadline (measured on
/// a busy 2-core machine: up to 2 ms late, about 1 ms typically): a read meant to
/// come before a poll is set this much earlier still.
pub(crate) const TIMER_TICK: Duration = Duration::from_millis(1);

/// How long before the host's expected poll a read is set for: the pace and a
/// timer tick. A timer that fires later than this lately is too late (`tick`).
pub(crate) fn read_lead(pace: Duration) -> Duration {
    pace + TIMER_TICK
}
/// A host whose next poll is further away than this many poll intervals has
/// stopped polling for now (a stalled frame, a modal dialog): read every pace.
pub(crate) const POLLS_AHEAD_IN_RHYTHM: u32 = 4;
/// The longest a read waits while on the timer, whatever the host's rhythm: at
/// 10,000 messages a second this is ~50 KB waiting in the kernel's buffer, far
/// below what TCP receive windows take, so the sender never stalls on us.
pub(crate) const MAX_READ_GAP: Duration = Duration::from_millis(20);

/// Reads closer together than the pace, in a row, that start reading on the timer.
pub(crate) const CLOSE_READS_TO_PACE: u32 = 4;
/// Timer ticks in a row that found nothing, that end reading on the timer.
pub(crate) const QUIET_TICKS_TO_WAKE: u32 = 8;
/// How long reads stay on wakes after the pace timer proved too late to come
/// before the host's polls; then the timer is tried again. A platform whose
/// timers tick coarsely (Windows' default timer resolution is 15.6 ms, unless the
/// process raised it) spends a few ticks in this time on a late timer.
pub(crate) const LATE_TIMER_RETRY: Duration = Duration::from_secs(10);

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

/// The host's polls, as the socket thread sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRhythm {
    /// When the host last polled.
    pub last_poll: Instant,
    /// The interval its polls come at (the median lately: `RecentMedian`).
    pub interval: Duration,
}

/// How many of the latest durations a `RecentMedian` judges by.
pub(crate) const RECENT_KEPT: usize = 8;

/// The median of the latest `RECENT_KEPT` durations: what something takes lately,
/// unmoved by one outlier. Used for the host's interval between polls (reads are
/// planned by it: one late frame does not move it, since a read planned by a late
/// frame's interval would come after the next, on-time poll and miss it; nor does
/// a second poll within a frame; a host that changed its frame rate is followed
/// within a few polls) and for how late the pace timer fires.
#[derive(Debug, Clone, Default)]
pub struct RecentMedian {
    recent: [Duration; RECENT_KEPT],
    kept: usize,
    next: usize,
}

impl RecentMedian {
    /// Keeps the latest duration; returns the median of those kept.
    pub fn record(&mut self, latest: Duration) -> Duration {
        self.recent[self.next] = latest;
        self.next = (self.next + 1) % RECENT_KEPT;
        self.kept = (self.kept + 1).min(RECENT_KEPT);
        let mut sorted = self.recent;
        let sorted = &mut sorted[..self.kept];
        sorted.sort_unstable();
        sorted[self.kept / 2]
    }

    /// Whether `RECENT_KEPT` durations are kept: the median is judged by a full set.
    pub fn is_full(&self) -> bool {
        self.kept == RECENT_KEPT
    }
}

/// When the next read on the timer should come: `pace` (and one timer tick)
/// before the host's next expected poll, and at most `MAX_READ_GAP` from now;
/// every `pace` when the host's rhythm is unknown or it has stopped polling.
/// Never before `now`.
pub fn next_read_at(now: Instant, pace: Duration, host: Option<HostRhythm>) -> Instant {
    let every_pace = now + pace;
    let Some(HostRhythm { last_poll, interval }) = host else {
        return every_pace;
    };
    if interval.is_zero() {
        return every_pace;
    }
    let lead = read_lead(pace);
    // The first poll at last_poll + k * interval that is more than `lead` away.
    let k = (now + lead).saturating_duration_since(last_poll).as_nanos() / interval.as_nanos() + 1;
    if k > u128::from(POLLS_AHEAD_IN_RHYTHM) {
        return every_pace;
    }
    let before_poll = last_poll + interval * k as u32 - lead;
    before_poll.clamp(now, now + MAX_READ_GAP)
}

/// What a tick found of the pace timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerCheck {
    /// How late it fires lately: the median of its latest ticks.
    pub lateness: Duration,
    /// Too late for reads to come before the polls: reads leave the timer.
    pub too_late: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Read when the event loop says the socket has data.
    OnWake,
    /// Read when the timer fires (`next_read_at`), until the socket has nothing more.
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
    /// Timer ticks so far: the socket thread's wakes while reading on the timer.
    ticks: u64,
    /// How late the timer fired, lately.
    lateness: RecentMedian,
    /// Reading on the timer is off until then: the timer fired too late.
    timer_off_until: Option<Instant>,
}

impl Default for ReadPacing {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadPacing {
    pub fn new() -> Self {
        ReadPacing {
            mode: ReadMode::OnWake,
            last_read: None,
            close_reads: 0,
            quiet_ticks: 0,
            tick_open: false,
            ticks: 0,
            lateness: RecentMedian::default(),
            timer_off_until: None,
        }
    }

    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// A read on a wake returned data at `now`; returns how to read from now on.
    pub fn woken_read(&mut self, now: Instant, pace: Duration) -> ReadMode {
        if pace.is_zero() || self.mode == ReadMode::OnTimer {
            return self.mode;
        }
        if let Some(until) = self.timer_off_until {
            if now < until {
                return self.mode;
            }
            self.timer_off_until = None;
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

    /// The pace timer, set for `deadline`, fired and its read comes at `now`: a
    /// new tick. The timer is too late when the median of its latest
    /// `RECENT_KEPT` ticks came later than the lead it was set with (`read_lead`):
    /// its reads come after the host's polls. Reads then go back to
    /// wakes at the next drain, for `LATE_TIMER_RETRY`: reading on every wake costs
    /// more CPU, but a read after the poll delays a frame's messages by a frame.
    pub fn tick(&mut self, now: Instant, deadline: Instant, pace: Duration) -> TimerCheck {
        self.tick_open = true;
        self.ticks += 1;
        let lateness = self.lateness.record(now.saturating_duration_since(deadline));
        let too_late = self.lateness.is_full() && lateness > read_lead(pace);
        if too_late {
            self.timer_off_until = Some(now + LATE_TIMER_RETRY);
            self.lateness = RecentMedian::default();
        }
        TimerCheck { lateness, too_late }
    }

    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// A read on the timer returned data.
    pub fn timed_read(&mut self) {
        self.tick_open = false;
        self.quiet_ticks = 0;
    }

    /// The socket had nothing more to read this tick; returns how to read next:
    /// on wakes again after `QUIET_TICKS_TO_WAKE` ticks in a row found nothing,
    /// or at once when the pace is now zero or the timer proved too late.
    pub fn drained(&mut self, pace: Duration) -> ReadMode {
        if self.mode == ReadMode::OnTimer && self.tick_open {
            self.tick_open = false;
            self.quiet_ticks += 1;
        }
        let timer_off = self.timer_off_until.is_some();
        if self.mode == ReadMode::OnTimer && (self.quiet_ticks >= QUIET_TICKS_TO_WAKE || pace.is_zero() || timer_off) {
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

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn rhythm(last_poll: Instant, interval_ms: u64) -> Option<HostRhythm> {
        Some(HostRhythm { last_poll, interval: Duration::from_millis(interval_ms) })
    }

    #[test]
    fn a_read_comes_a_pace_and_a_timer_tick_before_the_next_expected_poll() {
        let start = Instant::now();
        // Polls at 0, 16, 32 ms; pace 2 and a 1 ms tick: reads at 13, 29 ms.
        assert_eq!(next_read_at(at(start, 1), PACE, rhythm(start, 16)), at(start, 13));
        assert_eq!(next_read_at(at(start, 12), PACE, rhythm(start, 16)), at(start, 13));
        // Too close to the next poll to read before it: the one after.
        assert_eq!(next_read_at(at(start, 14), PACE, rhythm(start, 16)), at(start, 29));
        // The host is a frame late: still the next poll it would make.
        assert_eq!(next_read_at(at(start, 20), PACE, rhythm(start, 16)), at(start, 29));
    }

    #[test]
    fn without_a_host_rhythm_reads_come_every_pace() {
        let start = Instant::now();
        assert_eq!(next_read_at(start, PACE, None), at(start, 2));
        assert_eq!(next_read_at(start, PACE, rhythm(start, 0)), at(start, 2));
        // A host that stopped polling (several intervals without a poll).
        let stalled = at(start, 16 * u64::from(POLLS_AHEAD_IN_RHYTHM) + 1);
        assert_eq!(next_read_at(stalled, PACE, rhythm(start, 16)), stalled + PACE);
    }

    #[test]
    fn a_slow_host_still_has_the_socket_read_every_max_gap() {
        let start = Instant::now();
        // A host polling once a second: reads no further apart than MAX_READ_GAP.
        assert_eq!(next_read_at(at(start, 1), PACE, rhythm(start, 1000)), at(start, 1) + MAX_READ_GAP);
        // and the last read before its poll still comes just before it.
        assert_eq!(next_read_at(at(start, 990), PACE, rhythm(start, 1000)), at(start, 997));
    }

    #[test]
    fn the_planned_interval_ignores_a_late_frame_and_a_second_poll_and_follows_a_new_rate() {
        let ms = Duration::from_millis;
        let mut intervals = RecentMedian::default();
        assert_eq!(intervals.record(ms(16)), ms(16));
        for _ in 0..RECENT_KEPT {
            intervals.record(ms(16));
        }
        assert_eq!(intervals.record(ms(50)), ms(16), "one late frame");
        assert_eq!(intervals.record(Duration::from_micros(100)), ms(16), "a second poll within a frame");
        // A host polling twice every frame is still planned by its frames.
        let mut twice = RecentMedian::default();
        let planned: Vec<_> =
            (0..20).map(|i| twice.record(if i % 2 == 0 { Duration::from_micros(100) } else { ms(16) })).collect();
        assert_eq!(planned.last(), Some(&ms(16)));
        // A host gone from 60 to 30 fps is followed within RECENT_KEPT polls.
        let settled = (0..RECENT_KEPT).map(|_| intervals.record(ms(33))).last();
        assert_eq!(settled, Some(ms(33)));
    }

    #[test]
    fn a_read_is_never_set_in_the_past() {
        let start = Instant::now();
        // A poll interval shorter than the lead: the clamp keeps it at now or later.
        for now_ms in 0..20 {
            let now = at(start, now_ms);
            let read = next_read_at(now, PACE, rhythm(start, 2));
            assert!(read >= now && read <= now + MAX_READ_GAP, "{now_ms}");
        }
    }

    #[test]
    fn a_pace_gone_to_zero_ends_the_timer_at_the_next_drain() {
        let mut pacing = paced();
        assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        tick_on_time(&mut pacing);
        pacing.timed_read();
        assert_eq!(pacing.drained(Duration::ZERO), ReadMode::OnWake);
    }

    fn tick_on_time(pacing: &mut ReadPacing) {
        let now = Instant::now();
        assert!(!pacing.tick(now, now, PACE).too_late);
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
            tick_on_time(&mut pacing);
            assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        }
        tick_on_time(&mut pacing);
        assert_eq!(pacing.drained(PACE), ReadMode::OnWake);
        // and starts counting close reads afresh
        assert_eq!(pacing.woken_read(Instant::now(), PACE), ReadMode::OnWake);
    }

    #[test]
    fn a_tick_with_data_restarts_the_quiet_count() {
        let mut pacing = paced();
        for _ in 0..3 * QUIET_TICKS_TO_WAKE {
            for _ in 0..QUIET_TICKS_TO_WAKE - 1 {
                tick_on_time(&mut pacing);
                assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
            }
            tick_on_time(&mut pacing);
            pacing.timed_read();
            assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
        }
    }

    #[test]
    fn draining_twice_in_one_tick_counts_once() {
        let mut pacing = paced();
        pacing.drained(PACE);
        for _ in 0..QUIET_TICKS_TO_WAKE - 1 {
            tick_on_time(&mut pacing);
            for _ in 0..5 {
                assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
            }
        }
    }

    /// Ticks up to `n` times, each `late` after its deadline, from `start`, until
    /// reads leave the timer; returns what each tick found.
    fn late_ticks(pacing: &mut ReadPacing, start: Instant, late: Duration, n: u32) -> Vec<TimerCheck> {
        let mut checks = Vec::new();
        for i in 0..n {
            let deadline = start + Duration::from_millis(16) * i;
            checks.push(pacing.tick(deadline + late, deadline, PACE));
            pacing.timed_read();
            if pacing.drained(PACE) == ReadMode::OnWake {
                break;
            }
        }
        checks
    }

    fn any_too_late(checks: &[TimerCheck]) -> bool {
        checks.iter().any(|check| check.too_late)
    }

    #[test]
    fn a_timer_firing_within_its_lead_keeps_reads_on_it() {
        let mut pacing = paced();
        // The usual tokio lateness, and a late tick now and then.
        let start = Instant::now();
        assert!(!any_too_late(&late_ticks(&mut pacing, start, Duration::from_millis(1), 3 * RECENT_KEPT as u32)));
        let check = pacing.tick(start, start - Duration::from_millis(15), PACE);
        assert_eq!(check, TimerCheck { lateness: Duration::from_millis(1), too_late: false }, "one tick 15 ms late");
        assert_eq!(pacing.drained(PACE), ReadMode::OnTimer);
    }

    #[test]
    fn a_timer_firing_after_the_polls_puts_reads_on_wakes_and_is_tried_again_later() {
        let mut pacing = paced();
        let start = Instant::now();
        // Coarse timers: every tick lands well after the read's lead (pace + a tick).
        let late = read_lead(PACE) + Duration::from_millis(5);
        let checks = late_ticks(&mut pacing, start, late, RECENT_KEPT as u32);
        assert_eq!(checks.len(), RECENT_KEPT, "judged by a full set of ticks");
        assert!(!any_too_late(&checks[..RECENT_KEPT - 1]));
        assert_eq!(checks.last(), Some(&TimerCheck { lateness: late, too_late: true }));
        assert_eq!(pacing.mode(), ReadMode::OnWake);
        // Close reads do not go back on the timer until LATE_TIMER_RETRY has passed.
        let stopped_at = start + Duration::from_millis(16) * (RECENT_KEPT as u32 - 1) + late;
        assert!(reads(&mut pacing, stopped_at, Duration::ZERO, 100).iter().all(|&m| m == ReadMode::OnWake));
        let retry = stopped_at + LATE_TIMER_RETRY;
        assert_eq!(reads(&mut pacing, retry, Duration::ZERO, CLOSE_READS_TO_PACE + 1).last(), Some(&ReadMode::OnTimer));
        // The retry is judged afresh: a few late ticks alone do not stop it.
        assert!(!any_too_late(&late_ticks(&mut pacing, retry, late, RECENT_KEPT as u32 - 1)));
        assert_eq!(pacing.mode(), ReadMode::OnTimer);
    }
}
