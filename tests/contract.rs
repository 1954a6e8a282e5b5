//! The v1 contract's shared vocabulary: paging, page tokens, lossless list envelopes,
//! open filter words, the spec's parameter list, and StreamEvents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashSet, fs, time::Duration};

use common::{Harness, details};
use fingerprint_gateway::{
    config::Generation,
    proto::{
        FILE_DESCRIPTOR_SET,
        v1::{
            EventFilter, GetVisitsRequest, ListRulesRequest, ListVerdictReasonsRequest,
            SearchEventsRequest, SetVerdictReasonOverrideRequest, StreamEventsRequest,
        },
    },
    sandbox::{Scripted, data},
};
use prost_reflect::DescriptorPool;
use tonic::Code;

fn visits(visitor: &str, page_size: i32, page_token: String) -> GetVisitsRequest {
    GetVisitsRequest {
        visitor_id: visitor.to_owned(),
        page_size,
        page_token,
        ..Default::default()
    }
}

fn by_visitor(visitor: &str) -> Option<EventFilter> {
    Some(EventFilter {
        visitor_id: visitor.to_owned(),
        ..Default::default()
    })
}

fn gets(h: &Harness) -> usize {
    h.upstream_requests().len()
}

// ---------- paging ----------

#[tokio::test]
async fn get_visits_walks_250_visits_page_by_page_with_no_gap_or_duplicate() {
    let visitor = "many250abcdefghijklmn";
    let expected: Vec<String> = (0..250).map(|n| data::visit_id(visitor, n)).collect();
    // 30 per page: one upstream page per answer; 120 under v4: two upstream pages per
    // answer (100 + 20), and the token must still resume right after the 120th.
    for (generation, size) in [
        (Generation::V4, 30),
        (Generation::V4, 120),
        (Generation::V3, 30),
        (Generation::V3, 120),
    ] {
        let h = Harness::start_with(generation, &[]).await;
        let mut fp = h.fingerprint();
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = fp
                .get_visits(visits(visitor, size, token))
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.visits.len() <= usize::try_from(size).unwrap());
            seen.extend(page.visits.into_iter().map(|v| v.event_id));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
            assert!(pages < 50, "the walk ends");
        }
        assert_eq!(
            seen, expected,
            "{generation} size {size}: no gap, no duplicate"
        );
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 250);
        h.stop().await;
    }
}

