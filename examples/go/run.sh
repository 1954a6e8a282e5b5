#!/usr/bin/env bash
# Generates the Go stubs of fingerprint.gateway.v1 from proto/ and runs main.go against
# a gateway: ./run.sh [HOST:PORT]
#
# The stubs' import path is the contract's go_package
# (github.com/fingerprint-gateway/fingerprint-gateway/gen/go/fingerprint/gateway/v1).
# They are generated into a temporary GOPATH (never committed), beside Debian's
# packaged Go modules (golang-google-grpc-dev, golang-google-genproto-dev,
# golang-google-protobuf-dev in /usr/share/gocode), so this works offline. In a module
# build, depend on google.golang.org/grpc and generate into your module instead.
# protoc comes from grpcio-tools (examples/python/requirements.txt); the plugins are
# Debian's protoc-gen-go and protoc-gen-go-grpc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
address=${1:-localhost:50051}
for tool in go protoc-gen-go protoc-gen-go-grpc; do
    command -v "$tool" >/dev/null || {
        echo "go example: $tool not found (Debian: golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-genproto-dev)" >&2
        exit 1
    }
done
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src"
python3 -m grpc_tools.protoc \
    -I "$proto" \
    --go_out="$gopath/src" \
    --go-grpc_out="$gopath/src" \
    "$proto"/fingerprint/gateway/v1/*.proto
mkdir -p "$gopath/src/example.com/gatewayclient"
cp "$here/main.go" "$gopath/src/example.com/gatewayclient/"
cd "$gopath/src/example.com/gatewayclient"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= go run . "$address"
