#!/usr/bin/env bash
# The gateway against its ceilings, measured side by side in one run (see README.md):
#
#   bench/run.sh [REQUESTS]      (default 1000000 per hot-path run; fewer scatter widely)
#   SKIP_MEMORY=1 bench/run.sh   (throughput and latency only)
#   SKIP_HOT=1 SKIP_MEMORY=1 bench/run.sh   (the miss path only)
#
# 1. a bare tonic server (bench/src/bin/bare_server.rs) answering the gateway's own
#    encoded GetEvent answer as fixed Bytes, and its health Check;
# 2. the gateway's health Check;
# 3. GetEvent from the gateway's cache;
# 4. GetEvent with `cache-control: no-cache` against a local upstream that answers a
#    fixed event after 20 ms (bench/src/bin/fixed_upstream.rs);
# 5. plain reqwest GETs of that upstream URL (bench/src/bin/load.rs), what a service does
#    without the gateway;
# 6. the floor of any gateway: the bare server of 1., calling that upstream URL with
#    reqwest before it answers (bare_server ADDR URL);
# then RSS with the cache full, of the sandbox under load, and after 10,000 made-up
# method paths. Needs h2load (Debian nghttp2-client; installed when missing and root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null
cargo build --release --quiet -p fingerprint-gateway -p fingerprint-gateway-bench
bin=target/release
# shellcheck source=bench/lib.sh
. bench/lib.sh

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

UP=$(port) GW=$(port) BARE=$(port) FLOOR=$(port) METRICS=$(port)
UP_URL="http://127.0.0.1:$UP/v4/events/1770000000000.abcdef"
"$bin/fixed_upstream" "127.0.0.1:$UP" 20 2>/dev/null & pids+=($!)
"$bin/bare_server" "127.0.0.1:$BARE" 2>"$work/bare.log" & pids+=($!)
# The bare server again, making the upstream call first: the floor of any gateway.
"$bin/bare_server" "127.0.0.1:$FLOOR" "$UP_URL" 2>/dev/null & pids+=($!)
env -i PATH="$PATH" GATEWAY_LISTEN="127.0.0.1:$GW" GATEWAY_METRICS_LISTEN="127.0.0.1:$METRICS" \
    FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP" FINGERPRINT_SECRET_API_KEY=bench-key \
    GATEWAY_CACHE_TTL_GET_EVENT=1h "$bin/fingerprint-gateway" 2>"$work/gw.log" & pids+=($!)
GW_PID=$!
wait_port "$UP"; wait_port "$BARE"; wait_port "$FLOOR"; wait_port "$GW"

# gRPC frames: flag, 4-byte length, message.
python3 - "$work" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(msg): return b"\0" + struct.pack(">I", len(msg)) + msg
def string_field(n, s): b = s.encode(); return bytes([n << 3 | 2, len(b)]) + b
open(f"{d}/health", "wb").write(frame(b""))
open(f"{d}/get_event", "wb").write(frame(string_field(1, "1770000000000.abcdef")))
PY

h2() { # name port path file concurrency streams requests [extra h2load args]
    local name=$1 p=$2 path=$3 file=$4 c=$5 m=$6 n=$7; shift 7
    local out
    rm -f "$work/h2.log"
    out=$(h2load -n "$n" -c "$c" -m "$m" -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
        --log-file="$work/h2.log" -d "$file" "http://127.0.0.1:$p$path" 2>&1)
    python3 - "$name" "$((c * m))" "$work/h2.log" "$out" <<'PY'
import re, sys
name, inflight, log, out = sys.argv[1:5]
rps = re.search(r"finished in .*?, ([0-9.]+) req/s", out)
ok = re.search(r"requests: .* (\d+) succeeded", out)
lat = sorted(int(line.split("\t")[2]) for line in open(log) if line.strip())
at = lambda q: lat[round((len(lat) - 1) * q)] / 1000
print(f"{name:<40} {inflight:>4} in flight {float(rps.group(1)) if rps else 0:>10.0f} req/s"
      f"  mean {sum(lat) / len(lat) / 1000:7.3f} ms  p50 {at(0.5):7.3f} ms  p99 {at(0.99):7.3f} ms"
      f"  ({ok.group(1) if ok else '?'} ok)")
PY
}

