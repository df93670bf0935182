"""DataNet benchmarks: this project side by side with two baselines, in one run.

    bash tests/bench/run.sh            # installs websocket-client, matplotlib; runs this
    python tests/bench/run.py [--quick]

Starts the local gateway (release build) for each measurement and writes
tests/bench/RESULTS.md and PNG charts beside it. See clients.py for the clients.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "tests"), REPO]

import clients  # noqa: E402
import standins  # noqa: E402
from tdfake import TD  # noqa: E402
from tdfake.guard import disable_for_benchmarks  # noqa: E402

RELEASE = os.path.join(REPO, "target", "release")
FRAME_BUDGET_US = 1e6 / 60
LABELS = {"project": "this project", "project-cb": "this project, with a Python callback per message",
          "project-nocb": "this project, table + CHOP only (no Python callbacks)",
          "A": clients.SeedGuide.label, "B": clients.OfficialSdk.label}


def library():
    import DataNet
    stem, suffix = DataNet.library_file_parts()
    return os.path.join(RELEASE, stem + suffix)


class Gateway:
    def __enter__(self):
        exe = os.path.join(RELEASE, "datanet-gateway")
        # Tokens of project "bench" reach the project.bench.* channels below; the
        # per-connection budget is lifted so the benchmark measures the client.
        args = [exe, "--port", "0", "--project", "bench",
                "--max-frames-per-second", "1000000", "--max-bytes-per-second", "1000000000"]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def publishers(url, rate, seconds, channels, kind="json", stamp=False):
    """Starts enough publisher processes for the rate (10,000/s each at most)."""
    count = max(1, int((rate + 9_999) // 10_000))
    procs = []
    for n in range(count):
        share = channels if count == 1 else max(1, channels // count)
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "publisher.py"), "--url", url, "--lib", library(),
             "--rate", str(rate / count), "--seconds", str(seconds), "--channels", str(share),
             "--kind", kind, "--prefix", "project.bench.p%dch" % n if count > 1 else "project.bench.ch"]
            + (["--stamp"] if stamp else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    return procs


def channel_names(rate, channels):
    count = max(1, int((rate + 9_999) // 10_000))
    if count == 1:
        return ["project.bench.ch%d" % n for n in range(channels)]
    share = max(1, channels // count)
    return ["project.bench.p%dch%d" % (p, n) for p in range(count) for n in range(share)]


def reset_runtime():
    runtime = sys.modules.get("_datanet_td_runtime")
    if runtime is not None:
        for state in runtime.instances.values():
            if state["handle"] is not None:
                state["lib"].dn_client_free(state["handle"])
        runtime.instances.clear()


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_td(kind, rate, seconds, channels=10, payload="json", callbacks=True, td_work=True):
    """One client in the TD fake at 60 fps under a steady load: main-thread cost per
    frame, and whether everything arrived without the backlog growing."""
    reset_runtime()
    with Gateway() as gw, tempfile.TemporaryDirectory() as folder:
        td = TD(project_folder=folder, project_name="bench")
        names = channel_names(rate, channels)
        client = clients.CLIENTS[kind](td, gw.url, library(), names, callbacks, td_work)
        client.start()
        deadline = time.monotonic() + 10
        while not client.ready():
            assert time.monotonic() < deadline, "%s never got ready" % kind
            td.run_frames(1, realtime=True)
        procs = publishers(gw.url, rate, seconds, channels, payload)
        first = len(td.frame_costs)
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while any(proc.poll() is None for proc in procs):
            td.run_frames(1, realtime=True)
        published = sum(json.loads(proc.stdout.readline())["published"] for proc in procs)
        backlog_at_end = client.counts()[2]
        drain_deadline = time.monotonic() + 1.0
        while client.counts()[0] < published and time.monotonic() < drain_deadline:
            td.run_frames(1, realtime=True)
        received, dropped, _ = client.counts()
        costs = [c * 1e6 for c in td.frame_costs[first:]]
        client.stop()
        td.exit()
    return {"client": kind, "rate": rate, "channels": channels, "payload": payload, "published": published,
            "received": received, "dropped": dropped, "backlog_at_end": backlog_at_end,
            "ok": received >= published and dropped == 0,
            "median_us": statistics.median(costs), "p99_us": percentile(costs, 0.99), "max_us": max(costs),
            "frames": len(costs)}


def with_standins(design, mode, rate, seconds, channels=10, spin=False):
    """One design alone, its TD operators near-free stand-ins (standins.py)."""
    reset_runtime()
    with Gateway() as gw:
        names = channel_names(rate, channels)
        return standins.measure(design, mode, rate, seconds, gw.url, library(), names,
                                lambda: publishers(gw.url, rate, seconds, channels), spin=spin)


STANDIN_RUNS = (("callbacks", 1_000), ("callbacks", 10_000), ("table", 1_000), ("table", 10_000))
STANDIN_REPEATS, STANDIN_WINDOW_S = 3, 3.0


def latency(kind, rate, seconds, options=None, frame_s=None):
    """Publish on one client -> visible on another, polled in a tight loop, or
    once every ``frame_s`` as a TD host polls (then the time until the poll of the
    frame that delivers it). ``options``: this project's connect options."""
    reset_runtime()
    got, timer = [], {}
    with Gateway() as gw:
        names = channel_names(rate, 10)
        ws_url = "ws://" + gw.url[len("http://"):]
        if kind == "project":
            import DataNet
            client = DataNet.DataNet("latency")
            client.connect(clients.KEY, api_url=gw.url, ws_url=ws_url, lib_path=library(), **(options or {}))
            for name in names:
                client.subscribe(name, lambda ch, data, frm, ts: got.append(time.time_ns() - data["t"]))
            while len(client.status()["occupancy"]) < len(names):
                client.poll()
                time.sleep(0.002)
            drain = client.poll

            def stop():
                # How late the read timer fired (pacing reads just before each poll).
                status = client.status()
                timer.update(late_ms=status.get("read_timer_late_ms"),
                             too_late=status["counters"].get("read_timer_too_late"))
                client.disconnect()
        else:
            holder = clients.CLIENTS[kind].__new__(clients.CLIENTS[kind])
            clients.PythonClient.__init__(holder, None, gw.url, library(), names, False)
            holder.build_network = lambda: None
            holder.start()
            while not holder.ready():
                time.sleep(0.01)

            def drain():
                for _, data, _, _ in holder.take():
                    got.append(time.time_ns() - data["t"])
            stop = holder.stop
        procs = publishers(gw.url, rate, seconds, 10, stamp=True)
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        next_frame = time.perf_counter()
        while any(proc.poll() is None for proc in procs):
            drain()
            if frame_s:
                next_frame += frame_s
                time.sleep(max(0.0, next_frame - time.perf_counter()))
            else:
                time.sleep(0.0002)
        published = sum(json.loads(proc.stdout.readline())["published"] for proc in procs)
        end = time.monotonic() + 1
        while len(got) < published and time.monotonic() < end:
            drain()
        stop()
    micros = [g / 1000 for g in got]
    return {"client": kind, "rate": rate, "messages": len(micros), "p50_us": statistics.median(micros),
            "p99_us": percentile(micros, 0.99), "max_us": max(micros), "samples": micros,
            "timer_late_ms": timer.get("late_ms"), "timer_too_late": timer.get("too_late")}


