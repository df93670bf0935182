//! Events for the consumer (TD's main thread) and the bounded inbox that holds
//! them. The socket thread never waits for the consumer: when the inbox is full
//! the oldest event is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::protocol::error::DataNetError;
use crate::protocol::pickle::Pickled;
use crate::protocol::rest::Presence;

/// A message as the consumer sees it: JSON stays the gateway's own text (the `d`
/// value's bytes) until someone needs the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub from: String,
    pub ts: i64,
    pub body: Body,
    /// A JSON message already written as a pickle (`protocol::pickle::write_message`)
    /// on the socket thread, once the host polls for pickles: the poll then only
    /// copies it.
    pub pickled: Option<Pickled>,
}

impl Message {
    pub fn json(channel: &str, from: &str, ts: i64, text: &str) -> Message {
        Message { channel: channel.into(), from: from.into(), ts, body: Body::Json(text.into()), pickled: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(String),
    /// `meta` is JSON object text. `raw` marks a raw binary frame from an older
    /// gateway: it has no channel and goes to every binary subscriber.
    Binary {
        data: Vec<u8>,
        content_type: String,
        meta: Option<String>,
        raw: bool,
    },
}

/// The rare, large payloads are boxed: every event is moved through the inbox's
/// slots and a poll's lists, and at 208 bytes (an unboxed error) each message's
/// event cost a poll over three cache lines written on the other core; boxed, 48.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(Arc<Message>),
    Connected { conn_id: String },
    Disconnected { reason: String },
    Error(Box<DataNetError>),
    SubAck { channel: String, occupancy: Option<u64> },
    Presence { channel: String, result: Box<Result<Presence, DataNetError>> },
}

pub struct Inbox {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Events taken out but not delivered (the caller's buffer was too small): they
    /// go first next time, so nothing is reordered or lost, even when two threads
    /// poll at once.
    held: Mutex<VecDeque<Event>>,
    /// `held.len()`, readable without the lock: the poll path looks at it every frame.
    held_count: AtomicUsize,
    dropped: AtomicU64,
    /// Events a poll has finished with, freed on the socket thread (`free_retired`).
    retired: Mutex<Vec<Event>>,
    /// `retired.len()`, readable without the lock.
    retired_count: AtomicUsize,
}

/// Retired events kept for the socket thread to free; past this a poll frees its
/// own (the socket thread is stuck or gone).
const RETIRED_MAX: usize = 16_384;

impl Inbox {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Inbox {
            tx,
            rx,
            held: Mutex::new(VecDeque::new()),
            held_count: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            retired: Mutex::new(Vec::new()),
            retired_count: AtomicUsize::new(0),
        }
    }

    /// Takes the events a poll is done with, so that freeing them happens on the
    /// socket thread that allocated them: each free touched memory last written on
    /// the other core. Measured at 10,000 msg/s: `dn_poll` took ~100 µs a frame
    /// freeing them itself, ~75 µs handing them over.
    pub fn retire(&self, events: &mut Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut retired = lock(&self.retired);
        if retired.len() < RETIRED_MAX {
            retired.append(events);
            self.retired_count.store(retired.len(), Ordering::Release);
        }
        drop(retired);
        events.clear();
    }

    /// Frees what polls retired; the socket thread calls it as it goes. `spare`
    /// keeps the allocation between calls.
    pub fn free_retired(&self, spare: &mut Vec<Event>) {
        if self.retired_count.load(Ordering::Acquire) == 0 {
            return;
        }
        {
            let mut retired = lock(&self.retired);
            std::mem::swap(&mut *retired, spare);
            self.retired_count.store(0, Ordering::Release);
        }
        spare.clear();
    }

