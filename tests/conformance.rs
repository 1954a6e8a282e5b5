//! Conformance over the official upstream examples in `../shared/fixtures`.
//!
//! Each example body is served by the sandbox (scripted) and goes through the real HTTP
//! path. The answer must carry every value of the body: a generic check over the JSON
//! leaves, not a list of fields. Error examples must map to the documented status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashSet, fs, path::Path};

use common::{Harness, details};
use fingerprint_gateway::{
    config::Generation,
    convert::v3::v4_name,
    proto::{
        FILE_DESCRIPTOR_SET,
        v1::{
            Action, DeleteVisitorDataRequest, GetEventRequest, GetVisitsRequest, ListRulesRequest,
            ListVerdictReasonsRequest, LookupTelemetryRequest, SearchEventsRequest, SetRuleRequest,
            SetVerdictReasonOverrideRequest, set_rule_request::Identifier,
        },
    },
    sandbox::Scripted,
};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value as Json;
use tonic::Code;

// ---------- the generic leaf check ----------

/// Every leaf value the answer carries, normalised.
#[derive(Default, Debug)]
struct AnswerLeaves {
    strings: HashSet<String>,
    numbers: Vec<f64>,
    bools: HashSet<(String, bool)>,
}

/// camelCase / PascalCase / acronyms (`publicVPN`) to snake_case.
fn snake(key: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c);
        }
    }
    out
}

fn rfc3339_millis(s: &str) -> Option<i64> {
    let ts: prost_types::Timestamp = s.parse().ok()?;
    Some(ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000)
}

fn collect_answer(v: &Json, path: &mut Vec<String>, out: &mut AnswerLeaves) {
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                collect_answer(v, path, out);
                path.pop();
            }
        }
        Json::Array(a) => a.iter().for_each(|v| collect_answer(v, path, out)),
        Json::String(s) => {
            out.strings.insert(s.clone());
            if let Ok(n) = s.parse::<f64>() {
                out.numbers.push(n);
            }
            if let Some(ms) = rfc3339_millis(s) {
                out.numbers.push(ms as f64);
                out.numbers.push((ms - ms.rem_euclid(1000)) as f64);
            }
        }
        Json::Number(n) => out.numbers.push(n.as_f64().unwrap()),
        Json::Bool(b) => {
            out.bools.insert((bool_key(path), *b));
        }
        Json::Null => {}
    }
}

/// The key a boolean leaf is known by: its own name, or for v3's `{"data": {"result": b}}`
/// (and raw attributes' `{"value": b}`) the name of the signal that holds it.
fn bool_key(path: &[String]) -> String {
    let mut rev = path
        .iter()
        .rev()
        .filter(|k| !matches!(k.as_str(), "data" | "value"));
    let own = rev.next().cloned().unwrap_or_default();
    let key = if own == "result" {
        let product = rev.next().cloned().unwrap_or_default();
        v4_name(&product).to_owned()
    } else {
        snake(&own)
    };
    // v3 `datacenter.result` is v4 `datacenter_result`.
    key.strip_suffix("_result")
        .map_or(key.clone(), str::to_owned)
}

/// Leaves the gateway drops on purpose, each for a documented reason.
fn exempt(path: &[String], v: &Json) -> bool {
    let last = path.last().map(String::as_str).unwrap_or_default();
    // "No time" sentinels become absent (factory reset 0 / 1970-01-01).
    if v.as_i64() == Some(0) && last.contains("timestamp") {
        return true;
    }
    if v.as_str() == Some("1970-01-01T00:00:00Z") {
        return true;
    }
    // Stytch's status_code 200 restates the HTTP status.
    if last == "status_code" && v.as_u64() == Some(200) {
        return true;
    }
    // Upstream page keys and cursors travel wrapped in `next_page_token` (the paging
    // tests walk them).
    if path.len() == 1 && matches!(last, "pagination_key" | "paginationKey" | "next_cursor") {
        return true;
    }
    // v3 ipBlocklist.result is "any list matched", derived from the details it sits beside.
    path.iter().any(|k| k == "ipBlocklist") && last == "result"
}

