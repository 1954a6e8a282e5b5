//! The ceiling for an answer of a given size: a bare tonic server with gRPC health and
//! a `FingerprintService/GetEvent` that answers a fixed payload held as `Bytes` (the
//! gateway's own encoded answer for the benchmark event), with no cache, validation or
//! metrics. Usage: bare_server ADDR [UPSTREAM_URL]
//!
//! With UPSTREAM_URL, each GetEvent first GETs that URL with a plain reqwest client and
//! reads the body whole, then answers the same fixed payload: the floor of any gateway
//! that turns a gRPC call into an upstream HTTP call, with nothing parsed, converted,
//! cached or counted.
//!
//! With `BARE_OTLP=http://…` in the environment, it also traces each GetEvent as the
//! gateway does (the gateway's own `telemetry::init`, one server span a call with the
//! same attributes, the default sampler) and exports to that receiver: the floor of any
//! gateway that traces every call through tracing-opentelemetry (bench/tracing.sh).

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, Bytes};
use tonic::{
    Status,
    body::Body,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    server::{Grpc, NamedService, UnaryService},
};

// The gateway's allocator, so the ceiling differs from the gateway only in what the
// gateway does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Passes bytes through in both directions.
#[derive(Clone, Copy, Default)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[derive(Clone)]
struct Fixed {
    payload: Bytes,
    /// The upstream to call first, if any.
    upstream: Option<(reqwest::Client, reqwest::Url)>,
}

impl UnaryService<Bytes> for Fixed {
    type Response = Bytes;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send + 'static>,
    >;
    fn call(&mut self, _request: tonic::Request<Bytes>) -> Self::Future {
        let Self { payload, upstream } = self.clone();
        Box::pin(async move {
            if let Some((client, url)) = upstream {
                let body = async { client.get(url).send().await?.bytes().await }
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                std::hint::black_box(body);
            }
            Ok(tonic::Response::new(payload))
        })
    }
}

/// `FingerprintService` with GetEvent only.
#[derive(Clone)]
struct FixedService(Fixed);

impl NamedService for FixedService {
    const NAME: &'static str = "fingerprint.gateway.v1.FingerprintService";
}

impl tower::Service<http::Request<Body>> for FixedService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fixed = self.0.clone();
        if !request.uri().path().ends_with("/GetEvent") {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let answer = async move { Ok(Grpc::new(BytesCodec).unary(fixed, request).await) };
        if !TRACED.get().copied().unwrap_or(false) {
            return Box::pin(answer);
        }
        // The gateway's span, with the gateway's target so that its filter takes it.
        let span = tracing::info_span!(
            target: "fingerprint_gateway",
            "rpc",
            otel.name = "fingerprint.gateway.v1.FingerprintService/GetEvent",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.grpc.status_code = 0,
        );
        Box::pin(tracing::Instrument::instrument(answer, span))
    }
}

/// Whether GetEvent is traced (`BARE_OTLP` set).
static TRACED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = match std::env::var("BARE_OTLP") {
        Ok(endpoint) => {
            let _ = TRACED.set(true);
            Some(fingerprint_gateway::telemetry::init(
                &fingerprint_gateway::config::TelemetryConfig {
                    otlp_endpoint: Some(endpoint),
                    service_name: "bare-server".into(),
                    log_format: fingerprint_gateway::config::LogFormat::Text,
                    sampler: Default::default(),
                },
            )?)
        }
        Err(_) => None,
    };
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:50600".into())
        .parse()?;
    let upstream = match args.next() {
        Some(url) => Some((reqwest::Client::new(), reqwest::Url::parse(&url)?)),
        None => None,
    };
    let payload = Bytes::from(fingerprint_gateway_bench::event_answer());
    eprintln!(
        "bare server on {addr}: GetEvent answers {} bytes",
        payload.len()
    );
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(FixedService(Fixed { payload, upstream }))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
