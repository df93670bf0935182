"""The clients alone: each design's main-thread and whole-process cost with the
TouchDesigner operators replaced by stand-ins that cost next to nothing, so only
the client's own Python and native work shows (the TD fake's Python emulation of
Table DATs and Script CHOPs costs far more than TD's C++ and would hide it).

Designs, each driven by a 60 fps frame loop in real time:
- this project: DataNet.py as the README network uses it (poll, update_table,
  update_chop when values_changed), or with Python callbacks;
- the seed guide's design, as its DataNet.py is written: a websocket-client
  WebSocketApp thread that json.loads every frame and puts it on a queue.Queue, a
  poll() that dispatches at most 50 messages per frame to callbacks; its table and
  CHOP fed from a callback (rows appended per frame, CHOP rebuilt from last values);
- the official SDK (datanet-sdk, connect_sync), handlers handing messages to the
  main thread through a queue.Queue, with the same table and CHOP code as the seed.

Modes: "callbacks" (a trivial Python callback per message), "table" (Table DAT of
100 rows + Script CHOP from last values, no callbacks of the artist's), "latest"
(this project only: newest-per-channel callbacks).
"""

import asyncio
import json
import os
import pickle
import queue
import statistics
import threading
import time

import clients

FRAME_S = 1 / 60
MAX_ROWS = 100


class Channel:
    __slots__ = ("name", "value")

    def __init__(self, name):
        self.name, self.value = name, 0.0

    def __setitem__(self, index, value):
        self.value = value

    def __getitem__(self, index):
        return self.value


class ScriptChop:
    """A Script CHOP stand-in: keeps its channels between cooks (the reading the
    public Script CHOP code relies on)."""

    path = "/values"

    def __init__(self):
        self.channels = []
        self.numSamples = 1

    @property
    def numChans(self):
        return len(self.channels)

    def clear(self):
        self.channels = []

    def appendChan(self, name):
        channel = Channel(name)
        self.channels.append(channel)
        return channel

    def chans(self):
        return self.channels

    def __getitem__(self, index):
        return self.channels[index]


class Table:
    """A Table DAT stand-in: counts rows, keeps none."""

    path = "/messages"

    def __init__(self):
        self.numRows = 0
        self.appended = 0

    def appendRow(self, row):
        self.numRows += 1

    def appendRows(self, rows):
        self.numRows += len(rows)
        self.appended += len(rows)

    def deleteRows(self, indices):
        self.numRows -= len(indices)


def trivial_callback(channel, data, from_, timestamp, replaced=0):
    clients.LAST_SEEN[channel] = data


class ThisProject:
    label = "this project"
    options = {}

    def __init__(self, url, lib, channels, mode):
        import DataNet
        self.dn = DataNet.DataNet("standins")
        self.url, self.lib, self.channels, self.mode = url, lib, channels, mode
        self.table, self.chop = Table(), ScriptChop()

    def start(self):
        self.dn.connect(clients.KEY, api_url=self.url, ws_url="ws://" + self.url[len("http://"):], lib_path=self.lib,
                        **self.options)
        for channel in self.channels:
            if self.mode == "callbacks":
                self.dn.subscribe(channel, trivial_callback)
            elif self.mode == "latest":
                self.dn.subscribe(channel, trivial_callback, latest=True)
            else:
                self.dn.subscribe(channel)

    def ready(self):
        self.dn.poll()
        return self.dn.is_connected() and len(self.dn.status()["occupancy"]) == len(self.channels)

    def frame(self):
        dn = self.dn
        dn.poll()
        if self.mode == "table":
            dn.update_table(self.table, max_rows=MAX_ROWS)
            if dn.values_changed():
                dn.update_chop(self.chop)

    def counts(self):
        status = self.dn.status()
        received = status["counters"]["received"]
        table = status["tables"].get(self.table.path, {"shown": 0, "not_shown": 0})
        accounted = received if self.mode != "table" else table["shown"] + table["not_shown"]
        return received, status["counters"]["dropped_inbound"], status["events_pending"], accounted

    def stop(self):
        self.dn.disconnect()


