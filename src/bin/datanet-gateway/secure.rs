//! Secure by default off loopback, anchored on Mosquitto 2.x (loopback only and no
//! anonymous clients unless configured): the start-up checks, the token secret, and
//! the admin token. Secrets come from files or the environment, are never echoed,
//! and are compared in constant time.

use crate::cli::{Options, SecretSource};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use std::net::IpAddr;
use std::path::Path;

/// The secret of `--fixed-secret-for-tests`: public, so loopback only.
pub const FIXED_TEST_SECRET: &str = "datanet-local-gateway-development-secret";

/// `localhost` and loopback addresses; any other name or address counts as a LAN.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// Refuses configurations that would open the gateway to a network without
/// credentials; returns the warnings to print (and show in `/stats`).
pub fn check(options: &Options) -> Result<Vec<String>, String> {
    let on_lan = !is_loopback(&options.host);
    let host = &options.host;
    if options.tls_cert.is_some() != options.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_string());
    }
    if options.keys_file.is_some() && options.allow_any_key {
        return Err("give --keys-file or --allow-any-key, not both".to_string());
    }
    if !on_lan {
        return Ok(Vec::new());
    }
    if options.keys_file.is_none() && !options.allow_any_key {
        return Err(format!(
            "refusing to listen on {host} without --keys-file: anyone on that network could get a token. \
             Give --keys-file FILE (docs/GATEWAY.md), or --allow-any-key to accept any ak_ key"
        ));
    }
    if options.admin && options.admin_token_file.is_none() {
        return Err(format!(
            "refusing --admin on {host} without --admin-token-file: anyone on that network could inject \
             frames, revoke keys and drop every connection"
        ));
    }
    if options.secret == SecretSource::FixedForTests {
        return Err(format!("--fixed-secret-for-tests is public: loopback only, not {host}"));
    }
    let mut warnings = Vec::new();
    if options.allow_any_key {
        warnings.push(format!("--allow-any-key: any ak_ key gets a token on {host}"));
    }
    if options.tls_cert.is_none() {
        warnings.push(format!("no --tls-cert: traffic on {host} is not encrypted"));
    }
    Ok(warnings)
}

/// The HMAC secret: `DATANET_GATEWAY_SECRET` (passed in as `from_env`), a file, the
/// public test secret, or 32 random bytes.
pub fn token_secret(source: &SecretSource, from_env: Option<String>) -> Result<Vec<u8>, String> {
    match (source, from_env) {
        (SecretSource::Random, Some(secret)) if !secret.is_empty() => Ok(secret.into_bytes()),
        (SecretSource::Random, Some(_)) => Err("DATANET_GATEWAY_SECRET is empty".to_string()),
        (SecretSource::Random, None) => {
            let mut secret = vec![0u8; 32];
            SystemRandom::new().fill(&mut secret).map_err(|_| "no system randomness for the secret".to_string())?;
            Ok(secret)
        }
        (_, Some(_)) => Err("DATANET_GATEWAY_SECRET is set: drop --secret-file / --fixed-secret-for-tests".to_string()),
        (SecretSource::File(path), None) => Ok(read_secret_file(path, "--secret-file")?.into_bytes()),
        (SecretSource::FixedForTests, None) => Ok(FIXED_TEST_SECRET.as_bytes().to_vec()),
    }
}

/// A file's text without its trailing newline. Errors name the flag and the path,
/// never the content.
pub fn read_secret_file(path: &Path, flag: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{flag} {}: {error}", path.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.trim().is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    Ok(secret.to_string())
}

/// Who may use `/_admin/`.
pub struct AdminAccess {
    pub enabled: bool,
    /// SHA-256 of the token from `--admin-token-file`; `None` = no token asked.
    token_digest: Option<[u8; 32]>,
}

impl AdminAccess {
    pub fn new(enabled: bool, token: Option<&str>) -> Self {
        AdminAccess { enabled, token_digest: token.map(|token| sha256(token.as_bytes())) }
    }

    /// Checks `Authorization: Bearer <token>` when a token is configured. Digests of
    /// equal length are compared without an early exit, so timing says nothing.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.token_digest else { return true };
        let offered = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(offered) = offered else { return false };
        let offered = sha256(offered.as_bytes());
        offered.iter().zip(expected).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(host: &str) -> Options {
        Options { host: host.to_string(), ..Options::default() }
    }

    #[test]
    fn loopback_addresses() {
        for host in ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "venue.local"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn loopback_keeps_developer_convenience() {
        let mut loopback = options("127.0.0.1");
        loopback.admin = true;
        loopback.secret = SecretSource::FixedForTests;
        assert_eq!(check(&loopback), Ok(vec![]));
    }

    #[test]
    fn a_lan_address_needs_keys_and_an_admin_token() {
        let lan = options("0.0.0.0");
        assert!(check(&lan).unwrap_err().contains("--keys-file"));
        let with_keys = Options { keys_file: Some("k".into()), ..lan.clone() };
        assert_eq!(check(&with_keys).unwrap().len(), 1, "warns that there is no TLS");
        let admin = Options { admin: true, ..with_keys.clone() };
        assert!(check(&admin).unwrap_err().contains("--admin-token-file"));
        assert!(check(&Options { admin_token_file: Some("t".into()), ..admin }).is_ok());
        let fixed = Options { secret: SecretSource::FixedForTests, ..with_keys.clone() };
        assert!(check(&fixed).is_err());
        let any = Options { allow_any_key: true, ..lan };
        assert!(check(&any).unwrap().iter().any(|warning| warning.contains("--allow-any-key")));
    }

    #[test]
    fn secrets_come_from_env_file_or_randomness() {
        assert_eq!(token_secret(&SecretSource::Random, Some("s3".into())), Ok(b"s3".to_vec()));
        let first = token_secret(&SecretSource::Random, None).unwrap();
        assert_eq!(first.len(), 32);
        assert_ne!(first, token_secret(&SecretSource::Random, None).unwrap());
        assert!(token_secret(&SecretSource::FixedForTests, Some("s".into())).is_err());
        let path = std::env::temp_dir().join(format!("dn-secret-{}", std::process::id()));
        std::fs::write(&path, "hunter2\n").unwrap();
        assert_eq!(token_secret(&SecretSource::File(path.clone()), None), Ok(b"hunter2".to_vec()));
        std::fs::write(&path, "\n").unwrap();
        let error = token_secret(&SecretSource::File(path.clone()), None).unwrap_err();
        assert!(error.contains("empty"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn admin_token_is_checked_when_configured() {
        assert!(AdminAccess::new(true, None).allows(None));
        let access = AdminAccess::new(true, Some("t0ken"));
        assert!(access.allows(Some("Bearer t0ken")));
        assert!(access.allows(Some("bearer  t0ken ")));
        for bad in [None, Some("Bearer"), Some("Bearer t0ke"), Some("Basic t0ken"), Some("t0ken")] {
            assert!(!access.allows(bad), "{bad:?}");
        }
    }
}
