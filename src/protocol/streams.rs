//! Streams: publishing a channel's latest value at a capped rate. A TouchDesigner
//! project offers a value every frame (60 fps); each channel sends at most
//! `max_hz` frames per second and always the newest value, so a lighting desk's
//! 44 Hz never floods the gateway. Values replaced before they were sent are
//! counted as coalesced. Art-Net packets are built when sent, so the Sequence
//! field advances once per packet on the wire.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::envelope::{encode_publish_binary, encode_publish_json};
use super::lighting::{build_art_dmx_packet, ArtDmxHeader, CONTENT_ARTNET, CONTENT_DMX};

/// Upper bound on distinct streamed channels, so the map stays bounded.
pub(crate) const MAX_STREAMS: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum StreamPayload {
    /// Validated JSON text.
    Json(String),
    Dmx {
        frame: Vec<u8>,
        /// Metadata as JSON object text, sent as given.
        meta: Option<String>,
    },
    /// `header.sequence` is ignored: the stream numbers its packets.
    ArtNet {
        dmx: Vec<u8>,
        header: ArtDmxHeader,
        /// Metadata as JSON object text, sent as given.
        meta: Option<String>,
    },
}

#[derive(Debug)]
struct Stream {
    pending: Option<StreamPayload>,
    interval: Duration,
    last_sent: Option<Instant>,
    /// Art-Net Sequence of the last packet sent; 1..=255, 0 before the first.
    sequence: u8,
}

impl Stream {
    fn due_at(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        Some(self.last_sent.map_or_else(Instant::now, |sent| sent + self.interval))
    }
}

/// Offering to more than `MAX_STREAMS` channels is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyStreams;

#[derive(Debug, Default)]
pub struct Streams {
    streams: BTreeMap<String, Stream>,
    coalesced: u64,
}

impl Streams {
    /// Sets the channel's latest value; `max_hz` <= 0 means no cap. Returns true
    /// when it replaced a value that was never sent.
    pub fn offer(&mut self, channel: &str, payload: StreamPayload, max_hz: f64) -> Result<bool, TooManyStreams> {
        if !self.streams.contains_key(channel) && self.streams.len() >= MAX_STREAMS {
            return Err(TooManyStreams);
        }
        let interval =
            if max_hz.is_finite() && max_hz > 0.0 { Duration::from_secs_f64(1.0 / max_hz) } else { Duration::ZERO };
        let stream = self.streams.entry(channel.to_string()).or_insert(Stream {
            pending: None,
            interval,
            last_sent: None,
            sequence: 0,
        });
        stream.interval = interval;
        let replaced = stream.pending.replace(payload).is_some();
        if replaced {
            self.coalesced += 1;
        }
        Ok(replaced)
    }

    /// Encodes and takes every value that is due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut frames = Vec::new();
        for (channel, stream) in &mut self.streams {
            let due = stream.last_sent.is_none_or(|sent| now >= sent + stream.interval);
            if !due {
                continue;
            }
            let Some(payload) = stream.pending.take() else { continue };
            stream.last_sent = Some(now);
            frames.push(match payload {
                StreamPayload::Json(text) => {
                    encode_publish_json(channel, &text).unwrap_or_else(|_| unreachable!("validated at offer"))
                }
                StreamPayload::Dmx { frame, meta } => {
                    encode_publish_binary(channel, &frame, CONTENT_DMX, meta.as_deref())
                }
                StreamPayload::ArtNet { dmx, header, meta } => {
                    stream.sequence = if stream.sequence == 255 { 1 } else { stream.sequence + 1 };
                    let packet = build_art_dmx_packet(&dmx, ArtDmxHeader { sequence: stream.sequence, ..header });
                    encode_publish_binary(channel, &packet, CONTENT_ARTNET, meta.as_deref())
                }
            });
        }
        frames
    }

    /// When the next waiting value becomes due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.streams.values().filter_map(Stream::due_at).min()
    }

    pub fn pending(&self) -> usize {
        self.streams.values().filter(|s| s.pending.is_some()).count()
    }

    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lighting::decode_art_dmx;
    use serde_json::Value;

    fn json(n: u32) -> StreamPayload {
        StreamPayload::Json(n.to_string())
    }

    #[test]
    fn caps_the_rate_and_keeps_the_newest() {
        let mut s = Streams::default();
        let t0 = Instant::now();
        assert!(!s.offer("a", json(1), 10.0).unwrap());
        assert_eq!(s.take_due(t0), vec![r#"{"op":"pub","ch":"a","d":1}"#.to_string()]);
        assert!(!s.offer("a", json(2), 10.0).unwrap());
        assert!(s.offer("a", json(3), 10.0).unwrap(), "2 was never sent");
        assert!(s.take_due(t0 + Duration::from_millis(50)).is_empty(), "100 ms between frames at 10 Hz");
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(s.take_due(t0 + Duration::from_millis(100)), vec![r#"{"op":"pub","ch":"a","d":3}"#.to_string()]);
        assert_eq!((s.coalesced(), s.pending(), s.next_due()), (1, 0, None));
    }

    #[test]
    fn sixty_offers_a_second_send_at_max_hz_when_woken_on_time() {
        // The connection task drains at every offer (60 fps) and when next_due() comes.
        let mut s = Streams::default();
        let t0 = Instant::now();
        let frame = Duration::from_micros(16_667);
        let mut sent = Vec::new();
        let mut offered = 0u64;
        let mut now = t0;
        let end = t0 + Duration::from_secs(10);
        let mut next_frame = t0;
        while now < end {
            if now >= next_frame {
                s.offer("dmx", json(offered as u32), 44.0).unwrap();
                offered += 1;
                next_frame += frame;
            }
            sent.extend(s.take_due(now).into_iter().map(|_| now));
            now = s.next_due().map_or(next_frame, |due| due.min(next_frame));
        }
        let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= Duration::from_micros(22_700)), "never faster than 44 Hz");
        assert!((435..=441).contains(&sent.len()), "44 Hz for 10 s, got {}", sent.len());
        assert_eq!(s.coalesced() + sent.len() as u64 + s.pending() as u64, offered, "every offer accounted for");
    }

    #[test]
    fn art_net_sequence_advances_per_packet_and_skips_zero() {
        let mut s = Streams::default();
        let t0 = Instant::now();
        let mut sequences = Vec::new();
        for n in 0..257u64 {
            let header = ArtDmxHeader::clamped(1, 0, 0, 99, 0);
            s.offer("art", StreamPayload::ArtNet { dmx: vec![1, 2], header, meta: None }, 0.0).unwrap();
            let frames = s.take_due(t0 + Duration::from_millis(n));
            let envelope: Value = serde_json::from_str(&frames[0]).unwrap();
            let packet = crate::protocol::base64::decode(envelope["b64"].as_str().unwrap()).unwrap();
            sequences.push(decode_art_dmx(&packet).unwrap().header.sequence);
        }
        assert_eq!(&sequences[..3], &[1, 2, 3]);
        assert_eq!(&sequences[253..], &[254, 255, 1, 2]);
    }

    #[test]
    fn bounded_number_of_streams() {
        let mut s = Streams::default();
        for n in 0..MAX_STREAMS {
            s.offer(&n.to_string(), json(0), 1.0).unwrap();
        }
        assert_eq!(s.offer("one more", json(0), 1.0), Err(TooManyStreams));
        assert!(s.offer("0", json(1), 1.0).is_ok(), "existing channels still accept values");
    }
}