class SeedDesign:
    """The seed guide's DataNet.py design, with its numbers (50 per frame)."""

    label = "seed guide design"

    def __init__(self, url, lib, channels, mode):
        self.url, self.channels, self.mode = url, channels, mode
        self.queue = queue.Queue()
        self.subscriptions = {}
        self.acks = 0
        self.received = 0
        self.last, self.rows = {}, []
        self.table, self.chop = Table(), ScriptChop()

    def start(self):
        import websocket

        token = clients.fetch_token(self.url)

        def on_open(ws):
            for channel in self.channels:
                ws.send(json.dumps({"op": "sub", "ch": channel}))

        def on_message(ws, message):
            try:
                env = json.loads(message)
                if env.get("op") == "pub" and "ch" in env:
                    self.queue.put(("__msg__", env))
                elif env.get("type") == "sub_ack":
                    self.acks += 1
            except Exception:
                pass

        self.app = websocket.WebSocketApp("ws://" + self.url[len("http://"):] + "/ws",
                                          header={"Sec-WebSocket-Protocol": "bearer, " + token},
                                          on_open=on_open, on_message=on_message)
        self.thread = threading.Thread(target=self.app.run_forever, kwargs={"ping_interval": 30, "ping_timeout": 10},
                                       daemon=True)
        self.thread.start()
        callback = trivial_callback if self.mode == "callbacks" else self.keep
        for channel in self.channels:
            self.subscriptions[channel] = [callback]

    def keep(self, channel, data, from_, timestamp):
        self.last[channel] = data
        self.rows.append([channel, str(data), from_, timestamp])

    def ready(self):
        return self.acks >= len(self.channels)

    def poll(self):
        dispatched = 0
        while not self.queue.empty() and dispatched < 50:
            item = self.queue.get_nowait()
            dispatched += 1
            env = item[1]
            ch = env.get("ch", "")
            data = env.get("d")
            from_ = env.get("from", "")
            ts = env.get("ts", int(time.time() * 1000))
            for cb in self.subscriptions.get(ch, []):
                try:
                    cb(ch, data, from_, ts)
                except Exception as e:
                    print(f"DataNet: callback error on {ch}: {e}")
        self.received += dispatched

    def frame(self):
        self.poll()
        if self.mode == "table":
            table_and_chop(self)

    def counts(self):
        return self.received, 0, self.queue.qsize(), self.received

    def stop(self):
        self.app.close()


def table_and_chop(client):
    """The Table DAT and Script CHOP work of the Python designs, batched as kindly
    as it can be: the frame's rows in one appendRows, trimmed in one deleteRows,
    the CHOP rebuilt from the last values only in frames with messages."""
    if not client.rows:
        return
    table = client.table
    if table.numRows == 0:
        table.appendRow(["channel", "data", "from", "timestamp"])
    table.appendRows(client.rows[-MAX_ROWS:])
    client.rows = []
    excess = table.numRows - 1 - MAX_ROWS
    if excess > 0:
        table.deleteRows(list(range(excess, 0, -1)))
    chop = client.chop
    chop.clear()
    chop.numSamples = 1
    for channel, data in client.last.items():
        fields = {}
        clients.flatten(data, "", fields)
        short = channel.split(".", 2)[-1]
        for key, value in fields.items():
            chop.appendChan(short + "_" + key)[0] = value


