//! HTTP proxies without I/O: the proxy URL (`http://[user:pass@]host[:port]`),
//! the host a connection is for, the standard environment variables, which
//! connections go through the proxy, and the CONNECT exchange (RFC 9110 §9.3.6)
//! that opens a tunnel. The client does the reading and writing.
//!
//! Routing rules, in order:
//! 1. `http://` and `ws://` targets go direct: plain-text connections are for
//!    local gateways, and sending an API key in clear through a venue proxy is
//!    what TLS end to end inside a tunnel exists to avoid.
//! 2. Loopback targets (`localhost`, 127.0.0.0/8, `::1`) go direct.
//! 3. Targets listed in `no_proxy`/`NO_PROXY` go direct.
//! 4. Otherwise the configured proxy, or, without one, `https_proxy`,
//!    `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY` (first one set). A config value of
//!    `""` or `"direct"` turns proxies off.

use std::net::IpAddr;
use std::time::Duration;

use super::base64;
use super::error::{DataNetError, CONNECTION_FAILED, INVALID_ARGUMENT};

/// The variables that name a proxy, in the order they are read.
pub const PROXY_VARIABLES: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
/// The variables that list hosts reached without the proxy.
pub const NO_PROXY_VARIABLES: [&str; 2] = ["no_proxy", "NO_PROXY"];
/// Longest answer head accepted from a proxy for CONNECT.
pub(crate) const MAX_CONNECT_HEAD: usize = 8 * 1024;
/// Longest reason phrase from a proxy kept in an error message.
const MAX_REASON_CHARS: usize = 80;

/// An HTTP proxy. Its credentials never appear in `Debug`, `address()` or any
/// error this module writes.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    user: String,
    password: String,
    /// The userinfo as written (it may be percent-encoded), for redaction.
    written: String,
}

impl ProxyUrl {
    /// Reads `http://[user[:password]@]host[:port][/]`; the scheme may be left out
    /// (as in many `HTTPS_PROXY` values) and the port defaults to 80. User and
    /// password are percent-decoded. Errors never repeat the text, which may hold
    /// a password.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            None => text,
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => rest,
                "https" => {
                    return Err("https:// proxies (TLS to the proxy itself) are not supported; give the proxy's \
                                http:// address (TLS to DataNet still runs end to end inside the tunnel)"
                        .into())
                }
                s if s.starts_with("socks") => return Err("SOCKS proxies are not supported, only http:// ones".into()),
                _ => return Err("only http:// proxies are supported".into()),
            },
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err("a proxy URL is http://host:port, without a path".into());
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port)?;
        if !valid_host(&host) {
            return Err("the proxy host has characters a host name cannot have".into());
        }
        let port = port.unwrap_or(80);
        let credentials = userinfo
            .map(|written| {
                let (user, password) = written.split_once(':').unwrap_or((written, ""));
                let decode =
                    |part: &str| percent_decode(part).ok_or("the proxy credentials are not valid percent-encoding");
                Ok::<_, String>(Credentials {
                    user: decode(user)?,
                    password: decode(password)?,
                    written: written.into(),
                })
            })
            .transpose()?;
        Ok(ProxyUrl { host, port, credentials })
    }

    /// `host:port` (IPv6 in brackets): safe to show, it carries no credentials.
    pub fn address(&self) -> String {
        authority(&self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The `Proxy-Authorization` value (Basic, RFC 7617), with credentials.
    pub fn authorization(&self) -> Option<String> {
        let c = self.credentials.as_ref()?;
        Some(format!("Basic {}", base64::encode(format!("{}:{}", c.user, c.password).as_bytes())))
    }

    /// Every form in which the credentials could show up in a text, for
    /// redaction. The user name alone is an identity rather than a secret, and
    /// scrubbing a common word from every message would garble them: it is left
    /// out, and no message of this client ever contains it.
    pub fn secrets(&self) -> Vec<String> {
        let Some(c) = &self.credentials else { return Vec::new() };
        let pair = format!("{}:{}", c.user, c.password);
        let token = base64::encode(pair.as_bytes());
        let mut secrets = vec![c.password.clone(), c.written.clone(), pair, token];
        secrets.retain(|s| !s.is_empty() && s != &c.user);
        secrets
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials = if self.credentials.is_some() { "[redacted]@" } else { "" };
        write!(f, "http://{credentials}{}", self.address())
    }
}

/// What the client should do about proxies, from the `proxy` config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// Key absent: the environment variables decide.
    Environment,
    /// `""` or `"direct"`: no proxy, whatever the environment says.
    Direct,
    Url(ProxyUrl),
}

