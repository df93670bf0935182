"""The DataNet component built by td/build_component.py, in the TD fake, against
the local gateway."""

import json
import os
import time

import pytest

from conftest import (KEY, REPO, SCRIPT_CHOP_READINGS, closed_at_the_gateway, library_path, peer, poll_until,
                      run_until, sensor_client)

BUILDER = os.path.join(REPO, "td", "build_component.py")


def build(td, lib_env):
    """Runs the build script as an artist would (a Text DAT's Run), then points the
    component at the local gateway."""
    td.root.create("containerCOMP", "project1")
    builder = td.root.create("textDAT", "builder")
    with open(BUILDER, encoding="utf-8") as f:
        builder.text = f.read()
    builder.run()
    comp = td.op("/project1/DataNet")
    assert comp is not None, td.textport
    comp.par.Apiurl = lib_env.url
    comp.par.Wsurl = lib_env.ws_url
    comp.par.Channels = "project.demo.comp"
    return comp


@pytest.fixture
def component(td, lib_env, monkeypatch):
    monkeypatch.setenv("DATANET_REPO", REPO)
    return build(td, lib_env)


def saved_description(td):
    with open(os.path.join(td.project.folder, "DataNet.tox"), encoding="utf-8") as f:
        return {child["name"]: child for child in json.load(f)["children"]}


def wait_for(condition, what, timeout=10.0):
    """Waits without running frames."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)


def connect(td, comp):
    comp.par.Apikey = KEY
    comp.par.Connect.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="Status Connected")


def test_the_build_script_makes_the_documented_component(td, component):
    comp = component
    children = {child.name: child.OPType for child in comp.children}
    assert children == {"DataNet": "textDAT", "DataNetExt": "textDAT", "callbacks": "textDAT",
                        "messages": "tableDAT", "values_callbacks": "textDAT", "values": "scriptCHOP",
                        "info_callbacks": "textDAT", "info": "scriptCHOP", "parexec": "parameterexecuteDAT",
                        "execute": "executeDAT"}
    for chop in ("values", "info"):  # issue 10, item 5: create() docks a callbacks DAT to a Script CHOP
        callbacks = comp.op(chop + "_callbacks")
        assert comp.op(chop).par.callbacks.eval() is callbacks and comp.op(chop).docked == [callbacks]
        assert "DataNetExt" in callbacks.text
    pages = {page.name: [par.name for par in page.pars] for page in comp.customPages}
    assert pages["DataNet"] == ["Active", "Apikey", "Channels", "Apiurl", "Wsurl", "Deviceid", "Devicename",
                                "Autoconnect", "Connect", "Disconnect", "Reset", "Maxrows", "Clear", "Cafile",
                                "Tlsroots", "Proxy", "Echo", "Newestonly", "Status"]
    assert pages["Stats"] == ["Received", "Sent", "Dropped", "Queued", "Reconnects", "Lasterror", "Rtt",
                              "Occupancy"]
    assert comp.par.Status.readOnly and comp.par.Received.readOnly and not comp.par.Apikey.readOnly
    assert (comp.par.Maxrows.eval(), comp.par.Active.eval(), comp.par.Echo.eval()) == (100, True, True)
    saved = os.path.join(td.project.folder, "DataNet.tox")
    assert any(saved in line for line in td.textport), td.textport
    with open(saved, encoding="utf-8") as f:
        description = json.load(f)
    assert {child["name"] for child in description["children"]} == set(children)
    assert callable(comp.Publish) and callable(comp.Subscribe) and callable(comp.Unsubscribe)


def test_building_again_is_a_clear_error_not_a_renamed_copy(td, component):
    """create() with a name in use picks the next numbered name in TD: the build
    refuses instead of saving a DataNet1."""
    builder = td.op("/builder")
    builder.run()
    assert [c.name for c in td.op("/project1").children] == ["DataNet"]
    assert len(td.errors) == 1 and "already has an operator named DataNet" in td.errors[0][2]
    td.errors.clear()


def test_the_build_uses_the_extension_pars_of_the_running_build(td, lib_env, monkeypatch, tmp_path):
    """Issue 10, item 3: current builds name the extension parameters ext0object /
    ext0promote; extension1 / promoteextension1 are 2020-era names."""
    from tdfake import TD

    monkeypatch.setenv("DATANET_REPO", REPO)
    for legacy in (False, True):
        fake = TD(project_folder=str(tmp_path), legacy_extension_pars=legacy)
        comp = build(fake, lib_env)
        assert fake.errors == [] and callable(comp.Publish), fake.textport
        assert type(comp.ext.DataNetExt).__name__ == "DataNetExt"
        if not legacy:
            assert comp.par.ext0promote.eval() and "DataNetExt" in comp.par.ext0object.eval()


def test_td_events_reach_the_component_through_its_execute_dat(td, component, lib_env):
    """Issue 10, item 1: an Execute DAT runs a callback only while its toggle is on,
    and a new one has them all off: the build turns on each one the component uses."""
    comp = component
    comp.par.Apikey = KEY
    td.start()  # project start: onStart connects (Autoconnect on)
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="connected and polled each frame")
    comp.Disconnect()
    assert closed_at_the_gateway(lib_env)
    td.fire_create(comp)  # the .tox placed in a project: onCreate connects
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="connected again")
    execute = saved_description(td)["execute"]["pars"]
    assert all(execute.get(toggle) is True for toggle in ("start", "create", "framestart", "exit",
                                                          "projectpresave")), execute
    td.exit()  # onExit closes the connection
    assert closed_at_the_gateway(lib_env)


def test_the_parameter_execute_dat_sets_every_toggle_it_relies_on(td, component, lib_env):
    """Issue 10, item 2: TD does not document the Parameter Execute DAT's defaults
    (the fake's fire nothing for custom parameters): the build sets each one."""
    comp = component
    comp.par.Apikey = KEY
    comp.par.Connect.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="Connect pulse")
    comp.par.Active = False
    assert comp.par.Status.eval() == "Inactive" and closed_at_the_gateway(lib_env)
    parexec = saved_description(td)["parexec"]["pars"]
    assert {k: parexec.get(k) for k in ("op", "pars", "custom", "builtin", "valuechange", "onpulse",
                                        "valueschanged")} == {
        "op": comp.path, "pars": "*", "custom": True, "builtin": False, "valuechange": True, "onpulse": True,
        "valueschanged": False}


