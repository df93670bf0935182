"""The per-frame path of DataNet.py on ABI 4: payloads as the publisher sent them,
one json.loads per frame, newest-only callbacks, store-only channels, table rows
and CHOP values read from the library."""

import json
import pickle
import time

import pytest

from conftest import (SCRIPT_CHOP_READINGS, build_readme_network, library_path, peer, poll_until, run_until,
                      sensor_client, KEY)
from test_sdk_interop import SdkPeer

each_chop_reading = pytest.mark.parametrize("td", SCRIPT_CHOP_READINGS, indirect=True)

# Key order, a big integer, number spellings and a unicode escape: what the official
# SDK puts on the wire for this value is json.dumps(value) (", " and ": " separators,
# \u escapes), and that text must reach TouchDesigner unchanged.
FIDELITY = {"r": 1, "g": 2, "b": 3, "big": 12345678901234567890123, "f": 1e-07, "e": 2.5e+300, "s": "é",
            "z": {"y": 1, "x": 2}}


def connected(gateway, name="td"):
    client = peer(name)
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, client.is_connected, what=name + " connected")
    return client


def subscribed(client, channel, gateway, count=1):
    poll_until(client, lambda: gateway.stats()["subscriptions"].get(channel, 0) >= count, what="sub " + channel)


def readme_network_recording(td, channel, record):
    """The README network started on `channel`, with a callbacks DAT whose onMessage
    appends the expression `record` to GOT."""
    build_readme_network(td, channels=channel, with_callbacks=True)
    td.op("/callbacks").text += ("\nGOT = []\ndef onMessage(channel, data, from_, timestamp, replaced=0):\n"
                                 "    GOT.append(%s)\n" % record)
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: dn.status()["occupancy"], what="subscribed")
    return dn


@each_chop_reading
def test_what_the_sdk_sends_is_what_td_gets(td, lib_env):
    dn = readme_network_recording(td, "project.demo.fidelity", "data")
    sdk = SdkPeer(lib_env)
    try:
        sdk.publish("project.demo.fidelity", FIDELITY)
        sent = json.dumps(FIDELITY)
        table, chop = td.op("/messages"), td.op("/values")
        run_until(td, lambda: table.numRows == 2, what="the row")
        assert table[1, "data"].val == sent, "the table cell is the publisher's text"
        got = td.op("/callbacks").module.GOT
        assert got == [FIDELITY] and list(got[0]) == list(FIDELITY), "key order kept"
        assert got[0]["big"] == 12345678901234567890123 and isinstance(got[0]["big"], int)
        assert dn.last_message("project.demo.fidelity").text == sent
        run_until(td, lambda: chop.numChans == 8, what="the channels")
        assert [c.name for c in chop.chans()] == ["fidelity_r", "fidelity_g", "fidelity_b", "fidelity_big",
                                                  "fidelity_f", "fidelity_e", "fidelity_z_y", "fidelity_z_x"]
        values = {c.name: c[0] for c in chop.chans()}
        assert values["fidelity_big"] == float(12345678901234567890123), "a double beyond 2^53: nearest value"
        assert values["fidelity_f"] == 1e-07
    finally:
        sdk.close()


def test_numeric_names_follow_the_publishers_field_order(gateway):
    td = connected(gateway)
    rig = sensor_client(gateway)
    td.subscribe("project.demo.rgb")
    subscribed(td, "project.demo.rgb", gateway)
    rig.publish("project.demo.rgb", {"r": 0.1, "g": 0.2, "b": 0.3})
    rig.publish("project.demo.rgb", {"w": 1, "b": 0.5, "a": 2})
    poll_until(td, lambda: len(td.numeric_values()) == 5, what="five names")
    assert [k for _, k, _ in td.numeric_values()] == ["r", "g", "b", "w", "a"]


def test_latest_callbacks_run_once_per_poll_with_the_newest_and_the_count(gateway):
    td = connected(gateway)
    rig = sensor_client(gateway)
    calls = []
    td.subscribe("project.demo.knob", lambda *args: calls.append(args), latest=True)
    td.subscribe("project.demo.fader", lambda *args: calls.append(args), latest=True)
    subscribed(td, "project.demo.fader", gateway)
    for n in range(50):
        rig.publish("project.demo.knob", {"n": n})
    for n in range(3):
        rig.publish("project.demo.fader", n)
    # Every message lands in the library (the fader's last was published last)
    # before the one poll that matters.
    deadline = time.monotonic() + 10
    while td.get_value("project.demo.fader") != 2:
        assert time.monotonic() < deadline, "timed out waiting for the last message"
        time.sleep(0.005)
    td.poll()
    by_channel = {c[0]: c for c in calls}
    assert len(calls) == 2, calls
    assert by_channel["project.demo.knob"][1] == {"n": 49}
    assert by_channel["project.demo.fader"][1] == 2
    assert len(by_channel["project.demo.knob"]) == 5
    assert by_channel["project.demo.knob"][4] == 49 and by_channel["project.demo.fader"][4] == 2
    assert td.status()["counters"]["replaced_latest"] == 51, "every message delivered or counted as replaced"


