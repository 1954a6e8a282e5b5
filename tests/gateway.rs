//! The gateway end to end: real server, real tonic client, the sandbox as upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Harness, cache_of, details, no_cache};
use fingerprint_gateway::{
    config::Generation,
    proto::v1::{
        Action, BotResult, EventFilter, ExternalMetadata, GetEventRequest, GetVisitsRequest,
        ListRulesRequest, ListVerdictReasonsRequest, LookupTelemetryRequest, SearchEventsRequest,
    },
    sandbox::Scripted,
};
use tonic::Code;

const KEY: &str = "sandbox-fingerprint-secret-key";

fn event(id: &str) -> GetEventRequest {
    GetEventRequest {
        event_id: id.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn get_event_is_typed_and_second_call_is_a_cache_hit() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let first = fp.get_event(event("1770000000000.abcdef")).await.unwrap();
    assert_eq!(cache_of(&first), "miss");
    let e = first.into_inner().event.unwrap();
    assert_eq!(e.event_id, "1770000000000.abcdef");
    assert_eq!(e.timestamp.unwrap().seconds, 1_770_000_000);
    assert_eq!(e.identification.as_ref().unwrap().visitor_id.len(), 20);
    assert_ne!(e.bot, BotResult::Unspecified as i32);
    assert!(
        e.unmapped.is_none(),
        "sandbox events are fully modelled: {:?}",
        e.unmapped
    );
    let second = fp.get_event(event("1770000000000.abcdef")).await.unwrap();
    assert_eq!(cache_of(&second), "hit");
    assert_eq!(h.upstream_requests().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn v4_request_carries_bearer_key_in_header_only() {
    let h = Harness::start().await;
    h.fingerprint().get_event(event("evt-1")).await.unwrap();
    let reqs = h.upstream_requests();
    let r = &reqs[0];
    assert_eq!(r.path, "/v4/events/evt-1");
    assert!(!r.query.contains(KEY) && !r.path.contains(KEY));
    let auth = r
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap();
    assert_eq!(auth.1, format!("Bearer {KEY}"));
    h.stop().await;
}

#[tokio::test]
async fn v3_request_uses_auth_api_key_header() {
    let h = Harness::start_with(Generation::V3, &[]).await;
    h.fingerprint().get_event(event("evt-1")).await.unwrap();
    let r = &h.upstream_requests()[0];
    assert_eq!(r.path, "/events/evt-1");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "auth-api-key" && v == KEY)
    );
    assert!(!r.headers.iter().any(|(k, _)| k == "authorization"));
    h.stop().await;
}

#[tokio::test]
async fn same_event_through_v3_and_v4_is_the_same_answer() {
    let v4 = Harness::start_with(Generation::V4, &[]).await;
    let v3 = Harness::start_with(Generation::V3, &[]).await;
    for id in [
        "1770000000000.abcdef",
        "1771234567890.Zz9Yy8",
        "any-id-42",
        "1775555555555.qwerty",
    ] {
        let mut a = v4
            .fingerprint()
            .get_event(event(id))
            .await
            .unwrap()
            .into_inner()
            .event
            .unwrap();
        let b = v3
            .fingerprint()
            .get_event(event(id))
            .await
            .unwrap()
            .into_inner()
            .event
            .unwrap();
        // v3 has no `source` or `incremental_identification_status`: the only v4-only data here.
        a.source = None;
        a.incremental_identification_status = None;
        assert_eq!(a, b, "event {id}");
    }
    v4.stop().await;
    v3.stop().await;
}

#[tokio::test]
async fn get_visits_pages_v4_for_the_caller() {
    let h = Harness::start().await;
    // Find a visitor with more than 250 sandbox events... the sandbox gives 3..240, so ask
    // for 150 of a visitor that has at least that many.
    let visitor = (0..200)
        .map(|i| format!("visitor{i:03}xxxxxxxxxxxxx"))
        .find(|v| fingerprint_gateway::sandbox::data::visit_count(v) > 160)
        .unwrap();
    let r = GetVisitsRequest {
        visitor_id: visitor.clone(),
        page_size: 150,
        ..Default::default()
    };
    let answer = h.fingerprint().get_visits(r).await.unwrap().into_inner();
    assert_eq!(answer.visits.len(), 150);
    assert_eq!(answer.visitor_id, visitor);
    assert!(!answer.next_page_token.is_empty());
    let reqs = h.upstream_requests();
    assert_eq!(reqs.len(), 2, "100 + 50");
    assert!(reqs[0].query.contains("limit=100"));
    assert!(reqs[1].query.contains("limit=50"));
    assert!(reqs.iter().all(|r| r.path == "/v4/events"));
    // Newest first, no duplicates across the upstream pages.
    let stamps: Vec<i64> = answer
        .visits
        .iter()
        .map(|v| v.timestamp.unwrap().seconds)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]));
    let mut ids: Vec<&str> = answer.visits.iter().map(|v| v.event_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 150);
    // The token continues where the answer stopped.
    let next = GetVisitsRequest {
        visitor_id: visitor,
        page_size: 5,
        page_token: answer.next_page_token,
        ..Default::default()
    };
    let page2 = h.fingerprint().get_visits(next).await.unwrap().into_inner();
    assert!(page2.visits[0].timestamp.unwrap().seconds <= stamps[149]);
    h.stop().await;
}

