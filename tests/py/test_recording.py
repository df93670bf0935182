"""Record a live stream in the local gateway and replay it (issue 14): published by
the official SDK and by DataNet.py, read back with DataNet.read_recording, replayed
to DataNet.py, to the SDK, and into the README network's CHOP in the TD fake."""

import asyncio
import json
import os
import queue
import sys
import time

import pytest

from conftest import KEY, Gateway, build_readme_network, library_path, peer, poll_until, run_until

import DataNet

datanet_sdk = pytest.importorskip("datanet", reason="datanet-sdk is installed by tests/run.sh")

SENSOR = "project.demo.show.sensor"
LIGHT = "project.demo.show.light"
JSON_VALUES = [{"temp": 21.5, "pos": {"x": 0.25, "y": -1}}, [1, [2, [3]]], "ünïcødé ✓", 42, -0.5, True, None,
               {"z": 1, "a": {"nested": []}}]


class Sdk:
    """The official SDK on its own event-loop thread, driven from the test."""

    def __init__(self, gateway, channels=()):
        self.client = datanet_sdk.DataNet(api_key=KEY, api_url=gateway.url, ws_url=gateway.ws_url)
        self.received = queue.Queue()

        async def on_any(message):
            meta = message.meta
            if message.kind == "binary":
                self.received.put((meta.channel, "binary", bytes(message.data), meta.from_, meta.content_type,
                                   meta.metadata))
            else:
                self.received.put((meta.channel, "json", message.data, meta.from_, None, None))

        for channel in channels:
            self.client.subscribe_any(channel, on_any)
        self.client.connect_sync(timeout=10)

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.client._loop).result(timeout=10)

    def take(self, count):
        return [self.received.get(timeout=20) for _ in range(count)]

    def close(self):
        self.client.disconnect_sync(timeout=5)


def as_tuple(message):
    """What must survive a recording: channel, kind, payload, from, content type, metadata."""
    if message.kind == "binary":
        return (message.channel, "binary", message.data, message.from_, message.content_type, message.metadata)
    return (message.channel, "json", message.data, message.from_, None, None)


def listener(gateway, name, channels):
    """A DataNet.py client collecting every message of `channels` as tuples."""
    client = peer(name)
    got = []
    for channel in channels:
        client.subscribe_any(channel, lambda message: got.append(as_tuple(message)))
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, lambda: len(client.status()["occupancy"]) == len(channels), what=name + " subscribed")
    return client, got


def collect(client, got, count, what):
    poll_until(client, lambda: len(got) >= count, timeout=30, what=what)
    assert len(got) == count, got
    return list(got)


