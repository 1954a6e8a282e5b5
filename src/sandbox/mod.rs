//! The sandbox: an embedded emulator of the three upstream REST surfaces
//! (fingerprint.com v4 and v3, Stytch DFP), served over HTTP on loopback.
//!
//! The gateway's real clients talk to it, so `--sandbox` runs the whole path with no
//! credentials and no network. It checks credentials the way the real APIs do and
//! answers any well-formed id with deterministic data (see [`data`]). Ids with these
//! prefixes trigger failures:
//!
//! | prefix | answer |
//! |---|---|
//! | `notfound` | 404 with the upstream's not-found error |
//! | `ratelimit` | 429 with `Retry-After: 7` |
//! | `error500` | 500 with the upstream's JSON error |
//! | `html` | 502 with an HTML page, as a failing proxy sends |
//! | `slow` | the normal answer, after 3 seconds |
//! | `notready` | (event updates) 409 `state_not_ready` to the first two updates of the event |
//!
//! Writes are kept: an updated event reads back updated, a deleted visitor's events are
//! gone, and Stytch rules and verdict-reason overrides change later lookups and lists.
//!
//! Tests script further faults and read every request received through [`Control`].

// Handlers answer early with a ready `Response`; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

pub mod data;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::serve::ListenerExt;
use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;

/// Credentials the sandbox accepts, and the gateway uses in `--sandbox` mode.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// fingerprint.com secret API key.
    pub fingerprint_secret: String,
    /// Stytch project id.
    pub stytch_project_id: String,
    /// Stytch secret.
    pub stytch_secret: String,
}

/// One request the sandbox received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path, percent-encoded as received.
    pub path: String,
    /// Raw query string ("" if none).
    pub query: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

/// An answer a test scripts for the next request, whatever it asks.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Content type.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long first.
    pub delay: Duration,
}

/// Test hooks: scripted answers, added latency, and the log of requests.
#[derive(Debug, Default)]
pub struct Control {
    recorded: Mutex<Vec<Recorded>>,
    scripted: Mutex<VecDeque<Scripted>>,
    delay: Mutex<Duration>,
    read_delay: Mutex<Duration>,
}

#[derive(Debug, Clone)]
struct AppState {
    creds: Arc<Credentials>,
    control: Arc<Control>,
    world: Arc<Mutex<World>>,
}

/// What writes changed.
#[derive(Debug)]
struct World {
    /// Per event id: v4 members set by updates (`linked_id`, `tags`, `suspect`).
    updates: HashMap<String, serde_json::Map<String, Json>>,
    /// Deleted visitors.
    deleted: HashSet<String>,
    /// Update attempts per `notready…` event.
    attempts: HashMap<String, u32>,
    /// The visitor of each event a search or visit list produced, so the event reads back alike.
    visitor_of: HashMap<String, String>,
    /// Stytch rules in list order.
    rules: Vec<Json>,
    /// Stytch verdict reasons with their overrides.
    reasons: Vec<Json>,
}

impl Default for World {
    fn default() -> Self {
        Self {
            updates: HashMap::new(),
            deleted: HashSet::new(),
            attempts: HashMap::new(),
            visitor_of: HashMap::new(),
            rules: data::stytch_rules(),
            reasons: data::stytch_verdict_reasons(),
        }
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its test hooks.
    pub control: Arc<Control>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

// === impl Credentials ===

impl Default for Credentials {
    fn default() -> Self {
        Self {
            fingerprint_secret: "sandbox-fingerprint-secret-key".to_owned(),
            stytch_project_id: "project-test-sandbox".to_owned(),
            stytch_secret: "secret-test-sandbox".to_owned(),
        }
    }
}

// === impl Scripted ===

impl Scripted {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

// === impl Control ===

impl Control {
    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.recorded.lock() {
            r.clear();
        }
    }

    /// Answers the next request with `answer`.
    pub fn script(&self, answer: Scripted) {
        if let Ok(mut s) = self.scripted.lock() {
            s.push_back(answer);
        }
    }

    /// Delays every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.delay.lock() {
            *d = delay;
        }
    }