fn check_leaves(upstream: &Json, answer: &Json, what: &str) {
    let mut leaves = AnswerLeaves::default();
    collect_answer(answer, &mut Vec::new(), &mut leaves);
    let mut missing = Vec::new();
    walk(upstream, &mut Vec::new(), &mut |path, v| {
        if exempt(path, v) {
            return;
        }
        let found = match v {
            Json::String(s) if s.is_empty() => true,
            Json::String(s) => {
                // v3 camel-case words (`notDetected`) are answered in v4 spelling.
                leaves.strings.contains(s)
                    || leaves.strings.contains(&snake(s))
                    || rfc3339_millis(s).is_some_and(|ms| leaves.numbers.contains(&(ms as f64)))
            }
            Json::Number(n) => {
                let n = n.as_f64().unwrap();
                leaves.numbers.contains(&n)
            }
            Json::Bool(b) => leaves.bools.contains(&(bool_key(path), *b)),
            _ => true,
        };
        if !found {
            missing.push(format!("{} = {v}", path.join(".")));
        }
    });
    assert!(
        missing.is_empty(),
        "{what}: the answer lost {} upstream values:\n{}\nanswer: {answer:#}",
        missing.len(),
        missing.join("\n")
    );
}

fn walk(v: &Json, path: &mut Vec<String>, f: &mut dyn FnMut(&[String], &Json)) {
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                walk(v, path, f);
                path.pop();
            }
        }
        Json::Array(a) => a.iter().for_each(|v| walk(v, path, f)),
        Json::Null => {}
        leaf => f(path, leaf),
    }
}

fn to_json<M: prost::Message>(message: &M, full_name: &str) -> Json {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let desc = pool.get_message_by_name(full_name).unwrap();
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice()).unwrap();
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap()
}