    /// Adds an event, dropping (and counting) the oldest when full. Never blocks.
    pub fn push(&self, event: Event) {
        let mut event = event;
        loop {
            match self.tx.try_send(event) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    if self.rx.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    event = back;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    pub fn pop(&self) -> Option<Event> {
        self.pop_held().or_else(|| self.rx.try_recv().ok())
    }

    /// An event given back by `hold`, if any (no lock when there is none).
    fn pop_held(&self) -> Option<Event> {
        if self.held_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut held = lock(&self.held);
        let event = held.pop_front();
        self.held_count.store(held.len(), Ordering::Release);
        event
    }

    /// As `pop`, waiting up to `timeout` for an event to arrive.
    pub fn pop_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.pop_held().or_else(|| self.rx.recv_timeout(timeout).ok())
    }

    /// Returns an event taken by `pop` that could not be delivered.
    pub fn hold(&self, event: Event) {
        let mut held = lock(&self.held);
        held.push_front(event);
        self.held_count.store(held.len(), Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.rx.len() + self.held_count.load(Ordering::Acquire)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The newest message of each channel delivered as `Latest`, waiting for the next
/// poll, in the order the channels first had one. Bounded by the channels
/// subscribed that way.
#[derive(Default)]
pub struct LatestSlots {
    pending: Vec<Pending>,
    index: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub message: Arc<Message>,
    /// Older messages of the channel this one replaced since the last poll.
    pub replaced: u32,
}

impl LatestSlots {
    /// Keeps `message` as its channel's newest; true when it replaced one.
    pub fn offer(&mut self, message: Arc<Message>) -> bool {
        match self.index.get(&message.channel) {
            Some(&at) => {
                let slot = &mut self.pending[at];
                slot.replaced = slot.replaced.saturating_add(1);
                slot.message = message;
                true
            }
            None => {
                self.index.insert(message.channel.clone(), self.pending.len());
                self.pending.push(Pending { message, replaced: 0 });
                false
            }
        }
    }

    pub fn take_all(&mut self) -> Vec<Pending> {
        self.index.clear();
        std::mem::take(&mut self.pending)
    }

    /// Returns a taken entry that could not be delivered. A newer message of the
    /// same channel that arrived meanwhile wins and counts this one as replaced.
    pub fn give_back(&mut self, entry: Pending) {
        match self.index.get(&entry.message.channel) {
            Some(&at) => {
                let slot = &mut self.pending[at];
                slot.replaced = slot.replaced.saturating_add(entry.replaced).saturating_add(1);
            }
            None => {
                self.index.insert(entry.message.channel.clone(), self.pending.len());
                self.pending.push(entry);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// critical section here leaves its data consistent, and a show must go on.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> Event {
        Event::Connected { conn_id: n.to_string() }
    }

    #[test]
    fn an_event_stays_small() {
        // Every message's event moves through the inbox and a poll's lists; a
        // large variant inline would make each of them as large.
        assert!(std::mem::size_of::<Event>() <= 48, "{} bytes", std::mem::size_of::<Event>());
    }

    #[test]
    fn retired_events_wait_for_the_socket_thread_up_to_a_bound() {
        let inbox = Inbox::new(4);
        let message = Arc::new(Message::json("c", "f", 1, "1"));
        let mut delivered: Vec<Event> = (0..RETIRED_MAX).map(|_| Event::Message(message.clone())).collect();
        inbox.retire(&mut delivered);
        assert!(delivered.is_empty());
        assert_eq!(Arc::strong_count(&message), RETIRED_MAX + 1, "kept for the socket thread");
        let mut more = vec![Event::Message(message.clone())];
        inbox.retire(&mut more);
        assert!(more.is_empty());
        assert_eq!(Arc::strong_count(&message), RETIRED_MAX + 1, "past the bound a poll frees its own");
        let mut spare = Vec::new();
        inbox.free_retired(&mut spare);
        assert_eq!(Arc::strong_count(&message), 1, "the socket thread freed them");
        assert!(spare.is_empty() && spare.capacity() >= RETIRED_MAX, "its buffer kept for next time");
    }

    #[test]
    fn drops_oldest_and_counts_exactly() {
        let inbox = Inbox::new(3);
        for n in 0..10 {
            inbox.push(ev(n));
        }
        assert_eq!(inbox.dropped(), 7);
        assert_eq!(inbox.len(), 3);
        let got: Vec<Event> = std::iter::from_fn(|| inbox.pop()).collect();
        assert_eq!(got, vec![ev(7), ev(8), ev(9)]);
    }

    fn message(channel: &str, n: i64) -> Arc<Message> {
        Arc::new(Message::json(channel, "", n, &n.to_string()))
    }

    #[test]
    fn latest_keeps_the_newest_per_channel_and_counts_the_rest() {
        let mut slots = LatestSlots::default();
        assert!(!slots.offer(message("a", 1)));
        assert!(!slots.offer(message("b", 2)));
        assert!(slots.offer(message("a", 3)));
        assert!(slots.offer(message("a", 4)));
        let taken = slots.take_all();
        assert_eq!(taken.iter().map(|p| (p.message.ts, p.replaced)).collect::<Vec<_>>(), vec![(4, 2), (2, 0)]);
        assert_eq!(slots.len(), 0);
        slots.offer(message("a", 5));
        let mut taken = taken.into_iter();
        slots.give_back(taken.next().unwrap());
        slots.give_back(taken.next().unwrap());
        let again = slots.take_all();
        assert_eq!(again.iter().map(|p| (p.message.ts, p.replaced)).collect::<Vec<_>>(), vec![(5, 3), (2, 0)]);
    }

    #[test]
    fn held_event_comes_first() {
        let inbox = Inbox::new(4);
        inbox.push(ev(1));
        inbox.push(ev(2));
        let first = inbox.pop().unwrap();
        inbox.hold(first);
        assert_eq!(inbox.len(), 2);
        assert_eq!(inbox.pop(), Some(ev(1)));
        assert_eq!(inbox.pop(), Some(ev(2)));
        assert_eq!(inbox.pop(), None);
    }
}
