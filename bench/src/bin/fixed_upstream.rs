//! A local upstream: answers `GET /v4/events/{id}` with the benchmark event's JSON,
//! serialized once, after a fixed delay. Usage: fixed_upstream ADDR DELAY_MS

use std::time::Duration;

use axum::{Router, http::header, response::IntoResponse, routing::get};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:50601".into());
    let delay = Duration::from_millis(args.next().map_or(Ok(20), |d| d.parse())?);
    let body = serde_json::to_vec(&fingerprint_gateway_bench::event_json())?;
    eprintln!(
        "fixed upstream on {addr}: {} bytes after {delay:?}",
        body.len()
    );
    let app = Router::new().route(
        "/v4/events/{id}",
        get(move || {
            let body = body.clone();
            async move {
                tokio::time::sleep(delay).await;
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