    /// Holds every answer to a read (GET, or a Stytch lookup or list) for `delay` after
    /// it was computed: the answer reflects the state before any write made meanwhile.
    pub fn set_read_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.read_delay.lock() {
            *d = delay;
        }
    }

    fn read_delay(&self) -> Duration {
        self.read_delay.lock().map(|d| *d).unwrap_or_default()
    }

    fn record(&self, r: Recorded) {
        if let Ok(mut all) = self.recorded.lock() {
            all.push(r);
        }
    }

    fn next_scripted(&self) -> Option<Scripted> {
        self.scripted.lock().ok()?.pop_front()
    }

    fn delay(&self) -> Duration {
        self.delay.lock().map(|d| *d).unwrap_or_default()
    }
}

// === impl Sandbox ===

impl Sandbox {
    /// Serves the sandbox on `listener` until dropped or shut down.
    pub fn start(listener: TcpListener, creds: Credentials) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let control = Arc::new(Control::default());
        let state = AppState {
            creds: Arc::new(creds),
            control: control.clone(),
            world: Arc::new(Mutex::new(World::default())),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            // TCP_NODELAY: answers must not wait for delayed ACKs (see server.rs).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server failed");
            }
        });
        Ok(Self {
            addr,
            control,
            shutdown: Some(tx),
            task,
        })
    }

    /// The base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v4/events", get(v4_search))
        .route("/v4/events/{event_id}", get(v4_event).patch(v4_update))
        .route(
            "/v4/visitors/{visitor_id}",
            axum::routing::delete(v4_delete),
        )
        .route("/events/search", get(v3_search))
        .route("/events/{request_id}", get(v3_event).put(v3_update))
        .route("/visitors/{visitor_id}", get(v3_visits).delete(v3_delete))
        .route("/v1/fingerprint/lookup", post(stytch_lookup))
        .route("/v1/rules/list", post(stytch_rules))
        .route("/v1/rules/set", post(stytch_set_rule))
        .route("/v1/verdict_reasons/list", post(stytch_reasons))
        .route("/v1/verdict_reasons/override", post(stytch_override))
        .fallback(not_routed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_and_script,
        ))
        .with_state(state)
}

/// Records every request, then applies added latency and scripted answers.
async fn record_and_script(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    state.control.record(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let delay = state.control.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(s) = state.control.next_scripted() {
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        let mut response = (
            StatusCode::from_u16(s.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            s.body,
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&s.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        for (k, v) in s.headers {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                response.headers_mut().insert(k, v);
            }
        }
        return response;
    }
    let is_read = parts.method == Method::GET
        || parts.uri.path().ends_with("/lookup")
        || parts.uri.path().ends_with("/list");
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    let read_delay = state.control.read_delay();
    if is_read && !read_delay.is_zero() {
        tokio::time::sleep(read_delay).await;
    }
    response
}

async fn not_routed(method: Method, uri: Uri) -> Response {
    let body = json!({"error": {"code": "route_not_found", "message": format!("no route for {method} {}", uri.path())}});
    answer(StatusCode::NOT_FOUND, body)
}

fn answer(status: StatusCode, body: Json) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Which fingerprint.com generation a route belongs to.
#[derive(Clone, Copy)]
enum Gen {
    V3,
    V4,
}

fn fp_error(
    generation: Gen,
    status: StatusCode,
    v4_code: &str,
    v3_code: &str,
    message: &str,
) -> Response {
    let code = match generation {
        Gen::V4 => v4_code,
        Gen::V3 => v3_code,
    };
    answer(status, json!({"error": {"code": code, "message": message}}))
}

/// Checks the secret key the way each generation does.
fn fp_auth(state: &AppState, headers: &HeaderMap, generation: Gen) -> Result<(), Response> {
    let given = match generation {
        Gen::V4 => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Gen::V3 => headers.get("auth-api-key").and_then(|v| v.to_str().ok()),
    };
    match given {
        None | Some("") => Err(fp_error(
            generation,
            StatusCode::FORBIDDEN,
            "secret_api_key_required",
            "TokenRequired",
            "secret API key in header is missing or empty",
        )),
        Some(key) if key == state.creds.fingerprint_secret => Ok(()),
        Some(_) => Err(fp_error(
            generation,
            StatusCode::FORBIDDEN,
            "secret_api_key_not_found",
            "TokenNotFound",
            "secret API key not found",
        )),
    }
}

/// The failure an id asks for, if any (see the module docs).
async fn magic(
    id: &str,
    not_found: impl FnOnce() -> Response,
    rate_limited: impl FnOnce() -> Response,
) -> Option<Response> {
    let id = id.to_ascii_lowercase();
    if id.starts_with("notfound") {
        return Some(not_found());
    }
    if id.starts_with("ratelimit") {
        let mut r = rate_limited();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        return Some(r);
    }
    if id.starts_with("error500") {
        return Some(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": "failed", "message": "sandbox internal error"}}),
        ));
    }
    if id.starts_with("html") {
        let page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";
        let mut r = (StatusCode::BAD_GATEWAY, page).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return Some(r);
    }
    if id.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    None
}

async fn fp_magic(id: &str, generation: Gen, what: &str) -> Option<Response> {
    let (v4, v3) = if what == "visitor" {
        ("visitor_not_found", "VisitorNotFound")
    } else {
        ("event_not_found", "RequestNotFound")
    };
    magic(
        id,
        || {
            fp_error(
                generation,
                StatusCode::NOT_FOUND,
                v4,
                v3,
                &format!("{what} not found"),
            )
        },
        || match generation {
            Gen::V4 => fp_error(
                generation,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "",
                "too many requests",
            ),
            Gen::V3 => answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too many requests"}),
            ),
        },
    )
    .await
}

