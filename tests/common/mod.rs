//! Test harness: a real sandbox upstream, the real gateway on 127.0.0.1:0, real clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod process;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use fingerprint_gateway::{
    config::{Config, Generation},
    proto::v1::{
        fingerprint_service_client::FingerprintServiceClient,
        stytch_service_client::StytchServiceClient,
    },
    sandbox::{Credentials, Sandbox},
    server,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// A gateway under test with its sandbox upstream.
pub struct Harness {
    pub sandbox: Sandbox,
    pub addr: std::net::SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), server::ServeError>>>,
}

/// Builds a config from setting name → value pairs (no process environment involved).
pub fn config(pairs: &[(&str, String)]) -> Config {
    let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, v.clone())).collect();
    Config::from_lookup(&move |name| map.get(name).cloned()).expect("valid test config")
}

/// Settings pointing both upstreams at `sandbox` with its credentials.
pub fn sandbox_settings(sandbox: &Sandbox, generation: Generation) -> Vec<(&'static str, String)> {
    let creds = Credentials::default();
    vec![
        ("GATEWAY_LISTEN", "127.0.0.1:0".to_owned()),
        ("FINGERPRINT_API_VERSION", generation.to_string()),
        ("FINGERPRINT_API_BASE_URL", sandbox.base_url()),
        ("FINGERPRINT_SECRET_API_KEY", creds.fingerprint_secret),
        ("STYTCH_API_BASE_URL", sandbox.base_url()),
        ("STYTCH_PROJECT_ID", creds.stytch_project_id),
        ("STYTCH_SECRET", creds.stytch_secret),
        ("GATEWAY_SHUTDOWN_GRACE", "5s".to_owned()),
    ]
}

impl Harness {
    /// Gateway (v4) against a fresh sandbox, default settings.
    pub async fn start() -> Self {
        Self::start_with(Generation::V4, &[]).await
    }

    /// Gateway against a fresh sandbox, with extra settings overriding the defaults.
    pub async fn start_with(generation: Generation, extra: &[(&'static str, String)]) -> Self {
        let sandbox = Sandbox::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Credentials::default(),
        )
        .unwrap();
        let mut settings = sandbox_settings(&sandbox, generation);
        settings.extend(extra.iter().cloned());
        Self::start_config(sandbox, config(&settings)).await
    }

    /// Gateway with an exact config, beside `sandbox` (whose exchanges are recorded).
    pub async fn start_config(sandbox: Sandbox, config: Config) -> Self {
        sandbox.control.record(1_000_000);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, config, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            sandbox,
            addr,
            channel,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn fingerprint(&self) -> FingerprintServiceClient<Channel> {
        FingerprintServiceClient::new(self.channel.clone())
    }

    pub fn stytch(&self) -> StytchServiceClient<Channel> {
        StytchServiceClient::new(self.channel.clone())
    }

    /// Requests the sandbox received so far.
    pub fn upstream_requests(&self) -> Vec<fingerprint_gateway::sandbox::Recorded> {
        self.sandbox.control.requests()
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_stop(&mut self) -> Option<JoinHandle<Result<(), server::ServeError>>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }
}

/// The `x-cache` metadata of an answer.
pub fn cache_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A request with `cache-control: no-cache`.
pub fn no_cache<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("cache-control", "no-cache".parse().unwrap());
    r
}

/// `../shared/fixtures`. The tests that read it are `#[ignore]`d (a fresh clone has no
/// `../shared`); run with `--include-ignored` where it is, as CI does, and a missing
/// folder fails the test.
pub fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        dir.is_dir(),
        "{} does not exist: this test reads the upstreams' published fixtures from ../shared beside the checkout",
        dir.display()
    );
    dir
}

/// Decodes the rich error details of a status.
pub fn details(status: &tonic::Status) -> tonic_types::ErrorDetails {
    use tonic_types::StatusExt;
    status.get_error_details()
}
