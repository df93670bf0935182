//! Sans-IO protocol core: everything DataNet's wire protocol says, with no sockets,
//! threads or clocks. The client drives it; tests feed it PROTOCOL.md's vectors.

pub mod base64;
