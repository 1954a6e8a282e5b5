//! The fingerprint.com Server API emulator: one set of handlers, parameterised by the
//! generation (v4 `/v4/...` with `Authorization: Bearer`, v3 with `Auth-API-Key`).
//!
//! Answers follow each generation's OpenAPI schema, errors included: v3's visitor
//! listing answers its 400/403/429 as `{"error": "text"}`, every other error of both
//! generations as `{"error": {"code", "message"}}` with the generation's own codes.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value as Json, json};

use super::{AppState, Fault, answer, data, fault_of, sandbox_state_lost};
use crate::cidr::Cidr;

pub mod edge;
mod search;

use search::{find, parse_search, search_seed};

/// Which generation a route belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gen {
    /// Server API v3.
    V3,
    /// Server API v4.
    V4,
}

/// Which operation, for the error shapes that differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Event,
    Search,
    Visits,
    Update,
    Delete,
    Edge,
}

/// An error code in both generations' spellings.
#[derive(Clone, Copy)]
struct Code {
    v4: &'static str,
    v3: &'static str,
}

const CANNOT_PARSE: Code = Code {
    v4: "request_cannot_be_parsed",
    v3: "RequestCannotBeParsed",
};
const KEY_REQUIRED: Code = Code {
    v4: "secret_api_key_required",
    v3: "TokenRequired",
};
const KEY_NOT_FOUND: Code = Code {
    v4: "secret_api_key_not_found",
    v3: "TokenNotFound",
};
const EVENT_NOT_FOUND: Code = Code {
    v4: "event_not_found",
    v3: "RequestNotFound",
};
const VISITOR_NOT_FOUND: Code = Code {
    v4: "visitor_not_found",
    v3: "VisitorNotFound",
};
const TOO_MANY: Code = Code {
    v4: "too_many_requests",
    v3: "TooManyRequests",
};
const NOT_READY: Code = Code {
    v4: "state_not_ready",
    v3: "StateNotReady",
};
const FAILED: Code = Code {
    v4: "failed",
    v3: "Failed",
};

// === impl Gen ===

impl Gen {
    fn code(self, code: Code) -> &'static str {
        match self {
            Self::V4 => code.v4,
            Self::V3 => code.v3,
        }
    }
}

/// An error answer in the shape the generation gives this operation.
fn error(generation: Gen, op: Op, status: StatusCode, code: Code, message: &str) -> Response {
    let plain =
        generation == Gen::V3 && op == Op::Visits && matches!(status.as_u16(), 400 | 403 | 429);
    if plain {
        return answer(status, json!({"error": message}));
    }
    answer(
        status,
        json!({"error": {"code": generation.code(code), "message": message}}),
    )
}

/// A fault rule's error answer (see [`super::faults`]), in this generation's shape.
pub(super) fn fault_error(generation: Gen, status: StatusCode, path: &str) -> Response {
    let (code, message) = match status.as_u16() {
        400 => (CANNOT_PARSE, "request cannot be parsed"),
        403 => (KEY_NOT_FOUND, "secret API key not found"),
        404 if path.contains("/visitors/") => (VISITOR_NOT_FOUND, "visitor not found"),
        404 => (EVENT_NOT_FOUND, "event not found"),
        409 => (NOT_READY, "event is not ready yet"),
        429 => (TOO_MANY, "too many requests"),
        _ => (FAILED, "sandbox fault rule"),
    };
    answer(
        status,
        json!({"error": {"code": generation.code(code), "message": message}}),
    )
}

/// Checks the secret key the way each generation does.
fn auth(state: &AppState, headers: &HeaderMap, generation: Gen, op: Op) -> Result<(), Response> {
    let given = match generation {
        Gen::V4 => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Gen::V3 => headers.get("auth-api-key").and_then(|v| v.to_str().ok()),
    };
    let forbidden =
        |code, message| Err(error(generation, op, StatusCode::FORBIDDEN, code, message));
    match given {
        None | Some("") => forbidden(KEY_REQUIRED, "secret API key in header is missing or empty"),
        Some(key)
            if key == state.creds.fingerprint_secret
                || state.creds.also_accepted.iter().any(|k| k == key) =>
        {
            Ok(())
        }
        Some(_) => forbidden(KEY_NOT_FOUND, "secret API key not found"),
    }
}

/// The failure an id asks for, in this generation's shape (a slow id just waits).
async fn injected(
    id: &str,
    generation: Gen,
    op: Op,
    missing: Code,
    what: &str,
) -> Option<Response> {
    let fault = fault_of(id).await?;
    Some(fault_answer(fault, generation, op, missing, what))
}

/// The answer a fault id asks for.
fn fault_answer(fault: Fault, generation: Gen, op: Op, missing: Code, what: &str) -> Response {
    match fault {
        Fault::NotFound => error(
            generation,
            op,
            StatusCode::NOT_FOUND,
            missing,
            &format!("{what} not found"),
        ),
        Fault::RateLimited => {
            let mut r = error(
                generation,
                op,
                StatusCode::TOO_MANY_REQUESTS,
                TOO_MANY,
                "too many requests",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("7"),
            );
            r
        }
        Fault::ServerError => error(
            generation,
            op,
            StatusCode::INTERNAL_SERVER_ERROR,
            FAILED,
            "sandbox internal error",
        ),
        Fault::HtmlPage => super::html_502(),
    }
}

