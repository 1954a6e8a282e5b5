//! Configuration: flags, then environment, then an optional TOML file, then defaults.
//!
//! Every setting has one name. The environment variable is that name; the TOML key is
//! the same name in lower case (`fingerprint_region = "eu"`); some settings also have a
//! flag. Secrets have no flag, so they never show in a process listing.

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use reqwest::Url;

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";
/// Default time allowed for one upstream HTTP call.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest upstream body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Default cache size bound.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default time in-flight RPCs get to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Default Stytch DFP base URL.
pub const DEFAULT_STYTCH_BASE_URL: &str = "https://telemetry.stytch.com";

/// Every setting: name, default (as text, "" for none), and what it means.
/// The README's configuration table is written from this list.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "GATEWAY_LISTEN",
        DEFAULT_LISTEN,
        "gRPC listen address (flag --listen)",
    ),
    (
        "GATEWAY_METRICS_LISTEN",
        "",
        "address serving Prometheus metrics at /metrics, e.g. 0.0.0.0:9464; unset disables",
    ),
    (
        "GATEWAY_SANDBOX",
        "false",
        "serve against the embedded upstream emulator (flag --sandbox)",
    ),
    (
        "FINGERPRINT_SECRET_API_KEY",
        "",
        "fingerprint.com secret API key; unset disables FingerprintService",
    ),
    (
        "FINGERPRINT_API_VERSION",
        "v4",
        "fingerprint.com Server API generation: v4 or v3",
    ),
    (
        "FINGERPRINT_REGION",
        "global",
        "fingerprint.com region: global, eu or ap",
    ),
    (
        "FINGERPRINT_API_BASE_URL",
        "",
        "overrides the region's base URL (proxy, tests)",
    ),
    (
        "FINGERPRINT_SEALED_RESULT_KEYS",
        "",
        "comma-separated base64 AES-256 keys for UnsealEvent, tried in order",
    ),
    (
        "FINGERPRINT_WEBHOOK_SECRETS",
        "",
        "comma-separated secrets for VerifyWebhookSignature",
    ),
    (
        "STYTCH_PROJECT_ID",
        "",
        "Stytch project id; unset disables StytchService",
    ),
    (
        "STYTCH_SECRET",
        "",
        "Stytch secret; unset disables StytchService",
    ),
    (
        "STYTCH_API_BASE_URL",
        DEFAULT_STYTCH_BASE_URL,
        "Stytch DFP base URL",
    ),
    (
        "GATEWAY_UPSTREAM_TIMEOUT",
        "10s",
        "time allowed for one upstream HTTP call",
    ),
    (
        "GATEWAY_MAX_BODY_BYTES",
        "8388608",
        "largest upstream answer body accepted",
    ),
    (
        "GATEWAY_CACHE_MAX_BYTES",
        "67108864",
        "cache size bound in bytes (0 disables the cache)",
    ),
    (
        "GATEWAY_CACHE_TTL_GET_EVENT",
        "300s",
        "cache TTL of GetEvent answers",
    ),
    (
        "GATEWAY_CACHE_TTL_GET_VISITS",
        "30s",
        "cache TTL of GetVisits answers",
    ),
    (
        "GATEWAY_CACHE_TTL_SEARCH_EVENTS",
        "30s",
        "cache TTL of SearchEvents answers",
    ),
    (
        "GATEWAY_CACHE_TTL_LOOKUP_TELEMETRY",
        "60s",
        "cache TTL of LookupTelemetry answers",
    ),
    (
        "GATEWAY_CACHE_TTL_LIST_RULES",
        "30s",
        "cache TTL of ListRules answers",
    ),
    (
        "GATEWAY_CACHE_TTL_LIST_VERDICT_REASONS",
        "60s",
        "cache TTL of ListVerdictReasons answers",
    ),
    (
        "GATEWAY_CACHE_TTL_NOT_FOUND",
        "5s",
        "cache TTL of NOT_FOUND answers",
    ),
    (
        "GATEWAY_SHUTDOWN_GRACE",
        "20s",
        "time in-flight RPCs get to finish after SIGTERM/SIGINT",
    ),
    (
        "GATEWAY_LOG_FORMAT",
        "text",
        "log format: text or json (filter with RUST_LOG)",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP/gRPC collector; unset disables trace export",
    ),
    (
        "OTEL_SERVICE_NAME",
        "fingerprint-gateway",
        "service.name of exported spans",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        "which traces are exported: always_on, always_off, traceidratio, or parentbased_ with one of these",
    ),
    (
        "OTEL_TRACES_SAMPLER_ARG",
        "1.0",
        "the ratio of traceidratio samplers, 0 to 1",
    ),
];

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
    /// Where Prometheus metrics are served; `None` disables them.
    pub metrics_listen: Option<SocketAddr>,
    /// fingerprint.com; `None` when disabled.
    pub fingerprint: Option<FingerprintConfig>,
    /// Stytch; `None` when disabled.
    pub stytch: Option<StytchConfig>,
    /// fingerprint.com API generation, kept even when the upstream is disabled (sandbox uses it).
    pub fingerprint_generation: Generation,
    /// Time allowed for one upstream call.
    pub upstream_timeout: Duration,
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

    /// A configuration from one lookup function (flags, env and file already merged).
    pub fn from_lookup(get: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let listen = parse_with(get, "GATEWAY_LISTEN", DEFAULT_LISTEN, |s| {
            s.parse::<SocketAddr>().map_err(|e| e.to_string())
        })?;
        let sandbox = parse_bool(get, "GATEWAY_SANDBOX", false)?;
        let metrics_listen = get("GATEWAY_METRICS_LISTEN")
            .map(|s| {
                s.trim()
                    .parse::<SocketAddr>()
                    .map_err(|e| invalid("GATEWAY_METRICS_LISTEN", e.to_string()))
            })
            .transpose()?;
        let generation = parse_with(get, "FINGERPRINT_API_VERSION", "v4", |s| {
            match s.to_ascii_lowercase().as_str() {
                "v4" | "4" => Ok(Generation::V4),
                "v3" | "3" => Ok(Generation::V3),
                other => Err(format!("expected v4 or v3, got {other:?}")),
            }
        })?;
        let region_url = parse_with(get, "FINGERPRINT_REGION", "global", |s| {
            match s.to_ascii_lowercase().as_str() {
                "global" | "us" => Ok("https://api.fpjs.io"),
                "eu" => Ok("https://eu.api.fpjs.io"),
                "ap" | "asia" => Ok("https://ap.api.fpjs.io"),
                other => Err(format!("expected global, eu or ap, got {other:?}")),
            }
        })?;
        let fp_base = match get("FINGERPRINT_API_BASE_URL") {
            Some(url) => parse_url("FINGERPRINT_API_BASE_URL", &url)?,
            None => parse_url("FINGERPRINT_REGION", region_url)?,
        };
        let fingerprint = get("FINGERPRINT_SECRET_API_KEY").map(|key| FingerprintConfig {
            generation,
            base_url: fp_base,
            secret_api_key: Secret::new(key.trim()),
        });
        let stytch_base = parse_url(
            "STYTCH_API_BASE_URL",
            &get("STYTCH_API_BASE_URL").unwrap_or_else(|| DEFAULT_STYTCH_BASE_URL.to_owned()),
        )?;
        let stytch = match (get("STYTCH_PROJECT_ID"), get("STYTCH_SECRET")) {
            (Some(project_id), Some(secret)) => Some(StytchConfig {
                base_url: stytch_base,
                project_id: project_id.trim().to_owned(),
                secret: Secret::new(secret.trim()),
            }),
            (Some(_), None) => {
                return Err(invalid(
                    "STYTCH_SECRET",
                    "must be set with STYTCH_PROJECT_ID",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "STYTCH_PROJECT_ID",
                    "must be set with STYTCH_SECRET",
                ));
            }
            (None, None) => None,
        };
        let cache = CacheConfig {
            max_bytes: parse_with(get, "GATEWAY_CACHE_MAX_BYTES", "67108864", parse_num)?,
            get_event: duration(get, "GATEWAY_CACHE_TTL_GET_EVENT", "300s")?,
            get_visits: duration(get, "GATEWAY_CACHE_TTL_GET_VISITS", "30s")?,
            search_events: duration(get, "GATEWAY_CACHE_TTL_SEARCH_EVENTS", "30s")?,
            lookup_telemetry: duration(get, "GATEWAY_CACHE_TTL_LOOKUP_TELEMETRY", "60s")?,
            list_rules: duration(get, "GATEWAY_CACHE_TTL_LIST_RULES", "30s")?,
            list_verdict_reasons: duration(get, "GATEWAY_CACHE_TTL_LIST_VERDICT_REASONS", "60s")?,
            not_found: duration(get, "GATEWAY_CACHE_TTL_NOT_FOUND", "5s")?,
        };
        let upstream_timeout = duration(get, "GATEWAY_UPSTREAM_TIMEOUT", "10s")?;
        if upstream_timeout.is_zero() {
            return Err(invalid(
                "GATEWAY_UPSTREAM_TIMEOUT",
                "must be greater than zero",
            ));
        }
        let max_body_bytes = parse_with(get, "GATEWAY_MAX_BODY_BYTES", "8388608", parse_num)?;
        if max_body_bytes < 1024 {
            return Err(invalid("GATEWAY_MAX_BODY_BYTES", "must be at least 1024"));
        }
        let log_format = parse_with(get, "GATEWAY_LOG_FORMAT", "text", |s| {
            match s.to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("expected text or json, got {other:?}")),
            }
        })?;
        let sealed_result_keys = list(get("FINGERPRINT_SEALED_RESULT_KEYS"))
            .iter()
            .enumerate()
            .map(|(i, key)| parse_sealed_key(i, key))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook_secrets = list(get("FINGERPRINT_WEBHOOK_SECRETS"))
            .into_iter()
            .map(Secret::new)
            .collect();
        let config = Self {
            listen,
            sandbox,
            metrics_listen,
            fingerprint,
            stytch,
            fingerprint_generation: generation,
            upstream_timeout,
            max_body_bytes,
            cache,
            shutdown_grace: duration(get, "GATEWAY_SHUTDOWN_GRACE", "20s")?,
            telemetry: TelemetryConfig {
                otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                service_name: get("OTEL_SERVICE_NAME")
                    .unwrap_or_else(|| "fingerprint-gateway".to_owned()),
                log_format,
                sampler: sampler(get)?,
            },
            sealed_result_keys,
            webhook_secrets,
        };
        if !config.sandbox && config.fingerprint.is_none() && config.stytch.is_none() {
            return Err(ConfigError::NothingToServe);
        }
        Ok(config)
    }
}

