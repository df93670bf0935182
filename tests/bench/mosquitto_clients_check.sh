#!/bin/bash
# A check of the gateway_load benchmark's Mosquitto figures that does not use its
# load generator: Mosquitto's own clients (Debian `mosquitto-clients`) publish
# 100-byte lines as fast as they can, and the time until every subscriber has them
# all gives the broker's throughput. No latency bar: a ceiling, not a passing step.
#
#     bash tests/bench/mosquitto_clients_check.sh
#
# Fan-in: 4 `mosquitto_pub -l` (250,000 lines each) -> 1 `mosquitto_sub`.
# Fan-out: 1 `mosquitto_pub -l` (10,000 lines) -> 100 `mosquitto_sub`; here the 100
# client processes are likely the limit, so its figure is a lower bound.
# Each with Mosquitto's stock settings, then with `set_tcp_nodelay true`.
set -u
for tool in mosquitto mosquitto_pub mosquitto_sub python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (apt-get install mosquitto mosquitto-clients)"; exit 0; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/lines.txt" <<'EOF'
import json, sys
line = json.dumps({"t": 1234567890123, "s": 1, "p": "x" * 60})
open(sys.argv[1], "w").write((line + "\n") * 250000)
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# $1: extra config line; $2: publishers; $3: subscribers; $4: lines per publisher
run() {
    local port; port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\n' "$port" "$1" > "$work/m.conf"
    mosquitto -c "$work/m.conf" >/dev/null 2>&1 &
    local broker=$!
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    local per_sub=$(( $2 * $4 )) subs=()
    for _ in $(seq "$3"); do mosquitto_sub -p "$port" -t bench/check -C "$per_sub" > /dev/null & subs+=($!); done
    sleep 2
    head -n "$4" "$work/lines.txt" > "$work/part.txt"
    local c0 t0 waiting=0; c0=$(cpu_ticks "$broker"); t0=$(date +%s.%N)
    for _ in $(seq "$2"); do mosquitto_pub -p "$port" -t bench/check -l < "$work/part.txt" & done
    for _ in $(seq 1200); do
        waiting=0
        for sub in "${subs[@]}"; do kill -0 "$sub" 2>/dev/null && waiting=$((waiting + 1)); done
        [ "$waiting" -eq 0 ] && break
        sleep 0.1
    done
    local t1 c1; t1=$(date +%s.%N); c1=$(cpu_ticks "$broker")
    python3 -c "
d = $t1 - $t0
print(f'  {\"${1:-stock settings}\"}: $2 -> $3, {$per_sub * $3 / d:,.0f} deliveries/s over {d:.2f} s, broker CPU {($c1 - $c0) / 100 / d * 100:.0f}%, subscribers still waiting: $waiting')"
    for sub in "${subs[@]}"; do kill "$sub" 2>/dev/null; done
    kill "$broker"
    wait 2>/dev/null
}

echo "Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "fan-in"
run "" 4 1 250000
run "set_tcp_nodelay true" 4 1 250000
echo "fan-out"
run "" 1 100 10000
run "set_tcp_nodelay true" 1 100 10000
