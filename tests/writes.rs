//! The write surface end to end: mutations through the gateway, then reads, with the
//! sandbox (which keeps state) recording every upstream request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Harness, cache_of, details};
use fingerprint_gateway::{
    config::Generation,
    convert::json::to_struct,
    proto::v1::{
        Action, DeleteVisitorDataRequest, EventFilter, GetEventRequest, GetVisitsRequest,
        ListRulesRequest, ListVerdictReasonsRequest, LookupTelemetryRequest, SearchEventsRequest,
        SetRuleRequest, SetVerdictReasonOverrideRequest, UpdateEventRequest,
        set_rule_request::Identifier,
    },
    sandbox::Scripted,
};
use serde_json::json;
use tonic::Code;

fn get(id: &str) -> GetEventRequest {
    GetEventRequest {
        event_id: id.into(),
        ..Default::default()
    }
}

fn tags(v: serde_json::Value) -> Option<prost_types::Struct> {
    Some(to_struct(v.as_object().unwrap().clone()))
}

fn count(h: &Harness, method: &str) -> usize {
    h.upstream_requests()
        .iter()
        .filter(|r| r.method == method)
        .count()
}

#[tokio::test]
async fn update_then_read_returns_the_change_not_the_cached_event() {
    for generation in [Generation::V4, Generation::V3] {
        let h = Harness::start_with(generation, &[]).await;
        let mut fp = h.fingerprint();
        let id = "1770000000000.upd001";
        let before = fp
            .get_event(get(id))
            .await
            .unwrap()
            .into_inner()
            .event
            .unwrap();
        assert_eq!(before.suspect, None);
        assert_eq!(cache_of(&fp.get_event(get(id)).await.unwrap()), "hit");
        let update = UpdateEventRequest {
            event_id: id.into(),
            linked_id: Some("order-42".into()),
            tags: tags(json!({"reviewed": true, "score": 7})),
            suspect: Some(false),
        };
        let done = fp.update_event(update).await.unwrap();
        assert!(
            done.metadata().get("x-cache").is_none(),
            "writes never touch the cache"
        );
        let after = fp.get_event(get(id)).await.unwrap();
        assert_eq!(
            cache_of(&after),
            "miss",
            "{generation}: the cached event was dropped"
        );
        let e = after.into_inner().event.unwrap();
        assert_eq!(e.linked_id.as_deref(), Some("order-42"));
        assert_eq!(e.suspect, Some(false), "false is a value");
        assert_eq!(e.tags, tags(json!({"reviewed": true, "score": 7})));
        let write = h
            .upstream_requests()
            .into_iter()
            .find(|r| r.method != "GET")
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&write.body).unwrap();
        match generation {
            Generation::V4 => {
                assert_eq!(
                    (write.method.as_str(), write.path.as_str()),
                    ("PATCH", "/v4/events/1770000000000.upd001")
                );
                assert_eq!(
                    body,
                    json!({"linked_id": "order-42", "tags": {"reviewed": true, "score": 7.0}, "suspect": false})
                );
            }
            Generation::V3 => {
                assert_eq!(
                    (write.method.as_str(), write.path.as_str()),
                    ("PUT", "/events/1770000000000.upd001")
                );
                assert_eq!(
                    body,
                    json!({"linkedId": "order-42", "tag": {"reviewed": true, "score": 7.0}, "suspect": false})
                );
            }
        }
        h.stop().await;
    }
}

