//! `POST /v4/edge`, Automation Intelligence: a classification of one request from its
//! metadata, deterministic by request so that tests and rehearsals know the answer:
//!
//! | the request | the answer |
//! |---|---|
//! | `Signature-Agent` with `Signature` and `Signature-Input` (Web Bot Auth) | a signed AI agent (`ai_agent`, `signed`, `high`), its provider read from the agent's host |
//! | `Signature-Agent` without a signature | the same agent, `spoofed` |
//! | a `User-Agent` naming a crawler or a tool (`GPTBot`, `ClaudeBot`, `Googlebot`, `HeadlessChrome`, `curl/`, `python-requests`) | that bot, identity `unknown` |
//! | an address in [`DATACENTERS`] | `asn_type: hosting`, `datacenter_result: true` |
//! | an address in [`PROXIES`] | `proxy: true` with a residential proxy's details |
//! | anything else | no bot, an ISP address, no proxy |
//!
//! It refuses as the API does: `400 request_cannot_be_parsed` for a body that is not
//! JSON, an unknown member, a missing required one, no IP address; `413
//! payload_too_large` past [`MAX_BODY`].

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::{Map, Value as Json, json};

use super::{AppState, CANNOT_PARSE, Code, Gen, Op, auth, error};
use crate::cidr::Cidr;

/// Largest body the sandbox reads.
pub const MAX_BODY: usize = 128 * 1024;

/// Data-centre ranges: (CIDR, data centre, ASN, ASN name, ASN network).
pub const DATACENTERS: [(&str, &str, &str, &str); 4] = [
    (
        "104.208.0.0/13",
        "Microsoft Azure",
        "8075",
        "Microsoft Corporation",
    ),
    ("34.64.0.0/10", "Google Cloud", "396982", "Google LLC"),
    ("3.0.0.0/9", "Amazon AWS", "16509", "Amazon.com, Inc."),
    ("2600:1f00::/24", "Amazon AWS", "16509", "Amazon.com, Inc."),
];

/// Residential proxy ranges (documentation ranges, so nothing real is named).
pub const PROXIES: [&str; 2] = ["198.51.100.0/24", "2001:db8:bad::/48"];

const PAYLOAD_TOO_LARGE: Code = Code {
    v4: "payload_too_large",
    v3: "PayloadTooLarge",
};

/// Makes each event id unique within the sandbox's life.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// `POST /v4/edge`.
pub async fn analyze(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = auth(&state, &headers, Gen::V4, Op::Edge) {
        return r;
    }
    let bad = |msg: &str| {
        error(
            Gen::V4,
            Op::Edge,
            StatusCode::BAD_REQUEST,
            CANNOT_PARSE,
            msg,
        )
    };
    if body.len() > MAX_BODY {
        return error(
            Gen::V4,
            Op::Edge,
            StatusCode::PAYLOAD_TOO_LARGE,
            PAYLOAD_TOO_LARGE,
            "payload too large",
        );
    }
    let Ok(Json::Object(request)) = serde_json::from_slice::<Json>(&body) else {
        return bad("request body is not a JSON object");
    };
    const KNOWN: [&str; 7] = [
        "headers",
        "method",
        "url",
        "ipv4_address",
        "ipv6_address",
        "linked_id",
        "tags",
    ];
    if let Some(unknown) = request.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return bad(&format!(
            "request body contains an unknown field {unknown:?}"
        ));
    }
    let lines = match request.get("headers") {
        Some(Json::Array(lines)) if !lines.is_empty() => lines,
        _ => return bad("headers must be a non-empty array"),
    };
    let mut header_lines = Vec::with_capacity(lines.len());
    for line in lines {
        let Some(Json::String(name)) = line.get("name") else {
            return bad("each header needs a string name");
        };
        let Some(Json::String(value)) = line.get("value") else {
            return bad("each header needs a string value");
        };
        if line.as_object().is_some_and(|o| o.len() != 2) {
            return bad("request body contains an unknown field in headers");
        }
        header_lines.push((name.as_str(), value.as_str()));
    }
    let (Some(Json::String(_method)), Some(Json::String(url))) =
        (request.get("method"), request.get("url"))
    else {
        return bad("method and url are required strings");
    };
    let address = |key: &str| match request.get(key) {
        Some(Json::String(s)) => Some(s.parse::<IpAddr>().map_err(|_| key.to_owned())),
        Some(_) => Some(Err(key.to_owned())),
        None => None,
    };
    let (v4, v6) = (address("ipv4_address"), address("ipv6_address"));
    if v4.is_none() && v6.is_none() {
        return bad("at least one of ipv4_address or ipv6_address is required");
    }
    let v4 = match v4.transpose() {
        Ok(ip) => ip,
        Err(key) => return bad(&format!("{key} is not a valid IP address")),
    };
    let v6 = match v6.transpose() {
        Ok(ip) => ip,
        Err(key) => return bad(&format!("{key} is not a valid IP address")),
    };
    let mut answer = Map::new();
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    answer.insert("event_id".into(), json!(format!("{now}.edge{n:02}")));
    answer.insert("timestamp".into(), json!(now));
    answer.insert("source".into(), json!("edge"));
    for key in ["linked_id", "tags"] {
        if let Some(v) = request.get(key) {
            answer.insert(key.into(), v.clone());
        }
    }
    answer.insert("url".into(), json!(url));
    if let Some(bot) = bot_of(&header_lines) {
        answer.insert("bot_info".into(), bot);
    }
    let mut ip_info = Map::new();
    let mut proxy = false;
    for (key, ip) in [("v4", v4), ("v6", v6)] {
        if let Some(ip) = ip {
            ip_info.insert(key.into(), ip_details(ip));
            proxy |= in_any(ip, PROXIES);
        }
    }
    answer.insert("ip_info".into(), Json::Object(ip_info));
    answer.insert("proxy".into(), json!(proxy));
    answer.insert("proxy_confidence".into(), json!("high"));
    if proxy {
        answer.insert(
            "proxy_details".into(),
            json!({"proxy_type": "residential", "last_seen_at": 1716057600000_i64, "provider": "Sandbox Residential"}),
        );
    }
    answer.insert("vpn".into(), json!(false));
    answer.insert("vpn_confidence".into(), json!("medium"));
    answer.insert(
        "vpn_methods".into(),
        json!({"public_vpn": false, "relay": false}),
    );
    super::answer(StatusCode::OK, Json::Object(answer))
}

