//! Who may get a token: the keys file (required off loopback), or any `ak_` key
//! (loopback, or `--allow-any-key`). Keys are held only as SHA-256 digests and
//! shown only as key ids; no error or log line ever carries a key.
//!
//! Keys file: one key per line, then optional `name=value` attributes; `#` starts
//! a comment. `project=` (the token's project), `scopes=pub,sub` (or `pub`, `sub`),
//! `devices=N` (open connections of this key at once).
//!
//! ```text
//! ak_stage_left    project=show  devices=4
//! ak_audience      project=show  scopes=sub
//! ```

use crate::jwt::key_id;
use ring::digest::{digest, SHA256};
use std::collections::HashMap;

/// What a key is granted; `None` fields fall back to the gateway's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key_id: String,
    pub project: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub devices: Option<usize>,
}

#[derive(Debug)]
pub enum Keys {
    /// Any well-formed `ak_` key, with the default project and scopes.
    AnyDeveloperKey,
    Listed {
        by_digest: HashMap<[u8; 32], Grant>,
        devices_by_id: HashMap<String, usize>,
    },
}

impl Keys {
    /// Parses a keys file's text. Errors name the line, never its key.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let mut by_digest = HashMap::new();
        let mut devices_by_id = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else { continue };
            let mut grant = Grant { key_id: key_id(key), project: None, scopes: None, devices: None };
            for word in words {
                let (name, value) = word
                    .split_once('=')
                    .filter(|(_, value)| !value.is_empty())
                    .ok_or_else(|| format!("line {line_no}: expected name=value after the key"))?;
                match name {
                    "project" => grant.project = Some(value.to_string()),
                    "scopes" => {
                        grant.scopes = Some(parse_scopes(value).map_err(|why| format!("line {line_no}: {why}"))?)
                    }
                    "devices" => {
                        let devices = value.parse().map_err(|_| format!("line {line_no}: devices must be a number"))?;
                        grant.devices = Some(devices);
                    }
                    _ => return Err(format!("line {line_no}: unknown attribute {name:?}")),
                }
            }
            if let Some(devices) = grant.devices {
                devices_by_id.insert(grant.key_id.clone(), devices);
            }
            if by_digest.insert(digest_of(key), grant).is_some() {
                return Err(format!("line {line_no}: this key is listed twice"));
            }
        }
        if by_digest.is_empty() {
            return Err("the keys file lists no key".to_string());
        }
        Ok(Keys::Listed { by_digest, devices_by_id })
    }

    /// The grant of an API key, or `None` when it may not have a token.
    pub fn grant(&self, api_key: &str) -> Option<Grant> {
        match self {
            Keys::AnyDeveloperKey => {
                let well_formed = api_key.starts_with("ak_") && api_key.len() >= 4;
                well_formed.then(|| Grant { key_id: key_id(api_key), project: None, scopes: None, devices: None })
            }
            Keys::Listed { by_digest, .. } => by_digest.get(&digest_of(api_key)).cloned(),
        }
    }

    /// The keys file's device limit for a key id.
    pub fn devices(&self, key_id: &str) -> Option<usize> {
        match self {
            Keys::AnyDeveloperKey => None,
            Keys::Listed { devices_by_id, .. } => devices_by_id.get(key_id).copied(),
        }
    }
}

fn digest_of(api_key: &str) -> [u8; 32] {
    let hash = digest(&SHA256, api_key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

fn parse_scopes(value: &str) -> Result<Vec<String>, String> {
    let scopes: Vec<String> = value.split(',').map(str::to_string).collect();
    if scopes.iter().all(|scope| scope == "pub" || scope == "sub") {
        Ok(scopes)
    } else {
        Err("scopes are pub and sub, comma-separated".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_with_attributes_and_comments() {
        let keys = Keys::parse(
            "# venue keys\n\nak_stage project=show devices=2   # the stage PCs\nak_phones scopes=sub\nplainkey\n",
        )
        .unwrap();
        let stage = keys.grant("ak_stage").unwrap();
        assert_eq!(stage.project.as_deref(), Some("show"));
        assert_eq!(keys.devices(&stage.key_id), Some(2));
        assert_eq!(keys.grant("ak_phones").unwrap().scopes, Some(vec!["sub".to_string()]));
        assert!(keys.grant("plainkey").is_some(), "listed keys need no ak_ prefix");
        assert!(keys.grant("ak_other").is_none());
        assert!(keys.grant("ak_stag").is_none());
    }

    #[test]
    fn errors_name_the_line_and_never_the_key() {
        for (text, line) in [
            ("ak_secret1 colour=red", "line 1"),
            ("\nak_secret1 devices=many", "line 2"),
            ("ak_secret1 scopes=admin", "line 1"),
            ("ak_secret1 project", "line 1"),
            ("ak_secret1\nak_secret1", "line 2"),
        ] {
            let error = Keys::parse(text).unwrap_err();
            assert!(error.contains(line) && !error.contains("secret1"), "{text:?}: {error}");
        }
        assert!(Keys::parse("# nothing\n").is_err());
    }

    #[test]
    fn any_developer_key_needs_the_ak_prefix() {
        let keys = Keys::AnyDeveloperKey;
        assert!(keys.grant("ak_x").is_some());
        assert!(keys.grant("ak_").is_none());
        assert!(keys.grant("sk_x").is_none());
    }
}
