//! How the merged values become a [`Config`]: every section read, and checked against
//! the settings it depends on.

use super::*;

impl Config {
    /// A configuration from one lookup function (flags, env and file already merged).
    pub fn from_lookup(get: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Values { get };
        let generation = match v.word("FINGERPRINT_API_VERSION")?.as_str() {
            "v3" => Generation::V3,
            _ => Generation::V4,
        };
        let region_url = match v.word("FINGERPRINT_REGION")?.as_str() {
            "eu" => "https://eu.api.fpjs.io",
            "ap" => "https://ap.api.fpjs.io",
            _ => "https://api.fpjs.io",
        };
        let fp_base = match v.url_opt("FINGERPRINT_API_BASE_URL")? {
            Some(url) => url,
            None => check_url("FINGERPRINT_REGION", region_url)?,
        };
        let fingerprint = v
            .text_opt("FINGERPRINT_SECRET_API_KEY")?
            .map(|key| FingerprintConfig {
                generation,
                base_url: fp_base,
                secret_api_key: Secret::new(key),
            });
        let stytch = match (
            v.text_opt("STYTCH_PROJECT_ID")?,
            v.text_opt("STYTCH_SECRET")?,
        ) {
            (Some(project_id), Some(secret)) => Some(StytchConfig {
                base_url: v.url("STYTCH_API_BASE_URL")?,
                project_id,
                secret: Secret::new(secret),
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
            max_bytes: v.count("GATEWAY_CACHE_MAX_BYTES")?,
            get_event: v.duration("GATEWAY_CACHE_TTL_GET_EVENT")?,
            get_visits: v.duration("GATEWAY_CACHE_TTL_GET_VISITS")?,
            search_events: v.duration("GATEWAY_CACHE_TTL_SEARCH_EVENTS")?,
            lookup_telemetry: v.duration("GATEWAY_CACHE_TTL_LOOKUP_TELEMETRY")?,
            list_rules: v.duration("GATEWAY_CACHE_TTL_LIST_RULES")?,
            list_verdict_reasons: v.duration("GATEWAY_CACHE_TTL_LIST_VERDICT_REASONS")?,
            not_found: v.duration("GATEWAY_CACHE_TTL_NOT_FOUND")?,
            stale_if_error: v.per_rpc("GATEWAY_CACHE_STALE_IF_ERROR")?,
        };
        let resilience = resilience(&v)?;
        let max_body_bytes = usize::try_from(v.count("GATEWAY_MAX_BODY_BYTES")?)
            .map_err(|_| invalid("GATEWAY_MAX_BODY_BYTES", "is too large"))?;
        if max_body_bytes < 1024 {
            return Err(invalid("GATEWAY_MAX_BODY_BYTES", "must be at least 1024"));
        }
        let log_format = match v.word("GATEWAY_LOG_FORMAT")?.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let sealed_result_keys = v
            .list("FINGERPRINT_SEALED_RESULT_KEYS")?
            .iter()
            .enumerate()
            .map(|(i, key)| parse_sealed_key(i, key))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook_secrets = v
            .list("FINGERPRINT_WEBHOOK_SECRETS")?
            .into_iter()
            .map(Secret::new)
            .collect();
        let sampler_word = v.word("OTEL_TRACES_SAMPLER")?;
        let ratio = v.ratio("OTEL_TRACES_SAMPLER_ARG")?;
        let (parent_based, root) = match sampler_word.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, sampler_word.as_str()),
        };
        let root = match root {
            "always_off" => RootSampling::Never,
            "traceidratio" => RootSampling::Ratio(ratio),
            _ => RootSampling::Always,
        };
        let config = Self {
            listen: v.address("GATEWAY_LISTEN")?,
            sandbox: v.bool("GATEWAY_SANDBOX")?,
            sandbox_listen: v.address("GATEWAY_SANDBOX_LISTEN")?,
            sandbox_faults: v.text_opt("GATEWAY_SANDBOX_FAULTS")?,
            metrics_listen: v.address_opt("GATEWAY_METRICS_LISTEN")?,
            fingerprint,
            stytch,
            fingerprint_generation: generation,
            resilience,
            max_body_bytes,
            cache,
            shutdown_grace: v.duration("GATEWAY_SHUTDOWN_GRACE")?,
            telemetry: TelemetryConfig {
                otlp_endpoint: v.text_opt("OTEL_EXPORTER_OTLP_ENDPOINT")?,
                service_name: v.text("OTEL_SERVICE_NAME")?,
                log_format,
                sampler: TraceSampler { parent_based, root },
            },
            sealed_result_keys,
            webhook_secrets,
            redis: redis_config(&v)?,
            secret_files: FILE_VARIANTS
                .iter()
                .filter(|(secret, _)| *secret != "GATEWAY_REDIS_ENCRYPTION_KEY")
                .filter_map(|(secret, file)| get(file).map(|p| (*secret, p.into())))
                .collect(),
            auth: auth_config(&v)?,
            tls: tls_config(&v)?,
            reflection: v.bool("GATEWAY_REFLECTION")?,
            audit_log: v.text("GATEWAY_AUDIT_LOG")?,
            max_connection_age: v.positive("GATEWAY_MAX_CONNECTION_AGE")?,
            max_connection_age_grace: v.positive("GATEWAY_MAX_CONNECTION_AGE_GRACE")?,
            edge: edge_config(&v)?,
        };
        if !config.sandbox && config.fingerprint.is_none() && config.stytch.is_none() {
            return Err(ConfigError::NothingToServe);
        }
        Ok(config)
    }
}