#[tokio::test]
async fn update_drops_every_cached_visit_and_search_list() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let visitor = "visitorUPDATEDxxxxxxx";
    let visits = GetVisitsRequest {
        visitor_id: visitor.into(),
        page_size: 3,
        ..Default::default()
    };
    let listed = fp.get_visits(visits.clone()).await.unwrap().into_inner();
    let target = listed.visits[1].event_id.clone();
    let search = SearchEventsRequest {
        filter: Some(EventFilter {
            visitor_id: visitor.into(),
            ..Default::default()
        }),
        page_size: 3,
        ..Default::default()
    };
    fp.search_events(search.clone()).await.unwrap();
    assert_eq!(
        cache_of(&fp.get_visits(visits.clone()).await.unwrap()),
        "hit"
    );
    fp.update_event(UpdateEventRequest {
        event_id: target.clone(),
        suspect: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    let again = fp.get_visits(visits).await.unwrap();
    assert_eq!(cache_of(&again), "miss");
    assert_eq!(again.into_inner().visits[1].suspect, Some(true));
    let searched = fp.search_events(search).await.unwrap();
    assert_eq!(cache_of(&searched), "miss");
    assert_eq!(searched.into_inner().events[1].suspect, Some(true));
    // The event read alone shows it too (the sandbox knows whose event it is).
    assert_eq!(
        fp.get_event(get(&target))
            .await
            .unwrap()
            .into_inner()
            .event
            .unwrap()
            .suspect,
        Some(true)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_read_racing_a_write_does_not_put_the_stale_answer_back() {
    let h = Harness::start().await;
    let id = "1770000000000.race01";
    // Reads are computed at once but held for 600 ms: the reader sees the old state and
    // finishes after the write has completed.
    h.sandbox.control.set_read_delay(Duration::from_millis(600));
    let mut reader = h.fingerprint();
    let racing = tokio::spawn(async move { reader.get_event(get(id)).await });
    while count(&h, "GET") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.fingerprint()
        .update_event(UpdateEventRequest {
            event_id: id.into(),
            linked_id: Some("after".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let stale = racing.await.unwrap().unwrap().into_inner().event.unwrap();
    assert_eq!(
        stale.linked_id, None,
        "the racing reader got the state it read"
    );
    h.sandbox.control.set_read_delay(Duration::ZERO);
    let fresh = h.fingerprint().get_event(get(id)).await.unwrap();
    assert_eq!(cache_of(&fresh), "miss", "the stale answer was not kept");
    assert_eq!(
        fresh.into_inner().event.unwrap().linked_id.as_deref(),
        Some("after")
    );
    h.stop().await;
}

#[tokio::test]
async fn many_concurrent_readers_around_writes_never_see_a_stale_cached_answer() {
    let h = Harness::start().await;
    let id = "1770000000000.race02";
    h.sandbox.control.set_read_delay(Duration::from_millis(30));
    for round in 0..5 {
        let value = format!("v{round}");
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let mut fp = h.fingerprint();
                tokio::spawn(async move { fp.get_event(get(id)).await })
            })
            .collect();
        h.fingerprint()
            .update_event(UpdateEventRequest {
                event_id: id.into(),
                linked_id: Some(value.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        for r in readers {
            r.await.unwrap().unwrap();
        }
        // Once the write has returned, every later read shows it.
        for _ in 0..3 {
            let e = h
                .fingerprint()
                .get_event(get(id))
                .await
                .unwrap()
                .into_inner()
                .event
                .unwrap();
            assert_eq!(
                e.linked_id.as_deref(),
                Some(value.as_str()),
                "round {round}"
            );
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn update_with_nothing_to_change_is_invalid_and_sends_nothing() {
    let h = Harness::start().await;
    let err = h
        .fingerprint()
        .update_event(UpdateEventRequest {
            event_id: "e1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("nothing to change"),
        "{}",
        err.message()
    );
    let err = h
        .fingerprint()
        .update_event(UpdateEventRequest {
            event_id: "a/b".into(),
            suspect: Some(true),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(h.upstream_requests().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn state_not_ready_is_retried_within_the_deadline() {
    let h = Harness::start().await;
    // The sandbox answers 409 to the first two updates of `notready…` events.
    h.fingerprint()
        .update_event(UpdateEventRequest {
            event_id: "notready-1".into(),
            suspect: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(count(&h, "PATCH"), 3);
    // With a deadline too short for the backoff, the caller gets the retryable status.
    let mut req = tonic::Request::new(UpdateEventRequest {
        event_id: "notready-2".into(),
        suspect: Some(true),
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(150));
    let err = h.fingerprint().update_event(req).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn upstream_rejections_of_writes_map_cleanly() {
    let h = Harness::start().await;
    let mut fp = h.fingerprint();
    let upd = || UpdateEventRequest {
        event_id: "e-x".into(),
        suspect: Some(true),
        ..Default::default()
    };
    h.sandbox.control.script(Scripted::json(
        400,
        r#"{"error":{"code":"request_cannot_be_parsed","message":"bad body"}}"#,
    ));
    let err = fp.update_event(upd()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = details(&err).error_info().cloned().unwrap();
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(info.metadata["upstream_code"], "request_cannot_be_parsed");
    h.sandbox.control.script(
        Scripted::json(
            429,
            r#"{"error":{"code":"too_many_requests","message":"slow down"}}"#,
        )
        .header("retry-after", "3"),
    );
    let err = fp.update_event(upd()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        details(&err).retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(3))
    );
    let err = fp
        .update_event(UpdateEventRequest {
            event_id: "notfound-e".into(),
            suspect: Some(true),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    h.stop().await;
}

#[tokio::test]
async fn delete_visitor_drops_everything_cached_for_them() {
    for generation in [Generation::V4, Generation::V3] {
        let h = Harness::start_with(generation, &[]).await;
        let mut fp = h.fingerprint();
        let visitor = "visitorDELETEDxxxxxxx";
        let visits = GetVisitsRequest {
            visitor_id: visitor.into(),
            page_size: 2,
            ..Default::default()
        };
        let listed = fp.get_visits(visits.clone()).await.unwrap().into_inner();
        let event_id = listed.visits[0].event_id.clone();
        fp.get_event(get(&event_id)).await.unwrap();
        let other = fp.get_event(get("1770000000000.other1")).await.unwrap();
        assert_eq!(cache_of(&other), "miss");
        fp.delete_visitor_data(DeleteVisitorDataRequest {
            visitor_id: visitor.into(),
        })
        .await
        .unwrap();
        let deletes = h
            .upstream_requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .collect::<Vec<_>>();
        assert_eq!(deletes.len(), 1);
        let expected = match generation {
            Generation::V4 => format!("/v4/visitors/{visitor}"),
            Generation::V3 => format!("/visitors/{visitor}"),
        };
        assert_eq!(deletes[0].path, expected);
        assert_eq!(
            fp.get_event(get(&event_id)).await.unwrap_err().code(),
            Code::NotFound,
            "{generation}"
        );
        // Neither generation has a 404 for a visitor's visits: one with none left is
        // an empty list (v3 answers 200 with `visits: []`, as its document says).
        let after = fp.get_visits(visits).await.unwrap().into_inner();
        assert!(after.visits.is_empty(), "{generation}");
        assert_eq!(after.next_page_token, "", "{generation}");
        assert_eq!(
            cache_of(&fp.get_event(get("1770000000000.other1")).await.unwrap()),
            "hit",
            "other visitors stay cached"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn delete_rate_limit_is_resource_exhausted_and_not_retried() {
    let h = Harness::start().await;
    let err = h
        .fingerprint()
        .delete_visitor_data(DeleteVisitorDataRequest {
            visitor_id: "ratelimit-v".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        details(&err).retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        count(&h, "DELETE"),
        1,
        "never retried, never a silent success"
    );
    let err = h
        .fingerprint()
        .delete_visitor_data(DeleteVisitorDataRequest {
            visitor_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.stop().await;
}

#[tokio::test]
async fn set_rule_changes_the_next_lookup_and_the_rules_list() {
    let h = Harness::start().await;
    let mut st = h.stytch();
    let lookup = || LookupTelemetryRequest {
        telemetry_id: "5f1c9a9e-rule".into(),
        ..Default::default()
    };
    let first = st.lookup_telemetry(lookup()).await.unwrap().into_inner();
    let visitor = first.fingerprints.unwrap().visitor_id.unwrap();
    assert_ne!(first.verdict.as_ref().unwrap().action, Action::Block as i32);
    let rules_before = st
        .list_rules(ListRulesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rules
        .len();
    assert_eq!(
        cache_of(&st.lookup_telemetry(lookup()).await.unwrap()),
        "hit"
    );

    let set = SetRuleRequest {
        identifier: Some(Identifier::VisitorId(visitor.clone())),
        action: Action::Block as i32,
        description: "chargebacks".into(),
        expires_in_minutes: Some(120),
    };
    let stored = st.set_rule(set).await.unwrap().into_inner();
    let rule = stored.rule.unwrap();
    assert_eq!(rule.rule_type, "VISITOR_ID");
    assert_eq!(rule.visitor_id.as_deref(), Some(visitor.as_str()));
    assert!(rule.expires_at.is_some());
    let body: serde_json::Value = serde_json::from_str(
        &h.upstream_requests()
            .into_iter()
            .find(|r| r.path == "/v1/rules/set")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"action": "BLOCK", "visitor_id": visitor, "description": "chargebacks", "expires_in_minutes": 120})
    );

    let after = st.lookup_telemetry(lookup()).await.unwrap();
    assert_eq!(
        cache_of(&after),
        "miss",
        "lookups are dropped: a rule changes verdicts"
    );
    let verdict = after.into_inner().verdict.unwrap();
    assert_eq!(verdict.action, Action::Block as i32);
    assert_eq!(verdict.reasons, vec!["RULE_MATCH".to_owned()]);
    assert_eq!(verdict.rule_match_type.as_deref(), Some("VISITOR_ID"));
    let rules_after = st
        .list_rules(ListRulesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(rules_after.len(), rules_before + 1);

    // NONE clears it again.
    let clear = SetRuleRequest {
        identifier: Some(Identifier::VisitorId(visitor)),
        action: Action::None as i32,
        ..Default::default()
    };
    st.set_rule(clear).await.unwrap();
    let cleared = st
        .lookup_telemetry(lookup())
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(cleared.action, first.verdict.unwrap().action);
    h.stop().await;
}

#[tokio::test]
async fn verdict_reason_override_changes_verdicts_and_the_list() {
    let h = Harness::start().await;
    let mut st = h.stytch();
    let bot = || LookupTelemetryRequest {
        telemetry_id: "bot-override".into(),
        ..Default::default()
    };
    assert_eq!(
        st.lookup_telemetry(bot())
            .await
            .unwrap()
            .into_inner()
            .verdict
            .unwrap()
            .action,
        Action::Block as i32
    );
    st.list_verdict_reasons(ListVerdictReasonsRequest {
        overrides_only: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let req = SetVerdictReasonOverrideRequest {
        verdict_reason: "HEADLESS_BROWSER_AUTOMATION".into(),
        override_action: Action::Challenge as i32,
        override_description: "internal QA robots".into(),
    };
    let answer = st
        .set_verdict_reason_override(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.verdict_reason_action.unwrap().override_action,
        Action::Challenge as i32
    );
    let verdict = st
        .lookup_telemetry(bot())
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.action, Action::Challenge as i32);
    assert_eq!(
        verdict.verdict_reason_overrides[0].verdict_reason,
        "HEADLESS_BROWSER_AUTOMATION"
    );
    let listed = st
        .list_verdict_reasons(ListVerdictReasonsRequest {
            overrides_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cache_of(&listed), "miss");
    assert!(
        listed
            .into_inner()
            .verdict_reason_actions
            .iter()
            .any(|r| r.verdict_reason == "HEADLESS_BROWSER_AUTOMATION")
    );
    h.stop().await;
}

#[tokio::test]
async fn stytch_write_validation_mirrors_the_upstream_before_any_call() {
    let h = Harness::start().await;
    let mut st = h.stytch();
    let rule = |id: Identifier, action: Action| SetRuleRequest {
        identifier: Some(id),
        action: action as i32,
        ..Default::default()
    };
    let cases = [
        (
            SetRuleRequest {
                action: Action::Block as i32,
                ..Default::default()
            },
            "identifier",
        ),
        (
            rule(Identifier::CidrBlock("10.0.0.0/8".into()), Action::Block),
            "cidr_block",
        ),
        (
            rule(Identifier::CidrBlock("10.0.0.0/33".into()), Action::Block),
            "cidr_block",
        ),
        (
            rule(Identifier::CidrBlock("2001:db8::/32".into()), Action::Block),
            "cidr_block",
        ),
        (
            rule(Identifier::CountryCode("FR".into()), Action::Allow),
            "action",
        ),
        (
            rule(Identifier::CountryCode("France".into()), Action::Block),
            "country_code",
        ),
        (
            rule(Identifier::Asn("4294967296".into()), Action::Block),
            "asn",
        ),
        (rule(Identifier::Asn("AS123".into()), Action::Block), "asn"),
        (
            rule(Identifier::VisitorId("v".into()), Action::Unspecified),
            "action",
        ),
        (
            rule(Identifier::VisitorId(String::new()), Action::Block),
            "visitor_id",
        ),
        (
            SetRuleRequest {
                identifier: Some(Identifier::VisitorId("v".into())),
                action: Action::Block as i32,
                expires_in_minutes: Some(0),
                ..Default::default()
            },
            "expires_in_minutes",
        ),
    ];
    for (req, field) in cases {
        let err = st.set_rule(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    for (reason, action) in [
        ("RULE_MATCH", Action::Allow),
        ("", Action::Allow),
        ("VIRTUAL_MACHINE", Action::Unspecified),
        ("lower case", Action::Allow),
    ] {
        let req = SetVerdictReasonOverrideRequest {
            verdict_reason: reason.into(),
            override_action: action as i32,
            ..Default::default()
        };
        assert_eq!(
            st.set_verdict_reason_override(req)
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument,
            "{reason}"
        );
    }
    assert!(h.upstream_requests().is_empty(), "nothing reached Stytch");
    // The upstream's own 400 still maps cleanly.
    h.sandbox.control.script(Scripted::json(400, r#"{"status_code":400,"request_id":"req-1","error_type":"cidr_block_invalid_prefix","error_message":"CIDR prefix must be between 16 and 32."}"#));
    let err = st
        .set_rule(rule(
            Identifier::CidrBlock("10.1.0.0/16".into()),
            Action::Block,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = details(&err).error_info().cloned().unwrap();
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(info.metadata["upstream_code"], "cidr_block_invalid_prefix");
    assert_eq!(details(&err).request_info().unwrap().request_id, "req-1");
    h.stop().await;
}
