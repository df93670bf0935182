//! Connections before they are HTTP or WebSocket: the accept loop, plain or TLS
//! transport, and the routing of each connection by its request line: `GET /ws`
//! goes to tokio-tungstenite's server handshake, everything else to hyper. The
//! bytes read to decide are replayed to whichever takes the connection.

use crate::hub::{Hub, Stats};
use crate::throttle::Throttle;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Longest request line read to route a connection; a longer one goes to hyper,
/// which refuses it.
const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// After a refusal, how long the socket waits for the peer to finish so that
/// unread input does not turn the close into a reset that eats the answer.
const LINGER: Duration = Duration::from_secs(1);

/// Connections still in their TLS, HTTP or WebSocket handshakes, or serving HTTP,
/// beyond the WebSocket sessions (which `--max-connections` bounds): more are
/// accepted and closed at once, so half-open handshakes cannot exhaust the process.
pub fn pending_cap(hub: &Hub) -> usize {
    hub.limits.max_connections.clamp(1024, 16_384)
}

pub async fn accept_loop(hub: Arc<Hub>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let pending = Arc::new(Semaphore::new(pending_cap(&hub)));
    let shed = Arc::new(Throttle::new());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(permit) = pending.clone().try_acquire_owned() else {
                    Stats::add(&hub.stats.shed_connections, 1);
                    shed.warn("gateway", "connections shed: too many in their handshakes");
                    continue;
                };
                // Envelopes are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                let (hub, tls) = (hub.clone(), tls.clone());
                tokio::spawn(async move {
                    handle_connection(hub, stream, peer, tls, permit).await;
                });
            }
            Err(error) => {
                shed.warn("gateway", &format!("accept failed: {error}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn handle_connection(
    hub: Arc<Hub>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let io = match tls {
        None => Io::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout(hub.limits.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Io::Tls(Box::new(stream)),
            Ok(Err(error)) => return crate::warn_peer(peer, &format!("TLS handshake failed: {error}")),
            Err(_) => return crate::warn_peer(peer, "TLS handshake timed out"),
        },
    };
    let (line, io) = match tokio::time::timeout(hub.limits.header_timeout, read_request_line(io)).await {
        Ok(Ok(read)) => read,
        Ok(Err(_)) => return,
        Err(_) => return crate::warn_peer(peer, "request line timed out"),
    };
    let stream = Rewound::new(line.clone(), io);
    if is_websocket_route(&line) {
        crate::session::serve(hub, stream, peer, permit).await;
    } else {
        crate::http::serve(hub, stream, peer).await;
        drop(permit);
    }
}

/// `GET /ws` or `GET /ws?...`: the WebSocket endpoint.
fn is_websocket_route(head: &[u8]) -> bool {
    let Some(target) = head.strip_prefix(b"GET /ws") else { return false };
    matches!(target.first(), Some(b' ' | b'?'))
}

/// Reads until the first line is complete (or too long, or the peer stops).
async fn read_request_line(mut io: Io) -> io::Result<(Vec<u8>, Io)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buffer.contains(&b'\n') && buffer.len() < MAX_REQUEST_LINE {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok((buffer, io))
}

/// Ends a refused connection politely: its answer is written, then the input is
/// drained (bounded in time) so the peer reads the answer instead of a reset.
pub async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The transport under HTTP and WebSocket: a TCP stream, or TLS over one.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream with bytes already read from it put back in front.
pub struct Rewound {
    prefix: Vec<u8>,
    offset: usize,
    inner: Io,
}

impl Rewound {
    pub fn new(prefix: Vec<u8>, inner: Io) -> Self {
        Rewound { prefix, offset: 0, inner }
    }
}

impl AsyncRead for Rewound {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.offset < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.offset);
            buf.put_slice(&this.prefix[this.offset..this.offset + n]);
            this.offset += n;
            if this.offset == this.prefix.len() {
                // Replayed: give the memory back for the connection's lifetime.
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_the_websocket_endpoint() {
        assert!(is_websocket_route(b"GET /ws HTTP/1.1\r\n"));
        assert!(is_websocket_route(b"GET /ws?x=1 HTTP/1.1\r\n"));
        for other in [&b"GET /wsx HTTP/1.1\r\n"[..], b"POST /ws HTTP/1.1\r\n", b"GET / HTTP/1.1", b"GET /ws"] {
            assert!(!is_websocket_route(other), "{:?}", String::from_utf8_lossy(other));
        }
    }
}
