//! The sandbox is only as useful as it is faithful: other teams point their own clients
//! (the official SDKs among them, which decode strictly) at it. Every route of both
//! fingerprint.com generations and of Stytch is called here directly, successes and each
//! error it can produce, and every answer is validated against the upstream's own
//! OpenAPI response schema (tests/openapi/validate_responses.py, openapi-core): required
//! members, enum vocabularies, and no member the schema does not declare.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use fingerprint_gateway::sandbox::{Credentials, Sandbox};
use serde_json::{Value as Json, json};

/// One request to the sandbox.
struct Call {
    method: reqwest::Method,
    path: String,
    auth: Auth,
    body: Option<Json>,
}

#[derive(Clone, Copy)]
enum Auth {
    V4,
    V3,
    Stytch,
    Wrong,
    None,
}

fn call(method: reqwest::Method, path: &str, auth: Auth) -> Call {
    Call {
        method,
        path: path.to_owned(),
        auth,
        body: None,
    }
}

fn post(path: &str, body: Json) -> Call {
    Call {
        method: reqwest::Method::POST,
        path: path.to_owned(),
        auth: Auth::Stytch,
        body: Some(body),
    }
}

fn with_body(mut c: Call, body: Json) -> Call {
    c.body = Some(body);
    c
}

/// Every route, with each answer it can give.
fn calls() -> Vec<Call> {
    use reqwest::Method as M;
    let ev = "1770000000000.abcdef";
    let visitor = "Ibk1527CUFmcnjLwIs4A9";
    let mut all = Vec::new();
    // v4 edge (Automation Intelligence): each classification and each refusal.
    let edge = |headers: Json, ip: Json| {
        let mut body = json!({"headers": headers, "method": "GET",
                              "url": "https://example.com/login?x=1"});
        if let Json::Object(ips) = ip {
            for (k, v) in ips {
                body[k] = v;
            }
        }
        with_body(call(M::POST, "/v4/edge", Auth::V4), body)
    };
    let browser = json!([{"name": "User-Agent", "value": "Mozilla/5.0"}]);
    all.push(edge(
        browser.clone(),
        json!({"ipv4_address": "173.56.25.103"}),
    ));
    all.push(edge(
        json!([{"name": "Signature-Agent", "value": "\"https://chatgpt.com\""},
               {"name": "Signature-Input", "value": "sig1=();tag=\"web-bot-auth\""},
               {"name": "Signature", "value": "sig1=:AA==:"}]),
        json!({"ipv4_address": "104.210.139.192", "ipv6_address": "2600:1f00::1"}),
    ));
    all.push(edge(
        json!([{"name": "User-Agent", "value": "curl/8.0"}, {"name": "Signature-Agent", "value": "x.example"}]),
        json!({"ipv6_address": "2001:db8:bad::1"}),
    ));
    all.push(edge(
        json!([{"name": "User-Agent", "value": "GPTBot/1.0"}]),
        json!({"ipv4_address": "198.51.100.7", "linked_id": "l", "tags": {"a": 1}}),
    ));
    all.push(edge(browser.clone(), json!({})));
    all.push(edge(
        browser.clone(),
        json!({"unknown": 1, "ipv4_address": "1.2.3.4"}),
    ));
    all.push(with_body(call(M::POST, "/v4/edge", Auth::V4), json!([1])));
    all.push(edge(
        browser.clone(),
        json!({"ipv4_address": "x".repeat(200_000)}),
    ));
    all.push(with_body(call(M::POST, "/v4/edge", Auth::Wrong), json!({})));
    // v4 and v3 share the shapes of their failures: exercise each route with each.
    for (auth, event, search, visitor_path) in [
        (
            Auth::V4,
            "/v4/events/".to_owned(),
            "/v4/events".to_owned(),
            "/v4/visitors/".to_owned(),
        ),
        (
            Auth::V3,
            "/events/".to_owned(),
            "/events/search".to_owned(),
            "/visitors/".to_owned(),
        ),
    ] {
        let limit = if matches!(auth, Auth::V3) {
            "?limit=10&"
        } else {
            "?"
        };
        for id in [ev, "notfound-1", "ratelimit-1", "error500-1"] {
            all.push(call(M::GET, &format!("{event}{id}"), auth));
        }
        all.push(call(M::GET, &format!("{event}{ev}"), Auth::Wrong));
        all.push(call(M::GET, &format!("{event}{ev}"), Auth::None));
        all.push(call(
            M::GET,
            &format!("{search}{limit}visitor_id={visitor}&bot=bad&suspect=true"),
            auth,
        ));
        all.push(call(
            M::GET,
            &format!(
                "{search}{limit}visitor_id=many30abcdefghijklmnop&pagination_key=sandbox-page-10"
            ),
            auth,
        ));
        all.push(call(M::GET, &format!("{search}{limit}bot=evil"), auth));
        all.push(call(
            M::GET,
            &format!("{search}{limit}visitor_id=ratelimit-1"),
            auth,
        ));
        all.push(call(
            M::GET,
            &format!("{search}{limit}visitor_id=error500-2"),
            auth,
        ));
        all.push(call(
            M::GET,
            &format!("{search}{limit}visitor_id={visitor}"),
            Auth::Wrong,
        ));
        let body = if matches!(auth, Auth::V4) {
            json!({"linked_id": "order-1", "tags": {"a": 1}, "suspect": true})
        } else {
            json!({"linkedId": "order-1", "tag": {"a": 1}, "suspect": true})
        };
        let method = if matches!(auth, Auth::V4) {
            M::PATCH
        } else {
            M::PUT
        };
        all.push(with_body(
            call(method.clone(), &format!("{event}{ev}"), auth),
            body.clone(),
        ));
        all.push(with_body(
            call(method.clone(), &format!("{event}notready-1"), auth),
            body.clone(),
        ));
        all.push(with_body(
            call(method.clone(), &format!("{event}notfound-2"), auth),
            body.clone(),
        ));
        all.push(with_body(
            call(method.clone(), &format!("{event}{ev}"), auth),
            json!({"unknown": 1}),
        ));
        all.push(with_body(
            call(method, &format!("{event}{ev}"), Auth::Wrong),
            body,
        ));
        all.push(call(M::DELETE, &format!("{visitor_path}delete-me-1"), auth));
        all.push(call(M::DELETE, &format!("{visitor_path}delete-me-1"), auth));
        all.push(call(M::DELETE, &format!("{visitor_path}ratelimit-3"), auth));
        all.push(call(
            M::DELETE,
            &format!("{visitor_path}{visitor}"),
            Auth::Wrong,
        ));
    }
    // v3's visitor listing.
    for q in [
        "limit=3",
        "limit=2&paginationKey=sandbox-page-2",
        "limit=0",
        "before=yesterday",
    ] {
        all.push(call(
            M::GET,
            &format!("/visitors/many40abcdefghijklmnop?{q}"),
            Auth::V3,
        ));
    }
    for id in ["ratelimit-4", "notfound-4", "error500-4"] {
        all.push(call(M::GET, &format!("/visitors/{id}"), Auth::V3));
    }
    all.push(call(M::GET, &format!("/visitors/{visitor}"), Auth::Wrong));
    // Stytch.
    for id in [
        "5f1c9a9e-3b7d",
        "bot-1",
        "notfound-5",
        "ratelimit-5",
        "error500-5",
    ] {
        all.push(post(
            "/v1/fingerprint/lookup",
            json!({"telemetry_id": id, "external_metadata": {"external_id": "user-1"}}),
        ));
    }
    all.push(post("/v1/fingerprint/lookup", json!({})));
    let mut wrong = post("/v1/fingerprint/lookup", json!({"telemetry_id": "t"}));
    wrong.auth = Auth::Wrong;
    all.push(wrong);
    all.push(post("/v1/rules/list", json!({"limit": 2})));
    all.push(post(
        "/v1/rules/list",
        json!({"limit": 2, "cursor": "sandbox-cursor-4"}),
    ));
    all.push(post("/v1/rules/list", json!({"cursor": "bogus"})));
    all.push(post("/v1/rules/set", json!({"visitor_id": "visitor-1", "action": "BLOCK", "description": "x", "expires_in_minutes": 5})));
    all.push(post(
        "/v1/rules/set",
        json!({"cidr_block": "203.0.113.0/24", "action": "CHALLENGE"}),
    ));
    all.push(post(
        "/v1/rules/set",
        json!({"visitor_id": "visitor-1", "action": "NONE"}),
    ));
    all.push(post(
        "/v1/rules/set",
        json!({"cidr_block": "10.0.0.0/8", "action": "BLOCK"}),
    ));
    all.push(post(
        "/v1/rules/set",
        json!({"country_code": "US", "action": "ALLOW"}),
    ));
    all.push(post(
        "/v1/rules/set",
        json!({"visitor_id": "v", "action": "MAYBE"}),
    ));
    all.push(post(
        "/v1/verdict_reasons/list",
        json!({"overrides_only": false}),
    ));
    all.push(post("/v1/verdict_reasons/override", json!({"verdict_reason": "VIRTUAL_MACHINE", "override_action": "ALLOW", "override_description": "VDI"})));
    all.push(post(
        "/v1/verdict_reasons/override",
        json!({"verdict_reason": "VIRTUAL_MACHINE", "override_action": "NONE"}),
    ));
    all.push(post(
        "/v1/verdict_reasons/override",
        json!({"verdict_reason": "RULE_MATCH", "override_action": "ALLOW"}),
    ));
    all
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it) and python3 with openapi-core (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
async fn every_sandbox_answer_validates_against_the_upstream_schema() {
    let fixtures = common::fixtures();
    common::process::require_tool(
        "python3 with openapi-core",
        Command::new("python3").args(["-c", "import openapi_core, requests"]),
        "pip install -r tests/requirements.txt",
    );
    let creds = Credentials::default();
    let sandbox = Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        creds.clone(),
    )
    .unwrap();
    sandbox.control.record(10_000);
    let http = reqwest::Client::new();
    let calls = calls();
    for c in &calls {
        let mut r = http.request(
            c.method.clone(),
            format!("{}{}", sandbox.base_url(), c.path),
        );
        r = match c.auth {
            Auth::V4 => r.bearer_auth(&creds.fingerprint_secret),
            Auth::V3 => r.header("Auth-API-Key", &creds.fingerprint_secret),
            Auth::Stytch => r.basic_auth(&creds.stytch_project_id, Some(&creds.stytch_secret)),
            Auth::Wrong if c.path.starts_with("/v1/") => r.basic_auth("p", Some("wrong")),
            Auth::Wrong if c.path.starts_with("/v4/") => r.bearer_auth("wrong"),
            Auth::Wrong => r.header("Auth-API-Key", "wrong"),
            Auth::None => r,
        };
        if let Some(body) = &c.body {
            r = r.json(body);
        }
        r.send().await.unwrap().bytes().await.unwrap();
    }
    let recorded = sandbox.control.requests();
    assert_eq!(recorded.len(), calls.len());
    let statuses: std::collections::BTreeSet<u16> = recorded.iter().map(|r| r.status).collect();
    for status in [200, 400, 401, 403, 404, 409, 413, 429, 500] {
        assert!(
            statuses.contains(&status),
            "no answer with status {status}: {statuses:?}"
        );
    }
    let exchanges: Vec<Json> = recorded
        .iter()
        .map(|r| {
            let api = if r.path.starts_with("/v1/") {
                "stytch"
            } else if r.path.starts_with("/v4/") {
                "v4"
            } else {
                "v3"
            };
            json!({"api": api, "method": r.method, "path": r.path, "query": r.query,
                   "headers": r.headers, "body": r.body, "status": r.status,
                   "content_type": r.content_type, "response": r.response})
        })
        .collect();
    let file =
        std::env::temp_dir().join(format!("fpgw-sandbox-answers-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec_pretty(&exchanges).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/openapi/validate_responses.py"
        ))
        .arg(&fixtures)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "sandbox answers that break the upstream schemas:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sandbox.shutdown().await;
}