fn read(path: &Path) -> (String, Json) {
    let text = fs::read_to_string(path).unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

// ---------- the check must be able to fail ----------

#[test]
fn leaf_check_notices_a_lost_value() {
    let upstream = serde_json::json!({"a": {"b": "kept", "c": 42, "flag": false}});
    let answer = serde_json::json!({"x": "kept", "flag": false});
    let caught = std::panic::catch_unwind(|| check_leaves(&upstream, &answer, "t"));
    assert!(caught.is_err(), "a missing number must fail the check");
}

// ---------- fingerprint.com v4 ----------

/// Serves every `get_event_200*` example in `dir` through `generation`; returns how many.
async fn check_event_examples(generation: Generation, dir: &Path) -> usize {
    let h = Harness::start_with(generation, &[]).await;
    let mut seen = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("get_event_200") {
            continue;
        }
        let (text, json) = read(&path);
        h.sandbox.control.script(Scripted::json(200, text));
        let req = GetEventRequest {
            event_id: format!("fixture-{seen}"),
            ..Default::default()
        };
        let answer = h.fingerprint().get_event(req).await.unwrap().into_inner();
        let event = answer.event.unwrap();
        check_leaves(
            &json,
            &to_json(&event, "fingerprint.gateway.v1.Event"),
            &name,
        );
        seen += 1;
    }
    h.stop().await;
    seen
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v4_event_examples_lose_nothing() {
    let fx = common::fixtures();
    let seen = check_event_examples(
        Generation::V4,
        &fx.join("fingerprint/v4/paths/examples/events"),
    )
    .await;
    assert!(seen >= 2, "found {seen} v4 event examples");
}

#[test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
fn v4_event_examples_read_alike_typed_and_general() {
    use fingerprint_gateway::convert::typed::{Shape, V4Event, V4Page, wire::EncodedEvent};
    use fingerprint_gateway::proto::v1::Event;
    use prost::Message;
    let fx = common::fixtures();
    let dir = fx.join("fingerprint/v4/paths/examples");
    let mut typed_read = Vec::new();
    for name in [
        "events/get_event_200.json",
        "events/get_event_200_with_unknown_field.json",
        "webhook/webhook_event.json",
    ] {
        let (text, json) = read(&dir.join(name));
        let general =
            fingerprint_gateway::convert::event(Generation::V4, json.as_object().cloned().unwrap());
        let encoded = EncodedEvent::read(text.as_bytes());
        if let Some(typed) = V4Event::read(text.as_bytes()) {
            assert_eq!(typed.into_event(), general, "{name}: the readers differ");
            typed_read.push(name);
            // What GetEvent answers: written straight from the JSON, the same event.
            let encoded = encoded.expect("the wire reader takes what the typed one takes");
            let decoded = Event::decode(encoded.bytes).unwrap();
            assert_eq!(decoded, general, "{name}: the wire reader differs");
        } else {
            assert!(encoded.is_none(), "{name}: only the wire reader took it");
        }
    }
    let (text, json) = read(&dir.join("events/search/get_event_search_200.json"));
    let general = fingerprint_gateway::convert::list::search_page(
        Generation::V4,
        json.as_object().cloned().unwrap(),
    );
    if let Some(typed) = V4Page::read(text.as_bytes()) {
        assert_eq!(
            typed.into_page(),
            general,
            "search page: the readers differ"
        );
        typed_read.push("events/search/get_event_search_200.json");
    }
    // The published examples are what the typed readers exist for; the one with an
    // unknown member must take the general path, which keeps it.
    assert!(
        typed_read.contains(&"events/get_event_200.json"),
        "{typed_read:?}"
    );
    assert!(
        typed_read.contains(&"events/search/get_event_search_200.json"),
        "{typed_read:?}"
    );
    assert!(!typed_read.contains(&"events/get_event_200_with_unknown_field.json"));
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v4_unknown_members_reach_the_caller_in_unmapped() {
    let fx = common::fixtures();
    let h = Harness::start().await;
    let (text, _) = read(
        &fx.join("fingerprint/v4/paths/examples/events/get_event_200_with_unknown_field.json"),
    );
    h.sandbox.control.script(Scripted::json(200, text));
    let answer = h
        .fingerprint()
        .get_event(GetEventRequest {
            event_id: "u".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let unmapped = answer
        .event
        .unwrap()
        .unmapped
        .expect("unknown members are passed through");
    assert!(!unmapped.fields.is_empty());
    h.stop().await;
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v4_search_example_loses_nothing() {
    let fx = common::fixtures();
    let h = Harness::start().await;
    let (text, json) =
        read(&fx.join("fingerprint/v4/paths/examples/events/search/get_event_search_200.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let answer = h
        .fingerprint()
        .search_events(SearchEventsRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.events.len(),
        json["events"].as_array().unwrap().len()
    );
    check_leaves(
        &json,
        &to_json(&answer, "fingerprint.gateway.v1.SearchEventsResponse"),
        "v4 search",
    );
    h.stop().await;
}

// ---------- fingerprint.com v3 ----------

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v3_event_examples_lose_nothing() {
    let fx = common::fixtures();
    let seen = check_event_examples(Generation::V3, &fx.join("fingerprint/v3/examples")).await;
    assert!(seen >= 5, "found {seen} v3 event examples");
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v3_signal_errors_reach_the_caller() {
    let fx = common::fixtures();
    let h = Harness::start_with(Generation::V3, &[]).await;
    let (text, _) = read(&fx.join("fingerprint/v3/examples/get_event_200_botd_failed_error.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let e = h
        .fingerprint()
        .get_event(GetEventRequest {
            event_id: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    let err = e
        .signal_errors
        .get("bot")
        .expect("botd error under its v4 name");
    assert_eq!(err.code, "Failed");
    assert_eq!(e.bot_raw, "", "the failed signal itself is absent");
    h.stop().await;
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v3_search_and_visitors_examples_lose_nothing() {
    let fx = common::fixtures();
    let h = Harness::start_with(Generation::V3, &[]).await;
    let (text, json) = read(&fx.join("fingerprint/v3/examples/get_event_search_200.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let answer = h
        .fingerprint()
        .search_events(SearchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    check_leaves(
        &json,
        &to_json(&answer, "fingerprint.gateway.v1.SearchEventsResponse"),
        "v3 search",
    );

    let (text, json) = read(&fx.join("fingerprint/v3/examples/get_visitors_200_limit_1.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let req = GetVisitsRequest {
        visitor_id: "AcxioeQKffpXF8iGQK3P".into(),
        page_size: 1,
        ..Default::default()
    };
    let answer = h.fingerprint().get_visits(req).await.unwrap().into_inner();
    assert_eq!(
        answer.next_page_token.is_empty(),
        json["paginationKey"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    check_leaves(
        &json,
        &to_json(&answer, "fingerprint.gateway.v1.GetVisitsResponse"),
        "v3 visitors",
    );
    h.stop().await;
}

// ---------- Stytch ----------

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn stytch_examples_lose_nothing() {
    let fx = common::fixtures();
    let h = Harness::start().await;
    let dir = fx.join("stytch");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let read_answer = (name.starts_with("lookup_") && name.contains("_200"))
            || name.starts_with("rules_list_200")
            || name.starts_with("verdict_reasons_list_200")
            || name.starts_with("rules_set_200")
            || name.starts_with("verdict_reasons_override_200");
        if !read_answer {
            continue;
        }
        let (text, json) = read(&path);
        h.sandbox.control.script(Scripted::json(200, text));
        let answer = if name.starts_with("lookup_") {
            let r = LookupTelemetryRequest {
                telemetry_id: format!("t-{seen}"),
                ..Default::default()
            };
            to_json(
                &h.stytch().lookup_telemetry(r).await.unwrap().into_inner(),
                "fingerprint.gateway.v1.LookupTelemetryResponse",
            )
        } else if name.starts_with("rules_list_200") {
            let r = ListRulesRequest {
                page_size: seen + 1,
                ..Default::default()
            };
            to_json(
                &h.stytch().list_rules(r).await.unwrap().into_inner(),
                "fingerprint.gateway.v1.ListRulesResponse",
            )
        } else if name.starts_with("rules_set_200") {
            let r = SetRuleRequest {
                identifier: Some(Identifier::VisitorId(format!("v-{seen}"))),
                action: Action::Block as i32,
                ..Default::default()
            };
            to_json(
                &h.stytch().set_rule(r).await.unwrap().into_inner(),
                "fingerprint.gateway.v1.SetRuleResponse",
            )
        } else if name.starts_with("verdict_reasons_override_200") {
            let r = SetVerdictReasonOverrideRequest {
                verdict_reason: "VIRTUAL_MACHINE".into(),
                override_action: Action::Allow as i32,
                ..Default::default()
            };
            to_json(
                &h.stytch()
                    .set_verdict_reason_override(r)
                    .await
                    .unwrap()
                    .into_inner(),
                "fingerprint.gateway.v1.SetVerdictReasonOverrideResponse",
            )
        } else {
            to_json(
                &h.stytch()
                    .list_verdict_reasons(ListVerdictReasonsRequest::default())
                    .await
                    .unwrap()
                    .into_inner(),
                "fingerprint.gateway.v1.ListVerdictReasonsResponse",
            )
        };
        check_leaves(&json, &answer, &name);
        seen += 1;
    }
    assert!(seen >= 10, "found {seen} Stytch answer examples");
    h.stop().await;
}

// ---------- errors: one vocabulary under every generation ----------

/// What the caller must see for one upstream situation.
struct Situation {
    /// v4 example under `fingerprint/v4/paths/examples/errors`, if v4 has one.
    v4: Option<&'static str>,
    /// v3 examples under `fingerprint/v3/examples` (path below it), if v3 has them.
    v3: &'static [&'static str],
    code: Code,
    reason: &'static str,
}

const fn situation(
    v4: Option<&'static str>,
    v3: &'static [&'static str],
    code: Code,
    reason: &'static str,
) -> Situation {
    Situation {
        v4,
        v3,
        code,
        reason,
    }
}

/// Every official fingerprint.com error example, grouped by the situation it shows.
const SITUATIONS: &[Situation] = &[
    situation(
        Some("400_bot_type_invalid.json"),
        &["errors/400_bot_type_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_end_time_invalid.json"),
        &["errors/400_end_time_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_ip_address_invalid.json"),
        &["errors/400_ip_address_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_limit_invalid.json"),
        &["errors/400_limit_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_linked_id_invalid.json"),
        &["errors/400_linked_id_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_pagination_key_invalid.json"),
        &["errors/400_pagination_key_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_request_body_invalid.json"),
        &[
            "errors/400_request_body_invalid.json",
            "get_visitors_400_bad_request.json",
        ],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_reverse_invalid.json"),
        &["errors/400_reverse_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_start_time_invalid.json"),
        &["errors/400_start_time_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_visitor_id_invalid.json"),
        &["errors/400_visitor_id_invalid.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_visitor_id_required.json"),
        &["errors/400_visitor_id_required.json"],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_edge_ip_required.json"),
        &[],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_edge_unknown_field.json"),
        &[],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("400_event_id_invalid.json"),
        &[],
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    situation(
        Some("413_payload_too_large.json"),
        &[],
        Code::InvalidArgument,
        "UPSTREAM_PAYLOAD_TOO_LARGE",
    ),
    situation(
        Some("400_ruleset_not_found.json"),
        &[],
        Code::InvalidArgument,
        "RULESET_NOT_FOUND",
    ),
    situation(
        Some("400_request_read_timeout.json"),
        &[],
        Code::DeadlineExceeded,
        "UPSTREAM_TIMEOUT",
    ),
    situation(
        Some("403_feature_not_enabled.json"),
        &["errors/403_feature_not_enabled.json"],
        Code::FailedPrecondition,
        "UPSTREAM_FEATURE_DISABLED",
    ),
    situation(
        Some("403_secret_api_key_not_found.json"),
        &["errors/403_token_not_found.json"],
        Code::FailedPrecondition,
        "UPSTREAM_CREDENTIALS_REJECTED",
    ),
    situation(
        Some("403_secret_api_key_required.json"),
        &[
            "errors/403_token_required.json",
            "get_visitors_403_forbidden.json",
        ],
        Code::FailedPrecondition,
        "UPSTREAM_CREDENTIALS_REJECTED",
    ),
    situation(
        Some("403_subscription_not_active.json"),
        &["errors/403_subscription_not_active.json"],
        Code::FailedPrecondition,
        "UPSTREAM_SUBSCRIPTION_INACTIVE",
    ),
    situation(
        Some("403_wrong_region.json"),
        &["errors/403_wrong_region.json"],
        Code::FailedPrecondition,
        "UPSTREAM_WRONG_REGION",
    ),
    situation(
        Some("404_event_not_found.json"),
        &["errors/404_request_not_found.json"],
        Code::NotFound,
        "EVENT_NOT_FOUND",
    ),
    situation(
        Some("404_visitor_not_found.json"),
        &["errors/404_visitor_not_found.json"],
        Code::NotFound,
        "VISITOR_NOT_FOUND",
    ),
    situation(
        Some("409_state_not_ready.json"),
        &["errors/409_state_not_ready.json"],
        Code::Unavailable,
        "STATE_NOT_READY",
    ),
    situation(
        Some("429_too_many_requests.json"),
        &[
            "errors/429_too_many_requests.json",
            "get_visitors_429_too_many_requests.json",
        ],
        Code::ResourceExhausted,
        "UPSTREAM_RATE_LIMITED",
    ),
    situation(
        Some("429_too_many_search_requests.json"),
        &["errors/429_too_many_requests.json"],
        Code::ResourceExhausted,
        "UPSTREAM_RATE_LIMITED",
    ),
    situation(
        Some("500_internal_server_error.json"),
        &[],
        Code::Unavailable,
        "UPSTREAM_UNAVAILABLE",
    ),
    situation(
        Some("504_search_timeout_exceeded.json"),
        &[],
        Code::DeadlineExceeded,
        "UPSTREAM_TIMEOUT",
    ),
];

/// Stytch's error examples and what each must become.
const STYTCH_SITUATIONS: &[(&str, Code, &str)] = &[
    (
        "error_400_cidr_block_invalid_prefix.json",
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    (
        "error_400_dfp_rule_invalid_cursor.json",
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    (
        "error_400_invalid_action_for_rules.json",
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    (
        "error_400_invalid_country_code_allow_rule.json",
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    (
        "error_400_invalid_external_metadata.json",
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    (
        "error_401_unauthorized_credentials.json",
        Code::FailedPrecondition,
        "UPSTREAM_CREDENTIALS_REJECTED",
    ),
    (
        "error_401_unauthorized_credentials_error.json",
        Code::FailedPrecondition,
        "UPSTREAM_CREDENTIALS_REJECTED",
    ),
    (
        "error_403_use_https.json",
        Code::FailedPrecondition,
        "UPSTREAM_ENDPOINT_MISCONFIGURED",
    ),
    (
        "error_404_route_not_found.json",
        Code::FailedPrecondition,
        "UPSTREAM_ENDPOINT_MISCONFIGURED",
    ),
    (
        "error_404_telemetry_id_not_found.json",
        Code::NotFound,
        "TELEMETRY_ID_NOT_FOUND",
    ),
    (
        "error_429_too_many_requests.json",
        Code::ResourceExhausted,
        "UPSTREAM_RATE_LIMITED",
    ),
    (
        "error_499_context_canceled_error.json",
        Code::Cancelled,
        "UPSTREAM_CANCELLED",
    ),
    (
        "error_500_internal_server_error.json",
        Code::Unavailable,
        "UPSTREAM_UNAVAILABLE",
    ),
    (
        "error_503_service_unavailable.json",
        Code::Unavailable,
        "UPSTREAM_UNAVAILABLE",
    ),
];

/// What a caller can switch on: status code, reason, domain, the kinds of details, and
/// the gateway-owned metadata. (`upstream_code` and `upstream_message` say what the
/// upstream said, in its own words, and legitimately differ between generations.)
#[derive(Debug, PartialEq)]
struct Seen {
    code: Code,
    reason: String,
    domain: String,
    details: Vec<&'static str>,
    metadata: Vec<(String, String)>,
}

fn seen(err: &tonic::Status) -> Seen {
    let d = details(err);
    let info = d
        .error_info()
        .cloned()
        .expect("every error carries ErrorInfo");
    let mut kinds = Vec::new();
    if d.retry_info().is_some() {
        kinds.push("RetryInfo");
    }
    if d.request_info().is_some() {
        kinds.push("RequestInfo");
    }
    if d.bad_request().is_some() {
        kinds.push("BadRequest");
    }
    if d.precondition_failure().is_some() {
        kinds.push("PreconditionFailure");
    }
    let mut metadata: Vec<(String, String)> = info
        .metadata
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "upstream_code" | "upstream_message"))
        .collect();
    metadata.sort();
    Seen {
        code: err.code(),
        reason: info.reason,
        domain: info.domain,
        details: kinds,
        metadata,
    }
}

/// Serves one fingerprint.com error body (429s with `Retry-After: 3`) and returns what
/// the caller sees: visitor errors through DeleteVisitorData, the rest through GetEvent.
async fn fingerprint_error(h: &Harness, path: &Path, n: usize) -> Seen {
    let (text, _) = read(path);
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let status: u16 = name
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut scripted = Scripted::json(status, text);
    if status == 429 {
        scripted = scripted.header("retry-after", "3");
    }
    h.sandbox.control.script(scripted);
    let err = if name.contains("visitor_not_found") {
        h.fingerprint()
            .delete_visitor_data(DeleteVisitorDataRequest {
                visitor_id: format!("err-{n}"),
            })
            .await
            .unwrap_err()
    } else {
        h.fingerprint()
            .get_event(GetEventRequest {
                event_id: format!("err-{n}"),
                ..Default::default()
            })
            .await
            .unwrap_err()
    };
    let got = seen(&err);
    assert!(
        err.message().len() < 1024,
        "{name}: bounded message {}",
        err.message()
    );
    got
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn every_error_example_gives_the_same_status_and_reason_under_v3_and_v4() {
    let fx = common::fixtures();
    let v4_dir = fx.join("fingerprint/v4/paths/examples/errors");
    let v3_dir = fx.join("fingerprint/v3/examples");
    // Every official example is in the table: a new one fails here until it is placed.
    let listed_v4: HashSet<&str> = SITUATIONS.iter().filter_map(|s| s.v4).collect();
    for file in files_in(&v4_dir, |_| true) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            listed_v4.contains(name.as_str()),
            "{name} is in no situation"
        );
    }
    let listed_v3: HashSet<&str> = SITUATIONS
        .iter()
        .flat_map(|s| s.v3.iter().copied())
        .collect();
    let mut v3_files: Vec<String> = files_in(&v3_dir.join("errors"), |_| true)
        .iter()
        .map(|p| format!("errors/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    v3_files.extend(
        files_in(&v3_dir, |n| n.starts_with("get_visitors_4"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string()),
    );
    for name in &v3_files {
        assert!(
            listed_v3.contains(name.as_str()),
            "{name} is in no situation"
        );
    }

    // One attempt per call: this is about how each answer maps, not about retries
    // (tests/resilience.rs covers those), and a retried 500 would get the normal answer.
    let once = [("GATEWAY_RETRY_MAX_ATTEMPTS", "1".to_owned())];
    let v4 = Harness::start_with(Generation::V4, &once).await;
    let v3 = Harness::start_with(Generation::V3, &once).await;
    let mut n = 0;
    let mut compared = 0;
    for s in SITUATIONS {
        let expected = |got: &Seen, what: &str| {
            assert_eq!(
                (got.code, got.reason.as_str()),
                (s.code, s.reason),
                "{what}"
            );
            assert_eq!(got.domain, "fingerprint-gateway.internal", "{what}");
            assert!(
                got.metadata
                    .contains(&("upstream".into(), "fingerprint".into())),
                "{what}: {:?}",
                got.metadata
            );
            if s.code == Code::ResourceExhausted {
                assert!(
                    got.details.contains(&"RetryInfo"),
                    "{what}: Retry-After kept"
                );
            } else {
                assert!(
                    !got.details.contains(&"RetryInfo"),
                    "{what}: no delay the upstream did not ask for"
                );
            }
        };
        let from_v4 = match s.v4 {
            Some(file) => {
                n += 1;
                let got = fingerprint_error(&v4, &v4_dir.join(file), n).await;
                expected(&got, file);
                Some(got)
            }
            None => None,
        };
        for file in s.v3 {
            n += 1;
            let got = fingerprint_error(&v3, &v3_dir.join(file), n).await;
            expected(&got, file);
            if let Some(from_v4) = &from_v4 {
                assert_eq!(&got, from_v4, "{file} (v3) and {:?} (v4) differ", s.v4);
                compared += 1;
            }
        }
    }
    assert!(compared >= 20, "{compared} v3/v4 pairs compared");
    v3.stop().await;

    for (file, code, reason) in STYTCH_SITUATIONS {
        let (text, json) = read(&fx.join("stytch").join(file));
        let status = u16::try_from(json["status_code"].as_u64().unwrap()).unwrap();
        let mut scripted = Scripted::json(status, text);
        if status == 429 {
            scripted = scripted.header("retry-after", "3");
        }
        v4.sandbox.control.script(scripted);
        let err = v4
            .stytch()
            .lookup_telemetry(LookupTelemetryRequest {
                telemetry_id: format!("err-{file}"),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let got = seen(&err);
        assert_eq!((got.code, got.reason.as_str()), (*code, *reason), "{file}");
        assert_eq!(got.domain, "fingerprint-gateway.internal");
        assert!(got.metadata.contains(&("upstream".into(), "stytch".into())));
        assert_eq!(
            details(&err).request_info().map(|r| r.request_id.clone()),
            json["request_id"].as_str().map(str::to_owned),
            "{file}"
        );
        let info = details(&err).error_info().cloned().unwrap();
        assert_eq!(
            info.metadata.get("upstream_code").map(String::as_str),
            json["error_type"].as_str(),
            "{file}: the upstream's own code is kept"
        );
    }
    let all_stytch = files_in(&fx.join("stytch"), |n| n.starts_with("error_"));
    assert_eq!(
        all_stytch.len(),
        STYTCH_SITUATIONS.len(),
        "every Stytch example is listed"
    );
    v4.stop().await;
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_reason_in_the_tables_is_a_value_of_the_contract() {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let reasons = pool
        .get_enum_by_name("fingerprint.gateway.v1.ErrorReason")
        .unwrap();
    for reason in SITUATIONS
        .iter()
        .map(|s| s.reason)
        .chain(STYTCH_SITUATIONS.iter().map(|s| s.2))
    {
        assert!(reasons.get_value_by_name(reason).is_some(), "{reason}");
    }
}

// ---------- webhook bodies ----------

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn signed_webhook_bodies_lose_nothing() {
    use fingerprint_gateway::proto::v1::VerifyWebhookSignatureRequest;
    use hmac::{Hmac, Mac};
    let fx = common::fixtures();
    let h = Harness::start_with(
        Generation::V4,
        &[(
            "FINGERPRINT_WEBHOOK_SECRETS",
            "whsec_conformance".to_owned(),
        )],
    )
    .await;
    for file in [
        "fingerprint/v4/paths/examples/webhook/webhook_event.json",
        "fingerprint/v3/examples/webhook.json",
    ] {
        let (text, json) = read(&fx.join(file));
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"whsec_conformance").unwrap();
        mac.update(text.as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let req = VerifyWebhookSignatureRequest {
            header: format!("v1={sig}"),
            body: text.into_bytes(),
        };
        let answer = h
            .fingerprint()
            .verify_webhook_signature(req)
            .await
            .unwrap()
            .into_inner();
        assert!(answer.valid, "{file}");
        check_leaves(
            &json,
            &to_json(&answer.event.unwrap(), "fingerprint.gateway.v1.Event"),
            file,
        );
    }
    h.stop().await;
}

// ---------- fingerprint.com v4 edge (Automation Intelligence) ----------

fn edge_request() -> fingerprint_gateway::proto::v1::AnalyzeRequestRequest {
    use fingerprint_gateway::proto::v1::{AnalyzeRequestRequest, HeaderEntry};
    AnalyzeRequestRequest {
        headers: vec![HeaderEntry {
            name: "User-Agent".into(),
            value: "Mozilla/5.0".into(),
        }],
        method: "GET".into(),
        url: "https://example.com/login".into(),
        ipv4_address: Some("173.56.25.103".into()),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v4_edge_examples_lose_nothing() {
    let fx = common::fixtures();
    let h = Harness::start().await;
    let mut seen = 0;
    let dir = fx.join("fingerprint/v4/paths/examples/edge");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("analyze_200"))
        })
        .collect();
    names.sort();
    for path in names {
        let (text, json) = read(&path);
        h.sandbox.control.script(Scripted::json(200, text));
        let answer = h
            .fingerprint()
            .analyze_request(edge_request())
            .await
            .unwrap()
            .into_inner();
        assert!(answer.unmapped.is_none(), "{path:?}: {:?}", answer.unmapped);
        check_leaves(
            &json,
            &to_json(&answer, "fingerprint.gateway.v1.AnalyzeRequestResponse"),
            &path.display().to_string(),
        );
        seen += 1;
    }
    assert_eq!(seen, 3, "the three official edge examples");
    h.stop().await;
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn v4_edge_error_examples_map_to_the_documented_reasons() {
    let fx = common::fixtures();
    let h = Harness::start().await;
    let cases = [
        (
            "paths/examples/errors/400_edge_ip_required.json",
            400,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "paths/examples/errors/400_edge_unknown_field.json",
            400,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "paths/examples/errors/400_request_read_timeout.json",
            400,
            Code::DeadlineExceeded,
            "UPSTREAM_TIMEOUT",
        ),
        (
            "paths/examples/errors/413_payload_too_large.json",
            413,
            Code::InvalidArgument,
            "UPSTREAM_PAYLOAD_TOO_LARGE",
        ),
    ];
    for (file, status, code, reason) in cases {
        let (text, json) = read(&fx.join("fingerprint/v4").join(file));
        h.sandbox.control.script(Scripted::json(status, text));
        let err = h
            .fingerprint()
            .analyze_request(edge_request())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{file}: {err:?}");
        let info = details(&err).error_info().cloned().unwrap();
        assert_eq!(info.reason, reason, "{file}");
        assert_eq!(
            info.metadata.get("upstream_code").map(String::as_str),
            json["error"]["code"].as_str(),
            "{file}"
        );
    }
    h.stop().await;
}
