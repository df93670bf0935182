"""Load generator, run as its own process (so it never competes for the measured
process's GIL): publishes JSON sensor readings or 512-byte DMX frames at a steady
rate over several channels, with the native client.

Prints `ready` once connected, waits for a line on stdin, publishes, then prints a
JSON summary line.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
import DataNet  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--lib", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--kind", choices=("json", "dmx"), default="json")
    parser.add_argument("--stamp", action="store_true", help="add field t = time.time_ns() for latency")
    parser.add_argument("--prefix", default="project.bench.ch")
    args = parser.parse_args()

    client = DataNet.DataNet("publisher")
    ws_url = "ws://" + args.url[len("http://"):]
    client.connect("ak_bench_publisher", api_url=args.url, ws_url=ws_url, lib_path=args.lib,
                   outbound_max_messages=2_000_000, outbound_max_bytes=1 << 31)
    while not client.is_connected():
        client.poll()
        time.sleep(0.005)
    channels = ["%s%d" % (args.prefix, n) for n in range(args.channels)]
    print("ready", flush=True)
    sys.stdin.readline()

    total = int(args.rate * args.seconds)
    frame = bytes(range(256)) * 2
    published, begin = 0, time.perf_counter()
    while published < total:
        due = min(total, int((time.perf_counter() - begin) * args.rate) + 1)
        while published < due:
            channel = channels[published % len(channels)]
            if args.kind == "dmx":
                client.publish_binary(channel, frame, "binary/dmx")
            else:
                reading = {"f%d" % i: (published * (i + 1)) % 1000 / 10.0 for i in range(args.fields)}
                if args.stamp:
                    reading["t"] = time.time_ns()
                client.publish(channel, reading)
            published += 1
        time.sleep(0.0002)
    elapsed = time.perf_counter() - begin
    while client.status()["counters"]["queued_outbound"]:
        time.sleep(0.005)
    counters = client.status()["counters"]
    print(json.dumps({"published": published, "seconds": elapsed, "sent": counters["sent"],
                      "dropped_outbound": counters["dropped_outbound"]}), flush=True)
    client.disconnect()


if __name__ == "__main__":
    main()
