//! Deterministic, realistic upstream data, written for the sandbox.
//!
//! Everything is derived from a hash of the id asked for, so the same id always gets
//! the same answer, across runs and machines.

use serde_json::{Value as Json, json};

/// 2026-01-01T00:00:00Z in Unix milliseconds: sandbox events happen after it.
const EPOCH_MS: i64 = 1_767_225_600_000;

/// A small deterministic random source seeded from text (SplitMix64).
pub struct Dice(u64);

impl Dice {
    /// Seeds from `seed`.
    pub fn new(seed: &str) -> Self {
        Self(seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }))
    }

    /// The next number.
    pub fn roll(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.roll() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A score in [0, 1] with two decimals.
    pub fn score(&mut self) -> f64 {
        self.below(101) as f64 / 100.0
    }

    /// `len` characters of `[A-Za-z0-9]`.
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    /// A UUID-shaped hex string.
    pub fn uuid(&mut self) -> String {
        let a = self.roll();
        let b = self.roll();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A visitor id for a seed: 20 characters, like fingerprint.com's.
pub fn visitor_id_for(seed: &str) -> String {
    Dice::new(&format!("visitor:{seed}")).token(20)
}

struct Place {
    city: &'static str,
    country_code: &'static str,
    country: &'static str,
    continent_code: &'static str,
    continent: &'static str,
    timezone: &'static str,
    lat: f64,
    lon: f64,
    postal: &'static str,
    sub_code: &'static str,
    sub_name: &'static str,
}

const PLACES: &[Place] = &[
    Place {
        city: "Lisbon",
        country_code: "PT",
        country: "Portugal",
        continent_code: "EU",
        continent: "Europe",
        timezone: "Europe/Lisbon",
        lat: 38.72,
        lon: -9.14,
        postal: "1000-001",
        sub_code: "11",
        sub_name: "Lisbon",
    },
    Place {
        city: "Toronto",
        country_code: "CA",
        country: "Canada",
        continent_code: "NA",
        continent: "North America",
        timezone: "America/Toronto",
        lat: 43.65,
        lon: -79.38,
        postal: "M5H",
        sub_code: "ON",
        sub_name: "Ontario",
    },
    Place {
        city: "Osaka",
        country_code: "JP",
        country: "Japan",
        continent_code: "AS",
        continent: "Asia",
        timezone: "Asia/Tokyo",
        lat: 34.69,
        lon: 135.5,
        postal: "530-0001",
        sub_code: "27",
        sub_name: "Osaka",
    },
    Place {
        city: "Nairobi",
        country_code: "KE",
        country: "Kenya",
        continent_code: "AF",
        continent: "Africa",
        timezone: "Africa/Nairobi",
        lat: -1.29,
        lon: 36.82,
        postal: "00100",
        sub_code: "30",
        sub_name: "Nairobi City",
    },
];

const BROWSERS: &[(&str, &str, &str)] = &[
    ("Chrome", "131", "131.0.6778"),
    ("Firefox", "133", "133.0"),
    ("Safari", "18", "18.1.1"),
    ("Edge", "131", "131.0.2903"),
];

const SYSTEMS: &[(&str, &str)] = &[
    ("Windows", "11"),
    ("Mac OS X", "14.6"),
    ("Linux", ""),
    ("Android", "14"),
];

/// A v4 event (`GET /v4/events/{id}` body) for `event_id`, of `visitor_id`.
pub fn event_v4(event_id: &str, visitor_id: &str, timestamp_ms: i64) -> Json {
    let mut d = Dice::new(event_id);
    let place = &PLACES[d.below(PLACES.len() as u64) as usize];
    let (browser, major, full) = BROWSERS[d.below(BROWSERS.len() as u64) as usize];
    let (os, os_version) = SYSTEMS[d.below(SYSTEMS.len() as u64) as usize];
    let octets = [
        100 + d.below(100),
        d.below(256),
        d.below(256),
        1 + d.below(254),
    ];
    let ip = format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
    let first_seen = timestamp_ms - (d.below(90) as i64) * 86_400_000;
    let bot = if d.chance(10) {
        "bad"
    } else if d.chance(5) {
        "good"
    } else {
        "not_detected"
    };
    let vpn = d.chance(15);
    let proxy = d.chance(10);
    let tampering = d.chance(8);
    let incognito = d.chance(20);
    let ua = format!("Mozilla/5.0 ({os} {os_version}) sandbox {browser}/{full}");
    let velocity = |d: &mut Dice| {
        let five = 1 + d.below(3);
        let hour = five + d.below(5);
        json!({"5_minutes": five, "1_hour": hour, "24_hours": hour + d.below(20)})
    };
    let mut event = json!({
        "event_id": event_id,
        "timestamp": timestamp_ms,
        "source": "device",
        "incremental_identification_status": "completed",
        "tags": {"sandbox": true, "seed": d.token(6)},
        "url": format!("https://shop.example/checkout?step={}", 1 + d.below(4)),
        "ip_address": ip,
        "user_agent": ua,
        "device": if os == "Android" { "Pixel 8" } else { "Other" },
        "os": os,
        "os_version": os_version,
        "browser_details": {
            "browser_name": browser,
            "browser_major_version": major,
            "browser_full_version": full,
            "os": os,
            "os_version": os_version,
            "device": if os == "Android" { "Pixel 8" } else { "Other" },
        },
        "identification": {
            "visitor_id": visitor_id,
            "confidence": {"score": 0.9 + d.below(10) as f64 / 100.0, "version": "1.1"},
            "visitor_found": first_seen < timestamp_ms,
            "first_seen_at": first_seen,
            "last_seen_at": timestamp_ms,
        },
        "proximity": {"id": d.token(11), "precision_radius": 65, "confidence": d.score()},
        "bot": bot,
        "ip_info": {"v4": {
            "address": ip,
            "geolocation": {
                "accuracy_radius": 5 + d.below(100),
                "latitude": place.lat,
                "longitude": place.lon,
                "postal_code": place.postal,
                "timezone": place.timezone,
                "city_name": place.city,
                "country_code": place.country_code,
                "country_name": place.country,
                "continent_code": place.continent_code,
                "continent_name": place.continent,
                "subdivisions": [{"iso_code": place.sub_code, "name": place.sub_name}],
            },
            "asn": (64_500 + d.below(10)).to_string(),
            "asn_name": "SANDBOX-NET",
            "asn_network": format!("{}.{}.0.0/16", octets[0], octets[1]),
            "asn_type": if proxy { "hosting" } else { "isp" },
            "datacenter_result": proxy,
            "datacenter_name": if proxy { "Sandbox Hosting" } else { "" },
        }},
        "ip_blocklist": {"email_spam": d.chance(3), "attack_source": d.chance(3)},
        "proxy": proxy,
        "proxy_confidence": "high",
        "vpn": vpn,
        "vpn_confidence": if vpn { "high" } else { "low" },
        "vpn_origin_timezone": place.timezone,
        "vpn_origin_country": "unknown",
        "vpn_methods": {
            "timezone_mismatch": vpn,
            "public_vpn": false,
            "auxiliary_mobile": false,
            "os_mismatch": false,
            "relay": false,
        },
        "incognito": incognito,
        "tampering": tampering,
        "tampering_details": {"anomaly_score": if tampering { 0.87 } else { 0.12 }, "anti_detect_browser": false},
        "tampering_confidence": if tampering { "high" } else { "low" },
        "tampering_ml_score": if tampering { 0.93 } else { 0.04 },
        "developer_tools": d.chance(5),
        "virtual_machine": d.chance(5),
        "privacy_settings": d.chance(10),
        "high_activity_device": d.chance(5),
        "suspect_score": (u64::from(vpn) * 5 + u64::from(proxy) * 5 + u64::from(tampering) * 10 + u64::from(bot == "bad") * 20),
        "velocity": {
            "distinct_ip": velocity(&mut d),
            "distinct_country": velocity(&mut d),
            "events": velocity(&mut d),
            "ip_events": velocity(&mut d),
            "distinct_linked_id": velocity(&mut d),
            "distinct_ip_by_linked_id": velocity(&mut d),
            "distinct_visitor_id_by_linked_id": velocity(&mut d),
        },
        "replayed": false,
        "sdk": {"platform": "js", "version": "3.12.4"},
    });
    if proxy {
        event["proxy_details"] = json!({"proxy_type": "data_center", "last_seen_at": timestamp_ms - timestamp_ms % 3_600_000});
    }
    if bot == "bad" {
        event["bot_type"] = json!("headless_chrome");
    }
    event
}

/// The timestamp of an event id: ids look like `<unix ms>.<suffix>`; others get one from a hash.
pub fn timestamp_of(event_id: &str) -> i64 {
    event_id
        .split_once('.')
        .and_then(|(ms, _)| ms.parse::<i64>().ok())
        .filter(|ms| (EPOCH_MS..EPOCH_MS + 400 * 86_400_000).contains(ms))
        .unwrap_or_else(|| EPOCH_MS + (Dice::new(event_id).below(300 * 86_400) as i64) * 1000)
}

/// The `n`th most recent event of a visitor (`n` = 0 is the newest).
pub fn visit_id(visitor_id: &str, n: u64) -> String {
    let newest = EPOCH_MS + 300 * 86_400_000 - (Dice::new(visitor_id).below(86_400) as i64) * 1000;
    let ms = newest
        - (n as i64) * 3_600_000
        - (Dice::new(&format!("{visitor_id}{n}")).below(3_000_000) as i64);
    format!("{ms}.{}", Dice::new(&format!("{visitor_id}#{n}")).token(6))
}

/// Most visits a `many<N>` visitor can have.
pub const MAX_VISITS: u64 = 100_000;

/// How many events a visitor has in the sandbox: `N` (at most [`MAX_VISITS`]) for a
/// visitor id starting with `many<N>` (`many1500`, `many250-abc`), otherwise between 3
/// and 240.
pub fn visit_count(visitor_id: &str) -> u64 {
    if let Some(rest) = visitor_id.strip_prefix("many") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>() {
            return n.min(MAX_VISITS);
        }
    }
    3 + Dice::new(&format!("count:{visitor_id}")).below(238)
}

/// The same event in the v3 shape (`{"products": {...}}`).
pub fn event_v3(v4: &Json) -> Json {
    let s = |k: &str| v4.get(k).cloned().unwrap_or(Json::Null);
    let ident = &v4["identification"];
    let bd = &v4["browser_details"];
    let ms = v4["timestamp"].as_i64().unwrap_or_default();
    let time = rfc3339_seconds(ms);
    let seen = |k: &str| ident.get(k).and_then(Json::as_i64).map(rfc3339_millis);
    let result = |k: &str| json!({"data": {"result": s(k)}});
    let ipv4 = &v4["ip_info"]["v4"];
    let geo = &ipv4["geolocation"];
    let velocity = |k: &str| {
        let c = &v4["velocity"][k];
        json!({"intervals": {"5m": c["5_minutes"], "1h": c["1_hour"], "24h": c["24_hours"]}})
    };
    let mut products = json!({
        "identification": {"data": {
            "visitorId": ident["visitor_id"],
            "requestId": s("event_id"),
            "incognito": s("incognito"),
            "tag": s("tags"),
            "time": time,
            "timestamp": ms,
            "url": s("url"),
            "ip": s("ip_address"),
            "browserDetails": {
                "browserName": bd["browser_name"],
                "browserMajorVersion": bd["browser_major_version"],
                "browserFullVersion": bd["browser_full_version"],
                "os": bd["os"],
                "osVersion": bd["os_version"],
                "device": bd["device"],
                "userAgent": s("user_agent"),
            },
            "confidence": {"score": ident["confidence"]["score"], "revision": ident["confidence"]["version"]},
            "visitorFound": ident["visitor_found"],
            "firstSeenAt": {"global": seen("first_seen_at"), "subscription": seen("first_seen_at")},
            "lastSeenAt": {"global": seen("last_seen_at"), "subscription": seen("last_seen_at")},
            "replayed": s("replayed"),
            "sdk": s("sdk"),
        }},
        "botd": {"data": {"bot": {"result": if v4["bot"] == "not_detected" { json!("notDetected") } else { s("bot") }}, "url": s("url"), "ip": s("ip_address"), "time": time, "userAgent": s("user_agent"), "requestId": s("event_id")}},
        "ipInfo": {"data": {"v4": {
            "address": ipv4["address"],
            "geolocation": {
                "accuracyRadius": geo["accuracy_radius"],
                "latitude": geo["latitude"],
                "longitude": geo["longitude"],
                "postalCode": geo["postal_code"],
                "timezone": geo["timezone"],
                "city": {"name": geo["city_name"]},
                "country": {"code": geo["country_code"], "name": geo["country_name"]},
                "continent": {"code": geo["continent_code"], "name": geo["continent_name"]},
                "subdivisions": [{"isoCode": geo["subdivisions"][0]["iso_code"], "name": geo["subdivisions"][0]["name"]}],
            },
            "asn": {"asn": ipv4["asn"], "name": ipv4["asn_name"], "network": ipv4["asn_network"], "type": ipv4["asn_type"]},
            "datacenter": {"result": ipv4["datacenter_result"], "name": ipv4["datacenter_name"]},
        }}},
        "ipBlocklist": {"data": {
            "result": v4["ip_blocklist"]["email_spam"].as_bool().unwrap_or_default() || v4["ip_blocklist"]["attack_source"].as_bool().unwrap_or_default(),
            "details": {"emailSpam": v4["ip_blocklist"]["email_spam"], "attackSource": v4["ip_blocklist"]["attack_source"]},
        }},
        "vpn": {"data": {
            "result": s("vpn"),
            "confidence": s("vpn_confidence"),
            "originTimezone": s("vpn_origin_timezone"),
            "originCountry": s("vpn_origin_country"),
            "methods": {
                "timezoneMismatch": v4["vpn_methods"]["timezone_mismatch"],
                "publicVPN": v4["vpn_methods"]["public_vpn"],
                "auxiliaryMobile": v4["vpn_methods"]["auxiliary_mobile"],
                "osMismatch": v4["vpn_methods"]["os_mismatch"],
                "relay": v4["vpn_methods"]["relay"],
            },
        }},
        "proxy": {"data": {"result": s("proxy"), "confidence": s("proxy_confidence")}},
        "incognito": result("incognito"),
        "tampering": {"data": {
            "result": s("tampering"),
            "confidence": s("tampering_confidence"),
            "mlScore": s("tampering_ml_score"),
            "anomalyScore": v4["tampering_details"]["anomaly_score"],
            "antiDetectBrowser": v4["tampering_details"]["anti_detect_browser"],
        }},
        "developerTools": result("developer_tools"),
        "virtualMachine": result("virtual_machine"),
        "privacySettings": result("privacy_settings"),
        "highActivity": result("high_activity_device"),
        "suspectScore": result("suspect_score"),
        "velocity": {"data": {
            "distinctIp": velocity("distinct_ip"),
            "distinctCountry": velocity("distinct_country"),
            "events": velocity("events"),
            "ipEvents": velocity("ip_events"),
            "distinctLinkedId": velocity("distinct_linked_id"),
            "distinctIpByLinkedId": velocity("distinct_ip_by_linked_id"),
            "distinctVisitorIdByLinkedId": velocity("distinct_visitor_id_by_linked_id"),
        }},
        "proximity": {"data": {
            "id": v4["proximity"]["id"],
            "precisionRadius": v4["proximity"]["precision_radius"],
            "confidence": v4["proximity"]["confidence"],
        }},
    });
    if let Some(details) = v4.get("proxy_details") {
        products["proxy"]["data"]["details"] = json!({
            "proxyType": details["proxy_type"],
            "lastSeenAt": details["last_seen_at"].as_i64().map(rfc3339_millis),
        });
    }
    if let Some(t) = v4.get("bot_type") {
        products["botd"]["data"]["bot"]["type"] = t.clone();
    }
    if let Some(l) = v4.get("linked_id") {
        products["identification"]["data"]["linkedId"] = l.clone();
        products["botd"]["data"]["linkedId"] = l.clone();
    }
    if let Some(sus) = v4.get("suspect") {
        products["identification"]["data"]["suspect"] = sus.clone();
    }
    json!({"products": products})
}

/// A v3 visit (`GET /visitors/{id}` `visits[]`): the identification part of the v3 event.
pub fn visit_v3(v4: &Json) -> Json {
    let mut v3 = event_v3(v4);
    let mut ident = v3["products"]["identification"]["data"].take();
    if let Some(map) = ident.as_object_mut() {
        // A visit has neither the visitor (the list names it) nor the event-only members.
        for member in ["visitorId", "sdk", "replayed", "suspect"] {
            map.remove(member);
        }
    }
    ident
}

fn rfc3339_seconds(ms: i64) -> String {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: 0,
    }
    .to_string()
}

