//! The binary as an operator runs it: configuration errors, sandbox mode, SIGTERM, and
//! a black-box Python client that only knows the address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_fingerprint-gateway");

fn gateway(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    // A clean environment: nothing from the developer's shell leaks into the test.
    cmd.env_clear().args(args).envs(env.iter().copied());
    cmd
}

/// Kills the gateway if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_for(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "gateway exited early");
        assert!(
            Instant::now() < deadline,
            "gateway did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

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
    let addr = free_port();
    let mut running = Running(
        gateway(&["--sandbox", "--listen", &addr.to_string()], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut running.0;
    wait_for(addr, child);
    blackbox(addr);
    sigterm(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// Runs the Python reflection client, when Python has grpcio (required in CI).
fn blackbox(addr: SocketAddr) {
    let ready = Command::new("python3")
        .args(["-c", "import grpc, grpc_reflection, google.rpc.status_pb2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        if std::env::var("FPGW_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
            panic!(
                "FPGW_REQUIRE_PYTHON=1 but python3 with grpcio is missing: pip install -r tests/requirements.txt"
            );
        }
        eprintln!(
            "SKIPPED black-box part: python3 with grpcio not found (pip install -r tests/requirements.txt)"
        );
        return;
    }
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/blackbox/smoke.py"
        ))
        .arg(addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "black-box client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
