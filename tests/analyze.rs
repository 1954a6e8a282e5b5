//! AnalyzeRequest (`POST /v4/edge`) through the real gateway and the sandbox: what is
//! sent (credential headers blanked in place, order and repeats kept), what is refused
//! before any call, that nothing is cached, which failures are retried, and v3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Harness, details};
use fingerprint_gateway::{
    config::Generation,
    proto::v1::{AnalyzeRequestRequest, HeaderEntry},
};
use serde_json::Value as Json;
use tonic::Code;

fn header(name: &str, value: &str) -> HeaderEntry {
    HeaderEntry {
        name: name.into(),
        value: value.into(),
    }
}

fn request() -> AnalyzeRequestRequest {
    AnalyzeRequestRequest {
        headers: vec![
            header("Host", "example.com"),
            header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
            header("Accept-Encoding", "gzip"),
            header("Accept-Encoding", "deflate"),
        ],
        method: "POST".into(),
        url: "https://example.com/login?next=%2F".into(),
        ipv4_address: Some("173.56.25.103".into()),
        ..Default::default()
    }
}

fn edge_calls(h: &Harness) -> Vec<Json> {
    h.upstream_requests()
        .into_iter()
        .filter(|r| r.path == "/v4/edge")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn credential_headers_reach_the_vendor_empty_in_their_place() {
    let h = Harness::start_with(
        Generation::V4,
        &[(
            "FINGERPRINT_EDGE_BLANK_HEADERS",
            "X-Session, x-csrf-token".into(),
        )],
    )
    .await;
    let mut req = request();
    let secrets = [
        ("Authorization", "Bearer s3cr3t-a"),
        ("proxy-authorization", "Basic s3cr3t-b"),
        ("Cookie", "sid=s3cr3t-c"),
        ("COOKIE", "other=s3cr3t-d"),
        ("Set-Cookie", "x=s3cr3t-e"),
        ("X-Api-Key", "s3cr3t-f"),
        ("x-session", "s3cr3t-g"),
        ("X-CSRF-Token", "s3cr3t-h"),
    ];
    for (name, value) in secrets {
        req.headers.push(header(name, value));
    }
    req.headers.push(header("Accept", "text/html"));
    let answer = h
        .fingerprint()
        .analyze_request(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.source.as_deref(), Some("edge"));
    assert!(
        answer.bot_info.is_none(),
        "a browser: {:?}",
        answer.bot_info
    );
    let sent = edge_calls(&h);
    assert_eq!(sent.len(), 1);
    let lines = sent[0]["headers"].as_array().unwrap();
    assert_eq!(lines.len(), req.headers.len(), "no line dropped or added");
    for (line, asked) in lines.iter().zip(&req.headers) {
        assert_eq!(line["name"], asked.name.as_str(), "order and case kept");
        let secret = secrets.iter().any(|(n, _)| *n == asked.name);
        let expected = if secret { "" } else { asked.value.as_str() };
        assert_eq!(line["value"], expected, "{}", asked.name);
    }
    let body = &h.upstream_requests()[0].body;
    assert!(!body.contains("s3cr3t"), "a secret left: {body}");
    assert_eq!(sent[0]["method"], "POST");
    assert_eq!(sent[0]["url"], "https://example.com/login?next=%2F");
    assert_eq!(sent[0]["ipv4_address"], "173.56.25.103");
    assert!(sent[0].get("ipv6_address").is_none());
    h.stop().await;
}

#[tokio::test]
async fn the_sandbox_classifies_by_request_and_nothing_is_cached() {
    let h = Harness::start().await;
    let mut signed = request();
    signed.headers.extend([
        header("Signature-Agent", "\"https://chatgpt.com\""),
        header(
            "Signature-Input",
            "sig1=(\"@authority\");tag=\"web-bot-auth\"",
        ),
        header("Signature", "sig1=:AAAA:"),
    ]);
    let mut fp = h.fingerprint();
    let a = fp
        .analyze_request(signed.clone())
        .await
        .unwrap()
        .into_inner();
    let bot = a.bot_info.unwrap();
    assert_eq!(bot.category.as_deref(), Some("ai_agent"));
    assert_eq!(bot.identity.as_deref(), Some("signed"));
    assert_eq!(bot.provider.as_deref(), Some("OpenAI"));
    let b = fp.analyze_request(signed).await.unwrap().into_inner();
    assert_ne!(a.event_id, b.event_id, "each call is a new event");
    assert_eq!(edge_calls(&h).len(), 2, "never answered from the cache");

    let mut dc = request();
    dc.ipv4_address = Some("104.210.139.192".into());
    dc.ipv6_address = Some("2001:db8:bad::7".into());
    let d = fp.analyze_request(dc).await.unwrap().into_inner();
    let ip = d.ip_info.unwrap();
    assert_eq!(ip.v4.unwrap().datacenter_result, Some(true));
    assert_eq!(ip.v6.unwrap().datacenter_result, Some(false));
    assert_eq!(
        d.proxy,
        Some(true),
        "2001:db8:bad::/48 is the sandbox's proxy range"
    );
    assert!(d.proxy_details.is_some());
    h.stop().await;
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_call() {
    let h = Harness::start().await;
    let mut cases: Vec<(&str, AnalyzeRequestRequest)> = Vec::new();
    let mut r = request();
    r.headers.clear();
    cases.push(("headers", r));
    let mut r = request();
    r.headers = (0..257).map(|i| header(&format!("X-{i}"), "v")).collect();
    cases.push(("headers", r));
    let mut r = request();
    r.headers = vec![header("X-Big", &"v".repeat(70_000))];
    cases.push(("headers", r));
    let mut r = request();
    r.headers.push(header("Bad Name", "v"));
    cases.push(("headers.name", r));
    let mut r = request();
    r.headers.push(header("X-Split", "a\r\nInjected: 1"));
    cases.push(("headers.value", r));
    for method in ["", "GE T", "G\u{e9}T", &"A".repeat(33)] {
        let mut r = request();
        r.method = method.into();
        cases.push(("method", r));
    }
    for url in [
        "",
        "/login",
        "ftp://example.com/x",
        "https://example.com/login#top",
        "https://",
        "http://exa mple.com/",
    ] {
        let mut r = request();
        r.url = url.into();
        cases.push(("url", r));
    }
    let mut r = request();
    r.ipv4_address = None;
    cases.push(("ipv4_address", r));
    let mut r = request();
    r.ipv4_address = Some("2001:db8::1".into());
    cases.push(("ipv4_address", r));
    let mut r = request();
    r.ipv6_address = Some("10.0.0.1".into());
    cases.push(("ipv6_address", r));
    let mut r = request();
    r.linked_id = Some("x".repeat(257));
    cases.push(("linked_id", r));
    for (field, req) in cases {
        let what = format!("{field}: {:?} {:?}", req.method, req.url);
        let err = h.fingerprint().analyze_request(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        let d = details(&err);
        let v = &d.bad_request().unwrap().field_violations[0];
        assert_eq!(v.field, field, "{what}");
    }
    assert!(edge_calls(&h).is_empty(), "nothing was sent");
    h.stop().await;
}

#[tokio::test]
async fn a_failure_after_sending_is_not_retried() {
    let h = Harness::start().await;
    let client = reqwest::Client::new();
    let faults = format!("{}/__sandbox/faults", h.sandbox.base_url());
    client
        .put(&faults)
        .json(&serde_json::json!([{"path": "/v4/edge", "fault": "status", "status": 503}]))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let err = h
        .fingerprint()
        .analyze_request(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        edge_calls(&h).len(),
        1,
        "a 503 after sending is not sent again"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_vendor_that_cannot_be_reached_is_tried_again() {
    // A port with nothing listening: every attempt fails to connect, so each is safe to
    // repeat. The attempts count shows in the upstream metrics.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let metrics = common::process::free_port();
    let h = Harness::start_with(
        Generation::V4,
        &[
            ("FINGERPRINT_API_BASE_URL", url),
            ("GATEWAY_RETRY_MAX_ATTEMPTS", "3".into()),
            ("GATEWAY_METRICS_LISTEN", metrics.to_string()),
        ],
    )
    .await;
    let err = h
        .fingerprint()
        .analyze_request(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let attempts: f64 = text
        .lines()
        .filter(|l| l.starts_with("fpgw_upstream_retries_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(attempts >= 1.0, "connect failures are retried:\n{text}");
    h.stop().await;
}

#[tokio::test]
async fn v3_has_no_edge() {
    let h = Harness::start_with(Generation::V3, &[]).await;
    let err = h
        .fingerprint()
        .analyze_request(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = details(&err).error_info().cloned().unwrap();
    assert_eq!(info.reason, "EDGE_UNSUPPORTED");
    assert!(
        err.message().contains("FINGERPRINT_API_VERSION=v4"),
        "{}",
        err.message()
    );
    assert!(h.upstream_requests().is_empty());
    h.stop().await;
}
