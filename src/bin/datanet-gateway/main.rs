//! `datanet-gateway`: a local DataNet gateway for development, LAN shows and
//! tests. It implements the server side of PROTOCOL.md (token issue, `/ws` with the
//! bearer subprotocol, envelopes and acks, presence, the error codes) plus test
//! controls under `/_admin/`. Secure by default off loopback, fair under load,
//! bounded in bytes; a show tool besides: recording, replay and the venue relay
//! (`show.rs`). See docs/GATEWAY.md. Never linked into the library.

mod admin;
mod cli;
mod envelope;
mod http;
mod hub;
mod jwt;
mod keys;
mod limits;
mod net;
mod outbox;
mod record;
mod recording;
mod replay;
mod rest;
mod secure;
mod session;
mod show;
mod throttle;
mod tls;
mod upstream;

use hub::{Hub, Setup};
use keys::Keys;
use secure::AdminAccess;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use throttle::Throttle;
use tokio::net::TcpListener;

const SECRET_VARIABLE: &str = "DATANET_GATEWAY_SECRET";

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(options)) => *options,
        Ok(cli::Command::Help) => {
            println!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("datanet-gateway: {message}\n\n{}", cli::usage());
            return ExitCode::from(2);
        }
    };
    let prepared = prepare(&options);
    let Prepared { setup, tls, show } = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("datanet-gateway: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(serve(options, setup, tls, show)),
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

/// Everything checked and opened before binding, so a mistake is one clear error
/// and no half-started gateway.
struct Prepared {
    setup: Setup,
    tls: Option<tokio_rustls::TlsAcceptor>,
    show: show::Prepared,
}

/// The LAN rules, secrets, keys, TLS files; then the show tools (the replay file
/// read through, the recording opened, the relay's client built).
fn prepare(options: &cli::Options) -> Result<Prepared, String> {
    let warnings = secure::check(options)?;
    let secret = secure::token_secret(&options.secret, std::env::var(SECRET_VARIABLE).ok())?;
    let keys = match &options.keys_file {
        None => Keys::AnyDeveloperKey,
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| format!("--keys-file {}: {error}", path.display()))?;
            Keys::parse(&text).map_err(|why| format!("--keys-file {}: {why}", path.display()))?
        }
    };
    let admin_token = match &options.admin_token_file {
        None => None,
        Some(path) => Some(secure::read_secret_file(path, "--admin-token-file")?),
    };
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let setup = Setup {
        project: options.project.clone(),
        secret,
        token_ttl_secs: options.token_ttl_secs,
        admin: AdminAccess::new(options.admin, admin_token.as_deref()),
        keys,
        limits: options.limits.clone(),
        warnings,
    };
    let show = show::prepare(&options.show, &options.project)?;
    Ok(Prepared { setup, tls, show })
}

async fn serve(
    options: cli::Options,
    setup: Setup,
    tls: Option<tokio_rustls::TlsAcceptor>,
    show: show::Prepared,
) -> std::io::Result<()> {
    let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The first stdout line is a contract: test harnesses read the real port from it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "datanet-gateway listening on {scheme}://{address}")?;
    stdout.flush()?;
    drop(stdout);
    for warning in &setup.warnings {
        log(format_args!("warning: {warning}"));
    }
    let hub = Arc::new(Hub::new(setup));
    // After the address line: the replay and the relay print on stdout too.
    show.start(&hub)?;
    net::accept_loop(hub, listener, tls).await;
    Ok(())
}

/// One line on stderr. Callers never pass API keys, tokens or secrets.
pub fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("datanet-gateway: {line}");
}

/// Warnings any peer can provoke before it has a session: one line per interval.
static PEER_WARNINGS: Throttle = Throttle::new();

pub fn warn_peer(peer: SocketAddr, what: &str) {
    PEER_WARNINGS.warn_with("peers", what, &format!("from {}", peer.ip()));
}

pub fn unix_now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

pub fn unix_now_secs() -> i64 {
    i64::try_from(unix_now_ms() / 1000).unwrap_or(i64::MAX)
}