async fn v4_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, Gen::V4) {
        return r;
    }
    if let Some(r) = fp_magic(&event_id, Gen::V4, "event").await {
        return r;
    }
    match state.event(&event_id) {
        Some(event) => answer(StatusCode::OK, event),
        None => fp_error(
            Gen::V4,
            StatusCode::NOT_FOUND,
            "event_not_found",
            "",
            "event not found",
        ),
    }
}

async fn v3_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, Gen::V3) {
        return r;
    }
    if let Some(r) = fp_magic(&request_id, Gen::V3, "request id").await {
        return r;
    }
    match state.event(&request_id) {
        Some(v4) => answer(StatusCode::OK, data::event_v3(&v4)),
        None => fp_error(
            Gen::V3,
            StatusCode::NOT_FOUND,
            "",
            "RequestNotFound",
            "request id not found",
        ),
    }
}

/// Parsed search parameters both generations share.
struct Search {
    limit: u64,
    offset: u64,
    visitor_id: Option<String>,
    linked_id: Option<String>,
    suspect: Option<bool>,
    reverse: bool,
    /// `source=edge`: Automation Intelligence events only.
    edge: bool,
}

fn parse_search(
    params: &[(String, String)],
    generation: Gen,
    default_limit: u64,
    max_limit: u64,
) -> Result<Search, Response> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bad = |code: &str, msg: &str| {
        fp_error(
            generation,
            StatusCode::BAD_REQUEST,
            code,
            "RequestCannotBeParsed",
            msg,
        )
    };
    let limit = match get("limit") {
        None => default_limit,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if (1..=max_limit).contains(&n) => n,
            _ => return Err(bad("request_cannot_be_parsed", "invalid limit")),
        },
    };
    let key = get("pagination_key").or_else(|| get("paginationKey"));
    let offset = match key {
        None => 0,
        Some(k) => match k
            .strip_prefix("sandbox-page-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => n,
            None => return Err(bad("request_cannot_be_parsed", "invalid pagination key")),
        },
    };
    let flag = |k: &str| -> Result<Option<bool>, Response> {
        match get(k).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(bad("request_cannot_be_parsed", &format!("invalid {k}"))),
        }
    };
    // Closed vocabularies are refused the way the real APIs refuse them: a 400 naming
    // the parameter.
    for (name, allowed) in vocabularies(generation) {
        for (_, value) in params.iter().filter(|(k, _)| k == name) {
            if !allowed.contains(&value.as_str()) {
                return Err(bad(
                    "request_cannot_be_parsed",
                    &format!("invalid {}", name.replace('_', " ")),
                ));
            }
        }
    }
    Ok(Search {
        limit,
        offset,
        visitor_id: get("visitor_id"),
        linked_id: get("linked_id"),
        suspect: flag("suspect")?,
        reverse: flag("reverse")?.unwrap_or(false),
        edge: get("source").as_deref() == Some("edge"),
    })
}

