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
//!
//! Tests script further faults and read every request received through [`Control`].

// Handlers answer early with a ready `Response`; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

pub mod data;

use std::{
    collections::VecDeque,
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
}

#[derive(Debug, Clone)]
struct AppState {
    creds: Arc<Credentials>,
    control: Arc<Control>,
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
        .route("/v4/events/{event_id}", get(v4_event))
        .route("/events/search", get(v3_search))
        .route("/events/{request_id}", get(v3_event))
        .route("/visitors/{visitor_id}", get(v3_visits))
        .route("/v1/fingerprint/lookup", post(stytch_lookup))
        .route("/v1/rules/list", post(stytch_rules))
        .route("/v1/verdict_reasons/list", post(stytch_reasons))
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
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
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
    let visitor = data::visitor_id_for(&event_id);
    answer(
        StatusCode::OK,
        data::event_v4(&event_id, &visitor, data::timestamp_of(&event_id)),
    )
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
    let visitor = data::visitor_id_for(&request_id);
    let v4 = data::event_v4(&request_id, &visitor, data::timestamp_of(&request_id));
    answer(StatusCode::OK, data::event_v3(&v4))
}

/// Parsed search parameters both generations share.
struct Search {
    limit: u64,
    offset: u64,
    visitor_id: Option<String>,
    linked_id: Option<String>,
    suspect: Option<bool>,
    reverse: bool,
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
    Ok(Search {
        limit,
        offset,
        visitor_id: get("visitor_id"),
        linked_id: get("linked_id"),
        suspect: flag("suspect")?,
        reverse: flag("reverse")?.unwrap_or(false),
    })
}

/// The events a search finds: a visitor's visits, or events seeded by the filters.
fn find(search: &Search, query_seed: &str) -> (Vec<Json>, Option<String>) {
    let visitor = search
        .visitor_id
        .clone()
        .unwrap_or_else(|| data::visitor_id_for(query_seed));
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
        if let Some(linked) = &search.linked_id {
            event["linked_id"] = json!(linked);
        }
        if let Some(s) = search.suspect {
            event["suspect"] = json!(s);
        }
        events.push(event);
    }
    let next = (end < total).then(|| format!("sandbox-page-{end}"));
    (events, next)
}

async fn v4_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
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
    let (events, next) = find(&search, uri.query().unwrap_or_default());
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
    uri: Uri,
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
    let (events, next) = find(&search, uri.query().unwrap_or_default());
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
    search.visitor_id = Some(visitor_id.clone());
    let (events, next) = find(&search, &visitor_id);
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
    answer(
        StatusCode::OK,
        data::stytch_lookup(
            telemetry_id,
            req.get("external_metadata"),
            &at(created),
            &at(created + 300_000),
        ),
    )
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
    let rules = data::stytch_rules();
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
    let reasons: Vec<Json> = data::stytch_verdict_reasons()
        .into_iter()
        .filter(|r| !only || r.get("override_action").is_some())
        .collect();
    answer(
        StatusCode::OK,
        json!({"request_id": "request-id-sandbox-verdict-reasons", "status_code": 200, "verdict_reason_actions": reasons}),
    )
}
