"""The local gateway as a venue relay (issue 13): DataNet.py clients and the
DataNet component on the relay, the official SDK on the "cloud" (a second gateway
process)."""

import asyncio
import os
import queue
import time

import pytest

from conftest import KEY, REPO, Gateway, library_path, peer, run_until

import DataNet

datanet_sdk = pytest.importorskip("datanet", reason="datanet-sdk is installed by tests/run.sh")

#: The venue's key for the cloud: it must never show anywhere.
UPSTREAM_KEY = "ak_venue_uplink_py_5d1e88c0"
CHANNEL = "project.demo.venue"


def relay_for(cloud, tmp_path, *more):
    env = dict(os.environ, DATANET_UPSTREAM_API_KEY=UPSTREAM_KEY)
    relay = Gateway(str(tmp_path / "relay.log"), env=env,
                    args=["--upstream-api-url", cloud.url, "--upstream-ws-url", cloud.ws_url, *more])
    wait(lambda: relay.stats()["upstream"]["state"] == "connected", "the relay's uplink")
    return relay


def wait(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


class Sdk:
    """The official SDK on the cloud, on its own event-loop thread."""

    def __init__(self, gateway):
        self.client = datanet_sdk.DataNet(api_key=KEY, api_url=gateway.url, ws_url=gateway.ws_url)
        self.received = queue.Queue()

        async def on_json(data, meta):
            self.received.put((data, meta.from_, meta.timestamp))

        self.client.subscribe(CHANNEL, on_json)
        self.client.connect_sync(timeout=10)

    def publish(self, data):
        asyncio.run_coroutine_threadsafe(self.client.publish(CHANNEL, data), self.client._loop).result(timeout=10)

    def next(self):
        return self.received.get(timeout=20)

    def close(self):
        self.client.disconnect_sync(timeout=5)


def test_three_clients_share_one_uplink_both_ways(tmp_path):
    cloud = Gateway(str(tmp_path / "cloud.log"))
    recording = str(tmp_path / "venue.jsonl")
    relay = relay_for(cloud, tmp_path, "--record", recording)
    sdk = None
    try:
        clients, inboxes, errors, presences = [], [], [], []
        for name in ("stage", "foh", "lights"):
            client, got = peer(name), []
            client.subscribe(CHANNEL, lambda channel, data, from_, ts, got=got: got.append((data, from_, ts)))
            client.on("error", errors.append)
            client.on("presence", lambda channel, answer: presences.append(answer))
            client.connect(KEY, api_url=relay.url, ws_url=relay.ws_url, lib_path=library_path())
            clients.append(client)
            inboxes.append(got)

        def poll_all():
            for client in clients:
                client.poll()

        wait(lambda: poll_all() or all(c.status()["occupancy"].get(CHANNEL) for c in clients), "local subscriptions")
        wait(lambda: cloud.stats()["subscriptions"].get(CHANNEL) == 1, "one upstream subscription")
        stats = cloud.stats()
        assert (stats["connections"], stats["connections_total"]) == (1, 1), "one device connection for three"

        # Cloud to venue: original from and ts.
        sdk = Sdk(cloud)
        sdk.publish({"cue": 1})
        own_echo = sdk.next()
        wait(lambda: poll_all() or all(len(got) == 1 for got in inboxes), "the cloud's message at every client")
        assert all(got == [own_echo] for got in inboxes), (own_echo, inboxes)

        # Venue to cloud, and to the other local clients once each (not again as upstream's echo).
        clients[0].publish(CHANNEL, {"from": "stage"})
        data, from_, _ = sdk.next()
        assert data == {"from": "stage"} and from_ == relay.stats()["upstream"]["conn_id"]
        sdk.publish({"marker": True})
        wait(lambda: poll_all() or all(got[-1][0] == {"marker": True} for got in inboxes), "the marker")
        stage_id = clients[0].conn_id
        for got in inboxes:
            assert [d for d, _, _ in got] == [{"cue": 1}, {"from": "stage"}, {"marker": True}]
            assert got[1][1] == stage_id

        # Presence: three local subscribers and the SDK upstream (the relay itself not counted).
        deadline = time.monotonic() + 20
        while not presences or presences[-1]["occupancy"] != 4:
            assert time.monotonic() < deadline, presences
            clients[1].get_presence(CHANNEL)
            time.sleep(0.3)
            poll_all()
        assert clients[0].conn_id in presences[-1]["members"]

        # The last local unsubscribe ends the upstream subscription (the SDK's stays).
        for n, client in enumerate(clients):
            client.unsubscribe(CHANNEL)
            expected = 2 if n < 2 else 1
            wait(lambda: poll_all() or cloud.stats()["subscriptions"].get(CHANNEL) == expected, "upstream subs")
            time.sleep(0.1)
            assert cloud.stats()["subscriptions"].get(CHANNEL) == expected

        # The upstream key is nowhere: stats, client status and errors, logs, stdout.
        shown = [str(relay.stats()), str([c.status() for c in clients]), str([e.to_dict() for e in errors])]
        sdk.close()
        sdk = None
        relay.stop()
        shown += [relay.log(), relay.process.stdout.read()]
        assert any("upstream: connected as" in text for text in shown), shown[-1]
        for text in shown:
            assert UPSTREAM_KEY not in text
        # What came from upstream was recorded too, with its original sender.
        recorded = [(m.data, m.from_) for m in DataNet.read_recording(recording)]
        assert recorded == [({"cue": 1}, own_echo[1]), ({"from": "stage"}, stage_id),
                            ({"marker": True}, own_echo[1])]
    finally:
        if sdk is not None:
            sdk.close()
        if relay.process.poll() is None:
            relay.stop()
        cloud.stop()


def test_the_component_shows_the_upstream_state(tmp_path, td, monkeypatch):
    cloud = Gateway(str(tmp_path / "cloud.log"))
    relay = relay_for(cloud, tmp_path)
    try:
        monkeypatch.setenv("DATANET_LIB", library_path())
        monkeypatch.setenv("DATANET_REPO", REPO)
        td.root.create("containerCOMP", "project1")
        builder = td.root.create("textDAT", "builder")
        with open(os.path.join(REPO, "td", "build_component.py"), encoding="utf-8") as f:
            builder.text = f.read()
        builder.run()
        comp = td.op("/project1/DataNet")
        comp.par.Apiurl, comp.par.Wsurl, comp.par.Channels = relay.url, relay.ws_url, CHANNEL
        comp.par.Apikey = KEY
        comp.par.Connect.pulse()
        run_until(td, lambda: comp.par.Status.eval() == "Connected", what="Status Connected")

        # The cloud goes away: the component hears it, and stays connected to the relay.
        port = cloud.url.rsplit(":", 1)[1]
        cloud.stop()
        run_until(td, lambda: comp.par.Lasterror.eval().startswith("upstream_unavailable"), timeout=30,
                  what="upstream_unavailable in Lasterror")
        assert "upstream_unavailable" in comp.scriptErrors()
        assert comp.par.Status.eval() == "Connected"
        status = comp.GetStatus()
        assert status["last_error"]["code"] == "upstream_unavailable" and status["counters"]["reconnects"] == 0

        # It comes back on the same address: the error clears.
        deadline = time.monotonic() + 10
        while True:
            try:
                cloud = Gateway(str(tmp_path / "cloud2.log"), port=int(port))
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the cloud did not restart on its port"
                time.sleep(0.1)
        run_until(td, lambda: comp.par.Lasterror.eval().startswith("upstream_restored"), timeout=30,
                  what="upstream_restored in Lasterror")
        assert not comp.scriptErrors()
        assert comp.par.Status.eval() == "Connected" and comp.GetStatus()["counters"]["reconnects"] == 0
    finally:
        relay.stop()
        if cloud.process.poll() is None:
            cloud.stop()
