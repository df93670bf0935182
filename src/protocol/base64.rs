//! Base64 codecs: standard padded (binary payloads on the wire, PROTOCOL.md §3)
//! and URL-safe unpadded (JWT segments), on the `base64` crate. This module fixes
//! the engines and their strictness once, for the client, the C ABI and the gateway.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine};

/// Padding must be exactly what an encoder writes; the unused low bits of the last
/// symbol are ignored, as they always were here (other SDKs' encoders set them).
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// JWT segments come unpadded; padding is tolerated when it is canonical.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

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

impl From<DecodeError> for Base64Error {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => Base64Error::InvalidByte(at),
            DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => Base64Error::InvalidLength,
        }
    }
}

/// Standard alphabet with `=` padding.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Standard alphabet; padding required when the length is not a multiple of 4.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    Ok(STANDARD.decode(text)?)
}

/// URL-safe alphabet without padding (RFC 7515 §2, used by JWT segments).
pub fn encode_url(data: &[u8]) -> String {
    URL_SAFE.encode(data)
}

/// URL-safe alphabet; trailing padding tolerated.
pub fn decode_url(text: &str) -> Result<Vec<u8>, Base64Error> {
    Ok(URL_SAFE.decode(text)?)
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
        assert!(decode("A===").is_err());
        assert_eq!(decode("AA*C"), Err(Base64Error::InvalidByte(2)));
        assert_eq!(decode("AA=C"), Err(Base64Error::InvalidByte(2)));
        assert!(decode("-_-_").is_err());
        assert!(decode_url("+/+/").is_err());
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn padding_and_trailing_bits() {
        // Unused low bits of the last symbol are ignored ("AB==" and "AA==" are both [0]).
        assert_eq!(decode("AB==").unwrap(), vec![0]);
        assert!(decode("AA=").is_err());
        assert_eq!(decode_url("AA").unwrap(), vec![0]);
        assert_eq!(decode_url("AA==").unwrap(), vec![0]);
    }
}
