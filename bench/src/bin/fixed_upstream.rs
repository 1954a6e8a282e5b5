//! A local upstream: answers `GET /v4/events/{id}` with the benchmark event's JSON,
//! serialized once, and `POST /v4/edge` with a browser's edge analysis, after a fixed
//! delay. Usage: fixed_upstream ADDR DELAY_MS

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
    let edge = serde_json::to_vec(&serde_json::json!({
        "event_id": "1758130561034.Kp2Wqz", "timestamp": 1758130561034_i64, "source": "edge",
        "url": "https://shop.example.com/login?next=%2Fcart",
        "ip_info": {"v4": {"address": "173.56.25.103", "asn": "701", "asn_name": "Verizon Business",
            "asn_network": "173.56.0.0/16", "asn_type": "isp", "datacenter_result": false,
            "geolocation": {"accuracy_radius": 20, "latitude": 40.71427, "longitude": -74.00597,
                "timezone": "America/New_York", "city_name": "New York City", "country_code": "US",
                "country_name": "United States", "continent_code": "NA", "continent_name": "North America"}}},
        "proxy": false, "proxy_confidence": "high", "vpn": false, "vpn_confidence": "medium",
        "vpn_methods": {"public_vpn": false, "relay": false}
    }))?;
    let app = Router::new()
        .route(
            "/v4/edge",
            axum::routing::post(move || {
                let body = edge.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
            }),
        )
        .route(
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
