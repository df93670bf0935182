"""DataNet.py inside the TouchDesigner fake, wired exactly as the README says."""

import json
import time

import pytest

from conftest import (SCRIPT_CHOP_READINGS, build_readme_network, closed_at_the_gateway, peer, poll_until, run_until,
                      KEY, library_path)
from tdfake_support import parameter_watcher

each_chop_reading = pytest.mark.parametrize("td", SCRIPT_CHOP_READINGS, indirect=True)


def sensor(gateway):
    client = peer("sensor")
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, client.is_connected, what="sensor connected")
    return client


def started(td, **network):
    build_readme_network(td, **network)
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: dn.is_connected() and dn.status()["occupancy"], what="connected and subscribed")
    return dn


@each_chop_reading
def test_readme_wiring_fills_the_table_and_the_chop(td, lib_env):
    dn = started(td)
    rig = sensor(lib_env)
    rig.publish("project.demo.sensor", {"temp": 21.5, "pos": {"x": 0.25, "y": -1}, "on": True, "id": "s1"})
    table, chop = td.op("/messages"), td.op("/values")
    run_until(td, lambda: table.numRows == 2, what="one row")
    assert [c.val for c in table.row(0)] == ["channel", "data", "from", "timestamp"]
    channel, data, from_, timestamp = [c.val for c in table.row(1)]
    assert (channel, json.loads(data), from_) == ("project.demo.sensor", {"temp": 21.5, "pos": {"x": 0.25, "y": -1},
                                                                        "on": True, "id": "s1"}, rig.conn_id)
    assert int(timestamp) > 1_600_000_000_000
    values = {ch.name: ch[0] for ch in chop.chans()}
    assert values == {"sensor_on": 1.0, "sensor_pos_x": 0.25, "sensor_pos_y": -1.0, "sensor_temp": 21.5}
    assert dn.status()["counters"]["received"] == 1


@each_chop_reading
def test_the_chop_cooks_only_when_values_changed(td, lib_env):
    started(td)
    rig = sensor(lib_env)
    chop = td.op("/values")
    assert chop.numChans == 0  # nothing pulled it yet: this read cooks it once, before any value
    rig.publish("project.demo.sensor", {"v": 1})
    run_until(td, lambda: chop.numChans == 1, what="a channel")
    cooks = chop.cook_count
    td.run_frames(30)
    assert chop.cook_count == cooks, "no new messages, no cook"
    rig.publish("project.demo.sensor", {"v": 2})
    run_until(td, lambda: chop["sensor_v"][0] == 2.0, what="new value")
    assert chop.cook_count == cooks + 1


def test_the_table_keeps_max_rows_and_trims_in_batches(td, lib_env):
    started(td)
    rig = sensor(lib_env)
    table = td.op("/messages")
    for n in range(250):
        rig.publish("project.demo.sensor", {"n": n})
    run_until(td, lambda: table.numRows > 1 and table[table.numRows - 1, "data"].val == '{"n":249}', what="last row")
    assert table.numRows == 101
    assert [json.loads(table[r, "data"].val)["n"] for r in (1, 100)] == [150, 249]
    assert table.op_counts.get("deleteRow", 0) == 0, "rows are trimmed with deleteRows, not one by one"


def test_trimming_a_full_table_keeps_the_newest_rows_in_order(td, lib_env):
    """Issue 10, item 7: the trim passes its row indices to deleteRows; TD does not
    document whether they are read before or during the deletion, and the fake
    reads them during it, where an ascending list deletes every other row."""
    started(td)
    rig = sensor(lib_env)
    table = td.op("/messages")

    def last_n():
        return json.loads(table[table.numRows - 1, "data"].val)["n"] if table.numRows > 1 else None

    for n in range(100):
        rig.publish("project.demo.sensor", {"n": n})
    run_until(td, lambda: last_n() == 99, what="a full table")
    for n in range(100, 130):
        rig.publish("project.demo.sensor", {"n": n})
    run_until(td, lambda: last_n() == 129, what="30 more rows")
    assert table.numRows == 101
    assert [json.loads(table[r, "data"].val)["n"] for r in range(1, 101)] == list(range(30, 130))


