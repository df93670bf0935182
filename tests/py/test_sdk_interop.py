"""DataNet.py and the official Python SDK (datanet-sdk) through the local gateway."""

import asyncio
import queue

import pytest

from conftest import KEY, library_path, peer, poll_until

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