#[tokio::test]
async fn search_events_walks_pages_and_reports_total_size() {
    let visitor = "many47abcdefghijklmnop";
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = fp
            .search_events(SearchEventsRequest {
                filter: by_visitor(visitor),
                page_size: 10,
                page_token: token,
                max_total_size: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.total_size.is_some(), "asked for, so answered");
        seen.extend(page.events.into_iter().map(|e| e.event_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let expected: Vec<String> = (0..47).map(|n| data::visit_id(visitor, n)).collect();
    assert_eq!(seen, expected);
    let q = &h.upstream_requests()[0].query;
    assert!(q.contains("total_hits=1000"), "{q}");
    h.stop().await;
}

#[tokio::test]
async fn page_tokens_are_refused_outside_the_request_they_were_issued_for() {
    let v4 = Harness::start().await;
    let mut fp = v4.fingerprint();
    let visitor = "many90abcdefghijklmnop";
    let token = fp
        .get_visits(visits(visitor, 10, String::new()))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let before = gets(&v4);
    let refused = |err: tonic::Status, what: &str| {
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{what}: {}",
            err.message()
        );
        let d = details(&err);
        assert_eq!(
            d.bad_request().unwrap().field_violations[0].field,
            "page_token",
            "{what}"
        );
        assert_eq!(d.error_info().unwrap().reason, "INVALID_ARGUMENT");
    };
    // Another visitor, another RPC, a forged token.
    refused(
        fp.get_visits(visits("otherabcdefghijklmnop", 10, token.clone()))
            .await
            .unwrap_err(),
        "another visitor",
    );
    refused(
        fp.search_events(SearchEventsRequest {
            filter: by_visitor(visitor),
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        "another RPC",
    );
    refused(
        v4.stytch()
            .list_rules(ListRulesRequest {
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        "another service",
    );
    refused(
        fp.get_visits(visits(visitor, 10, "sandbox-page-10".into()))
            .await
            .unwrap_err(),
        "a raw upstream key",
    );
    // A different page size is the same request: the token works.
    fp.get_visits(visits(visitor, 25, token.clone()))
        .await
        .unwrap();
    assert_eq!(gets(&v4), before + 1, "only the valid call went upstream");

    // Another generation, another account.
    let v3 = Harness::start_with(Generation::V3, &[]).await;
    refused(
        v3.fingerprint()
            .get_visits(visits(visitor, 10, token.clone()))
            .await
            .unwrap_err(),
        "another generation",
    );
    assert_eq!(gets(&v3), 0);
    v3.stop().await;
    let other = Harness::start_with(
        Generation::V4,
        &[("FINGERPRINT_SECRET_API_KEY", "another-account-key".into())],
    )
    .await;
    refused(
        other
            .fingerprint()
            .get_visits(visits(visitor, 10, token))
            .await
            .unwrap_err(),
        "another account",
    );
    assert_eq!(gets(&other), 0);
    other.stop().await;
    v4.stop().await;
}

#[tokio::test]
async fn page_sizes_default_clamp_and_refuse_negatives() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let search = |page_size| SearchEventsRequest {
        page_size,
        filter: by_visitor("many500abcdefghijklmno"),
        ..Default::default()
    };
    let answer = fp.search_events(search(1000)).await.unwrap().into_inner();
    assert_eq!(answer.events.len(), 100, "clamped to the maximum");
    let answer = fp.search_events(search(0)).await.unwrap().into_inner();
    assert_eq!(answer.events.len(), 10, "0 is the default");
    let queries: Vec<String> = h.upstream_requests().into_iter().map(|r| r.query).collect();
    assert!(queries[0].contains("limit=100"), "{queries:?}");
    assert!(queries[1].contains("limit=10"), "{queries:?}");
    let err = fp.search_events(search(-5)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_size"));
    let answer = fp
        .get_visits(visits("many700abcdefghijklmno", 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.visits.len(), 100, "GetVisits' default");
    let answer = fp
        .get_visits(visits("many700abcdefghijklmno", 9999, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.visits.len(), 500, "GetVisits' maximum");
    let rules = h
        .stytch()
        .list_rules(ListRulesRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rules.next_page_token.is_empty());
    assert!(
        h.upstream_requests()
            .last()
            .unwrap()
            .body
            .contains("\"limit\":100")
    );
    h.stop().await;
}

#[tokio::test]
async fn verdict_reasons_page_like_every_other_list() {
    let h = Harness::start().await;
    let mut st = h.stytch();
    let all = st
        .list_verdict_reasons(ListVerdictReasonsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.next_page_token.is_empty());
    let total = all.verdict_reason_actions.len();
    assert!(total >= 3, "{total}");
    let walk =
        |mut st: fingerprint_gateway::proto::v1::stytch_service_client::StytchServiceClient<
            tonic::transport::Channel,
        >| async move {
            let mut token = String::new();
            let mut walked = Vec::new();
            let mut pages = 0;
            loop {
                let page = st
                    .list_verdict_reasons(ListVerdictReasonsRequest {
                        page_size: 2,
                        page_token: token,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(page.verdict_reason_actions.len() <= 2);
                pages += 1;
                walked.extend(page.verdict_reason_actions);
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            (walked, pages)
        };
    let (walked, pages) = walk(h.stytch()).await;
    assert_eq!(walked, all.verdict_reason_actions);
    assert!(pages > 1);
    assert_eq!(
        gets(&h),
        1 + pages,
        "one upstream call per page, paged by the gateway"
    );
    let (again, _) = walk(h.stytch()).await;
    assert_eq!(again, walked);
    assert_eq!(
        gets(&h),
        1 + pages,
        "a second walk is answered from the cache"
    );
    h.stop().await;
}

// ---------- lossless envelopes ----------

#[tokio::test]
async fn list_envelopes_keep_new_and_mistyped_members() {
    let unmapped_json = |s: Option<prost_types::Struct>| {
        serde_json::Value::Object(fingerprint_gateway::convert::json::struct_to_json(
            &s.expect("unmapped present"),
        ))
    };
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"events":[{"event_id":"e1"},"junk"],"pagination_key":7,"total_hits":3,"brand_new":{"a":1}}"#,
    ));
    let page = fp
        .search_events(SearchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.total_size, Some(3));
    assert_eq!(
        unmapped_json(page.unmapped),
        serde_json::json!({"events": [null, "junk"], "pagination_key": 7.0, "brand_new": {"a": 1.0}})
    );
    // GetVisits under v4 reads search pages.
    h.sandbox
        .control
        .script(Scripted::json(200, r#"{"events":[],"shard":"eu-1"}"#));
    let page = fp
        .get_visits(visits("visitorENVELOPExxxxxx", 5, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(page.unmapped),
        serde_json::json!({"shard": "eu-1"})
    );
    // Stytch lists and answers.
    let mut st = h.stytch();
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"request_id":"r","status_code":200,"rules":[],"next_cursor":null,"rules_total":"12"}"#,
    ));
    let rules = st
        .list_rules(ListRulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(rules.unmapped),
        serde_json::json!({"rules_total": "12"})
    );
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"request_id":"r","status_code":200,"verdict_reason_actions":{"not":"a list"},"version":2}"#,
    ));
    let reasons = st
        .list_verdict_reasons(ListVerdictReasonsRequest {
            overrides_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(reasons.unmapped),
        serde_json::json!({"verdict_reason_actions": {"not": "a list"}, "version": 2.0})
    );
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"request_id":"r","status_code":200,"audit_id":"a-1"}"#,
    ));
    let set = st
        .set_verdict_reason_override(SetVerdictReasonOverrideRequest {
            verdict_reason: "VIRTUAL_MACHINE".into(),
            override_action: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(set.unmapped),
        serde_json::json!({"audit_id": "a-1"}),
        "kept even when the answer has no reason beside it"
    );
    h.stop().await;

    // v3 envelopes.
    let h = Harness::start_with(Generation::V3, &[]).await;
    let mut fp = h.fingerprint();
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"visitorId":"v","visits":[],"lastTimestamp":"yesterday","region":"eu"}"#,
    ));
    let page = fp
        .get_visits(visits("visitorENVELOPExxxxxx", 5, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(page.unmapped),
        serde_json::json!({"lastTimestamp": "yesterday", "region": "eu"})
    );
    h.sandbox.control.script(Scripted::json(
        200,
        r#"{"events":[],"paginationKey":["x"],"took_ms":4}"#,
    ));
    let page = fp
        .search_events(SearchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unmapped_json(page.unmapped),
        serde_json::json!({"paginationKey": ["x"], "took_ms": 4.0})
    );
    h.stop().await;
}

// ---------- open filters ----------

#[tokio::test]
async fn unknown_filter_words_go_upstream_which_judges_them() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    // A word the gateway does not know travels; the sandbox, like the real API, refuses it.
    let err = fp
        .search_events(SearchEventsRequest {
            filter: Some(EventFilter {
                bot: "a_new_kind_of_bot".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("invalid bot"), "{}", err.message());
    let info = details(&err).error_info().cloned().unwrap();
    assert_eq!(info.metadata["upstream_code"], "request_cannot_be_parsed");
    assert_eq!(gets(&h), 1, "the upstream judged it");
    assert!(
        h.upstream_requests()[0]
            .query
            .contains("bot=a_new_kind_of_bot")
    );
    // A word the upstream adds later works at once: the gateway passes it through.
    h.sandbox
        .control
        .script(Scripted::json(200, r#"{"events":[]}"#));
    fp.search_events(SearchEventsRequest {
        filter: Some(EventFilter {
            sdk_platform: "visionos".into(),
            vpn_confidence: "very_high".into(),
            bot_info_category: vec!["ai_teleporter".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    // What could change the URL or the route stays strict, before any call.
    let before = gets(&h);
    for filter in [
        EventFilter {
            bot: "bad&limit=100".replace('&', " "),
            ..Default::default()
        },
        EventFilter {
            visitor_id: "a/b".into(),
            ..Default::default()
        },
        EventFilter {
            source: vec!["x".repeat(65)],
            ..Default::default()
        },
    ] {
        let err = fp
            .search_events(SearchEventsRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    assert_eq!(gets(&h), before);
    h.stop().await;
}

#[tokio::test]
async fn long_inputs_are_quoted_briefly() {
    let h = Harness::start().await;
    let huge = "x/".repeat(10_000);
    let err = h
        .fingerprint()
        .get_visits(visits(&huge[..255], 1, String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 300, "{}", err.message());
    let err = h
        .fingerprint()
        .search_events(SearchEventsRequest {
            filter: Some(EventFilter {
                ip_address: huge.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().len() < 300, "{}", err.message());
    let d = details(&err);
    let description = &d.bad_request().unwrap().field_violations[0].description;
    assert!(description.len() < 300, "{description}");
    h.stop().await;
}

// ---------- the spec's parameters ----------

/// Query parameter names of one operation in an OpenAPI YAML file: the `- name:` lines
/// at the given indentation, from the first line matching `start` to the next blank
/// top-level key.
fn spec_parameters(text: &str, start: &str, indent: usize) -> Vec<String> {
    let prefix = format!("{}- name: ", " ".repeat(indent));
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(start) {
            inside = true;
            continue;
        }
        if inside && line.starts_with("  /") {
            break;
        }
        if inside && let Some(name) = line.strip_prefix(&prefix) {
            out.push(name.trim().to_owned());
        }
    }
    out
}

/// Where each spec parameter lives in the contract: paging fields are named the AIP way.
fn contract_field(spec: &str) -> String {
    match spec {
        "limit" => "SearchEventsRequest.page_size".into(),
        "pagination_key" => "SearchEventsRequest.page_token".into(),
        "total_hits" => "SearchEventsRequest.max_total_size".into(),
        other => format!("EventFilter.{other}"),
    }
}

#[test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
fn every_search_parameter_of_both_generations_has_a_request_field() {
    let fx = common::fixtures();
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let has = |path: &str| {
        let (message, field) = path.split_once('.').unwrap();
        pool.get_message_by_name(&format!("fingerprint.gateway.v1.{message}"))
            .unwrap()
            .get_field_by_name(field)
            .is_some()
    };
    let v4 = fs::read_to_string(fx.join("fingerprint/v4/paths/events.yaml")).unwrap();
    let v4_params = spec_parameters(&v4, "get:", 4);
    assert!(v4_params.len() >= 50, "{v4_params:?}");
    assert!(v4_params.contains(&"source".to_owned()));
    let v3 =
        fs::read_to_string(fx.join("fingerprint/v3/fingerprint-server-api-for-sdks.yaml")).unwrap();
    let v3_params = spec_parameters(&v3, "  /events/search:", 8);
    assert!(v3_params.len() >= 35, "{v3_params:?}");
    let missing: Vec<String> = v4_params
        .iter()
        .chain(&v3_params)
        .map(|p| contract_field(p))
        .filter(|f| !has(f))
        .collect();
    assert!(
        missing.is_empty(),
        "upstream search parameters without a contract field: {missing:?}"
    );
    // v3's visitor listing too (GetVisits).
    let visits = spec_parameters(&v3, "  /visitors/{visitor_id}:", 8);
    for p in visits {
        let field = match p.as_str() {
            "limit" => "page_size",
            "paginationKey" => "page_token",
            "before" => "end",
            "request_id" => "event_id",
            other => other,
        }
        .to_owned();
        assert!(has(&format!("GetVisitsRequest.{field}")), "{p}");
    }
}

// ---------- StreamEvents ----------

fn stream(visitor: &str, max_events: i32) -> StreamEventsRequest {
    StreamEventsRequest {
        filter: by_visitor(visitor),
        max_events,
        page_token: String::new(),
    }
}

#[tokio::test]
async fn stream_delivers_every_event_of_a_long_search_in_order() {
    for generation in [Generation::V4, Generation::V3] {
        let h = Harness::start_with(generation, &[]).await;
        let visitor = "many1234abcdefghijklmn";
        let mut s = h
            .fingerprint()
            .stream_events(stream(visitor, 0))
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        let mut resume_tokens = 0;
        while let Some(m) = s.message().await.unwrap() {
            if !m.resume_page_token.is_empty() {
                resume_tokens += 1;
            }
            seen.push(m.event.unwrap().event_id);
        }
        let expected: Vec<String> = (0..1234).map(|n| data::visit_id(visitor, n)).collect();
        assert_eq!(seen.len(), 1234, "{generation}");
        assert_eq!(
            seen, expected,
            "{generation}: in order, no gap, no duplicate"
        );
        assert_eq!(gets(&h), 13, "{generation}: 12 full pages and one of 34");
        assert_eq!(resume_tokens, 12, "one per page that has a successor");
        h.stop().await;
    }
}

#[tokio::test]
async fn stream_stops_at_max_events_and_resumes_from_a_token() {
    let h = Harness::start().await;
    let visitor = "many400abcdefghijklmno";
    let mut s = h
        .fingerprint()
        .stream_events(stream(visitor, 250))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let mut last_token = String::new();
    while let Some(m) = s.message().await.unwrap() {
        if !m.resume_page_token.is_empty() {
            last_token = m.resume_page_token;
        }
        seen.push(m.event.unwrap().event_id);
    }
    assert_eq!(seen.len(), 250);
    let limits: Vec<String> = h
        .upstream_requests()
        .iter()
        .map(|r| {
            r.query
                .split('&')
                .find(|p| p.starts_with("limit="))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        limits,
        ["limit=100", "limit=100", "limit=50"],
        "no more than asked for"
    );
    // Resume after the 250th event.
    let mut rest = h
        .fingerprint()
        .stream_events(StreamEventsRequest {
            page_token: last_token,
            ..stream(visitor, 0)
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(m) = rest.message().await.unwrap() {
        seen.push(m.event.unwrap().event_id);
    }
    let expected: Vec<String> = (0..400).map(|n| data::visit_id(visitor, n)).collect();
    assert_eq!(seen, expected);
    // A resume token only fits the same filter.
    let err = h
        .fingerprint()
        .stream_events(StreamEventsRequest {
            page_token: h
                .fingerprint()
                .get_visits(visits(visitor, 5, String::new()))
                .await
                .unwrap()
                .into_inner()
                .next_page_token,
            ..stream(visitor, 0)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.stop().await;
}

#[tokio::test]
async fn a_cancelled_stream_stops_paging() {
    let h = Harness::start().await;
    let mut s = h
        .fingerprint()
        .stream_events(stream("many20000abcdefghijklm", 0))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..150 {
        s.message().await.unwrap().unwrap();
    }
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_cancel = gets(&h);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        gets(&h),
        after_cancel,
        "nothing is fetched for a cancelled stream"
    );
    assert!(
        after_cancel < 200,
        "{after_cancel} pages fetched for 150 events read"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_slow_reader_slows_the_paging_down() {
    let h = Harness::start().await;
    // A reader with a 64 KiB HTTP/2 window, the protocol's default: what the gateway may
    // send ahead of it is bounded by that window, whatever the stream's length.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut client =
        fingerprint_gateway::proto::v1::fingerprint_service_client::FingerprintServiceClient::new(
            channel,
        );
    let mut s = client
        .stream_events(stream("many20000abcdefghijklm", 0))
        .await
        .unwrap()
        .into_inner();
    s.message().await.unwrap().unwrap();
    // The reader stalls until the gateway stops fetching.
    let mut stalled = gets(&h);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = gets(&h);
        if now == stalled {
            break;
        }
        stalled = now;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(gets(&h), stalled, "paging waits for the reader");
    assert!(
        stalled <= 4,
        "{stalled} of 200 upstream pages fetched while the reader read one event"
    );
    // The reader resumes; the stream carries on.
    for _ in 1..700 {
        s.message().await.unwrap().unwrap();
    }
    assert!(gets(&h) >= 7);
    h.stop().await;
}

/// Starts a stream whose first upstream page is refused with a 429 `Retry-After: wait`.
async fn rate_limited_stream(
    h: &Harness,
    visitor: &str,
    wait: &str,
    deadline: Duration,
) -> tonic::Streaming<fingerprint_gateway::proto::v1::StreamEventsResponse> {
    h.sandbox.control.script(
        Scripted::json(
            429,
            r#"{"error":{"code":"too_many_requests","message":"slow down"}}"#,
        )
        .header("retry-after", wait),
    );
    let mut request = tonic::Request::new(stream(visitor, 0));
    request.set_timeout(deadline);
    h.fingerprint()
        .stream_events(request)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn stream_waits_out_a_rate_limit_that_fits_the_deadline() {
    let h = Harness::start().await;
    let visitor = "many150abcdefghijklmno";
    let mut s = rate_limited_stream(&h, visitor, "1", Duration::from_secs(10)).await;
    let mut n = 0;
    while let Some(m) = s.message().await.unwrap() {
        m.event.unwrap();
        n += 1;
    }
    assert_eq!(n, 150, "the whole stream, after waiting");
    assert_eq!(gets(&h), 3, "the refused page, then two pages");

    // A rate limit longer than the deadline ends the stream with the upstream's answer.
    let mut s = rate_limited_stream(&h, visitor, "30", Duration::from_secs(5)).await;
    let err = s.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        details(&err).retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(30))
    );
    h.stop().await;
}

#[tokio::test]
async fn stream_ends_at_the_deadline_with_deadline_exceeded() {
    let h = Harness::start().await;
    h.sandbox.control.set_delay(Duration::from_millis(400));
    let mut request = tonic::Request::new(stream("many5000abcdefghijklmn", 0));
    request.set_timeout(Duration::from_millis(1000));
    let mut s = h
        .fingerprint()
        .stream_events(request)
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    let err = loop {
        match s.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("the stream cannot finish 5000 events in time"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
    assert!(n < 5000);
    h.stop().await;
}