def test_the_callbacks_dat_gets_messages_and_events(td, lib_env):
    td.root.create("tableDAT", "log")
    build_readme_network(td, with_callbacks=True)
    td.op("/callbacks").text = (
        "def onMessage(channel, data, from_, timestamp):\n"
        "    op('log').appendRow(['message', channel, data['n']])\n"
        "def onConnect():\n"
        "    op('log').appendRow(['connect'])\n"
        "def onDisconnect():\n"
        "    op('log').appendRow(['disconnect'])\n"
        "def onError(error):\n"
        "    op('log').appendRow(['error', error.code])\n")
    td.start()
    dn = td.op("/DataNet").module
    log = td.op("/log")
    run_until(td, lambda: dn.status()["occupancy"], what="subscribed")
    sensor(lib_env).publish("project.demo.sensor", {"n": 7})
    run_until(td, lambda: log.numRows == 2, what="a message")
    assert [[c.val for c in row] for row in log.rows()] == [["connect", "", ""], ["message", "project.demo.sensor", "7"]]
    lib_env.admin("send", {"text": json.dumps({"type": "error", "error": "channel_not_allowed",
                                                "channel": "x", "operation": "pub"})})
    run_until(td, lambda: log.numRows == 3, what="an error")
    assert log[2, 0].val == "error" and log[2, 1].val == "channel_not_allowed"


def test_unsubscribe_stops_the_rows(td, lib_env):
    dn = started(td)
    rig = sensor(lib_env)
    table = td.op("/messages")
    dn.unsubscribe("project.demo.sensor")
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.sensor", 0) == 0, what="unsub")
    rig.publish("project.demo.sensor", {"n": 1})
    td.run_frames(30)
    assert table.numRows <= 1


def test_reconnects_after_a_forced_drop_with_no_action_from_the_artist(td, lib_env):
    dn = started(td)
    rig = sensor(lib_env)
    table = td.op("/messages")
    lib_env.admin("drop", {})
    run_until(td, lambda: dn.status()["counters"]["reconnects"] >= 1 and dn.is_connected(), timeout=15,
              what="reconnected")
    run_until(td, lambda: rig.is_connected(), what="sensor back")
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.sensor") == 1, what="resubscribed")
    rig.publish("project.demo.sensor", {"after": "drop"})
    run_until(td, lambda: table.numRows == 2, what="a row after the drop")
    assert json.loads(table[1, "data"].val) == {"after": "drop"}


def test_editing_the_module_text_100_times_keeps_one_connection(td, lib_env):
    started(td)
    rig = sensor(lib_env)
    dat = td.op("/DataNet")
    original = dat.text
    for n in range(100):
        dat.text = original + "\n# edit %d\n" % n
        td.run_frames(1)
    assert dat.module_runs >= 100
    stats = lib_env.stats()
    assert (stats["connections"], stats["connections_total"]) == (2, 2), "the TD client and the sensor, once each"
    rig.publish("project.demo.sensor", {"still": "flowing", "v": 3})
    run_until(td, lambda: td.op("/messages").numRows == 2, what="the show goes on")
    assert td.op("/values")["sensor_v"][0] == 3.0, "the CHOP still cooks after the edits"


def test_on_exit_closes_within_500_ms_even_when_the_gateway_hangs(td, lib_env):
    started(td)
    lib_env.admin("freeze", {})
    begin = time.perf_counter()
    td.exit()
    assert time.perf_counter() - begin < 0.5
    lib_env.admin("thaw", {})


def test_a_bad_key_reaches_on_error_and_status(td, lib_env, monkeypatch):
    monkeypatch.setenv("DATANET_API_KEY", "not_a_key")
    td.root.create("tableDAT", "log")
    build_readme_network(td, with_callbacks=True)
    td.op("/callbacks").text = "def onError(error):\n    op('log').appendRow([error.code, error.status])\n"
    td.start()
    dn = td.op("/DataNet").module
    run_until(td, lambda: td.op("/log").numRows >= 1, what="an error")
    assert [c.val for c in td.op("/log").row(0)] == ["authentication_failed", "401"]
    assert dn.status()["last_error"]["code"] == "authentication_failed"


