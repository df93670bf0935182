"""The headless end-to-end demo: the README's TouchDesigner network, run in the
TD fake against the local gateway.

    python3 examples/demo.py [--seconds 5] [--rate 300] [--channels 3] [--no-build] [--callbacks FILE]

It builds the native library and the gateway (cargo build --release), starts the
gateway, builds the network an artist builds (a Text DAT with DataNet.py, an
Execute DAT with td/execute_dat.py, a Table DAT, a Script CHOP with
td/script_chop_callbacks.py), streams sensor JSON from a second client, and prints
a live view of the table and the CHOP with the main-thread cost per frame. It exits
0 when every message arrived, nothing was dropped, no callback raised and no TD
object was touched off the main thread; otherwise it prints why and exits 1.
"""

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

FIELDS = ("temp", "humidity", "light", "sound", "x", "y", "z", "battery")
MAX_CHANNELS = 1000
GATEWAY_BANNER = "datanet-gateway listening on "
# Measured on a 2-core machine from an empty target/ (README, "The two commands").
FIRST_BUILD = "about 2 minutes on 2 cores and about 0.2 GB in target/ the first time, seconds afterwards"


class DemoError(Exception):
    """A failure the user can act on; its text is the one line they see."""


def build():
    cargo = shutil.which("cargo")
    if cargo is None:
        raise DemoError("cargo not found: install Rust (https://rustup.rs), or pass --no-build "
                        "with a library and gateway already built in target/release")
    print("demo: building the library and the gateway with cargo build --release (%s); cargo's progress "
          "follows" % FIRST_BUILD, flush=True)
    result = subprocess.run([cargo, "build", "--release"], cwd=REPO)
    if result.returncode != 0:
        raise DemoError("cargo build --release failed (exit %d): see cargo's messages above" % result.returncode)


def gateway_path():
    return os.path.join(REPO, "target", "release", "datanet-gateway" + (".exe" if os.name == "nt" else ""))


def start_gateway():
    if not os.path.isfile(gateway_path()):
        raise DemoError("cannot start the gateway: %s is missing (cargo build --release builds it)" % gateway_path())
    process = subprocess.Popen([gateway_path(), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    banner = process.stdout.readline().strip()
    if not banner.startswith(GATEWAY_BANNER):
        process.kill()
        process.wait()
        raise DemoError("the gateway did not start (%s): rebuild with cargo build --release"
                        % (banner or "exit %s" % process.returncode))
    url = banner[len(GATEWAY_BANNER):]
    print("demo: gateway at", url, flush=True)
    return process, url


def library_path():
    import DataNet
    stem, suffix = DataNet.library_file_parts()
    return os.path.join(REPO, "target", "release", stem + suffix)


def build_network(td, channels, callbacks_file=None):
    """The README's 'Set up in TouchDesigner' steps, with the files pasted verbatim."""
    def read(name):
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            return f.read()
    os.environ["DATANET_CHANNELS"] = " ".join(channels)
    root = td.root
    root.create("textDAT", "DataNet").text = read("DataNet.py")
    root.create("tableDAT", "messages")
    # TD creates the Script CHOP's callbacks DAT with it (docked).
    root.create("scriptCHOP", "values").par.callbacks.eval().text = read("td/script_chop_callbacks.py")
    if callbacks_file:
        root.create("textDAT", "callbacks").text = read(callbacks_file)
    execute = root.create("executeDAT", "execute")
    execute.text = read("td/execute_dat.py")
    # The README: "with Start, Create, Frame Start and Exit on".
    execute.par.start = execute.par.create = execute.par.framestart = execute.par.exit = True


def reading(n, t):
    return {field: round(math.sin(t * (i + 1) * 0.7 + n) * 10 + i * 5, 3) for i, field in enumerate(FIELDS)}


def micros(seconds):
    return seconds * 1e6


def rtt_text(rtt_ms):
    """The heartbeat round trip, or '-' until the first one came back."""
    return "-" if rtt_ms is None else "%.1f ms" % rtt_ms


def print_view(td, published, costs):
    table, chop = td.op("/messages"), td.op("/values")
    dn = td.op("/DataNet").module
    status = dn.status()
    counters = status["counters"]
    recent = sorted(costs[-60:])
    print("\n-- %s | published %d | received %d | dropped %d | rtt %s | frame cost median %.0f us, max %.0f us"
          % (status["state"], published, counters["received"], counters["dropped_inbound"], rtt_text(status["rtt_ms"]),
             micros(statistics.median(recent)), micros(recent[-1])))
    for r in range(max(1, table.numRows - 3), table.numRows):
        print("   row %3d  %-28s %s" % (r, table[r, 0].val, table[r, 1].val[:70]))
    channels = chop.chans()
    print("   CHOP: %d channels: %s" % (len(channels), ", ".join(
        "%s=%.2f" % (ch.name, ch[0]) for ch in channels[:6])))


class OneLineArgumentParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), pointing at --help."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see --help)\n" % (self.prog, message))


