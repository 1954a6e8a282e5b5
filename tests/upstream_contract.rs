//! Every request the gateway sends validates against the upstream's own OpenAPI schema.
//!
//! The gateway's requests are recorded by the sandbox and checked by `openapi-core`
//! (tests/openapi/validate_requests.py) against `../shared/fixtures`. Without Python and
//! openapi-core the test fails; it is `#[ignore]`d, and CI runs it (`--include-ignored`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::Harness;
use fingerprint_gateway::{
    config::Generation,
    convert::json::to_struct,
    proto::v1::{
        Action, DeleteVisitorDataRequest, EventFilter, ExternalMetadata, GetEventRequest,
        GetVisitsRequest, ListRulesRequest, ListVerdictReasonsRequest, LookupTelemetryRequest,
        SearchEventsRequest, SetRuleRequest, SetVerdictReasonOverrideRequest, UpdateEventRequest,
        set_rule_request::Identifier,
    },
    sandbox::Recorded,
};
use serde_json::json;

fn require_python() {
    common::process::require_tool(
        "python3 with openapi-core",
        Command::new("python3").args(["-c", "import openapi_core, requests"]),
        "pip install -r tests/requirements.txt",
    );
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn full_search() -> SearchEventsRequest {
    SearchEventsRequest {
        page_size: 20,
        filter: Some(full_filter()),
        ..Default::default()
    }
}

fn full_filter() -> EventFilter {
    EventFilter {
        visitor_id: "Ibk1527CUFmcnjLwIs4A9".into(),
        linked_id: "order-77".into(),
        ip_address: "192.0.2.0/24".into(),
        bot: "all".into(),
        reverse: Some(true),
        suspect: Some(false),
        vpn: Some(true),
        virtual_machine: Some(false),
        tampering: Some(true),
        anti_detect_browser: Some(false),
        incognito: Some(true),
        privacy_settings: Some(false),
        jailbroken: Some(false),
        frida: Some(false),
        factory_reset: Some(false),
        cloned_app: Some(false),
        emulator: Some(false),
        root_apps: Some(false),
        vpn_confidence: "high".into(),
        min_suspect_score: Some(7.5),
        developer_tools: Some(false),
        location_spoofing: Some(false),
        mitm_attack: Some(false),
        rare_device: Some(true),
        rare_device_percentile_bucket: "p99.9+".into(),
        proxy: Some(true),
        sdk_version: "3.11.14".into(),
        sdk_platform: "js".into(),
        environment: vec!["ae_47abaca3db2c7c43".into()],
        proximity_id: "C9rJYBlOFsAfBwQ".into(),
        start: ts(1_767_225_600),
        end: ts(1_769_903_999),
        ..Default::default()
    }
}

async fn exercise(generation: Generation) -> Vec<Recorded> {
    let h = Harness::start_with(generation, &[]).await;
    let mut fp = h.fingerprint();
    fp.get_event(GetEventRequest {
        event_id: "1708102555327.NLOjmg".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    fp.get_visits(GetVisitsRequest {
        visitor_id: "Ibk1527CUFmcnjLwIs4A9".into(),
        page_size: 120,
        linked_id: "order-77".into(),
        end: ts(1_790_000_000),
        ..Default::default()
    })
    .await
    .unwrap();
    fp.search_events(full_search()).await.unwrap();
    if generation == Generation::V4 {
        fp.get_event(GetEventRequest {
            event_id: "1708102555327.NLOjmg".into(),
            ruleset_id: "D6N9Kbk9HRWrIWGz".into(),
        })
        .await
        .unwrap();
        let v4_only = EventFilter {
            high_recall_id: "Ibk1527CUFmcnjLwIs4A9".into(),
            asn: "12876".into(),
            url: "https://example.com/login".into(),
            bundle_id: "com.example.app".into(),
            package_name: "com.example.app".into(),
            origin: "https://example.com".into(),
            bot_info: "all".into(),
            bot_info_category: vec!["ai_agent".into()],
            bot_info_identity: vec!["verified".into()],
            bot_info_confidence: vec!["high".into()],
            bot_info_provider: vec!["OpenAI".into()],
            bot_info_name: vec!["ChatGPT-User".into()],
            incremental_identification_status: "completed".into(),
            source: vec!["edge".into()],
            tor_node: Some(false),
            simulator: Some(false),
            active_call: Some(false),
            ..Default::default()
        };
        fp.search_events(SearchEventsRequest {
            filter: Some(v4_only),
            max_total_size: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    } else {
        fp.search_events(SearchEventsRequest {
            filter: Some(EventFilter {
                ip_blocklist: Some(true),
                datacenter: Some(false),
                proximity_precision_radius: Some(25),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        fp.get_visits(GetVisitsRequest {
            visitor_id: "Ibk1527CUFmcnjLwIs4A9".into(),
            event_id: "1708102555327.NLOjmg".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    fp.update_event(UpdateEventRequest {
        event_id: "1708102555327.NLOjmg".into(),
        linked_id: Some("order-78".into()),
        tags: Some(to_struct(
            json!({"reviewed": true}).as_object().unwrap().clone(),
        )),
        suspect: Some(false),
    })
    .await
    .unwrap();
    fp.update_event(UpdateEventRequest {
        event_id: "1708102555327.NLOjmg".into(),
        suspect: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    fp.delete_visitor_data(DeleteVisitorDataRequest {
        visitor_id: "Ibk1527CUFmcnjLwIs4A9".into(),
    })
    .await
    .unwrap();
    let mut st = h.stytch();
    for (identifier, action) in [
        (
            Identifier::VisitorId("visitor-6139cbcc".into()),
            Action::Challenge,
        ),
        (
            Identifier::CidrBlock("203.0.113.0/24".into()),
            Action::Block,
        ),
        (Identifier::CountryCode("AQ".into()), Action::Block),
        (Identifier::Asn("64500".into()), Action::Challenge),
        (
            Identifier::VisitorId("visitor-6139cbcc".into()),
            Action::None,
        ),
    ] {
        st.set_rule(SetRuleRequest {
            identifier: Some(identifier),
            action: action as i32,
            description: "contract".into(),
            expires_in_minutes: Some(120),
        })
        .await
        .unwrap();
    }
    st.set_verdict_reason_override(SetVerdictReasonOverrideRequest {
        verdict_reason: "VIRTUAL_MACHINE".into(),
        override_action: Action::Allow as i32,
        override_description: "VDI".into(),
    })
    .await
    .unwrap();
    st.set_verdict_reason_override(SetVerdictReasonOverrideRequest {
        verdict_reason: "VIRTUAL_MACHINE".into(),
        override_action: Action::None as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let meta = ExternalMetadata {
        external_id: Some("user-123".into()),
        organization_id: Some("org-9".into()),
        user_action: Some("LOGIN".into()),
    };
    st.lookup_telemetry(LookupTelemetryRequest {
        telemetry_id: "5f1c9a9e-3b7d-4c2e-9f4a-7d2b8e6c1a03".into(),
        external_metadata: Some(meta),
    })
    .await
    .unwrap();
    st.lookup_telemetry(LookupTelemetryRequest {
        telemetry_id: "minimal".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let first = st
        .list_rules(ListRulesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    st.list_rules(ListRulesRequest {
        page_size: 0,
        page_token: first.next_page_token,
    })
    .await
    .unwrap();
    st.list_verdict_reasons(ListVerdictReasonsRequest {
        overrides_only: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let recorded = h.upstream_requests();
    h.stop().await;
    recorded
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it) and python3 with openapi-core (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
async fn every_upstream_request_validates_against_the_upstream_schema() {
    let fixtures = common::fixtures();
    require_python();
    let mut all = Vec::new();
    for generation in [Generation::V4, Generation::V3] {
        for r in exercise(generation).await {
            let api = if r.path.starts_with("/v1/") {
                "stytch"
            } else if r.path.starts_with("/v4/") {
                "v4"
            } else {
                "v3"
            };
            all.push(json!({"api": api, "method": r.method, "path": r.path, "query": r.query, "headers": r.headers, "body": r.body}));
        }
    }
    assert!(all.len() >= 36, "exercised {} requests", all.len());
    let file = std::env::temp_dir().join(format!("fpgw-requests-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec_pretty(&all).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/openapi/validate_requests.py"
        ))
        .arg(&fixtures)
        .arg(&file)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "requests that the upstream schema rejects:\n{report}"
    );
    println!("{report}");
}