/// `GET /v4/events/{event_id}` and `GET /events/{request_id}`.
pub async fn event(
    generation: Gen,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Response {
    if let Err(r) = auth(&state, &headers, generation, Op::Event) {
        return r;
    }
    if let Some(r) = injected(&event_id, generation, Op::Event, EVENT_NOT_FOUND, "event").await {
        return r;
    }
    let found = state.world.lock().ok().and_then(|w| w.event(&event_id));
    match found {
        Some(v4) => answer(StatusCode::OK, shape(generation, &v4)),
        None => error(
            generation,
            Op::Event,
            StatusCode::NOT_FOUND,
            EVENT_NOT_FOUND,
            "event not found",
        ),
    }
}

fn shape(generation: Gen, v4: &Json) -> Json {
    match generation {
        Gen::V4 => v4.clone(),
        Gen::V3 => data::event_v3(v4),
    }
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
    if generation == Gen::V4 {
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

/// `GET /v4/events` and `GET /events/search`.
pub async fn search(
    generation: Gen,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = auth(&state, &headers, generation, Op::Search) {
        return r;
    }
    if generation == Gen::V3 && !params.iter().any(|(k, _)| k == "limit") {
        return error(
            generation,
            Op::Search,
            StatusCode::BAD_REQUEST,
            CANNOT_PARSE,
            "limit is required",
        );
    }
    let search = match parse_search(&params, generation, Op::Search, (10, 100)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(id) = search.visitor_id.as_deref().or(search.linked_id.as_deref())
        && let Some(r) = injected(id, generation, Op::Search, VISITOR_NOT_FOUND, "visitor").await
    {
        return r;
    }
    let (events, next) = find(&state, &search, &search_seed(&params));
    let (key_name, events) = match generation {
        Gen::V4 => ("pagination_key", events),
        Gen::V3 => ("paginationKey", events.iter().map(data::event_v3).collect()),
    };
    let mut body = json!({ "events": events });
    if let Some(key) = next {
        body[key_name] = json!(key);
    }
    if generation == Gen::V4
        && let Some((_, n)) = params.iter().find(|(k, _)| k == "total_hits")
    {
        body["total_hits"] = json!(n.parse::<u64>().unwrap_or(0).min(25));
    }
    answer(StatusCode::OK, body)
}

/// `GET /visitors/{visitor_id}` (v3 only).
pub async fn visits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(visitor_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let generation = Gen::V3;
    if let Err(r) = auth(&state, &headers, generation, Op::Visits) {
        return r;
    }
    // The v3 document lists no 404 for this path: a visitor with no visits (one never
    // seen, or one deleted) is a 200 with an empty list.
    let unknown = || {
        answer(
            StatusCode::OK,
            json!({"visitorId": visitor_id, "visits": []}),
        )
    };
    match fault_of(&visitor_id).await {
        Some(Fault::NotFound) => return unknown(),
        Some(fault) => {
            return fault_answer(fault, generation, Op::Visits, VISITOR_NOT_FOUND, "visitor");
        }
        None => {}
    }
    let mut search = match parse_search(&params, generation, Op::Visits, (100, 500)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if state.world.lock().is_ok_and(|w| w.is_deleted(&visitor_id)) {
        return unknown();
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

/// `PATCH /v4/events/{event_id}` and `PUT /events/{request_id}`.
pub async fn update(
    generation: Gen,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = auth(&state, &headers, generation, Op::Update) {
        return r;
    }
    if let Some(r) = injected(&event_id, generation, Op::Update, EVENT_NOT_FOUND, "event").await {
        return r;
    }
    let bad = |msg: &str| {
        error(
            generation,
            Op::Update,
            StatusCode::BAD_REQUEST,
            CANNOT_PARSE,
            msg,
        )
    };
    let Ok(Json::Object(body)) = serde_json::from_slice::<Json>(&body) else {
        return bad("request body is not a JSON object");
    };
    let members = update_members(generation);
    let mut changes = Map::new();
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
    let Ok(mut world) = state.world.lock() else {
        return sandbox_state_lost();
    };
    if world.event(&event_id).is_none() {
        return error(
            generation,
            Op::Update,
            StatusCode::NOT_FOUND,
            EVENT_NOT_FOUND,
            "event not found",
        );
    }
    if event_id.to_ascii_lowercase().starts_with("notready") {
        let attempts = world.attempts.entry(event_id.clone(), || 0);
        *attempts += 1;
        if *attempts <= 2 {
            return error(
                generation,
                Op::Update,
                StatusCode::CONFLICT,
                NOT_READY,
                "resource is not mutable yet, try again",
            );
        }
    }
    world.updates.entry(event_id, Map::new).extend(changes);
    StatusCode::OK.into_response()
}

/// `DELETE /v4/visitors/{visitor_id}` and `DELETE /visitors/{visitor_id}`.
pub async fn delete(
    generation: Gen,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(visitor_id): Path<String>,
) -> Response {
    if let Err(r) = auth(&state, &headers, generation, Op::Delete) {
        return r;
    }
    if let Some(r) = injected(
        &visitor_id,
        generation,
        Op::Delete,
        VISITOR_NOT_FOUND,
        "visitor",
    )
    .await
    {
        return r;
    }
    let Ok(mut world) = state.world.lock() else {
        return sandbox_state_lost();
    };
    if !world.deleted.insert(visitor_id, ()) {
        return error(
            generation,
            Op::Delete,
            StatusCode::NOT_FOUND,
            VISITOR_NOT_FOUND,
            "visitor not found",
        );
    }
    StatusCode::OK.into_response()
}