/// The resilience settings, checked against each other.
pub(super) fn resilience(v: &Values<'_>) -> Result<ResilienceConfig, ConfigError> {
    let small = |name: &'static str| -> Result<u32, ConfigError> {
        u32::try_from(v.count(name)?).map_err(|_| invalid(name, "is too large"))
    };
    let max_attempts = small("GATEWAY_RETRY_MAX_ATTEMPTS")?;
    if !(1..=10).contains(&max_attempts) {
        return Err(invalid("GATEWAY_RETRY_MAX_ATTEMPTS", "must be 1 to 10"));
    }
    let backoff = v.positive("GATEWAY_RETRY_BACKOFF")?;
    let backoff_max = v.positive("GATEWAY_RETRY_BACKOFF_MAX")?;
    if backoff_max < backoff {
        return Err(invalid(
            "GATEWAY_RETRY_BACKOFF_MAX",
            "must be at least GATEWAY_RETRY_BACKOFF",
        ));
    }
    let probes = small("GATEWAY_BREAKER_PROBES")?;
    if probes == 0 {
        return Err(invalid("GATEWAY_BREAKER_PROBES", "must be at least 1"));
    }
    let window = v.positive("GATEWAY_BREAKER_WINDOW")?;
    if window > Duration::from_secs(600) {
        return Err(invalid("GATEWAY_BREAKER_WINDOW", "must be at most 10m"));
    }
    let max_in_flight = usize::try_from(v.count("GATEWAY_MAX_IN_FLIGHT")?)
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| invalid("GATEWAY_MAX_IN_FLIGHT", "must be 1 to 1000000"))?;
    let max_connections = usize::try_from(v.count("GATEWAY_MAX_CONNECTIONS")?)
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| invalid("GATEWAY_MAX_CONNECTIONS", "must be 1 to 1000000"))?;
    let max_streams_per_connection = u32::try_from(v.count("GATEWAY_MAX_STREAMS_PER_CONNECTION")?)
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| invalid("GATEWAY_MAX_STREAMS_PER_CONNECTION", "must be 1 to 1000000"))?;
    Ok(ResilienceConfig {
        default_deadline: v.positive("GATEWAY_DEFAULT_DEADLINE")?,
        connect_timeout: v.positive("GATEWAY_UPSTREAM_CONNECT_TIMEOUT")?,
        attempt_timeout: v.positive("GATEWAY_UPSTREAM_TIMEOUT")?,
        max_attempts,
        backoff,
        backoff_max,
        budget_ratio: v.ratio("GATEWAY_RETRY_BUDGET")? as f32,
        budget_min_per_second: small("GATEWAY_RETRY_BUDGET_MIN_PER_SECOND")?,
        breaker: BreakerConfig {
            failure_ratio: v.ratio("GATEWAY_BREAKER_FAILURE_RATIO")?,
            window,
            min_calls: small("GATEWAY_BREAKER_MIN_CALLS")?,
            open_for: v.positive("GATEWAY_BREAKER_OPEN_FOR")?,
            probes,
        },
        fingerprint_rate: v.rates("FINGERPRINT_RATE_LIMIT")?,
        fingerprint_delete_rate: v.rates("FINGERPRINT_DELETE_RATE_LIMIT")?,
        stytch_rate: v.rates("STYTCH_RATE_LIMIT")?,
        max_in_flight,
        max_connections,
        max_streams_per_connection,
    })
}

/// Comma-separated CIDRs.
fn cidrs(v: &Values<'_>, name: &'static str) -> Result<Vec<Cidr>, ConfigError> {
    v.text(name)?
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| Cidr::parse(c).map_err(|e| invalid(name, format!("{c:?}: {e:?}"))))
        .collect()
}

pub(super) fn edge_config(v: &Values<'_>) -> Result<EdgeConfig, ConfigError> {
    let mut blank_headers = Vec::new();
    for name in v
        .text_opt("FINGERPRINT_EDGE_BLANK_HEADERS")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(
                "FINGERPRINT_EDGE_BLANK_HEADERS",
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        blank_headers.push(name.to_ascii_lowercase());
    }
    let deny_status = v.count("GATEWAY_EDGE_DENY_STATUS")?;
    if !(400..=599).contains(&deny_status) {
        return Err(invalid(
            "GATEWAY_EDGE_DENY_STATUS",
            "must be an HTTP error status, 400 to 599",
        ));
    }
    let config = EdgeConfig {
        blank_headers,
        policy_file: v.text_opt("GATEWAY_EDGE_POLICY_FILE")?.map(Into::into),
        budget: v.positive("GATEWAY_EDGE_BUDGET")?,
        fail_closed: v.word("GATEWAY_EDGE_ON_FAILURE")? == "closed",
        deny_status: deny_status as u16,
        trusted_proxies: cidrs(v, "GATEWAY_EDGE_TRUSTED_PROXIES")?,
        http_listen: v.address_opt("GATEWAY_HTTP_LISTEN")?,
    };
    if config.http_listen.is_some() && config.policy_file.is_none() {
        return Err(invalid(
            "GATEWAY_HTTP_LISTEN",
            "serves forward-auth decisions, which need GATEWAY_EDGE_POLICY_FILE",
        ));
    }
    Ok(config)
}

