//! JSON messages as a Python pickle (protocol 4, data opcodes only), for hosts
//! written in Python: `pickle.loads` builds the objects about four times faster
//! than `json.loads` builds the same ones from text, because numbers arrive as
//! binary doubles and integers.
//!
//! A batch is the list `[(channel, from, ts, data, replaced), ...]` in one frame:
//! a tuple per message, one allocation where a list takes two (measured: a
//! 167-message batch loads ~12% faster).
//! Each message is written on its own (`write_message`, then `end_message` with its
//! `replaced` count), so the socket thread can write it when the message arrives
//! and a poll only copies bytes. Memo slots (BINPUT/BINGET, explicit one-byte
//! indices) come in two kinds:
//! - a message's own, 0 to 63, for keys it repeats: the next message overwrites
//!   them, so messages written apart never depend on each other;
//! - shared, 64 to 255, for strings many messages repeat (channels, senders,
//!   keys), fixed for the client's life (`SharedStrings`). Each written message
//!   says which it reads (`SlotsUsed`), and a batch defines those before the first
//!   message that reads them (`define_slots`), so Python makes each such string
//!   once per batch, not once per message.
//!
//! The values are exactly what Python's `json.loads` makes of the same text: ints
//! for integer literals (of any size: beyond 64 bits as a LONG opcode), floats for
//! the rest (Rust and CPython both round correctly), str with JSON escapes resolved
//! (a lone surrogate escape kept as Python keeps it), True/False/None, list, dict
//! (a repeated key: the last one wins). Only list, tuple, dict, str, int, float,
//! bool and None opcodes are written, never one that imports or calls anything.
//!
//! The input is text the envelope decoder already validated as JSON, read with the
//! same walker as the numeric flattening (`json_walk`); a malformed value here
//! would be a bug: the caller then delivers that message as plain JSON instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::protocol::json_walk::{is_integer, number_value, walk, Scalar, Visitor};

const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const EMPTY_LIST: u8 = b']';
const APPENDS: u8 = b'e';
const TUPLE: u8 = b't';
const EMPTY_DICT: u8 = b'}';
const SETITEMS: u8 = b'u';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const BINFLOAT: u8 = b'G';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const BINPUT: u8 = b'q';
const POP_MARK: u8 = b'1';
const BINGET: u8 = b'h';

/// Python refuses to turn longer digit strings into an int (`sys.int_info`,
/// default limit 4300); such a literal is written as the nearest float instead.
const MAX_INT_DIGITS: usize = 4300;
/// Distinct keys a message shares through the memo; later ones are written in
/// full (keeps the memo search short and its slots within BINPUT's one byte).
const MEMO_SLOTS: usize = 64;
/// The shared slots follow a message's own.
const SHARED_BASE: usize = MEMO_SLOTS;
const SHARED_MAX: usize = 256 - SHARED_BASE;
/// Longer strings are not worth a slot for the client's life.
const SHARED_MAX_LEN: usize = 64;

pub use crate::protocol::json_walk::NotJson;

/// Bytes `open_batch` writes: PROTO 4, FRAME and its length, the outer list.
pub(crate) const OPEN_LEN: usize = 13;
/// Bytes `close_batch` adds.
pub(crate) const CLOSE_LEN: usize = 2;

/// Starts a batch at the end of `out`; returns where it starts, for `close_batch`.
/// The batch is one pickle frame: an unpickler reading from a file takes a framed
/// pickle in one read, and an unframed one an opcode per read (measured: 51
/// against 15 µs for 17 messages through `io.BytesIO`).
pub fn open_batch(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[PROTO, 4, FRAME]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[EMPTY_LIST, MARK]);
    start
}

/// Ends the batch that `open_batch` started at `start`.
pub fn close_batch(out: &mut Vec<u8>, start: usize) {
    out.extend_from_slice(&[APPENDS, STOP]);
    let framed = (out.len() - start - 11) as u64;
    out[start + 3..start + 11].copy_from_slice(&framed.to_le_bytes());
}

/// Which shared slots a written message reads, a bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotsUsed([u64; 3]);

