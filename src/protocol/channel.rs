//! Channel names (PROTOCOL.md §8): exact-match strings of 1..=255 bytes.

use super::error::{DataNetError, INVALID_ARGUMENT};

pub(crate) const MAX_CHANNEL_BYTES: usize = 255;

pub fn validate_channel(channel: &str) -> Result<(), DataNetError> {
    if channel.is_empty() {
        return Err(DataNetError::new(INVALID_ARGUMENT, "channel name is empty"));
    }
    if channel.len() > MAX_CHANNEL_BYTES {
        return Err(DataNetError::new(
            INVALID_ARGUMENT,
            format!("channel name is {} bytes; the limit is {MAX_CHANNEL_BYTES}", channel.len()),
        ));
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
}
