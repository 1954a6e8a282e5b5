//! Configuration: flags, then environment, then an optional TOML file, then defaults.
//!
//! Every setting is one row of [`SETTINGS`]: its name (the environment variable; the
//! TOML key is the same in lower case), its default, how its text is read ([`Kind`]),
//! its flag if it has one, and what it means. Parsing, the `--help` text and the
//! configuration table in `docs/configuration.md` are all derived from that table (a
//! test compares the file with it), so every default is written once. Secrets have no flag, so they never
//! show in a process listing.

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use reqwest::Url;

use crate::cidr::Cidr;
use crate::rpc::Rpc;

mod file;
mod read;
mod settings;
mod values;

use file::read_file;
pub use settings::{Kind, SETTINGS, Setting, setting_named, settings_help, settings_table};
pub use values::{FILE_VARIANTS, parse_rates, sealed_keys_from, webhook_secrets_from};
use values::{Values, check_url, invalid, parse_sealed_key};

/// A configuration problem, reported before any port is bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("{name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TOML file names a setting that does not exist.
    #[error("config file {path}: unknown setting {key:?}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// Nothing to serve.
    #[error(
        "no upstream configured: set FINGERPRINT_SECRET_API_KEY and/or STYTCH_PROJECT_ID + STYTCH_SECRET, or run with --sandbox"
    )]
    NothingToServe,
}

/// A secret value: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// A 256-bit key that decrypts sealed client results; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey(pub [u8; 32]);

/// fingerprint.com Server API generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Server API v3 (`/events/{id}`, `/visitors/{id}`, `Auth-API-Key`).
    V3,
    /// Server API v4 (`/v4/events`, `Authorization: Bearer`).
    V4,
}

/// Settings of the fingerprint.com client.
#[derive(Debug, Clone)]
pub struct FingerprintConfig {
    /// API generation.
    pub generation: Generation,
    /// Scheme, host and optional path prefix; the client appends `/v4/events` etc.
    pub base_url: Url,
    /// Secret API key.
    pub secret_api_key: Secret,
}

/// Settings of the Stytch client.
#[derive(Debug, Clone)]
pub struct StytchConfig {
    /// Base URL; the client appends `/v1/...`.
    pub base_url: Url,
    /// Project id (HTTP Basic user).
    pub project_id: String,
    /// Secret (HTTP Basic password).
    pub secret: Secret,
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Bound on the summed size of cached answers; 0 disables caching.
    pub max_bytes: u64,
    /// TTL of GetEvent answers.
    pub get_event: Duration,
    /// TTL of GetVisits answers.
    pub get_visits: Duration,
    /// TTL of SearchEvents answers.
    pub search_events: Duration,
    /// TTL of LookupTelemetry answers.
    pub lookup_telemetry: Duration,
    /// TTL of ListRules answers.
    pub list_rules: Duration,
    /// TTL of ListVerdictReasons answers.
    pub list_verdict_reasons: Duration,
    /// TTL of NOT_FOUND answers.
    pub not_found: Duration,
    /// How long past its TTL a success may be served stale, per RPC.
    pub stale_if_error: PerRpc,
}

/// A duration per RPC: one for all, with overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PerRpc {
    /// The duration of RPCs without an override.
    pub default: Duration,
    /// Overrides, by RPC.
    pub overrides: Vec<(Rpc, Duration)>,
}

/// One rate rule: at most `count` calls per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// Calls allowed at once (at least 1).
    pub burst: u32,
}