HEALTH=/grpc.health.v1.Health/Check
EVENT=/fingerprint.gateway.v1.FingerprintService/GetEvent
h2load -n 10 -c 1 -m 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/get_event" \
    "http://127.0.0.1:$GW$EVENT" >/dev/null
echo "== hot path: $N requests per run (1 in flight: N/10), bare server and gateway alternating"
grep -o 'answers [0-9]* bytes' "$work/bare.log" | sed 's/^/   GetEvent /'
hot_loads=("1 1" "4 16" "16 32")
[ "${SKIP_HOT:-}" = 1 ] && hot_loads=()
for load in "${hot_loads[@]}"; do
    read -r c m <<<"$load"
    n=$N
    [ "$c" = 1 ] && n=$((N / 10))
    for round in 1 2; do
        h2 "bare tonic: GetEvent (fixed Bytes)" "$BARE" $EVENT "$work/get_event" "$c" "$m" "$n"
        h2 "gateway: GetEvent, cache hit" "$GW" $EVENT "$work/get_event" "$c" "$m" "$n"
        h2 "bare tonic: Health/Check" "$BARE" $HEALTH "$work/health" "$c" "$m" "$n"
        h2 "gateway: Health/Check" "$GW" $HEALTH "$work/health" "$c" "$m" "$n"
    done
done

# Calls in flight (64 is the issue's target; a multiple of 4: h2load's 4 connections).
INFLIGHT=${MISS_INFLIGHT:-64}
[ $((INFLIGHT % 4)) = 0 ] && [ "$INFLIGHT" -gt 0 ] || { echo "MISS_INFLIGHT: a multiple of 4" >&2; exit 2; }
echo "== miss path: upstream answers after 20 ms, $INFLIGHT in flight"
# Steady state: each side keeps its calls in flight without pause, and only the calls
# started after a warm-up are measured (h2load's `-D` and `--warm-up-time`, and the same
# in `load direct`). 64 calls that start at the same instant stay in step for the first
# few 20 ms rounds and need their CPU all at once; a service's callers do not arrive
# like that. The three sides take turns (the one that goes first rotates) and each
# side's latencies are pooled over all its rounds, so a slow second on this shared
# machine falls on all three alike.
ROUNDS=${MISS_ROUNDS:-6}
SECONDS_PER=${MISS_SECONDS:-3}
WARMUP_MS=${MISS_WARMUP_MS:-500}
# Warm-up, not measured: opens the gateway's and the floor's upstream connections.
for p in "$GW" "$FLOOR"; do
    h2load -n 640 -c 4 -m 16 -H 'content-type: application/grpc' -H 'te: trailers' \
        -H 'cache-control: no-cache' -d "$work/get_event" "http://127.0.0.1:$p$EVENT" >/dev/null
done
rm -f "$work"/pool.* "$work"/rate.*
# The req/s a round's output reports (h2load's and load's), one per line.
rate() { grep -oE '[0-9.]+ req/s' | head -1 | cut -d' ' -f1; }
miss_h2() { # side port [extra h2load args]
    local side=$1 port=$2
    shift 2
    rm -f "$work/h2.log" # h2load appends to its log
    h2load -D "$SECONDS_PER" --warm-up-time "${WARMUP_MS}ms" -c 4 -m $((INFLIGHT / 4)) \
        -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
        --log-file="$work/h2.log" -d "$work/get_event" "http://127.0.0.1:$port$EVENT" |
        rate >>"$work/rate.$side"
    cut -f3 "$work/h2.log" >>"$work/pool.$side"
}
miss_side() { # side
    case $1 in
    gateway) miss_h2 gateway "$GW" -H 'cache-control: no-cache' ;;
    floor) miss_h2 floor "$FLOOR" ;;
    direct)
        "$bin/load" direct "$UP_URL" "$INFLIGHT" "$WARMUP_MS" $((SECONDS_PER * 1000)) \
            "$work/pool.direct" | rate >>"$work/rate.direct" ;;
    esac
}
sides=(gateway direct floor)
for round in $(seq 0 $((ROUNDS - 1))); do
    for k in 0 1 2; do
        miss_side "${sides[$(((round + k) % 3))]}"
    done
