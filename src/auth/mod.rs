//! Who may call what: each call's caller identity, the policy that says which RPCs a
//! caller may call, and per-caller limits.
//!
//! An identity comes from the first of these that the call has:
//! 1. the client certificate of a mutual-TLS connection (its SPIFFE URI SAN, else its
//!    subject CN; see [`crate::tls`]);
//! 2. a mesh-forwarded identity (Envoy/Istio `x-forwarded-client-cert` `URI=`, or
//!    Linkerd `l5d-client-id`), only when `GATEWAY_MESH_IDENTITY` names the mesh and
//!    the connection comes from `GATEWAY_MESH_TRUSTED_PEERS` (the sidecar);
//! 3. `authorization: Bearer <token>`, whose SHA-256 the policy file holds (never the
//!    token), compared in constant time.
//!
//! The policy file (`GATEWAY_POLICY_FILE`, TOML) names each caller, how it is known and
//! what it may call:
//!
//! ```toml
//! [[caller]]
//! name = "checkout"
//! identities = ["spiffe://cluster.local/ns/shop/sa/checkout"]  # mTLS or mesh
//! token_sha256 = "…64 hex…"                                      # bearer token
//! allow = ["FingerprintService/Get*", "StytchService/LookupTelemetry"]
//! rate = "50/s:10"        # optional: this caller's calls
//! max_in_flight = 16      # optional: this caller's calls at once (a stream: until it ends)
//! ```
//!
//! A pattern is `Service/Method`, where the method may be `*` or end in `*`. The
//! mutations (UpdateEvent, DeleteVisitorData, SetRule, SetVerdictReasonOverride) are
//! granted only by their exact name. With `GATEWAY_AUTH=on`, a call with no identity is
//! UNAUTHENTICATED and one its caller may not make is PERMISSION_DENIED; with it off (the
//! default, for the sandbox), every call goes through, and known callers are still
//! named in audit records and metrics. Health and reflection stay open. The file is
//! re-read when it changes (and on SIGHUP); a file that does not hold is refused with an
//! error log, and the policy in force stays.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{AuthConfig, Mesh};
use crate::error::Error;
use crate::resilience::limiter::Limiter;
use crate::rpc::Rpc;

mod policy;

use policy::Grant;
pub use policy::Policy;

/// The name given to calls without an identity (authorization off).
pub const ANONYMOUS: &str = "anonymous";

/// One caller of the policy.
#[derive(Debug)]
pub struct Caller {
    /// Its name (from the policy, a closed set: it labels metrics).
    pub name: Arc<str>,
    grants: Vec<Grant>,
    limiter: Option<Limiter>,
    slots: Option<(Arc<Semaphore>, u32)>,
}

/// Who made a call, and how that is known (kept in the request's extensions).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller, when the policy knows it.
    pub caller: Option<Arc<Caller>>,
    /// How the identity was established: `mtls`, `mesh`, `token`, or `none`.
    pub source: &'static str,
    /// The identity as presented (a SPIFFE id, a CN, a mesh id; never a token).
    pub presented: Option<String>,
}

/// A call's place among its caller's calls in flight, freed when dropped.
#[derive(Debug)]
pub struct CallerSlot(Option<OwnedSemaphorePermit>);

impl CallerSlot {
    /// Whether it holds a place (the caller has a `max_in_flight`).
    pub fn holds(&self) -> bool {
        self.0.is_some()
    }
}

/// Identities, the policy and its reloads.
#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    policy: RwLock<Arc<Policy>>,
    loaded: RwLock<Option<SystemTime>>,
}

// === impl Caller ===

impl Caller {
    /// Whether the policy lets this caller call `rpc`.
    pub fn may(&self, rpc: Rpc) -> bool {
        self.grants.iter().any(|g| g.grants(rpc))
    }

