//! Stytch Device Fingerprinting client.

use reqwest::{Method, Url};
use serde_json::{Map, Value as Json, json};

use super::{Call, ErrorShape, Http, JsonObject};
use crate::config::StytchConfig;
use crate::convert::stytch::RULE_IDENTIFIERS;
use crate::error::{Error, Resource, Upstream};
use crate::proto::v1::{
    Action, LookupTelemetryRequest, SetRuleRequest, SetVerdictReasonOverrideRequest,
    set_rule_request::Identifier,
};
use crate::resilience::CallKind;

/// A client of one Stytch project.
#[derive(Debug, Clone)]
pub struct StytchClient {
    http: Http,
    config: StytchConfig,
    identity: String,
    /// The Basic-auth credential as sent (base64 of `project:secret`), to scrub.
    basic: crate::config::Secret,
}

// === impl StytchClient ===

impl StytchClient {
    /// A client.
    pub fn new(http: Http, config: StytchConfig) -> Self {
        let identity = format!(
            "{}|{}|{}",
            config.base_url,
            config.project_id,
            super::account_digest(config.secret.expose())
        );
        use base64::Engine;
        let basic =
            crate::config::Secret::new(base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                config.project_id,
                config.secret.expose()
            )));
        Self {
            http,
            config,
            identity,
            basic,
        }
    }

    /// The same client with another secret; the page-token identity stays (see
    /// [`super::fingerprint::FingerprintClient::rotated`]).
    pub fn rotated(&self, secret: crate::config::Secret) -> Self {
        let mut config = self.config.clone();
        config.secret = secret;
        let mut next = Self::new(self.http.clone(), config);
        next.identity.clone_from(&self.identity);
        next
    }

    /// The account digest of the credentials in use.
    pub fn account(&self) -> String {
        super::account_digest(&format!(
            "{}|{}",
            self.config.project_id,
            self.config.secret.expose()
        ))
    }

    /// What distinguishes this upstream from another one for caching.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `POST /v1/fingerprint/lookup`.
    pub async fn lookup(&self, req: &LookupTelemetryRequest) -> Result<JsonObject, Error> {
        let mut body = Map::new();
        body.insert(
            "telemetry_id".to_owned(),
            Json::String(req.telemetry_id.clone()),
        );
        if let Some(meta) = &req.external_metadata {
            let mut m = Map::new();
            for (key, value) in [
                ("external_id", &meta.external_id),
                ("organization_id", &meta.organization_id),
                ("user_action", &meta.user_action),
            ] {
                if let Some(v) = value {
                    m.insert(key.to_owned(), Json::String(v.clone()));
                }
            }
            if !m.is_empty() {
                body.insert("external_metadata".to_owned(), Json::Object(m));
            }
        }
        self.post(
            Resource::Telemetry,
            &["v1", "fingerprint", "lookup"],
            Json::Object(body),
        )
        .await
    }

    /// `POST /v1/rules/list`: at most `limit` rules after `cursor` ("" for the first page).
    pub async fn list_rules(&self, limit: u32, cursor: &str) -> Result<JsonObject, Error> {
        let mut body = Map::new();
        body.insert("limit".to_owned(), json!(limit));
        if !cursor.is_empty() {
            body.insert("cursor".to_owned(), Json::String(cursor.to_owned()));
        }
        self.post(
            Resource::Collection,
            &["v1", "rules", "list"],
            Json::Object(body),
        )
        .await
    }

    /// `POST /v1/verdict_reasons/list`.
    pub async fn list_verdict_reasons(&self, overrides_only: bool) -> Result<JsonObject, Error> {
        let body = json!({ "overrides_only": overrides_only });
        self.post(
            Resource::Collection,
            &["v1", "verdict_reasons", "list"],
            body,
        )
        .await
    }

    /// `POST /v1/rules/set`.
    pub async fn set_rule(&self, req: &SetRuleRequest) -> Result<JsonObject, Error> {
        let mut body = Map::new();
        body.insert(
            "action".to_owned(),
            Json::String(action_word(req.action).to_owned()),
        );
        if let Some(id) = &req.identifier {
            let (key, value) = identifier(id);
            body.insert(key.to_owned(), Json::String(value.to_owned()));
        }
        if !req.description.is_empty() {
            body.insert(
                "description".to_owned(),
                Json::String(req.description.clone()),
            );
        }
        if let Some(minutes) = req.expires_in_minutes {
            body.insert("expires_in_minutes".to_owned(), json!(minutes));
        }
        self.post(
            Resource::Collection,
            &["v1", "rules", "set"],
            Json::Object(body),
        )
        .await
    }

    /// `POST /v1/verdict_reasons/override`.
    pub async fn set_verdict_reason_override(
        &self,
        req: &SetVerdictReasonOverrideRequest,
    ) -> Result<JsonObject, Error> {
        let mut body = Map::new();
        body.insert(
            "verdict_reason".to_owned(),
            Json::String(req.verdict_reason.clone()),
        );
        body.insert(
            "override_action".to_owned(),
            Json::String(action_word(req.override_action).to_owned()),
        );
        if !req.override_description.is_empty() {
            body.insert(
                "override_description".to_owned(),
                Json::String(req.override_description.clone()),
            );
        }
        self.post(
            Resource::Collection,
            &["v1", "verdict_reasons", "override"],
            Json::Object(body),
        )
        .await
    }

    async fn post(
        &self,
        resource: Resource,
        segments: &[&str],
        body: Json,
    ) -> Result<JsonObject, Error> {
        let url = self.url(segments);
        // `.json()` sets `Content-Type: application/json` exactly, as Stytch requires.
        let request = self
            .http
            .request(Method::POST, url)
            .basic_auth(&self.config.project_id, Some(self.config.secret.expose()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        // Lookups and lists are read-only POSTs: safe to retry.
        let kind = match segments.last() {
            Some(&("lookup" | "list")) => CallKind::Read,
            _ => CallKind::Write,
        };
        let call = Call {
            upstream: Upstream::Stytch,
            resource,
            shape: ErrorShape::Stytch,
            kind,
            secrets: &[self.config.secret.expose(), self.basic.expose()],
        };
        self.http.send(call, request).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.config.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// Stytch's word for an action (validated before: never UNSPECIFIED here).
pub fn action_word(action: i32) -> &'static str {
    match Action::try_from(action).unwrap_or(Action::Unspecified) {
        Action::Allow => "ALLOW",
        Action::Challenge => "CHALLENGE",
        Action::Block => "BLOCK",
        Action::None | Action::Unspecified => "NONE",
    }
}

/// The request member and value of a rule identifier.
pub fn identifier(id: &Identifier) -> (&'static str, &str) {
    // The oneof's fields in RULE_IDENTIFIERS' order.
    let (index, value) = match id {
        Identifier::VisitorId(v) => (0, v),
        Identifier::BrowserId(v) => (1, v),
        Identifier::VisitorFingerprint(v) => (2, v),
        Identifier::BrowserFingerprint(v) => (3, v),
        Identifier::HardwareFingerprint(v) => (4, v),
        Identifier::NetworkFingerprint(v) => (5, v),
        Identifier::CidrBlock(v) => (6, v),
        Identifier::CountryCode(v) => (7, v),
        Identifier::Asn(v) => (8, v),
    };
    (RULE_IDENTIFIERS[index].0, value)
}
