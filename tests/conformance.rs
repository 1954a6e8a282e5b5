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
            Action, GetEventRequest, GetVisitsRequest, ListRulesRequest, ListVerdictReasonsRequest,
            LookupTelemetryRequest, SearchEventsRequest, SetRuleRequest,
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
async fn v4_event_examples_lose_nothing() {
    let Some(fx) = common::fixtures() else { return };
    let seen = check_event_examples(
        Generation::V4,
        &fx.join("fingerprint/v4/paths/examples/events"),
    )
    .await;
    assert!(seen >= 2, "found {seen} v4 event examples");
}

#[tokio::test]
async fn v4_unknown_members_reach_the_caller_in_unmapped() {
    let Some(fx) = common::fixtures() else { return };
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
async fn v4_search_example_loses_nothing() {
    let Some(fx) = common::fixtures() else { return };
    let h = Harness::start().await;
    let (text, json) =
        read(&fx.join("fingerprint/v4/paths/examples/events/search/get_event_search_200.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let answer = h
        .fingerprint()
        .search_events(SearchEventsRequest {
            limit: Some(10),
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
async fn v3_event_examples_lose_nothing() {
    let Some(fx) = common::fixtures() else { return };
    let seen = check_event_examples(Generation::V3, &fx.join("fingerprint/v3/examples")).await;
    assert!(seen >= 5, "found {seen} v3 event examples");
}

#[tokio::test]
async fn v3_signal_errors_reach_the_caller() {
    let Some(fx) = common::fixtures() else { return };
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
async fn v3_search_and_visitors_examples_lose_nothing() {
    let Some(fx) = common::fixtures() else { return };
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

    let (text, mut json) = read(&fx.join("fingerprint/v3/examples/get_visitors_200_limit_1.json"));
    h.sandbox.control.script(Scripted::json(200, text));
    let req = GetVisitsRequest {
        visitor_id: "AcxioeQKffpXF8iGQK3P".into(),
        limit: Some(1),
        ..Default::default()
    };
    let answer = h.fingerprint().get_visits(req).await.unwrap().into_inner();
    // `lastTimestamp` is v3's deprecated pagination cursor; `paginationKey` replaces it.
    json.as_object_mut().unwrap().remove("lastTimestamp");
    check_leaves(
        &json,
        &to_json(&answer, "fingerprint.gateway.v1.GetVisitsResponse"),
        "v3 visitors",
    );
    h.stop().await;
}

// ---------- Stytch ----------

#[tokio::test]
async fn stytch_examples_lose_nothing() {
    let Some(fx) = common::fixtures() else { return };
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
                limit: Some(u32::try_from(seen + 1).unwrap()),
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

// ---------- errors ----------

/// The status an upstream error example must become, from its HTTP status and code.
fn expected_code(status: u16, code: &str) -> Code {
    match (status, code) {
        (404, "route_not_found") => Code::FailedPrecondition,
        (400 | 413, _) => Code::InvalidArgument,
        (401 | 403, _) => Code::FailedPrecondition,
        (404, _) => Code::NotFound,
        (409, _) => Code::Unavailable,
        (429, _) => Code::ResourceExhausted,
        (499, _) => Code::Cancelled,
        (504, _) => Code::DeadlineExceeded,
        (500..=599, _) => Code::Unavailable,
        other => panic!("no expectation for {other:?}"),
    }
}

async fn check_error_examples(h: &Harness, files: Vec<std::path::PathBuf>, stytch: bool) -> usize {
    let mut seen = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (text, json) = read(&path);
        let status: u16 = if stytch {
            json["status_code"].as_u64().unwrap() as u16
        } else {
            name.split(|c: char| !c.is_ascii_digit())
                .find(|s| s.len() == 3)
                .and_then(|s| s.parse().ok())
                .unwrap()
        };
        let code = if stytch {
            json["error_type"].as_str().unwrap_or_default().to_owned()
        } else {
            json["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        h.sandbox.control.script(Scripted::json(status, text));
        let err = if stytch {
            let r = LookupTelemetryRequest {
                telemetry_id: format!("err-{seen}"),
                ..Default::default()
            };
            h.stytch().lookup_telemetry(r).await.unwrap_err()
        } else {
            h.fingerprint()
                .get_event(GetEventRequest {
                    event_id: format!("err-{seen}"),
                    ..Default::default()
                })
                .await
                .unwrap_err()
        };
        assert_eq!(
            err.code(),
            expected_code(status, &code),
            "{name}: {}",
            err.message()
        );
        let d = details(&err);
        let info = d
            .error_info()
            .unwrap_or_else(|| panic!("{name}: ErrorInfo"));
        if !code.is_empty() {
            assert_eq!(info.reason, code, "{name}");
        }
        if status == 429 {
            assert!(err.code() == Code::ResourceExhausted);
        }
        if stytch {
            assert_eq!(
                d.request_info().map(|r| r.request_id.clone()),
                json["request_id"].as_str().map(str::to_owned),
                "{name}"
            );
        }
        seen += 1;
    }
    seen
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_error_example_maps_to_its_status() {
    let Some(fx) = common::fixtures() else { return };
    let h = Harness::start().await;
    let v4 = files_in(&fx.join("fingerprint/v4/paths/examples/errors"), |_| true);
    assert!(check_error_examples(&h, v4, false).await >= 20);
    let st = files_in(&fx.join("stytch"), |n| n.starts_with("error_"));
    assert!(check_error_examples(&h, st, true).await >= 10);
    h.stop().await;
    let h = Harness::start_with(Generation::V3, &[]).await;
    let mut v3 = files_in(&fx.join("fingerprint/v3/examples/errors"), |_| true);
    v3.extend(files_in(&fx.join("fingerprint/v3/examples"), |n| {
        n.starts_with("get_visitors_4")
    }));
    assert!(check_error_examples(&h, v3, false).await >= 20);
    h.stop().await;
}

// ---------- webhook bodies ----------

#[tokio::test]
async fn signed_webhook_bodies_lose_nothing() {
    use fingerprint_gateway::proto::v1::VerifyWebhookSignatureRequest;
    use hmac::{Hmac, Mac};
    let Some(fx) = common::fixtures() else { return };
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
