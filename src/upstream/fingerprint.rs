//! fingerprint.com Server API client, v4 and v3.

use prost_types::Timestamp;
use reqwest::{Method, Url, header::HeaderValue};
use serde_json::Value as Json;

use super::{Call, ErrorShape, Http, JsonObject, account_digest};
use crate::config::{FingerprintConfig, Generation, Secret};
use crate::convert::json::timestamp_to_millis;
use crate::convert::typed::{Answer, Shape, Untyped, V4Page, wire::EncodedEvent};
use crate::error::{Error, Resource, Upstream};
use crate::proto::v1::EventFilter;
use crate::resilience::CallKind;

/// Largest page the v4 `/v4/events` endpoint returns.
pub const V4_PAGE_MAX: u32 = 100;

/// A client of one fingerprint.com workspace, in one region, through one API generation.
#[derive(Debug, Clone)]
pub struct FingerprintClient {
    http: Http,
    config: FingerprintConfig,
    auth: HeaderValue,
    identity: String,
}

/// Query parameters of one upstream call, in order.
type Query = Vec<(&'static str, String)>;

/// The filters of a v3 visitor page.
#[derive(Debug, Clone, Copy)]
pub struct VisitsFilter<'a> {
    /// Only the visit of this request id ("" for any).
    pub event_id: &'a str,
    /// Only visits with this linked id ("" for any).
    pub linked_id: &'a str,
    /// Only visits before this time.
    pub end: Option<&'a Timestamp>,
}

// === impl FingerprintClient ===

impl FingerprintClient {
    /// A client; fails if the key cannot travel in an HTTP header.
    pub fn new(http: Http, config: FingerprintConfig) -> Result<Self, String> {
        let raw = match config.generation {
            Generation::V4 => format!("Bearer {}", config.secret_api_key.expose()),
            Generation::V3 => config.secret_api_key.expose().to_owned(),
        };
        let mut auth = HeaderValue::from_str(&raw).map_err(|_| {
            "FINGERPRINT_SECRET_API_KEY has characters not allowed in an HTTP header".to_owned()
        })?;
        auth.set_sensitive(true);
        // Identity for cache keys: generation, base URL and a digest of the key (never the key).
        let identity = format!(
            "{}|{}|{}",
            config.generation,
            config.base_url,
            account_digest(config.secret_api_key.expose())
        );
        Ok(Self {
            http,
            config,
            auth,
            identity,
        })
    }

    /// The same client with another key. The identity that binds page tokens stays,
    /// so that a caller paging across a rotation is not refused; the cache follows the
    /// key by itself (see [`crate::secrets`]).
    pub fn rotated(&self, key: Secret) -> Result<Self, String> {
        let mut config = self.config.clone();
        config.secret_api_key = key;
        let mut next = Self::new(self.http.clone(), config)?;
        next.identity.clone_from(&self.identity);
        Ok(next)
    }

    /// The account digest of the key in use (for the shared cache's key space).
    pub fn account(&self) -> String {
        account_digest(self.config.secret_api_key.expose())
    }

    /// The upstream generation.
    pub fn generation(&self) -> Generation {
        self.config.generation
    }

    /// What distinguishes this upstream from another one for caching.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One event (`GET /v4/events/{event_id}` or `GET /events/{request_id}`).
    ///
    /// A v4 event of exactly the published shape is read typed (see
    /// [`crate::convert::typed`]).
    pub async fn get_event(
        &self,
        event_id: &str,
        ruleset_id: &str,
    ) -> Result<Answer<EncodedEvent>, Error> {
        match self.config.generation {
            Generation::V4 => {
                let mut query = Query::new();
                push(&mut query, "ruleset_id", ruleset_id);
                self.call_as(
                    Method::GET,
                    Resource::Event,
                    &["v4", "events", event_id],
                    &query,
                    None,
                )
                .await
            }
            Generation::V3 => self
                .get(Resource::Event, &["events", event_id], &[])
                .await
                .map(Answer::Json),
        }
    }

    /// One page of search results (`GET /v4/events` or `GET /events/search`): at most
    /// `size` events after the upstream key `key` ("" for the first page), counting up
    /// to `total` matches when asked (v4).
    pub async fn search(
        &self,
        filter: &EventFilter,
        size: u32,
        key: &str,
        total: Option<u32>,
    ) -> Result<Answer<V4Page>, Error> {
        match self.config.generation {
            Generation::V4 => {
                let query = search_query_v4(filter, size, key, total);
                self.call_as(
                    Method::GET,
                    Resource::Collection,
                    &["v4", "events"],
                    &query,
                    None,
                )
                .await
            }
            Generation::V3 => {
                let query = search_query_v3(filter, size, key);
                self.get(Resource::Collection, &["events", "search"], &query)
                    .await
                    .map(Answer::Json)
            }
        }
    }