def test_a_recorded_stream_replays_identically_to_datanet_py_and_the_sdk(tmp_path):
    recording = str(tmp_path / "rehearsal.jsonl")
    live = Gateway(str(tmp_path / "live.log"), args=["--record", recording])
    try:
        watcher, seen = listener(live, "watcher", [SENSOR, LIGHT])
        sdk = Sdk(live)
        try:
            for value in JSON_VALUES:
                sdk.run(sdk.client.publish(SENSOR, value))
            sdk.run(sdk.client.publish_binary(LIGHT, b"\x00\x00\x80\x3f", content_type="binary/vecf32",
                                              metadata={"unit": "m", "scale": 0.5}))
            sdk.run(sdk.client.publish_dmx(LIGHT, [255, 300, -1, 12.8], length=8, metadata={"universe": 1}))
            sdk.run(sdk.client.publish_artnet(LIGHT, bytes([1, 2, 3]), universe=3, subnet=2, net=1, sequence=7,
                                              physical=5, metadata={"desk": "grandMA"}))
            from_sdk = len(JSON_VALUES) + 3
            collect(watcher, seen, from_sdk, "the SDK's messages")
        finally:
            sdk.close()
        desk = peer("desk")
        desk.connect(KEY, api_url=live.url, ws_url=live.ws_url, lib_path=library_path())
        poll_until(desk, desk.is_connected, what="desk connected")
        desk.publish(SENSOR, {"cue": 12, "go": True})
        desk.publish_dmx(LIGHT, [10, 20, 30], length=4, metadata={"universe": 2})
        desk.publish_artnet(LIGHT, [9, 8, 7, 6], universe=4, sequence=1)
        desk.publish(LIGHT, b"\x01\x02", content_type="binary/ble-adv-batch")
        live_stream = collect(watcher, seen, from_sdk + 4, "every message")
        deadline = time.monotonic() + 10
        while live.stats()["recording"]["recorded"] < len(live_stream):
            assert time.monotonic() < deadline, live.stats()
            time.sleep(0.02)
    finally:
        live.stop()

    # The file, read by DataNet.py: the same messages, in the same order.
    recorded = list(DataNet.read_recording(recording))
    assert [as_tuple(m) for m in recorded] == live_stream
    assert all(isinstance(m.timestamp, int) and m.offset >= 0 for m in recorded)
    assert [m.offset for m in recorded] == sorted(m.offset for m in recorded)
    assert recorded[0].text == json.dumps(JSON_VALUES[0]), "the SDK's own JSON text, byte for byte"

    # Replayed to DataNet.py (the clock starts at the subscription, so nothing is missed).
    replay = Gateway(str(tmp_path / "replay.log"), args=["--replay", recording])
    try:
        audience, got = listener(replay, "audience", [SENSOR, LIGHT])
        assert collect(audience, got, len(live_stream), "the replay") == live_stream
    finally:
        replay.stop()

    # Replayed to the official SDK.
    replay = Gateway(str(tmp_path / "replay-sdk.log"), args=["--replay", recording])
    try:
        sdk = Sdk(replay, channels=[SENSOR, LIGHT])
        try:
            assert sdk.take(len(live_stream)) == live_stream
        finally:
            sdk.close()
    finally:
        replay.stop()


HEADER = '{"format":"datanet-recording","version":1}\n'


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def test_read_recording_keeps_text_and_names_bad_lines(tmp_path):
    good = write(tmp_path / "good.jsonl", HEADER
                 + '{"t":0.5,"ts":1700000000000,"ch":"a","from":"c-1","d":{"z":1,"a":1.50}}\n'
                 + '\n'
                 + '{"t":1,"ch":"a","d_text":"{\\n  \\"pretty\\": true\\n}"}\n'
                 + '{"t":2,"ch":"b","ct":"binary/dmx","meta_text":"{\\"universe\\":\\n1}","b64":"AQID"}\n')
    first, second, third = DataNet.read_recording(good)
    assert (first.offset, first.timestamp, first.from_, first.text) == (0.5, 1700000000000, "c-1", '{"z":1,"a":1.50}')
    assert second.text == '{\n  "pretty": true\n}' and second.data == {"pretty": True}
    assert second.from_ == "replay" and second.timestamp is None
    assert (third.kind, third.data, third.content_type, third.metadata) == ("binary", b"\x01\x02\x03", "binary/dmx",
                                                                          {"universe": 1})

    truncated = write(tmp_path / "cut.jsonl", HEADER + '{"t":0,"ch":"a","d":1}\n{"t":1,"ch":"a","d":[2,')
    with pytest.warns(RuntimeWarning, match="line 3: incomplete last line skipped"):
        assert [m.data for m in DataNet.read_recording(truncated)] == [1]

    for name, text, expected in [
        ("corrupt", HEADER + '{"t":0,"ch":"a","d":1}\n{"t":1,"ch":\n{"t":2,"ch":"a","d":1}\n', "line 3: not a JSON"),
        ("fields", HEADER + '{"t":-1,"ch":"a","d":1}\n', 'line 2: "t" must be'),
        ("both", HEADER + '{"t":1,"ch":"a","d":1,"b64":""}\n', "line 2: a line holds"),
        ("b64", HEADER + '{"t":1,"ch":"a","b64":"A"}\n', 'line 2: "b64" is not valid base64'),
        ("version", '{"format":"datanet-recording","version":3}\n', "line 1: recording format version 3"),
        ("other", "hello\n", "line 1: not a DataNet recording"),
        ("empty", "", "is empty"),
    ]:
        with pytest.raises(DataNet.DataNetError) as raised:
            list(DataNet.read_recording(write(tmp_path / (name + ".jsonl"), text)))
        assert raised.value.code == "invalid_recording"
        assert expected in raised.value.message, (name, raised.value.message)
    with pytest.raises(DataNet.DataNetError, match="cannot open"):
        list(DataNet.read_recording(str(tmp_path / "missing.jsonl")))