fn in_any<const N: usize>(ip: IpAddr, ranges: [&str; N]) -> bool {
    ranges
        .iter()
        .filter_map(|r| Cidr::parse(r).ok())
        .any(|c| c.contains(ip))
}

/// The bot a request's headers name, if any.
fn bot_of(lines: &[(&str, &str)]) -> Option<Json> {
    let get = |name: &str| {
        lines
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    if let Some(agent) = get("signature-agent") {
        let signed = get("signature").is_some() && get("signature-input").is_some();
        let host = agent
            .trim_matches('"')
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let (provider, url, name) = match host {
            "chatgpt.com" => ("OpenAI", "https://openai.com", "ChatGPT Agent"),
            "claude.ai" => ("Anthropic", "https://anthropic.com", "Claude"),
            _ => (host, "", host),
        };
        let mut bot = json!({
            "category": "ai_agent",
            "provider": provider,
            "name": name,
            "identity": if signed { "signed" } else { "spoofed" },
            "confidence": if signed { "high" } else { "medium" },
        });
        if !url.is_empty() {
            bot["provider_url"] = json!(url);
        }
        return Some(bot);
    }
    let ua = get("user-agent").unwrap_or_default();
    let known = [
        ("GPTBot", "ai_crawler", "OpenAI", "GPTBot"),
        ("ClaudeBot", "ai_crawler", "Anthropic", "ClaudeBot"),
        ("Googlebot", "search_engine_crawler", "Google", "Googlebot"),
        (
            "HeadlessChrome",
            "browser_automation",
            "Google",
            "Headless Chrome",
        ),
        ("curl/", "other", "curl", "curl"),
        ("python-requests", "other", "Python", "python-requests"),
    ];
    known
        .iter()
        .find(|(token, ..)| ua.contains(token))
        .map(|(_, category, provider, name)| {
            json!({"category": category, "provider": provider, "name": name,
                   "identity": "unknown", "confidence": "high"})
        })
}

/// What the sandbox knows of an address.
fn ip_details(ip: IpAddr) -> Json {
    let datacenter = DATACENTERS
        .iter()
        .find(|(range, ..)| Cidr::parse(range).is_ok_and(|c| c.contains(ip)));
    let (asn, asn_name, asn_network, asn_type) = match datacenter {
        Some((range, _, asn, name)) => (*asn, *name, *range, "hosting"),
        None => ("701", "Verizon Business", "173.56.0.0/16", "isp"),
    };
    let mut d = json!({
        "address": ip.to_string(),
        "geolocation": {
            "accuracy_radius": 20, "latitude": 40.71427, "longitude": -74.00597,
            "postal_code": "10001", "timezone": "America/New_York",
            "city_name": "New York City", "country_code": "US",
            "country_name": "United States", "continent_code": "NA",
            "continent_name": "North America",
            "subdivisions": [{"iso_code": "NY", "name": "New York"}]
        },
        "asn": asn, "asn_name": asn_name, "asn_network": asn_network, "asn_type": asn_type,
        "datacenter_result": datacenter.is_some(),
    });
    if let Some((_, name, ..)) = datacenter {
        d["datacenter_name"] = json!(name);
    }
    d
}