def test_pulses_and_active_drive_the_connection(td, component, lib_env):
    comp = component
    assert comp.par.Status.eval() in ("Idle", "Error: no API key: set the Apikey parameter (or DATANET_API_KEY)")
    connect(td, comp)
    assert lib_env.stats()["connections"] == 1
    comp.par.Disconnect.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Disconnected", what="Disconnected")
    assert closed_at_the_gateway(lib_env)
    comp.par.Connect.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="connected again")
    comp.par.Active = False
    run_until(td, lambda: comp.par.Status.eval() == "Inactive", what="Inactive")
    assert closed_at_the_gateway(lib_env)
    comp.par.Connect.pulse()
    td.run_frames(5)
    assert lib_env.stats()["connections"] == 0, "Connect does nothing while inactive"
    comp.par.Active = True
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="Active on")
    comp.par.Reset.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="after Reset")
    assert closed_at_the_gateway(lib_env, expected=1), "the old connection closed, the new one open"


@pytest.mark.parametrize("td", SCRIPT_CHOP_READINGS, indirect=True)
def test_channels_status_stats_table_and_callbacks(td, component, lib_env):
    comp = component
    comp.op("callbacks").text = (
        "seen = []\n"
        "def onMessage(channel, data, from_, timestamp):\n"
        "    seen.append((channel, data))\n")
    connect(td, comp)
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.comp") == 1, what="subscribed")
    rig = sensor_client(lib_env)
    rig.publish("project.demo.comp", {"level": 0.5})
    run_until(td, lambda: comp.par.Received.eval() == 1, what="Stats Received")
    assert comp.op("callbacks").module.seen == [("project.demo.comp", {"level": 0.5})]
    assert comp.op("messages")[1, "channel"].val == "project.demo.comp"
    run_until(td, lambda: comp.op("values").numChans == 1, what="values CHOP")
    assert comp.op("values")["comp_level"][0] == 0.5
    assert comp.op("info")["connected"][0] == 1.0
    run_until(td, lambda: comp.par.Occupancy.eval() == 1, what="occupancy from presence")

    comp.par.Channels = "project.demo.other"
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.other") == 1, what="new channel")
    assert lib_env.stats()["subscriptions"].get("project.demo.comp", 0) == 0
    comp.Subscribe("project.demo.third")
    assert comp.par.Channels.eval() == "project.demo.other project.demo.third"
    comp.Unsubscribe("project.demo.other")
    assert comp.par.Channels.eval() == "project.demo.third"

    comp.par.Maxrows = 3
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.third") == 1, what="third subscribed")
    for n in range(6):
        rig.publish("project.demo.third", n)
    run_until(td, lambda: comp.par.Received.eval() == 7, what="six more")
    assert comp.op("messages").numRows == 4
    comp.par.Clear.pulse()
    assert comp.op("messages").numRows <= 1


