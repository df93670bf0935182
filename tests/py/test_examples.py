"""Each example builder, run as the README says, in the TD fake against the gateway."""

import os
import time

from conftest import REPO, run_until, sensor_client


def run_example(td, name):
    td.root.create("containerCOMP", "project1")
    runner = td.root.create("textDAT", "textport")
    runner.text = "import runpy\nrunpy.run_path(%r, init_globals=globals())\n" % os.path.join(
        REPO, "examples", name + ".py")
    runner.run()
    network = td.op("/project1/" + name)
    assert network is not None, td.errors
    td.start()
    comp = network.op("DataNet")
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what=name + " connected")
    return network, comp


def test_basic_subscribe_fills_the_table(td, lib_env):
    network, comp = run_example(td, "basic_subscribe")
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.basic") == 1, what="subscribed")
    sensor_client(lib_env).publish("project.demo.basic", {"hello": "td"})
    table = comp.op("messages")
    run_until(td, lambda: table.numRows == 2, what="a row")
    assert [table[1, c].val for c in ("channel", "data")] == ["project.demo.basic", '{"hello":"td"}']


def test_sensor_dashboard_makes_chop_channels(td, lib_env):
    network, comp = run_example(td, "sensor_dashboard")
    run_until(td, lambda: len(lib_env.stats()["subscriptions"]) == 3, what="three subscriptions")
    rig = sensor_client(lib_env)
    for letter, temperature in zip("abc", (20.5, 21.5, 22.5)):
        rig.publish("project.demo.sensor." + letter, {"temperature": temperature, "motion": letter == "b"})
    values = comp.op("values")
    run_until(td, lambda: values.numChans == 6, what="six channels")
    got = {ch.name: ch[0] for ch in values.chans()}
    assert got == {"sensor_a_motion": 0.0, "sensor_a_temperature": 20.5, "sensor_b_motion": 1.0,
                   "sensor_b_temperature": 21.5, "sensor_c_motion": 0.0, "sensor_c_temperature": 22.5}


def test_publish_from_chop_comes_back(td, lib_env):
    network, comp = run_example(td, "publish_from_chop")
    values = comp.op("values")
    run_until(td, lambda: values.numChans == 3, what="the LFO back as channels")
    assert sorted(ch.name for ch in values.chans()) == ["lfo_cosine", "lfo_ramp", "lfo_sine"]
    before, began = comp.GetStatus()["counters"]["sent"], time.monotonic()
    while time.monotonic() - began < 1.0:
        td.run_frames(1, realtime=True)
    sent = comp.GetStatus()["counters"]["sent"] - before
    assert 10 <= sent <= 32, "about 30 messages a second from a 60 fps CHOP, got %d" % sent
    assert all(-1.0 <= ch[0] <= 1.0 for ch in values.chans())