    /// One page of a visitor's visits under v3 (`GET /visitors/{visitor_id}`).
    pub async fn visits_v3(
        &self,
        visitor_id: &str,
        filter: VisitsFilter<'_>,
        size: u32,
        key: &str,
    ) -> Result<JsonObject, Error> {
        let mut query = vec![("limit", size.to_string())];
        push(&mut query, "request_id", filter.event_id);
        push(&mut query, "linked_id", filter.linked_id);
        push(&mut query, "paginationKey", key);
        if let Some(end) = filter.end {
            query.push(("before", timestamp_to_millis(end).to_string()));
        }
        self.get(Resource::Visitor, &["visitors", visitor_id], &query)
            .await
    }

    /// Sets an event's linked id, tags or suspect flag (fields that are `None` stay as they are).
    pub async fn update_event(
        &self,
        event_id: &str,
        linked_id: Option<&str>,
        tags: Option<Json>,
        suspect: Option<bool>,
    ) -> Result<(), Error> {
        let mut body = JsonObject::new();
        let (method, segments, linked_key, tags_key) = match self.config.generation {
            Generation::V4 => (
                Method::PATCH,
                vec!["v4", "events", event_id],
                "linked_id",
                "tags",
            ),
            Generation::V3 => (Method::PUT, vec!["events", event_id], "linkedId", "tag"),
        };
        if let Some(linked) = linked_id {
            body.insert(linked_key.to_owned(), Json::String(linked.to_owned()));
        }
        if let Some(tags) = tags {
            body.insert(tags_key.to_owned(), tags);
        }
        if let Some(suspect) = suspect {
            body.insert("suspect".to_owned(), Json::Bool(suspect));
        }
        self.call(
            method,
            Resource::Event,
            &segments,
            &[],
            Some(Json::Object(body)),
        )
        .await?;
        Ok(())
    }

    /// Deletes every event of a visitor.
    pub async fn delete_visitor(&self, visitor_id: &str) -> Result<(), Error> {
        let segments = match self.config.generation {
            Generation::V4 => vec!["v4", "visitors", visitor_id],
            Generation::V3 => vec!["visitors", visitor_id],
        };
        self.call(Method::DELETE, Resource::Visitor, &segments, &[], None)
            .await?;
        Ok(())
    }

