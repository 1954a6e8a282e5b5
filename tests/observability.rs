//! Observability you can leave on, as an operator runs it: the binary, a real OTLP/gRPC
//! receiver, and `/metrics` scraped over HTTP.
//!
//! - The log level decides logs only: with `RUST_LOG=error` (and the release-like
//!   `warn`), a call's server span and its upstream client spans still reach the
//!   receiver, and the log output stays quiet.
//! - A log line written inside a traced call carries its `trace_id` and `span_id`, in
//!   text and in JSON.
//! - A sampled call's trace is its latency bucket's exemplar, served when the scraper
//!   asks for OpenMetrics, and it names the trace the receiver got.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::process::{free_port, gateway, wait_for_listener};
use fingerprint_gateway::proto::v1::{
    GetEventRequest, UpdateEventRequest, fingerprint_service_client::FingerprintServiceClient,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};

/// A real OTLP/gRPC receiver that keeps every span it gets.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serves on a free loopback port; returns its endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        endpoint
    }

    fn spans_of(&self, trace_id: &str) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .cloned()
            .collect()
    }
}

/// The gateway binary in sandbox mode, its log (stdout; the audit trail has stderr) in
/// a file.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    fn start(env: &[(&str, &str)]) -> Self {
        let addr = free_port();
        let metrics = free_port();
        let log = std::env::temp_dir().join(format!(
            "fpgw-observability-{}-{}.log",
            std::process::id(),
            fastrand::u64(..)
        ));
        let metrics_listen = metrics.to_string();
        let mut env = env.to_vec();
        env.push(("GATEWAY_METRICS_LISTEN", &metrics_listen));
        // The first upstream attempt fails: the call retries once.
        env.push((
            "GATEWAY_SANDBOX_FAULTS",
            r#"[{"path": "/v4/events/", "fault": "status", "status": 503, "times": 1}]"#,
        ));
        env.push(("GATEWAY_RETRY_BACKOFF", "5ms"));
        let mut child = gateway(&["--sandbox", "--listen", &addr.to_string()], &env)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_listener(&mut child, addr, "gateway", Duration::from_secs(20));
        wait_for_listener(&mut child, metrics, "metrics", Duration::from_secs(20));
        Self {
            child,
            addr,
            metrics,
            log,
        }
    }

    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn get_event(&self, event_id: &str, traceparent: Option<&str>) {
        let channel = self.channel().await;
        let mut request = tonic::Request::new(GetEventRequest {
            event_id: event_id.into(),
            ..Default::default()
        });
        if let Some(traceparent) = traceparent {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.parse().unwrap());
        }
        FingerprintServiceClient::new(channel)
            .get_event(request)
            .await
            .unwrap();
    }

    /// An UpdateEvent (a mutation: it is audited) in trace `traceparent`.
    async fn update_event(&self, event_id: &str, traceparent: &str) {
        let channel = self.channel().await;
        let mut request = tonic::Request::new(UpdateEventRequest {
            event_id: event_id.into(),
            suspect: Some(true),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        FingerprintServiceClient::new(channel)
            .update_event(request)
            .await
            .unwrap();
    }

    /// A call to a method the gateway does not serve, in trace `traceparent`.
    async fn made_up_call(&self, traceparent: &str) {
        let channel = self.channel().await;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(GetEventRequest::default());
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        let answer = grpc
            .unary::<_, GetEventRequest, _>(
                request,
                http::uri::PathAndQuery::from_static("/made.up.Service/MintSpanNames"),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    }

    async fn scrape(&self, accept: &str) -> (String, String) {
        let response = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.metrics))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (content_type, response.text().await.unwrap())
    }

    /// SIGTERM, wait for the exit (spans are flushed on the way out), and the log.
    fn stop(mut self) -> String {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&self.log).unwrap();
        let _ = std::fs::remove_file(&self.log);
        log
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_trace_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(1..), fastrand::u64(1..))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_level_does_not_switch_tracing_off() {
    for level in ["error", "warn"] {
        let receiver = Receiver::default();
        let endpoint = receiver.start().await;
        let gateway = Gateway::start(&[
            ("RUST_LOG", level),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ]);
        let trace_id = random_trace_id();
        gateway
            .get_event(
                "quiet-1",
                Some(&format!("00-{trace_id}-00f067aa0ba902b7-01")),
            )
            .await;
        // A call that starts its own trace: the default sampler records it too.
        gateway.get_event("quiet-2", None).await;
        // A made-up path cannot mint a span name.
        let made_up = random_trace_id();
        gateway
            .made_up_call(&format!("00-{made_up}-00f067aa0ba902b7-01"))
            .await;
        let log = gateway.stop();
        let made_up_spans: Vec<String> = receiver
            .spans_of(&made_up)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert!(
            !made_up_spans.is_empty() && made_up_spans.iter().all(|n| n == "unknown"),
            "{made_up_spans:?}"
        );
        let spans = receiver.spans_of(&trace_id);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"fingerprint.gateway.v1.FingerprintService/GetEvent"),
            "RUST_LOG={level}: no server span: {names:?}"
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == "GET /v4/events/{id}")
                .count(),
            2,
            "RUST_LOG={level}: one client span per upstream attempt: {names:?}"
        );
        let roots = receiver
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                s.parent_span_id.is_empty()
                    && hex(&s.trace_id) != trace_id
                    && hex(&s.trace_id) != made_up
            })
            .count();
        assert_eq!(roots, 1, "RUST_LOG={level}: the call without a traceparent");
        // The log level still decides the log: nothing at info (start-up, serving) or
        // debug (the retry) was written.
        for quiet in [" INFO ", " DEBUG "] {
            assert!(!log.contains(quiet), "RUST_LOG={level} wrote:\n{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_inside_a_traced_call_carry_its_trace_and_span_ids() {
    for format in ["text", "json"] {
        let receiver = Receiver::default();
        let endpoint = receiver.start().await;
        let gateway = Gateway::start(&[
            ("RUST_LOG", "warn,fingerprint_gateway::upstream=debug"),
            ("GATEWAY_LOG_FORMAT", format),
            // The audit trail in the same file as the log.
            ("GATEWAY_AUDIT_LOG", "stdout"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ]);
        let trace_id = random_trace_id();
        gateway
            .get_event(
                "logged-1",
                Some(&format!("00-{trace_id}-00f067aa0ba902b7-01")),
            )
            .await;
        let audited = random_trace_id();
        gateway
            .update_event("logged-2", &format!("00-{audited}-00f067aa0ba902b7-01"))
            .await;
        let log = gateway.stop();
        // The audit record of the mutation names its trace and the RPC's span.
        let audit: serde_json::Value = log
            .lines()
            .find(|l| l.contains("\"audit\":\"fingerprint-gateway\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap_or_else(|| panic!("{format}: no audit record in:\n{log}"));
        assert_eq!(audit["trace_id"], audited.as_str(), "{audit}");
        let update_span = receiver
            .spans_of(&audited)
            .into_iter()
            .find(|s| s.name == "fingerprint.gateway.v1.FingerprintService/UpdateEvent")
            .expect("the UpdateEvent span");
        assert_eq!(
            audit["span_id"],
            hex(&update_span.span_id).as_str(),
            "{audit}"
        );
        let line = log
            .lines()
            .find(|l| l.contains("retrying"))
            .unwrap_or_else(|| {
                panic!(
                    "{format}: no retry line in:\n{log}\nspans: {:?}",
                    receiver
                        .spans_of(&trace_id)
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                )
            });
        // The line names the span it was written in, one of the call's.
        let call_spans: Vec<String> = receiver
            .spans_of(&trace_id)
            .iter()
            .map(|s| hex(&s.span_id))
            .collect();
        let (logged_trace, logged_span) = match format {
            "json" => {
                let object: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    object["trace_id"].as_str().unwrap().to_owned(),
                    object["span_id"].as_str().unwrap().to_owned(),
                )
            }
            _ => {
                let field = |name: &str| {
                    line.split(' ')
                        .find_map(|w| w.strip_prefix(&format!("{name}=")))
                        .unwrap_or_else(|| panic!("no {name} in {line}"))
                        .to_owned()
                };
                (field("trace_id"), field("span_id"))
            }
        };
        assert_eq!(logged_trace, trace_id, "{format}: {line}");
        assert!(
            call_spans.contains(&logged_span),
            "{format}: {line} names span {logged_span}, not one of {call_spans:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_bucket_leads_to_the_trace_the_receiver_got() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let gateway = Gateway::start(&[
        ("RUST_LOG", "warn"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
    ]);
    // A call that starts its own trace: the gateway picks the trace id.
    gateway.get_event("exemplar-1", None).await;
    let (content_type, openmetrics) = gateway.scrape("application/openmetrics-text").await;
    let (plain_type, plain) = gateway.scrape("text/plain").await;
    let _ = gateway.stop();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let exemplar = |metric: &str, series: &str| -> (String, String) {
        let line = openmetrics
            .lines()
            .find(|l| l.starts_with(metric) && l.contains(series) && l.contains(" # {"))
            .unwrap_or_else(|| panic!("no exemplar on {metric}:\n{openmetrics}"));
        let labels = line.split(" # {").nth(1).unwrap();
        let value = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap()
                .to_owned()
        };
        (value("trace_id"), value("span_id"))
    };
    let spans = receiver.0.lock().unwrap().clone();
    let (trace_id, span_id) = exemplar(
        "fpgw_rpc_duration_seconds_bucket{",
        "rpc=\"fingerprint.gateway.v1.FingerprintService/GetEvent\"",
    );
    let server = spans
        .iter()
        .find(|s| hex(&s.span_id) == span_id)
        .expect("the exemplar's span reached the receiver");
    assert_eq!(hex(&server.trace_id), trace_id);
    assert_eq!(
        server.name,
        "fingerprint.gateway.v1.FingerprintService/GetEvent"
    );
    let (upstream_trace, upstream_span) = exemplar(
        "fpgw_upstream_duration_seconds_bucket{",
        "upstream=\"fingerprint\"",
    );
    assert_eq!(
        upstream_trace, trace_id,
        "the upstream call is in the same trace"
    );
    assert!(
        spans
            .iter()
            .any(|s| hex(&s.span_id) == upstream_span && s.name == "GET /v4/events/{id}"),
        "the upstream exemplar names a client span"
    );
    // A scraper that does not ask for OpenMetrics gets the Prometheus text format,
    // which has no exemplars.
    assert!(
        plain_type.starts_with("text/plain; version=0.0.4"),
        "{plain_type}"
    );
    assert!(plain.contains("fpgw_rpc_duration_seconds_bucket"));
    assert!(
        !plain.contains(" # {") && !plain.contains("# EOF"),
        "{plain}"
    );
}
