#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the same total for the same binary and
# input whatever else the machine is doing, so ratios between runs are exact where
# wall-clock ratios on a shared 2-core machine scatter by 10% or more.
#
#   bench/profile.sh [REQUESTS]      (default 20000 per case)
#
# Cases: the bare tonic server's GetEvent and Health/Check, the gateway's cache hit,
# Health/Check and no-cache miss (against bench's fixed upstream, no delay), and the
# cache hit and miss again with every call traced and exported to a real OTLP receiver
# (bench/src/bin/otlp_sink.rs; the export thread's work is counted too). Needs
# valgrind and h2load (Debian valgrind, nghttp2-client). The dumps are kept in
# target/profile/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
for tool in valgrind callgrind_control callgrind_annotate h2load; do
    command -v "$tool" >/dev/null || { echo "profile: $tool not found" >&2; exit 1; }
done
# Line tables only: symbols for the annotations, the same optimised code.
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
target=${CARGO_TARGET_DIR:-target}/profile
cargo build --release --quiet --target-dir "$target" -p fingerprint-gateway -p fingerprint-gateway-bench
bin=$target/release
work=$(mktemp -d)
# The dumps stay, for `callgrind_annotate --inclusive=yes` or kcachegrind.
dumps=$target/callgrind
rm -rf "$dumps" && mkdir -p "$dumps"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
python3 - "$work" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(msg): return b"\0" + struct.pack(">I", len(msg)) + msg
open(f"{d}/health", "wb").write(frame(b""))
m = "1770000000000.abcdef".encode()
open(f"{d}/get_event", "wb").write(frame(bytes([10, len(m)]) + m))
PY
UP=$(port) SINK=$(port) COUNT=$(port)
"$bin/fixed_upstream" "127.0.0.1:$UP" 0 2>/dev/null & pids+=($!)
"$bin/otlp_sink" "127.0.0.1:$SINK" "127.0.0.1:$COUNT" 2>/dev/null & pids+=($!)
disown -a

# profile NAME PATH FILE HEADER -- COMMAND... (the command listens on $P)
profile() {
    local name=$1 path=$2 file=$3 header=$4; shift 5
    local slug=${name//[^a-zA-Z]/}
    # The case's environment (set by the caller in `vars`) and nothing else.
    env -i PATH="$PATH" "${vars[@]}" valgrind --tool=callgrind \
        --callgrind-out-file="$work/cg.$slug" "$@" >"$work/$slug.log" 2>&1 &
    local vpid=$!
    pids+=("$vpid")
    for _ in $(seq 240); do (echo >/dev/tcp/127.0.0.1/"$P") 2>/dev/null && break; sleep 0.5; done
    local h2=(h2load -c 4 -m 16 -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/$file")
    [ -n "$header" ] && h2+=(-H "$header")
    # Warm up (connections, cache fill, lazily built series), then count from zero.
    "${h2[@]}" -n 200 "http://127.0.0.1:$P$path" >/dev/null
    callgrind_control -z "$vpid" >/dev/null 2>&1
    "${h2[@]}" -n "$N" "http://127.0.0.1:$P$path" | grep -q "$N succeeded" ||
        { echo "profile: $name: not every request succeeded" >&2; exit 1; }
    # A traced case waits for the batch exporter's last scheduled flush (5 s).
    sleep "${SETTLE:-0}"
    callgrind_control -d "$vpid" >/dev/null 2>&1
    sleep 1
    kill -9 "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    local dump total
    dump=$(ls -t "$work/cg.$slug".* | head -1)
    total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    cp "$dump" "$dumps/$slug.out"
    printf '%-32s %9d instructions per request\n' "$name" $((total / N))
}

EVENT=/fingerprint.gateway.v1.FingerprintService/GetEvent
HEALTH=/grpc.health.v1.Health/Check
vars=()
P=$(port); profile "bare: GetEvent" $EVENT get_event "" -- "$bin/bare_server" "127.0.0.1:$P"
P=$(port); profile "bare: Health/Check" $HEALTH health "" -- "$bin/bare_server" "127.0.0.1:$P"
for case in "gateway: GetEvent, cache hit|$EVENT|get_event|" "gateway: Health/Check|$HEALTH|health|" \
    "gateway: GetEvent, no-cache|$EVENT|get_event|cache-control: no-cache"; do
    IFS='|' read -r name path file header <<<"$case"
    P=$(port)
    vars=(GATEWAY_LISTEN="127.0.0.1:$P" FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP"
        FINGERPRINT_SECRET_API_KEY=bench-key GATEWAY_CACHE_TTL_GET_EVENT=1h)
    profile "$name" "$path" "$file" "$header" -- "$bin/fingerprint-gateway"
done
for case in "traced: GetEvent, cache hit|$EVENT|get_event|" \
    "traced: GetEvent, no-cache|$EVENT|get_event|cache-control: no-cache"; do
    IFS='|' read -r name path file header <<<"$case"
    P=$(port)
    vars=(GATEWAY_LISTEN="127.0.0.1:$P" FINGERPRINT_API_BASE_URL="http://127.0.0.1:$UP"
        FINGERPRINT_SECRET_API_KEY=bench-key GATEWAY_CACHE_TTL_GET_EVENT=1h
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK")
    SETTLE=8 profile "gateway $name" "$path" "$file" "$header" -- "$bin/fingerprint-gateway"
done
echo "spans the receiver got: $(curl -s "http://127.0.0.1:$COUNT/count")"
