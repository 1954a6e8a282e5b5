//! The gateway binary as a process, and the external tools some tests drive.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fingerprint-gateway");

/// A command for the binary with a clean environment: nothing from the developer's
/// shell leaks into a test.
pub fn gateway(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args).envs(env.iter().copied());
    cmd
}

/// A free loopback address.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until something accepts connections on `addr`; fails the test if `child`
/// (`what`) exits first or `within` passes.
pub fn wait_for_listener(child: &mut Child, addr: SocketAddr, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(addr).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{what} exited early");
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running gateway process, killed when dropped (so a failing test leaves none).
pub struct Running {
    /// The process.
    pub child: Child,
    /// Where it serves gRPC.
    pub addr: SocketAddr,
}

impl Running {
    /// Starts `fingerprint-gateway --sandbox` on a free port with `env`, and waits until
    /// it listens.
    pub fn sandbox(env: &[(&str, &str)]) -> Self {
        let addr = free_port();
        let child = gateway(&["--sandbox", "--listen", &addr.to_string()], env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut running = Self { child, addr };
        running.wait_until_listening();
        running
    }

    /// Waits until the gateway accepts connections.
    pub fn wait_until_listening(&mut self) {
        wait_for_listener(
            &mut self.child,
            self.addr,
            "gateway",
            Duration::from_secs(20),
        );
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails the test unless an external tool is usable, by running `probe`. The tests
/// that call this are `#[ignore]`d, naming what they need; `.ci/install` installs it
/// all, and `cargo test -- --include-ignored` (what CI runs) runs them.
pub fn require_tool(what: &str, probe: &mut Command, install: &str) {
    let ready = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ready, "{what} is missing: {install}");
}

/// Runs `cmd` in `dir` and fails with its output unless it succeeds.
pub fn run_ok(what: &str, cmd: &mut Command, dir: &Path) -> Output {
    let out = cmd.current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