fn sampler(get: &dyn Fn(&'static str) -> Option<String>) -> Result<TraceSampler, ConfigError> {
    let ratio = parse_with(get, "OTEL_TRACES_SAMPLER_ARG", "1.0", |s| {
        s.parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("expected a ratio from 0 to 1, got {s:?}"))
    })?;
    parse_with(get, "OTEL_TRACES_SAMPLER", "parentbased_always_on", |s| {
        let lower = s.to_ascii_lowercase();
        let (parent_based, root) = match lower.strip_prefix("parentbased_") {
            Some(root) => (true, root.to_owned()),
            None => (false, lower),
        };
        let root = match root.as_str() {
            "always_on" => RootSampling::Always,
            "always_off" => RootSampling::Never,
            "traceidratio" => RootSampling::Ratio(ratio),
            _ => {
                return Err(format!(
                    "expected always_on, always_off, traceidratio or parentbased_ with one of these, got {s:?}"
                ));
            }
        };
        Ok(TraceSampler { parent_based, root })
    })
}

/// Splits a comma-separated list; empty entries are dropped (an empty secret is no secret).
fn list(raw: Option<String>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_sealed_key(index: usize, raw: &str) -> Result<SealedKey, ConfigError> {
    use base64::{
        Engine, alphabet,
        engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    };
    // Keys are shown with the standard or URL-safe alphabet, padded or not; like the
    // official SDKs, non-zero trailing bits are accepted.
    let lenient = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let bytes = [alphabet::STANDARD, alphabet::URL_SAFE]
        .iter()
        .find_map(|a| GeneralPurpose::new(a, lenient).decode(raw).ok())
        .ok_or_else(|| {
            invalid(
                "FINGERPRINT_SEALED_RESULT_KEYS",
                format!("key {} is not base64", index + 1),
            )
        })?;
    let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        invalid(
            "FINGERPRINT_SEALED_RESULT_KEYS",
            format!(
                "key {} is {} bytes; AES-256 keys are 32",
                index + 1,
                b.len()
            ),
        )
    })?;
    Ok(SealedKey(key))
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn parse_with<T>(
    get: &dyn Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default.to_owned());
    parse(raw.trim()).map_err(|reason| invalid(name, reason))
}