/// The closed vocabularies of search parameters, as each generation documents them.
fn vocabularies(generation: Gen) -> Vec<(&'static str, &'static [&'static str])> {
    let mut v: Vec<(&'static str, &'static [&'static str])> = vec![
        ("bot", &["all", "good", "bad", "none"]),
        ("vpn_confidence", &["high", "medium", "low"]),
        (
            "rare_device_percentile_bucket",
            &[
                "<p95",
                "p95-p99",
                "p99-p99.5",
                "p99.5-p99.9",
                "p99.9+",
                "not_seen",
            ],
        ),
        ("sdk_platform", &["js", "android", "ios"]),
    ];
    if matches!(generation, Gen::V4) {
        v.extend::<[(&'static str, &'static [&'static str]); 6]>([
            ("bot_info", &["all", "none"]),
            (
                "bot_info_category",
                &[
                    "advertising_and_marketing",
                    "aggregator",
                    "ai_agent",
                    "ai_assistant",
                    "ai_browser",
                    "ai_crawler",
                    "ai_search",
                    "browser_automation",
                    "ecommerce",
                    "monitoring_and_analytics",
                    "other",
                    "scraping",
                    "security",
                    "search_engine_crawler",
                    "search_engine_optimization",
                    "unknown",
                ],
            ),
            (
                "bot_info_identity",
                &["verified", "signed", "spoofed", "unknown"],
            ),
            ("bot_info_confidence", &["low", "medium", "high"]),
            (
                "incremental_identification_status",
                &["partially_completed", "completed"],
            ),
            ("source", &["edge"]),
        ]);
    }
    v
}

/// What makes one search the same search on every page: its parameters without the
/// page size and position.
fn search_seed(params: &[(String, String)]) -> String {
    let mut kept: Vec<String> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "pagination_key" | "paginationKey"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    kept.sort();
    kept.join("&")
}

/// The events a search finds: a visitor's visits, or events seeded by the filters.
fn find(state: &AppState, search: &Search, query_seed: &str) -> (Vec<Json>, Option<String>) {
    let visitor = search
        .visitor_id
        .clone()
        .unwrap_or_else(|| data::visitor_id_for(query_seed));
    if state.is_deleted(&visitor) {
        return (Vec::new(), None);
    }
    let total = if search.visitor_id.is_some() {
        data::visit_count(&visitor)
    } else {
        25
    };
    let mut events = Vec::new();
    let end = (search.offset + search.limit).min(total);
    for i in search.offset..end {
        let n = if search.reverse { total - 1 - i } else { i };
        let id = data::visit_id(&visitor, n);
        let mut event = data::event_v4(&id, &visitor, data::timestamp_of(&id));
        state.apply_updates(&id, &mut event);
        if let Ok(mut w) = state.world.lock() {
            w.visitor_of.insert(id.clone(), visitor.clone());
        }
        if let Some(linked) = &search.linked_id {
            event["linked_id"] = json!(linked);
        }
        if let Some(s) = search.suspect {
            event["suspect"] = json!(s);
        }
        if search.edge {
            event["source"] = json!("edge");
        }
        events.push(event);
    }
    let next = (end < total).then(|| format!("sandbox-page-{end}"));
    (events, next)
}

async fn v4_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, Gen::V4) {
        return r;
    }
    let search = match parse_search(&params, Gen::V4, 10, 100) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(id) = search.visitor_id.as_deref().or(search.linked_id.as_deref())
        && let Some(r) = fp_magic(id, Gen::V4, "visitor").await
    {
        return r;
    }
    let (events, next) = find(&state, &search, &search_seed(&params));
    let mut body = json!({"events": events});
    if let Some(key) = next {
        body["pagination_key"] = json!(key);
    }
    if let Some((_, n)) = params.iter().find(|(k, _)| k == "total_hits") {
        body["total_hits"] = json!(n.parse::<u64>().unwrap_or(0).min(25));
    }
    answer(StatusCode::OK, body)
}

async fn v3_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, Gen::V3) {
        return r;
    }
    if !params.iter().any(|(k, _)| k == "limit") {
        return fp_error(
            Gen::V3,
            StatusCode::BAD_REQUEST,
            "",
            "RequestCannotBeParsed",
            "limit is required",
        );
    }
    let search = match parse_search(&params, Gen::V3, 10, 100) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(id) = search.visitor_id.as_deref().or(search.linked_id.as_deref())
        && let Some(r) = fp_magic(id, Gen::V3, "visitor").await
    {
        return r;
    }
    let (events, next) = find(&state, &search, &search_seed(&params));
    let mut body = json!({"events": events.iter().map(data::event_v3).collect::<Vec<_>>()});
    if let Some(key) = next {
        body["paginationKey"] = json!(key);
    }
    answer(StatusCode::OK, body)
}

