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
    /// Header names (lower case) sent to `/v4/edge` with an empty value, beyond
    /// [`EDGE_BLANKED`].
    blank_headers: std::sync::Arc<[String]>,
}

/// Headers whose values never leave for `/v4/edge`: sent as `""`, in their place
/// (lower case; matched in any case).
pub const EDGE_BLANKED: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// What `POST /v4/edge` is asked to analyse (v4 `EdgeRequest`).
#[derive(Debug, Clone, Default)]
pub struct EdgeQuery {
    /// Header lines, in order: (name, value).
    pub headers: Vec<(String, String)>,
    /// The method.
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// The client's IPv4 address.
    pub ipv4_address: Option<String>,
    /// The client's IPv6 address.
    pub ipv6_address: Option<String>,
    /// The caller's identifier.
    pub linked_id: Option<String>,
    /// Tags (a JSON object).
    pub tags: Option<Json>,
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

/// Most header lines an analysis carries.
pub const EDGE_MAX_HEADERS: usize = 256;
/// Most bytes of header names and values an analysis carries, in all.
pub const EDGE_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest URL an analysis carries.
pub const EDGE_MAX_URL_BYTES: usize = 8 * 1024;
/// Longest method.
const EDGE_MAX_METHOD_BYTES: usize = 32;
/// Longest `tags`, as JSON.
const EDGE_MAX_TAGS_BYTES: usize = 16 * 1024;
/// Longest `linked_id`.
const EDGE_MAX_LINKED_ID_BYTES: usize = 256;

// === impl EdgeQuery ===

impl EdgeQuery {
    /// Checks what `/v4/edge` would refuse, and what the gateway will not send, before
    /// any call: at least one header, each a token name with a value that can travel
    /// in a header; a method token; an absolute http(s) URL without a fragment; at
    /// least one address, each of its family.
    pub fn check(&self) -> Result<(), Error> {
        use crate::error::quote;
        if self.headers.is_empty() {
            return Err(Error::invalid(
                "headers",
                "must hold at least one header line",
            ));
        }
        if self.headers.len() > EDGE_MAX_HEADERS {
            return Err(Error::invalid(
                "headers",
                format!(
                    "holds {} lines; at most {EDGE_MAX_HEADERS}",
                    self.headers.len()
                ),
            ));
        }
        let mut bytes = 0usize;
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(Error::invalid(
                    "headers.name",
                    format!(
                        "{} is not an HTTP header name (RFC 9110 token)",
                        quote(name)
                    ),
                ));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(Error::invalid(
                    "headers.value",
                    format!("of {} holds a control character", quote(name)),
                ));
            }
            bytes += name.len() + value.len();
        }
        if bytes > EDGE_MAX_HEADER_BYTES {
            return Err(Error::invalid(
                "headers",
                format!("hold {bytes} bytes of names and values; at most {EDGE_MAX_HEADER_BYTES}"),
            ));
        }
        if self.method.is_empty()
            || self.method.len() > EDGE_MAX_METHOD_BYTES
            || !self.method.bytes().all(is_tchar)
        {
            return Err(Error::invalid(
                "method",
                format!(
                    "{} is not an HTTP method (a token of 1 to {EDGE_MAX_METHOD_BYTES} characters)",
                    quote(&self.method)
                ),
            ));
        }
        if self.url.len() > EDGE_MAX_URL_BYTES {
            return Err(Error::invalid(
                "url",
                format!("is longer than {EDGE_MAX_URL_BYTES} bytes"),
            ));
        }
        if self.url.contains('#') {
            return Err(Error::invalid("url", "must not carry a #fragment"));
        }
        match Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    "url",
                    format!("{} is not an absolute http or https URL", quote(&self.url)),
                ));
            }
            Err(e) => {
                return Err(Error::invalid(
                    "url",
                    format!("{} is not a URL: {e}", quote(&self.url)),
                ));
            }
        }
        if self.ipv4_address.is_none() && self.ipv6_address.is_none() {
            return Err(Error::invalid(
                "ipv4_address",
                "at least one of ipv4_address or ipv6_address is required",
            ));
        }
        if let Some(ip) = &self.ipv4_address
            && ip.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(Error::invalid(
                "ipv4_address",
                format!("{} is not an IPv4 address", quote(ip)),
            ));
        }
        if let Some(ip) = &self.ipv6_address
            && ip.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err(Error::invalid(
                "ipv6_address",
                format!("{} is not an IPv6 address", quote(ip)),
            ));
        }
        if let Some(linked) = &self.linked_id
            && (linked.len() > EDGE_MAX_LINKED_ID_BYTES || linked.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "linked_id",
                format!(
                    "must be at most {EDGE_MAX_LINKED_ID_BYTES} bytes without control characters"
                ),
            ));
        }
        if let Some(tags) = &self.tags
            && tags.to_string().len() > EDGE_MAX_TAGS_BYTES
        {
            return Err(Error::invalid(
                "tags",
                format!("is larger than {EDGE_MAX_TAGS_BYTES} bytes as JSON"),
            ));
        }
        Ok(())
    }
}