def test_latest_and_every_message_callbacks_share_a_channel(gateway):
    td = connected(gateway)
    rig = sensor_client(gateway)
    every, newest = [], []
    td.subscribe("project.demo.mix", lambda ch, data, f, ts: every.append(data))
    td.subscribe("project.demo.mix", lambda ch, data, f, ts, replaced: newest.append((data, replaced)), latest=True)
    subscribed(td, "project.demo.mix", gateway)
    for n in range(10):
        rig.publish("project.demo.mix", n)
    poll_until(td, lambda: td.get_value("project.demo.mix") == 9, what="all arrived")
    poll_until(td, lambda: len(every) == 10, what="every message")
    assert every == list(range(10))
    assert newest and newest[-1][0] == 9
    assert sum(r + 1 for _, r in newest) == 10, "each message once: delivered or counted as replaced"


def test_a_channel_without_callbacks_costs_python_nothing(gateway):
    td = connected(gateway)
    rig = sensor_client(gateway)
    td.subscribe("project.demo.quiet")
    subscribed(td, "project.demo.quiet", gateway)
    for n in range(20):
        rig.publish("project.demo.quiet", {"v": n})
    poll_until(td, lambda: td.get_value("project.demo.quiet", "v") == 19, what="the store")
    info_events = td.poll()
    assert info_events == 0, "no events for a store-only channel"
    assert td.status()["events_pending"] == 0
    assert td.values_changed()


class Table:
    """A Table DAT's calls that update_table makes, as a list of rows."""
    path = "/t"

    def __init__(self):
        self.rows = []

    @property
    def numRows(self):
        return len(self.rows)

    def appendRow(self, row):
        self.rows.append([str(c) for c in row])

    def appendRows(self, rows):
        self.rows.extend([str(c) for c in row] for row in rows)

    def deleteRows(self, indices):
        for i in indices:  # during the deletion: descending order is right
            del self.rows[i]


def test_update_table_is_bounded_by_max_rows_and_counts_what_it_did_not_show(gateway):
    td = connected(gateway)
    rig = sensor_client(gateway)
    td.subscribe("project.demo.rows")
    subscribed(td, "project.demo.rows", gateway)
    table, other = Table(), Table()
    other.path = "/other"
    for n in range(30):
        rig.publish("project.demo.rows", n)
    poll_until(td, lambda: td.get_value("project.demo.rows") == 29, what="all arrived")
    td.poll()
    assert td.update_table(table, max_rows=10) == 10
    assert [r[1] for r in table.rows[1:]] == [str(n) for n in range(20, 30)], "the newest, in order"
    assert td.update_table(other, max_rows=100) == 30, "each table has its own cursor"
    assert td.update_table(table, max_rows=10) == 0
    tables = td.status()["tables"]
    assert tables["/t"] == {"shown": 10, "not_shown": 20}
    assert tables["/other"] == {"shown": 30, "not_shown": 0}
    rig.publish("project.demo.rows", "x")
    poll_until(td, lambda: td.get_value("project.demo.rows") == "x", what="one more")
    td.poll()
    assert td.update_table(table, max_rows=10) == 1
    assert table.numRows == 11 and table.rows[-1][1] == '"x"' and table.rows[1][1] == "21"