async fn v3_visits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(visitor_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, Gen::V3) {
        return r;
    }
    if let Some(r) = fp_magic(&visitor_id, Gen::V3, "visitor").await {
        return r;
    }
    let mut search = match parse_search(&params, Gen::V3, 100, 500) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if state.is_deleted(&visitor_id) {
        return fp_error(
            Gen::V3,
            StatusCode::NOT_FOUND,
            "",
            "VisitorNotFound",
            "visitor not found",
        );
    }
    search.visitor_id = Some(visitor_id.clone());
    let (events, next) = find(&state, &search, &visitor_id);
    let mut body = json!({
        "visitorId": visitor_id,
        "visits": events.iter().map(data::visit_v3).collect::<Vec<_>>(),
    });
    if let Some(key) = next {
        body["paginationKey"] = json!(key);
        if let Some(last) = events.last() {
            body["lastTimestamp"] = last["timestamp"].clone();
        }
    }
    answer(StatusCode::OK, body)
}

fn stytch_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut d = data::Dice::new(message);
    answer(
        status,
        json!({
            "status_code": status.as_u16(),
            "request_id": format!("request-id-sandbox-{}", d.uuid()),
            "error_type": error_type,
            "error_message": message,
            "error_url": format!("https://stytch.com/docs/api/errors/{}", status.as_u16()),
        }),
    )
}

/// Checks Basic credentials and the JSON body, the way Stytch does.
fn stytch_request(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Json, Response> {
    let expected = format!(
        "{}:{}",
        state.creds.stytch_project_id, state.creds.stytch_secret
    );
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    if given.as_deref() != Some(expected.as_bytes()) {
        return Err(stytch_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_credentials",
            "Unauthorized credentials.",
        ));
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Err(stytch_error(
            StatusCode::BAD_REQUEST,
            "invalid_content_type",
            "Content-Type must be application/json.",
        ));
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(v @ Json::Object(_)) => Ok(v),
        _ => Err(stytch_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
            "The request body is not a JSON object.",
        )),
    }
}

async fn stytch_lookup(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match stytch_request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(telemetry_id) = req
        .get("telemetry_id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    else {
        return stytch_error(
            StatusCode::BAD_REQUEST,
            "missing_telemetry_id",
            "telemetry_id is required.",
        );
    };
    let not_found = || {
        stytch_error(
            StatusCode::NOT_FOUND,
            "telemetry_id_not_found",
            "The telemetry_id was not found.",
        )
    };
    let limited = || {
        stytch_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests have been made.",
        )
    };
    if let Some(r) = magic(telemetry_id, not_found, limited).await {
        return r;
    }
    let created = data::timestamp_of(telemetry_id);
    let at = |ms: i64| {
        prost_types::Timestamp {
            seconds: ms / 1000,
            nanos: 0,
        }
        .to_string()
    };
    let mut body = data::stytch_lookup(
        telemetry_id,
        req.get("external_metadata"),
        &at(created),
        &at(created + 300_000),
    );
    state.apply_rules(&mut body);
    answer(StatusCode::OK, body)
}

async fn stytch_rules(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match stytch_request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let limit = match req.get("limit") {
        None => 10,
        Some(l) => match l.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                return stytch_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_limit",
                    "limit must be between 1 and 100.",
                );
            }
        },
    };
    let offset = match req
        .get("cursor")
        .and_then(Json::as_str)
        .filter(|c| !c.is_empty())
    {
        None => 0,
        Some(c) => match c
            .strip_prefix("sandbox-cursor-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => {
                return stytch_error(
                    StatusCode::BAD_REQUEST,
                    "dfp_rule_invalid_cursor",
                    "The cursor is invalid.",
                );
            }
        },
    };
    let rules = state
        .world
        .lock()
        .map(|w| w.rules.clone())
        .unwrap_or_default();
    let end = (offset + limit).min(rules.len());
    let page: Vec<Json> = rules
        .get(offset.min(end)..end)
        .map(<[Json]>::to_vec)
        .unwrap_or_default();
    let next = if end < rules.len() {
        json!(format!("sandbox-cursor-{end}"))
    } else {
        Json::Null
    };
    answer(
        StatusCode::OK,
        json!({"request_id": format!("request-id-sandbox-{}", data::Dice::new(&format!("rules{offset}")).uuid()), "status_code": 200, "rules": page, "next_cursor": next}),
    )
}

