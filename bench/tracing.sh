#!/usr/bin/env bash
# What tracing costs, measured side by side in one run (see README.md, "Tracing"):
#
#   bench/tracing.sh [REQUESTS]   (default 1000000 per cache-hit round)
#   TRACE_ROUNDS=4 TRACE_LOADS="4x16 16x32" bench/tracing.sh
#
# Two gateways from one release binary, alike but for one setting:
# - plain: no exporter;
# - traced: OTEL_EXPORTER_OTLP_ENDPOINT set, the default sampler
#   (parentbased_always_on: every call sampled), exporting to a real OTLP/gRPC receiver
#   (bench/src/bin/otlp_sink.rs) that decodes every export and counts its spans.
# Both log at RUST_LOG=warn. Beside them, the floor: the bare tonic server of bench/run.sh
# answering a fixed payload, untraced (bare) and traced the gateway's way (bare_traced:
# one span a call through the same telemetry::init, exported to the same receiver).
# They take turns (the order alternates), on
#   1. GetEvent from the cache (one server span a call), at each load of TRACE_LOADS
#      (connections x streams: 4x16 = 64 in flight, 16x32 = 512);
#   2. GetEvent with `cache-control: no-cache` against an upstream answering after
#      20 ms (a server span and a client span a call), 64 in flight, 3 s after a
#      0.5 s warm-up.
# For the traced side it reports the spans the receiver got against the calls made: a
# figure that drops spans says so. Needs h2load (Debian nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ROUNDS=${TRACE_ROUNDS:-4}
LOADS=${TRACE_LOADS:-"4x16 16x32"}
command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null
cargo build --release --quiet -p fingerprint-gateway -p fingerprint-gateway-bench
bin=target/release
# shellcheck source=bench/lib.sh
. bench/lib.sh


UP=$(port) SINK=$(port) COUNT=$(port) PLAIN=$(port) TRACED=$(port) BARE=$(port) BARE_TRACED=$(port)
"$bin/fixed_upstream" "127.0.0.1:$UP" 20 2>/dev/null & pids+=($!)
"$bin/otlp_sink" "127.0.0.1:$SINK" "127.0.0.1:$COUNT" & pids+=($!)
SINK_PID=$!
gateway() { # port [extra env]
    local p=$1
    shift
    env -i PATH="$PATH" RUST_LOG=warn GATEWAY_LISTEN="127.0.0.1:$p" \
        FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP" FINGERPRINT_SECRET_API_KEY=bench-key \
        GATEWAY_CACHE_TTL_GET_EVENT=1h "$@" "$bin/fingerprint-gateway" >/dev/null 2>&1 &
    pids+=($!)
}
gateway "$PLAIN"
PLAIN_PID=$!
# TRACED_ENV: extra settings for the traced side only (e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048).
# shellcheck disable=SC2086
gateway "$TRACED" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK" ${TRACED_ENV:-}
TRACED_PID=$!
env -i PATH="$PATH" RUST_LOG=warn "$bin/bare_server" "127.0.0.1:$BARE" >/dev/null 2>&1 &
pids+=($!)
BARE_PID=$!
env -i PATH="$PATH" RUST_LOG=warn BARE_OTLP="http://127.0.0.1:$SINK" "$bin/bare_server" \
    "127.0.0.1:$BARE_TRACED" >/dev/null 2>&1 &
pids+=($!)
BARE_TRACED_PID=$!
wait_port "$UP"; wait_port "$SINK"; wait_port "$COUNT"; wait_port "$PLAIN"; wait_port "$TRACED"
wait_port "$BARE"; wait_port "$BARE_TRACED"

python3 - "$work" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(msg): return b"\0" + struct.pack(">I", len(msg)) + msg
def string_field(n, s): b = s.encode(); return bytes([n << 3 | 2, len(b)]) + b
open(f"{d}/get_event", "wb").write(frame(string_field(1, "1770000000000.abcdef")))
PY
EVENT=/fingerprint.gateway.v1.FingerprintService/GetEvent
for p in "$PLAIN" "$TRACED" "$BARE" "$BARE_TRACED"; do
    h2load -n 10 -c 1 -m 1 -H 'content-type: application/grpc' -H 'te: trailers' \
        -d "$work/get_event" "http://127.0.0.1:$p$EVENT" >/dev/null
done

spans() { curl -s "http://127.0.0.1:$COUNT/count"; }
# The receiver's count once the exporter has flushed: unchanged for 6 s, longer than
# the batch processor's 5 s schedule (or 60 s).
settled() {
    local last now same=0
    last=$(spans)
    for _ in $(seq 300); do
        sleep 0.2
        now=$(spans)
        if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; fi
        last=$now
        [ "$same" -ge 30 ] && break
    done
    echo "$last"
}
# CPU time (user + system, in clock ticks) a process has used.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

