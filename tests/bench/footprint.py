"""Footprint of one client, in a process of its own: resident memory added by
connecting, threads, and CPU used while connected and idle.

    python footprint.py KIND URL LIB  -> one JSON line
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]


def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def threads():
    return len(os.listdir("/proc/self/task"))


def cpu_seconds():
    return time.process_time()  # every thread of the process, nanosecond resolution


def main(kind, url, lib):
    import clients
    import DataNet  # noqa: F401  (imported before the baseline so every process pays the same)
    if kind == "B":
        import datanet  # noqa: F401
    if kind == "A":
        import websocket  # noqa: F401
    before_rss, before_threads = rss_kib(), threads()
    channels = ["project.bench.ch%d" % n for n in range(10)]
    ws_url = "ws://" + url[len("http://"):]
    if kind == "project":
        client = DataNet.DataNet("footprint")
        client.connect(clients.KEY, api_url=url, ws_url=ws_url, lib_path=lib)
        for channel in channels:
            client.subscribe(channel)
        while not client.is_connected():
            client.poll()
            time.sleep(0.01)
        idle_work = client.poll
    else:
        holder = clients.CLIENTS[kind].__new__(clients.CLIENTS[kind])
        clients.PythonClient.__init__(holder, None, url, lib, channels, False)
        holder.build_network = lambda: None
        holder.start()
        idle_work = holder.take
    time.sleep(1.0)
    after_rss, after_threads = rss_kib(), threads()
    idle_work()
    # Idle: nothing published, nobody polling; whatever CPU is used is the
    # client's own background work (heartbeats, timers, busy loops).
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    time.sleep(10.0)
    cpu = cpu_seconds() - cpu0
    print(json.dumps({"rss_added_kib": after_rss - before_rss, "threads_added": after_threads - before_threads,
                      "idle_cpu_percent": 100.0 * cpu / (time.perf_counter() - wall0)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