impl ProxySetting {
    pub fn parse(config_value: Option<&str>) -> Result<ProxySetting, String> {
        match config_value.map(str::trim) {
            None => Ok(ProxySetting::Environment),
            Some("") => Ok(ProxySetting::Direct),
            Some(text) if text.eq_ignore_ascii_case("direct") => Ok(ProxySetting::Direct),
            Some(text) => ProxyUrl::parse(text).map(ProxySetting::Url),
        }
    }
}

/// The host a connection is for, from an `http(s)://` or `ws(s)://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower case, without brackets or a trailing dot.
    pub host: String,
    pub port: u16,
    /// `https://` or `wss://`.
    pub secure: bool,
}

impl Target {
    pub fn from_url(url: &str) -> Option<Target> {
        let (scheme, rest) = url.trim().split_once("://")?;
        let (secure, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => (false, 80),
            "https" | "wss" => (true, 443),
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
        let (host, port) = split_host_port(host_port).ok()?;
        if !valid_host(&host) {
            return None;
        }
        Some(Target { host, port: port.unwrap_or(default_port), secure })
    }

    /// `host:port` as CONNECT and messages write it.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `localhost` and the loopback addresses: these never go through a proxy.
pub fn is_loopback(host: &str) -> bool {
    let host = normalize_host(host);
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

/// A `NO_PROXY` list: comma- or space-separated entries, each `*` (everything),
/// a domain (`example.com`, `.example.com` or `*.example.com`: the domain and
/// its subdomains), an IP address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`);
/// a domain or address may end in `:port` to match that port only. Entries that
/// cannot be read are skipped, as curl does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NoProxyEntry {
    pattern: Pattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Everything,
    Domain(String),
    Address(IpAddr),
    Block(IpAddr, u8),
}

impl NoProxy {
    pub fn parse(text: &str) -> NoProxy {
        let entries = text.split([',', ' ', '\t']).filter_map(parse_no_proxy_entry).collect();
        NoProxy { entries }
    }

    pub fn matches(&self, target: &Target) -> bool {
        let host = normalize_host(&target.host);
        let address = host.parse::<IpAddr>().ok().map(canonical_ip);
        self.entries.iter().any(|entry| {
            if entry.port.is_some_and(|port| port != target.port) {
                return false;
            }
            match &entry.pattern {
                Pattern::Everything => true,
                Pattern::Domain(domain) => {
                    host == *domain || host.strip_suffix(domain.as_str()).is_some_and(|head| head.ends_with('.'))
                }
                Pattern::Address(ip) => address == Some(*ip),
                Pattern::Block(network, bits) => address.is_some_and(|ip| in_block(ip, *network, *bits)),
            }
        })
    }
}

fn parse_no_proxy_entry(entry: &str) -> Option<NoProxyEntry> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    if entry == "*" {
        return Some(NoProxyEntry { pattern: Pattern::Everything, port: None });
    }
    if let Some((network, bits)) = entry.split_once('/') {
        let network = canonical_ip(network.trim_start_matches('[').trim_end_matches(']').parse().ok()?);
        let bits: u8 = bits.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(NoProxyEntry { pattern: Pattern::Block(network, bits), port: None });
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(NoProxyEntry { pattern: Pattern::Address(canonical_ip(ip)), port: None });
    }
    let (host, port) = split_host_port(entry).ok()?;
    let pattern = match host.parse::<IpAddr>() {
        Ok(ip) => Pattern::Address(canonical_ip(ip)),
        Err(_) => {
            let domain = host.trim_start_matches("*.").trim_start_matches('.');
            if domain.is_empty() {
                return None;
            }
            Pattern::Domain(domain.to_string())
        }
    };
    Some(NoProxyEntry { pattern, port })
}

/// The proxy settings found in the environment.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnvironment {
    /// The first proxy variable set to a non-empty value, with its name.
    pub proxy: Option<(&'static str, String)>,
    pub no_proxy: NoProxy,
}

impl ProxyEnvironment {
    /// Reads the variables through `lookup`, so that callers (and tests) choose
    /// the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyEnvironment {
        let set = |name: &&str| lookup(name).filter(|value| !value.trim().is_empty());
        let proxy = PROXY_VARIABLES.iter().find_map(|name| set(name).map(|value| (*name, value)));
        let no_proxy = NO_PROXY_VARIABLES.iter().find_map(set).map(|v| NoProxy::parse(&v));
        ProxyEnvironment { proxy, no_proxy: no_proxy.unwrap_or_default() }
    }
}

