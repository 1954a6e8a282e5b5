//! The Stytch Device Fingerprinting emulator: lookups, rules and verdict reasons, with
//! HTTP Basic credentials and Stytch's error body (`status_code`, `request_id`,
//! `error_type`, `error_message`, `error_url`).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use base64::Engine;
use serde_json::{Value as Json, json};

use super::{AppState, Fault, answer, data, fault_of};
use crate::convert::stytch::RULE_IDENTIFIERS;

pub(super) fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
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
fn request(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Json, Response> {
    let expected = format!(
        "{}:{}",
        state.creds.stytch_project_id, state.creds.stytch_secret
    );
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let rotated = state.creds.also_accepted.iter().any(|s| {
        given.as_deref() == Some(format!("{}:{s}", state.creds.stytch_project_id).as_bytes())
    });
    if given.as_deref() != Some(expected.as_bytes()) && !rotated {
        return Err(error(
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
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_content_type",
            "Content-Type must be application/json.",
        ));
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(v @ Json::Object(_)) => Ok(v),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
            "The request body is not a JSON object.",
        )),
    }
}

pub async fn lookup(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(telemetry_id) = req
        .get("telemetry_id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_telemetry_id",
            "telemetry_id is required.",
        );
    };
    if let Some(fault) = fault_of(telemetry_id).await {
        return match fault {
            Fault::NotFound => error(
                StatusCode::NOT_FOUND,
                "telemetry_id_not_found",
                "The telemetry_id was not found.",
            ),
            Fault::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests have been made.",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
                r
            }
            Fault::ServerError => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Oops, something seems to have gone wrong.",
            ),
            Fault::HtmlPage => super::html_502(),
        };
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
    if let Ok(world) = state.world.lock() {
        world.apply_rules(&mut body);
    }
    answer(StatusCode::OK, body)
}

pub async fn rules(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let limit = match req.get("limit") {
        None => 10,
        Some(l) => match l.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                return error(
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
                return error(
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
    // The last page says "" (every SDK types `next_cursor` as a non-null string).
    let next = if end < rules.len() {
        format!("sandbox-cursor-{end}")
    } else {
        String::new()
    };
    answer(
        StatusCode::OK,
        json!({"request_id": format!("request-id-sandbox-{}", data::Dice::new(&format!("rules{offset}")).uuid()), "status_code": 200, "rules": page, "next_cursor": next}),
    )
}

pub async fn reasons(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match request(&state, &headers, &body) {
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

pub async fn set_rule(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bad = |t: &str, m: &str| error(StatusCode::BAD_REQUEST, t, m);
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
        return error(
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

pub async fn set_override(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match request(&state, &headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bad = |t: &str, m: &str| error(StatusCode::BAD_REQUEST, t, m);
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
        return error(
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
        return error(
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