@each_chop_reading
def test_the_chop_is_updated_in_place_while_the_names_stay(td, lib_env):
    build_readme_network(td, channels="project.demo.inplace")
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: dn.status()["occupancy"], what="subscribed")
    rig = sensor_client(lib_env)
    chop = td.op("/values")
    rig.publish("project.demo.inplace", {"a": 1, "b": 2})
    run_until(td, lambda: chop.numChans == 2 and chop["inplace_b"][0] == 2.0, what="two channels")
    appended = chop.append_count
    for n in range(3, 8):
        rig.publish("project.demo.inplace", {"a": n, "b": n})
        run_until(td, lambda: chop["inplace_a"][0] == float(n), what="value %d" % n)
    kept = td._script_chop_channels == "kept"
    assert (chop.append_count == appended) == kept, "in place only when the CHOP kept its channels"
    rig.publish("project.demo.inplace", {"a": 0, "c": 9})
    run_until(td, lambda: chop.numChans == 3, what="a new name rebuilds")
    assert [c.name for c in chop.chans()] == ["inplace_a", "inplace_b", "inplace_c"]
    assert chop["inplace_c"][0] == 9.0 and chop["inplace_b"][0] == 7.0


def test_the_readme_network_has_newest_only_callbacks_too(td, lib_env, monkeypatch):
    monkeypatch.setenv("DATANET_NEWEST_ONLY", "1")
    dn = readme_network_recording(td, "project.demo.newest", "(data, replaced)")
    rig = sensor_client(lib_env)
    for n in range(30):
        rig.publish("project.demo.newest", n)
    # No frame runs while they arrive: the next frame's poll finds all 30.
    deadline = time.monotonic() + 10
    while dn.status()["counters"]["received"] < 30:
        assert time.monotonic() < deadline, "timed out waiting for every message"
        time.sleep(0.005)
    run_until(td, lambda: td.op("/callbacks").module.GOT, what="the callback")
    assert td.op("/callbacks").module.GOT == [(29, 29)], "once, the newest, standing for 29 more"


# JSON texts whose Python value json.loads defines: the frame's batch must give the
# same values, of the same types, as json.loads of each text.
TEXTS = [
    "0", "-0", "-0.0", "7", "-1", "255", "256", "65535", "65536", "2147483647", "2147483648", "-2147483649",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "12345678901234567890123",
    "-" + "9" * 300, "1.0", "0.1", "1e-3", "2.5E+300", "1e400", "-1e400", "5e-324", "1.5e-320",
    "true", "false", "null", '""', '"plain"', '"\\u00e9\\n\\t\\"\\\\\\/"', '"\\ud83d\\ude00"', '"\\ud800"',
    '"\\udc00x"', '"é ✓"', '"' + "x" * 300 + '"', "[]", "{}", "[[]]", '{"a":{}}', '[1,[2,[3,{"k":[true,null]}]]]',
    '{"dup":1,"dup":2}', '{"r":1,"g":2,"b":3}', ' { "s" : [ 1 , 2 ] } ', '{"\\u00e9":1,"e\\u0301":2}',
]


def test_a_frames_batch_is_what_json_loads_makes_of_each_text(gateway, monkeypatch):
    import DataNet
    batches = []
    monkeypatch.setattr(DataNet, "_messages", lambda data: batches.append(pickle.loads(data)) or batches[-1])
    td = connected(gateway)
    rig = sensor_client(gateway)
    got = []
    td.subscribe("project.demo.values", lambda channel, data, from_, ts: got.append(data))
    subscribed(td, "project.demo.values", gateway)
    st = rig._state
    for text in TEXTS:
        assert st["lib"].dn_publish_json(st["handle"], b"project.demo.values", text.encode("utf-8")) == 0, text
    # Everything lands in the library first, so one poll carries the whole batch.
    deadline = time.monotonic() + 10
    while td.status()["events_pending"] < len(TEXTS):
        assert time.monotonic() < deadline, "timed out waiting for every message"
        time.sleep(0.005)
    td.poll()
    assert len(got) == len(TEXTS)
    assert len(batches) == 1 and all(type(m) is tuple and len(m) == 5 for m in batches[0]), \
        "one batch of (channel, from, ts, data, replaced) tuples"

    def typed(value):
        if isinstance(value, float):
            return ("float", repr(value))
        if isinstance(value, (bool, int, str)) or value is None:
            return (type(value).__name__, value)
        if isinstance(value, list):
            return ("list", [typed(v) for v in value])
        return ("dict", [(k, typed(v)) for k, v in value.items()])

    for text, value in zip(TEXTS, got):
        assert typed(value) == typed(json.loads(text)), text
    # The next batch defines the strings the messages share again (a batch
    # stands alone: slots defined by the first are not assumed).
    got.clear()
    again = ['{"r":1,"g":2,"b":3}', '{"a":{}}', '{"dup":1,"dup":2}']
    for text in again:
        assert st["lib"].dn_publish_json(st["handle"], b"project.demo.values", text.encode("utf-8")) == 0, text
    poll_until(td, lambda: len(got) == len(again), what="the second batch")
    assert [typed(value) for value in got] == [typed(json.loads(text)) for text in again]


