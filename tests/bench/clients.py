"""The three clients under test, behind one interface, in the same TD fake:

- this project: the README's network (DataNet.py + td/ scripts, native client);
- baseline A, the seed guide's design: a websocket-client thread receiving frames
  into a queue.Queue, drained every frame with json.loads and a callback per
  message;
- baseline B, the official Python SDK (datanet-sdk) with connect_sync and handlers
  (handlers run on its asyncio thread, so they hand messages to the main thread
  through a queue.Queue: TD objects must not be touched off the main thread).

A and B fill the Table DAT (batched appendRows, trimmed to 100 in one deleteRows)
and the Script CHOP (numeric fields of each channel's newest message) with the same
code, so the comparison isolates what differs: transport, parsing, dispatch.
"""

import asyncio
import json
import os
import queue
import re
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "ak_bench_client"
ACTIVE = None  # the client a TD network's DATs call into
LAST_SEEN = {}  # written by the trivial per-message callback


def trivial_callback(channel, data, from_, timestamp):
    LAST_SEEN[channel] = data


def read(relative):
    with open(os.path.join(REPO, relative), encoding="utf-8") as f:
        return f.read()


class ThisProject:
    label = "this project"

    def __init__(self, td, url, lib, channels, callbacks, td_work=True):
        self.td, self.url, self.lib, self.channels, self.callbacks = td, url, lib, channels, callbacks
        self.td_work = td_work

    def start(self):
        os.environ.update(DATANET_LIB=self.lib, DATANET_API_KEY=KEY, DATANET_API_URL=self.url,
                          DATANET_WS_URL="ws://" + self.url[len("http://"):],
                          DATANET_CHANNELS=" ".join(self.channels))
        root = self.td.root
        root.create("textDAT", "DataNet").text = read("DataNet.py")
        root.create("tableDAT", "messages")
        # The Script CHOP's callbacks DAT is created with it, docked (as in TD).
        root.create("scriptCHOP", "values").par.callbacks.eval().text = read("td/script_chop_callbacks.py")
        if self.callbacks:
            root.create("textDAT", "callbacks").text = (
                "import clients\n"
                "def onMessage(channel, data, from_, timestamp):\n"
                "    clients.trivial_callback(channel, data, from_, timestamp)\n")
        execute = read("td/execute_dat.py")
        if not self.td_work:  # the client alone: drain and dispatch, no table or CHOP
            execute = execute.replace("    dn.update_table(op(TABLE), max_rows=MAX_ROWS)\n", "").replace(
                "    if dn.values_changed():\n        op(CHOP).cook(force=True)\n", "")
            assert "update_table" not in execute.split("def onFrameStart")[1].split("def onExit")[0]
        execute_dat = root.create("executeDAT", "execute")
        execute_dat.text = execute
        # README: "with Start, Create, Frame Start and Exit on" (TD runs a callback
        # only while its toggle is on).
        execute_dat.par.start = execute_dat.par.create = execute_dat.par.framestart = execute_dat.par.exit = True
        self.td.start()
        self.dn = self.td.op("/DataNet").module

    def ready(self):
        return self.dn.is_connected() and len(self.dn.status()["occupancy"]) == len(self.channels)

    def counts(self):
        counters = self.dn.status()["counters"]
        return counters["received"], counters["dropped_inbound"], self.dn.status()["events_pending"]

    def stop(self):
        self.dn.disconnect()


