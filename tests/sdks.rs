//! The official fingerprint.com SDKs parse every answer the sandbox gives: the Python
//! SDKs of both generations (`fingerprint-server-sdk` for v4,
//! `fingerprint-pro-server-api-sdk` for v3) and the Node SDK (`@fingerprint/node-sdk`,
//! v4). Each runs against a fresh sandbox: successes, pages, writes, booleans in the
//! SDKs' own spellings (Python's `True`), and every error the sandbox answers, each of
//! which must become the SDK's typed error with its parsed code. A sandbox answer that
//! an official client cannot read would teach users a shape the vendor never sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use fingerprint_gateway::sandbox::{Credentials, Sandbox};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `program script BASE KEY` against a fresh sandbox and returns its output,
/// failing the test with it unless the script succeeds.
async fn against_sandbox(program: &str, script: &str) -> String {
    let creds = Credentials::default();
    let sandbox = Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        creds.clone(),
    )
    .unwrap();
    let base = sandbox.base_url();
    let (program, script) = (program.to_owned(), format!("{ROOT}/{script}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .arg(script)
            .arg(base)
            .arg(creds.fingerprint_secret)
            .current_dir(ROOT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the official Python SDKs (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
async fn the_official_python_sdks_of_both_generations_parse_every_sandbox_answer() {
    common::process::require_tool(
        "python3 with fingerprint-server-sdk and fingerprint-pro-server-api-sdk",
        Command::new("python3").args([
            "-c",
            "import fingerprint_server_sdk, fingerprint_pro_server_api_sdk",
        ]),
        "pip install -r tests/requirements.txt",
    );
    let out = against_sandbox("python3", "tests/sdk/python_sdks.py").await;
    assert!(out.contains("python sdks: 31 calls ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and the official Node SDK (.ci/install: npm ci): cargo test -- --include-ignored"]
async fn the_official_node_sdk_parses_every_sandbox_answer() {
    common::process::require_tool(
        "node with @fingerprint/node-sdk",
        Command::new("node")
            .current_dir(ROOT)
            .args(["-e", "require.resolve('@fingerprint/node-sdk')"]),
        "npm ci",
    );
    let out = against_sandbox("node", "tests/sdk/node_sdk.mjs").await;
    assert!(out.contains("node sdk: 15 calls ok"), "{out}");
}
