//! Channel names (docs/PROTOCOL.md §8): exact-match strings of 1..=255 bytes of
//! ASCII letters, digits and `_ - . : /`, without a leading or trailing `.` and
//! without an empty segment. The local gateway refuses the same names, so a name
//! the client accepts is one a gateway will not refuse for its shape.

use super::error::{DataNetError, INVALID_ARGUMENT};

pub(crate) const MAX_CHANNEL_BYTES: usize = 255;

fn allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':' | b'/')
}

pub fn validate_channel(channel: &str) -> Result<(), DataNetError> {
    let refuse = |why: String| Err(DataNetError::new(INVALID_ARGUMENT, why));
    if channel.is_empty() {
        return refuse("channel name is empty".into());
    }
    if channel.len() > MAX_CHANNEL_BYTES {
        return refuse(format!("channel name is {} bytes; the limit is {MAX_CHANNEL_BYTES}", channel.len()));
    }
    if let Some(bad) = channel.chars().find(|c| !c.is_ascii() || !allowed(*c as u8)) {
        return refuse(format!(
            "channel name {channel:?} contains {bad:?}; use ASCII letters, digits and _ - . : / only"
        ));
    }
    if channel.starts_with('.') || channel.ends_with('.') || channel.contains("..") {
        return refuse(format!("channel name {channel:?} has an empty segment between dots"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(validate_channel("").is_err());
        assert!(validate_channel("project.demo.a").is_ok());
        assert!(validate_channel(&"x".repeat(255)).is_ok());
        let err = validate_channel(&"x".repeat(256)).unwrap_err();
        assert_eq!(err.code, INVALID_ARGUMENT);
        assert!(err.message.contains("256"));
    }

    #[test]
    fn characters_and_segments() {
        for good in ["project.demo.sensor_1", "project.abc-1.lighting.dmx", "sensors/temp", "a:b", "A.b.C"] {
            assert!(validate_channel(good).is_ok(), "{good}");
        }
        for bad in ["has space", "tab\there", "é", "a*", "a?", "a#b", ".a", "a.", "a..b", "\u{1e}", "quote\""] {
            let err = validate_channel(bad).unwrap_err();
            assert_eq!(err.code, INVALID_ARGUMENT, "{bad}");
        }
        assert!(validate_channel("has space").unwrap_err().message.contains("' '"));
    }
}
