//! Connections through an HTTP proxy: which of the two connections (token
//! requests to `api_url`, the WebSocket to `ws_url`) use one, and the CONNECT
//! exchange over a tokio socket (the WebSocket) and over ureq's blocking socket
//! (the REST calls). TLS to DataNet then runs end to end inside the tunnel.
//!
//! ureq 2 has a proxy of its own, and it does send CONNECT with Basic
//! credentials, but it reports every refusal other than 401/407 as "Proxy failed
//! to connect" without the status, does not percent-decode credentials and cannot
//! take an IPv6 proxy. So both paths use the one CONNECT exchange below, plugged
//! into ureq through its public `Resolver` (connect to the proxy) and
//! `TlsConnector` (open the tunnel, then TLS) hooks.

use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::Config;
use crate::protocol::error::{DataNetError, CONNECTION_FAILED, INVALID_ARGUMENT};
use crate::protocol::proxy::{
    connect_head_complete, connect_request, parse_connect_answer, proxy_for, tunnel_error, ProxyEnvironment, ProxyUrl,
    Target, TunnelFailure, MAX_CONNECT_HEAD,
};

/// A connection that goes through a proxy: the proxy, and where the tunnel leads.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub proxy: ProxyUrl,
    pub target: Target,
}

/// The proxy (if any) of each of the client's two connections, decided once
/// when the client is made.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub api: Option<Route>,
    pub ws: Option<Route>,
    /// Where the WebSocket connects when it goes direct.
    pub ws_target: Target,
}

impl Routes {
    pub fn resolve(config: &Config, environment: &ProxyEnvironment) -> Result<Routes, DataNetError> {
        let setting = config.proxy_setting()?;
        let target = |key: &str, url: &str| {
            Target::from_url(url)
                .ok_or_else(|| DataNetError::new(INVALID_ARGUMENT, format!("{key} has no usable host and port")))
        };
        let route = |target: &Target| -> Result<Option<Route>, DataNetError> {
            Ok(proxy_for(&setting, environment, target)?.map(|proxy| Route { proxy, target: target.clone() }))
        };
        let api = route(&target("api_url", &config.api_url)?)?;
        let ws_target = target("ws_url", &config.ws_url)?;
        Ok(Routes { api, ws: route(&ws_target)?, ws_target })
    }

    /// Everything to scrub from texts the client shows.
    pub fn secrets(&self) -> Vec<String> {
        self.api.iter().chain(self.ws.iter()).flat_map(|route| route.proxy.secrets()).collect()
    }

    /// For status: the proxy each connection uses, `host:port` or null.
    pub fn to_json(&self) -> Value {
        let address = |route: &Option<Route>| route.as_ref().map(|r| r.proxy.address());
        json!({"api": address(&self.api), "ws": address(&self.ws)})
    }
}

/// Opens a tunnel for the WebSocket: TCP to the proxy, CONNECT, the answer.
/// The caller bounds the time it takes.
pub(crate) async fn tunnel(route: &Route) -> Result<TcpStream, DataNetError> {
    let fail = |failure| tunnel_error(&route.proxy, &route.target, failure);
    let mut stream = TcpStream::connect((route.proxy.host(), route.proxy.port()))
        .await
        .map_err(|e| fail(TunnelFailure::Unreachable(e.to_string())))?;
    let _ = stream.set_nodelay(true);
    let request = connect_request(&route.proxy, &route.target);
    stream.write_all(request.as_bytes()).await.map_err(|e| fail(TunnelFailure::Failed(e.to_string())))?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !connect_head_complete(&head) {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(fail(TunnelFailure::Unreadable(format!("its answer is over {MAX_CONNECT_HEAD} bytes"))));
        }
        // A byte at a time: whatever follows the head belongs to the tunnel.
        match stream.read(&mut byte).await {
            Ok(0) => return Err(fail(TunnelFailure::Closed)),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(fail(TunnelFailure::Failed(e.to_string()))),
        }
    }
    established(route, &head)?;
    Ok(stream)
}

/// The same exchange on a blocking socket whose timeouts ureq has already set
/// (to what is left of `budget`).
fn tunnel_blocking<S: Read + Write + ?Sized>(route: &Route, io: &mut S, budget: Duration) -> Result<(), DataNetError> {
    let fail = |failure| tunnel_error(&route.proxy, &route.target, failure);
    let request = connect_request(&route.proxy, &route.target);
    io.write_all(request.as_bytes())
        .and_then(|()| io.flush())
        .map_err(|e| fail(TunnelFailure::Failed(e.to_string())))?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !connect_head_complete(&head) {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(fail(TunnelFailure::Unreadable(format!("its answer is over {MAX_CONNECT_HEAD} bytes"))));
        }
        match io.read(&mut byte) {
            Ok(0) => return Err(fail(TunnelFailure::Closed)),
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(timed_out(route, budget));
            }
            Err(e) => return Err(fail(TunnelFailure::Failed(e.to_string()))),
        }
    }
    established(route, &head)
}