async fn stytch_reasons(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match stytch_request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let only = req
        .get("overrides_only")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let all = state
        .world
        .lock()
        .map(|w| w.reasons.clone())
        .unwrap_or_default();
    let reasons: Vec<Json> = all
        .into_iter()
        .filter(|r| !only || r.get("override_action").is_some())
        .collect();
    answer(
        StatusCode::OK,
        json!({"request_id": "request-id-sandbox-verdict-reasons", "status_code": 200, "verdict_reason_actions": reasons}),
    )
}

// === impl AppState: what writes changed ===

impl AppState {
    fn is_deleted(&self, visitor_id: &str) -> bool {
        self.world
            .lock()
            .is_ok_and(|w| w.deleted.contains(visitor_id))
    }

    fn apply_updates(&self, event_id: &str, event: &mut Json) {
        if let (Ok(w), Some(e)) = (self.world.lock(), event.as_object_mut())
            && let Some(changes) = w.updates.get(event_id)
        {
            for (k, v) in changes {
                e.insert(k.clone(), v.clone());
            }
        }
    }

    /// The v4 event for an id, with updates applied; `None` once its visitor is deleted.
    fn event(&self, event_id: &str) -> Option<Json> {
        let visitor = self
            .world
            .lock()
            .ok()
            .and_then(|w| w.visitor_of.get(event_id).cloned())
            .unwrap_or_else(|| data::visitor_id_for(event_id));
        if self.is_deleted(&visitor) {
            return None;
        }
        let mut event = data::event_v4(event_id, &visitor, data::timestamp_of(event_id));
        self.apply_updates(event_id, &mut event);
        Some(event)
    }

    /// Rules first (a match wins, as RULE_MATCH), then verdict-reason overrides.
    fn apply_rules(&self, lookup: &mut Json) {
        let Ok(world) = self.world.lock() else { return };
        let fp = lookup["fingerprints"].clone();
        let net = lookup["properties"]["network_properties"].clone();
        let matched = world.rules.iter().find_map(|rule| {
            let kind = rule["rule_type"].as_str()?;
            let (field, value) = match kind {
                "CIDR_BLOCK" => ("cidr_block", rule["cidr_block"].as_str()?),
                "COUNTRY_CODE" => ("country_code", rule["country_code"].as_str()?),
                "ASN" => ("asn", rule["asn"].as_str()?),
                other => {
                    let field = other.to_ascii_lowercase();
                    let value = rule[&field].as_str()?;
                    return (fp[&field].as_str() == Some(value))
                        .then(|| (rule.clone(), value.to_owned()));
                }
            };
            let hit = match field {
                "cidr_block" => net["ip_address"]
                    .as_str()
                    .is_some_and(|ip| in_cidr(ip, value)),
                "country_code" => net["ip_geolocation"]["country"].as_str() == Some(value),
                _ => net["asn"]["asn"].as_str() == Some(value),
            };
            hit.then(|| (rule.clone(), value.to_owned()))
        });
        let verdict = &mut lookup["verdict"];
        if let Some((rule, identifier)) = matched {
            verdict["action"] = rule["action"].clone();
            verdict["reasons"] = json!(["RULE_MATCH"]);
            verdict["rule_match_type"] = rule["rule_type"].clone();
            verdict["rule_match_identifier"] = json!(identifier);
            return;
        }
        let reasons: Vec<String> = verdict["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut applied = Vec::new();
        for reason in &reasons {
            if let Some(o) = world
                .reasons
                .iter()
                .find(|r| r["verdict_reason"] == reason.as_str())
                && let Some(action) = o.get("override_action")
            {
                verdict["action"] = action.clone();
                applied.push(json!({"verdict_reason": reason, "override_action": action}));
            }
        }
        verdict["verdict_reason_overrides"] = json!(applied);
    }
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Ok(ip), Ok(net), Ok(prefix)) = (
        ip.parse::<std::net::Ipv4Addr>(),
        net.parse::<std::net::Ipv4Addr>(),
        prefix.parse::<u32>(),
    ) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The update members each generation accepts, and their v4 names.
fn update_members(generation: Gen) -> [(&'static str, &'static str); 3] {
    match generation {
        Gen::V4 => [
            ("linked_id", "linked_id"),
            ("tags", "tags"),
            ("suspect", "suspect"),
        ],
        Gen::V3 => [
            ("linkedId", "linked_id"),
            ("tag", "tags"),
            ("suspect", "suspect"),
        ],
    }
}

async fn update(
    state: AppState,
    headers: HeaderMap,
    event_id: String,
    body: Bytes,
    generation: Gen,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, generation) {
        return r;
    }
    if let Some(r) = fp_magic(&event_id, generation, "event").await {
        return r;
    }
    let bad = |msg: &str| {
        fp_error(
            generation,
            StatusCode::BAD_REQUEST,
            "request_cannot_be_parsed",
            "RequestCannotBeParsed",
            msg,
        )
    };
    let Ok(Json::Object(body)) = serde_json::from_slice::<Json>(&body) else {
        return bad("request body is not a JSON object");
    };
    let members = update_members(generation);
    let mut changes = serde_json::Map::new();
    for (key, value) in body {
        let Some((_, v4)) = members.iter().find(|(name, _)| *name == key) else {
            return bad(&format!("unknown field {key}"));
        };
        let ok = match *v4 {
            "linked_id" => value.is_string(),
            "tags" => value.is_object(),
            _ => value.is_boolean(),
        };
        if !ok {
            return bad(&format!("invalid {key}"));
        }
        changes.insert((*v4).to_owned(), value);
    }
    if changes.is_empty() {
        return bad("nothing to update");
    }
    if state.event(&event_id).is_none() {
        return fp_error(
            generation,
            StatusCode::NOT_FOUND,
            "event_not_found",
            "RequestNotFound",
            "event not found",
        );
    }
    let Ok(mut world) = state.world.lock() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": "failed", "message": "sandbox state"}}),
        );
    };
    if event_id.to_ascii_lowercase().starts_with("notready") {
        let attempts = world.attempts.entry(event_id.clone()).or_insert(0);
        *attempts += 1;
        if *attempts <= 2 {
            return fp_error(
                generation,
                StatusCode::CONFLICT,
                "state_not_ready",
                "StateNotReady",
                "resource is not mutable yet, try again",
            );
        }
    }
    world.updates.entry(event_id).or_default().extend(changes);
    match generation {
        Gen::V4 => StatusCode::OK.into_response(),
        Gen::V3 => answer(StatusCode::OK, json!({})),
    }
}