/// The proxy a connection to `target` goes through, if any (see the module's
/// routing rules). An unusable proxy variable is an error only when it would
/// be used, so that a SOCKS `ALL_PROXY` meant for other tools does not stop a
/// local gateway from working.
pub fn proxy_for(
    setting: &ProxySetting,
    environment: &ProxyEnvironment,
    target: &Target,
) -> Result<Option<ProxyUrl>, DataNetError> {
    if !target.secure || is_loopback(&target.host) || environment.no_proxy.matches(target) {
        return Ok(None);
    }
    match setting {
        ProxySetting::Direct => Ok(None),
        ProxySetting::Url(proxy) => Ok(Some(proxy.clone())),
        ProxySetting::Environment => match &environment.proxy {
            None => Ok(None),
            Some((name, value)) => ProxyUrl::parse(value).map(Some).map_err(|why| {
                DataNetError::new(
                    INVALID_ARGUMENT,
                    format!(
                        "environment variable {name}: {why}; set the proxy config key (Proxy parameter) to an \
                         http:// proxy, or to \"direct\" for none"
                    ),
                )
            }),
        },
    }
}

/// The CONNECT request that opens a tunnel to `target`.
pub fn connect_request(proxy: &ProxyUrl, target: &Target) -> String {
    let authority = target.authority();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(authorization) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str(concat!("User-Agent: datanet-td/", env!("CARGO_PKG_VERSION"), "\r\n\r\n"));
    request
}

/// True once `head` holds the whole answer head (it ends with an empty line).
/// The answer is read a byte at a time so that nothing of the tunnel is taken.
pub fn connect_head_complete(head: &[u8]) -> bool {
    head.ends_with(b"\r\n\r\n")
}

/// The proxy's answer to CONNECT: its status and reason phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAnswer {
    pub status: u16,
    /// Printable ASCII only, at most `MAX_REASON_CHARS` characters.
    pub reason: String,
}

impl ConnectAnswer {
    /// Any 2xx answer to CONNECT opens the tunnel (RFC 9110 §9.3.6).
    pub fn is_established(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Reads the status line of an answer head: `HTTP/1.x SSS reason`.
pub fn parse_connect_answer(head: &[u8]) -> Result<ConnectAnswer, TunnelFailure> {
    let unreadable = || TunnelFailure::Unreadable("its answer has no HTTP status line".into());
    let line_end = head.windows(2).position(|w| w == b"\r\n").ok_or_else(unreadable)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| unreadable())?;
    let rest = line.strip_prefix("HTTP/1.").ok_or_else(unreadable)?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if minor.len() != 1 || !minor.as_bytes()[0].is_ascii_digit() {
        return Err(unreadable());
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unreadable());
    }
    let reason: String = parts
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_REASON_CHARS)
        .collect();
    Ok(ConnectAnswer { status: code.parse().map_err(|_| unreadable())?, reason: reason.trim().to_string() })
}

/// Why a tunnel could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelFailure {
    /// The proxy could not be resolved or connected to (the I/O error's text).
    Unreachable(String),
    /// The proxy answered CONNECT with a status other than 2xx.
    Refused(ConnectAnswer),
    /// The proxy closed the connection before its answer was complete.
    Closed,
    /// The proxy's answer was not HTTP, or too long.
    Unreadable(String),
    /// Reading or writing failed mid-exchange (the I/O error's text).
    Failed(String),
    /// No complete answer within this time.
    TimedOut(Duration),
}

