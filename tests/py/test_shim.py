"""DataNet.py against the local gateway, outside TouchDesigner."""

import importlib
import math
import os
import shutil
import sys
import threading
import time

import pytest

from conftest import KEY, library_path, peer, poll_until

import DataNet


def connect(client, gateway, **options):
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path(), **options)
    poll_until(client, client.is_connected, what="connected")


def test_callbacks_get_the_documented_arguments(gateway):
    receiver, sender = peer("receiver"), peer("sender")
    calls = {"json": [], "binary": [], "any": [], "connect": 0}

    @receiver.on("connect")
    def on_connect():
        calls["connect"] += 1

    receiver.subscribe("project.demo.cb", lambda *args: calls["json"].append(args))
    receiver.subscribe_binary("project.demo.cb", lambda *args: calls["binary"].append(args), "binary/dmx")
    receiver.subscribe_any("project.demo.cb", lambda message: calls["any"].append(message))
    connect(receiver, gateway)
    connect(sender, gateway)
    poll_until(receiver, lambda: receiver.status()["occupancy"].get("project.demo.cb") == 1, what="sub ack")

    sender.publish("project.demo.cb", {"x": 1, "name": "héllo"})
    sender.publish("project.demo.cb", b"\x01\x02\x03", content_type="binary/dmx", metadata={"universe": 1})
    sender.publish("project.demo.cb", bytearray(b"\xff"), content_type="application/x-other")
    poll_until(receiver, lambda: len(calls["any"]) == 3, what="three messages")

    assert calls["connect"] == 1
    [(channel, data, from_, timestamp)] = calls["json"]
    assert (channel, data, from_) == ("project.demo.cb", {"x": 1, "name": "héllo"}, sender.conn_id)
    assert isinstance(timestamp, int) and timestamp > 1_600_000_000_000
    [(channel, data, meta)] = calls["binary"]  # the content-type filter left out the third
    assert (channel, data) == ("project.demo.cb", b"\x01\x02\x03")
    assert meta == {"channel": "project.demo.cb", "from": sender.conn_id, "timestamp": meta["timestamp"],
                    "content_type": "binary/dmx", "bytes": 3, "metadata": {"universe": 1}}
    kinds = [(m.kind, m.content_type) for m in calls["any"]]
    assert kinds == [("json", None), ("binary", "binary/dmx"), ("binary", "application/x-other")]
    assert calls["any"][0].data == {"x": 1, "name": "héllo"}
    assert calls["any"][2].data == b"\xff"


def test_values_and_last_message(gateway):
    client = peer()
    client.subscribe("project.demo.v")
    connect(client, gateway)
    client.publish("project.demo.v", {"pos": {"x": 0.25, "y": -1}, "on": True, "label": "a"})
    poll_until(client, lambda: client.get_value("project.demo.v", "pos/x") is not None, what="value")
    assert client.get_value("project.demo.v", "pos/x") == 0.25
    assert client.get_value("project.demo.v", "on") == 1.0
    assert client.get_value("project.demo.v", "label", default="none") == "none"
    assert client.get_value("project.demo.v") == {"pos": {"x": 0.25, "y": -1}, "on": True, "label": "a"}
    assert client.last_message("project.demo.v").from_ == client.conn_id
    assert client.last_message("project.demo.unknown") is None
    assert sorted(client.numeric_values()) == [("project.demo.v", "on", 1.0), ("project.demo.v", "pos/x", 0.25),
                                              ("project.demo.v", "pos/y", -1.0)]


def test_unsubscribe_removes_one_callback_or_all(gateway):
    client = peer()
    first, second = [], []
    one = client.subscribe("project.demo.u", lambda *a: first.append(a[1]))
    client.subscribe("project.demo.u", lambda *a: second.append(a[1]))
    connect(client, gateway)
    assert client.unsubscribe("project.demo.u", one) == 1
    client.publish("project.demo.u", 1)
    poll_until(client, lambda: second == [1], what="second callback")
    assert first == []
    assert client.unsubscribe("project.demo.u") == 1
    assert client.subscriptions() == []
    poll_until(client, lambda: gateway.stats()["subscriptions"].get("project.demo.u", 0) == 0, what="unsub")
    assert client.unsubscribe("project.demo.u") == 0


def test_bad_input_is_a_clear_error(gateway):
    client = peer()
    with pytest.raises(DataNet.DataNetError) as error:
        client.publish("project.demo.x", 1)
    assert error.value.code == "not_connected"
    connect(client, gateway)
    for channel, data, code in [
        ("project.demo.x", math.nan, "invalid_argument"),
        ("project.demo.x", {1, 2}, "invalid_argument"),
        ("", 1, "invalid_argument"),
        ("x" * 256, 1, "invalid_argument"),
        ("bad\x00name", 1, "invalid_argument"),
        (42, 1, "invalid_argument"),
    ]:
        with pytest.raises(DataNet.DataNetError) as error:
            client.publish(channel, data)
        assert error.value.code == code, (channel, data)
    with pytest.raises(DataNet.DataNetError, match="metadata must be a JSON object"):
        client.publish_binary("project.demo.x", b"1", metadata=[1, 2])
    with pytest.raises(DataNet.DataNetError, match="unknown event"):
        client.on("nope", print)
    with pytest.raises(DataNet.DataNetError, match="unknown config key"):
        client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path(), hearbeat=5)
    for pace in (51, -1, "2", 2.5):
        with pytest.raises(DataNet.DataNetError, match="read_pace_ms") as error:
            client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path(), read_pace_ms=pace)
        assert error.value.code == "invalid_argument", pace


