//! The caller policy: its file, parsed and checked, and the grants it gives.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Grant {
    service: &'static str,
    method: Pattern,
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

/// The policy in force.
#[derive(Debug, Default)]
pub struct Policy {
    pub(super) callers: Vec<Arc<Caller>>,
    pub(super) by_identity: HashMap<String, usize>,
    tokens: Vec<([u8; 32], usize)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    caller: Vec<CallerEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    name: String,
    #[serde(default)]
    token_sha256: Option<String>,
    #[serde(default)]
    identities: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    rate: Option<String>,
    #[serde(default)]
    max_in_flight: Option<u32>,
}

const SERVICES: [(&str, &str); 3] = [
    (
        "FingerprintService",
        "fingerprint.gateway.v1.FingerprintService",
    ),
    ("StytchService", "fingerprint.gateway.v1.StytchService"),
    ("Authorization", "envoy.service.auth.v3.Authorization"),
];

// === impl Policy ===

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut policy = Policy::default();
        for (i, entry) in file.caller.into_iter().enumerate() {
            let name = entry.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid || name == ANONYMOUS {
                return Err(format!(
                    "caller {i}: name must be 1 to 64 letters, digits, '-', '_' or '.' (and not {ANONYMOUS:?})"
                ));
            }
            if policy.callers.iter().any(|c| *c.name == *name) {
                return Err(format!("caller {name:?} appears twice"));
            }
            let mut grants = Vec::new();
            for pattern in &entry.allow {
                grants.push(Grant::parse(pattern).map_err(|e| format!("caller {name:?}: {e}"))?);
            }
            let limiter = match &entry.rate {
                None => None,
                Some(rate) => {
                    let rates = crate::config::parse_rates(rate)
                        .map_err(|e| format!("caller {name:?}: rate: {e}"))?;
                    Limiter::new(&rates)
                }
            };
            let slots = match entry.max_in_flight {
                Some(0) => {
                    return Err(format!("caller {name:?}: max_in_flight must be at least 1"));
                }
                Some(n) => Some((Arc::new(Semaphore::new(n as usize)), n)),
                None => None,
            };
            let index = policy.callers.len();
            if let Some(hex) = &entry.token_sha256 {
                let digest = decode_digest(hex).ok_or_else(|| {
                    format!("caller {name:?}: token_sha256 must be 64 hex digits")
                })?;
                if policy.tokens.iter().any(|(d, _)| *d == digest) {
                    return Err(format!("caller {name:?}: token_sha256 is another caller's"));
                }
                policy.tokens.push((digest, index));
            }
            for id in entry.identities {
                if id.is_empty() || id.len() > 512 {
                    return Err(format!(
                        "caller {name:?}: identities must be 1 to 512 bytes"
                    ));
                }
                if policy.by_identity.insert(id.clone(), index).is_some() {
                    return Err(format!("identity {id:?} belongs to two callers"));
                }
            }
            policy.callers.push(Arc::new(Caller {
                name: name.into(),
                grants,
                limiter,
                slots,
            }));
        }
        Ok(policy)
    }

    pub(super) fn by_token(&self, token: &str) -> Option<Arc<Caller>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every digest is compared, in constant time: the time taken says nothing.
        let mut found = None;
        for (d, index) in &self.tokens {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(*index);
            }
        }
        found.and_then(|i| self.callers.get(i).cloned())
    }
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

// === impl Grant ===

impl Grant {
    fn parse(pattern: &str) -> Result<Self, String> {
        let (service, method) = pattern
            .split_once('/')
            .ok_or_else(|| format!("{pattern:?} is not Service/Method"))?;
        let service = SERVICES
            .iter()
            .find(|(short, full)| service == *short || service == *full)
            .map(|(_, full)| *full)
            .ok_or_else(|| format!("{pattern:?}: no service {service:?}"))?;
        let method = match method.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(method.to_owned()),
        };
        let grant = Self { service, method };
        // A pattern that can match nothing is a typo.
        if !Rpc::ALL.iter().any(|rpc| grant.matches_name(*rpc)) {
            return Err(format!("{pattern:?} matches no RPC"));
        }
        Ok(grant)
    }

    pub(super) fn matches_name(&self, rpc: Rpc) -> bool {
        let Some((service, method)) = rpc.path().trim_start_matches('/').split_once('/') else {
            return false;
        };
        service == self.service
            && match &self.method {
                Pattern::Exact(m) => m == method,
                Pattern::Prefix(p) => method.starts_with(p.as_str()),
            }
    }

    pub(super) fn grants(&self, rpc: Rpc) -> bool {
        // Mutations only by name: a wildcard never lets a caller delete or allow.
        if rpc.is_mutation() && matches!(self.method, Pattern::Prefix(_)) {
            return false;
        }
        self.matches_name(rpc)
    }
}