class PythonClient:
    """Frame work shared by the pure-Python baselines."""

    def __init__(self, td, url, lib, channels, callbacks, td_work=True):
        self.td, self.url, self.channels, self.callbacks = td, url, channels, callbacks
        self.td_work = td_work
        self.queue = queue.Queue()
        self.received = 0
        self.last = {}

    def build_network(self):
        global ACTIVE
        ACTIVE = self
        root = self.td.root
        self.table = root.create("tableDAT", "messages")
        self.chop = root.create("scriptCHOP", "values")
        self.chop.par.callbacks.eval().text = (
            "import clients\ndef onCook(scriptOp):\n    clients.ACTIVE.cook_chop(scriptOp)\n")
        execute = root.create("executeDAT", "execute")
        execute.text = "import clients\ndef onFrameStart(frame):\n    clients.ACTIVE.frame_work()\n"
        execute.par.framestart = True
        self.td.start()

    def frame_work(self):
        items = self.take()
        if not items:
            return
        self.received += len(items)
        if not self.td_work:
            for channel, data, from_, timestamp in items:
                if self.callbacks:
                    trivial_callback(channel, data, from_, timestamp)
            return
        rows = []
        for channel, data, from_, timestamp in items:
            if self.callbacks:
                trivial_callback(channel, data, from_, timestamp)
            rows.append([channel, str(data), from_, timestamp])
            self.last[channel] = data
        table = self.table
        if table.numRows == 0:
            table.appendRow(["channel", "data", "from", "timestamp"])
        table.appendRows(rows[-100:])
        excess = table.numRows - 101
        if excess > 0:
            table.deleteRows(list(range(excess, 0, -1)))
        self.chop.cook(force=True)

    def cook_chop(self, scriptOp):
        scriptOp.clear()
        scriptOp.numSamples = 1
        for channel, data in self.last.items():
            fields = {}
            flatten(data, "", fields)
            short = re.sub(r"[^A-Za-z0-9_]+", "_", channel.split(".", 2)[-1])
            for key, value in fields.items():
                scriptOp.appendChan(short + "_" + key)[0] = value

    def counts(self):
        return self.received, 0, self.queue.qsize()


def flatten(value, prefix, out):
    if isinstance(value, bool) or isinstance(value, (int, float)):
        out[prefix or "value"] = float(value)
    elif isinstance(value, dict):
        for key, child in value.items():
            flatten(child, prefix + "_" + key if prefix else key, out)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            flatten(child, "%s_%d" % (prefix, index) if prefix else str(index), out)


def fetch_token(url):
    request = urllib.request.Request(url + "/auth/token", data=json.dumps({"apiKey": KEY}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["token"]


class SeedGuide(PythonClient):
    label = "A: websocket-client thread + queue (seed guide)"

    def start(self):
        import websocket

        self.build_network()
        token = fetch_token(self.url)
        ws_url = "ws://" + self.url[len("http://"):] + "/ws"
        self.ws = websocket.create_connection(ws_url, subprotocols=["bearer", token], timeout=10)
        while json.loads(self.ws.recv()).get("type") != "connected":
            pass
        for channel in self.channels:
            self.ws.send(json.dumps({"op": "sub", "ch": channel}))
        self.acks = 0
        self.ws.settimeout(None)
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while True:
            try:
                self.queue.put(self.ws.recv())
            except Exception:
                return

    def take(self):
        items = []
        while True:
            try:
                raw = self.queue.get_nowait()
            except queue.Empty:
                return items
            message = json.loads(raw)
            if message.get("op") == "pub":
                items.append((message["ch"], message.get("d"), message.get("from"), message.get("ts")))
            elif message.get("type") == "sub_ack":
                self.acks += 1

    def ready(self):
        if self.acks < len(self.channels):
            self.take()
        return self.acks >= len(self.channels)

    def stop(self):
        self.ws.close()


class OfficialSdk(PythonClient):
    label = "B: official Python SDK (datanet-sdk, connect_sync)"

    def start(self):
        import datanet

        self.build_network()
        self.client = datanet.DataNet(api_key=KEY, api_url=self.url, ws_url="ws://" + self.url[len("http://"):])
        self.client.connect_sync(timeout=10)

        async def handler(message):
            meta = message.meta
            self.queue.put((meta.channel, message.data, meta.from_, meta.timestamp))

        async def subscribe_all():
            for channel in self.channels:
                self.client.subscribe_any(channel, handler)  # JSON and binary

        asyncio.run_coroutine_threadsafe(subscribe_all(), self.client._loop).result(timeout=10)
        self.since = time.monotonic()

    def ready(self):
        # The SDK does not surface sub acks: give the subscriptions a moment.
        return time.monotonic() - self.since > 0.3

    def take(self):
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return items

    def stop(self):
        try:
            self.client.disconnect_sync(timeout=5)
        except Exception as error:  # the SDK's own shutdown can time out under load
            print("  (datanet-sdk disconnect_sync: %r)" % error, flush=True)


CLIENTS = {"project": ThisProject, "A": SeedGuide, "B": OfficialSdk}
sys.modules.setdefault("clients", sys.modules[__name__])
