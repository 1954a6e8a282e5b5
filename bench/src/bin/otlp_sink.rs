//! A real OTLP/gRPC trace receiver that only counts: every export is decoded as a
//! collector would, and its spans are added up. `GET /count` (HTTP, on a second port)
//! answers the total, so a benchmark can tell spans delivered from spans made.
//! Usage: otlp_sink GRPC_ADDR COUNT_ADDR

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{Router, routing::get};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

#[derive(Clone, Default)]
struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let grpc = args.next().unwrap_or_else(|| "127.0.0.1:4317".into());
    let count = args.next().unwrap_or_else(|| "127.0.0.1:4318".into());
    let sink = Sink::default();
    let total = sink.0.clone();
    let app = Router::new().route(
        "/count",
        get(move || {
            let total = total.clone();
            async move { total.load(Ordering::Relaxed).to_string() }
        }),
    );
    let http = tokio::net::TcpListener::bind(count).await?;
    tokio::spawn(async move { axum::serve(http, app).await });
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink).max_decoding_message_size(64 << 20))
        .serve(grpc.parse()?)
        .await?;
    Ok(())
}
