//! The binary as an operator runs it: configuration errors, sandbox mode, SIGTERM, and
//! a black-box Python client that only knows the address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::process::{Running, free_port, gateway};

#[test]
fn no_upstream_and_no_sandbox_exits_with_usage_code() {
    let out = gateway(&[], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("--sandbox") && err.contains("FINGERPRINT_SECRET_API_KEY"),
        "{err}"
    );
}

#[test]
fn bad_setting_exits_with_usage_code_before_binding() {
    let addr = free_port();
    let out = gateway(
        &["--sandbox", "--listen", &addr.to_string()],
        &[("FINGERPRINT_REGION", "mars")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FINGERPRINT_REGION"));
}

#[test]
fn sandbox_serves_and_sigterm_stops_cleanly() {
    let mut running = Running::sandbox(&[]);
    let addr = running.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "fingerprint.gateway.v1.FingerprintService".to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    running.sigterm();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = running.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// A Python client that knows only the address: it finds the services by reflection,
/// calls them, and reads the rich error details.
#[test]
#[ignore = "needs python3 with grpcio, grpcio-reflection and grpcio-status (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn a_black_box_python_client_finds_and_calls_the_services_by_reflection() {
    common::process::require_tool(
        "python3 with grpcio",
        Command::new("python3").args(["-c", "import grpc, grpc_reflection, google.rpc.status_pb2"]),
        "pip install -r tests/requirements.txt",
    );
    let running = Running::sandbox(&[]);
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/blackbox/smoke.py"
        ))
        .arg(running.addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "black-box client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