/// A character of an RFC 9110 token (header names, methods).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
            blank_headers: std::sync::Arc::from(Vec::new()),
        })
    }

    /// The same client, blanking these header names (any case) too at `/v4/edge`.
    pub fn with_blank_headers(mut self, names: &[String]) -> Self {
        self.blank_headers = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        self
    }

    /// Whether a header's value is sent to `/v4/edge` as `""`.
    pub fn is_blanked(&self, name: &str) -> bool {
        EDGE_BLANKED.iter().any(|b| b.eq_ignore_ascii_case(name))
            || self
                .blank_headers
                .iter()
                .any(|b| b.eq_ignore_ascii_case(name))
    }

    /// Bot and IP analysis of one request (`POST /v4/edge`); v4 only. Credential
    /// headers go out with empty values, in place. Each call creates an event upstream,
    /// so it is retried only when no connection could be opened.
    pub async fn analyze(&self, query: &EdgeQuery) -> Result<JsonObject, Error> {
        if self.config.generation == Generation::V3 {
            return Err(Error::EdgeUnsupported);
        }
        let headers: Vec<Json> = query
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if self.is_blanked(name) { "" } else { value };
                serde_json::json!({"name": name, "value": value})
            })
            .collect();
        let mut body = JsonObject::new();
        body.insert("headers".to_owned(), Json::Array(headers));
        body.insert("method".to_owned(), Json::String(query.method.clone()));
        body.insert("url".to_owned(), Json::String(query.url.clone()));
        for (key, value) in [
            ("ipv4_address", &query.ipv4_address),
            ("ipv6_address", &query.ipv6_address),
            ("linked_id", &query.linked_id),
        ] {
            if let Some(v) = value {
                body.insert(key.to_owned(), Json::String(v.clone()));
            }
        }
        if let Some(tags) = &query.tags {
            body.insert("tags".to_owned(), tags.clone());
        }
        Ok(self
            .call_as::<Untyped>(
                Method::POST,
                CallKind::Create,
                Resource::Collection,
                &["v4", "edge"],
                &[],
                Some(Json::Object(body)),
            )
            .await?
            .into_json())
    }

    /// The same client with another key. The identity that binds page tokens stays,
    /// so that a caller paging across a rotation is not refused; the cache follows the
    /// key by itself (see [`crate::secrets`]).
    pub fn rotated(&self, key: Secret) -> Result<Self, String> {
        let mut config = self.config.clone();
        config.secret_api_key = key;
        let mut next = Self::new(self.http.clone(), config)?;
        next.identity.clone_from(&self.identity);
        next.blank_headers = self.blank_headers.clone();
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
                    CallKind::Read,
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
                    CallKind::Read,
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
        let kind = match method {
            Method::GET => CallKind::Read,
            Method::DELETE => CallKind::Delete,
            _ => CallKind::Write,
        };
        Ok(self
            .call_as::<Untyped>(method, kind, resource, segments, query, body)
            .await?
            .into_json())
    }

    async fn call_as<T: Shape>(
        &self,
        method: Method,
        kind: CallKind,
        resource: Resource,
        segments: &[&str],
        query: &[(&'static str, String)],
        body: Option<Json>,
    ) -> Result<Answer<T>, Error> {
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
