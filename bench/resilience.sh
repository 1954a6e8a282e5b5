#!/usr/bin/env bash
# How fast a call fails while fingerprint.com is down and the breaker is open, beside the
# gateway's own health Check in the same run (see README.md):
#
#   bench/resilience.sh [REQUESTS]     (default 20000 per run)
#
# The release gateway runs with its embedded sandbox, whose fault rule answers every
# event read 503. Sequential calls open the breaker (20 failures in the window); it
# then stays open for the run (GATEWAY_BREAKER_OPEN_FOR=10m). h2load then sends GetEvent
# at 1 and at 64 in flight, and Health/Check alike. Also printed: how many requests
# reached the sandbox while the breaker was open. Needs h2load (nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null
cargo build --release --quiet -p fingerprint-gateway
bin=target/release
# shellcheck source=bench/lib.sh
. bench/lib.sh

GW=$(port) SB=$(port)
env -i PATH="$PATH" GATEWAY_LISTEN="127.0.0.1:$GW" GATEWAY_SANDBOX_LISTEN="127.0.0.1:$SB" \
    GATEWAY_SANDBOX_FAULTS='[{"path": "/v4/events/", "fault": "status", "status": 503}]' \
    GATEWAY_BREAKER_OPEN_FOR=10m GATEWAY_RETRY_MAX_ATTEMPTS=1 RUST_LOG=error \
    "$bin/fingerprint-gateway" --sandbox 2>"$work/gw.log" & pids+=($!)
wait_port "$GW"; wait_port "$SB"

python3 - "$work" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(msg): return b"\0" + struct.pack(">I", len(msg)) + msg
def string_field(n, s): b = s.encode(); return bytes([n << 3 | 2, len(b)]) + b
open(f"{d}/health", "wb").write(frame(b""))
open(f"{d}/get_event", "wb").write(frame(string_field(1, "1770000000000.down")))
PY

h2() { # name path file concurrency streams requests
    local name=$1 path=$2 file=$3 c=$4 m=$5 n=$6
    local out
    rm -f "$work/h2.log"
    out=$(h2load -n "$n" -c "$c" -m "$m" -H 'content-type: application/grpc' -H 'te: trailers' \
        --log-file="$work/h2.log" -d "$file" "http://127.0.0.1:$GW$path" 2>&1)
    python3 - "$name" "$((c * m))" "$work/h2.log" "$out" <<'PY'
import re, sys
name, inflight, log, out = sys.argv[1:5]
rps = re.search(r"finished in .*?, ([0-9.]+) req/s", out)
lat = sorted(int(line.split("\t")[2]) for line in open(log) if line.strip())
at = lambda q: lat[round((len(lat) - 1) * q)] / 1000
print(f"{name:<42} {inflight:>3} in flight {float(rps.group(1)) if rps else 0:>9.0f} req/s"
      f"  p50 {at(0.5):6.3f} ms  p99 {at(0.99):6.3f} ms  max {lat[-1] / 1000:6.3f} ms")
PY
}
matched() { curl -s "http://127.0.0.1:$SB/__sandbox/faults" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["matched"])'; }

EVENT=/fingerprint.gateway.v1.FingerprintService/GetEvent
HEALTH=/grpc.health.v1.Health/Check
# Open the breaker: sequential failures until the window holds enough.
h2load -n 40 -c 1 -m 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$work/get_event" "http://127.0.0.1:$GW$EVENT" >/dev/null
grep -q "circuit breaker opened" "$work/gw.log" || RUST_LOG= true
before=$(matched)
echo "== breaker open: $N requests per run"
for load in "1 1" "4 16"; do
    read -r c m <<<"$load"
    for round in 1 2; do
        h2 "gateway: GetEvent, breaker open" $EVENT "$work/get_event" "$c" "$m" "$N"
        h2 "gateway: Health/Check" $HEALTH "$work/health" "$c" "$m" "$N"
    done
done
after=$(matched)
echo "requests that reached the (failing) upstream during those $((4 * N)) GetEvents: $((after - before))"