run() { # side load kind -> one line in results:
    #   side load kind req/s p50 p99 calls spans gateway_ticks sink_ticks
    local side=$1 load=$2 kind=$3 p pid c m out before after cpu0 cpu1 sink0 sink1
    c=${load%x*} m=${load#*x}
    case $side in
    plain) p=$PLAIN pid=$PLAIN_PID ;;
    traced) p=$TRACED pid=$TRACED_PID ;;
    bare) p=$BARE pid=$BARE_PID ;;
    bare_traced) p=$BARE_TRACED pid=$BARE_TRACED_PID ;;
    esac
    before=$(settled)
    cpu0=$(ticks "$pid") sink0=$(ticks "$SINK_PID")
    rm -f "$work/h2.log"
    if [ "$kind" = hit ]; then
        out=$(h2load -n "$N" -c "$c" -m "$m" -H 'content-type: application/grpc' -H 'te: trailers' \
            --log-file="$work/h2.log" -d "$work/get_event" "http://127.0.0.1:$p$EVENT" 2>&1)
    else
        out=$(h2load -D 3 --warm-up-time 500ms -c "$c" -m "$m" -H 'content-type: application/grpc' \
            -H 'te: trailers' -H 'cache-control: no-cache' \
            --log-file="$work/h2.log" -d "$work/get_event" "http://127.0.0.1:$p$EVENT" 2>&1)
    fi
    after=$(settled)
    cpu1=$(ticks "$pid") sink1=$(ticks "$SINK_PID")
    python3 - "$side" "$load" "$kind" "$work/h2.log" "$out" "$((after - before))" \
        "$((cpu1 - cpu0))" "$((sink1 - sink0))" "$HZ" <<'PY' | tee -a "$work/results"
import re, sys
side, load, kind, log, out, spans, cpu, sink, hz = sys.argv[1:10]
rps = float(re.search(r"finished in .*?, ([0-9.]+) req/s", out).group(1))
# Every call made, the warm-up's included (they are traced too).
done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
lat = sorted(int(l.split("\t")[2]) for l in open(log) if l.strip())
at = lambda q: lat[round((len(lat) - 1) * q)] / 1000
# CPU per call in microseconds (the gateway's, and the receiver's per span received).
us = lambda ticks, n: int(ticks) / int(hz) * 1e6 / max(int(n), 1)
print(f"{side} {load} {kind} {rps:.0f} {at(0.5):.3f} {at(0.99):.3f} {done} {spans} "
      f"{us(cpu, done):.1f} {us(sink, spans) if int(spans) > 0 else 0:.2f}")
PY
}

echo "== side load kind req/s p50_ms p99_ms calls spans_received gateway_cpu_us_per_call receiver_cpu_us_per_span"
for load in $LOADS; do
    for round in $(seq "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then order="plain traced bare bare_traced"
        else order="bare_traced bare traced plain"; fi
        for side in $order; do run "$side" "$load" hit; done
    done
done
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="plain traced"; else order="traced plain"; fi
    for side in $order; do run "$side" 4x16 miss; done
done

echo "== traced / plain (per round pair; median over rounds), and spans received per call"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
pairs = [("plain", "traced", "gateway"), ("bare", "bare_traced", "floor (bare tonic)")]
for (load, kind, per_call), (off, on, who) in sorted(
        ((k, p) for k in {(r[1], r[2], 1 if r[2] == "hit" else 2) for r in rows} for p in pairs),
        key=lambda x: (x[0], x[1][2] != "gateway")):
    plain = [r for r in rows if r[0] == off and r[1] == load and r[2] == kind]
    traced = [r for r in rows if r[0] == on and r[1] == load and r[2] == kind]
    if not plain or not traced:
        continue
    rps = [float(t[3]) / float(p[3]) for p, t in zip(plain, traced)]
    p50 = [float(t[4]) / float(p[4]) for p, t in zip(plain, traced)]
    p99 = [float(t[5]) / float(p[5]) for p, t in zip(plain, traced)]
    calls = sum(int(t[6]) for t in traced)
    # A flush can land during the next run, the plain side's included: count them all.
    spans = sum(int(r[7]) for r in plain + traced)
    cpu = lambda side: statistics.median(float(r[8]) for r in side)
    c, m = load.split("x")
    print(f"{who:<18} {kind:<5} {int(c) * int(m):>4} in flight: throughput {statistics.median(rps):.3f}x "
          f"(rounds {', '.join(f'{x:.3f}' for x in rps)}), p50 {statistics.median(p50):.3f}x, "
          f"p99 {statistics.median(p99):.3f}x (rounds {', '.join(f'{x:.3f}' for x in p99)}); "
          f"spans received {spans} for {calls * per_call} ({spans / (calls * per_call):.4f}"
          f"{'; the warm-up calls are traced too, so above 1 means none dropped' if kind == 'miss' else ''}); "
          f"gateway CPU per call {cpu(plain):.1f} -> {cpu(traced):.1f} us; "
          f"receiver CPU per span {statistics.median(float(r[9]) for r in traced):.2f} us")
PY