done
python3 - "$work" "$ROUNDS" "$SECONDS_PER" "$INFLIGHT" <<'PY'
import sys
work, rounds, seconds, inflight = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
names = {"gateway": "gateway: GetEvent, no-cache", "direct": "direct reqwest GET of the upstream",
         "floor": "floor: bare tonic + reqwest GET"}
got = {}
for side, name in names.items():
    lat = sorted(int(l) for l in open(f"{work}/pool.{side}") if l.strip())
    # Every round measures for the same time: the mean of the rounds' rates.
    rates = [float(l) for l in open(f"{work}/rate.{side}") if l.strip()]
    rps = sum(rates) / len(rates)
    at = lambda q: lat[round((len(lat) - 1) * q)] / 1000
    got[side] = (at(0.5), at(0.99))
    print(f"{name:<40} {inflight:>4} in flight {rps:>6.0f} req/s, {len(lat)} calls ({rounds} x {seconds} s)"
          f"  mean {sum(lat) / len(lat) / 1000:7.3f} ms  p50 {at(0.5):7.3f} ms  p99 {at(0.99):7.3f} ms")
d = got["direct"]
for side in ("gateway", "floor"):
    p50, p99 = got[side]
    print(f"{side} / direct: p50 {p50 / d[0]:.3f}, p99 {p99 / d[1]:.3f}")
print(f"gateway / floor: p99 {got['gateway'][1] / got['floor'][1]:.3f}")
PY

[ "${SKIP_MEMORY:-}" = 1 ] && exit 0

echo "== memory"
for max in 8388608 67108864; do
    P=$(port)
    env -i PATH="$PATH" GATEWAY_LISTEN="127.0.0.1:$P" FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP" \
        FINGERPRINT_SECRET_API_KEY=bench-key GATEWAY_CACHE_TTL_GET_EVENT=1h GATEWAY_CACHE_MAX_BYTES=$max \
        RUST_LOG=warn "$bin/fingerprint-gateway" 2>/dev/null & pids+=($!)
    pid=$!
    wait_port "$P"
    "$bin/load" fill "127.0.0.1:$P" 2000 64 >/dev/null
    before=$(rss_kib "$pid")
    "$bin/load" fill "127.0.0.1:$P" 100000 64 >/dev/null
    after=$(rss_kib "$pid")
    python3 -c "b,a,m=$before,$after,$max; print(f'gateway, 100,000 distinct events into a {m/1048576:.0f} MiB cache: RSS {b/1024:.1f} -> {a/1024:.1f} MiB, growth {(a-b)/1024:.1f} MiB = {(a-b)*1024/m:.2f} x the bound')"
    kill "$pid"
done

P=$(port)
"$bin/fingerprint-gateway" sandbox --listen "127.0.0.1:$P" >/dev/null 2>&1 & pids+=($!)
pid=$!
wait_port "$P"
"$bin/load" sandbox "http://127.0.0.1:$P" 100000 64 >/dev/null
at100k=$(rss_kib "$pid")
"$bin/load" sandbox "http://127.0.0.1:$P" 900000 64 >/dev/null
at1m=$(rss_kib "$pid")
python3 -c "a,b=$at100k,$at1m; print(f'sandbox --listen: RSS {a/1024:.1f} MiB after 100k requests, {b/1024:.1f} MiB after 1M ({(b-a)/a*100:+.1f}%)')"
kill "$pid"

series() { curl -s "http://127.0.0.1:$METRICS/metrics" | grep -cv '^#'; }
s0=$(series); r0=$(rss_kib "$GW_PID")
"$bin/load" unknown "127.0.0.1:$GW" 10000 >/dev/null
s1=$(series); r1=$(rss_kib "$GW_PID")
echo "10,000 made-up method paths: metric series $s0 -> $s1, RSS $((r0 / 1024)) -> $((r1 / 1024)) MiB"