def test_failing_callbacks_are_counted_and_do_not_stop_the_poll(gateway, capsys):
    client = peer()
    seen = []
    client.subscribe("project.demo.f", lambda *a: 1 / 0)
    client.subscribe("project.demo.f", lambda *a: seen.append(a[1]))
    connect(client, gateway)
    client.publish("project.demo.f", "x")
    poll_until(client, lambda: seen == ["x"], what="second callback")
    assert client.status()["callback_errors"] == 1
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_bad_key_reaches_on_error_and_status(gateway):
    client = peer()
    errors = []
    client.on("error", errors.append)
    client.connect("ak_", api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, lambda: errors, what="error")
    assert isinstance(errors[0], DataNet.DataNetError)
    assert (errors[0].code, errors[0].status) == ("authentication_failed", 401)
    assert client.status()["last_error"]["code"] == "authentication_failed"


def test_device_limit_is_fatal(gateway):
    gateway.admin("device-limit", {"key": KEY, "limit": 0})
    client = peer()
    errors = []
    client.on("error", errors.append)
    client.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(client, lambda: errors and client.status()["state"] == "failed", what="failed")
    assert [e.code for e in errors] == ["device_limit_reached"]
    assert errors[0].limit == 0


def test_presence_arrives_as_an_event(gateway):
    client = peer()
    answers = []
    client.on("presence", lambda channel, presence: answers.append((channel, presence)))
    client.subscribe("project.demo.p")
    connect(client, gateway)
    poll_until(client, lambda: client.status()["occupancy"].get("project.demo.p") == 1, what="sub ack")
    client.get_presence("project.demo.p")
    poll_until(client, lambda: answers, what="presence")
    assert answers == [("project.demo.p", {"occupancy": 1, "members": [client.conn_id]})]


def test_disconnect_is_bounded_and_idempotent(gateway):
    client = peer()
    client.disconnect()
    connect(client, gateway)
    gateway.admin("freeze", {})
    started = time.perf_counter()
    client.disconnect()
    client.disconnect()
    assert time.perf_counter() - started < 0.5
    assert client.status()["state"] == "closed"
    gateway.admin("thaw", {})


def test_reloading_the_module_reattaches_to_the_same_connection(gateway):
    module = importlib.import_module("DataNet")
    module.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
    poll_until(module.datanet, module.is_connected, what="connected")
    for _ in range(100):
        module = importlib.reload(module)
        module.connect(KEY, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
        module.poll()
    stats = gateway.stats()
    assert (stats["connections"], stats["connections_total"], stats["auth_requests"]) == (1, 1, 1)


def test_the_shim_starts_no_python_threads(gateway):
    before = threading.active_count()
    client = peer()
    connect(client, gateway)
    client.subscribe("project.demo.t")
    client.publish("project.demo.t", 1)
    poll_until(client, lambda: client.status()["counters"]["received"] == 1, what="message")
    assert threading.active_count() == before


def test_library_lookup_and_abi_check(tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere" / "libdatanet.so")
    with pytest.raises(DataNet.DataNetError) as error:
        DataNet.load_library(missing)
    assert error.value.code == "library_not_found" and missing in error.value.message
    copy = str(tmp_path / os.path.basename(library_path()))
    shutil.copy(library_path(), copy)
    monkeypatch.setattr(DataNet, "ABI_VERSION", 999)
    with pytest.raises(DataNet.DataNetError) as error:
        DataNet.load_library(copy)
    assert error.value.code == "abi_mismatch"
    assert "cargo build --release" in error.value.message and "999" in error.value.message


def test_library_found_through_the_environment(monkeypatch):
    monkeypatch.setenv("DATANET_LIB", library_path())
    assert DataNet.load_library().dn_abi_version() == DataNet.ABI_VERSION


def test_chop_channel_names():
    assert DataNet.chop_channel_name("project.abc.sensor", "pos/x") == "sensor_pos_x"
    assert DataNet.chop_channel_name("project.abc.sensor", "") == "sensor"
    assert DataNet.chop_channel_name("project.abc.sensor", "arr/0", strip_prefix=False) == "project_abc_sensor_arr_0"
    assert DataNet.chop_channel_name("9lives", "k") == "_9lives_k"
    assert DataNet.chop_channel_name("...", "") == "value"


if sys.platform.startswith("linux"):
    def test_secrets_never_reach_status_or_errors(gateway):
        client = peer()
        errors = []
        client.on("error", errors.append)
        secret = "ak_bad_but_secret_value"
        gateway.admin("revoke", {"key": secret})
        client.connect(secret, api_url=gateway.url, ws_url=gateway.ws_url, lib_path=library_path())
        poll_until(client, lambda: errors, what="error")
        assert secret not in repr(client.status()) and secret not in str(errors[0])
