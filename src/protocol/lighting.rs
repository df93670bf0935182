//! Lighting payloads (PROTOCOL.md §9): DMX frames, Art-Net ArtDMX packets, and the
//! numeric fields that binary content types put into the last-value store.

use serde_json::{Map, Value};

use super::error::{DataNetError, PROTOCOL_ERROR};

pub(crate) const DMX_MAX_SLOTS: usize = 512;
pub(crate) const ART_NET_ID: &[u8; 8] = b"Art-Net\0";
pub(crate) const ART_DMX_OPCODE: u16 = 0x5000;
pub(crate) const ART_NET_PROTOCOL_VERSION: u16 = 14;
pub(crate) const ART_DMX_HEADER_LEN: usize = 18;

pub(crate) const CONTENT_DMX: &str = "binary/dmx";
pub(crate) const CONTENT_ARTNET: &str = "binary/artnet";
pub(crate) const CONTENT_VECF32: &str = "binary/vecf32";

/// One DMX slot from any number: truncated toward zero, then clamped to 0..=255;
/// NaN (not a number) becomes 0, infinities clamp.
pub fn dmx_slot(value: f64) -> u8 {
    if value.is_nan() {
        0
    } else {
        value.trunc().clamp(0.0, 255.0) as u8
    }
}

/// A DMX frame: `length` clamped to 1..=512 slots; byte i is DMX channel i+1;
/// values beyond the length are ignored, missing ones are 0. No start code.
pub fn build_dmx_frame(values: &[f64], length: i64) -> Vec<u8> {
    let length = length.clamp(1, DMX_MAX_SLOTS as i64) as usize;
    let mut frame = vec![0u8; length];
    for (slot, value) in frame.iter_mut().zip(values) {
        *slot = dmx_slot(*value);
    }
    frame
}

/// The address and counters of an ArtDMX packet, clamped to their ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArtDmxHeader {
    /// 0..=15
    pub universe: u8,
    /// 0..=15
    pub subnet: u8,
    /// 0..=127
    pub net: u8,
    pub sequence: u8,
    pub physical: u8,
}

impl ArtDmxHeader {
    /// Clamps each field into its range (as the official SDKs do).
    pub fn clamped(universe: i64, subnet: i64, net: i64, sequence: i64, physical: i64) -> Self {
        let clamp = |v: i64, max: i64| v.clamp(0, max) as u8;
        ArtDmxHeader {
            universe: clamp(universe, 15),
            subnet: clamp(subnet, 15),
            net: clamp(net, 127),
            sequence: clamp(sequence, 255),
            physical: clamp(physical, 255),
        }
    }

    /// The 15-bit Port-Address: Net, Sub-Net, Universe.
    pub fn port_address(&self) -> u16 {
        (u16::from(self.net) << 8) | (u16::from(self.subnet) << 4) | u16::from(self.universe)
    }
}

/// An ArtDMX packet. The data length is max(len, 2) clamped to 2..=512 and rounded
/// up to even (Art-Net 4); the data is zero-padded to it.
pub fn build_art_dmx_packet(dmx: &[u8], header: ArtDmxHeader) -> Vec<u8> {
    let length = dmx.len().clamp(2, DMX_MAX_SLOTS);
    let length = length + length % 2;
    let mut packet = Vec::with_capacity(ART_DMX_HEADER_LEN + length);
    packet.extend_from_slice(ART_NET_ID);
    packet.extend_from_slice(&ART_DMX_OPCODE.to_le_bytes());
    packet.extend_from_slice(&ART_NET_PROTOCOL_VERSION.to_be_bytes());
    packet.push(header.sequence);
    packet.push(header.physical);
    packet.push((header.subnet << 4) | header.universe);
    packet.push(header.net);
    packet.extend_from_slice(&(length as u16).to_be_bytes());
    let data = &dmx[..dmx.len().min(length)];
    packet.extend_from_slice(data);
    packet.resize(ART_DMX_HEADER_LEN + length, 0);
    packet
}

/// A decoded ArtDMX packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtDmx {
    pub header: ArtDmxHeader,
    pub data: Vec<u8>,
}

