//! One connection's queue of frames to write, bounded in bytes: per connection,
//! and for the whole gateway through a shared counter. Publishers push without
//! ever waiting; beyond a bound the oldest frames of that connection are dropped,
//! counted, and reported to it (the session sends a `slow_consumer` notice).
//! Frames are reference-counted, so a frame fanned out to many queues is held once;
//! the byte accounting counts it per queue, which over-states memory, never under.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// A queue that has drained keeps at most this many slots, so a burst long gone
/// does not stay allocated per connection.
const KEEP_SLOTS: usize = 16;

/// Bytes queued across every outbox, against the global bound.
#[derive(Debug)]
pub struct GlobalQueue {
    pub limit: usize,
    bytes: AtomicUsize,
}

impl GlobalQueue {
    pub fn new(limit: usize) -> Self {
        GlobalQueue { limit, bytes: AtomicUsize::new(0) }
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Message>,
    bytes: usize,
    /// Dropped since the connection was last told.
    unreported: u64,
}

pub struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    limit: usize,
    global: Arc<GlobalQueue>,
    dropped: AtomicU64,
}

/// What a push did, for the hub's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub queued: bool,
    pub dropped: u64,
}

impl Outbox {
    pub fn new(limit: usize, global: Arc<GlobalQueue>) -> Self {
        Outbox { queue: Mutex::default(), ready: Notify::new(), limit, global, dropped: AtomicU64::new(0) }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame, dropping this connection's oldest frames to stay within its
    /// bound. A frame that cannot fit (larger than the bound, or over the gateway's
    /// total) is dropped itself.
    pub fn push(&self, frame: &Message) -> Pushed {
        let len = frame.len();
        let mut queue = self.queue();
        let mut dropped = 0;
        let mut queued = false;
        if len <= self.limit {
            while queue.bytes + len > self.limit {
                let Some(oldest) = queue.frames.pop_front() else { break };
                queue.bytes -= oldest.len();
                self.global.bytes.fetch_sub(oldest.len(), Ordering::Relaxed);
                dropped += 1;
            }
            queued = self.global.bytes.load(Ordering::Relaxed) + len <= self.global.limit;
        }
        if queued {
            queue.bytes += len;
            self.global.bytes.fetch_add(len, Ordering::Relaxed);
            queue.frames.push_back(frame.clone());
        } else {
            dropped += 1;
        }
        queue.unreported += dropped;
        drop(queue);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if queued {
            self.ready.notify_one();
        }
        Pushed { queued, dropped }
    }

    /// Moves up to `max` frames into `into`; returns how many this connection lost
    /// since the last call that reported them.
    pub fn take(&self, max: usize, into: &mut Vec<Message>) -> u64 {
        let mut queue = self.queue();
        let count = max.min(queue.frames.len());
        let mut taken = 0;
        for frame in queue.frames.drain(..count) {
            taken += frame.len();
            into.push(frame);
        }
        queue.bytes -= taken;
        self.global.bytes.fetch_sub(taken, Ordering::Relaxed);
        if queue.frames.is_empty() && queue.frames.capacity() > KEEP_SLOTS {
            queue.frames.shrink_to(KEEP_SLOTS);
        }
        std::mem::take(&mut queue.unreported)
    }

    /// Resolves once a frame may be waiting (never misses a push made meanwhile).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    pub fn queued_bytes(&self) -> usize {
        self.queue().bytes
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let bytes = self.queue().bytes;
        self.global.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Message {
        Message::text("x".repeat(len))
    }

    #[test]
    fn bounded_in_bytes_dropping_the_oldest() {
        let global = Arc::new(GlobalQueue::new(1 << 20));
        let outbox = Outbox::new(100, global.clone());
        for n in 0..10 {
            assert!(outbox.push(&Message::text(format!("{n:0>30}"))).queued);
        }
        assert_eq!(outbox.queued_bytes(), 90);
        assert_eq!(outbox.dropped(), 7);
        assert_eq!(global.bytes(), 90);
        let mut frames = Vec::new();
        assert_eq!(outbox.take(100, &mut frames), 7);
        let kept: Vec<String> = frames.iter().map(|f| f.to_text().unwrap()[29..].to_string()).collect();
        assert_eq!(kept, ["7", "8", "9"]);
        assert_eq!((outbox.queued_bytes(), global.bytes()), (0, 0));
        assert_eq!(outbox.take(100, &mut frames), 0, "reported once");
    }

    #[test]
    fn a_frame_over_the_bound_is_dropped_itself() {
        let global = Arc::new(GlobalQueue::new(1 << 20));
        let outbox = Outbox::new(100, global);
        assert!(outbox.push(&text(10)).queued);
        assert_eq!(outbox.push(&text(101)), Pushed { queued: false, dropped: 1 });
        assert_eq!(outbox.queued_bytes(), 10, "the queue is left as it was");
    }

    #[test]
    fn the_global_bound_holds_across_queues_and_returns_on_drop() {
        let global = Arc::new(GlobalQueue::new(50));
        let first = Outbox::new(100, global.clone());
        let second = Outbox::new(100, global.clone());
        assert!(first.push(&text(40)).queued);
        assert_eq!(second.push(&text(20)), Pushed { queued: false, dropped: 1 });
        assert!(second.push(&text(10)).queued);
        drop(first);
        assert_eq!(global.bytes(), 10);
        assert!(second.push(&text(30)).queued);
    }
}