    /// Takes a place under this caller's own limits, or refuses at once.
    pub fn admit(&self) -> Result<CallerSlot, Error> {
        if let Some(limiter) = &self.limiter {
            // No waiting here: a caller over its own rate is told so at once (the
            // millisecond only absorbs the clock read inside `reserve`).
            let now = tokio::time::Instant::now();
            match limiter.reserve(now + Duration::from_millis(1)) {
                // A turn within the millisecond: taken now.
                Ok(_) => {}
                Err(after) => {
                    return Err(Error::CallerLimited {
                        caller: self.name.to_string(),
                        limit: "rate",
                        retry_after: Some(after),
                    });
                }
            }
        }
        match &self.slots {
            None => Ok(CallerSlot(None)),
            Some((slots, _)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Ok(CallerSlot(Some(permit))),
                Err(_) => Err(Error::CallerLimited {
                    caller: self.name.to_string(),
                    limit: "max_in_flight",
                    retry_after: None,
                }),
            },
        }
    }
}

// === impl Identity ===

impl Identity {
    /// The caller's name for audit records, metrics and spans.
    pub fn name(&self) -> &str {
        self.caller.as_ref().map_or(ANONYMOUS, |c| &c.name)
    }
}

// === impl Auth ===

impl Auth {
    /// Loads the policy file, if any.
    pub fn new(config: AuthConfig) -> Result<Arc<Self>, String> {
        let auth = Arc::new(Self {
            config,
            policy: RwLock::new(Arc::new(Policy::default())),
            loaded: RwLock::new(None),
        });
        if let Some(path) = &auth.config.policy_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("GATEWAY_POLICY_FILE {}: {e}", path.display()))?;
            let policy = Policy::parse(&text)
                .map_err(|e| format!("GATEWAY_POLICY_FILE {}: {e}", path.display()))?;
            auth.install(policy, crate::secrets::modified(path));
        }
        Ok(auth)
    }

    /// Whether calls without permission are refused.
    pub fn enforces(&self) -> bool {
        self.config.enforce
    }

    fn install(&self, policy: Policy, at: Option<SystemTime>) {
        if let Ok(mut p) = self.policy.write() {
            *p = Arc::new(policy);
        }
        if let Ok(mut l) = self.loaded.write() {
            *l = at;
        }
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Re-reads the policy file if it changed (or when `force`); keeps the policy in
    /// force when the new file does not hold.
    pub fn reload(&self, force: bool) {
        let Some(path) = &self.config.policy_file else {
            return;
        };
        let at = crate::secrets::modified(path);
        let last = self.loaded.read().map(|l| *l).unwrap_or(None);
        if !force && at == last {
            return;
        }
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Policy::parse(&t))
        {
            Ok(policy) => {
                tracing::info!(file = %path.display(), callers = policy.callers.len(), "policy reloaded");
                self.install(policy, at);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "policy file refused; the previous policy stays in force");
                // Not again until the file changes again.
                if let Ok(mut l) = self.loaded.write() {
                    *l = at;
                }
            }
        }
    }

    /// Watches the policy file: every second, and on SIGHUP.
    pub fn watch(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.config.policy_file.as_ref()?;
        let auth = self.clone();
        Some(tokio::spawn(async move {
            let mut recheck = crate::secrets::Recheck::new();
            loop {
                let forced = recheck.next().await;
                auth.reload(forced);
            }
        }))
    }

    /// The identity of a call: its TLS peer's, a trusted mesh header's, or its token's.
    pub fn identify(
        &self,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
        tls_identity: Option<&str>,
    ) -> Identity {
        let policy = self.policy();
        if let Some(id) = tls_identity {
            return Identity {
                caller: policy
                    .by_identity
                    .get(id)
                    .and_then(|i| policy.callers.get(*i).cloned()),
                source: "mtls",
                presented: Some(id.to_owned()),
            };
        }
        if let Some(id) = self.mesh_identity(headers, peer) {
            return Identity {
                caller: policy
                    .by_identity
                    .get(&id)
                    .and_then(|i| policy.callers.get(*i).cloned()),
                source: "mesh",
                presented: Some(id),
            };
        }
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            return Identity {
                caller: policy.by_token(token),
                source: "token",
                presented: None,
            };
        }
        Identity {
            caller: None,
            source: "none",
            presented: None,
        }
    }

    fn mesh_identity(&self, headers: &http::HeaderMap, peer: Option<IpAddr>) -> Option<String> {
        let header = match self.config.mesh {
            Mesh::None => return None,
            Mesh::Envoy => "x-forwarded-client-cert",
            Mesh::Linkerd => "l5d-client-id",
        };
        let value = headers.get(header)?.to_str().ok()?;
        let trusted = peer.is_some_and(|ip| self.config.mesh_peers.iter().any(|c| c.contains(ip)));
        if !trusted {
            tracing::debug!(
                header,
                ?peer,
                "mesh identity header from an untrusted peer ignored"
            );
            return None;
        }
        match self.config.mesh {
            Mesh::Linkerd => Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            // The last element is the hop closest to us: our sidecar's view of its client.
            Mesh::Envoy => value
                .rsplit(',')
                .next()?
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix("URI="))
                .map(|v| v.trim_matches('"').to_owned())
                .filter(|v| !v.is_empty()),
            Mesh::None => None,
        }
    }

    /// Whether `identity` may call `rpc`: `Ok` when allowed (or not enforced), else the
    /// refusal.
    pub fn authorize(&self, identity: &Identity, rpc: Rpc) -> Result<(), Error> {
        if !self.config.enforce {
            return Ok(());
        }
        let permission = format!("{}/{}", service_of(rpc), rpc.name());
        match &identity.caller {
            Some(caller) if caller.may(rpc) => Ok(()),
            Some(caller) => Err(Error::PermissionDenied {
                caller: caller.name.to_string(),
                permission,
            }),
            None if identity.source == "none" => Err(Error::Unauthenticated {
                why: "the call carries no identity: a client certificate, a trusted mesh identity or a bearer token",
            }),
            None if identity.source == "token" => Err(Error::Unauthenticated {
                why: "the bearer token belongs to no caller of the policy",
            }),
            None => Err(Error::PermissionDenied {
                caller: identity
                    .presented
                    .as_deref()
                    .map(|p| p.chars().take(64).collect())
                    .unwrap_or_default(),
                permission,
            }),
        }
    }
}

