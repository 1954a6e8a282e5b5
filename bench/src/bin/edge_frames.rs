//! Writes the edge benchmark's inputs into DIR: `check_in` and `check_out` (gRPC frames
//! of a typical Envoy `CheckRequest`, 13 headers, for `/login` and for a static asset),
//! and `edge_body` (the JSON the gateway POSTs to `/v4/edge` for `check_in`).
//! Usage: edge_frames DIR

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use prost::Message;

const HEADERS: [(&str, &str); 13] = [
    (":authority", "shop.example.com"),
    (":method", "POST"),
    (":scheme", "https"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-length", "42"),
    (
        "cookie",
        "session=0123456789abcdef0123456789abcdef; theme=dark",
    ),
    ("x-forwarded-proto", "https"),
    ("x-request-id", "8c2e0c4a-6f2b-4c1e-9d3a-1f2e3d4c5b6a"),
    ("origin", "https://shop.example.com"),
];

fn check(path: &str) -> CheckRequest {
    let mut headers: HashMap<String, String> = HEADERS
        .iter()
        .map(|(n, v)| ((*n).into(), (*v).into()))
        .collect();
    headers.insert(":path".into(), path.into());
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "173.56.25.103".into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(51234)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.0.0.7".into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(8080)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: "17452389012345".into(),
                    method: "POST".into(),
                    headers,
                    path: path.into(),
                    host: "shop.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    size: 42,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("DIR")?);
    let inside = check("/login?next=%2Fcart").encode_to_vec();
    eprintln!(
        "CheckRequest: {} bytes, {} headers",
        inside.len(),
        HEADERS.len() + 1
    );
    std::fs::write(dir.join("check_in"), frame(&inside))?;
    std::fs::write(
        dir.join("check_out"),
        frame(&check("/static/app.3f9c2b.js").encode_to_vec()),
    )?;
    let lines: Vec<serde_json::Value> = HEADERS
        .iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .map(|(n, v)| {
            let v = if *n == "cookie" { "" } else { v };
            serde_json::json!({"name": n, "value": v})
        })
        .collect();
    let body = serde_json::json!({"headers": lines, "method": "POST",
        "url": "https://shop.example.com/login?next=%2Fcart", "ipv4_address": "173.56.25.103"});
    std::fs::write(dir.join("edge_body"), serde_json::to_vec(&body)?)?;
    Ok(())
}