fn parse_bool(
    get: &dyn Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    let default = if default { "true" } else { "false" };
    parse_with(get, name, default, |s| {
        match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(format!("expected true or false, got {other:?}")),
        }
    })
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse::<T>()
        .map_err(|_| format!("expected a whole number, got {s:?}"))
}

fn duration(
    get: &dyn Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    parse_with(get, name, default, |s| {
        // A bare number means seconds.
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        humantime::parse_duration(s).map_err(|e| format!("expected a duration such as 30s: {e}"))
    })
}

fn parse_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| invalid(name, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(name, "must be an http or https URL"));
    }
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            name,
            "must be a base URL without query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(name, "must not carry credentials"));
    }
    Ok(url)
}

/// Reads the TOML file into setting name → value text.
fn read_file(path: &PathBuf) -> Result<HashMap<&'static str, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.clone(),
            reason: e.message().to_owned(),
        })?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let Some(name) = SETTINGS
            .iter()
            .map(|(name, _, _)| *name)
            .find(|name| name.eq_ignore_ascii_case(&key))
        else {
            return Err(ConfigError::UnknownKey {
                path: path.clone(),
                key,
            });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: format!("{key}: unsupported value {other}"),
                });
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| map.get(name).cloned();
        Config::load(&Sources {
            flags: HashMap::new(),
            env: &env,
            file: None,
        })
    }

    #[test]
    fn readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for (name, _, _) in SETTINGS {
            assert!(readme.contains(&format!("`{name}`")), "README lacks {name}");
        }
    }

    #[test]
    fn nothing_configured_is_an_error() {
        assert!(matches!(load(&[]), Err(ConfigError::NothingToServe)));
    }

    #[test]
    fn region_picks_the_base_url_and_secret_is_redacted() {
        let c = load(&[
            ("FINGERPRINT_SECRET_API_KEY", "sk_live"),
            ("FINGERPRINT_REGION", "eu"),
        ])
        .unwrap();
        let fp = c.fingerprint.unwrap();
        assert_eq!(fp.base_url.as_str(), "https://eu.api.fpjs.io/");
        assert_eq!(fp.generation, Generation::V4);
        assert!(!format!("{fp:?}").contains("sk_live"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(&[("GATEWAY_SANDBOX", "1"), ("FINGERPRINT_API_VERSION", "v5")]).unwrap_err();
        assert!(
            err.to_string().starts_with("FINGERPRINT_API_VERSION"),
            "{err}"
        );
        let err = load(&[
            ("GATEWAY_SANDBOX", "1"),
            ("GATEWAY_UPSTREAM_TIMEOUT", "soon"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().starts_with("GATEWAY_UPSTREAM_TIMEOUT"),
            "{err}"
        );
        let err = load(&[("STYTCH_PROJECT_ID", "p")]).unwrap_err();
        assert!(err.to_string().starts_with("STYTCH_SECRET"), "{err}");
    }

    #[test]
    fn sealed_keys_and_webhook_secrets_are_lists() {
        let key = "p2PA7MGy5tx56cnyJaFZMr96BCFwZeHjZV2EqMvTq53=";
        let c = load(&[
            ("GATEWAY_SANDBOX", "1"),
            ("FINGERPRINT_SEALED_RESULT_KEYS", &format!("{key}, {key}")),
            ("FINGERPRINT_WEBHOOK_SECRETS", "whsec_first,,whsec_second"),
        ])
        .unwrap();
        assert_eq!(c.sealed_result_keys.len(), 2);
        assert_eq!(c.webhook_secrets.len(), 2);
        assert!(!format!("{c:?}").contains("whsec_first"));
        let err = load(&[
            ("GATEWAY_SANDBOX", "1"),
            ("FINGERPRINT_SEALED_RESULT_KEYS", "c2hvcnQ="),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
    }

    #[test]
    fn toml_lists_are_arrays_or_strings() {
        let dir = std::env::temp_dir().join(format!("fpgw-config-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            "gateway_sandbox = true\nfingerprint_webhook_secrets = [\"whsec_a\", \"whsec_b\"]\n",
        )
        .unwrap();
        let env = |_: &str| None;
        let c = Config::load(&Sources {
            flags: HashMap::new(),
            env: &env,
            file: Some(path),
        })
        .unwrap();
        assert_eq!(c.webhook_secrets.len(), 2);
        assert_eq!(c.webhook_secrets[1].expose(), "whsec_b");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = std::env::temp_dir().join(format!("fpgw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, "gateway_sandbox = true\nfingerprint_region = \"ap\"\ngateway_listen = \"127.0.0.1:1\"\n").unwrap();
        let env = |name: &str| (name == "GATEWAY_LISTEN").then(|| "127.0.0.1:2".to_owned());
        let c = Config::load(&Sources {
            flags: HashMap::from([("GATEWAY_LISTEN", "127.0.0.1:3".to_owned())]),
            env: &env,
            file: Some(path.clone()),
        })
        .unwrap();
        assert_eq!(c.listen.port(), 3);
        assert!(c.sandbox);
        let c = Config::load(&Sources {
            flags: HashMap::new(),
            env: &env,
            file: Some(path.clone()),
        })
        .unwrap();
        assert_eq!(c.listen.port(), 2);
        std::fs::write(&path, "gateway_sandbx = true\n").unwrap();
        let err = Config::load(&Sources {
            flags: HashMap::new(),
            env: &env,
            file: Some(path),
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
    }
}
