//! Events for the consumer (TD's main thread) and the bounded inbox that holds
//! them. The socket thread never waits for the consumer: when the inbox is full
//! the oldest event is dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::protocol::error::DataNetError;
use crate::protocol::rest::Presence;

/// A message as the consumer sees it: JSON stays text until someone needs the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub from: String,
    pub ts: i64,
    pub body: Body,
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

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(Arc<Message>),
    Connected { conn_id: String },
    Disconnected { reason: String },
    Error(DataNetError),
    SubAck { channel: String, occupancy: Option<u64> },
    Presence { channel: String, result: Result<Presence, DataNetError> },
}

pub struct Inbox {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// An event taken out but not delivered (the caller's buffer was too small):
    /// it goes first next time, so nothing is reordered or lost.
    held: Mutex<Option<Event>>,
    dropped: AtomicU64,
}

impl Inbox {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Inbox { tx, rx, held: Mutex::new(None), dropped: AtomicU64::new(0) }
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
        if let Some(event) = lock(&self.held).take() {
            return Some(event);
        }
        self.rx.try_recv().ok()
    }

    /// As `pop`, waiting up to `timeout` for an event to arrive.
    pub fn pop_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        if let Some(event) = lock(&self.held).take() {
            return Some(event);
        }
        self.rx.recv_timeout(timeout).ok()
    }

    /// Returns an event taken by `pop` that could not be delivered.
    pub fn hold(&self, event: Event) {
        *lock(&self.held) = Some(event);
    }

    pub fn len(&self) -> usize {
        self.rx.len() + usize::from(lock(&self.held).is_some())
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