def number_in(kind, low, high=None):
    """An argparse type: a finite number of `kind` from low to high."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a%s number" % (text, "" if kind is float else " whole"))
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError("%s is out of range: give %s" % (
                text, "%s to %s" % (low, high) if high is not None else "a number of at least %s" % low))
        return value
    return parse


def parse_args(argv):
    parser = OneLineArgumentParser(prog="demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=number_in(float, 0.1), default=5.0, metavar="S",
                        help="how long the sensor rig publishes, in seconds, at least 0.1 (default: %(default)s)")
    parser.add_argument("--rate", type=number_in(int, 1), default=300, metavar="N",
                        help="messages per second over all channels, at least 1 (default: %(default)s)")
    parser.add_argument("--channels", type=number_in(int, 1, MAX_CHANNELS), default=3, metavar="N",
                        help="sensor channels, project.demo.sensor0 ..., 1 to %d; each message has %d numeric "
                             "fields, one CHOP channel each (default: %%(default)s)" % (MAX_CHANNELS, len(FIELDS)))
    parser.add_argument("--no-build", action="store_true",
                        help="skip cargo build --release and use the library and gateway already in "
                             "target/release (default: build first; a no-op when nothing changed)")
    parser.add_argument("--callbacks", metavar="FILE",
                        help="also paste FILE into a Text DAT named callbacks (e.g. td/callbacks_template.py): "
                             "every message then goes through its onMessage (default: no callbacks DAT)")
    args = parser.parse_args(argv)
    if args.seconds * args.rate < 1:
        parser.error("--seconds %s at --rate %s publishes no message: give at least one" % (args.seconds, args.rate))
    if args.callbacks is not None:
        args.callbacks = os.path.abspath(args.callbacks)
        if not os.path.isfile(args.callbacks):
            parser.error("--callbacks %s: no such file" % args.callbacks)
    if args.no_build:
        missing = [path for path in (library_path(), gateway_path()) if not os.path.isfile(path)]
        if missing:
            parser.error("--no-build, but %s not built yet: run without --no-build (it runs cargo build --release)"
                         % " and ".join(missing))
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    gateway = None
    try:
        if not args.no_build:
            build()
        gateway, url = start_gateway()
        return run(args, url)
    except DemoError as exc:
        print("demo: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        if gateway is not None:
            gateway.kill()
            gateway.wait()


def run(args, url):
    from tdfake import TD
    import DataNet

    os.environ.update(DATANET_LIB=library_path(), DATANET_API_KEY="ak_demo", DATANET_API_URL=url,
                      DATANET_WS_URL="ws://" + url[len("http://"):])
    channels = ["project.demo.sensor%d" % n for n in range(args.channels)]
    td = TD(project_folder=os.path.join(REPO, "target"), project_name="demo")
    build_network(td, channels, args.callbacks)
    rig = DataNet.DataNet("sensor-rig")
    try:
        td.start()
        rig.connect("ak_demo", api_url=url, ws_url=os.environ["DATANET_WS_URL"], device_name="sensor rig")
        return stream(args, td, rig, channels)
    except DataNet.DataNetError as exc:
        raise DemoError(str(exc)) from None
    finally:
        td.exit()
        rig.disconnect()


def stream(args, td, rig, channels):
    dn = td.op("/DataNet").module
    deadline = time.monotonic() + 10
    while not (rig.is_connected() and len(dn.status()["occupancy"]) == len(channels)):
        if time.monotonic() > deadline:
            status = dn.status()
            raise DemoError("not connected and subscribed within 10 s: state %s, last error %s"
                            % (status["state"], status["last_error"]))
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
    p99 = costs[min(len(costs) - 1, int(len(costs) * 0.99))]
    print("\ndemo: %d frames at 60 fps, %d msg/s over %d channels of %d fields" % (
        len(costs), args.rate, len(channels), len(FIELDS)))
    print("demo: main-thread cost per frame (poll + table + CHOP): median %.0f us, p99 %.0f us, max %.0f us "
          "(%.2f%% of the 16.7 ms frame at the median)" % (
              micros(statistics.median(costs)), micros(p99), micros(costs[-1]),
              100 * statistics.median(costs) / (1 / 60)))
    received, dropped = status["counters"]["received"], status["counters"]["dropped_inbound"]
    callback_errors = status["callback_errors"]
    print("demo: published %d, received %d, dropped %d, callback errors %d, TD errors %d, thread violations %d" % (
        published, received, dropped, callback_errors, len(td.errors), td.thread_violations))
    problems = failures(total, published, received, dropped, callback_errors, td)
    if not problems:
        print("demo: ok")
        return 0
    first_traceback = next((line for line in td.textport if "raised:" in line or line.startswith("Traceback")), None)
    if first_traceback is not None:
        at = td.textport.index(first_traceback)
        shown = [line for line in td.textport[at:at + 12] if line.strip()]
        print("demo: the first error in the textport:\n   " + "\n   ".join(shown))
    print("demo: FAILED: " + "; ".join(problems))
    return 1


def failures(total, published, received, dropped, callback_errors, td):
    """What went wrong, one phrase each, for the closing line."""
    problems = []
    if published != total:
        problems.append("published %d of %d messages" % (published, total))
    if received != total:
        problems.append("received %d of %d messages within 5 s after the last publish" % (received, total))
    if dropped:
        problems.append("%d messages dropped (the inbound queue overflowed)" % dropped)
    if callback_errors:
        problems.append("%d callbacks raised (status()['callback_errors'])" % callback_errors)
    if td.errors:
        problems.append("%d errors in TD callbacks, the first in %s %s" % (len(td.errors), *td.errors[0][:2]))
    if td.thread_violations:
        problems.append("%d TD objects touched off the main thread" % td.thread_violations)
    return problems


if __name__ == "__main__":
    sys.exit(main())