def footprint(kind):
    with Gateway() as gw:
        out = subprocess.run([sys.executable, os.path.join(HERE, "footprint.py"), kind, gw.url, library()],
                             capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["client"] = kind
    return result


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    return "%s, %d cores, %s, Python %s" % (model, os.cpu_count(), platform.platform(), platform.python_version())


def fmt(value):
    return "{:,.0f}".format(value)


def chart(path, title, xlabel, series, log_x=True):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=label)
    ax.axhline(FRAME_BUDGET_US, color="grey", linestyle="--", linewidth=1, label="16.7 ms frame")
    ax.set_xscale("log" if log_x else "linear")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("main-thread µs per frame (median)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short windows, fewer points (a smoke run)")
    parser.add_argument("--standins-only", action="store_true",
                        help="only the clients-alone section, printed (RESULTS.md is not written)")
    args = parser.parse_args()
    # Measure the clients, not the fake: its main-thread guard is for the tests.
    disable_for_benchmarks()
    window = 2.0 if args.quick else 5.0
    sweep_window = 1.5 if args.quick else 3.0
    started = time.time()
    results = {"machine": machine(), "window_s": window}

    print("== the clients alone, TD operators replaced by near-free stand-ins", flush=True)
    configs = [(design, mode, rate, False) for mode, rate in STANDIN_RUNS for design in ("project", "seed", "sdk")]
    configs += [("project", "latest", rate, False) for rate in (100, 10_000)]
    configs += [(design, mode, 1_000, True) for mode in ("callbacks", "table") for design in ("project", "seed", "sdk")]
    # What reading the socket on the timer saves: off, and twice the default lead.
    configs += [(design, mode, 1_000, False) for mode in ("callbacks", "table")
                for design in ("project-unpaced", "project-pace4")]
    # One run of a few seconds swings by a third on this VM: every configuration
    # runs STANDIN_REPEATS times, interleaved, and reports its median run.
    repeats = 1 if args.quick else STANDIN_REPEATS
    runs = {config: [] for config in configs}
    for _ in range(repeats):
        for design, mode, rate, spin in configs:
            runs[(design, mode, rate, spin)].append(with_standins(design, mode, rate, STANDIN_WINDOW_S, spin=spin))
    alone = [standins.combine(measured) for measured in runs.values()]
    results["standin_repeats"], results["standin_window_s"] = repeats, STANDIN_WINDOW_S
    for r in alone:
        print("  %-8s %-9s %6d msg/s%s: median %s us/frame (%.2f us/message), p99 %s; CPU %.1f us/message; "
              "received %d/%d%s" % (r["design"], r["mode"], r["rate"], " (spinning)" if r["spin"] else "",
                                    fmt(r["median_us"]), r["per_message_us"],
                                    fmt(r["p99_us"]), r["cpu_us_per_message"], r["received"], r["published"],
                                    "" if r["ok"] else " (behind)"), flush=True)
    results["standins"] = alone
    # Where this project's frame goes: the same loads again, its parts timed.
    results["parts"] = []
    for mode, rate in STANDIN_RUNS:
        timed = with_standins("project-timed", mode, rate, STANDIN_WINDOW_S)
        results["parts"].append({"mode": mode, "rate": rate, "median_us": timed["median_us"], "parts": timed["parts"]})
        print("  parts of this project's frame, %s %d msg/s (frame %s us): %s" % (
            mode, rate, fmt(timed["median_us"]), ", ".join("%s %.1f us" % (part, r["median_us"])
                                                           for part, r in timed["parts"].items())), flush=True)
    results["wake_cost"] = standins.wake_cost(library())
    results["idle_frame"] = {}
    for _ in range(STANDIN_REPEATS):
        for design in ("project", "seed", "sdk"):
            reset_runtime()
            with Gateway() as gw:
                idle = standins.idle_frame_cost(design, gw.url, library(), channel_names(1_000, 10))
            results["idle_frame"].setdefault(design, []).append(idle)
    for design, runs in results["idle_frame"].items():
        print("  idle frame, %s: %s us back to back, %s us as a frame's first work" % (
            design, "/".join("%.1f" % r["warm_us"] for r in runs),
            "/".join("%.1f" % r["after_sleep_us"] for r in runs)), flush=True)
    reset_runtime()
    with Gateway() as gw:
        results["native_poll"] = standins.native_poll_cost(gw.url, library())
    for layout, us in results["native_poll"].items():
        print("  dn_poll, %s: %.2f us per event" % (layout, us), flush=True)
    for label, r in results["wake_cost"].items():
        print("  %s: %.1f us back to back, %.1f us as a frame's first work" % (label, r["warm_us"], r["after_sleep_us"]),
              flush=True)
    if args.standins_only:
        import report
        print("\n".join(report.standins_section(results)))
        return

    print("== main-thread cost per frame", flush=True)
    frame = []
    for rate in (1_000, 10_000):
        for kind, callbacks in (("project", False), ("project", True), ("A", True), ("B", True)):
            r = in_td(kind, rate, window, callbacks=callbacks)
            r["label"] = "project-cb" if kind == "project" and callbacks else (
                "project-nocb" if kind == "project" else kind)
            frame.append(r)
            print("  %-13s %6d msg/s: median %s us, p99 %s, max %s; received %d/%d" % (
                r["label"], rate, fmt(r["median_us"]), fmt(r["p99_us"]), fmt(r["max_us"]), r["received"],
                r["published"]), flush=True)
    results["frame"] = frame
    client_only = []
    for rate in (1_000, 10_000):
        for kind in ("project", "A", "B"):
            r = in_td(kind, rate, window, callbacks=True, td_work=False)
            r["label"] = "project-cb" if kind == "project" else kind
            client_only.append(r)
            print("  client only: %-11s %6d msg/s: median %s us, p99 %s, max %s" % (
                r["label"], rate, fmt(r["median_us"]), fmt(r["p99_us"]), fmt(r["max_us"])), flush=True)
    results["client_only"] = client_only

    print("== cost growth: message rate, channel count", flush=True)
    rates = (100, 1_000, 10_000, 50_000) if args.quick else (100, 1_000, 5_000, 10_000, 20_000, 50_000)
    growth = {}
    for kind, callbacks, label in (("project", False, "project-nocb"), ("A", True, "A"), ("B", True, "B")):
        growth[label] = [in_td(kind, rate, sweep_window, callbacks=callbacks) for rate in rates]
        print("  %s: %s" % (label, ", ".join("%d->%s us%s" % (r["rate"], fmt(r["median_us"]),
                                                             "" if r["ok"] else " (behind)")
                                            for r in growth[label])), flush=True)
    counts = (1, 10, 100, 1_000) if not args.quick else (1, 100, 1_000)
    by_channels = {}
    for kind, callbacks, label in (("project", False, "project-nocb"), ("A", True, "A")):
        by_channels[label] = [in_td(kind, 1_000, sweep_window, channels=n, callbacks=callbacks) for n in counts]
        print("  %s by channels: %s" % (label, ", ".join("%d->%s us" % (r["channels"], fmt(r["median_us"]))
                                                        for r in by_channels[label])), flush=True)
    results["growth"], results["by_channels"] = growth, by_channels

    print("== throughput: 512-byte DMX frames", flush=True)
    dmx_rates = (500, 2_000, 5_000) if args.quick else (500, 2_000, 5_000, 10_000, 20_000)
    dmx = {}
    for kind, label in (("project", "project-nocb"), ("A", "A"), ("B", "B")):
        dmx[label] = [in_td(kind, rate, sweep_window, channels=1, payload="dmx", callbacks=kind != "project")
                      for rate in dmx_rates]
        print("  %s: %s" % (label, ", ".join("%d:%s" % (r["rate"], "ok" if r["ok"] else "behind")
                                            for r in dmx[label])), flush=True)
    results["dmx"] = dmx

    print("== latency: publish -> visible to the receiver's drain (tight loop)", flush=True)
    lat = []
    repeats = 1 if args.quick else 3
    for rate in (100, 10_000):
        for kind in ("project", "A", "B"):
            runs = [latency(kind, rate, window) for _ in range(repeats)]
            pooled = [us for run in runs for us in run.pop("samples")]
            r = {"client": kind, "rate": rate, "messages": len(pooled), "p50_us": statistics.median(pooled),
                 "p99_us": percentile(pooled, 0.99), "max_us": max(pooled),
                 "p99_per_run_us": [run["p99_us"] for run in runs]}
            lat.append(r)
            print("  %-8s %6d msg/s: p50 %s us, p99 %s (runs: %s), max %s" % (
                kind, rate, fmt(r["p50_us"]), fmt(r["p99_us"]), ", ".join(fmt(v) for v in r["p99_per_run_us"]),
                fmt(r["max_us"])), flush=True)
    results["latency"] = lat
    print("== latency as a 60 fps host sees it, by read pace: publish -> the poll that delivers it", flush=True)
    results["frame_latency"] = []
    for rate in (1_000, 10_000):
        for pace in (0, None, 4):
            options = {} if pace is None else {"read_pace_ms": pace}
            r = latency("project", rate, window, options=options, frame_s=1 / 60)
            samples = r.pop("samples")
            r.update(pace="default (2)" if pace is None else str(pace), mean_us=statistics.mean(samples))
            results["frame_latency"].append(r)
            print("  read_pace_ms %-11s %6d msg/s: p50 %s us, p99 %s, mean %s; read timer %s ms late, too late %s "
                  "times" % (r["pace"], rate, fmt(r["p50_us"]), fmt(r["p99_us"]), fmt(r["mean_us"]),
                             r["timer_late_ms"], r["timer_too_late"]), flush=True)

    print("== footprint", flush=True)
    results["footprint"] = [footprint(kind) for kind in ("project", "A", "B")]
    for r in results["footprint"]:
        print("  %-8s RSS +%d KiB, threads +%d, idle CPU %.3f%%" % (
            r["client"], r["rss_added_kib"], r["threads_added"], r["idle_cpu_percent"]), flush=True)
    results["library_bytes"] = os.path.getsize(library())
    results["seconds"] = time.time() - started

    chart(os.path.join(HERE, "cost_by_rate.png"), "Main-thread cost vs message rate (10 channels x 8 fields)",
          "messages per second", {LABELS[k]: [(r["rate"], r["median_us"]) for r in v] for k, v in growth.items()})
    chart(os.path.join(HERE, "cost_by_channels.png"), "Main-thread cost vs channel count (1,000 msg/s)",
          "channels", {LABELS[k]: [(r["channels"], r["median_us"]) for r in v] for k, v in by_channels.items()})
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    import report
    report.write(results, os.path.join(HERE, "RESULTS.md"))
    print("wrote tests/bench/RESULTS.md, results.json, cost_by_rate.png, cost_by_channels.png (%.0f s)"
          % results["seconds"])


if __name__ == "__main__":
    main()
