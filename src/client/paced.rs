//! The WebSocket's TCP stream, read on a timer set just before the host's polls
//! while data comes often (`protocol::pacing` decides when; this only moves bytes).
//!
//! Reading on a timer only saves wakes if packets stop waking the thread: the
//! event loop registers sockets edge-triggered, so a registered socket wakes it
//! for every packet whether or not anything waits for it. While paced, the socket
//! is therefore taken out of the event loop (`into_std`: a non-blocking std
//! socket, read directly) and put back when reads go back to wakes. Both are
//! tokio calls on every platform; nothing here is platform-specific.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::status::{Counters, SocketReads};
use crate::protocol::pacing::{next_read_at, pace_for, HostRhythm, ReadMode, ReadPacing, RecentMedian, MIN_PACE};

/// When the host last polled and its interval between polls, for the pace and
/// the timer: written by the host's poll, read by the socket thread.
pub struct HostPolls {
    origin: std::time::Instant,
    /// ns since `origin`, plus one; 0 = never polled.
    last: AtomicU64,
    /// The interval reads are planned by (`RecentMedian`), in ns; 0 = not known yet.
    interval: AtomicU64,
    intervals: Mutex<RecentMedian>,
}

impl Default for HostPolls {
    fn default() -> Self {
        HostPolls {
            origin: std::time::Instant::now(),
            last: AtomicU64::new(0),
            interval: AtomicU64::new(0),
            intervals: Mutex::new(RecentMedian::default()),
        }
    }
}

impl HostPolls {
    pub fn polled(&self) {
        let now = self.origin.elapsed().as_nanos() as u64 + 1;
        let previous = self.last.swap(now, Ordering::Relaxed);
        if previous != 0 {
            let latest = Duration::from_nanos(now.saturating_sub(previous).max(1));
            // Only the host's polls take this lock; the socket thread reads the atomic.
            let planned = self.intervals.lock().unwrap_or_else(PoisonError::into_inner).record(latest);
            self.interval.store((planned.as_nanos() as u64).max(1), Ordering::Relaxed);
        }
    }

    pub fn interval(&self) -> Option<Duration> {
        Some(self.interval.load(Ordering::Relaxed)).filter(|&ns| ns > 0).map(Duration::from_nanos)
    }

    pub fn rhythm(&self) -> Option<HostRhythm> {
        let last = self.last.load(Ordering::Relaxed);
        let interval = self.interval()?;
        (last > 0).then(|| HostRhythm { last_poll: self.origin + Duration::from_nanos(last - 1), interval })
    }
}

enum Socket {
    /// In the event loop: reads and writes wait for readiness.
    Registered(TcpStream),
    /// Out of it: non-blocking, read when the pace timer fires.
    Paced(std::net::TcpStream),
    /// Only if moving between the two failed (the error was returned).
    Lost,
}

pub struct PacedStream {
    socket: Socket,
    pacing: ReadPacing,
    /// The configured pace (`read_pace_ms`); the pace used is `pace()`.
    limit: Duration,
    polls: Arc<HostPolls>,
    reads: Arc<SocketReads>,
    /// Read and write wait on separate timers: a timer keeps only the newest
    /// waker, and tokio-tungstenite gives reads and writes different ones.
    read_timer: Pin<Box<Sleep>>,
    read_waiting: bool,
    /// When the read timer was set to fire: how late it fires is watched.
    read_deadline: std::time::Instant,
    write_timer: Pin<Box<Sleep>>,
}

