//! HS256 JSON Web Tokens (RFC 7519) and API-key ids. Keys and tokens are secrets:
//! nothing here logs, and errors never carry the text they refused.

use datanet::protocol::base64::{decode_url, encode_url};
use ring::{digest, hmac};
use serde_json::{json, Map, Value};

/// Scopes a token carries when the admin API set none for its key.
pub const DEFAULT_SCOPES: [&str; 2] = ["pub", "sub"];

/// The public id of an API key: the first 16 hex digits of its SHA-256, so the
/// key itself never lands in a token, a log line or the gateway's memory.
pub fn key_id(api_key: &str) -> String {
    let hash = digest::digest(&digest::SHA256, api_key.as_bytes());
    hash.as_ref()[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What a token asserts, once its signature and expiry are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Key id of the API key the token was issued for.
    pub sub: String,
    pub pid: Option<String>,
    pub scopes: Vec<String>,
    /// Expiry, seconds since the Unix epoch: the session is told and closed then.
    pub exp: i64,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwtError::Malformed => "malformed token",
            JwtError::BadSignature => "invalid token signature",
            JwtError::Expired => "token expired",
        })
    }
}

pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Signer { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// Signs a claims object into a compact JWT.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            encode_url(header.to_string().as_bytes()),
            encode_url(Value::Object(claims.clone()).to_string().as_bytes())
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", encode_url(tag.as_ref()))
    }

    /// Checks structure, algorithm, signature (in constant time) and `exp` against `now_secs`.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims, JwtError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
        if payload.contains('.') {
            return Err(JwtError::Malformed);
        }
        // Only HS256 is accepted: a token naming another algorithm (or `none`) is refused
        // before its signature is looked at.
        let header = decode_segment(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(JwtError::Malformed);
        }
        let signature = decode_url(signature).map_err(|_| JwtError::Malformed)?;
        hmac::verify(&self.key, signing_input.as_bytes(), &signature).map_err(|_| JwtError::BadSignature)?;

        let claims = decode_segment(payload)?;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(JwtError::Malformed)?;
        if now_secs >= exp {
            return Err(JwtError::Expired);
        }
        let sub = claims.get("sub").and_then(Value::as_str).ok_or(JwtError::Malformed)?;
        let scopes = match claims.get("scopes") {
            None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(_) => return Err(JwtError::Malformed),
        };
        let pid = claims.get("pid").and_then(Value::as_str).map(str::to_string);
        Ok(Claims { sub: sub.to_string(), pid, scopes, exp })
    }
}

fn decode_segment(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = decode_url(segment).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Map<String, Value> {
        let value = json!({"sub": "abc", "pid": "demo", "iat": 0, "exp": exp, "scopes": ["sub"]});
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn round_trip() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(&claims(100));
        let verified = signer.verify(&token, 99).unwrap();
        assert_eq!(verified.sub, "abc");
        assert_eq!(verified.pid.as_deref(), Some("demo"));
        assert!(verified.has_scope("sub"));
        assert!(!verified.has_scope("pub"));
        assert_eq!(verified.exp, 100);
    }

    #[test]
    fn refuses_expired_forged_and_garbage() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(&claims(100));
        assert_eq!(signer.verify(&token, 100), Err(JwtError::Expired));
        assert_eq!(Signer::new(b"other").verify(&token, 0), Err(JwtError::BadSignature));
        let mut tampered = token.clone();
        tampered.insert(tampered.find('.').unwrap() + 1, 'A');
        assert!(signer.verify(&tampered, 0).is_err());
        for garbage in ["", "a.b", "a.b.c.d", "...", "%%.%%.%%"] {
            assert_eq!(signer.verify(garbage, 0), Err(JwtError::Malformed), "{garbage}");
        }
        let unsigned = format!(
            "{}.{}.",
            encode_url(br#"{"alg":"none"}"#),
            encode_url(Value::Object(claims(100)).to_string().as_bytes())
        );
        assert_eq!(signer.verify(&unsigned, 0), Err(JwtError::Malformed));
    }

    #[test]
    fn key_id_is_a_hash_prefix() {
        let id = key_id("ak_secret");
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, key_id("ak_secret2"));
    }
}