def test_a_record_that_cannot_be_read_is_reported_and_the_poll_goes_on(gateway, monkeypatch):
    import DataNet
    td = connected(gateway)
    rig = sensor_client(gateway)
    got, errors = [], []
    td.subscribe("project.demo.guard", lambda channel, data, from_, ts: got.append(data))
    td.on("error", errors.append)
    subscribed(td, "project.demo.guard", gateway)
    rig.publish("project.demo.guard", 1)
    real = DataNet._messages
    monkeypatch.setattr(DataNet, "_messages", lambda payload: (_ for _ in ()).throw(RecursionError("too deep")))
    poll_until(td, lambda: td.status()["decode_errors"] == 1, what="the failure counted")
    assert errors and errors[0].code == "protocol_error" and "RecursionError" in errors[0].message
    monkeypatch.setattr(DataNet, "_messages", real)
    rig.publish("project.demo.guard", 2)
    poll_until(td, lambda: got == [2], what="the next message")


def test_filtered_chop_values_with_and_without_numpy(monkeypatch):
    import ctypes
    import sys
    import DataNet
    values = (ctypes.c_double * 5)(0.5, 1.5, 2.5, 3.5, 4.5)
    numpy = pytest.importorskip("numpy")
    monkeypatch.setitem(sys.modules, "numpy", numpy)
    assert DataNet._gather(values, 5, (4, 0, 2)) == [4.5, 0.5, 2.5]
    monkeypatch.delitem(sys.modules, "numpy")
    assert DataNet._gather(values, 5, (4, 0, 2)) == [4.5, 0.5, 2.5]
    assert "numpy" not in sys.modules, "DataNet.py never imports numpy itself"


def test_frame_calls_follow_their_buffers_handle_and_flags(gateway):
    """The library calls a frame makes keep their arguments as C values between
    calls: each must follow a buffer that grew, a new connection, a change of
    record grouping and a per-call limit."""
    import DataNet
    channel = "project.demo.frames"
    td = DataNet.DataNet("frames")
    st = td._state
    got, texts = [], []
    rig = sensor_client(gateway)
    table = Table()
    big = {"text": "x" * 5000, "v": 1.5}
    for attempt in ("first connection", "second connection"):
        # Buffers far too small for what comes: each must grow.
        st["poll"] = DataNet._CallBuffer(64, DataNet._PollInfo)
        st["rows"] = DataNet._CallBuffer(64, DataNet._RowsInfo)
        st["names"] = DataNet.ctypes.create_string_buffer(8)
        st["values"] = (DataNet.ctypes.c_double * 0)()
        td.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
        poll_until(td, td.is_connected, what="connected")
        # One message per record while a subscribe_any wants each text, then
        # grouped again: the poll of each grouping has met the small buffer.
        td.subscribe_any(channel, lambda message: texts.append(message.text))
        subscribed(td, channel, gateway)
        texts.clear()
        rig.publish(channel, {"v": 0})
        poll_until(td, lambda: texts, what="one record, " + attempt)
        td.unsubscribe(channel)
        td.subscribe(channel, lambda ch, data, from_, ts: got.append(data))
        subscribed(td, channel, gateway)
        got.clear()
        rig.publish(channel, big)
        poll_until(td, lambda: got, what="the big message, " + attempt)
        assert got == [big], attempt
        assert td.update_table(table, max_rows=5) == 2
        cell = table.rows[-1][1]  # long payloads end in "..." in a table
        assert len(cell) > 4000 and json.dumps(big, separators=(",", ":")).startswith(cell[:-3]), cell[:40]
        assert td.numeric_values() == [(channel, "v", 1.5)]
        td.subscribe_any(channel, lambda message: texts.append(message.text))
        texts.clear()
        rig.publish(channel, {"v": 2})
        rig.publish(channel, {"v": 3})
        poll_until(td, lambda: td.status()["events_pending"] == 2 or len(texts) == 2, what="two more")
        assert td.poll(max_events=1) <= 1
        poll_until(td, lambda: len(texts) == 2, what="both, one record each")
        assert [json.loads(t) for t in texts] == [{"v": 2}, {"v": 3}] and got[-2:] == [{"v": 2}, {"v": 3}]
        assert td.numeric_values() == [(channel, "v", 3.0)]
        td.unsubscribe(channel)
        td.disconnect()
    rig.disconnect()