/// The error a user sees: it names the proxy (host and port, never its
/// credentials), the destination and, for a refusal, the status.
pub fn tunnel_error(proxy: &ProxyUrl, target: &Target, failure: TunnelFailure) -> DataNetError {
    let proxy_address = proxy.address();
    let destination = target.authority();
    match failure {
        TunnelFailure::Unreachable(detail) => {
            DataNetError::new(CONNECTION_FAILED, format!("cannot reach the proxy {proxy_address}: {detail}"))
        }
        TunnelFailure::Refused(answer) => {
            let status = answer.status;
            let reason = if answer.reason.is_empty() { String::new() } else { format!(" {}", answer.reason) };
            let hint = match status {
                407 if proxy.has_credentials() => ": it did not accept the credentials in the proxy URL",
                407 => ": it wants credentials (http://user:password@host:port)",
                403 => ": its rules do not allow this destination",
                _ => "",
            };
            let message =
                format!("the proxy {proxy_address} refused the tunnel to {destination} (HTTP {status}{reason}){hint}");
            DataNetError::new(CONNECTION_FAILED, message).with_status(status)
        }
        TunnelFailure::Closed => DataNetError::new(
            CONNECTION_FAILED,
            format!("the proxy {proxy_address} closed the connection before answering CONNECT to {destination}"),
        ),
        TunnelFailure::Unreadable(detail) => DataNetError::new(
            CONNECTION_FAILED,
            format!("the proxy {proxy_address} gave an unreadable answer to CONNECT to {destination}: {detail}"),
        ),
        TunnelFailure::Failed(detail) => DataNetError::new(
            CONNECTION_FAILED,
            format!("the tunnel through the proxy {proxy_address} to {destination} failed: {detail}"),
        ),
        TunnelFailure::TimedOut(after) => DataNetError::new(
            CONNECTION_FAILED,
            format!(
                "the proxy {proxy_address} did not open the tunnel to {destination} within {} ms",
                after.as_millis()
            ),
        ),
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back normalized.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address must be closed with ]")?;
        host.parse::<std::net::Ipv6Addr>().map_err(|_| "the IPv6 address in brackets is not valid")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("only a :port may follow an IPv6 address")?),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let port = match port {
        None => None,
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err("the port must be a number in 1..=65535".into()),
        },
        Some(_) => return Err("the port must be a number in 1..=65535".into()),
    };
    Ok((normalize_host(host), port))
}

