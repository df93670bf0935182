//! The exports that need no client: DMX and Art-Net (docs/PROTOCOL.md §9) and
//! base64, computed by the library so every host gets the same bytes.

use std::ffi::c_char;

use super::{
    check_buffer, check_out, guard, slice, write_bytes, write_text, DnArtDmx, Failure, DN_ERR_INVALID_ARGUMENT,
};
use crate::protocol::base64;
use crate::protocol::lighting::{self, ArtDmxHeader};

/// Builds a DMX frame (docs/PROTOCOL.md §9): `length` clamped to 1..512; each value
/// truncated toward zero and clamped to 0..255, NaN as 0; missing values 0.
///
/// # Safety
/// `values` valid for `count` doubles; `out` NULL with `cap` 0 or valid for `cap`
/// bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_build_dmx_frame(
    values: *const f64,
    count: usize,
    length: i64,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let values = slice(values, count, "values")?;
        check_buffer(out, cap, "out")?;
        check_out(out_len, "out_len")?;
        write_bytes(&lighting::build_dmx_frame(values, length), out, cap, out_len)
    })
}

/// Builds an ArtDMX packet: fields clamped (universe and subnet 0..15, net 0..127,
/// sequence and physical 0..255); data length max(len, 2) clamped to 2..512 and
/// rounded up to even, zero-padded.
///
/// # Safety
/// `dmx` valid for `len` bytes; `out` NULL with `cap` 0 or valid for `cap` bytes;
/// `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_build_art_dmx_packet(
    dmx: *const u8,
    len: usize,
    universe: i64,
    subnet: i64,
    net: i64,
    sequence: i64,
    physical: i64,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let dmx = slice(dmx, len, "dmx")?;
        check_buffer(out, cap, "out")?;
        check_out(out_len, "out_len")?;
        let header = ArtDmxHeader::clamped(universe, subnet, net, sequence, physical);
        write_bytes(&lighting::build_art_dmx_packet(dmx, header), out, cap, out_len)
    })
}

/// Decodes an ArtDMX packet: header fields into `*out_header`, DMX data into
/// `data` (up to 512 bytes; `*out_len` gets its length). A packet that is not a
/// valid ArtDMX is `DN_ERR_INVALID_ARGUMENT`. With `DN_ERR_BUFFER_TOO_SMALL` only
/// `*out_len` is written.
///
/// # Safety
/// `packet` valid for `len` bytes; `data` NULL with `cap` 0 or valid for `cap`
/// bytes; out-pointers valid.
#[no_mangle]
pub unsafe extern "C" fn dn_decode_art_dmx(
    packet: *const u8,
    len: usize,
    out_header: *mut DnArtDmx,
    data: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let packet = slice(packet, len, "packet")?;
        check_out(out_header, "out_header")?;
        check_buffer(data, cap, "data")?;
        check_out(out_len, "out_len")?;
        let decoded = lighting::decode_art_dmx(packet)?;
        write_bytes(&decoded.data, data, cap, out_len)?;
        let h = decoded.header;
        out_header.write(DnArtDmx {
            universe: h.universe,
            subnet: h.subnet,
            net: h.net,
            sequence: h.sequence,
            physical: h.physical,
            reserved: 0,
            port_address: h.port_address(),
            length: decoded.data.len() as u32,
        });
        Ok(())
    })
}

/// Standard padded base64 of `data`, NUL-terminated.
///
/// # Safety
/// `data` valid for `len` bytes; `out` NULL with `cap` 0 or valid for `cap` bytes;
/// `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_base64_encode(
    data: *const u8,
    len: usize,
    out: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let data = slice(data, len, "data")?;
        check_buffer(out, cap, "out")?;
        check_out(out_len, "out_len")?;
        write_text(base64::encode(data).as_bytes(), out, cap, out_len)
    })
}

/// Decodes standard padded base64; invalid text is `DN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `text` NUL-terminated; `out` NULL with `cap` 0 or valid for `cap` bytes;
/// `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_base64_decode(text: *const c_char, out: *mut u8, cap: usize, out_len: *mut usize) -> i32 {
    guard(|| {
        let text = super::text(text, "text")?;
        check_buffer(out, cap, "out")?;
        check_out(out_len, "out_len")?;
        let decoded =
            base64::decode(text).map_err(|e| Failure(DN_ERR_INVALID_ARGUMENT, format!("invalid_argument: {e}")))?;
        write_bytes(&decoded, out, cap, out_len)
    })
}
