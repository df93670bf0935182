//! Sans-IO protocol core: everything DataNet's wire protocol says, with no sockets,
//! threads or clocks. The client drives it; tests feed it PROTOCOL.md's vectors.

pub mod backoff;
pub mod base64;
pub mod channel;
pub mod envelope;
pub mod error;
pub mod flatten;
pub mod json_walk;
pub mod jwt;
pub mod lighting;
pub mod outbound;
pub mod pacing;
pub mod pickle;
pub mod proxy;
pub mod rest;
pub mod streams;
pub mod subscriptions;