fn rfc3339_millis(ms: i64) -> String {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
    .to_string()
}

/// A Stytch lookup answer for a telemetry id.
pub fn stytch_lookup(
    telemetry_id: &str,
    metadata: Option<&Json>,
    now: &str,
    expires: &str,
) -> Json {
    let mut d = Dice::new(telemetry_id);
    let bot = telemetry_id.starts_with("bot");
    let (action, reasons, authentic) = if bot {
        ("BLOCK", json!(["HEADLESS_BROWSER_AUTOMATION"]), false)
    } else if d.chance(15) {
        ("CHALLENGE", json!(["VIRTUAL_MACHINE"]), true)
    } else {
        ("ALLOW", json!([]), true)
    };
    let place = &PLACES[d.below(PLACES.len() as u64) as usize];
    let mut answer = json!({
        "request_id": format!("request-id-sandbox-{}", d.uuid()),
        "status_code": 200,
        "telemetry_id": telemetry_id,
        "fingerprints": {
            "network_fingerprint": format!("network-fingerprint-{}", d.uuid()),
            "hardware_fingerprint": format!("hardware-fingerprint-{}", d.uuid()),
            "browser_fingerprint": format!("browser-fingerprint-{}", d.uuid()),
            "visitor_fingerprint": format!("visitor-fingerprint-{}", d.uuid()),
            "visitor_id": format!("visitor-{}", d.uuid()),
            "browser_id": format!("browser-id-{}", d.uuid()),
        },
        "verdict": {
            "action": action,
            "reasons": reasons,
            "detected_device_type": "UNKNOWN",
            "is_authentic_device": authentic,
            "verdict_reason_overrides": [],
        },
        "external_metadata": metadata.cloned().unwrap_or_else(|| json!({})),
        "created_at": now,
        "expires_at": expires,
        "properties": {
            "network_properties": {
                "ip_address": format!("198.51.100.{}", 1 + d.below(254)),
                "asn": {"asn": (64_500 + d.below(10)).to_string(), "name": "SANDBOX-NET", "network": "198.51.100.0/24"},
                "ip_geolocation": {"city": place.city, "region": place.sub_name, "country": place.country_code},
                "is_proxy": false,
                "is_vpn": d.chance(10),
            },
            "browser_properties": {"user_agent": "Mozilla/5.0 sandbox"},
        },
    });
    if bot {
        answer["verdict"]["detected_device_type"] = json!("HEADLESS_CHROME");
    }
    answer
}

