//! The outbound buffer: encoded frames waiting to be written, bounded by count
//! and by bytes. When full, the oldest frames are dropped and counted, so a long
//! outage keeps the newest data and reports exactly what it lost.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct OutboundBuffer {
    frames: VecDeque<String>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

/// A frame larger than the whole byte budget can never be buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub frame_bytes: usize,
    pub max_bytes: usize,
}

impl OutboundBuffer {
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        OutboundBuffer { frames: VecDeque::new(), bytes: 0, max_frames: max_frames.max(1), max_bytes: max_bytes.max(1) }
    }

    /// Queues a frame; returns how many older frames were dropped to make room.
    pub fn push(&mut self, frame: String) -> Result<u64, FrameTooLarge> {
        if frame.len() > self.max_bytes {
            return Err(FrameTooLarge { frame_bytes: frame.len(), max_bytes: self.max_bytes });
        }
        let mut dropped = 0;
        while self.frames.len() >= self.max_frames || self.bytes + frame.len() > self.max_bytes {
            let Some(old) = self.frames.pop_front() else { break };
            self.bytes -= old.len();
            dropped += 1;
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        Ok(dropped)
    }

    pub fn pop(&mut self) -> Option<String> {
        let frame = self.frames.pop_front()?;
        self.bytes -= frame.len();
        Some(frame)
    }

    /// Puts back a frame that could not be written, ahead of the rest, so order is
    /// kept; it may push the newest frames over the bound, which are then dropped.
    pub fn push_front(&mut self, frame: String) -> u64 {
        self.bytes += frame.len();
        self.frames.push_front(frame);
        let mut dropped = 0;
        while self.frames.len() > self.max_frames || (self.bytes > self.max_bytes && self.frames.len() > 1) {
            let Some(newest) = self.frames.pop_back() else { break };
            self.bytes -= newest.len();
            dropped += 1;
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> String {
        format!("{n:04}")
    }

    #[test]
    fn keeps_order_and_drops_oldest_by_count() {
        let mut b = OutboundBuffer::new(3, 1000);
        let dropped: u64 = (0..5).map(|n| b.push(frame(n)).unwrap()).sum();
        assert_eq!(dropped, 2);
        let left: Vec<String> = std::iter::from_fn(|| b.pop()).collect();
        assert_eq!(left, vec![frame(2), frame(3), frame(4)]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn drops_oldest_by_bytes() {
        let mut b = OutboundBuffer::new(100, 10);
        assert_eq!(b.push(frame(1)).unwrap(), 0);
        assert_eq!(b.push(frame(2)).unwrap(), 0);
        assert_eq!(b.push(frame(3)).unwrap(), 1);
        assert_eq!((b.len(), b.bytes()), (2, 8));
        assert_eq!(b.push("x".repeat(11)), Err(FrameTooLarge { frame_bytes: 11, max_bytes: 10 }));
        assert_eq!(b.push("y".repeat(10)).unwrap(), 2);
    }

    #[test]
    fn push_front_keeps_order() {
        let mut b = OutboundBuffer::new(2, 100);
        b.push(frame(1)).unwrap();
        b.push(frame(2)).unwrap();
        let first = b.pop().unwrap();
        b.push(frame(3)).unwrap();
        assert_eq!(b.push_front(first), 1);
        assert_eq!(b.pop(), Some(frame(1)));
        assert_eq!(b.pop(), Some(frame(2)));
        assert_eq!(b.pop(), None);
    }
}
