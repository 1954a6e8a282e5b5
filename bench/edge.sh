#!/usr/bin/env bash
# Edge decisions (Envoy ext_authz Check) against their anchors, side by side in one run:
#
#   bench/edge.sh               (ROUNDS=4 SECONDS_PER=3 by default)
#
# 1. the gateway's Check for an in-scope request (a typical CheckRequest: 13 headers,
#    /login), the vendor a local upstream answering POST /v4/edge after 20 ms
#    (bench/src/bin/fixed_upstream.rs);
# 2. the floor: a bare tonic Check that decodes the same CheckRequest and makes the same
#    POST with reqwest, converting nothing (bench/src/bin/bare_authz.rs);
# 3. a direct POST of the same body to the same upstream (h2load over HTTP/1.1, one
#    connection per call in flight);
# at 16 and 64 in flight, the three taking turns, latencies pooled over the rounds.
# Then an out-of-scope Check against the gateway's health Check, at 64 in flight, and
# the gateway's CPU per decision (utime + stime over the calls answered).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null
cargo build --release --quiet -p fingerprint-gateway -p fingerprint-gateway-bench
bin=target/release
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUNDS=${ROUNDS:-4}
SECONDS_PER=${SECONDS_PER:-3}

UP=$(port) GW=$(port) FLOOR=$(port)
"$bin/edge_frames" "$work" 2>"$work/frames.log"
"$bin/fixed_upstream" "127.0.0.1:$UP" 20 2>/dev/null & pids+=($!)
"$bin/bare_authz" "127.0.0.1:$FLOOR" "http://127.0.0.1:$UP/v4/edge" "$work/edge_body" 2>/dev/null & pids+=($!)
cat >"$work/policy.toml" <<'TOML'
default = "allow"
[scope]
paths = ["/login"]
[[rule]]
name = "bots"
action = "deny"
bot = true
TOML
env -i PATH="$PATH" GATEWAY_LISTEN="127.0.0.1:$GW" RUST_LOG=warn \
    FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP" FINGERPRINT_SECRET_API_KEY=bench-key \
    GATEWAY_EDGE_POLICY_FILE="$work/policy.toml" GATEWAY_EDGE_BUDGET=2s \
    "$bin/fingerprint-gateway" >/dev/null 2>"$work/gw.log" & pids+=($!)
GW_PID=$!
wait_port "$UP"; wait_port "$FLOOR"; wait_port "$GW"
cat "$work/frames.log"
python3 -c "import sys; open(sys.argv[1],'wb').write(b'\0\0\0\0\0')" "$work/health"

CHECK=/envoy.service.auth.v3.Authorization/Check
HEALTH=/grpc.health.v1.Health/Check
cpu() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
rate() { grep -oE '[0-9.]+ req/s' | head -1 | cut -d' ' -f1; }
done_n() { grep -oE '[0-9]+ succeeded' | head -1 | cut -d' ' -f1; }

side() { # name inflight
    local name=$1 inflight=$2 out c m
    rm -f "$work/h2.log"
    case $name in
    gateway | floor | out_of_scope | health)
        c=4 m=$((inflight / 4))
        local p=$GW file=$work/check_in path=$CHECK
        [ "$name" = floor ] && p=$FLOOR
        [ "$name" = out_of_scope ] && file=$work/check_out
        [ "$name" = health ] && file=$work/health path=$HEALTH
        local before
        before=$(cpu)
        out=$(h2load -D "$SECONDS_PER" --warm-up-time 300ms -c "$c" -m "$m" \
            -H 'content-type: application/grpc' -H 'te: trailers' \
            --log-file="$work/h2.log" -d "$file" "http://127.0.0.1:$p$path" 2>&1)
        if [ "$name" != floor ]; then
            echo "$(($(cpu) - before)) $(echo "$out" | done_n)" >>"$work/cpu.$name.$inflight"
        fi
        ;;
    direct)
        out=$(h2load --h1 -D "$SECONDS_PER" --warm-up-time 300ms -c "$inflight" -m 1 \
            -H 'content-type: application/json' -H 'authorization: Bearer bench-key' \
            --log-file="$work/h2.log" -d "$work/edge_body" "http://127.0.0.1:$UP/v4/edge" 2>&1)
        ;;
    esac
    echo "$out" | rate >>"$work/rate.$name.$inflight"
    cut -f3 "$work/h2.log" >>"$work/pool.$name.$inflight"
}

# Warm-up: connections open, allocator settled.
for p in "$GW" "$FLOOR"; do
    h2load -n 2000 -c 4 -m 4 -H 'content-type: application/grpc' -H 'te: trailers' \
        -d "$work/check_in" "http://127.0.0.1:$p$CHECK" >/dev/null
done
for inflight in 16 64; do
    sides=(gateway floor direct)
    for round in $(seq 0 $((ROUNDS - 1))); do
        for k in 0 1 2; do side "${sides[$(((round + k) % 3))]}" "$inflight"; done
    done
done
for round in $(seq 0 $((ROUNDS - 1))); do
    side out_of_scope 64
    side health 64
done
python3 - "$work" "$ROUNDS" "$SECONDS_PER" <<'PY'
import sys
work, rounds, secs = sys.argv[1], sys.argv[2], sys.argv[3]
hz = 100  # clock ticks per second (/proc/PID/stat)
def load(name, n):
    lat = sorted(int(l) for l in open(f"{work}/pool.{name}.{n}") if l.strip())
    rates = [float(l) for l in open(f"{work}/rate.{name}.{n}") if l.strip()]
    at = lambda q: lat[round((len(lat) - 1) * q)] / 1000
    return sum(rates) / len(rates), at(0.5), at(0.99), len(lat)
def cpu(name, n):
    try:
        rows = [l.split() for l in open(f"{work}/cpu.{name}.{n}") if l.strip()]
    except FileNotFoundError:
        return None
    ticks = sum(int(r[0]) for r in rows); calls = sum(int(r[1]) for r in rows if r[1].isdigit())
    return ticks / hz / calls * 1e6 if calls else None
names = {"gateway": "gateway: Check, in scope", "floor": "floor: bare tonic Check + POST",
         "direct": "direct POST /v4/edge", "out_of_scope": "gateway: Check, out of scope",
         "health": "gateway: Health/Check"}
for n in (16, 64):
    got = {}
    for side in ("gateway", "floor", "direct"):
        rps, p50, p99, calls = got[side] = load(side, n)
        c = cpu(side, n)
        extra = f"  CPU {c:.0f} us/decision" if c else ""
        print(f"{names[side]:<34} {n:>3} in flight {rps:>7.0f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  ({calls} calls, {rounds} x {secs} s){extra}")
    g, f, d = got["gateway"], got["floor"], got["direct"]
    print(f"  gateway / floor: p50 {g[1] / f[1]:.3f} (target <= 1.03), p99 {g[2] / f[2]:.3f} (target <= 1.05);"
          f" p50 - direct: gateway {g[1] - d[1]:.3f} ms, floor {f[1] - d[1]:.3f} ms")
o, h = load("out_of_scope", 64), load("health", 64)
for side, v in (("out_of_scope", o), ("health", h)):
    c = cpu(side, 64)
    print(f"{names[side]:<34}  64 in flight {v[0]:>7.0f} req/s  p50 {v[1]:7.3f} ms  p99 {v[2]:7.3f} ms  CPU {c:.1f} us/call")
print(f"  out of scope / health throughput: {o[0] / h[0]:.3f} (target >= 0.90)")
PY