class OfficialSdk(SeedDesign):
    label = "official SDK (datanet-sdk)"

    def start(self):
        import datanet

        self.client = datanet.DataNet(api_key=clients.KEY, api_url=self.url,
                                      ws_url="ws://" + self.url[len("http://"):])
        self.client.connect_sync(timeout=10)

        async def handler(data, meta):
            self.queue.put((meta.channel, data, meta.from_, meta.timestamp))

        async def subscribe_all():
            for channel in self.channels:
                self.client.subscribe(channel, handler)

        asyncio.run_coroutine_threadsafe(subscribe_all(), self.client._loop).result(timeout=10)
        self.since = time.monotonic()

    def ready(self):
        return time.monotonic() - self.since > 0.3  # the SDK does not surface sub acks

    def poll(self):
        while True:
            try:
                channel, data, from_, timestamp = self.queue.get_nowait()
            except queue.Empty:
                return
            self.received += 1
            if self.mode == "callbacks":
                trivial_callback(channel, data, from_, timestamp)
            else:
                self.keep(channel, data, from_, timestamp)

    def stop(self):
        try:
            self.client.disconnect_sync(timeout=5)
        except Exception as error:
            print("  (datanet-sdk disconnect_sync: %r)" % error, flush=True)


class TimedProject(ThisProject):
    """This project with the parts of its frame timed: the three library calls,
    pickle.loads, the callbacks' dispatch and the two TD helpers (the helpers'
    times include the library call each makes). Each timer adds a Python call to
    what it times, about a microsecond, more in a cold frame."""

    label = "this project, its frame's parts timed"

    LIBRARY_PARTS = {"dn_poll": "dn_poll", "dn_rows": "  of which dn_rows", "dn_values": "  of which dn_values"}

    def start(self):
        import DataNet
        super().start()
        parts = [(DataNet, "_frame_call", None), (DataNet, "_messages", "pickle.loads"),
                 (DataNet.DataNet, "_dispatch_json", "the callbacks' dispatch"),
                 (DataNet.DataNet, "update_table", "update_table"), (DataNet.DataNet, "update_chop", "update_chop")]
        self.order = ["dn_poll", "pickle.loads", "the callbacks' dispatch", "update_table", "  of which dn_rows",
                      "update_chop", "  of which dn_values"]
        self.timings, self.measuring, self.restore = {}, False, []
        for owner, name, part in parts:
            original = getattr(owner, name)
            setattr(owner, name, self.timed_library(original) if part is None else self.timed(part, original))
            self.restore.append((owner, name, original))
        self.dn._state["frame_calls"].clear()  # made again, timed

    def timed_library(self, frame_call):
        """DataNet's _frame_call, keeping the library function it makes timed."""
        def timed_frame_call(st, key, name, *args):
            function, args = frame_call(st, key, name, *args)
            call = st["frame_calls"][key] = (self.timed(self.LIBRARY_PARTS[name], function), args)
            return call
        return timed_frame_call

    def timed(self, part, function):
        def timed_part(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.timings.setdefault(part, []).append(time.perf_counter() - begin)
        return timed_part

    def frame(self):
        if not self.measuring:  # the first frame under load: what came before was connecting
            self.timings.clear()
            self.measuring = True
        super().frame()

    def parts(self):
        """Median µs per call of each part, and how many calls it had."""
        return {part: {"median_us": statistics.median(self.timings[part]) * 1e6, "calls": len(self.timings[part])}
                for part in self.order if part in self.timings}

    def stop(self):
        # The library object is shared by every later run: put its functions back.
        for owner, name, original in self.restore:
            setattr(owner, name, original)
        super().stop()


class UnpacedProject(ThisProject):
    """This project reading the socket on every packet (``read_pace_ms=0``), the
    baseline for what reading on the timer saves."""

    label = "this project, socket read on every packet"
    options = {"read_pace_ms": 0}


class PaceFourProject(ThisProject):
    """This project with twice the default read pace: while busy, the socket is
    read 4 ms (and a timer tick) before each expected poll instead of 2 (at 60 fps
    the pace may go up to a quarter of the frame, 4.2 ms)."""

    label = "this project, socket read 4 ms before each poll while busy"
    options = {"read_pace_ms": 4}


DESIGNS = {"project": ThisProject, "project-unpaced": UnpacedProject, "project-pace4": PaceFourProject, "seed": SeedDesign, "sdk": OfficialSdk, "project-timed": TimedProject}


def started(design, gateway_url, lib, channel_names, mode):
    """A design's client, started and ready (its subscriptions acknowledged)."""
    client = DESIGNS[design](gateway_url, lib, channel_names, mode)
    client.start()
    deadline = time.monotonic() + 10
    while not client.ready():
        assert time.monotonic() < deadline, "%s never got ready" % design
        time.sleep(0.01)
    return client


def measure(design, mode, rate, seconds, gateway_url, lib, channel_names, publishers, spin=False):
    """Runs one design under a steady load; returns its frame costs and counts.
    ``spin``: wait for the next frame in a busy loop instead of sleeping, so the
    thread never idles and its caches stay warm (the optimistic bound; a sleeping
    thread is the pessimistic one, see wake_cost)."""
    client = started(design, gateway_url, lib, channel_names, mode)
    procs = publishers()
    costs = []
    cpu_start = time.process_time()
    next_frame = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    while any(proc.poll() is None for proc in procs):
        begin = time.perf_counter()
        client.frame()
        costs.append(time.perf_counter() - begin)
        next_frame += FRAME_S
        pause = next_frame - time.perf_counter()
        if pause <= 0:
            next_frame = time.perf_counter()
        elif spin:
            while time.perf_counter() < next_frame:
                pass
        else:
            time.sleep(pause)
    published = sum(json.loads(proc.stdout.readline())["published"] for proc in procs)
    backlog_at_end = client.counts()[2]
    drain_deadline = time.monotonic() + 1.0
    while client.counts()[0] < published and time.monotonic() < drain_deadline:
        client.frame()
        time.sleep(FRAME_S)
    client.frame()  # the frame after the last message: its rows are shown or counted
    cpu = time.process_time() - cpu_start
    received, dropped, _, accounted = client.counts()
    parts = client.parts() if hasattr(client, "parts") else None
    client.stop()
    micros = sorted(c * 1e6 for c in costs)
    median = statistics.median(micros)
    per_frame = rate / 60.0
    return {"design": design, "mode": mode, "rate": rate, "spin": spin, "published": published, "received": received,
            "dropped": dropped, "accounted": accounted, "backlog_at_end": backlog_at_end,
            "ok": received >= published and dropped == 0 and accounted >= published,
            "median_us": median, "p99_us": micros[min(len(micros) - 1, int(0.99 * len(micros)))],
            "per_message_us": median / per_frame, "cpu_us_per_message": 1e6 * cpu / max(1, received),
            "frames": len(micros), "pid": os.getpid(), "parts": parts}


def combine(runs):
    """Repeated runs of one configuration as one: the run with the median frame
    cost stands for them (its p99 and CPU too), the counts add up, and it is ok
    only if every run was."""
    ordered = sorted(runs, key=lambda r: r["median_us"])
    combined = dict(ordered[len(ordered) // 2])
    for key in ("published", "received", "dropped", "accounted"):
        combined[key] = sum(r[key] for r in runs)
    combined["ok"] = all(r["ok"] for r in runs)
    combined["runs_median_us"] = [r["median_us"] for r in runs]
    combined["runs_cpu_us_per_message"] = [r["cpu_us_per_message"] for r in runs]
    return combined


def wake_cost(lib_path, frames=240):
    """What the first work of a frame costs on this machine when the thread slept
    through the rest of the frame (as TD's main thread waits for the next frame),
    against the same work done back to back: a trivial library call through ctypes,
    and a small piece of pure Python. Every design pays it on every frame."""
    import ctypes
    lib = ctypes.CDLL(lib_path)
    lib.dn_abi_version.restype = ctypes.c_uint32
    keys = ["f%d" % k for k in range(8)]
    batch = pickle.dumps([("project.bench.ch%d" % (n % 10), "c-1", 1_700_000_000_000 + n,
                           {key: n * k / 10.0 for k, key in enumerate(keys)}, 0) for n in range(17)], protocol=4)
    work = {"a trivial library call (dn_abi_version)": lib.dn_abi_version,
            "1,000 additions in Python": lambda: sum(range(1000)),
            "pickle.loads of a frame's batch (17 messages of 8 fields)": lambda: pickle.loads(batch)}
    return {label: warm_and_after_sleep(fn, frames) for label, fn in work.items()}


def warm_and_after_sleep(fn, frames):
    """Median µs of ``fn()`` run ``frames`` times back to back, then as the first
    work after a frame's sleep."""
    warm, after_sleep = [], []
    for _ in range(frames):
        begin = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - begin)
    for _ in range(frames):
        time.sleep(FRAME_S)
        begin = time.perf_counter()
        fn()
        after_sleep.append(time.perf_counter() - begin)
    return {"warm_us": statistics.median(warm) * 1e6, "after_sleep_us": statistics.median(after_sleep) * 1e6}


def idle_frame_cost(design, gateway_url, lib_path, channel_names, frames=240):
    """A frame with nothing arriving: the client connected, its channels subscribed
    with a callback each, its frame run back to back and as a frame's first work
    after a sleep (as every frame of a quiet show is)."""
    client = started(design, gateway_url, lib_path, channel_names, "callbacks")
    time.sleep(0.5)  # the acks and anything else of the start are through
    result = dict(warm_and_after_sleep(client.frame, frames), frames=frames)
    received = client.counts()[0]
    client.stop()
    assert received == 0, "%s received %d messages in an idle run" % (design, received)
    return result


def native_poll_cost(gateway_url, lib_path, events=1000, rounds=3):
    """The library's own cost per event inside one dn_poll (no Python work): events
    queued first, then one call drains them all, for each record layout."""
    import ctypes
    import DataNet
    ws_url = "ws://" + gateway_url[len("http://"):]
    receiver, sender = DataNet.DataNet("native-rx"), DataNet.DataNet("native-tx")
    receiver.connect(clients.KEY, api_url=gateway_url, ws_url=ws_url, lib_path=lib_path,
                     inbound_queue_capacity=10 * events)
    sender.connect(clients.KEY, api_url=gateway_url, ws_url=ws_url, lib_path=lib_path,
                   outbound_max_messages=10 * events)
    channels = ["project.bench.native%d" % n for n in range(10)]
    for channel in channels:
        receiver.subscribe(channel, trivial_callback)
    deadline = time.monotonic() + 10
    while not (receiver.is_connected() and sender.is_connected()
               and len(receiver.status()["occupancy"]) == len(channels)):
        assert time.monotonic() < deadline, "native poll clients never got ready"
        receiver.poll()
        time.sleep(0.01)
    state = receiver._state
    buffer, info = ctypes.create_string_buffer(1 << 24), DataNet._PollInfo()
    result = {}
    for flags, layout in ((0, "one record per message"), (1, "grouped JSON"), (2, "grouped pickle")):
        costs = []
        for _ in range(rounds):
            for n in range(events):
                sender.publish(channels[n % len(channels)], {"f%d" % k: (n * (k + 1)) % 1000 / 10.0 for k in range(8)})
            while receiver.status()["events_pending"] < events:
                time.sleep(0.005)
            begin = time.perf_counter()
            rc = state["lib"].dn_poll(state["handle"], buffer, len(buffer), 0, flags, ctypes.byref(info))
            costs.append((time.perf_counter() - begin) / max(1, info.events))
            assert rc == 0 and info.events == events, (rc, info.events)
        result[layout] = statistics.median(costs) * 1e6
    receiver.disconnect()
    sender.disconnect()
    return result
