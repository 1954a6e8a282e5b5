//! No secret can come back: an upstream that echoes the gateway's credentials, in
//! every form the gateway sends them (raw, Bearer, Basic base64) and in every place it
//! can (body members and keys, error codes and messages, request ids, content types,
//! redirect targets, text cut at a length limit), and zero occurrences in what the
//! caller gets, in the logs (debug, JSON, with span fields) and in the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{io::Read, process::Stdio, time::Duration};

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use common::process::{free_port, gateway};
use fingerprint_gateway::proto::v1::{
    GetEventRequest, LookupTelemetryRequest, fingerprint_service_client::FingerprintServiceClient,
    stytch_service_client::StytchServiceClient,
};
use serde_json::json;
use tonic::transport::Channel;

const KEY: &str = "fpkey_SENTINEL_7f3a9c";
const PROJECT: &str = "project-test-SENTINEL";
const SECRET: &str = "secret-test-SENTINEL_b41d";

fn basic() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{PROJECT}:{SECRET}"))
}

/// Every form a secret could come back in.
fn forms() -> Vec<String> {
    vec![KEY.to_owned(), SECRET.to_owned(), basic()]
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn event(Path(id): Path<String>) -> Response {
    let bearer = format!("Bearer {KEY}");
    match id.as_str() {
        "echo-body" => json_answer(
            StatusCode::OK,
            json!({
                "event_id": "echo-body",
                "timestamp": 1_770_000_000_000u64,
                "tags": {"seen": KEY, "auth": bearer},
                "url": format!("https://shop.example/?k={KEY}"),
                KEY: {"nested": [KEY, {"deeper": bearer}]},
                "unknown_member": format!("{KEY}{KEY}"),
            }),
        ),
        "echo-content-type" => {
            let mut r = (StatusCode::OK, "not json").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("text/plain; key={KEY}")).unwrap(),
            );
            r
        }
        "echo-error" => json_answer(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": KEY, "message": format!("bad key {bearer}")}}),
        ),
        "echo-long" => json_answer(
            StatusCode::BAD_REQUEST,
            // The secret straddles the 512-byte cut of echoed messages.
            json!({"error": {"code": "x", "message": format!("{}{KEY}", "a".repeat(505))}}),
        ),
        "echo-redirect" => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("https://elsewhere.example/?key={KEY}")).unwrap(),
            );
            r
        }
        _ => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": "failed", "message": format!("internal {KEY}")}}),
        ),
    }
}

async fn lookup(body: String) -> Response {
    let basic = basic();
    if body.contains("echo-ok") {
        return json_answer(
            StatusCode::OK,
            json!({
                "status_code": 200,
                "request_id": SECRET,
                "telemetry_id": "echo-ok",
                "fingerprints": {"visitor_fingerprint": basic},
                "verdict": {"action": "ALLOW", "reasons": [SECRET], "detected_device_type": basic},
                "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-02T00:00:00Z",
                "extra": {"auth": format!("Basic {basic}")},
            }),
        );
    }
    json_answer(
        StatusCode::BAD_REQUEST,
        json!({
            "status_code": 400,
            "request_id": basic,
            "error_type": SECRET,
            "error_message": format!("Authorization: Basic {basic} was {SECRET}"),
        }),
    )
}

/// Everything a caller gets: the message and metadata, or the status with its details.
fn shown<T: std::fmt::Debug>(got: Result<tonic::Response<T>, tonic::Status>) -> String {
    match got {
        Ok(r) => format!("{:?} {:?}", r.metadata(), r.get_ref()),
        Err(e) => format!(
            "{} {:?} {}",
            e.message(),
            e.metadata(),
            String::from_utf8_lossy(e.details())
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_never_reach_callers_logs_or_metrics() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", upstream.local_addr().unwrap());
    let app = Router::new()
        .route("/v4/events/{id}", get(event))
        .route("/v1/fingerprint/lookup", post(lookup));
    tokio::spawn(async move { axum::serve(upstream, app).await });

    let listen = free_port();
    let metrics = free_port();
    let (listen_s, metrics_s) = (listen.to_string(), metrics.to_string());
    let mut child = gateway(
        &[],
        &[
            ("GATEWAY_LISTEN", &listen_s),
            ("GATEWAY_METRICS_LISTEN", &metrics_s),
            ("GATEWAY_LOG_FORMAT", "json"),
            ("RUST_LOG", "trace,h2=info,hyper=info,tower=info"),
            ("GATEWAY_RETRY_MAX_ATTEMPTS", "1"),
            ("FINGERPRINT_API_BASE_URL", &base),
            ("FINGERPRINT_SECRET_API_KEY", KEY),
            ("STYTCH_API_BASE_URL", &base),
            ("STYTCH_PROJECT_ID", PROJECT),
            ("STYTCH_SECRET", SECRET),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    common::process::wait_for_listener(&mut child, listen, "gateway", Duration::from_secs(20));
    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut fp = FingerprintServiceClient::new(channel.clone());
    let mut st = StytchServiceClient::new(channel);

    let mut seen = String::new();
    let mut answer = |what: &str, text: String| {
        seen.push_str(&format!("\n== {what}\n{text}"));
    };
    for id in [
        "echo-body",
        "echo-content-type",
        "echo-error",
        "echo-long",
        "echo-redirect",
        "echo-500",
    ] {
        let got = fp
            .get_event(GetEventRequest {
                event_id: id.into(),
                ..Default::default()
            })
            .await;
        answer(id, shown(got));
    }
    for id in ["echo-ok", "echo-bad"] {
        let got = st
            .lookup_telemetry(LookupTelemetryRequest {
                telemetry_id: id.into(),
                ..Default::default()
            })
            .await;
        answer(id, shown(got));
    }
    let scrape = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = child.kill();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = child.wait();

    // The test can fail: the echoes did happen, and were logged.
    assert!(
        seen.contains("[redacted]"),
        "the upstream's echoes reached the gateway:{seen}"
    );
    assert!(
        logs.contains("request failed"),
        "the logs were captured:\n{logs}"
    );
    for form in forms() {
        for (place, text) in [("answers", &seen), ("logs", &logs), ("metrics", &scrape)] {
            assert!(
                !text.contains(&form),
                "{form:?} came back in the {place}:\n{}",
                text.lines()
                    .filter(|l| l.contains(&form))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        // Nor any long piece of it (what a cut could leave).
        let piece = &form[..form.len() - 3];
        assert!(
            !seen.contains(piece) && !logs.contains(piece),
            "a piece of {form:?} came back"
        );
    }
}