impl PacedStream {
    /// `limit` zero: the stream stays registered and reads on every wake.
    pub fn new(stream: TcpStream, limit: Duration, polls: Arc<HostPolls>, reads: Arc<SocketReads>) -> Self {
        PacedStream {
            socket: Socket::Registered(stream),
            pacing: ReadPacing::new(),
            limit,
            polls,
            reads,
            read_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            read_waiting: false,
            read_deadline: std::time::Instant::now(),
            write_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    #[cfg(test)]
    pub fn mode(&self) -> ReadMode {
        self.pacing.mode()
    }

    fn pace(&self) -> Duration {
        pace_for(self.limit, self.polls.interval())
    }

    fn move_socket(&mut self, to: ReadMode) -> io::Result<()> {
        self.socket = match (std::mem::replace(&mut self.socket, Socket::Lost), to) {
            (Socket::Registered(stream), ReadMode::OnTimer) => Socket::Paced(stream.into_std()?),
            (Socket::Paced(stream), ReadMode::OnWake) => Socket::Registered(TcpStream::from_std(stream)?),
            (unchanged, _) => unchanged,
        };
        Ok(())
    }

    fn lost() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "the socket was lost moving in or out of the event loop")
    }
}

impl AsyncRead for PacedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let pace = this.pace();
            match &mut this.socket {
                Socket::Registered(stream) => {
                    let before = buf.filled().len();
                    ready!(Pin::new(stream).poll_read(cx, buf))?;
                    if buf.filled().len() > before {
                        Counters::add(&this.reads.on_wake, 1);
                        if this.pacing.woken_read(std::time::Instant::now(), pace) == ReadMode::OnTimer {
                            this.move_socket(ReadMode::OnTimer)?;
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Socket::Paced(stream) => {
                    if this.read_waiting {
                        ready!(this.read_timer.as_mut().poll(cx));
                        this.read_waiting = false;
                        let check = this.pacing.tick(std::time::Instant::now(), this.read_deadline, pace);
                        this.reads.timer_late_us.store(check.lateness.as_micros() as u64 + 1, Ordering::Relaxed);
                        if check.too_late {
                            Counters::add(&this.reads.timer_too_late, 1);
                        }
                    }
                    match stream.read(buf.initialize_unfilled()) {
                        Ok(n) => {
                            if n > 0 {
                                Counters::add(&this.reads.on_timer, 1);
                                this.pacing.timed_read();
                            }
                            buf.advance(n);
                            return Poll::Ready(Ok(()));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if this.pacing.drained(pace) == ReadMode::OnWake {
                                this.move_socket(ReadMode::OnWake)?;
                            } else {
                                let at = next_read_at(std::time::Instant::now(), pace, this.polls.rhythm());
                                this.read_timer.as_mut().reset(Instant::from_std(at));
                                this.read_deadline = at;
                                this.read_waiting = true;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Socket::Lost => return Poll::Ready(Err(Self::lost())),
            }
        }
    }
}

impl AsyncWrite for PacedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.socket {
            Socket::Registered(stream) => Pin::new(stream).poll_write(cx, data),
            Socket::Paced(stream) => loop {
                match stream.write(data) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // The peer is not reading: try again a pace later.
                        let retry_after = pace_for(this.limit, this.polls.interval()).max(MIN_PACE);
                        this.write_timer.as_mut().reset(Instant::now() + retry_after);
                        ready!(this.write_timer.as_mut().poll(cx));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    result => return Poll::Ready(result),
                }
            },
            Socket::Lost => Poll::Ready(Err(Self::lost())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Registered(stream) => Pin::new(stream).poll_flush(cx),
            // TCP has no user-space buffer to flush.
            Socket::Paced(_) => Poll::Ready(Ok(())),
            Socket::Lost => Poll::Ready(Err(Self::lost())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
            Socket::Paced(stream) => Poll::Ready(stream.shutdown(Shutdown::Write)),
            Socket::Lost => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pacing::{CLOSE_READS_TO_PACE, QUIET_TICKS_TO_WAKE};
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    // Far above a loopback read's gap even on a loaded machine, so the close reads
    // that start pacing are close whatever else runs.
    const PACE: Duration = Duration::from_millis(20);

    async fn pair(pace: Duration) -> (PacedStream, TcpStream, Arc<SocketReads>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        let reads = Arc::new(SocketReads::default());
        let stream = PacedStream::new(client.unwrap(), pace, Arc::new(HostPolls::default()), reads.clone());
        (stream, server.unwrap().0, reads)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// Reads exactly `n` bytes.
    async fn read_n(stream: &mut PacedStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        stream.read_exact(&mut got).await.unwrap();
        got
    }

    /// Writes `chunks` chunks, each read before the next is written, so every one
    /// is its own read; returns the bytes read.
    async fn chunk_by_chunk(paced: &mut PacedStream, peer: &mut TcpStream, chunks: u8) -> Vec<u8> {
        let mut got = Vec::new();
        for i in 0..chunks {
            peer.write_all(&[i; 10]).await.unwrap();
            got.extend(read_n(paced, 10).await);
        }
        got
    }

    /// A pair whose reader has gone on the timer.
    async fn reading_on_the_timer() -> (PacedStream, TcpStream, Arc<SocketReads>) {
        let (mut paced, mut peer, reads) = pair(PACE).await;
        chunk_by_chunk(&mut paced, &mut peer, 10).await;
        assert_eq!(paced.mode(), ReadMode::OnTimer);
        (paced, peer, reads)
    }

    #[test]
    fn frequent_reads_go_on_the_timer_and_lose_nothing() {
        runtime().block_on(async {
            let (mut paced, mut peer, reads) = pair(PACE).await;
            let chunks = 50;
            let got = chunk_by_chunk(&mut paced, &mut peer, chunks).await;
            let expected: Vec<u8> = (0..chunks).flat_map(|i| [i; 10]).collect();
            assert_eq!(got, expected);
            assert_eq!(paced.mode(), ReadMode::OnTimer);
            assert_eq!(reads.on_wake.load(Ordering::Relaxed), u64::from(CLOSE_READS_TO_PACE) + 1);
            assert_eq!(reads.on_timer.load(Ordering::Relaxed), u64::from(chunks) - u64::from(CLOSE_READS_TO_PACE) - 1);
        });
    }

    #[test]
    fn a_quiet_spell_puts_the_socket_back_on_wakes() {
        runtime().block_on(async {
            let (mut paced, mut peer, reads) = reading_on_the_timer().await;
            // Nothing comes while the reader waits on more than QUIET ticks.
            let waited = tokio::time::timeout(PACE * QUIET_TICKS_TO_WAKE * 4, paced.read_u8()).await;
            assert!(waited.is_err(), "nothing was written, yet a read returned");
            assert_eq!(paced.mode(), ReadMode::OnWake);
            let woken = reads.on_wake.load(Ordering::Relaxed);
            peer.write_all(b"x").await.unwrap();
            assert_eq!(read_n(&mut paced, 1).await, b"x");
            assert_eq!(reads.on_wake.load(Ordering::Relaxed), woken + 1);
        });
    }

    #[test]
    fn a_zero_pace_reads_every_chunk_on_a_wake() {
        runtime().block_on(async {
            let (mut paced, mut peer, reads) = pair(Duration::ZERO).await;
            chunk_by_chunk(&mut paced, &mut peer, 20).await;
            assert_eq!(paced.mode(), ReadMode::OnWake);
            assert_eq!((reads.on_wake.load(Ordering::Relaxed), reads.on_timer.load(Ordering::Relaxed)), (20, 0));
        });
    }

    #[test]
    fn a_host_polling_often_keeps_reads_on_wakes() {
        runtime().block_on(async {
            let (mut paced, mut peer, reads) = pair(PACE).await;
            // Two polls back to back: a quarter of that is below a timer's tick.
            paced.polls.polled();
            paced.polls.polled();
            chunk_by_chunk(&mut paced, &mut peer, 20).await;
            assert_eq!(paced.mode(), ReadMode::OnWake);
            assert_eq!(reads.on_timer.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn a_host_polling_once_a_frame_has_the_socket_read_about_once_a_frame() {
        runtime().block_on(async {
            let (mut paced, mut peer, reads) = reading_on_the_timer().await;
            let (polls, writing) = (paced.polls.clone(), Arc::new(AtomicBool::new(true)));
            let host = tokio::spawn({
                let writing = writing.clone();
                async move {
                    let mut frame = tokio::time::interval(Duration::from_millis(16));
                    let mut frames = 0u64;
                    while writing.load(Ordering::Relaxed) {
                        frame.tick().await;
                        polls.polled();
                        frames += 1;
                    }
                    frames
                }
            });
            // A chunk about every millisecond, as at 1,000 messages a second.
            let chunks = 400;
            let writer = async {
                for i in 0..chunks {
                    peer.write_all(&[i as u8]).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let (ticks_before, wakes_before) = (paced.pacing.ticks(), reads.on_wake.load(Ordering::Relaxed));
            let (_, got) = tokio::join!(writer, read_n(&mut paced, chunks));
            writing.store(false, Ordering::Relaxed);
            let frames = host.await.unwrap();
            assert_eq!(got, (0..chunks).map(|i| i as u8).collect::<Vec<_>>());
            let ticks = paced.pacing.ticks() - ticks_before;
            // A tick every pace (4 ms at this rhythm) would be four a frame.
            assert!(ticks <= frames * 3 / 2 + 2, "{ticks} timer ticks in {frames} frames");
            assert_eq!(reads.on_wake.load(Ordering::Relaxed), wakes_before, "the socket stayed off the event loop");
        });
    }

    #[test]
    fn a_timer_firing_far_too_late_puts_reads_back_on_wakes() {
        runtime().block_on(async {
            let (mut paced, peer, reads) = reading_on_the_timer().await;
            // The peer writes from its own thread a byte every 5 ms, while a task on
            // the reader's thread holds it for 100 ms at a time: each timer tick is
            // polled long after its deadline, as on a platform with coarse timers.
            let peer = peer.into_std().unwrap();
            peer.set_nonblocking(false).unwrap();
            let count = 300;
            let writer = std::thread::spawn(move || {
                let mut peer = peer;
                for i in 0..count {
                    peer.write_all(&[i as u8]).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
                peer
            });
            let hogging = Arc::new(AtomicBool::new(true));
            let hog = tokio::spawn({
                let hogging = hogging.clone();
                async move {
                    while hogging.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        tokio::task::yield_now().await;
                    }
                }
            });
            let got = read_n(&mut paced, count).await;
            hogging.store(false, Ordering::Relaxed);
            hog.await.unwrap();
            let _peer = writer.join().unwrap();
            assert_eq!(got, (0..count).map(|i| i as u8).collect::<Vec<_>>());
            assert!(reads.timer_too_late.load(Ordering::Relaxed) >= 1, "the late timer was noticed");
            let lead = crate::protocol::pacing::read_lead(PACE).as_micros() as u64;
            assert!(reads.timer_late_us.load(Ordering::Relaxed) > lead + 1, "the lateness is reported");
            assert_eq!(paced.mode(), ReadMode::OnWake);
        });
    }

    #[test]
    fn writes_end_of_stream_and_shutdown_work_while_paced() {
        runtime().block_on(async {
            let (mut paced, mut peer, _) = reading_on_the_timer().await;
            // More than the socket buffers take at once: some writes wait on the timer.
            let big = vec![7u8; 8 << 20];
            let reader = async {
                let mut got = vec![0; big.len()];
                peer.read_exact(&mut got).await.unwrap();
                got
            };
            let (written, got) = tokio::join!(paced.write_all(&big), reader);
            written.unwrap();
            assert!(got == big);
            paced.flush().await.unwrap();
            paced.shutdown().await.unwrap();
            assert_eq!(peer.read(&mut [0; 1]).await.unwrap(), 0, "the peer sees our end of stream");
            peer.write_all(b"last").await.unwrap();
            drop(peer);
            let mut rest = Vec::new();
            paced.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"last");
        });
    }
}