/// How the gateway behaves when an upstream slows down or fails.
#[derive(Debug, Clone)]
pub struct ResilienceConfig {
    /// Deadline of calls that set none.
    pub default_deadline: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time for one attempt.
    pub attempt_timeout: Duration,
    /// Attempts per read, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry (doubling, full jitter).
    pub backoff: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Retries as a fraction of recent calls.
    pub budget_ratio: f32,
    /// Retries per second allowed regardless of the ratio.
    pub budget_min_per_second: u32,
    /// The circuit breakers' settings.
    pub breaker: BreakerConfig,
    /// The limit on fingerprint.com calls.
    pub fingerprint_rate: Vec<Rate>,
    /// The extra limit on fingerprint.com deletes.
    pub fingerprint_delete_rate: Vec<Rate>,
    /// The limit on Stytch calls.
    pub stytch_rate: Vec<Rate>,
    /// RPCs worked on at once.
    pub max_in_flight: usize,
    /// Client connections served at once.
    pub max_connections: usize,
    /// HTTP/2 streams one connection may hold open.
    pub max_streams_per_connection: u32,
}

/// Circuit breaker settings (one breaker per upstream).
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failure rate that opens the breaker.
    pub failure_ratio: f64,
    /// The sliding window.
    pub window: Duration,
    /// Calls the window must hold before judging; 0 disables the breaker.
    pub min_calls: u32,
    /// How long it stays open.
    pub open_for: Duration,
    /// Probes let through at once while half-open.
    pub probes: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Telemetry settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint; `None` disables export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of spans.
    pub service_name: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Which traces are recorded when exporting.
    pub sampler: TraceSampler,
}

/// The trace sampler (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSampler {
    /// A call with a `traceparent` follows the caller's decision.
    pub parent_based: bool,
    /// The decision for calls that start a trace.
    pub root: RootSampling,
}

/// How calls that start a trace are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampling {
    /// Every one.
    Always,
    /// None.
    Never,
    /// This fraction, 0 to 1.
    Ratio(f64),
}

impl Default for TraceSampler {
    fn default() -> Self {
        Self {
            parent_based: true,
            root: RootSampling::Always,
        }
    }
}

/// The whole configuration of the gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Serve against the embedded emulator.
    pub sandbox: bool,
    /// Where the embedded emulator listens.
    pub sandbox_listen: SocketAddr,
    /// The embedded emulator's fault rules at start-up, as given (a JSON list or
    /// `@FILE`); the sandbox reads them.
    pub sandbox_faults: Option<String>,
    /// Where Prometheus metrics are served; `None` disables them.
    pub metrics_listen: Option<SocketAddr>,
    /// fingerprint.com; `None` when disabled.
    pub fingerprint: Option<FingerprintConfig>,
    /// Stytch; `None` when disabled.
    pub stytch: Option<StytchConfig>,
    /// fingerprint.com API generation, kept even when the upstream is disabled (sandbox uses it).
    pub fingerprint_generation: Generation,
    /// Deadlines, retries, breakers, limits.
    pub resilience: ResilienceConfig,
    /// Largest upstream body accepted.
    pub max_body_bytes: usize,
    /// Cache settings.
    pub cache: CacheConfig,
    /// Drain period on shutdown.
    pub shutdown_grace: Duration,
    /// Telemetry settings.
    pub telemetry: TelemetryConfig,
    /// Keys for sealed client results, in the order they are tried.
    pub sealed_result_keys: Vec<SealedKey>,
    /// Secrets for webhook signatures.
    pub webhook_secrets: Vec<Secret>,
    /// The Redis shared by the replicas, if any.
    pub redis: Option<RedisConfig>,
    /// Identities and the policy.
    pub auth: AuthConfig,
    /// TLS on the listener, if on.
    pub tls: Option<TlsConfig>,
    /// Serve server reflection.
    pub reflection: bool,
    /// Where the audit trail goes.
    pub audit_log: String,
    /// Secret settings read from files (watched and rotated live): setting, path.
    pub secret_files: Vec<(&'static str, std::path::PathBuf)>,
    /// Age after which a client connection is asked to reconnect.
    pub max_connection_age: Duration,
    /// Time calls on such a connection may still take.
    pub max_connection_age_grace: Duration,
    /// The edge bot defense (AnalyzeRequest's blanked headers, ext_authz, forward-auth).
    pub edge: EdgeConfig,
}