def test_newest_only_calls_on_message_once_per_frame_per_channel(td, component, lib_env):
    comp = component
    comp.op("callbacks").text = (
        "seen = []\n"
        "def onMessage(channel, data, from_, timestamp, replaced=0):\n"
        "    seen.append((data, replaced))\n")
    comp.par.Newestonly = True
    connect(td, comp)
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.comp") == 1, what="subscribed")
    rig = sensor_client(lib_env)
    for n in range(40):
        rig.publish("project.demo.comp", {"n": n})
    # No frame runs while they arrive: the next frame's poll finds all 40.
    wait_for(lambda: comp.GetStatus()["counters"]["received"] == 40, what="every message in the library")
    run_until(td, lambda: comp.op("callbacks").module.seen, what="the callback")
    assert comp.op("callbacks").module.seen == [({"n": 39}, 39)], "once, the newest, standing for 39 more"
    comp.par.Newestonly = False
    # TD runs Parameter Execute callbacks at the frame's end: the change takes hold
    # after one frame, so messages published before that may still be coalesced.
    td.run_frames(1)
    rig.publish("project.demo.comp", {"n": 40})
    rig.publish("project.demo.comp", {"n": 41})
    run_until(td, lambda: comp.op("callbacks").module.seen[-1] == ({"n": 41}, 0), what="every message again")
    assert comp.op("callbacks").module.seen[-2] == ({"n": 40}, 0)


def test_events_reach_the_extension_made_after_its_dat_changed(td, component, lib_env):
    """Issue 10, item 4: TD makes the extension again when its DAT changes; the old
    instance must not keep the client's events (nor the old callbacks it looked up)."""
    comp = component
    callbacks = comp.op("callbacks")
    callbacks.text = ("seen, connects = [], []\n"
                      "def onMessage(channel, data, from_, timestamp):\n    seen.append(data)\n"
                      "def onConnect():\n    connects.append(1)\n")
    connect(td, comp)
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.comp") == 1, what="subscribed")
    rig = sensor_client(lib_env)
    rig.publish("project.demo.comp", {"n": 1})
    run_until(td, lambda: callbacks.module.seen == [{"n": 1}], what="the first message")
    first = comp.ext.DataNetExt
    comp.op("DataNetExt").text = comp.op("DataNetExt").text + "\n# edited mid-show\n"
    td.run_frames(1)
    assert comp.ext.DataNetExt is not first, "TD made the extension again"
    callbacks.text = callbacks.text + "\n# edited too\n"
    rig.publish("project.demo.comp", {"n": 2})
    run_until(td, lambda: comp.par.Received.eval() == 2, what="the second message")
    assert callbacks.module.seen == [{"n": 2}], "the live extension forwarded it to the edited callbacks"
    lib_env.admin("drop", {})
    run_until(td, lambda: comp.GetStatus()["counters"]["reconnects"] >= 1 and comp.par.Status.eval() == "Connected",
              timeout=15, what="reconnected")
    assert callbacks.module.connects == [1] and comp.GetStatus()["callback_errors"] == 0


def test_editing_the_api_key_reconnects_with_it(td, component, lib_env):
    comp = component
    connect(td, comp)
    lib_env.admin("revoke", {"key": "ak_revoked_key"})
    comp.par.Apikey = "ak_revoked_key"
    run_until(td, lambda: "authentication_failed" in comp.scriptErrors(), what="error on the node")
    assert "ak_revoked_key" not in comp.scriptErrors()
    comp.par.Apikey = KEY
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="reconnected with the good key")