/// A host name or address as URLs write it (no wildcard, no spaces).
fn valid_host(host: &str) -> bool {
    host.parse::<std::net::Ipv6Addr>().is_ok()
        || host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    ip >> shift == network >> shift
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::from_url(url).unwrap_or_else(|| panic!("{url} is a target"))
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("http://proxy.corp:3128").unwrap();
        assert_eq!((p.host(), p.port(), p.has_credentials()), ("proxy.corp", 3128, false));
        assert_eq!(p.authorization(), None);
        assert!(p.secrets().is_empty());
        let p = ProxyUrl::parse(" HTTP://Proxy.Corp/ ").unwrap();
        assert_eq!(p.address(), "proxy.corp:80");
        assert_eq!(ProxyUrl::parse("10.1.2.3:8080").unwrap().address(), "10.1.2.3:8080");
        assert_eq!(ProxyUrl::parse("http://[fd00::1]:3128").unwrap().address(), "[fd00::1]:3128");
        // RFC 7617's example, and percent-decoding of both parts.
        let p = ProxyUrl::parse("http://Aladdin:open%20sesame@proxy:1").unwrap();
        assert_eq!(p.authorization().as_deref(), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        let p = ProxyUrl::parse("http://us%40er:p%3Ass@w0rd@proxy:1").unwrap();
        assert_eq!(p.authorization().unwrap(), format!("Basic {}", base64::encode(b"us@er:p:ss@w0rd")));
        assert_eq!(p.address(), "proxy:1");
        let p = ProxyUrl::parse("http://alone@proxy:1").unwrap();
        assert_eq!(p.authorization().unwrap(), format!("Basic {}", base64::encode(b"alone:")));
    }

    #[test]
    fn proxy_url_errors_never_repeat_the_text() {
        for (text, needle) in [
            ("socks5://user:Pa55word@proxy:1080", "SOCKS"),
            ("https://user:Pa55word@proxy:443", "https://"),
            ("ftp://user:Pa55word@proxy", "only http://"),
            ("http://user:Pa55word@proxy:port", "port"),
            ("http://user:Pa55word@proxy:0", "port"),
            ("http://user:Pa55word@proxy:+80", "port"),
            ("http://user:Pa55word@proxy:70000", "port"),
            ("http://user:Pa55word@:8080", "host"),
            ("http://user:Pa55word@proxy:8080/path", "path"),
            ("http://user:Pa%zzword@proxy:8080", "percent"),
            ("http://user:Pa55word@pro xy:8080", "host"),
            ("http://user:Pa55word@[fd00::1:8080", "IPv6"),
            ("http://user:Pa55word@::1", "host"),
        ] {
            let why = ProxyUrl::parse(text).expect_err(text);
            assert!(why.contains(needle), "{text}: {why}");
            assert!(!why.contains("Pa55") && !why.contains("user"), "{text}: {why}");
        }
    }

    #[test]
    fn debug_and_secrets() {
        let p = ProxyUrl::parse("http://venue:S3cr%21t@proxy:8080").unwrap();
        assert_eq!(format!("{p:?}"), "http://[redacted]@proxy:8080");
        let secrets = p.secrets();
        for expected in ["S3cr!t", "venue:S3cr%21t", "venue:S3cr!t", &base64::encode(b"venue:S3cr!t")] {
            assert!(secrets.iter().any(|s| s == expected), "{expected} in {secrets:?}");
        }
        assert!(!secrets.iter().any(|s| s == "venue"), "the user name alone is not scrubbed");
    }

    #[test]
    fn settings() {
        assert_eq!(ProxySetting::parse(None), Ok(ProxySetting::Environment));
        assert_eq!(ProxySetting::parse(Some("")), Ok(ProxySetting::Direct));
        assert_eq!(ProxySetting::parse(Some(" Direct ")), Ok(ProxySetting::Direct));
        assert!(matches!(ProxySetting::parse(Some("proxy:1")), Ok(ProxySetting::Url(_))));
        assert!(ProxySetting::parse(Some("socks5://proxy")).is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(target("wss://WS.DataNet.art"), Target { host: "ws.datanet.art".into(), port: 443, secure: true });
        assert_eq!(target("https://api.datanet.art:8443/v1?x#y").authority(), "api.datanet.art:8443");
        assert_eq!(target("ws://[::1]:9000/ws").authority(), "[::1]:9000");
        assert_eq!(target("http://user@host.").authority(), "host:80");
        assert!(!target("ws://gw.local").secure);
        for bad in ["ftp://x", "wss://", "wss://host:notaport", "no-scheme", "wss://ho st"] {
            assert_eq!(Target::from_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST.", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["localhost.example.com", "mylocalhost", "10.0.0.1", "0.0.0.0", "::", "api.datanet.art"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn no_proxy_lists() {
        let list =
            NoProxy::parse(".corp.example, *.venue.lan  datanet.art:8443,10.0.0.0/8, 192.168.1.7,[fd00::7]:9000");
        let matches = |url: &str| list.matches(&target(url));
        assert!(matches("wss://corp.example") && matches("wss://a.b.corp.example") && matches("wss://CORP.EXAMPLE."));
        assert!(!matches("wss://notcorp.example") && !matches("wss://corp.example.com"));
        assert!(matches("wss://x.venue.lan") && matches("wss://venue.lan"));
        assert!(matches("wss://datanet.art:8443") && !matches("wss://datanet.art") && !matches("wss://ws.datanet.art"));
        assert!(matches("wss://10.200.3.4") && !matches("wss://11.0.0.1"));
        assert!(matches("wss://192.168.1.7:1234") && !matches("wss://192.168.1.8"));
        assert!(matches("wss://[::ffff:10.1.1.1]"), "IPv4-mapped addresses match IPv4 entries");
        assert!(matches("wss://[fd00::7]:9000") && !matches("wss://[fd00::7]:9001"));
        let v6 = NoProxy::parse("fd00::/8, ::2");
        assert!(v6.matches(&target("wss://[fdab::1]")) && v6.matches(&target("wss://[::2]")));
        assert!(!v6.matches(&target("wss://[fe80::1]")) && !v6.matches(&target("wss://10.0.0.1")));
        assert!(NoProxy::parse("*").matches(&target("wss://anything")));
        assert!(NoProxy::parse("0.0.0.0/0").matches(&target("wss://8.8.8.8")));
        let junk = NoProxy::parse(",, 10.0.0.0/99, [zz], :80, host:port, .");
        assert!(junk.entries.is_empty(), "{junk:?}");
        assert!(!NoProxy::default().matches(&target("wss://x")));
    }

    fn env(pairs: &[(&str, &str)]) -> ProxyEnvironment {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProxyEnvironment::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn environment_variables() {
        assert_eq!(env(&[]).proxy, None);
        let e =
            env(&[("ALL_PROXY", "http://all:1"), ("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:1")]);
        assert_eq!(e.proxy, Some(("https_proxy", "http://lower:1".to_string())));
        let e = env(&[("ALL_PROXY", "http://all:1"), ("https_proxy", "  "), ("HTTP_PROXY", "http://plain:1")]);
        assert_eq!(
            e.proxy,
            Some(("ALL_PROXY", "http://all:1".to_string())),
            "blank values and HTTP_PROXY do not count"
        );
        let e = env(&[("NO_PROXY", "upper.example"), ("no_proxy", "lower.example")]);
        assert!(
            e.no_proxy.matches(&target("wss://lower.example")) && !e.no_proxy.matches(&target("wss://upper.example"))
        );
    }

    #[test]
    fn routing() {
        let proxied = env(&[("HTTPS_PROXY", "http://u:Pw0rd-Secret@proxy.corp:3128"), ("NO_PROXY", "venue.lan")]);
        let via = |setting: &ProxySetting, e: &ProxyEnvironment, url: &str| {
            proxy_for(setting, e, &target(url)).unwrap().map(|p| p.address())
        };
        let from_env = ProxySetting::Environment;
        assert_eq!(via(&from_env, &proxied, "wss://ws.datanet.art"), Some("proxy.corp:3128".into()));
        assert_eq!(via(&from_env, &proxied, "https://api.datanet.art"), Some("proxy.corp:3128".into()));
        assert_eq!(via(&from_env, &proxied, "wss://gw.venue.lan"), None, "NO_PROXY");
        assert_eq!(via(&from_env, &proxied, "ws://ws.datanet.art"), None, "plain targets go direct");
        assert_eq!(via(&from_env, &proxied, "https://localhost:8080"), None, "loopback goes direct");
        assert_eq!(via(&from_env, &proxied, "wss://127.0.0.1"), None, "loopback goes direct");
        assert_eq!(via(&ProxySetting::Direct, &proxied, "wss://ws.datanet.art"), None, "\"\" turns proxies off");
        let configured = ProxySetting::parse(Some("http://cfg:8080")).unwrap();
        assert_eq!(via(&configured, &proxied, "wss://ws.datanet.art"), Some("cfg:8080".into()));
        assert_eq!(via(&configured, &proxied, "wss://gw.venue.lan"), None, "NO_PROXY applies to a configured proxy");
        assert_eq!(via(&configured, &env(&[]), "wss://127.0.0.1:9"), None);

        // An unusable variable is an error only where it would be used, and never shows its value.
        let socks = env(&[("ALL_PROXY", "socks5://u:Pw0rd-Secret@proxy:1080")]);
        let error = proxy_for(&from_env, &socks, &target("wss://ws.datanet.art")).unwrap_err();
        assert_eq!(error.code, INVALID_ARGUMENT);
        assert!(error.message.contains("ALL_PROXY") && error.message.contains("SOCKS"), "{}", error.message);
        assert!(!error.message.contains("Pw0rd"), "{}", error.message);
        assert_eq!(proxy_for(&from_env, &socks, &target("ws://gw.venue.lan")), Ok(None));
        assert_eq!(proxy_for(&ProxySetting::Direct, &socks, &target("wss://ws.datanet.art")), Ok(None));
    }

    #[test]
    fn connect_requests() {
        let p = ProxyUrl::parse("http://Aladdin:open%20sesame@proxy:1").unwrap();
        let request = connect_request(&p, &target("wss://ws.datanet.art"));
        assert!(
            request.starts_with("CONNECT ws.datanet.art:443 HTTP/1.1\r\nHost: ws.datanet.art:443\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n") && request.matches("\r\n\r\n").count() == 1, "{request}");
        let plain = connect_request(&ProxyUrl::parse("proxy:1").unwrap(), &target("https://[fd00::2]:8443"));
        assert!(plain.starts_with("CONNECT [fd00::2]:8443 HTTP/1.1\r\nHost: [fd00::2]:8443\r\n"), "{plain}");
        assert!(!plain.contains("Proxy-Authorization"), "{plain}");
    }

    #[test]
    fn connect_answers() {
        assert!(!connect_head_complete(b"HTTP/1.1 200 OK\r\n"));
        assert!(connect_head_complete(b"HTTP/1.1 200 OK\r\nVia: x\r\n\r\n"));
        let ok = parse_connect_answer(b"HTTP/1.0 200 Connection established\r\n\r\n").unwrap();
        assert_eq!((ok.status, ok.reason.as_str(), ok.is_established()), (200, "Connection established", true));
        assert!(parse_connect_answer(b"HTTP/1.1 204\r\n\r\n").unwrap().is_established());
        let refused = parse_connect_answer(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n").unwrap();
        assert_eq!((refused.status, refused.is_established()), (407, false));
        let odd = parse_connect_answer(b"HTTP/1.1 403 No\x07 way \xff\r\n\r\n");
        assert!(odd.is_err(), "not UTF-8: {odd:?}");
        let control = parse_connect_answer(b"HTTP/1.1 403 No\x07 way\r\n\r\n").unwrap();
        assert_eq!(control.reason, "No way");
        let long = format!("HTTP/1.1 502 {}\r\n\r\n", "x".repeat(500));
        assert_eq!(parse_connect_answer(long.as_bytes()).unwrap().reason.len(), MAX_REASON_CHARS);
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(matches!(parse_connect_answer(bad), Err(TunnelFailure::Unreadable(_))), "{bad:?}");
        }
    }

    #[test]
    fn tunnel_errors_name_the_proxy_and_status_only() {
        let with = ProxyUrl::parse("http://venue:Pw0rd-Secret@proxy.corp:3128").unwrap();
        let without = ProxyUrl::parse("http://proxy.corp:3128").unwrap();
        let to = target("wss://ws.datanet.art");
        let refused = |proxy: &ProxyUrl, status: u16, reason: &str| {
            tunnel_error(proxy, &to, TunnelFailure::Refused(ConnectAnswer { status, reason: reason.into() }))
        };
        let e = refused(&with, 407, "Proxy Authentication Required");
        assert_eq!(e.code, CONNECTION_FAILED);
        assert_eq!(e.status, Some(407));
        assert_eq!(
            e.message,
            "the proxy proxy.corp:3128 refused the tunnel to ws.datanet.art:443 (HTTP 407 Proxy Authentication \
             Required): it did not accept the credentials in the proxy URL"
        );
        assert!(refused(&without, 407, "")
            .message
            .ends_with("(HTTP 407): it wants credentials (http://user:password@host:port)"));
        assert!(refused(&without, 403, "Forbidden").message.contains("(HTTP 403 Forbidden): its rules"));
        let unreachable =
            tunnel_error(&with, &to, TunnelFailure::Unreachable("Connection refused (os error 111)".into()));
        assert_eq!(unreachable.message, "cannot reach the proxy proxy.corp:3128: Connection refused (os error 111)");
        let failures = [
            TunnelFailure::Closed,
            TunnelFailure::Unreadable("x".into()),
            TunnelFailure::Failed("y".into()),
            TunnelFailure::TimedOut(Duration::from_millis(1500)),
        ];
        for failure in failures {
            let e = tunnel_error(&with, &to, failure);
            assert!(e.message.contains("proxy.corp:3128") && e.message.contains("ws.datanet.art:443"), "{}", e.message);
        }
        for e in [refused(&with, 407, "x"), refused(&with, 403, "x"), unreachable] {
            assert!(!e.message.contains("venue") && !e.message.contains("Pw0rd"), "{}", e.message);
        }
    }
}