/// The sandbox project's rules, in list order.
pub fn stytch_rules() -> Vec<Json> {
    vec![
        json!({"rule_type": "VISITOR_ID", "action": "BLOCK", "visitor_id": "visitor-sandbox-blocked", "description": "chargeback ring", "created_at": "2026-01-10T09:00:00Z"}),
        json!({"rule_type": "CIDR_BLOCK", "action": "CHALLENGE", "cidr_block": "203.0.113.0/24", "created_at": "2026-01-11T10:30:00Z", "expires_at": "2026-12-31T00:00:00Z"}),
        json!({"rule_type": "COUNTRY_CODE", "action": "BLOCK", "country_code": "AQ", "description": "no customers in Antarctica", "created_at": "2026-01-12T08:15:00Z"}),
        json!({"rule_type": "ASN", "action": "CHALLENGE", "asn": "64999", "created_at": "2026-01-13T12:00:00Z", "last_updated_at": "2026-02-01T12:00:00Z"}),
        json!({"rule_type": "BROWSER_FINGERPRINT", "action": "ALLOW", "browser_fingerprint": "browser-fingerprint-sandbox-qa", "description": "QA lab", "created_at": "2026-01-14T16:45:00Z"}),
    ]
}

/// The sandbox project's verdict reasons.
pub fn stytch_verdict_reasons() -> Vec<Json> {
    vec![
        json!({"verdict_reason": "HEADLESS_BROWSER_AUTOMATION", "default_action": "BLOCK"}),
        json!({"verdict_reason": "VIRTUAL_MACHINE", "default_action": "CHALLENGE", "override_action": "ALLOW", "override_created_at": "2026-01-20T11:00:00Z", "override_description": "VDI fleet"}),
        json!({"verdict_reason": "KNOWN_DATACENTER_IP", "default_action": "CHALLENGE"}),
        json!({"verdict_reason": "SUSPECTED_BOT", "default_action": "CHALLENGE"}),
    ]
}
