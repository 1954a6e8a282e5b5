//! How each section (resilience, auth, TLS, Redis) and each composite value (rates,
//! per-RPC durations, key lists, the `*_FILE` variants) is read from the merged values.

use super::*;

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

/// One rate rule: `N/unit` or `N/unit:burst`.
/// A comma-separated list of rate rules (`50/s:10,1000/h`).
pub fn parse_rates(text: &str) -> Result<Vec<Rate>, String> {
    let rates: Vec<Rate> = text
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| parse_rate(r).map_err(|e| format!("{r:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if rates.is_empty() {
        return Err("no rate given".to_owned());
    }
    Ok(rates)
}

pub(super) fn parse_rate(text: &str) -> Result<Rate, String> {
    let (rule, burst) = match text.split_once(':') {
        Some((rule, burst)) => (rule, Some(burst)),
        None => (text, None),
    };
    let (count, unit) = rule
        .split_once('/')
        .ok_or("expected N/unit, e.g. 50/s or 30/h:5")?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or("the count must be a whole number above 0")?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        _ => return Err("the unit must be s, m, h or d".to_owned()),
    };
    let burst = match burst {
        None => 1,
        Some(b) => b
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|b| (1..=count).contains(b))
            .ok_or("the burst must be a whole number from 1 to the count")?,
    };
    Ok(Rate { count, per, burst })
}

/// A duration, then `Rpc=duration` overrides.
pub(super) fn parse_per_rpc(text: &str) -> Result<PerRpc, String> {
    let duration = |t: &str| -> Result<Duration, String> {
        let t = t.trim();
        match t.parse::<u64>() {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(t)
                .map_err(|e| format!("expected a duration such as 1h, got {t:?}: {e}")),
        }
    };
    let mut parts = text.split(',').map(str::trim);
    let default = duration(parts.next().unwrap_or_default())?;
    let mut overrides = Vec::new();
    for part in parts.filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("expected Rpc=duration, got {part:?}"))?;
        let rpc = Rpc::ALL
            .into_iter()
            .find(|r| r.name() == name.trim())
            .ok_or_else(|| format!("{:?} is not an RPC", name.trim()))?;
        overrides.push((rpc, duration(value)?));
    }
    Ok(PerRpc { default, overrides })
}

pub(super) fn auth_config(v: &Values<'_>) -> Result<AuthConfig, ConfigError> {
    let mesh = match v.word("GATEWAY_MESH_IDENTITY")?.as_str() {
        "envoy" => Mesh::Envoy,
        "linkerd" => Mesh::Linkerd,
        _ => Mesh::None,
    };
    let mesh_peers = v
        .text("GATEWAY_MESH_TRUSTED_PEERS")?
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            Cidr::parse(c)
                .map_err(|e| invalid("GATEWAY_MESH_TRUSTED_PEERS", format!("{c:?}: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
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

/// The secret settings that may come from a file, and the setting naming the file.
pub const FILE_VARIANTS: [(&str, &str); 5] = [
    (
        "FINGERPRINT_SECRET_API_KEY",
        "FINGERPRINT_SECRET_API_KEY_FILE",
    ),
    ("STYTCH_SECRET", "STYTCH_SECRET_FILE"),
    (
        "FINGERPRINT_SEALED_RESULT_KEYS",
        "FINGERPRINT_SEALED_RESULT_KEYS_FILE",
    ),
    (
        "FINGERPRINT_WEBHOOK_SECRETS",
        "FINGERPRINT_WEBHOOK_SECRETS_FILE",
    ),
    (
        "GATEWAY_REDIS_ENCRYPTION_KEY",
        "GATEWAY_REDIS_ENCRYPTION_KEY_FILE",
    ),
];

pub(super) fn file_variant(name: &str) -> Option<&'static str> {
    FILE_VARIANTS
        .iter()
        .find(|(secret, _)| *secret == name)
        .map(|(_, file)| *file)
}

/// Sealed-result keys from a setting's text (for rotation).
pub fn sealed_keys_from(text: &str) -> Result<Vec<SealedKey>, String> {
    let row = setting_named("FINGERPRINT_SEALED_RESULT_KEYS").ok_or("no such setting")?;
    match row.parse(text).map_err(|e| e.to_string())? {
        Value::List(keys) => keys
            .iter()
            .enumerate()
            .map(|(i, k)| parse_sealed_key(i, k).map_err(|e| e.to_string()))
            .collect(),
        _ => Err("not a list".to_owned()),
    }
}

/// Webhook secrets from a setting's text (for rotation).
pub fn webhook_secrets_from(text: &str) -> Result<Vec<Secret>, String> {
    let row = setting_named("FINGERPRINT_WEBHOOK_SECRETS").ok_or("no such setting")?;
    match row.parse(text).map_err(|e| e.to_string())? {
        Value::List(secrets) => Ok(secrets.into_iter().map(Secret::new).collect()),
        _ => Err("not a list".to_owned()),
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