#[tokio::test]
async fn get_visits_v3_uses_visitors_endpoint() {
    let h = Harness::start_with(Generation::V3, &[]).await;
    let r = GetVisitsRequest {
        visitor_id: "visitorABCDEFGHIJKLMN".into(),
        page_size: 3,
        linked_id: "order-1".into(),
        ..Default::default()
    };
    let answer = h.fingerprint().get_visits(r).await.unwrap().into_inner();
    assert_eq!(answer.visits.len(), 3);
    assert!(
        answer
            .visits
            .iter()
            .all(|v| v.identification.as_ref().unwrap().visitor_id == "visitorABCDEFGHIJKLMN")
    );
    let req = &h.upstream_requests()[0];
    assert_eq!(req.path, "/visitors/visitorABCDEFGHIJKLMN");
    assert!(req.query.contains("limit=3") && req.query.contains("linked_id=order-1"));
    h.stop().await;
}

#[tokio::test]
async fn search_events_translates_filters() {
    let h = Harness::start().await;
    let r = SearchEventsRequest {
        page_size: 7,
        filter: Some(EventFilter {
            visitor_id: "visitorABCDEFGHIJKLMN".into(),
            bot: "bad".into(),
            suspect: Some(false),
            vpn: Some(true),
            ip_address: "10.0.0.0/24".into(),
            bot_info_category: vec!["ai_agent".into(), "ai_crawler".into()],
            source: vec!["edge".into()],
            start: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = h.fingerprint().search_events(r).await.unwrap().into_inner();
    assert_eq!(answer.events.len(), 7);
    assert!(
        answer.events.iter().all(|e| e.suspect == Some(false)),
        "false is a value, kept"
    );
    let q = &h.upstream_requests()[0].query;
    for part in [
        "limit=7",
        "bot=bad",
        "suspect=false",
        "vpn=true",
        "ip_address=10.0.0.0%2F24",
        "bot_info_category=ai_agent",
        "bot_info_category=ai_crawler",
        "source=edge",
        "start=2026-01-01T00%3A00%3A00Z",
    ] {
        assert!(q.contains(part), "{part} in {q}");
    }
    h.stop().await;
}

#[tokio::test]
async fn filters_the_generation_lacks_are_failed_precondition() {
    let h = Harness::start_with(Generation::V3, &[]).await;
    for filter in [
        EventFilter {
            asn: "64500".into(),
            ..Default::default()
        },
        EventFilter {
            source: vec!["edge".into()],
            ..Default::default()
        },
    ] {
        let field = if filter.asn.is_empty() {
            "source"
        } else {
            "asn"
        };
        let r = SearchEventsRequest {
            filter: Some(filter),
            ..Default::default()
        };
        let err = h.fingerprint().search_events(r).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains(field), "{}", err.message());
        let info = details(&err).error_info().cloned().unwrap();
        assert_eq!(info.reason, "UNSUPPORTED_BY_UPSTREAM");
    }
    assert!(h.upstream_requests().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn hostile_and_malformed_inputs_are_invalid_argument_before_any_upstream_call() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    for id in [
        "",
        ".",
        "..",
        "../../v4/visitors/x",
        "a?b=c",
        "a#frag",
        "a%2Fb",
        "line\nbreak",
        "tab\there",
        "nul\0",
        &"x".repeat(300),
    ] {
        let err = fp.get_event(event(id)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}");
        assert!(err.message().contains("event_id"), "{}", err.message());
        let bad = details(&err).bad_request().unwrap().field_violations[0]
            .field
            .clone();
        assert_eq!(bad, "event_id");
    }
    let err = fp
        .get_visits(GetVisitsRequest {
            visitor_id: "v".into(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_size"));
    let search = |filter: EventFilter| SearchEventsRequest {
        filter: Some(filter),
        ..Default::default()
    };
    let err = fp
        .search_events(search(EventFilter {
            bot: "two words".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(err.message().contains("filter.bot"), "{}", err.message());
    let err = fp
        .search_events(search(EventFilter {
            ip_address: "999.1.1.1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(err.message().contains("filter.ip_address"));
    let err = fp
        .search_events(SearchEventsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("page_token"), "{}", err.message());
    let window = search(EventFilter {
        start: Some(prost_types::Timestamp {
            seconds: 2_000_000_000,
            nanos: 0,
        }),
        end: Some(prost_types::Timestamp {
            seconds: 1_000_000_000,
            nanos: 0,
        }),
        ..Default::default()
    });
    assert_eq!(
        fp.search_events(window).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let meta = LookupTelemetryRequest {
        telemetry_id: "t-1".into(),
        external_metadata: Some(ExternalMetadata {
            external_id: Some("has space".into()),
            ..Default::default()
        }),
    };
    let err = h.stytch().lookup_telemetry(meta).await.unwrap_err();
    assert!(err.message().contains("external_metadata.external_id"));
    assert!(
        h.upstream_requests().is_empty(),
        "nothing reached the upstream"
    );
    h.stop().await;
}

#[tokio::test]
async fn not_found_is_not_found_and_briefly_cached() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let err = fp.get_event(event("notfound-123")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let d = details(&err);
    let info = d.error_info().unwrap();
    assert_eq!(info.reason, "EVENT_NOT_FOUND");
    assert_eq!(info.domain, "fingerprint-gateway.internal");
    assert_eq!(info.metadata["upstream"], "fingerprint");
    assert_eq!(info.metadata["upstream_code"], "event_not_found");
    assert_eq!(info.metadata["http_status"], "404");
    let again = fp.get_event(event("notfound-123")).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    assert_eq!(
        h.upstream_requests().len(),
        1,
        "NOT_FOUND answered from cache"
    );
    h.stop().await;
}

#[tokio::test]
async fn not_found_ttl_is_short() {
    let h = Harness::start_with(
        Generation::V4,
        &[("GATEWAY_CACHE_TTL_NOT_FOUND", "200ms".into())],
    )
    .await;
    let mut fp = h.fingerprint();
    fp.get_event(event("notfound-1")).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(400)).await;
    fp.get_event(event("notfound-1")).await.unwrap_err();
    assert_eq!(h.upstream_requests().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn rate_limit_is_resource_exhausted_with_retry_info_and_not_cached() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    for _ in 0..2 {
        // The sandbox asks for 7 s; a caller with 2 s left is not made to wait for it.
        let mut request = tonic::Request::new(event("ratelimit-1"));
        request.set_timeout(Duration::from_secs(2));
        let err = fp.get_event(request).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        let d = details(&err);
        assert_eq!(
            d.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(7))
        );
        assert_eq!(d.error_info().unwrap().reason, "UPSTREAM_RATE_LIMITED");
    }
    assert_eq!(h.upstream_requests().len(), 2, "errors are not cached");
    h.stop().await;
}

#[tokio::test]
async fn upstream_failures_map_to_clear_statuses() {
    let h = Harness::start_with(Generation::V4, &[("GATEWAY_UPSTREAM_TIMEOUT", "1s".into())]).await;
    let mut fp = h.fingerprint();
    let err = fp.get_event(event("error500-x")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let err = fp.get_event(event("html-x")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("non-JSON"), "{}", err.message());
    let err = fp.get_event(event("slow-x")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // An HTML 200 is a broken upstream, not data.
    h.sandbox.control.script(Scripted {
        content_type: "text/html".into(),
        ..Scripted::json(200, "<html>hi</html>")
    });
    assert_eq!(
        fp.get_event(event("e1")).await.unwrap_err().code(),
        Code::Internal
    );
    // 409 state_not_ready is retryable; the upstream named no delay, so neither do we.
    h.sandbox.control.script(Scripted::json(
        409,
        r#"{"error":{"code":"state_not_ready","message":"not ready"}}"#,
    ));
    let err = fp.get_event(event("e2")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(
        details(&err).error_info().unwrap().reason,
        "STATE_NOT_READY"
    );
    assert!(details(&err).retry_info().is_none());
    // A body over the limit is refused, not buffered.
    h.sandbox.control.script(Scripted::json(
        200,
        format!("{{\"pad\":\"{}\"}}", "x".repeat(9 * 1024 * 1024)),
    ));
    assert_eq!(
        fp.get_event(event("e3")).await.unwrap_err().code(),
        Code::Internal
    );
    // A 404 with no JSON error is a wrong base URL: the operator's problem, not NOT_FOUND.
    h.sandbox.control.script(Scripted {
        content_type: "text/plain".into(),
        ..Scripted::json(404, "404 page not found")
    });
    assert_eq!(
        fp.get_event(event("e4")).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    h.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_unavailable() {
    let sandbox = fingerprint_gateway::sandbox::Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Default::default(),
    )
    .unwrap();
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut settings = common::sandbox_settings(&sandbox, Generation::V4);
    settings.push(("FINGERPRINT_API_BASE_URL", dead_url));
    let h = Harness::start_config(sandbox, common::config(&settings)).await;
    let err = h.fingerprint().get_event(event("e")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    h.stop().await;
}

#[tokio::test]
async fn rejected_key_is_failed_precondition_and_never_leaks() {
    let secret = "sk_live_super_secret_value_123";
    let h = Harness::start_with(
        Generation::V4,
        &[("FINGERPRINT_SECRET_API_KEY", secret.to_owned())],
    )
    .await;
    // The upstream echoes the key back in its message: the gateway must scrub it.
    h.sandbox.control.script(Scripted::json(403, format!(r#"{{"error":{{"code":"secret_api_key_not_found","message":"no workspace for {secret}"}}}}"#)));
    let err = h.fingerprint().get_event(event("e")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("FINGERPRINT_SECRET_API_KEY"),
        "{}",
        err.message()
    );
    let everything = format!("{err:?} {:?}", details(&err));
    assert!(!everything.contains(secret), "{everything}");
    // And the sandbox's own check: a wrong key is refused the way the real API does.
    let err = h.fingerprint().get_event(event("e")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = details(&err).error_info().cloned().unwrap();
    assert_eq!(info.reason, "UPSTREAM_CREDENTIALS_REJECTED");
    assert_eq!(info.metadata["upstream_code"], "secret_api_key_not_found");
    h.stop().await;
}

#[tokio::test]
async fn disabled_upstream_names_the_missing_setting() {
    let sandbox = fingerprint_gateway::sandbox::Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Default::default(),
    )
    .unwrap();
    let settings: Vec<(&str, String)> = common::sandbox_settings(&sandbox, Generation::V4)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("STYTCH_PROJECT") && !k.starts_with("STYTCH_SECRET"))
        .collect();
    let h = Harness::start_config(sandbox, common::config(&settings)).await;
    let err = h
        .stytch()
        .list_rules(ListRulesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("STYTCH_PROJECT_ID"),
        "{}",
        err.message()
    );
    h.stop().await;
}

#[tokio::test]
async fn concurrent_misses_share_one_upstream_call() {
    let h = Harness::start().await;
    h.sandbox.control.set_delay(Duration::from_millis(300));
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let mut fp = h.fingerprint();
            tokio::spawn(async move { fp.get_event(event("1770000000000.shared")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let misses = answers
        .iter()
        .filter(|a| cache_of(a.as_ref().unwrap()) == "miss")
        .count();
    assert_eq!(misses, 1);
    assert_eq!(
        h.upstream_requests().len(),
        1,
        "32 concurrent identical calls, one upstream request"
    );
    h.sandbox.control.set_delay(Duration::ZERO);
    let again = h
        .fingerprint()
        .get_event(event("1770000000000.shared"))
        .await
        .unwrap();
    assert_eq!(cache_of(&again), "hit");
    assert_eq!(
        h.upstream_requests().len(),
        1,
        "a repeat within the TTL makes no request"
    );
    h.stop().await;
}

#[tokio::test]
async fn no_cache_metadata_bypasses_the_cache() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    fp.get_event(event("e-bypass")).await.unwrap();
    let r = fp.get_event(no_cache(event("e-bypass"))).await.unwrap();
    assert_eq!(cache_of(&r), "bypass");
    assert_eq!(h.upstream_requests().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn cache_key_covers_every_field() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    for reverse in [None, Some(true), Some(false)] {
        fp.search_events(SearchEventsRequest {
            page_size: 2,
            filter: Some(EventFilter {
                reverse,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert_eq!(
        h.upstream_requests().len(),
        3,
        "absent, true and false are three requests"
    );
    h.stop().await;
}

#[tokio::test]
async fn stytch_lookup_rules_and_reasons() {
    let h = Harness::start().await;
    let mut st = h.stytch();
    let req = LookupTelemetryRequest {
        telemetry_id: "bot-5f1c9a9e".into(),
        external_metadata: Some(ExternalMetadata {
            external_id: Some("user-123".into()),
            user_action: Some("LOGIN".into()),
            ..Default::default()
        }),
    };
    let answer = st.lookup_telemetry(req).await.unwrap().into_inner();
    let verdict = answer.verdict.unwrap();
    assert_eq!(verdict.action, Action::Block as i32);
    assert_eq!(verdict.action_raw, "BLOCK");
    assert_eq!(verdict.is_authentic_device, Some(false), "false is present");
    assert_eq!(
        answer.external_metadata.unwrap().external_id.as_deref(),
        Some("user-123")
    );
    let r = &h.upstream_requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/fingerprint/lookup");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json")
    );
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("Basic "))
    );
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"telemetry_id": "bot-5f1c9a9e", "external_metadata": {"external_id": "user-123", "user_action": "LOGIN"}})
    );

    let page1 = st
        .list_rules(ListRulesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.rules.len(), 2);
    assert!(!page1.next_page_token.is_empty());
    let mut token = page1.next_page_token;
    let mut total = 2;
    while !token.is_empty() {
        let page = st
            .list_rules(ListRulesRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        total += page.rules.len();
        token = page.next_page_token;
    }
    assert_eq!(total, 5, "null next_cursor ends the list");
    let reasons = st
        .list_verdict_reasons(ListVerdictReasonsRequest {
            overrides_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reasons.verdict_reason_actions.len(), 1);
    assert_eq!(
        reasons.verdict_reason_actions[0].override_action,
        Action::Allow as i32
    );
    let err = st
        .lookup_telemetry(LookupTelemetryRequest {
            telemetry_id: "notfound-t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        details(&err).request_info().is_some(),
        "Stytch request id travels as RequestInfo"
    );
    h.stop().await;
}

#[tokio::test]
async fn stytch_rejected_credentials_are_failed_precondition() {
    let h = Harness::start_with(Generation::V4, &[("STYTCH_SECRET", "wrong-secret".into())]).await;
    let err = h
        .stytch()
        .list_verdict_reasons(ListVerdictReasonsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("STYTCH_SECRET"));
    assert!(!format!("{err:?}").contains("wrong-secret"));
    h.stop().await;
}