impl SlotsUsed {
    fn insert(&mut self, slot: u8) {
        let bit = usize::from(slot) - SHARED_BASE;
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// The slots of `self` not in `known`.
    pub fn missing_from(&self, known: &SlotsUsed) -> SlotsUsed {
        SlotsUsed([self.0[0] & !known.0[0], self.0[1] & !known.0[1], self.0[2] & !known.0[2]])
    }

    pub fn add(&mut self, other: &SlotsUsed) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine |= theirs;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 3]
    }

    fn slots(&self) -> impl Iterator<Item = u8> + '_ {
        (0..SHARED_MAX).filter(|bit| self.0[bit / 64] & (1 << (bit % 64)) != 0).map(|bit| (bit + SHARED_BASE) as u8)
    }
}

/// A message written on arrival, with the shared slots it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Pickled {
    pub bytes: Box<[u8]>,
    pub slots: SlotsUsed,
}

/// The shared strings of one client: first come, first kept, up to 192 of at most
/// 64 bytes; the rest are written in each message. Measured: a batch of 167
/// 8-field messages loads in 75 µs with its channels, sender and keys shared, 110
/// without.
#[derive(Default)]
pub struct SharedStrings {
    strings: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, u8, BuildHasherDefault<FnvHasher>>,
}

impl SharedStrings {
    /// The slot of `text`, given one if there is room.
    fn slot(&mut self, text: &[u8]) -> Option<u8> {
        if let Some(&slot) = self.index.get(text) {
            return Some(slot);
        }
        if self.strings.len() >= SHARED_MAX || text.len() > SHARED_MAX_LEN {
            return None;
        }
        let slot = (SHARED_BASE + self.strings.len()) as u8;
        self.strings.push(text.into());
        self.index.insert(text.into(), slot);
        Some(slot)
    }
}

/// Defines the shared slots in `slots` (inside a batch, before the first message
/// that reads them): each string put in its slot, then taken off the stack.
pub fn define_slots(out: &mut Vec<u8>, strings: &SharedStrings, slots: &SlotsUsed) {
    out.push(MARK);
    for slot in slots.slots() {
        write_str(out, &strings.strings[usize::from(slot) - SHARED_BASE]);
        out.extend_from_slice(&[BINPUT, slot]);
    }
    out.push(POP_MARK);
}

/// Keys of the message being written that are in the memo: (hash, where the
/// key's bytes are in the output, their length). The slot is the position.
#[derive(Default)]
pub struct Memo(Vec<(u64, usize, usize)>);

/// Writes `(channel, from, ts, data` of one message, the tuple left open for
/// `end_message`; strings in `shared` (or given a slot there now) are read from
/// their slots, which the result lists. On error `out` is as it was.
pub fn write_message(
    out: &mut Vec<u8>,
    memo: &mut Memo,
    shared: Option<&mut SharedStrings>,
    channel: &str,
    from: &str,
    ts: i64,
    json: &str,
) -> Result<SlotsUsed, NotJson> {
    let start = out.len();
    memo.0.clear();
    out.push(MARK);
    let mut opcodes = Opcodes { out, memo, shared, used: SlotsUsed::default(), bad_number: false };
    opcodes.shared_or_inline(channel.as_bytes());
    opcodes.shared_or_inline(from.as_bytes());
    write_int(opcodes.out, ts);
    let walked = walk(json, &mut opcodes);
    let (used, bad_number) = (opcodes.used, opcodes.bad_number);
    if walked.is_err() || bad_number || !only_data_opcodes(&out[start..]) {
        out.truncate(start);
        return Err(NotJson);
    }
    Ok(used)
}

/// Ends a message begun by `write_message` (or copied from one) with its count of
/// replaced messages.
pub fn end_message(out: &mut Vec<u8>, replaced: u32) {
    write_int(out, i64::from(replaced));
    out.push(TUPLE);
}

/// Whether `bytes` holds only the opcodes this module writes, each whole: the
/// check that lets a Python host read a batch with plain `pickle.loads`, which
/// would import and call whatever a GLOBAL or REDUCE opcode names. It parses the
/// way an unpickler does (opcode, then its argument's length) and shares no code
/// with the writer, so a writer bug that puts text where an opcode is read is
/// caught here, on the socket thread, before any host sees the bytes.
pub fn only_data_opcodes(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        let opcode = bytes[at];
        at += 1;
        let fixed = match opcode {
            EMPTY_LIST | MARK | POP_MARK | APPENDS | TUPLE | EMPTY_DICT | SETITEMS | NONE | NEWTRUE | NEWFALSE
            | STOP => 0,
            BININT1 | BINPUT | BINGET | PROTO => 1,
            BININT2 => 2,
            BININT => 4,
            BINFLOAT | FRAME => 8,
            SHORT_BINUNICODE | LONG1 => match bytes.get(at) {
                Some(&len) => 1 + usize::from(len),
                None => return false,
            },
            BINUNICODE | LONG4 => match bytes.get(at..at + 4) {
                Some(len) => 4 + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
                None => return false,
            },
            _ => return false,
        };
        at += fixed;
    }
    at == bytes.len()
}

