//! A poll's JSON messages as one Python pickle (protocol 4, data opcodes only), for
//! hosts written in Python: `pickle.loads` builds the objects about four times
//! faster than `json.loads` builds the same ones from text, because numbers arrive
//! as binary doubles and integers and every repeated key, channel and sender is
//! one shared string (the pickle memo).
//!
//! The values are exactly what Python's `json.loads` makes of the same text: ints
//! for integer literals (of any size: beyond 64 bits as a LONG opcode), floats for
//! the rest (Rust and CPython both round correctly), str with JSON escapes resolved
//! (a lone surrogate escape kept as Python keeps it), True/False/None, list, dict
//! (a repeated key: the last one wins). Only list, dict, str, int, float, bool and
//! None opcodes are written, never one that imports or calls anything.
//!
//! The input is text the envelope decoder already validated as JSON, read with the
//! same walker as the numeric flattening (`protocol::json_walk`); a malformed value
//! here would be a bug: it is reported and the caller delivers that message as
//! plain JSON instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::protocol::json_walk::{is_integer, number_value, walk, Scalar, Visitor};

const PROTO: u8 = 0x80;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const EMPTY_LIST: u8 = b']';
const APPENDS: u8 = b'e';
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
const MEMOIZE: u8 = 0x94;
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';

/// Python refuses to turn longer digit strings into an int (`sys.int_info`,
/// default limit 4300); such a literal is written as the nearest float instead.
const MAX_INT_DIGITS: usize = 4300;

pub(super) use crate::protocol::json_walk::NotJson;

/// Bytes `finish` adds.
pub(super) const FINISH_LEN: usize = 2;

/// Writes one pickle, a list of `[channel, from, ts, data, replaced]` lists, into
/// an output it is handed at each step (the caller frames it in a record).
pub struct PickleBatch {
    out: Vec<u8>,
    /// Strings already in the unpickler's memo, and their index.
    memo: HashMap<Vec<u8>, u32, BuildHasherDefault<Fnv>>,
}

/// FNV-1a: the memo's keys are short strings from one batch, where a keyed hash
/// (SipHash, the default) buys nothing and costs time (0.53 to 0.45 µs per
/// 8-field message in `pickle_speed`).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where a batch stood, to go back to when a message is abandoned.
#[derive(Clone, Copy)]
pub struct Mark {
    len: usize,
    memo_len: usize,
}

impl PickleBatch {
    /// Starts the outer list.
    pub fn begin() -> Self {
        PickleBatch { out: vec![PROTO, 4, EMPTY_LIST, MARK], memo: HashMap::default() }
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn mark(&self) -> Mark {
        Mark { len: self.out.len(), memo_len: self.memo.len() }
    }

    /// Forgets everything written since `mark`, memo entries included (their
    /// MEMOIZE opcodes are gone, so an unpickler never sees them).
    pub fn rollback(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.memo.retain(|_, index| (*index as usize) < mark.memo_len);
    }

    /// Appends one message; on error the batch is as it was before.
    pub fn push(&mut self, channel: &str, from: &str, ts: i64, json: &str, replaced: u32) -> Result<(), NotJson> {
        let mark = self.mark();
        self.out.extend_from_slice(&[EMPTY_LIST, MARK]);
        self.memo_str(channel.as_bytes());
        self.memo_str(from.as_bytes());
        write_int(&mut self.out, ts);
        let mut opcodes = Opcodes { batch: self, bad_number: false };
        let walked = walk(json, &mut opcodes);
        if walked.is_err() || opcodes.bad_number {
            self.rollback(mark);
            return Err(NotJson);
        }
        write_int(&mut self.out, i64::from(replaced));
        self.out.push(APPENDS);
        Ok(())
    }

    /// Ends the outer list and the pickle; returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[APPENDS, STOP]);
        self.out
    }

    /// A string the unpickler shares between its uses.
    fn memo_str(&mut self, bytes: &[u8]) {
        if let Some(&index) = self.memo.get(bytes) {
            match u8::try_from(index) {
                Ok(small) => self.out.extend_from_slice(&[BINGET, small]),
                Err(_) => {
                    self.out.push(LONG_BINGET);
                    self.out.extend_from_slice(&index.to_le_bytes());
                }
            }
            return;
        }
        write_str(&mut self.out, bytes);
        self.out.push(MEMOIZE);
        let index = self.memo.len() as u32;
        self.memo.insert(bytes.to_vec(), index);
    }
}

