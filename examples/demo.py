"""The headless end-to-end demo: the README's TouchDesigner network, run in the
TD fake against the local gateway.

    python3 examples/demo.py [--seconds 5] [--rate 300] [--channels 3]

It builds the native library and the gateway (cargo build --release), starts the
gateway, builds the network an artist builds (a Text DAT with DataNet.py, an
Execute DAT with td/execute_dat.py, a Table DAT, a Script CHOP with
td/script_chop_callbacks.py), streams sensor JSON from a second client, and prints
a live view of the table and the CHOP with the main-thread cost per frame. It exits
0 when every message arrived and nothing was dropped.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

FIELDS = ("temp", "humidity", "light", "sound", "x", "y", "z", "battery")


def build():
    print("demo: cargo build --release ...", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)


def start_gateway():
    exe = os.path.join(REPO, "target", "release", "datanet-gateway" + (".exe" if os.name == "nt" else ""))
    process = subprocess.Popen([exe, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
    print("demo: gateway at", url, flush=True)
    return process, url


def library_path():
    import DataNet
    stem, suffix = DataNet.library_file_parts()
    return os.path.join(REPO, "target", "release", stem + suffix)


def build_network(td, channels):
    """The README's 'Set up in TouchDesigner' steps, with the files pasted verbatim."""
    def read(name):
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            return f.read()
    os.environ["DATANET_CHANNELS"] = " ".join(channels)
    root = td.root
    root.create("textDAT", "DataNet").text = read("DataNet.py")
    root.create("tableDAT", "messages")
    root.create("scriptCHOP", "values").par.callbacks.eval().text = read("td/script_chop_callbacks.py")
    execute = root.create("executeDAT", "execute")
    execute.text = read("td/execute_dat.py")
    execute.par.start = execute.par.create = execute.par.framestart = execute.par.exit = True


def reading(n, t):
    return {field: round(math.sin(t * (i + 1) * 0.7 + n) * 10 + i * 5, 3) for i, field in enumerate(FIELDS)}


def micros(seconds):
    return seconds * 1e6


def print_view(td, published, costs):
    table, chop = td.op("/messages"), td.op("/values")
    dn = td.op("/DataNet").module
    status = dn.status()
    counters = status["counters"]
    recent = sorted(costs[-60:])
    print("\n-- %s | published %d | received %d | dropped %d | rtt %s ms | frame cost median %.0f us, max %.0f us"
          % (status["state"], published, counters["received"], counters["dropped_inbound"], status["rtt_ms"],
             micros(statistics.median(recent)), micros(recent[-1])))
    for r in range(max(1, table.numRows - 3), table.numRows):
        print("   row %3d  %-28s %s" % (r, table[r, 0].val, table[r, 1].val[:70]))
    channels = chop.chans()
    print("   CHOP: %d channels: %s" % (len(channels), ", ".join(
        "%s=%.2f" % (ch.name, ch[0]) for ch in channels[:6])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=int, default=300, help="messages per second, over all channels")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        build()
    gateway, url = start_gateway()
    try:
        return run(args, url)
    finally:
        gateway.kill()
        gateway.wait()


def run(args, url):
    from tdfake import TD
    import DataNet

    os.environ.update(DATANET_LIB=library_path(), DATANET_API_KEY="ak_demo", DATANET_API_URL=url,
                      DATANET_WS_URL="ws://" + url[len("http://"):])
    channels = ["project.demo.sensor%d" % n for n in range(args.channels)]
    td = TD(project_folder=os.path.join(REPO, "target"), project_name="demo")
    build_network(td, channels)
    td.start()
    dn = td.op("/DataNet").module

    rig = DataNet.DataNet("sensor-rig")
    rig.connect("ak_demo", api_url=url, ws_url=os.environ["DATANET_WS_URL"], device_name="sensor rig")
    deadline = time.monotonic() + 10
    while not (rig.is_connected() and len(dn.status()["occupancy"]) == len(channels)):
        if time.monotonic() > deadline:
            print("demo: FAILED: not connected within 10 s:", dn.status())
            return 1
        td.run_frames(1, realtime=True)
        rig.poll()

    first_frame = len(td.frame_costs)
    total = int(args.seconds * args.rate)
    published, begin, last_view = 0, time.monotonic(), time.monotonic()
    while time.monotonic() - begin < args.seconds + 5:
        due = min(total, int((time.monotonic() - begin) * args.rate))
        while published < due:
            rig.publish(channels[published % len(channels)], reading(published, published / args.rate))
            published += 1
        td.run_frames(1, realtime=True)
        rig.poll()
        if time.monotonic() - last_view >= 1:
            last_view = time.monotonic()
            print_view(td, published, td.frame_costs[first_frame:])
        if published == total and dn.status()["counters"]["received"] >= total:
            td.run_frames(2, realtime=True)
            break

    costs = sorted(td.frame_costs[first_frame:])
    status = dn.status()
    td.exit()
    rig.disconnect()
    p99 = costs[min(len(costs) - 1, int(len(costs) * 0.99))]
    print("\ndemo: %d frames at 60 fps, %d msg/s over %d channels of %d fields" % (
        len(costs), args.rate, len(channels), len(FIELDS)))
    print("demo: main-thread cost per frame (poll + table + CHOP): median %.0f us, p99 %.0f us, max %.0f us "
          "(%.2f%% of the 16.7 ms frame at the median)" % (
              micros(statistics.median(costs)), micros(p99), micros(costs[-1]),
              100 * statistics.median(costs) / (1 / 60)))
    received, dropped = status["counters"]["received"], status["counters"]["dropped_inbound"]
    print("demo: published %d, received %d, dropped %d, TD errors %d, thread violations %d" % (
        published, received, dropped, len(td.errors), td.thread_violations))
    ok = published == total and received == total and dropped == 0 and not td.errors and not td.thread_violations
    print("demo: ok" if ok else "demo: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