def chop_state(td):
    chop = td.op("/values")
    return tuple((channel.name, channel[0]) for channel in chop.chans())


def table_rows(td):
    table = td.op("/messages")
    return [(table[r, "channel"].val, table[r, "data"].val, table[r, "from"].val) for r in range(1, table.numRows)]


def shut_down_network(td):
    """Ends the README network's connection so the next one starts afresh (as a
    new TouchDesigner session would)."""
    td.exit()
    runtime = sys.modules.get("_datanet_td_runtime")
    for state in runtime.instances.values():
        if state["handle"] is not None:
            state["lib"].dn_client_free(state["handle"])
    runtime.instances.clear()


def network(td, gateway, monkeypatch, channel):
    monkeypatch.setenv("DATANET_LIB", library_path())
    monkeypatch.setenv("DATANET_API_KEY", KEY)
    monkeypatch.setenv("DATANET_API_URL", gateway.url)
    monkeypatch.setenv("DATANET_WS_URL", gateway.ws_url)
    build_readme_network(td, channels=channel)
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: dn.is_connected() and dn.status()["occupancy"], what="connected and subscribed")


def test_a_replayed_dmx_recording_drives_the_chop_as_the_live_stream_did(tmp_path, monkeypatch):
    from tdfake import TD

    channel = "project.demo.lighting.dmx"
    frames = [[k * 30, 255 - k * 20, k, 0 if k % 2 else 255] for k in range(1, 9)]
    recording = str(tmp_path / "dmx.jsonl")
    live = Gateway(str(tmp_path / "live.log"), args=["--record", recording])
    try:
        td = TD(project_folder=str(tmp_path / "live"), project_name="live")
        network(td, live, monkeypatch, channel)
        desk = Sdk(live)
        live_states = []
        try:
            for n, values in enumerate(frames):
                desk.run(desk.client.publish_dmx(channel, values, length=4, metadata={"universe": 1}))
                run_until(td, lambda: len(table_rows(td)) == n + 1, what="frame %d" % n)
                td.run_frames(2)
                live_states.append(chop_state(td))
                # A lighting desk's pace: the replay keeps it, so each state shows for frames.
                time.sleep(0.06)
        finally:
            desk.close()
        live_rows = table_rows(td)
        assert live_states[-1][0] == ("lighting_dmx_u1_1", 240.0)
        assert td.thread_violations == 0 and not td.errors
        shut_down_network(td)
    finally:
        live.stop()

    replay = Gateway(str(tmp_path / "replay.log"), args=["--replay", recording])
    try:
        td = TD(project_folder=str(tmp_path / "replay"), project_name="replay")
        network(td, replay, monkeypatch, channel)
        replay_states = []
        deadline = time.monotonic() + 30
        while len(table_rows(td)) < len(frames):
            assert time.monotonic() < deadline, "the replay did not arrive: %s" % table_rows(td)
            td.run_frames(1)
            state = chop_state(td)
            if state and (not replay_states or replay_states[-1] != state):
                replay_states.append(state)
            time.sleep(1 / 240)
        td.run_frames(2)
        if chop_state(td) != replay_states[-1]:
            replay_states.append(chop_state(td))
        # Every message in order (the table keeps them all, from the original sender),
        # every CHOP state the live stream produced, in its order, and the same end.
        assert table_rows(td) == live_rows
        assert replay_states[-1] == live_states[-1]
        assert len(replay_states) > 1, "the states came one after another, not all at once"
        position = 0
        for state in replay_states:
            assert state in live_states[position:], "a CHOP state the live stream never showed: %s" % (state,)
            position = live_states.index(state, position)
        assert td.thread_violations == 0 and not td.errors
        shut_down_network(td)
    finally:
        replay.stop()