/// FNV-1a: memo keys are short strings where a keyed hash buys nothing.
fn fnv(bytes: &[u8]) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The opcodes of one JSON value.
struct Opcodes<'b> {
    out: &'b mut Vec<u8>,
    memo: &'b mut Memo,
    shared: Option<&'b mut SharedStrings>,
    used: SlotsUsed,
    bad_number: bool,
}

impl Opcodes<'_> {
    /// A string from its shared slot; `false` if it has none.
    fn write_shared(&mut self, text: &[u8]) -> bool {
        let Some(slot) = self.shared.as_mut().and_then(|shared| shared.slot(text)) else { return false };
        self.out.extend_from_slice(&[BINGET, slot]);
        self.used.insert(slot);
        true
    }

    fn shared_or_inline(&mut self, text: &[u8]) {
        if !self.write_shared(text) {
            write_str(self.out, text);
        }
    }

    /// A key: from a shared slot, or from this message's memo once it wrote it.
    fn key_str(&mut self, key: &[u8]) {
        if self.write_shared(key) {
            return;
        }
        let hash = fnv(key);
        let out = &mut *self.out;
        let found = self.memo.0.iter().position(|&(h, at, len)| h == hash && &out[at..at + len] == key);
        if let Some(slot) = found {
            out.extend_from_slice(&[BINGET, slot as u8]);
            return;
        }
        write_str(out, key);
        if self.memo.0.len() < MEMO_SLOTS {
            let slot = self.memo.0.len();
            self.memo.0.push((hash, out.len() - key.len(), key.len()));
            out.extend_from_slice(&[BINPUT, slot as u8]);
        }
    }
}

impl Visitor for Opcodes<'_> {
    fn scalar(&mut self, value: Scalar<'_>) {
        let out = &mut *self.out;
        match value {
            Scalar::Null => out.push(NONE),
            Scalar::Bool(true) => out.push(NEWTRUE),
            Scalar::Bool(false) => out.push(NEWFALSE),
            Scalar::String(text) => write_str(out, text),
            Scalar::Number(token) if is_integer(token) && token.trim_start_matches('-').len() <= MAX_INT_DIGITS => {
                match token.parse::<i64>() {
                    Ok(n) => write_int(out, n),
                    Err(_) => self.bad_number |= write_big_int(out, token).is_err(),
                }
            }
            Scalar::Number(token) => match number_value(token) {
                Some(value) => {
                    out.push(BINFLOAT);
                    out.extend_from_slice(&value.to_be_bytes());
                }
                None => self.bad_number = true,
            },
        }
    }

    fn begin_object(&mut self) {
        self.out.extend_from_slice(&[EMPTY_DICT, MARK]);
    }

    fn key(&mut self, key: &[u8]) {
        self.key_str(key);
    }

    fn end_object(&mut self) {
        // SETITEMS after a bare MARK adds nothing: an empty dict stays empty.
        self.out.push(SETITEMS);
    }

    fn begin_array(&mut self) {
        self.out.extend_from_slice(&[EMPTY_LIST, MARK]);
    }

    fn element(&mut self, _index: usize) {}

    fn end_array(&mut self) {
        self.out.push(APPENDS);
    }
}

fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend_from_slice(&[SHORT_BINUNICODE, len]),
        Err(_) => {
            out.push(BINUNICODE);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    if (0..=0xff).contains(&n) {
        out.extend_from_slice(&[BININT1, n as u8]);
    } else if (0..=0xffff).contains(&n) {
        out.push(BININT2);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if let Ok(small) = i32::try_from(n) {
        out.push(BININT);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        let bytes = n.to_le_bytes();
        // The shortest two's complement form, as pickle writes it.
        let mut len = 8;
        while len > 1 {
            let top = bytes[len - 1];
            let next_sign = bytes[len - 2] & 0x80;
            if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                len -= 1;
            } else {
                break;
            }
        }
        out.extend_from_slice(&[LONG1, len as u8]);
        out.extend_from_slice(&bytes[..len]);
    }
}