    async fn get(
        &self,
        resource: Resource,
        segments: &[&str],
        query: &[(&'static str, String)],
    ) -> Result<JsonObject, Error> {
        self.call(Method::GET, resource, segments, query, None)
            .await
    }

    async fn call(
        &self,
        method: Method,
        resource: Resource,
        segments: &[&str],
        query: &[(&'static str, String)],
        body: Option<Json>,
    ) -> Result<JsonObject, Error> {
        Ok(self
            .call_as::<Untyped>(method, resource, segments, query, body)
            .await?
            .into_json())
    }

    async fn call_as<T: Shape>(
        &self,
        method: Method,
        resource: Resource,
        segments: &[&str],
        query: &[(&'static str, String)],
        body: Option<Json>,
    ) -> Result<Answer<T>, Error> {
        let kind = match method {
            Method::GET => CallKind::Read,
            Method::DELETE => CallKind::Delete,
            _ => CallKind::Write,
        };
        let url = self.url(segments, query);
        let header = match self.config.generation {
            Generation::V4 => reqwest::header::AUTHORIZATION.as_str(),
            Generation::V3 => "Auth-API-Key",
        };
        let mut request = self
            .http
            .request(method, url)
            .header(header, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let call = Call {
            upstream: Upstream::Fingerprint,
            resource,
            shape: ErrorShape::Fingerprint,
            kind,
            secrets: &[self.config.secret_api_key.expose()],
        };
        self.http.send_as(call, request).await
    }

    /// Base URL plus percent-encoded path segments plus query.
    fn url(&self, segments: &[&str], query: &[(&'static str, String)]) -> Url {
        let mut url = self.config.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }
}

fn push(query: &mut Query, name: &'static str, value: &str) {
    if !value.is_empty() {
        query.push((name, value.to_owned()));
    }
}

fn push_bool(query: &mut Query, name: &'static str, value: Option<bool>) {
    if let Some(v) = value {
        query.push((name, v.to_string()));
    }
}

fn push_all(query: &mut Query, name: &'static str, values: &[String]) {
    for v in values {
        query.push((name, v.clone()));
    }
}

/// The filters both generations share, under the same names.
fn common_filters(q: &mut Query, f: &EventFilter, key: &str) {
    push(q, "pagination_key", key);
    push(q, "visitor_id", &f.visitor_id);
    push(q, "bot", &f.bot);
    push(q, "ip_address", &f.ip_address);
    push(q, "linked_id", &f.linked_id);
    push_bool(q, "reverse", f.reverse);
    push_bool(q, "suspect", f.suspect);
    push_bool(q, "vpn", f.vpn);
    push_bool(q, "virtual_machine", f.virtual_machine);
    push_bool(q, "tampering", f.tampering);
    push_bool(q, "anti_detect_browser", f.anti_detect_browser);
    push_bool(q, "incognito", f.incognito);
    push_bool(q, "privacy_settings", f.privacy_settings);
    push_bool(q, "jailbroken", f.jailbroken);
    push_bool(q, "frida", f.frida);
    push_bool(q, "factory_reset", f.factory_reset);
    push_bool(q, "cloned_app", f.cloned_app);
    push_bool(q, "emulator", f.emulator);
    push_bool(q, "root_apps", f.root_apps);
    push(q, "vpn_confidence", &f.vpn_confidence);
    if let Some(score) = f.min_suspect_score {
        q.push(("min_suspect_score", score.to_string()));
    }
    push_bool(q, "developer_tools", f.developer_tools);
    push_bool(q, "location_spoofing", f.location_spoofing);
    push_bool(q, "mitm_attack", f.mitm_attack);
    push_bool(q, "rare_device", f.rare_device);
    push(
        q,
        "rare_device_percentile_bucket",
        &f.rare_device_percentile_bucket,
    );
    push_bool(q, "proxy", f.proxy);
    push(q, "sdk_version", &f.sdk_version);
    push(q, "sdk_platform", &f.sdk_platform);
    push_all(q, "environment", &f.environment);
    push(q, "proximity_id", &f.proximity_id);
}

fn search_query_v4(f: &EventFilter, size: u32, key: &str, total: Option<u32>) -> Query {
    let mut q = vec![("limit", size.to_string())];
    common_filters(&mut q, f, key);
    push(&mut q, "high_recall_id", &f.high_recall_id);
    push(&mut q, "bot_info", &f.bot_info);
    push_all(&mut q, "bot_info_category", &f.bot_info_category);
    push_all(&mut q, "bot_info_identity", &f.bot_info_identity);
    push_all(&mut q, "bot_info_confidence", &f.bot_info_confidence);
    push_all(&mut q, "bot_info_provider", &f.bot_info_provider);
    push_all(&mut q, "bot_info_name", &f.bot_info_name);
    push(&mut q, "asn", &f.asn);
    push(&mut q, "url", &f.url);
    push(&mut q, "bundle_id", &f.bundle_id);
    push(&mut q, "package_name", &f.package_name);
    push(&mut q, "origin", &f.origin);
    if let Some(start) = &f.start {
        q.push(("start", start.to_string()));
    }
    if let Some(end) = &f.end {
        q.push(("end", end.to_string()));
    }
    if let Some(total) = total {
        q.push(("total_hits", total.to_string()));
    }
    push_bool(&mut q, "tor_node", f.tor_node);
    push(
        &mut q,
        "incremental_identification_status",
        &f.incremental_identification_status,
    );
    push_bool(&mut q, "simulator", f.simulator);
    push_bool(&mut q, "active_call", f.active_call);
    push_all(&mut q, "source", &f.source);
    q
}

fn search_query_v3(f: &EventFilter, size: u32, key: &str) -> Query {
    // v3 requires `limit`; the service always sends the contract's page size.
    let mut q = vec![("limit", size.to_string())];
    common_filters(&mut q, f, key);
    if let Some(start) = &f.start {
        q.push(("start", timestamp_to_millis(start).to_string()));
    }
    if let Some(end) = &f.end {
        q.push(("end", timestamp_to_millis(end).to_string()));
    }
    push_bool(&mut q, "ip_blocklist", f.ip_blocklist);
    push_bool(&mut q, "datacenter", f.datacenter);
    if let Some(radius) = f.proximity_precision_radius {
        q.push(("proximity_precision_radius", radius.to_string()));
    }
    q
}