def test_echo_off_suppresses_own_messages(td, component):
    comp = component
    connect(td, comp)
    comp.Publish("project.demo.comp", {"echo": 1})
    run_until(td, lambda: comp.par.Received.eval() == 1, what="own message with Echo on")
    comp.par.Echo = False
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="reconnected")
    comp.Publish("project.demo.comp", {"echo": 2})
    td.run_frames(30)
    status = comp.GetStatus()
    assert status["counters"]["echo_suppressed"] >= 1
    assert all(json.loads(comp.op("messages")[r, "data"].val) != {"echo": 2}
               for r in range(1, comp.op("messages").numRows))


def test_secrets_never_appear_anywhere(td, component, lib_env, monkeypatch, tmp_path):
    secret = "ak_SECRET_never_print_me"
    monkeypatch.setenv("DATANET_API_KEY", secret)
    comp = component
    comp.par.Connect.pulse()
    run_until(td, lambda: comp.par.Status.eval() == "Connected", what="connected with the key from the env")
    run_until(td, lambda: lib_env.stats()["subscriptions"].get("project.demo.comp") == 1, what="subscribed")
    rig = sensor_client(lib_env)
    rig.publish("project.demo.comp", {"x": 1})
    run_until(td, lambda: comp.par.Received.eval() == 1, what="a message")
    lib_env.admin("revoke", {"key": secret})
    lib_env.admin("drop", {})
    run_until(td, lambda: "authentication_failed" in comp.scriptErrors(), timeout=15, what="a failure")
    saved = comp.save(str(tmp_path / "copy.tox"))
    outputs = {
        "textport": "\n".join(td.textport),
        "pars": repr({par.name: par.eval() for page in comp.customPages for par in page.pars}),
        "table": comp.op("messages").text,
        "status": json.dumps(comp.GetStatus()),
        "node errors": comp.scriptErrors(),
        "saved component": open(saved, encoding="utf-8").read(),
        "gateway log": lib_env.log(),
        "errors": repr(td.errors),
    }
    for where, text in outputs.items():
        assert secret not in text, "the API key appears in the %s" % where
        assert "eyJ" not in text, "a JWT appears in the %s" % where


def test_the_readme_picture_is_drawn_from_the_component(td, component):
    """td/component_network.svg is the fake's description of the built component,
    drawn; DATANET_BLESS=1 redraws it."""
    from tdfake.draw import draw

    saved = os.path.join(td.project.folder, "DataNet.tox")
    with open(saved, encoding="utf-8") as f:
        svg = draw(json.load(f))
    for name in ("DataNetExt", "messages", "values", "info", "parexec", "execute", "callbacks"):
        assert ">%s<" % name in svg
    picture = os.path.join(REPO, "td", "component_network.svg")
    if os.environ.get("DATANET_BLESS"):
        with open(picture, "w", encoding="utf-8") as f:
            f.write(svg)
    with open(picture, encoding="utf-8") as f:
        assert f.read() == svg, "td/component_network.svg is stale: run with DATANET_BLESS=1"


def test_save_reload_and_exit_are_clean(td, component, lib_env):
    import time

    comp = component
    connect(td, comp)
    td.save_project()  # onProjectPreSave: nothing unpicklable stored, stats refreshed
    assert comp.storage == {}
    # Reloading the extension (as TD does when its DAT changes or the .tox reloads)
    # and editing the shim re-attach: still one connection.
    comp.op("DataNetExt").text = comp.op("DataNetExt").text + "\n# edited\n"
    comp.initializeExtensions()
    comp.op("DataNet").text = comp.op("DataNet").text + "\n# edited\n"
    comp.ext.DataNetExt.Start()
    td.run_frames(10)
    assert comp.par.Status.eval() == "Connected"
    assert (lib_env.stats()["connections"], lib_env.stats()["connections_total"]) == (1, 1)
    lib_env.admin("freeze", {})
    began = time.perf_counter()
    td.exit()
    assert time.perf_counter() - began < 0.5
    lib_env.admin("thaw", {})