async fn v4_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Bytes,
) -> Response {
    update(state, headers, event_id, body, Gen::V4).await
}

async fn v3_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Bytes,
) -> Response {
    update(state, headers, event_id, body, Gen::V3).await
}

async fn delete(
    state: AppState,
    headers: HeaderMap,
    visitor_id: String,
    generation: Gen,
) -> Response {
    if let Err(r) = fp_auth(&state, &headers, generation) {
        return r;
    }
    if let Some(r) = fp_magic(&visitor_id, generation, "visitor").await {
        return r;
    }
    let Ok(mut world) = state.world.lock() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": "failed", "message": "sandbox state"}}),
        );
    };
    if !world.deleted.insert(visitor_id) {
        return fp_error(
            generation,
            StatusCode::NOT_FOUND,
            "visitor_not_found",
            "VisitorNotFound",
            "visitor not found",
        );
    }
    match generation {
        Gen::V4 => StatusCode::OK.into_response(),
        Gen::V3 => answer(StatusCode::OK, json!({})),
    }
}

async fn v4_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(visitor_id): Path<String>,
) -> Response {
    delete(state, headers, visitor_id, Gen::V4).await
}

async fn v3_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(visitor_id): Path<String>,
) -> Response {
    delete(state, headers, visitor_id, Gen::V3).await
}

const RULE_IDENTIFIERS: [(&str, &str); 9] = [
    ("visitor_id", "VISITOR_ID"),
    ("browser_id", "BROWSER_ID"),
    ("visitor_fingerprint", "VISITOR_FINGERPRINT"),
    ("browser_fingerprint", "BROWSER_FINGERPRINT"),
    ("hardware_fingerprint", "HARDWARE_FINGERPRINT"),
    ("network_fingerprint", "NETWORK_FINGERPRINT"),
    ("cidr_block", "CIDR_BLOCK"),
    ("country_code", "COUNTRY_CODE"),
    ("asn", "ASN"),
];

fn request_id(seed: &str) -> String {
    format!("request-id-sandbox-{}", data::Dice::new(seed).uuid())
}