/// Checks the id, the OpCode, 2 <= length <= 512 and that the packet holds
/// 18 + length bytes. Odd lengths are accepted (older senders use them).
pub fn decode_art_dmx(packet: &[u8]) -> Result<ArtDmx, DataNetError> {
    let invalid = |why: &str| Err(DataNetError::new(PROTOCOL_ERROR, format!("not an ArtDMX packet: {why}")));
    if packet.len() < ART_DMX_HEADER_LEN {
        return invalid("shorter than its 18-byte header");
    }
    if &packet[..8] != ART_NET_ID {
        return invalid("no Art-Net id");
    }
    if u16::from_le_bytes([packet[8], packet[9]]) != ART_DMX_OPCODE {
        return invalid("OpCode is not OpDmx (0x5000)");
    }
    let length = usize::from(u16::from_be_bytes([packet[16], packet[17]]));
    if !(2..=DMX_MAX_SLOTS).contains(&length) {
        return invalid("data length outside 2..=512");
    }
    if packet.len() < ART_DMX_HEADER_LEN + length {
        return invalid("shorter than its declared data length");
    }
    let header = ArtDmxHeader {
        sequence: packet[12],
        physical: packet[13],
        universe: packet[14] & 0x0f,
        subnet: packet[14] >> 4,
        net: packet[15] & 0x7f,
    };
    Ok(ArtDmx { header, data: packet[ART_DMX_HEADER_LEN..ART_DMX_HEADER_LEN + length].to_vec() })
}

