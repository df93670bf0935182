//! DataNet realtime pub/sub client for TouchDesigner.
//!
//! Layers, imports pointing down only: [`ffi`] (the C ABI, the only `unsafe`) →
//! [`client`] (I/O: the connection thread, queues, last-value store) →
//! [`protocol`] (sans-IO: envelopes, errors, codecs, backoff, flattening).

// Errors travel the cold path (one per failure, never per message); a
// 184-byte `DataNetError` carrying every protocol field is worth more than
// boxing each of them.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod ffi;
pub mod protocol;
