//! JWT claims read without verifying the signature (PROTOCOL.md §1): the client
//! only needs `exp` to refresh in time and `pid` for presence. The gateway checks
//! the signature at the WebSocket upgrade.

use serde_json::Value;

use super::base64;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch.
    pub exp: Option<i64>,
    /// Project id.
    pub pid: Option<String>,
}

/// Refresh a cached token that expires within this many seconds.
pub(crate) const REFRESH_MARGIN_S: i64 = 60;

impl Claims {
    /// True when the token should not be used for a new connection at `now_s`.
    /// A token without `exp` is taken as good (the gateway will say otherwise).
    pub fn needs_refresh(&self, now_s: i64) -> bool {
        self.exp.is_some_and(|exp| exp - now_s <= REFRESH_MARGIN_S)
    }
}

/// Why a token's claims could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError(pub &'static str);

pub fn decode_claims(token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError("token is not three dot-separated segments"));
    };
    let bytes = base64::decode_url(payload).map_err(|_| JwtError("token payload is not base64url"))?;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(JwtError("token payload is not a JSON object"));
    };
    let exp = claims.get("exp").and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let pid = match claims.get("pid") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Claims { exp, pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        format!("{}.{}.sig", base64::encode_url(br#"{"alg":"HS256"}"#), base64::encode_url(claims.as_bytes()))
    }

    #[test]
    fn reads_exp_and_pid() {
        let c = decode_claims(&token(r#"{"exp":1700000600,"pid":"demo","sub":"x"}"#)).unwrap();
        assert_eq!(c, Claims { exp: Some(1_700_000_600), pid: Some("demo".into()) });
        let c = decode_claims(&token(r#"{"pid":42}"#)).unwrap();
        assert_eq!(c.pid.as_deref(), Some("42"));
        assert_eq!(c.exp, None);
    }

    #[test]
    fn refresh_margin() {
        let c = Claims { exp: Some(1000), pid: None };
        assert!(!c.needs_refresh(939));
        assert!(c.needs_refresh(940));
        assert!(c.needs_refresh(2000));
        assert!(!Claims::default().needs_refresh(i64::MAX));
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_claims("").is_err());
        assert!(decode_claims("a.b").is_err());
        assert!(decode_claims("a.b.c.d").is_err());
        assert!(decode_claims("a.!!!.c").is_err());
        assert!(decode_claims(&token("[1]")).is_err());
    }
}