/// Little-endian IEEE-754 float32 values (the project's reading of `binary/vecf32`).
pub fn decode_vecf32(bytes: &[u8]) -> Result<Vec<f32>, DataNetError> {
    if bytes.len() % 4 != 0 {
        return Err(DataNetError::new(
            PROTOCOL_ERROR,
            format!("binary/vecf32 payload of {} bytes is not a whole number of float32", bytes.len()),
        ));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Numbers a binary payload contributes to the last-value store: key `prefix`
/// followed by the index (DMX slots count from 1, float vectors from 0).
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryNumbers {
    pub prefix: String,
    pub first_index: usize,
    pub values: Vec<f64>,
}

/// Which numbers a binary message carries: `binary/dmx` slots (keys `1`..`512`, or
/// `u<N>/1`.. when the metadata names an integer `universe`), `binary/artnet` slots
/// of the packet's Port-Address (`u<port>/1`..), `binary/vecf32` values (`0`..).
/// `None` for other content types. DMX values are divided by 255 when `normalize`.
pub fn binary_numbers(
    content_type: &str,
    data: &[u8],
    meta_json: Option<&str>,
    normalize: bool,
) -> Result<Option<BinaryNumbers>, DataNetError> {
    let scale = if normalize { 1.0 / 255.0 } else { 1.0 };
    let slots = |bytes: &[u8]| bytes.iter().map(|&b| f64::from(b) * scale).collect::<Vec<f64>>();
    Ok(Some(match content_type {
        CONTENT_DMX => {
            if data.is_empty() || data.len() > DMX_MAX_SLOTS {
                return Err(DataNetError::new(
                    PROTOCOL_ERROR,
                    format!("binary/dmx payload of {} bytes (1..=512 expected)", data.len()),
                ));
            }
            let meta = meta_json.and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok());
            let universe = meta.as_ref().and_then(|m| m.get("universe")).and_then(Value::as_u64);
            BinaryNumbers {
                prefix: universe.map_or(String::new(), |u| format!("u{u}/")),
                first_index: 1,
                values: slots(data),
            }
        }
        CONTENT_ARTNET => {
            let packet = decode_art_dmx(data)?;
            BinaryNumbers {
                prefix: format!("u{}/", packet.header.port_address()),
                first_index: 1,
                values: slots(&packet.data),
            }
        }
        CONTENT_VECF32 => BinaryNumbers {
            prefix: String::new(),
            first_index: 0,
            values: decode_vecf32(data)?.into_iter().map(f64::from).collect(),
        },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn protocol_dmx_vectors() {
        assert_eq!(hex(&build_dmx_frame(&[255.0, 300.0, -1.0, 12.0], 6)), "ff ff 00 0c 00 00");
        assert_eq!(hex(&build_dmx_frame(&[255.0, 300.0, -1.0, 12.8], 6)), "ff ff 00 0c 00 00");
    }

    #[test]
    fn protocol_art_dmx_vector() {
        let header = ArtDmxHeader::clamped(3, 2, 1, 7, 5);
        assert_eq!(
            hex(&build_art_dmx_packet(&[1, 2, 3, 4], header)),
            "41 72 74 2d 4e 65 74 00 00 50 00 0e 07 05 23 01 00 04 01 02 03 04"
        );
    }

    #[test]
    fn dmx_clamping_edge_cases() {
        assert_eq!(dmx_slot(f64::NAN), 0);
        assert_eq!(dmx_slot(f64::INFINITY), 255);
        assert_eq!(dmx_slot(f64::NEG_INFINITY), 0);
        assert_eq!(dmx_slot(-0.9), 0);
        assert_eq!(dmx_slot(254.99), 254);
        assert_eq!(dmx_slot(1e300), 255);
        assert_eq!(build_dmx_frame(&[], 3), vec![0, 0, 0]);
        assert_eq!(build_dmx_frame(&[7.0], 0), vec![7], "length clamps up to 1");
        assert_eq!(build_dmx_frame(&[7.0], -5), vec![7]);
        assert_eq!(build_dmx_frame(&[1.0; 600], 9999).len(), 512, "length clamps down to 512");
        assert_eq!(build_dmx_frame(&[1.0, 2.0, 3.0], 2), vec![1, 2], "extra values ignored");
    }

    #[test]
    fn art_dmx_lengths_and_clamps() {
        let header = ArtDmxHeader::clamped(99, -1, 300, 256, -3);
        assert_eq!(header, ArtDmxHeader { universe: 15, subnet: 0, net: 127, sequence: 255, physical: 0 });
        let short = build_art_dmx_packet(&[], ArtDmxHeader::default());
        assert_eq!((short.len(), &short[16..]), (20, &[0, 2, 0, 0][..]), "empty data pads to 2");
        let odd = build_art_dmx_packet(&[9, 9, 9], ArtDmxHeader::default());
        assert_eq!((&odd[16..18], &odd[18..]), (&[0, 4][..], &[9, 9, 9, 0][..]), "odd rounds up to even");
        let long = build_art_dmx_packet(&[1; 600], ArtDmxHeader::default());
        assert_eq!((long.len(), &long[16..18]), (18 + 512, &[2, 0][..]));
    }

    #[test]
    fn art_dmx_round_trip_and_rejections() {
        let header = ArtDmxHeader::clamped(3, 2, 1, 7, 5);
        let packet = build_art_dmx_packet(&[1, 2, 3, 4], header);
        let decoded = decode_art_dmx(&packet).unwrap();
        assert_eq!(decoded, ArtDmx { header, data: vec![1, 2, 3, 4] });
        assert_eq!(header.port_address(), 0x123);
        let mut odd = packet.clone();
        odd[17] = 3;
        assert_eq!(decode_art_dmx(&odd).unwrap().data, vec![1, 2, 3], "odd lengths from other senders decode");
        let mut bad_id = packet.clone();
        bad_id[0] = b'a';
        let mut bad_op = packet.clone();
        bad_op[9] = 0x51;
        let mut too_long = packet.clone();
        too_long[17] = 5;
        let mut zero = packet.clone();
        zero[17] = 1;
        for bad in [&packet[..10], &bad_id[..], &bad_op[..], &too_long[..], &zero[..]] {
            assert_eq!(decode_art_dmx(bad).unwrap_err().code, PROTOCOL_ERROR);
        }
    }

    #[test]
    fn binary_numbers_per_content_type() {
        let meta = json!({"universe": 2});
        let dmx = binary_numbers(CONTENT_DMX, &[0, 255], Some(&meta.to_string()), false).unwrap().unwrap();
        assert_eq!(dmx, BinaryNumbers { prefix: "u2/".into(), first_index: 1, values: vec![0.0, 255.0] });
        let normalized = binary_numbers(CONTENT_DMX, &[255], None, true).unwrap().unwrap();
        assert_eq!((normalized.prefix.as_str(), normalized.values[0]), ("", 1.0));
        let packet = build_art_dmx_packet(&[10, 20], ArtDmxHeader::clamped(1, 0, 0, 0, 0));
        let art = binary_numbers(CONTENT_ARTNET, &packet, None, false).unwrap().unwrap();
        assert_eq!((art.prefix.as_str(), art.values.clone()), ("u1/", vec![10.0, 20.0]));
        let floats: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        let vec = binary_numbers(CONTENT_VECF32, &floats, None, false).unwrap().unwrap();
        assert_eq!((vec.first_index, vec.values), (0, vec![1.5, -2.0]));
        assert_eq!(binary_numbers("application/octet-stream", &[1], None, false).unwrap(), None);
        assert!(binary_numbers(CONTENT_VECF32, &[1, 2, 3], None, false).is_err());
        assert!(binary_numbers(CONTENT_DMX, &[], None, false).is_err());
        assert!(binary_numbers(CONTENT_ARTNET, b"Art-Net", None, false).is_err());
    }
}
