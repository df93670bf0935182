//! DataNet realtime pub/sub client for TouchDesigner.

pub mod protocol;
