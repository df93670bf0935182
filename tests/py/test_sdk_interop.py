"""DataNet.py and the official Python SDK (datanet-sdk) through the local gateway."""

import asyncio
import queue

import pytest

from conftest import KEY, library_path, peer, poll_until

import DataNet

datanet_sdk = pytest.importorskip("datanet", reason="datanet-sdk is installed by tests/run.sh")


class SdkPeer:
    """The official SDK in its sync mode (its own event-loop thread), driven
    thread-safely from the test."""

    def __init__(self, gateway):
        self.client = datanet_sdk.DataNet(api_key=KEY, api_url=gateway.url, ws_url=gateway.ws_url)
        self.received = queue.Queue()
        self.client.connect_sync(timeout=10)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.client._loop).result(timeout=10)

    def subscribe(self, channel):
        async def on_json(data, meta):
            self.received.put(("json", data, meta.from_))

        async def on_any(data, meta):
            if isinstance(data, (bytes, bytearray)):
                self.received.put(("binary", bytes(data), meta.content_type, meta.metadata))

        async def register():
            self.client.subscribe(channel, on_json)
            self.client.subscribe_binary(channel, on_any)

        self._run(register())

    def publish(self, channel, data, **kwargs):
        self._run(self.client.publish(channel, data, **kwargs))

    def publish_binary(self, channel, data, **kwargs):
        self._run(self.client.publish_binary(channel, data, **kwargs))

    def close(self):
        self.client.disconnect_sync(timeout=5)


VALUES = [None, True, False, 0, -12, 3.5, "text", "ünïcødé ✓", [], {}, [1, [2, [3]]],
          {"nested": {"a": [1, {"b": None}], "c": "d"}}]


@pytest.fixture
def sdk(gateway):
    client = SdkPeer(gateway)
    yield client
    client.close()


def connected(gateway, name="td"):
    client = peer(name)
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, client.is_connected, what="connected")
    return client


def test_sdk_publishes_what_datanet_py_receives(gateway, sdk):
    td = connected(gateway)
    got = []
    td.subscribe("project.demo.interop", lambda channel, data, from_, ts: got.append(data))
    td.subscribe_binary("project.demo.interop", lambda channel, data, meta: got.append((data, meta["content_type"],
                                                                                      meta["metadata"])))
    poll_until(td, lambda: td.status()["occupancy"].get("project.demo.interop") == 1, what="sub ack")
    for value in VALUES:
        sdk.publish("project.demo.interop", value)
    sdk.publish_binary("project.demo.interop", b"\x00\x01\xff", content_type="binary/dmx",
                       metadata={"universe": 2})
    poll_until(td, lambda: len(got) == len(VALUES) + 1, what="every message")
    assert got[:len(VALUES)] == VALUES
    assert got[-1] == (b"\x00\x01\xff", "binary/dmx", {"universe": 2})


def test_datanet_py_publishes_what_the_sdk_receives(gateway, sdk):
    sdk.subscribe("project.demo.interop")
    td = connected(gateway)
    poll_until(td, lambda: gateway.stats()["subscriptions"].get("project.demo.interop") == 1, what="sdk sub")
    for value in VALUES:
        td.publish("project.demo.interop", value)
    td.publish("project.demo.interop", b"\x10\x20", content_type="binary/vecf32", metadata={"n": 1})
    got = [sdk.received.get(timeout=10) for _ in range(len(VALUES) + 1)]
    assert [g[1] for g in got[:len(VALUES)]] == VALUES
    assert all(g[0] == "json" and g[2] == td.conn_id for g in got[:len(VALUES)])
    assert got[-1] == ("binary", b"\x10\x20", "binary/vecf32", {"n": 1})


def test_lighting_from_the_sdk_arrives_byte_exact(gateway, sdk):
    td = connected(gateway)
    got = []
    td.subscribe_binary("project.demo.light", lambda channel, data, meta: got.append((data, meta)))
    poll_until(td, lambda: td.status()["occupancy"].get("project.demo.light") == 1, what="sub ack")
    sdk._run(sdk.client.publish_dmx("project.demo.light", [255, 300, -1, 12.8], length=8, metadata={"universe": 1}))
    sdk._run(sdk.client.publish_artnet("project.demo.light", bytes([1, 2, 3]), universe=3, subnet=2, net=1,
                                       sequence=7, physical=5, metadata={"desk": "grandMA"}))
    poll_until(td, lambda: len(got) == 2, what="both frames")
    assert got[0][0] == datanet_sdk.build_dmx_frame([255, 300, -1, 12.8], 8)
    assert (got[0][1]["content_type"], got[0][1]["metadata"]) == ("binary/dmx", {"universe": 1})
    assert got[1][0] == datanet_sdk.build_art_dmx_packet(bytes([1, 2, 3]), universe=3, subnet=2, net=1, sequence=7,
                                                          physical=5)
    assert (got[1][1]["content_type"], got[1][1]["metadata"]) == ("binary/artnet", {"desk": "grandMA"})
    assert td.get_value("project.demo.light", "u1/1") == 255.0
    assert td.get_value("project.demo.light", "u%d/3" % 0x123) == 3.0


def test_lighting_from_datanet_py_arrives_byte_exact(gateway, sdk):
    sdk.subscribe("project.demo.light")
    td = connected(gateway)
    poll_until(td, lambda: gateway.stats()["subscriptions"].get("project.demo.light") == 1, what="sdk sub")
    td.publish_dmx("project.demo.light", [1, 2, 3], length=4, metadata={"universe": 2})
    td.publish_artnet("project.demo.light", [9, 8, 7, 6], universe=4, sequence=1, metadata={"rig": "td"})
    dmx, art = sdk.received.get(timeout=10), sdk.received.get(timeout=10)
    assert dmx == ("binary", bytes([1, 2, 3, 0]), "binary/dmx", {"universe": 2})
    assert art == ("binary", DataNet.build_art_dmx_packet([9, 8, 7, 6], universe=4, sequence=1), "binary/artnet",
                   {"rig": "td"})
