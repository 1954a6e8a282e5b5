//! The edge bot defense through its two doors, with the real gateway and the sandbox's
//! `/v4/edge`: Envoy's `Authorization/Check`, driven by a client built from Envoy's own
//! types (envoy-types) with `CheckRequest`s shaped as Envoy sends them, and the HTTP
//! forward-auth endpoint. nginx and Caddy in front of it: tests/edge_proxies.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, time::Duration};

use common::Harness;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, attribute_context, authorization_client::AuthorizationClient,
};
use fingerprint_gateway::config::Generation;

pub const POLICY: &str = r#"
default = "allow"
[scope]
paths = ["/login", "/signup"]

[[rule]]
name = "signed-agents"
action = "flag"
bot_identity = ["signed"]

[[rule]]
name = "known-bots"
action = "deny"
bot = true

[[rule]]
name = "datacenters"
action = "deny"
datacenter = true
"#;

pub fn policy_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "fpgw-edge-policy-{}-{}.toml",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

async fn gateway(extra: &[(&'static str, String)]) -> (Harness, std::path::PathBuf) {
    let file = policy_file(POLICY);
    let mut settings = vec![("GATEWAY_EDGE_POLICY_FILE", file.display().to_string())];
    settings.extend(extra.iter().cloned());
    (Harness::start_with(Generation::V4, &settings).await, file)
}

/// A `CheckRequest` as Envoy sends one: lowercased names, repeats folded, the
/// authority as `host`, the path with its query.
fn envoy_check(path: &str, peer: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map = HashMap::new();
    for (n, v) in headers {
        map.entry(n.to_ascii_lowercase())
            .and_modify(|old: &mut String| {
                old.push(',');
                old.push_str(v);
            })
            .or_insert_with(|| (*v).to_owned());
    }
    map.insert(":authority".into(), "shop.example.com".into());
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), "POST".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: peer.into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: "1".into(),
                    method: "POST".into(),
                    headers: map,
                    path: path.into(),
                    host: "shop.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

const BROWSER: &[(&str, &str)] = &[
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    ),
    ("Accept", "text/html"),
    ("Cookie", "session=secret-cookie-value"),
];

const SIGNED_AGENT: &[(&str, &str)] = &[
    ("User-Agent", "Mozilla/5.0"),
    ("Signature-Agent", "\"https://chatgpt.com\""),
    (
        "Signature-Input",
        "sig1=(\"@authority\");tag=\"web-bot-auth\"",
    ),
    ("Signature", "sig1=:AAAA:"),
];

const CRAWLER: &[(&str, &str)] = &[("User-Agent", "GPTBot/1.1")];

fn ok_headers(r: &CheckResponse) -> (HashMap<String, String>, Vec<String>) {
    assert_eq!(r.status.as_ref().unwrap().code, 0, "{r:?}");
    match r.http_response.as_ref().unwrap() {
        HttpResponse::OkResponse(ok) => (
            ok.headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect(),
            ok.headers_to_remove.clone(),
        ),
        other => panic!("not a pass: {other:?}"),
    }
}

fn denied_status(r: &CheckResponse) -> u16 {
    assert_eq!(
        r.status.as_ref().unwrap().code,
        7,
        "PERMISSION_DENIED: {r:?}"
    );
    match r.http_response.as_ref().unwrap() {
        HttpResponse::DeniedResponse(d) => d.status.unwrap().code as u16,
        other => panic!("not a refusal: {other:?}"),
    }
}

fn edge_calls(h: &Harness) -> usize {
    h.upstream_requests()
        .iter()
        .filter(|r| r.path == "/v4/edge")
        .count()
}

#[tokio::test]
async fn envoy_checks_allow_flag_deny_and_skip_what_is_out_of_scope() {
    let (h, file) = gateway(&[]).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());

    let pass = authz
        .check(envoy_check("/login?next=%2F", "173.56.25.103", BROWSER))
        .await
        .unwrap()
        .into_inner();
    let (headers, removed) = ok_headers(&pass);
    assert_eq!(headers["x-fingerprint-decision"], "allow");
    assert!(!headers["x-fingerprint-event-id"].is_empty());
    assert!(removed.contains(&"x-fingerprint-bot-category".to_owned()));
    let sent: serde_json::Value =
        serde_json::from_str(&h.upstream_requests().last().unwrap().body).unwrap();
    assert_eq!(sent["url"], "https://shop.example.com/login?next=%2F");
    assert_eq!(sent["ipv4_address"], "173.56.25.103");
    let lines = sent["headers"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["name"] == "cookie" && l["value"] == ""),
        "the cookie goes out blank: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["name"].as_str().unwrap().starts_with(':'))
    );

    let flagged = authz
        .check(envoy_check("/login", "173.56.25.103", SIGNED_AGENT))
        .await
        .unwrap()
        .into_inner();
    let (headers, _) = ok_headers(&flagged);
    assert_eq!(headers["x-fingerprint-decision"], "flag");
    assert_eq!(headers["x-fingerprint-bot-category"], "ai_agent");
    assert_eq!(headers["x-fingerprint-bot-identity"], "signed");
    assert_eq!(headers["x-fingerprint-rule"], "signed-agents");

    let denied = authz
        .check(envoy_check("/signup", "173.56.25.103", CRAWLER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied_status(&denied), 403);

    let datacenter = authz
        .check(envoy_check("/login", "104.210.139.192", BROWSER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied_status(&datacenter), 403);

    let before = edge_calls(&h);
    let asset = authz
        .check(envoy_check("/static/app.js", "104.210.139.192", CRAWLER))
        .await
        .unwrap()
        .into_inner();
    let (headers, _) = ok_headers(&asset);
    assert_eq!(headers["x-fingerprint-decision"], "out_of_scope");
    assert_eq!(edge_calls(&h), before, "no vendor call out of scope");
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_forged_decision_header_is_overwritten_or_removed() {
    let (h, file) = gateway(&[]).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    let forged: Vec<(&str, &str)> = BROWSER
        .iter()
        .copied()
        .chain([
            ("X-Fingerprint-Decision", "allow"),
            ("X-Fingerprint-Bot-Category", "none"),
            ("x-fingerprint-rule", "trusted"),
        ])
        .collect();
    for path in ["/login", "/elsewhere"] {
        let r = authz
            .check(envoy_check(path, "173.56.25.103", &forged))
            .await
            .unwrap()
            .into_inner();
        let HttpResponse::OkResponse(ok) = r.http_response.unwrap() else {
            panic!("a browser passes")
        };
        let set: Vec<&str> = ok
            .headers
            .iter()
            .map(|h| h.header.as_ref().unwrap().key.as_str())
            .collect();
        for name in fingerprint_gateway::screen::HEADERS {
            let overwritten = ok.headers.iter().any(|h| {
                h.header.as_ref().unwrap().key == name
                    && h.append_action
                        == envoy_types::ext_authz::v3::pb::HeaderAppendAction::OverwriteIfExistsOrAdd
                            as i32
            });
            let removed = ok.headers_to_remove.iter().any(|r| r == name);
            assert!(
                overwritten ^ removed,
                "{path}: {name} is overwritten or removed, once: {set:?} {:?}",
                ok.headers_to_remove
            );
        }
    }
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_an_untrusted_peer_does_not() {
    let (h, file) = gateway(&[("GATEWAY_EDGE_TRUSTED_PROXIES", "10.0.0.0/8".into())]).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    let xff = [("X-Forwarded-For", "104.210.139.192, 10.1.2.3")];
    let via_proxy: Vec<(&str, &str)> = BROWSER.iter().copied().chain(xff).collect();
    let r = authz
        .check(envoy_check("/login", "10.9.9.9", &via_proxy))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        denied_status(&r),
        403,
        "the data-centre client behind the proxy"
    );
    let r = authz
        .check(envoy_check("/login", "173.56.25.103", &via_proxy))
        .await
        .unwrap()
        .into_inner();
    let (headers, _) = ok_headers(&r);
    assert_eq!(
        headers["x-fingerprint-decision"], "allow",
        "a forged XFF is ignored"
    );
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

async fn vendor_down(h: &Harness) {
    reqwest::Client::new()
        .put(format!("{}/__sandbox/faults", h.sandbox.base_url()))
        .json(&serde_json::json!([{"path": "/v4/edge", "fault": "outage"}]))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

#[tokio::test]
async fn a_stuck_vendor_fails_open_within_the_budget_by_default() {
    let (h, file) = gateway(&[("GATEWAY_EDGE_BUDGET", "150ms".into())]).await;
    vendor_down(&h).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    let started = std::time::Instant::now();
    let r = authz
        .check(envoy_check("/login", "173.56.25.103", CRAWLER))
        .await
        .unwrap()
        .into_inner();
    let took = started.elapsed();
    let (headers, _) = ok_headers(&r);
    assert_eq!(headers["x-fingerprint-decision"], "unavailable");
    // Not a timing assertion of speed: the mesh must not wait on a stuck vendor, and
    // an outage holds the request for ever, so anything short of seconds is the budget.
    assert!(took < Duration::from_secs(3), "{took:?}");
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn fail_closed_refuses_and_a_short_envoy_timeout_bounds_the_budget() {
    let (h, file) = gateway(&[
        ("GATEWAY_EDGE_ON_FAILURE", "closed".into()),
        ("GATEWAY_EDGE_BUDGET", "30s".into()),
        ("GATEWAY_EDGE_DENY_STATUS", "429".into()),
    ])
    .await;
    vendor_down(&h).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    let mut request = tonic::Request::new(envoy_check("/login", "173.56.25.103", BROWSER));
    // Envoy's ext_authz timeout travels as the call's deadline.
    request.set_timeout(Duration::from_millis(300));
    let r = authz.check(request).await.unwrap().into_inner();
    assert_eq!(denied_status(&r), 429);
    let HttpResponse::DeniedResponse(d) = r.http_response.unwrap() else {
        unreachable!()
    };
    assert!(d.body.contains("unavailable"), "{}", d.body);
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn forward_auth_reads_the_proxy_conventions_from_trusted_peers_only() {
    let port = common::process::free_port();
    let (h, file) = gateway(&[("GATEWAY_HTTP_LISTEN", port.to_string())]).await;
    let http = reqwest::Client::new();
    let ask = |headers: &[(&str, &str)]| {
        let mut r = http.get(format!("http://{port}/auth"));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r.send()
    };
    // Caddy's and Traefik's conventions.
    let caddy = [
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example.com"),
        ("X-Forwarded-Uri", "/login?x=1"),
        ("X-Forwarded-For", "173.56.25.103"),
        ("User-Agent", "Mozilla/5.0"),
    ];
    let r = ask(&caddy).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-fingerprint-decision"], "allow");
    let sent: serde_json::Value =
        serde_json::from_str(&h.upstream_requests().last().unwrap().body).unwrap();
    assert_eq!(sent["url"], "https://shop.example.com/login?x=1");
    assert_eq!(sent["method"], "POST");
    assert_eq!(sent["ipv4_address"], "173.56.25.103");
    let names: Vec<&str> = sent["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("x-forwarded")),
        "{names:?}"
    );
    // nginx's, as the README configures it.
    let nginx = [
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/signup"),
        ("Host", "shop.example.com"),
        ("X-Real-IP", "173.56.25.103"),
        ("User-Agent", "GPTBot/1.1"),
    ];
    let r = ask(&nginx).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-fingerprint-decision"], "deny");
    assert_eq!(r.headers()["x-fingerprint-bot-name"], "GPTBot");
    h.stop().await;
    let _ = std::fs::remove_file(file);

    // From a peer that is not a trusted proxy, nothing is believed.
    let port = common::process::free_port();
    let (h, file) = gateway(&[
        ("GATEWAY_HTTP_LISTEN", port.to_string()),
        ("GATEWAY_EDGE_TRUSTED_PROXIES", "10.0.0.0/8".into()),
    ])
    .await;
    let r = reqwest::Client::new()
        .get(format!("http://{port}/auth"))
        .header("X-Forwarded-Uri", "/static/x.js")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.stop().await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn decisions_are_counted_by_outcome_and_denials_audited() {
    let metrics = common::process::free_port();
    let audit = std::env::temp_dir().join(format!("fpgw-edge-audit-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let (h, file) = gateway(&[
        ("GATEWAY_METRICS_LISTEN", metrics.to_string()),
        ("GATEWAY_AUDIT_LOG", audit.display().to_string()),
    ])
    .await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    for (path, headers) in [("/login", BROWSER), ("/login", CRAWLER), ("/x", BROWSER)] {
        authz
            .check(envoy_check(path, "173.56.25.103", headers))
            .await
            .unwrap();
    }
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (outcome, n) in [
        ("allow", 1),
        ("deny", 1),
        ("out_of_scope", 1),
        ("flag", 0),
        ("fail_open", 0),
        ("fail_closed", 0),
    ] {
        let line = format!("fpgw_edge_decisions_total{{outcome=\"{outcome}\"}} {n}");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert!(
        text.contains("fpgw_edge_decision_duration_seconds_count 3"),
        "{text}"
    );
    h.stop().await;
    let trail = std::fs::read_to_string(&audit).unwrap();
    let denials: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(denials.len(), 1, "{trail}");
    assert_eq!(denials[0]["decision"], "denied");
    assert_eq!(denials[0]["targets"]["path"], "/login");
    assert_eq!(denials[0]["targets"]["rule"], "known-bots");
    assert_eq!(
        denials[0]["rpc"],
        "envoy.service.auth.v3.Authorization/Check"
    );
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(audit);
}

#[tokio::test]
async fn the_policy_reloads_on_change_and_a_broken_file_keeps_the_old_one() {
    let (h, file) = gateway(&[]).await;
    let mut authz = AuthorizationClient::new(h.channel.clone());
    let decision = |r: CheckResponse| match r.http_response.unwrap() {
        HttpResponse::OkResponse(ok) => ok
            .headers
            .iter()
            .find(|h| h.header.as_ref().unwrap().key == "x-fingerprint-decision")
            .map(|h| h.header.as_ref().unwrap().value.clone())
            .unwrap(),
        HttpResponse::DeniedResponse(_) => "refused".to_owned(),
        _ => "?".to_owned(),
    };
    let check = envoy_check("/account", "173.56.25.103", BROWSER);
    let r = authz.check(check.clone()).await.unwrap().into_inner();
    assert_eq!(decision(r), "out_of_scope");
    std::fs::write(
        &file,
        POLICY.replace("[\"/login\", \"/signup\"]", "[\"/account\"]"),
    )
    .unwrap();
    let mut now = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = decision(authz.check(check.clone()).await.unwrap().into_inner());
        if now != "out_of_scope" {
            break;
        }
    }
    assert_eq!(now, "allow", "the new scope holds /account");
    std::fs::write(&file, "this is = not [ a policy").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = authz.check(check).await.unwrap().into_inner();
    assert_eq!(
        decision(r),
        "allow",
        "a broken file keeps the policy in force"
    );
    h.stop().await;
    let _ = std::fs::remove_file(file);
}