pub(super) fn auth_config(v: &Values<'_>) -> Result<AuthConfig, ConfigError> {
    let mesh = match v.word("GATEWAY_MESH_IDENTITY")?.as_str() {
        "envoy" => Mesh::Envoy,
        "linkerd" => Mesh::Linkerd,
        _ => Mesh::None,
    };
    let mesh_peers = cidrs(v, "GATEWAY_MESH_TRUSTED_PEERS")?;
    let config = AuthConfig {
        enforce: v.bool("GATEWAY_AUTH")?,
        policy_file: v.text_opt("GATEWAY_POLICY_FILE")?.map(Into::into),
        mesh,
        mesh_peers,
    };
    if config.enforce && config.policy_file.is_none() {
        return Err(invalid(
            "GATEWAY_AUTH",
            "is on but GATEWAY_POLICY_FILE is unset: no caller could be allowed",
        ));
    }
    Ok(config)
}

pub(super) fn tls_config(v: &Values<'_>) -> Result<Option<TlsConfig>, ConfigError> {
    let cert = v.text_opt("GATEWAY_TLS_CERT_FILE")?;
    let key = v.text_opt("GATEWAY_TLS_KEY_FILE")?;
    let client_ca = v.text_opt("GATEWAY_TLS_CLIENT_CA_FILE")?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(Into::into),
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err(invalid(
            "GATEWAY_TLS_CLIENT_CA_FILE",
            "needs GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE",
        )),
        (Some(_), None) => Err(invalid(
            "GATEWAY_TLS_KEY_FILE",
            "is required with GATEWAY_TLS_CERT_FILE",
        )),
        (None, Some(_)) => Err(invalid(
            "GATEWAY_TLS_CERT_FILE",
            "is required with GATEWAY_TLS_KEY_FILE",
        )),
    }
}

/// The Redis settings, when `GATEWAY_REDIS_URL` is set.
pub(super) fn redis_config(v: &Values<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = v.text_opt("GATEWAY_REDIS_URL")? else {
        return Ok(None);
    };
    // Checked here, so that a typo fails start-up (without echoing a password).
    let parsed =
        Url::parse(&url).map_err(|e| invalid("GATEWAY_REDIS_URL", format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
        return Err(invalid(
            "GATEWAY_REDIS_URL",
            "must be redis://host:port or rediss://host:port",
        ));
    }
    let password = match v.text_opt("GATEWAY_REDIS_PASSWORD_FILE")? {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "GATEWAY_REDIS_PASSWORD_FILE",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            Some(Secret::new(text.trim_end_matches(['\r', '\n'])))
        }
    };
    let encryption_key = match v.text_opt("GATEWAY_REDIS_ENCRYPTION_KEY")? {
        None => None,
        Some(raw) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|_| invalid("GATEWAY_REDIS_ENCRYPTION_KEY", "is not base64"))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                invalid(
                    "GATEWAY_REDIS_ENCRYPTION_KEY",
                    "must be 32 bytes (base64 of 44 characters)",
                )
            })?;
            Some(SealedKey(key))
        }
    };
    let prefix = v.text("GATEWAY_REDIS_PREFIX")?;
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "GATEWAY_REDIS_PREFIX",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let lease = v.positive("GATEWAY_REDIS_LEASE")?;
    if lease < Duration::from_millis(100) {
        return Err(invalid("GATEWAY_REDIS_LEASE", "must be at least 100ms"));
    }
    let ca = match v.text_opt("GATEWAY_REDIS_CA_FILE")? {
        None => None,
        Some(path) => {
            if parsed.scheme() != "rediss" {
                return Err(invalid(
                    "GATEWAY_REDIS_CA_FILE",
                    "applies only to a rediss:// GATEWAY_REDIS_URL",
                ));
            }
            let pem = std::fs::read(&path).map_err(|e| {
                invalid("GATEWAY_REDIS_CA_FILE", format!("cannot read {path}: {e}"))
            })?;
            use rustls_pki_types::pem::PemObject;
            let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("GATEWAY_REDIS_CA_FILE", format!("{path} is not PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(invalid(
                    "GATEWAY_REDIS_CA_FILE",
                    format!("{path} holds no certificate"),
                ));
            }
            Some(pem)
        }
    };
    Ok(Some(RedisConfig {
        url: Secret::new(url),
        password,
        prefix,
        encryption_key,
        ca,
        timeout: v.positive("GATEWAY_REDIS_TIMEOUT")?,
        lease,
        local_quota_share: v.ratio("GATEWAY_REDIS_LOCAL_QUOTA_SHARE")?,
    }))
}
