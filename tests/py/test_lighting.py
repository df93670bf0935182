"""DMX and Art-Net through DataNet.py: PROTOCOL.md §9 vectors, clamping, and the
official SDK's builders as a second implementation."""

import math

import pytest

from conftest import library_path

import DataNet


@pytest.fixture(autouse=True)
def library(monkeypatch):
    monkeypatch.setenv("DATANET_LIB", library_path())


def test_protocol_vectors():
    assert DataNet.build_dmx_frame([255, 300, -1, 12], 6).hex(" ") == "ff ff 00 0c 00 00"
    assert DataNet.build_dmx_frame([255, 300, -1, 12.8], 6).hex(" ") == "ff ff 00 0c 00 00"
    packet = DataNet.build_art_dmx_packet(bytes([1, 2, 3, 4]), universe=3, subnet=2, net=1, sequence=7, physical=5)
    assert packet.hex(" ") == "41 72 74 2d 4e 65 74 00 00 50 00 0e 07 05 23 01 00 04 01 02 03 04"
    assert DataNet.base64_encode(bytes([0, 1, 2, 255])) == "AAEC/w=="
    assert DataNet.base64_encode(bytes([4, 5])) == "BAU="
    assert DataNet.base64_encode(bytes([255, 0])) == "/wA="
    assert DataNet.base64_decode("AAEC/w==") == bytes([0, 1, 2, 255])


@pytest.mark.parametrize("values, length, expected", [
    ([math.nan, math.inf, -math.inf], 3, "00 ff 00"),
    ([-0.5, 255.9, 256, 1e300, -1e300], 5, "00 ff ff ff 00"),
    (["12", None, True, False, [1]], 5, "00 00 01 00 00"),
    ([10 ** 400, -(10 ** 400)], 2, "ff 00"),
    ([], 4, "00 00 00 00"),
    ([7], 0, "07"),
    ([7], -3, "07"),
    ([1, 2, 3], 2, "01 02"),
])
def test_dmx_clamping(values, length, expected):
    assert DataNet.build_dmx_frame(values, length).hex(" ") == expected


def test_dmx_length_bounds():
    assert len(DataNet.build_dmx_frame([1] * 600, 10 ** 30)) == 512
    assert DataNet.build_dmx_frame([9] * 600) == bytes([9] * 512)


def test_art_net_fields_clamp_and_lengths_round_up():
    packet = DataNet.build_art_dmx_packet([1, 2, 3], universe=99, subnet=-4, net=500, sequence=300, physical=-1)
    fields = DataNet.decode_art_dmx(packet)
    assert (fields["universe"], fields["subnet"], fields["net"], fields["sequence"], fields["physical"]) == (
        15, 0, 127, 255, 0)
    assert fields["data"] == bytes([1, 2, 3, 0]), "odd lengths round up to even"
    assert DataNet.decode_art_dmx(DataNet.build_art_dmx_packet(b""))["data"] == b"\x00\x00"


def test_decoder_refuses_what_is_not_art_dmx():
    packet = DataNet.build_art_dmx_packet(b"\x01\x02")
    for bad in (packet[:17], b"Art-Nyt\x00" + packet[8:], packet[:8] + b"\x00\x51" + packet[10:],
                packet[:16] + b"\x00\x09" + packet[18:], packet[:16] + b"\x00\x01" + packet[18:]):
        with pytest.raises(DataNet.DataNetError) as error:
            DataNet.decode_art_dmx(bad)
        assert error.value.code == "protocol_error"
    with pytest.raises(DataNet.DataNetError):
        DataNet.base64_decode("not base64!")


sdk = pytest.importorskip("datanet", reason="datanet-sdk is installed by tests/run.sh")


@pytest.mark.parametrize("values, length", [
    ([255, 80, 20, 180], 512), ([255, 300, -1, 12.8], 6), ([1.9, 2.1], 1), (list(range(600)), 512), ([], 3),
])
def test_dmx_frames_match_the_official_sdk(values, length):
    assert DataNet.build_dmx_frame(values, length) == sdk.build_dmx_frame(values, length)


@pytest.mark.parametrize("dmx, fields", [
    (bytes([1, 2, 3, 4]), dict(universe=3, subnet=2, net=1, sequence=7, physical=5)),
    (bytes(range(256)) * 2, dict(universe=15, subnet=15, net=127, sequence=255, physical=255)),
    ([10, 20], dict(universe=99, subnet=-1, net=200, sequence=-5, physical=300)),
])
def test_even_length_art_dmx_packets_match_the_official_sdk(dmx, fields):
    assert DataNet.build_art_dmx_packet(dmx, **fields) == sdk.build_art_dmx_packet(dmx, **fields)


def test_odd_length_packets_of_the_official_sdk_decode():
    # The Python SDK keeps odd lengths; this project rounds up (PROTOCOL.md §9 decision)
    # and reads either.
    packet = sdk.build_art_dmx_packet(bytes([5, 6, 7]), universe=1)
    assert DataNet.decode_art_dmx(packet)["data"] == bytes([5, 6, 7])
    assert DataNet.build_art_dmx_packet(bytes([5, 6, 7]), universe=1) == packet[:17] + b"\x04\x05\x06\x07\x00"
