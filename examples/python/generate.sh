#!/usr/bin/env bash
# Generates the Python stubs of fingerprint.gateway.v1 from proto/ into gen/ (not
# committed) with grpcio-tools: `python3 -m pip install -r requirements.txt` first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
rm -rf "$here/gen"
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc \
    -I "$proto" \
    --python_out="$here/gen" \
    --pyi_out="$here/gen" \
    --grpc_python_out="$here/gen" \
    "$proto"/fingerprint/gateway/v1/*.proto
echo "generated $(find "$here/gen" -name '*.py' | wc -l) modules in $here/gen"