/// The edge bot defense's settings (read by `screen`).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Header names sent to `/v4/edge` with an empty value, besides the fixed ones
    /// (lower case).
    pub blank_headers: Vec<String>,
    /// The policy file; unset, no decisions are served.
    pub policy_file: Option<PathBuf>,
    /// Longest wait for the vendor per decision.
    pub budget: Duration,
    /// Refuse (rather than pass) when no analysis arrives in time.
    pub fail_closed: bool,
    /// HTTP status of a refusal.
    pub deny_status: u16,
    /// Proxies whose forwarded addresses and headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The forward-auth HTTP listener.
    pub http_listen: Option<SocketAddr>,
}

/// Which mesh's forwarded identity to trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesh {
    /// None: mesh headers are ignored.
    None,
    /// Envoy / Istio: `x-forwarded-client-cert`, its `URI=`.
    Envoy,
    /// Linkerd: `l5d-client-id`.
    Linkerd,
}

/// How callers are identified and checked (read by `auth`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Refuse calls without an identity or permission.
    pub enforce: bool,
    /// The policy file.
    pub policy_file: Option<PathBuf>,
    /// The mesh whose forwarded identity is trusted.
    pub mesh: Mesh,
    /// Peers (the sidecar) whose mesh headers are trusted.
    pub mesh_peers: Vec<Cidr>,
}

/// TLS on the gRPC listener (read by `tls`): the files, not what they hold.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (mTLS), PEM.
    pub client_ca: Option<PathBuf>,
}

/// The shared cache and quota's Redis.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (may hold a password: never shown).
    pub url: Secret,
    /// The password from `GATEWAY_REDIS_PASSWORD_FILE`, if set.
    pub password: Option<Secret>,
    /// Key and channel prefix.
    pub prefix: String,
    /// AES-256-GCM key for values, if set.
    pub encryption_key: Option<SealedKey>,
    /// PEM CA certificates that sign a `rediss://` server's certificate, if not the
    /// public web roots.
    pub ca: Option<Vec<u8>>,
    /// Longest wait for one operation.
    pub timeout: Duration,
    /// How long the in-memory cache is trusted without a confirmed subscription.
    pub lease: Duration,
    /// Share of each rate limit allowed while Redis is down.
    pub local_quota_share: f64,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<hidden>")
            .field("prefix", &self.prefix)
            .field("encrypted", &self.encryption_key.is_some())
            .field("private_ca", &self.ca.is_some())
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .field("local_quota_share", &self.local_quota_share)
            .finish_non_exhaustive()
    }
}

/// Where setting values come from, highest priority first.
pub struct Sources<'a> {
    /// Values given as flags, by setting name.
    pub flags: HashMap<&'static str, String>,
    /// The environment (injectable: tests pass a map, `main` passes `std::env::var`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
}

// === impl Secret ===

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that puts it in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

// === impl SealedKey ===

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedKey([redacted])")
    }
}

// === impl Generation ===

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3 => "v3",
            Self::V4 => "v4",
        })
    }
}

// === impl Config ===

impl Config {
    /// Reads the configuration from its sources.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let file = match &sources.file {
            Some(path) => read_file(path)?,
            None => HashMap::new(),
        };
        let get = |name: &'static str| -> Option<String> {
            sources
                .flags
                .get(name)
                .cloned()
                .or_else(|| (sources.env)(name))
                .or_else(|| file.get(name).cloned())
                .filter(|v| !v.trim().is_empty())
        };
        Self::from_lookup(&get)
    }
}

// === impl PerRpc ===

impl PerRpc {
    /// The duration for `rpc`.
    pub fn get(&self, rpc: Rpc) -> Duration {
        self.overrides
            .iter()
            .rev()
            .find(|(r, _)| *r == rpc)
            .map_or(self.default, |(_, d)| *d)
    }
}

#[cfg(test)]
mod tests;