fn established(route: &Route, head: &[u8]) -> Result<(), DataNetError> {
    let fail = |failure| tunnel_error(&route.proxy, &route.target, failure);
    let answer = parse_connect_answer(head).map_err(fail)?;
    if answer.is_established() {
        Ok(())
    } else {
        Err(fail(TunnelFailure::Refused(answer)))
    }
}

/// The error for a proxy that did not open the tunnel within `budget`.
pub(crate) fn timed_out(route: &Route, budget: Duration) -> DataNetError {
    tunnel_error(&route.proxy, &route.target, TunnelFailure::TimedOut(budget))
}

/// The agent for the REST calls: direct, or through the route's proxy.
pub(crate) fn http_agent(config: &Config, tls: Arc<rustls::ClientConfig>, route: Option<&Route>) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new().timeout_connect(config.connect_timeout).timeout(config.connect_timeout);
    match route {
        None => builder.tls_config(tls).build(),
        Some(route) => builder
            .resolver(ProxyAddress(route.clone()))
            .tls_connector(Arc::new(TunnelThenTls { route: route.clone(), tls, budget: config.connect_timeout }))
            .build(),
    }
}

/// Resolves every host the agent asks for to the proxy: the agent only ever
/// talks to `api_url`, and only the proxy resolves that name.
struct ProxyAddress(Route);

impl ureq::Resolver for ProxyAddress {
    fn resolve(&self, _netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let proxy = &self.0.proxy;
        (proxy.host(), proxy.port()).to_socket_addrs().map(Iterator::collect).map_err(|e| {
            let failure = TunnelFailure::Unreachable(format!("cannot resolve {}: {e}", proxy.host()));
            into_io(tunnel_error(proxy, &self.0.target, failure))
        })
    }
}

/// On the socket to the proxy: CONNECT to `api_url`'s host and port, then TLS.
struct TunnelThenTls {
    route: Route,
    tls: Arc<rustls::ClientConfig>,
    budget: Duration,
}

impl ureq::TlsConnector for TunnelThenTls {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let host = dns_name.trim_start_matches('[').trim_end_matches(']');
        if !host.eq_ignore_ascii_case(&self.route.target.host) {
            // A redirect elsewhere: the tunnel's port would be a guess.
            let message = format!(
                "the API redirected to {host}; through the proxy only {} is reached",
                self.route.target.authority()
            );
            return Err(into_io(DataNetError::new(CONNECTION_FAILED, message)).into());
        }
        tunnel_blocking(&self.route, &mut io, self.budget).map_err(|e| ureq::Error::from(into_io(e)))?;
        ureq::TlsConnector::connect(&self.tls, dns_name, io)
    }
}

/// Carries a client error through ureq, to be found again by `proxy_failure`.
#[derive(Debug)]
struct ProxyFailure(DataNetError);

impl std::fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ProxyFailure {}

fn into_io(error: DataNetError) -> std::io::Error {
    std::io::Error::other(ProxyFailure(error))
}

/// The proxy's part in a failed REST call, if it had one: the error the tunnel
/// reported, or, when the proxy could not be reached at all, one naming it.
pub(crate) fn proxy_failure(error: &ureq::Error, route: Option<&Route>) -> Option<DataNetError> {
    let route = route?;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut innermost = None;
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(ProxyFailure(found)) = io.get_ref().and_then(|inner| inner.downcast_ref::<ProxyFailure>()) {
                return Some(found.clone());
            }
        }
        innermost = Some(current);
        source = current.source();
    }
    // Only the TCP connection to the proxy is the proxy's failure; a TLS failure
    // inside an open tunnel (also ConnectionFailed) is the server's. "Connect
    // error" is ureq 2's wording for the former (tests/proxy.rs checks both cases).
    let reaching_the_proxy = match error {
        ureq::Error::Transport(transport) => match transport.kind() {
            ureq::ErrorKind::Dns => true,
            ureq::ErrorKind::ConnectionFailed => transport.message() == Some("Connect error"),
            _ => false,
        },
        ureq::Error::Status(..) => false,
    };
    reaching_the_proxy.then(|| {
        let detail = innermost.map_or_else(|| error.kind().to_string(), ToString::to_string);
        tunnel_error(&route.proxy, &route.target, TunnelFailure::Unreachable(detail))
    })
}