/// The opcodes of one JSON value.
struct Opcodes<'b> {
    batch: &'b mut PickleBatch,
    bad_number: bool,
}

impl Visitor for Opcodes<'_> {
    fn scalar(&mut self, value: Scalar<'_>) {
        let out = &mut self.batch.out;
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
        self.batch.out.extend_from_slice(&[EMPTY_DICT, MARK]);
    }

    fn key(&mut self, key: &[u8]) {
        self.batch.memo_str(key);
    }

    fn end_object(&mut self) {
        // SETITEMS after a bare MARK adds nothing: an empty dict stays empty.
        self.batch.out.push(SETITEMS);
    }

    fn begin_array(&mut self) {
        self.batch.out.extend_from_slice(&[EMPTY_LIST, MARK]);
    }

    fn element(&mut self, _index: usize) {}

    fn end_array(&mut self) {
        self.batch.out.push(APPENDS);
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

    fn pickle_of(json: &str) -> Vec<u8> {
        let mut batch = PickleBatch::begin();
        batch.push("c", "f", 5, json, 1).unwrap();
        batch.finish()
    }

    /// The bytes of `data` inside a one-message batch.
    fn data_of(json: &str) -> Vec<u8> {
        let all = pickle_of(json);
        // PROTO 4, ], (, ], (, "c" memo, "f" memo, 5
        let head = [PROTO, 4, EMPTY_LIST, MARK, EMPTY_LIST, MARK, SHORT_BINUNICODE, 1, b'c', MEMOIZE];
        assert_eq!(&all[..head.len()], &head);
        let tail = [BININT1, 1, APPENDS, APPENDS, STOP];
        assert_eq!(&all[all.len() - tail.len()..], &tail);
        let rest = &all[head.len()..all.len() - tail.len()];
        let after_from = [SHORT_BINUNICODE, 1, b'f', MEMOIZE, BININT1, 5];
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
    fn containers_share_their_keys() {
        let mut batch = PickleBatch::begin();
        batch.push("c", "f", 1, r#"{"k": [1, {}], "k": []}"#, 0).unwrap();
        batch.push("c", "f", 2, r#"{"k":2}"#, 0).unwrap();
        let out = batch.finish();
        let second_message = out.windows(6).position(|w| w == [EMPTY_LIST, MARK, BINGET, 0, BINGET, 1]);
        assert!(second_message.is_some(), "channel and sender come from the memo the second time");
        let key_again = out.windows(4).position(|w| w == [EMPTY_DICT, MARK, BINGET, 2]);
        assert!(key_again.is_some(), "the key too");
    }

    #[test]
    fn surrogates_as_python_keeps_them() {
        assert_eq!(data_of(r#""\ud83d\ude00""#), vec![SHORT_BINUNICODE, 4, 0xf0, 0x9f, 0x98, 0x80]);
        assert_eq!(data_of(r#""\ud800x""#), vec![SHORT_BINUNICODE, 4, 0xed, 0xa0, 0x80, b'x']);
    }

    #[test]
    fn not_json_leaves_the_batch_as_it_was() {
        let mut batch = PickleBatch::begin();
        batch.push("c", "f", 1, "1", 0).unwrap();
        let before = batch.len();
        for bad in ["", "{", "[1,", r#"{"a" 1}"#, "tru", r#""\x""#, "1 2", r#""open"#] {
            assert_eq!(batch.push("other", "g", 1, bad, 0), Err(NotJson), "{bad:?}");
            assert_eq!(batch.len(), before);
        }
        batch.push("other", "g", 1, "2", 0).unwrap();
        let out = batch.finish();
        assert_eq!(out.iter().filter(|&&b| b == MEMOIZE).count(), 4, "c, f, other, g: nothing memoized twice");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release --lib pickle_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn pickle_speed() {
        let texts: Vec<String> = (0..1000)
            .map(|i| {
                let fields: Vec<String> =
                    (0..8).map(|k| format!("\"f{k}\":{}", ((i * (k + 1)) % 1000) as f64 / 10.0)).collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        let started = std::time::Instant::now();
        let rounds = 200;
        for _ in 0..rounds {
            let mut batch = PickleBatch::begin();
            for (i, text) in texts.iter().enumerate() {
                batch.push("project.bench.ch3", "c-12", 1_700_000_000_000 + i as i64, text, 0).unwrap();
            }
            std::hint::black_box(batch.finish());
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / (rounds * texts.len()) as f64;
        println!("pickle: {per:.3} us per message");
    }
}
