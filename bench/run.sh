#!/usr/bin/env bash
# Throughput and latency of the gateway, measured with h2load against a release build in
# sandbox mode. The baseline, measured in the same run against the same server, is the
# gRPC health Check: a tiny precomputed answer, so the ratio shows what GetEvent's work
# (cache lookup, a ~3 KB event, metadata) costs on top of tonic itself.
#
#   bench/run.sh [REQUESTS]      (default 1000000; shorter runs scatter widely)
#
# Needs h2load (Debian package nghttp2-client; installed if missing and root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
if ! command -v h2load >/dev/null; then
  apt-get install -y -qq nghttp2-client >/dev/null
fi
cargo build --release --quiet
PORT=${PORT:-50599}
GATEWAY_CACHE_TTL_GET_EVENT=1h ./target/release/fingerprint-gateway --sandbox --listen 127.0.0.1:$PORT >/tmp/fpgw-bench.log 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

dir=$(mktemp -d)
# gRPC frames: 1 byte flag, 4 bytes length, protobuf message.
python3 - "$dir" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(msg): return b"\0" + struct.pack(">I", len(msg)) + msg
def string_field(n, s): b = s.encode(); return bytes([n << 3 | 2, len(b)]) + b
open(f"{d}/health", "wb").write(frame(b""))
open(f"{d}/get_event", "wb").write(frame(string_field(1, "1770000000000.abcdef")))
PY

run() { # name path file concurrency streams requests [extra h2load args]
  local name=$1 path=$2 file=$3 c=$4 m=$5 n=$6; shift 6
  local out
  out=$(h2load -n "$n" -c "$c" -m "$m" -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
        -d "$file" "http://127.0.0.1:$PORT$path" 2>&1)
  local rps ok p50 p99
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
  read -r p50 p99 < <(python3 - "$out" <<'PY'
import re, sys
m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", sys.argv[1])
print(m.group(3) if m else "?", m.group(2) if m else "?")
PY
)
  printf '%-34s %6s in flight  %10s req/s  mean %-9s max %-9s (%s ok)\n' "$name" "$((c*m))" "$rps" "$p50" "$p99" "$ok"
}

# Warm the cache entry the hit runs read.
h2load -n 10 -c 1 -m 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$dir/get_event" \
  "http://127.0.0.1:$PORT/fingerprint.gateway.v1.FingerprintService/GetEvent" >/dev/null

HEALTH=/grpc.health.v1.Health/Check
EVENT=/fingerprint.gateway.v1.FingerprintService/GetEvent
for load in "16 32" "4 16" "1 1"; do
  read -r c m <<<"$load"
  n=$N; [ "$c" = 1 ] && n=$((N / 10))
  run "baseline: Health/Check" $HEALTH "$dir/health" "$c" "$m" "$n"
  run "GetEvent, cache hit" $EVENT "$dir/get_event" "$c" "$m" "$n"
done
# The miss path: every call goes to the sandbox over HTTP (and the sandbox builds the event).
run "GetEvent, no-cache (upstream call)" $EVENT "$dir/get_event" 16 8 $((N / 20)) -H 'cache-control: no-cache'
