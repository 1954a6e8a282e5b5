//! Traces: every RPC and upstream call is a span, exported over OTLP, and the caller's
//! W3C `traceparent` flows through the gateway to the upstream.
//!
//! Its own test binary: it installs the process-wide subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::Harness;
use fingerprint_gateway::{
    config::{LogFormat, TelemetryConfig},
    proto::v1::GetEventRequest,
    telemetry,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

/// A real OTLP/gRPC collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_flows_through_and_spans_are_exported() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let guard = telemetry::init(&TelemetryConfig {
        otlp_endpoint: Some(otlp),
        service_name: "gateway-under-test".into(),
        log_format: LogFormat::Text,
        sampler: Default::default(),
    })
    .unwrap();

    let h = Harness::start_with(
        fingerprint_gateway::config::Generation::V4,
        &[("GATEWAY_RETRY_BACKOFF", "5ms".to_owned())],
    )
    .await;
    // The first attempt fails: the trace shows both, and the RPC span their count.
    h.sandbox
        .control
        .faults
        .set(
            fingerprint_gateway::sandbox::faults::parse_rules(
                r#"[{"fault": "status", "status": 503, "times": 1}]"#,
            )
            .unwrap(),
        )
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(GetEventRequest {
        event_id: "traced-1".into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    h.fingerprint().get_event(request).await.unwrap();

    let upstream = &h.upstream_requests()[0];
    let out = upstream
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("traceparent sent upstream");
    assert!(out.starts_with(&format!("00-{trace_id}-")), "{out}");
    assert!(
        !out.contains("00f067aa0ba902b7"),
        "the upstream call is a child span, not the caller's"
    );
    h.stop().await;

    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
    let exported = collector.0.lock().unwrap().clone();
    let traced: Vec<_> = exported
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let spans: Vec<_> = traced.iter().map(|s| s.name.clone()).collect();
    let int = |span: &&opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match v.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i)) => {
                    Some(i)
                }
                _ => None,
            })
    };
    let rpc = traced
        .iter()
        .find(|s| s.name == "fingerprint.gateway.v1.FingerprintService/GetEvent")
        .expect("the RPC span");
    assert_eq!(int(rpc, "upstream.attempts"), Some(2), "{rpc:?}");
    let mut resends: Vec<_> = traced
        .iter()
        .filter(|s| s.name == "GET /v4/events/{id}")
        .filter_map(|s| int(s, "http.request.resend_count"))
        .collect();
    resends.sort();
    assert_eq!(resends, [0, 1], "one span per attempt");
    assert!(
        spans
            .iter()
            .any(|n| n == "fingerprint.gateway.v1.FingerprintService/GetEvent"),
        "{spans:?}"
    );
    assert!(
        spans.iter().any(|n| n == "GET /v4/events/{id}"),
        "{spans:?}"
    );
    let dump = format!("{exported:?}");
    assert!(
        !dump.contains("sandbox-fingerprint-secret-key"),
        "no secret in exported spans"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
