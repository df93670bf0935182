//! `datanet-gateway`: a local DataNet gateway for development, LAN-only shows and
//! tests. It implements the server side of PROTOCOL.md (token issue, `/ws` with the
//! bearer subprotocol, envelopes and acks, presence, the error codes) plus test
//! controls under `/_admin/`. A development tool: never linked into the library.

mod admin;
mod cli;
mod envelope;
mod http;
mod hub;
mod jwt;
mod record;
mod recording;
mod replay;
mod rest;
mod session;
mod show;
mod upstream;

use http::{ReadError, Response};
use hub::Hub;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};

/// A client that has not sent a whole request by then is hung up on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(options)) => options,
        Ok(cli::Command::Help) => {
            println!("{}\n\n{}", cli::USAGE, show::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("datanet-gateway: {message}\n\n{}\n\n{}", cli::USAGE, show::USAGE);
            return ExitCode::from(2);
        }
    };
    // Before listening: a bad recording or relay setting is one clear error.
    let show = match show::prepare(&options.show, &options.project) {
        Ok(show) => show,
        Err(message) => {
            eprintln!("datanet-gateway: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(serve(options, show)),
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("datanet-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: cli::Options, show: show::Prepared) -> std::io::Result<()> {
    let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
    let address = listener.local_addr()?;
    // The first stdout line is a contract: test harnesses read the real port from it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "datanet-gateway listening on http://{address}")?;
    stdout.flush()?;
    drop(stdout);

    let hub = Arc::new(Hub::new(options.project, &options.secret, options.token_ttl_secs, options.admin));
    show.start(&hub)?;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Envelopes are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle_connection(hub.clone(), stream, peer));
            }
            Err(error) => {
                log(format_args!("accept failed: {error}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Reads one request and routes it. Admin requests are answered even while the
/// gateway is frozen; everything else waits for the thaw.
async fn handle_connection(hub: Arc<Hub>, mut stream: TcpStream, peer: SocketAddr) {
    let (request, early_frames) = match tokio::time::timeout(REQUEST_TIMEOUT, http::read_request(&mut stream)).await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(error)) => return refuse(stream, peer, &error).await,
        Err(_elapsed) => return,
    };
    if request.path.starts_with("/_admin/") {
        let response = if hub.admin_enabled { admin::handle(&hub, &request) } else { Response::not_found() };
        return response.send(stream).await;
    }
    hub.wait_until_thawed().await;
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/auth/token") => rest::issue_token(&hub, &request).send(stream).await,
        ("GET", "/presence") => rest::presence(&hub, &request).send(stream).await,
        ("GET", "/ws") => session::serve(hub, stream, request, early_frames, peer).await,
        _ => Response::not_found().send(stream).await,
    }
}

async fn refuse(stream: TcpStream, peer: SocketAddr, error: &ReadError) {
    if let Some(response) = Response::for_read_error(error) {
        log(format_args!("bad request from {peer}: {error:?}"));
        response.send(stream).await;
    }
}

/// One line on stderr. Callers never pass API keys or tokens.
pub fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("datanet-gateway: {line}");
}

pub fn unix_now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

pub fn unix_now_secs() -> i64 {
    i64::try_from(unix_now_ms() / 1000).unwrap_or(i64::MAX)
}
