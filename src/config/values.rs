//! Each setting's text read the way its row says (durations, rates, per-RPC durations,
//! lists, keys), and typed access to the merged values (a setting's default when it is
//! unset; a secret's `*_FILE` variant).

use super::*;

/// A setting's value, read by its row's [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Address(SocketAddr),
    Bool(bool),
    Duration(Duration),
    Count(u64),
    Url(Url),
    Text(String),
    List(Vec<String>),
    Ratio(f64),
    Rates(Vec<Rate>),
    PerRpc(PerRpc),
}

impl Setting {
    /// Reads `text` the way this row says.
    pub(super) fn parse(&self, text: &str) -> Result<Value, ConfigError> {
        let text = text.trim();
        let bad = |reason: String| invalid(self.name, reason);
        Ok(match self.kind {
            Kind::Address => Value::Address(
                text.parse()
                    .map_err(|e: std::net::AddrParseError| bad(e.to_string()))?,
            ),
            Kind::Bool => Value::Bool(match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                other => return Err(bad(format!("expected true or false, got {other:?}"))),
            }),
            Kind::Duration => Value::Duration(match text.parse::<u64>() {
                Ok(secs) => Duration::from_secs(secs),
                Err(_) => humantime::parse_duration(text)
                    .map_err(|e| bad(format!("expected a duration such as 30s: {e}")))?,
            }),
            Kind::Count => Value::Count(
                text.parse()
                    .map_err(|_| bad(format!("expected a whole number, got {text:?}")))?,
            ),
            Kind::Url => Value::Url(check_url(self.name, text)?),
            Kind::Text | Kind::Secret => Value::Text(text.to_owned()),
            Kind::Secrets => Value::List(
                text.split(',')
                    .map(str::trim)
                    // An empty secret is no secret.
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Kind::Choice(words) => {
                let word = text.to_ascii_lowercase();
                if !words.contains(&word.as_str()) {
                    return Err(bad(format!(
                        "expected {}, got {text:?}",
                        words.join(" or ")
                    )));
                }
                Value::Text(word)
            }
            Kind::Ratio => Value::Ratio(
                text.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad(format!("expected a ratio from 0 to 1, got {text:?}")))?,
            ),
            Kind::Rates => Value::Rates(
                text.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| parse_rate(r).map_err(|e| bad(format!("{r:?}: {e}"))))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::PerRpc => Value::PerRpc(parse_per_rpc(text).map_err(bad)?),
        })
    }
}

/// Typed access to the merged values, each read by its row (its default when unset).
pub(super) struct Values<'a> {
    pub(super) get: &'a dyn Fn(&'static str) -> Option<String>,
}

impl Values<'_> {
    pub(super) fn value(&self, name: &'static str) -> Result<Option<Value>, ConfigError> {
        let row =
            setting_named(name).ok_or_else(|| invalid(name, "is not a setting (a gateway bug)"))?;
        let given = (self.get)(name);
        // A secret may come from a file instead (`X_FILE`), never from both.
        let from_file =
            match file_variant(name).and_then(|file| (self.get)(file).map(|p| (file, p))) {
                None => None,
                Some((file, _)) if given.is_some() => {
                    return Err(invalid(file, format!("and {name} are both set; set one")));
                }
                Some((file, path)) => Some(
                    crate::secrets::read(std::path::Path::new(&path))
                        .map_err(|e| invalid(file, format!("cannot read {path}: {e}")))?,
                ),
            };
        match given
            .or(from_file)
            .or_else(|| row.default.map(str::to_owned))
        {
            Some(text) if !text.trim().is_empty() => row.parse(&text).map(Some),
            _ => Ok(None),
        }
    }

    pub(super) fn wrong(name: &'static str) -> ConfigError {
        invalid(
            name,
            "is read as another kind than its row says (a gateway bug)",
        )
    }

    pub(super) fn address_opt(
        &self,
        name: &'static str,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Address(a)) => Ok(Some(a)),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn address(&self, name: &'static str) -> Result<SocketAddr, ConfigError> {
        self.address_opt(name)?
            .ok_or_else(|| invalid(name, "is required"))
    }

    pub(super) fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.value(name)? {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn duration(&self, name: &'static str) -> Result<Duration, ConfigError> {
        match self.value(name)? {
            Some(Value::Duration(d)) => Ok(d),
            None => Err(invalid(name, "is required")),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn count(&self, name: &'static str) -> Result<u64, ConfigError> {
        match self.value(name)? {
            Some(Value::Count(n)) => Ok(n),
            None => Err(invalid(name, "is required")),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn url_opt(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Url(u)) => Ok(Some(u)),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn url(&self, name: &'static str) -> Result<Url, ConfigError> {
        self.url_opt(name)?
            .ok_or_else(|| invalid(name, "is required"))
    }

    pub(super) fn text_opt(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t)),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn text(&self, name: &'static str) -> Result<String, ConfigError> {
        self.text_opt(name)?
            .ok_or_else(|| invalid(name, "is required"))
    }

    /// A `Choice`, lower-cased.
    pub(super) fn word(&self, name: &'static str) -> Result<String, ConfigError> {
        self.text(name)
    }

    pub(super) fn list(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.value(name)? {
            None => Ok(Vec::new()),
            Some(Value::List(l)) => Ok(l),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn rates(&self, name: &'static str) -> Result<Vec<Rate>, ConfigError> {
        match self.value(name)? {
            None => Ok(Vec::new()),
            Some(Value::Rates(r)) => Ok(r),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn per_rpc(&self, name: &'static str) -> Result<PerRpc, ConfigError> {
        match self.value(name)? {
            Some(Value::PerRpc(p)) => Ok(p),
            None => Err(invalid(name, "is required")),
            Some(_) => Err(Self::wrong(name)),
        }
    }

    pub(super) fn positive(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let d = self.duration(name)?;
        if d.is_zero() {
            return Err(invalid(name, "must be greater than zero"));
        }
        Ok(d)
    }

    pub(super) fn ratio(&self, name: &'static str) -> Result<f64, ConfigError> {
        match self.value(name)? {
            Some(Value::Ratio(r)) => Ok(r),
            None => Err(invalid(name, "is required")),
            Some(_) => Err(Self::wrong(name)),
        }
    }
}

pub(super) fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

pub(super) fn check_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
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

pub(super) fn parse_sealed_key(index: usize, raw: &str) -> Result<SealedKey, ConfigError> {
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