fn service_of(rpc: Rpc) -> &'static str {
    match rpc.upstream() {
        Some(crate::error::Upstream::Stytch) => "StytchService",
        _ => "FingerprintService",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn wildcards_never_grant_mutations() {
        let policy = Policy::parse(&format!(
            r#"
            [[caller]]
            name = "reader"
            token_sha256 = "{}"
            allow = ["FingerprintService/*", "StytchService/*"]
            [[caller]]
            name = "eraser"
            token_sha256 = "{}"
            allow = ["FingerprintService/DeleteVisitorData"]
            "#,
            digest("t1"),
            digest("t2")
        ))
        .unwrap();
        let reader = policy.by_token("t1").unwrap();
        assert!(reader.may(Rpc::GetEvent) && reader.may(Rpc::ListRules));
        for m in [
            Rpc::UpdateEvent,
            Rpc::DeleteVisitorData,
            Rpc::SetRule,
            Rpc::SetVerdictReasonOverride,
        ] {
            assert!(!reader.may(m), "{m:?}");
        }
        let eraser = policy.by_token("t2").unwrap();
        assert!(eraser.may(Rpc::DeleteVisitorData) && !eraser.may(Rpc::GetEvent));
        assert!(policy.by_token("t3").is_none());
    }

    #[test]
    fn a_policy_that_does_not_hold_is_refused_with_the_reason() {
        for (text, says) in [
            (
                "[[caller]]\nname = \"a\"\nallow = [\"Nope/GetEvent\"]",
                "no service",
            ),
            (
                "[[caller]]\nname = \"a\"\nallow = [\"FingerprintService/GetEvnt\"]",
                "matches no RPC",
            ),
            (
                "[[caller]]\nname = \"a\"\n[[caller]]\nname = \"a\"",
                "twice",
            ),
            ("[[caller]]\nname = \"a\"\ntoken_sha256 = \"zz\"", "64 hex"),
            ("[[caller]]\nname = \"a\"\nalow = []", "unknown field"),
            ("[[caller]]\nname = \"a b\"", "name must be"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