fn now_rfc3339(offset_minutes: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let secs = i64::try_from(now + offset_minutes * 60).unwrap_or_default();
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
    .to_string()
}

/// The action word a Stytch write request carries under `key`, if it is a valid one.
fn rule_action(req: &Json, key: &str) -> Option<String> {
    req.get(key)
        .and_then(Json::as_str)
        .filter(|a| matches!(*a, "ALLOW" | "BLOCK" | "CHALLENGE" | "NONE"))
        .map(str::to_owned)
}

async fn stytch_set_rule(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match stytch_request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bad = |t: &str, m: &str| stytch_error(StatusCode::BAD_REQUEST, t, m);
    let Some(action) = rule_action(&req, "action") else {
        return bad(
            "invalid_action_for_rules",
            "Invalid action; must be ALLOW, BLOCK, CHALLENGE or NONE.",
        );
    };
    let given: Vec<(&str, &str, String)> = RULE_IDENTIFIERS
        .iter()
        .filter_map(|(field, kind)| {
            req.get(*field)
                .and_then(Json::as_str)
                .map(|v| (*field, *kind, v.to_owned()))
        })
        .collect();
    let [(field, kind, value)] = given.as_slice() else {
        return bad(
            "invalid_rule_identifier",
            "Exactly one identifier must be specified.",
        );
    };
    if *field == "cidr_block"
        && let Some((_, p)) = value.split_once('/')
        && !p.parse::<u8>().is_ok_and(|n| (16..=32).contains(&n))
    {
        return bad(
            "cidr_block_invalid_prefix",
            "CIDR prefix must be between 16 and 32.",
        );
    }
    if *field == "country_code" && action == "ALLOW" {
        return bad(
            "invalid_country_code_allow_rule",
            "ALLOW rules cannot be set on a country code.",
        );
    }
    let Ok(mut world) = state.world.lock() else {
        return stytch_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "sandbox state",
        );
    };
    world
        .rules
        .retain(|r| r[*field].as_str() != Some(value.as_str()));
    let mut answer_body = json!({"request_id": request_id(&format!("set{value}{action}")), "status_code": 200, "action": action, *field: value});
    if action != "NONE" {
        let mut rule = json!({"rule_type": kind, "action": action, *field: value, "created_at": now_rfc3339(0)});
        if let Some(d) = req.get("description").and_then(Json::as_str) {
            rule["description"] = json!(d);
        }
        if let Some(m) = req.get("expires_in_minutes").and_then(Json::as_u64) {
            rule["expires_at"] = json!(now_rfc3339(m));
            answer_body["expires_at"] = rule["expires_at"].clone();
        }
        world.rules.insert(0, rule);
    }
    answer(StatusCode::OK, answer_body)
}

async fn stytch_override(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match stytch_request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bad = |t: &str, m: &str| stytch_error(StatusCode::BAD_REQUEST, t, m);
    let reason = req
        .get("verdict_reason")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(action) = rule_action(&req, "override_action") else {
        return bad(
            "invalid_override_action",
            "Invalid override action; must be ALLOW, BLOCK, CHALLENGE or NONE.",
        );
    };
    if reason == "RULE_MATCH" {
        return bad(
            "verdict_reason_cannot_be_overridden",
            "The RULE_MATCH verdict reason cannot be overridden.",
        );
    }
    let Ok(mut world) = state.world.lock() else {
        return stytch_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "sandbox state",
        );
    };
    let Some(entry) = world
        .reasons
        .iter_mut()
        .find(|r| r["verdict_reason"] == reason.as_str())
    else {
        return bad("invalid_verdict_reason", "Unknown verdict reason.");
    };
    let Some(obj) = entry.as_object_mut() else {
        return stytch_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "sandbox state",
        );
    };
    for k in [
        "override_action",
        "override_created_at",
        "override_description",
    ] {
        obj.remove(k);
    }
    if action != "NONE" {
        obj.insert("override_action".into(), json!(action));
        obj.insert("override_created_at".into(), json!(now_rfc3339(0)));
        if let Some(d) = req.get("override_description").and_then(Json::as_str) {
            obj.insert("override_description".into(), json!(d));
        }
    }
    let reason_action = Json::Object(obj.clone());
    answer(
        StatusCode::OK,
        json!({"request_id": request_id(&format!("override{reason}{action}")), "status_code": 200, "verdict_reason_action": reason_action}),
    )
}
