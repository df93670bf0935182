//! Base64 codecs: standard padded (binary payloads on the wire, PROTOCOL.md §3)
//! and URL-safe unpadded (JWT segments). Small enough to own, and owning it keeps
//! one implementation for the client, the C ABI and the local gateway.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Why a base64 text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// A byte outside the alphabet, at this offset.
    InvalidByte(usize),
    /// The length cannot be produced by an encoder (or padding is misplaced).
    InvalidLength,
}

impl std::fmt::Display for Base64Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Base64Error::InvalidByte(at) => write!(f, "invalid base64 byte at offset {at}"),
            Base64Error::InvalidLength => write!(f, "invalid base64 length or padding"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Standard alphabet with `=` padding.
pub fn encode(data: &[u8]) -> String {
    encode_with(data, STANDARD, true)
}

/// Standard alphabet; padding required when the length is not a multiple of 4.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode_with(text.as_bytes(), STANDARD, true)
}

/// URL-safe alphabet without padding (RFC 7515 §2, used by JWT segments).
pub fn encode_url(data: &[u8]) -> String {
    encode_with(data, URL_SAFE, false)
}

/// URL-safe alphabet; trailing padding tolerated.
pub fn decode_url(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode_with(text.as_bytes(), URL_SAFE, false)
}

/// Number of bytes a padded standard base64 text decodes to, without decoding.
pub fn decoded_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let pad = b.iter().rev().take(2).filter(|&&c| c == b'=').count();
    Some(b.len() / 4 * 3 - pad)
}

fn encode_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn reverse(alphabet: &[u8; 64]) -> [u8; 256] {
    let mut table = [0xffu8; 256];
    for (i, &c) in alphabet.iter().enumerate() {
        table[c as usize] = i as u8;
    }
    table
}

fn decode_with(text: &[u8], alphabet: &[u8; 64], padding_required: bool) -> Result<Vec<u8>, Base64Error> {
    let table = reverse(alphabet);
    let body_len = text.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    let pad = text.len() - body_len;
    if pad > 2 || (padding_required && text.len() % 4 != 0) || (pad > 0 && text.len() % 4 != 0) {
        return Err(Base64Error::InvalidLength);
    }
    let body = &text[..body_len];
    if body.len() % 4 == 1 {
        return Err(Base64Error::InvalidLength);
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for (chunk_index, chunk) in body.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = table[c as usize];
            if v == 0xff {
                return Err(Base64Error::InvalidByte(chunk_index * 4 + i));
            }
            n |= (v as u32) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_vectors() {
        assert_eq!(encode(&[0x00, 0x01, 0x02, 0xff]), "AAEC/w==");
        assert_eq!(encode(&[0x04, 0x05]), "BAU=");
        assert_eq!(encode(&[0xff, 0x00]), "/wA=");
        assert_eq!(encode(&[1, 2, 3]), "AQID");
        assert_eq!(decode("AAEC/w==").unwrap(), vec![0, 1, 2, 0xff]);
        assert_eq!(decode("BAU=").unwrap(), vec![4, 5]);
        assert_eq!(decode("/wA=").unwrap(), vec![0xff, 0]);
    }

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let slice = &data[..len];
            let text = encode(slice);
            assert_eq!(decoded_len(&text), Some(len));
            assert_eq!(decode(&text).unwrap(), slice);
            assert_eq!(decode_url(&encode_url(slice)).unwrap(), slice);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode("AAE"), Err(Base64Error::InvalidLength));
        assert_eq!(decode("A==="), Err(Base64Error::InvalidLength));
        assert_eq!(decode("AA*C"), Err(Base64Error::InvalidByte(2)));
        assert_eq!(decode("AA=C"), Err(Base64Error::InvalidByte(2)));
        assert!(decode("-_-_").is_err());
        assert!(decode_url("+/+/").is_err());
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