def test_parameter_execute_drives_the_connection(td, lib_env):
    from conftest import read
    comp = td.root.create("baseCOMP", "DataNetComp")
    page = comp.appendCustomPage("DataNet")
    for name in ("Apikey", "Apiurl", "Wsurl", "Channels"):
        page.appendStr(name)
    page.appendToggle("Active")
    for name in ("Connect", "Disconnect", "Reset"):
        page.appendPulse(name)
    comp.create("textDAT", "DataNet").text = read("DataNet.py")
    # Every toggle set, as td/parameter_execute.py's header says; TD's defaults are not documented.
    parameter_watcher(comp, read("td/parameter_execute.py"))
    comp.par.Apikey = KEY
    comp.par.Apiurl = lib_env.url
    comp.par.Wsurl = lib_env.ws_url
    comp.par.Channels = "project.demo.a project.demo.b"
    dn = comp.op("DataNet").module
    assert dn.status()["state"] == "idle", "nothing connects before Active"
    comp.par.Active = True
    run_until(td, lambda: dn.is_connected(), what="connected by Active")
    assert sorted(dn.subscriptions()) == ["project.demo.a", "project.demo.b"]
    comp.par.Channels = "project.demo.b"
    assert dn.subscriptions() == ["project.demo.b"]
    comp.par.Disconnect.pulse()
    assert dn.status()["state"] == "closed"
    comp.par.Connect.pulse()
    run_until(td, lambda: dn.is_connected(), what="connected by Connect")
    comp.par.Active = False
    assert dn.status()["state"] == "closed"
    assert closed_at_the_gateway(lib_env)


@each_chop_reading
def test_a_dmx_stream_drives_a_512_channel_chop(td, lib_env, monkeypatch):
    started(td, channels="project.demo.lighting.dmx")
    desk = sensor(lib_env)
    chop = td.op("/values")
    frames = [[(slot * 7 + n) % 256 for slot in range(512)] for n in range(20)]
    for frame in frames:  # a lighting desk streaming universe 1
        desk.publish_dmx("project.demo.lighting.dmx", frame, metadata={"universe": 1})
    run_until(td, lambda: td.op("/DataNet").module.status()["counters"]["received"] == 20, what="20 frames")
    td.run_frames(1)
    assert chop.numChans == 512
    names = [ch.name for ch in chop.chans()]
    assert names[:3] == ["lighting_dmx_u1_1", "lighting_dmx_u1_2", "lighting_dmx_u1_3"]
    assert names[-1] == "lighting_dmx_u1_512"
    assert [ch[0] for ch in chop.chans()] == [float(v) for v in frames[-1]], "the newest frame, slot by slot"
    assert td.op("/messages")[1, "data"].val == "<binary/dmx, 512 bytes>"


def test_a_chop_drives_publish_dmx_at_the_capped_rate(td, lib_env):
    dn = started(td)
    source = td.root.create("constantCHOP", "lfo")
    publisher = td.root.create("executeDAT", "publisher")
    publisher.par.framestart = True
    publisher.text = (
        "def onFrameStart(frame):\n"
        "    chop = op('lfo')\n"
        "    chop.set_channels({'ch%d' % i: [(frame + i) % 256] for i in range(512)})\n"
        "    op('DataNet').module.publish_chop(chop, 'project.demo.out', mode='dmx', rate=44)\n")
    listener = sensor(lib_env)
    received = []
    listener.subscribe_binary("project.demo.out", lambda channel, data, meta: received.append(data))
    poll_until(listener, lambda: lib_env.stats()["subscriptions"].get("project.demo.out") == 1, what="listener")
    before = lib_env.stats()["published"]
    began = time.monotonic()
    frames = 0
    while time.monotonic() - began < 2.0:
        td.run_frames(1, realtime=True)
        frames += 1
        listener.poll()
    seconds = time.monotonic() - began
    published = lib_env.stats()["published"] - before
    rate = published / seconds
    print("60 fps CHOP for %.2f s (%d frames): the gateway received %d DMX frames, %.1f per second"
          % (seconds, frames, published, rate))
    assert published <= 44 * seconds + 2, "never above the 44 Hz cap"
    assert rate >= 30, "close to the cap, not starved"
    counters = dn.status()["counters"]
    assert counters["coalesced"] > 0 and counters["coalesced"] + counters["sent"] + counters["streams_pending"] >= frames
    poll_until(listener, lambda: len(received) == published, what="every frame at the listener")
    assert all(len(frame) == 512 for frame in received)
