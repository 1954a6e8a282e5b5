//! fingerprint.com Server API client, v4 and v3.

use prost_types::Timestamp;
use reqwest::{Method, Url, header::HeaderValue};
use serde_json::Value as Json;

use super::{ErrorShape, Http, JsonObject};
use crate::config::{FingerprintConfig, Generation};
use crate::convert::{event, json::timestamp_to_millis, v3};
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    Event, GetVisitsRequest, GetVisitsResponse, SearchEventsRequest, SearchEventsResponse,
};

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
            "{}|{}|{:016x}",
            config.generation,
            config.base_url,
            digest(config.secret_api_key.expose())
        );
        Ok(Self {
            http,
            config,
            auth,
            identity,
        })
    }

    /// The upstream generation.
    pub fn generation(&self) -> Generation {
        self.config.generation
    }

    /// What distinguishes this upstream from another one for caching.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One event.
    pub async fn get_event(&self, event_id: &str, ruleset_id: &str) -> Result<Event, Error> {
        match self.config.generation {
            Generation::V4 => {
                let mut query = Query::new();
                push(&mut query, "ruleset_id", ruleset_id);
                let body = self.get(&["v4", "events", event_id], &query).await?;
                Ok(event::from_v4(body))
            }
            Generation::V3 => {
                let body = self.get(&["events", event_id], &[]).await?;
                Ok(v3::from_event(body))
            }
        }
    }

    /// One page of search results.
    pub async fn search(&self, req: &SearchEventsRequest) -> Result<SearchEventsResponse, Error> {
        match self.config.generation {
            Generation::V4 => {
                let body = self.get(&["v4", "events"], &search_query_v4(req)).await?;
                Ok(search_response_v4(body))
            }
            Generation::V3 => {
                let body = self
                    .get(&["events", "search"], &search_query_v3(req))
                    .await?;
                let mut o = crate::convert::json::Obj::new(body);
                let events = take_events(&mut o, "events", v3::from_event);
                Ok(SearchEventsResponse {
                    events,
                    pagination_key: o.str("paginationKey").unwrap_or_default(),
                    total_hits: None,
                })
            }
        }
    }

    /// Visits of one visitor; pages through v4's smaller pages when `limit` needs it.
    pub async fn visits(&self, req: &GetVisitsRequest) -> Result<GetVisitsResponse, Error> {
        match self.config.generation {
            Generation::V4 => self.visits_v4(req).await,
            Generation::V3 => {
                let mut query = Query::new();
                if let Some(limit) = req.limit {
                    query.push(("limit", limit.to_string()));
                }
                push(&mut query, "linked_id", &req.linked_id);
                push(&mut query, "paginationKey", &req.pagination_key);
                if let Some(end) = &req.end {
                    query.push(("before", timestamp_to_millis(end).to_string()));
                }
                let body = self.get(&["visitors", &req.visitor_id], &query).await?;
                let mut o = crate::convert::json::Obj::new(body);
                let visitor_id = o.str("visitorId").unwrap_or_else(|| req.visitor_id.clone());
                let visits = take_events(&mut o, "visits", |m| v3::from_visit(m, &visitor_id));
                Ok(GetVisitsResponse {
                    visitor_id,
                    visits,
                    pagination_key: o.str("paginationKey").unwrap_or_default(),
                })
            }
        }
    }

    async fn visits_v4(&self, req: &GetVisitsRequest) -> Result<GetVisitsResponse, Error> {
        let mut wanted = req.limit;
        let mut key = req.pagination_key.clone();
        let mut visits = Vec::new();
        loop {
            let page = wanted.map(|w| w.min(V4_PAGE_MAX));
            let search = SearchEventsRequest {
                visitor_id: req.visitor_id.clone(),
                linked_id: req.linked_id.clone(),
                limit: page,
                pagination_key: key.clone(),
                start: req.start,
                end: req.end,
                ..SearchEventsRequest::default()
            };
            let body = self
                .get(&["v4", "events"], &search_query_v4(&search))
                .await?;
            let answer = search_response_v4(body);
            let got = answer.events.len() as u32;
            visits.extend(answer.events);
            key = answer.pagination_key;
            wanted = wanted.map(|w| w.saturating_sub(got));
            let more_wanted = wanted.is_some_and(|w| w > 0);
            // Stop on the last page, when enough arrived, or on a short page.
            if key.is_empty() || !more_wanted || page.is_some_and(|p| got < p) || got == 0 {
                break;
            }
        }
        Ok(GetVisitsResponse {
            visitor_id: req.visitor_id.clone(),
            visits,
            pagination_key: key,
        })
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
        self.call(method, &segments, &[], Some(Json::Object(body)))
            .await?;
        Ok(())
    }

    /// Deletes every event of a visitor.
    pub async fn delete_visitor(&self, visitor_id: &str) -> Result<(), Error> {
        let segments = match self.config.generation {
            Generation::V4 => vec!["v4", "visitors", visitor_id],
            Generation::V3 => vec!["visitors", visitor_id],
        };
        self.call(Method::DELETE, &segments, &[], None).await?;
        Ok(())
    }

    async fn get(
        &self,
        segments: &[&str],
        query: &[(&'static str, String)],
    ) -> Result<JsonObject, Error> {
        self.call(Method::GET, segments, query, None).await
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&'static str, String)],
        body: Option<Json>,
    ) -> Result<JsonObject, Error> {
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
        self.http
            .send(
                Upstream::Fingerprint,
                ErrorShape::Fingerprint,
                request,
                &[self.config.secret_api_key.expose()],
            )
            .await
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

fn take_events(
    o: &mut crate::convert::json::Obj,
    key: &str,
    convert: impl Fn(JsonObject) -> Event,
) -> Vec<Event> {
    match o.take(key) {
        Some(Json::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Json::Object(map) => convert(map),
                // Not an object: keep it visible rather than drop it.
                other => Event {
                    unmapped: Some(crate::convert::json::to_struct(
                        [("value".to_owned(), other)].into_iter().collect(),
                    )),
                    ..Event::default()
                },
            })
            .collect(),
        Some(other) => {
            o.put_back(key, other);
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn search_response_v4(body: JsonObject) -> SearchEventsResponse {
    let mut o = crate::convert::json::Obj::new(body);
    SearchEventsResponse {
        events: take_events(&mut o, "events", event::from_v4),
        pagination_key: o.str("pagination_key").unwrap_or_default(),
        total_hits: o.i64("total_hits"),
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

fn rfc3339(ts: &Timestamp) -> String {
    ts.to_string()
}

/// The filters both generations share, under the same names.
fn common_filters(q: &mut Query, r: &SearchEventsRequest) {
    push(q, "pagination_key", &r.pagination_key);
    push(q, "visitor_id", &r.visitor_id);
    push(q, "bot", &r.bot);
    push(q, "ip_address", &r.ip_address);
    push(q, "linked_id", &r.linked_id);
    push_bool(q, "reverse", r.reverse);
    push_bool(q, "suspect", r.suspect);
    push_bool(q, "vpn", r.vpn);
    push_bool(q, "virtual_machine", r.virtual_machine);
    push_bool(q, "tampering", r.tampering);
    push_bool(q, "anti_detect_browser", r.anti_detect_browser);
    push_bool(q, "incognito", r.incognito);
    push_bool(q, "privacy_settings", r.privacy_settings);
    push_bool(q, "jailbroken", r.jailbroken);
    push_bool(q, "frida", r.frida);
    push_bool(q, "factory_reset", r.factory_reset);
    push_bool(q, "cloned_app", r.cloned_app);
    push_bool(q, "emulator", r.emulator);
    push_bool(q, "root_apps", r.root_apps);
    push(q, "vpn_confidence", &r.vpn_confidence);
    if let Some(score) = r.min_suspect_score {
        q.push(("min_suspect_score", score.to_string()));
    }
    push_bool(q, "developer_tools", r.developer_tools);
    push_bool(q, "location_spoofing", r.location_spoofing);
    push_bool(q, "mitm_attack", r.mitm_attack);
    push_bool(q, "rare_device", r.rare_device);
    push(
        q,
        "rare_device_percentile_bucket",
        &r.rare_device_percentile_bucket,
    );
    push_bool(q, "proxy", r.proxy);
    push(q, "sdk_version", &r.sdk_version);
    push(q, "sdk_platform", &r.sdk_platform);
    push_all(q, "environment", &r.environment);
    push(q, "proximity_id", &r.proximity_id);
}

fn search_query_v4(r: &SearchEventsRequest) -> Query {
    let mut q = Query::new();
    if let Some(limit) = r.limit {
        q.push(("limit", limit.to_string()));
    }
    common_filters(&mut q, r);
    push(&mut q, "high_recall_id", &r.high_recall_id);
    push(&mut q, "bot_info", &r.bot_info);
    push_all(&mut q, "bot_info_category", &r.bot_info_category);
    push_all(&mut q, "bot_info_identity", &r.bot_info_identity);
    push_all(&mut q, "bot_info_confidence", &r.bot_info_confidence);
    push_all(&mut q, "bot_info_provider", &r.bot_info_provider);
    push_all(&mut q, "bot_info_name", &r.bot_info_name);
    push(&mut q, "asn", &r.asn);
    push(&mut q, "url", &r.url);
    push(&mut q, "bundle_id", &r.bundle_id);
    push(&mut q, "package_name", &r.package_name);
    push(&mut q, "origin", &r.origin);
    if let Some(start) = &r.start {
        q.push(("start", rfc3339(start)));
    }
    if let Some(end) = &r.end {
        q.push(("end", rfc3339(end)));
    }
    if let Some(total) = r.total_hits {
        q.push(("total_hits", total.to_string()));
    }
    push_bool(&mut q, "tor_node", r.tor_node);
    push(
        &mut q,
        "incremental_identification_status",
        &r.incremental_identification_status,
    );
    push_bool(&mut q, "simulator", r.simulator);
    push_bool(&mut q, "active_call", r.active_call);
    q
}

fn search_query_v3(r: &SearchEventsRequest) -> Query {
    // v3 requires `limit`; send v4's default so both generations answer alike.
    let mut q = vec![("limit", r.limit.unwrap_or(10).to_string())];
    common_filters(&mut q, r);
    if let Some(start) = &r.start {
        q.push(("start", timestamp_to_millis(start).to_string()));
    }
    if let Some(end) = &r.end {
        q.push(("end", timestamp_to_millis(end).to_string()));
    }
    push_bool(&mut q, "ip_blocklist", r.ip_blocklist);
    push_bool(&mut q, "datacenter", r.datacenter);
    q
}

/// FNV-1a: a stable, non-reversible-enough tag of the key for cache identity only.
fn digest(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