/// An integer literal beyond 64 bits, as little-endian two's complement bytes.
fn write_big_int(out: &mut Vec<u8>, token: &str) -> Result<(), NotJson> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    // Magnitude in base 2^32, little-endian limbs.
    let mut limbs: Vec<u32> = vec![0];
    for digit in digits.bytes() {
        if !digit.is_ascii_digit() {
            return Err(NotJson);
        }
        let mut carry = u64::from(digit - b'0');
        for limb in limbs.iter_mut() {
            let product = u64::from(*limb) * 10 + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|limb| limb.to_le_bytes()).collect();
    if negative {
        let mut carry = true;
        for byte in bytes.iter_mut() {
            let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = overflow;
        }
    }
    // Room for the sign bit, then the shortest form.
    let fill = if negative { 0xff } else { 0 };
    if bytes.last().is_some_and(|&top| (top & 0x80 != 0) != negative) {
        bytes.push(fill);
    }
    while bytes.len() > 1 && bytes[bytes.len() - 1] == fill && (bytes[bytes.len() - 2] & 0x80 != 0) == negative {
        bytes.pop();
    }
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend_from_slice(&[LONG1, len]),
        Err(_) => {
            out.push(LONG4);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(&bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(messages: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut memo = Memo::default();
        let start = open_batch(&mut out);
        assert_eq!(out.len(), OPEN_LEN);
        for (n, (channel, json)) in messages.iter().enumerate() {
            write_message(&mut out, &mut memo, None, channel, "f", 5 + n as i64, json).unwrap();
            end_message(&mut out, 1);
        }
        close_batch(&mut out, start);
        out
    }

    fn pickle_of(json: &str) -> Vec<u8> {
        batch_of(&[("c", json)])
    }

    /// The bytes of `data` inside a one-message batch.
    fn data_of(json: &str) -> Vec<u8> {
        let all = pickle_of(json);
        // PROTO 4, FRAME covering the rest, ], (, (, "c", "f", 5
        let framed = (all.len() - 11) as u64;
        let mut head = vec![PROTO, 4, FRAME];
        head.extend_from_slice(&framed.to_le_bytes());
        head.extend_from_slice(&[EMPTY_LIST, MARK, MARK, SHORT_BINUNICODE, 1, b'c']);
        assert_eq!(&all[..head.len()], &head[..]);
        let tail = [BININT1, 1, TUPLE, APPENDS, STOP];
        assert_eq!(&all[all.len() - tail.len()..], &tail);
        let rest = &all[head.len()..all.len() - tail.len()];
        let after_from = [SHORT_BINUNICODE, 1, b'f', BININT1, 5];
        assert_eq!(&rest[..after_from.len()], &after_from);
        rest[after_from.len()..].to_vec()
    }

    #[test]
    fn scalars() {
        assert_eq!(data_of("null"), vec![NONE]);
        assert_eq!(data_of(" true "), vec![NEWTRUE]);
        assert_eq!(data_of("false"), vec![NEWFALSE]);
        assert_eq!(data_of("7"), vec![BININT1, 7]);
        assert_eq!(data_of("300"), vec![BININT2, 0x2c, 0x01]);
        assert_eq!(data_of("-1"), vec![BININT, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(data_of("4294967296"), vec![LONG1, 5, 0, 0, 0, 0, 1]);
        assert_eq!(data_of("-9223372036854775808"), vec![LONG1, 8, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        let mut float = vec![BINFLOAT];
        float.extend_from_slice(&0.001f64.to_be_bytes());
        assert_eq!(data_of("1e-3"), float);
        let mut whole = vec![BINFLOAT];
        whole.extend_from_slice(&1.0f64.to_be_bytes());
        assert_eq!(data_of("1.0"), whole, "a literal with a dot is a float, as in json.loads");
        assert_eq!(data_of(r#""é\n""#), vec![SHORT_BINUNICODE, 3, 0xc3, 0xa9, b'\n']);
    }

    #[test]
    fn big_integers_are_exact() {
        // The bytes Python's pickle.dumps(n, 4) writes for these.
        assert_eq!(
            data_of("12345678901234567890123"),
            vec![LONG1, 10, 0xcb, 0x44, 0x42, 0x71, 0x76, 0x4e, 0xb6, 0x42, 0x9d, 0x02]
        );
        assert_eq!(
            data_of("-12345678901234567890123"),
            vec![LONG1, 10, 0x35, 0xbb, 0xbd, 0x8e, 0x89, 0xb1, 0x49, 0xbd, 0x62, 0xfd]
        );
        assert_eq!(data_of("18446744073709551615"), vec![LONG1, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        let huge = "9".repeat(MAX_INT_DIGITS + 1);
        let mut inf = vec![BINFLOAT];
        inf.extend_from_slice(&f64::INFINITY.to_be_bytes());
        assert_eq!(data_of(&huge), inf, "beyond Python's digit limit: the nearest float");
    }

    #[test]
    fn a_message_shares_its_keys_through_slots_of_its_own() {
        let out = batch_of(&[("c", r#"{"k": [1, {"k": 0}], "j": {}, "k": []}"#), ("c", r#"{"j":2}"#)]);
        let first_key = [EMPTY_DICT, MARK, SHORT_BINUNICODE, 1, b'k', BINPUT, 0];
        assert!(out.windows(first_key.len()).any(|w| w == first_key), "slot 0 holds the first key");
        assert!(out.windows(4).any(|w| w == [EMPTY_DICT, MARK, BINGET, 0]), "the inner dict's key comes from slot 0");
        let second_message_key = [EMPTY_DICT, MARK, SHORT_BINUNICODE, 1, b'j', BINPUT, 0];
        assert!(out.windows(7).any(|w| w == second_message_key), "the next message numbers its slots from 0 again");
        assert_eq!(out.iter().filter(|&&b| b == BINGET).count(), 2, "k inside, k again: j is new in each message");
    }

    #[test]
    fn shared_strings_are_defined_once_per_batch_before_their_first_reader() {
        let mut strings = SharedStrings::default();
        let mut memo = Memo::default();
        let mut parts = Vec::new();
        for (channel, json) in [("ch", r#"{"k":1}"#), ("ch", r#"{"k":2,"j":3}"#)] {
            let mut part = Vec::new();
            let slots = write_message(&mut part, &mut memo, Some(&mut strings), channel, "c-1", 7, json).unwrap();
            parts.push((part, slots));
        }
        assert_eq!(&parts[0].0[..3], &[MARK, BINGET, 64], "the channel reads slot 64");
        let mut out = Vec::new();
        let start = open_batch(&mut out);
        let mut defined = SlotsUsed::default();
        for (part, slots) in &parts {
            let missing = slots.missing_from(&defined);
            if !missing.is_empty() {
                define_slots(&mut out, &strings, &missing);
            }
            defined.add(&missing);
            out.extend_from_slice(part);
            end_message(&mut out, 0);
        }
        close_batch(&mut out, start);
        assert!(only_data_opcodes(&out));
        let define = |text: &[u8], slot: u8| {
            let mut bytes = vec![SHORT_BINUNICODE, text.len() as u8];
            bytes.extend_from_slice(text);
            bytes.extend_from_slice(&[BINPUT, slot]);
            bytes
        };
        let mut first = vec![MARK];
        for (text, slot) in [(&b"ch"[..], 64), (b"c-1", 65), (b"k", 66)] {
            first.extend(define(text, slot));
        }
        first.push(POP_MARK);
        assert_eq!(&out[OPEN_LEN..OPEN_LEN + first.len()], &first[..], "ch, c-1, k before the first message");
        let mut second = vec![MARK];
        second.extend(define(b"j", 67));
        second.push(POP_MARK);
        assert_eq!(out.windows(second.len()).filter(|w| *w == &second[..]).count(), 1, "then only j");
        assert_eq!(out.windows(2).filter(|w| *w == [SHORT_BINUNICODE, 2]).count(), 1, "ch written once");
    }

    #[test]
    fn shared_slots_run_out_into_the_message() {
        let mut strings = SharedStrings::default();
        let mut memo = Memo::default();
        let keys: Vec<String> = (0..SHARED_MAX + 5).map(|n| format!("\"k{n}\":{n}")).collect();
        let json = format!("{{{}}}", keys.join(","));
        let mut out = Vec::new();
        let slots = write_message(&mut out, &mut memo, Some(&mut strings), "c", "f", 1, &json).unwrap();
        assert_eq!(strings.strings.len(), SHARED_MAX);
        assert_eq!(slots.slots().count(), SHARED_MAX);
        assert!(out.windows(4).any(|w| w == [SHORT_BINUNICODE, 4, b'k', b'1']), "the rest written in the message");
        let long = format!("\"{}\"", "x".repeat(SHARED_MAX_LEN + 1));
        let mut fresh = SharedStrings::default();
        write_message(&mut Vec::new(), &mut memo, Some(&mut fresh), &"c".repeat(65), "f", 1, &long).unwrap();
        assert_eq!(fresh.strings.len(), 1, "only the sender: the channel is too long to keep");
    }

    #[test]
    fn memo_slots_are_bounded() {
        let keys: Vec<String> = (0..MEMO_SLOTS + 10).map(|n| format!("\"k{n}\":{{\"k{n}\":1}}")).collect();
        let out = pickle_of(&format!("{{{}}}", keys.join(",")));
        assert_eq!(out.iter().filter(|&&b| b == BINPUT).count(), MEMO_SLOTS, "at most one byte of slots");
    }

    #[test]
    fn only_data_opcodes_accepts_what_the_writer_writes_and_nothing_else() {
        let texts = [
            r#"{"a":[1,-1,300,70000,4294967296,1e300,true,false,null,"é"],"b":{"a":{}}}"#,
            "123456789012345678901234567890",
            &format!("\"{}\"", "x".repeat(300)),
        ];
        for text in texts {
            assert!(only_data_opcodes(&pickle_of(text)), "{text}");
        }
        let whole = pickle_of(r#"{"k":"value"}"#);
        let value_at = whole.windows(5).position(|w| w == b"value").unwrap();
        assert!(!only_data_opcodes(&whole[..value_at + 2]), "a string cut short");
        // GLOBAL 'os system', as a writer bug could let a string's text be read.
        for evil in [&b"cos\nsystem\n"[..], b"\x93", b"R", b"\x81", b"b", b"i", b"o"] {
            let mut bytes = pickle_of("1");
            bytes.splice(13..13, evil.iter().copied());
            assert!(!only_data_opcodes(&bytes), "{evil:?}");
        }
        let mut short_len = pickle_of(r#""abc""#);
        let at = short_len.iter().rposition(|&b| b == SHORT_BINUNICODE).unwrap();
        short_len[at + 1] = 1; // "a", then "bc" read as opcodes
        assert!(!only_data_opcodes(&short_len));
    }

    #[test]
    fn not_json_leaves_the_output_as_it_was() {
        let mut out = Vec::new();
        let mut memo = Memo::default();
        open_batch(&mut out);
        write_message(&mut out, &mut memo, None, "c", "f", 1, "1").unwrap();
        end_message(&mut out, 0);
        let before = out.clone();
        for bad in ["", "{", "[1,", r#"{"a" 1}"#, "tru", r#""\x""#, "1 2", r#""open"#] {
            assert_eq!(write_message(&mut out, &mut memo, None, "other", "g", 1, bad), Err(NotJson), "{bad:?}");
            assert_eq!(out, before);
        }
    }
}

#[cfg(test)]
pub(crate) mod speed {
    use super::*;

    /// The `i`th payload of the socket thread's speed tests: 8 numeric fields, the
    /// benchmark's message shape.
    pub(crate) fn bench_payload(i: usize) -> String {
        let fields: Vec<String> =
            (0..8).map(|k| format!("\"f{k}\":{}", ((i * (k + 1)) % 1000) as f64 / 10.0)).collect();
        format!("{{{}}}", fields.join(","))
    }

    /// `cargo test --release --lib pickle_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn pickle_speed() {
        let texts: Vec<String> = (0..1000).map(bench_payload).collect();
        let started = std::time::Instant::now();
        let rounds = 200;
        for _ in 0..rounds {
            let mut out = Vec::new();
            let mut memo = Memo::default();
            let mut strings = SharedStrings::default();
            let start = open_batch(&mut out);
            for (i, text) in texts.iter().enumerate() {
                let shared = Some(&mut strings);
                write_message(
                    &mut out,
                    &mut memo,
                    shared,
                    "project.bench.ch3",
                    "c-12",
                    1_700_000_000_000 + i as i64,
                    text,
                )
                .unwrap();
                end_message(&mut out, 0);
            }
            close_batch(&mut out, start);
            std::hint::black_box(out);
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / (rounds * texts.len()) as f64;
        println!("pickle: {per:.3} us per message");
    }
}
