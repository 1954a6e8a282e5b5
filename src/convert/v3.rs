//! fingerprint.com Server API v3 JSON to the typed `Event`.
//!
//! v3 nests each signal as `products.<signal>.{data|error}` in camel case; v4 is flat and
//! snake case. Both land in the same `Event`, so callers see one shape whichever
//! generation is configured. A v3 member with no v4 counterpart stays in `unmapped`
//! at its v3 path; a member that only repeats another (such as `time` beside
//! `timestamp`) is dropped when, and only when, it agrees with it.

use serde_json::{Map, Value as Json};

use super::event::{set_bot, velocity};
use super::json::{Obj, parse_rfc3339, timestamp_to_millis, to_struct};
use crate::proto::v1::{
    BrowserDetails, Confidence, Event, Geolocation, Identification, Integration, IpBlocklist,
    IpDetails, IpInfo, Label, Proximity, ProxyDetails, Sdk, SignalError, Subdivision,
    TamperingDetails, VelocityCounts, VpnMethods,
};

/// Converts a v3 event (`{"products": {...}}`).
pub fn from_event(map: Map<String, Json>) -> Event {
    let mut o = Obj::new(map);
    let mut e = Event::default();
    o.obj("products", |p| products(p, &mut e));
    e.unmapped = o.finish_struct();
    e
}

/// Converts a v3 webhook body: the event flattened, signals at the top level.
///
/// It is read as the v3 event it flattens (`bot` is `products.botd.data.bot`, each other
/// signal `products.<name>.data`, the rest `products.identification.data`), so members
/// left over appear in `unmapped` at that v3 event path.
pub fn from_webhook(mut map: Map<String, Json>) -> Event {
    let mut products = Map::new();
    if let Some(bot) = map.remove("bot") {
        products.insert(
            "botd".to_owned(),
            json_data(Json::Object(Map::from_iter([("bot".to_owned(), bot)]))),
        );
    }
    for (name, _) in PRODUCTS {
        if matches!(*name, "identification" | "botd") {
            continue;
        }
        if let Some(value) = map.remove(*name) {
            products.insert((*name).to_owned(), json_data(value));
        }
    }
    products.insert("identification".to_owned(), json_data(Json::Object(map)));
    from_event(Map::from_iter([(
        "products".to_owned(),
        Json::Object(products),
    )]))
}

fn json_data(value: Json) -> Json {
    Json::Object(Map::from_iter([("data".to_owned(), value)]))
}

/// Converts one v3 visit (`GET /visitors/{id}` `visits[]`) of the given visitor.
pub fn from_visit(map: Map<String, Json>, visitor_id: &str) -> Event {
    let mut o = Obj::new(map);
    let mut e = Event::default();
    identification_data(&mut o, &mut e);
    let ident = e.identification.get_or_insert_with(Identification::default);
    if ident.visitor_id.is_empty() {
        ident.visitor_id = visitor_id.to_owned();
    }
    e.unmapped = o.finish_struct();
    e
}

fn products(p: &mut Obj, e: &mut Event) {
    // Identification first: other products repeat some of its members.
    product(p, e, "identification", identification_data);
    product(p, e, "botd", |d, e| {
        d.obj("bot", |b| {
            if let Some(raw) = b.str("result") {
                set_bot(e, raw);
            }
            e.bot_type = b.str("type");
        });
        d.drop_if_same("url", e.url.as_deref());
        d.drop_if_same("ip", e.ip_address.as_deref());
        d.drop_if_same("userAgent", e.user_agent.as_deref());
        d.drop_if_same(
            "requestId",
            Some(e.event_id.as_str()).filter(|s| !s.is_empty()),
        );
        d.drop_if_same("linkedId", e.linked_id.as_deref());
        let time = e.timestamp.map(second_string);
        d.drop_if_same("time", time.as_deref());
    });
    product(p, e, "rootApps", |d, e| e.root_apps = d.bool("result"));
    product(p, e, "emulator", |d, e| e.emulator = d.bool("result"));
    product(p, e, "ipInfo", |d, e| {
        e.ip_info = Some(IpInfo {
            v4: d.obj("v4", ip_details),
            v6: d.obj("v6", ip_details),
        });
    });
    product(p, e, "ipBlocklist", |d, e| {
        let list = e.ip_blocklist.get_or_insert_with(IpBlocklist::default);
        d.obj("details", |x| {
            list.email_spam = x.bool("emailSpam");
            list.attack_source = x.bool("attackSource");
        });
        // `result` is "any list matched": redundant when it agrees with the details.
        if let Some(result) = d.take("result") {
            let any = list.email_spam.unwrap_or(false) || list.attack_source.unwrap_or(false);
            if result.as_bool() != Some(any) {
                d.put_back("result", result);
            }
        }
    });
    product(p, e, "tor", |d, e| {
        e.ip_blocklist
            .get_or_insert_with(IpBlocklist::default)
            .tor_node = d.bool("result");
    });
    product(p, e, "vpn", |d, e| {
        e.vpn = d.bool("result");
        e.vpn_confidence = d.str("confidence");
        e.vpn_ml_score = d.f64("mlScore");
        e.vpn_origin_timezone = d.str("originTimezone");
        e.vpn_origin_country = d.str("originCountry");
        e.vpn_methods = d.obj("methods", |m| VpnMethods {
            timezone_mismatch: m.bool("timezoneMismatch"),
            public_vpn: m.bool("publicVPN"),
            auxiliary_mobile: m.bool("auxiliaryMobile"),
            os_mismatch: m.bool("osMismatch"),
            relay: m.bool("relay"),
            ml_prediction: m.bool("mlPrediction"),
        });
    });
    product(p, e, "proxy", |d, e| {
        e.proxy = d.bool("result");
        e.proxy_confidence = d.str("confidence");
        e.proxy_ml_score = d.f64("mlScore");
        e.proxy_details = d.obj("details", |x| ProxyDetails {
            proxy_type: x.str("proxyType"),
            last_seen_at: x.rfc3339("lastSeenAt"),
            provider: x.str("provider"),
        });
    });
    product(p, e, "incognito", |d, e| {
        let result = d.bool("result");
        // identification.data.incognito said the same thing already; keep a disagreement.
        if let (Some(r), Some(prev)) = (result, e.incognito)
            && r != prev
        {
            d.put_back("result", Json::Bool(r));
            return;
        }
        e.incognito = result.or(e.incognito);
    });
    product(p, e, "tampering", |d, e| {
        e.tampering = d.bool("result");
        e.tampering_confidence = d.str("confidence");
        e.tampering_ml_score = d.f64("mlScore");
        let anomaly_score = d.f64("anomalyScore");
        let anti_detect_browser = d.bool("antiDetectBrowser");
        if anomaly_score.is_some() || anti_detect_browser.is_some() {
            e.tampering_details = Some(TamperingDetails {
                anomaly_score,
                anti_detect_browser,
            });
        }
    });
    product(p, e, "clonedApp", |d, e| e.cloned_app = d.bool("result"));
    product(p, e, "factoryReset", |d, e| {
        let time = d.rfc3339("time");
        let stamp = d.take("timestamp");
        let zero = time.is_some_and(|t| t.seconds == 0 && t.nanos == 0);
        if !zero {
            e.factory_reset_time = time;
        }
        // `timestamp` restates `time` (in seconds or milliseconds): drop it when it agrees.
        if let Some(stamp) = stamp {
            let n = stamp.as_i64();
            let agrees = match time {
                Some(t) => n == Some(t.seconds) || n == Some(timestamp_to_millis(&t)),
                None => false,
            };
            if !agrees {
                d.put_back("timestamp", stamp);
            }
        }
    });
    product(p, e, "jailbroken", |d, e| e.jailbroken = d.bool("result"));
    product(p, e, "frida", |d, e| e.frida = d.bool("result"));
    product(p, e, "privacySettings", |d, e| {
        e.privacy_settings = d.bool("result");
    });
    product(p, e, "virtualMachine", |d, e| {
        e.virtual_machine = d.bool("result");
        e.virtual_machine_ml_score = d.f64("mlScore");
    });
    product(p, e, "rawDeviceAttributes", |d, e| {
        e.raw_device_attributes = raw_device_attributes(d);
    });
    product(p, e, "highActivity", |d, e| {
        e.high_activity_device = d.bool("result");
    });
    product(p, e, "locationSpoofing", |d, e| {
        e.location_spoofing = d.bool("result");
    });
    product(p, e, "suspectScore", |d, e| {
        e.suspect_score = d.i64("result")
    });
    product(p, e, "velocity", |d, e| {
        e.velocity = Some(velocity(d, counts))
    });
    product(p, e, "developerTools", |d, e| {
        e.developer_tools = d.bool("result");
    });
    product(p, e, "mitmAttack", |d, e| e.mitm_attack = d.bool("result"));
    product(p, e, "rareDevice", |d, e| {
        e.rare_device = d.bool("result");
        e.rare_device_percentile_bucket = d.str("percentileBucket");
    });
    product(p, e, "proximity", |d, e| {
        e.proximity = Some(Proximity {
            id: d.str("id"),
            precision_radius: d.i64("precisionRadius"),
            confidence: d.f64("confidence"),
        });
    });
    labels(p, e);
}

/// v3 product names and the v4 member each one became (the key of `signal_errors`).
pub const PRODUCTS: &[(&str, &str)] = &[
    ("identification", "identification"),
    ("botd", "bot"),
    ("rootApps", "root_apps"),
    ("emulator", "emulator"),
    ("ipInfo", "ip_info"),
    ("ipBlocklist", "ip_blocklist"),
    ("tor", "tor_node"),
    ("vpn", "vpn"),
    ("proxy", "proxy"),
    ("incognito", "incognito"),
    ("tampering", "tampering"),
    ("clonedApp", "cloned_app"),
    ("factoryReset", "factory_reset_timestamp"),
    ("jailbroken", "jailbroken"),
    ("frida", "frida"),
    ("privacySettings", "privacy_settings"),
    ("virtualMachine", "virtual_machine"),
    ("rawDeviceAttributes", "raw_device_attributes"),
    ("highActivity", "high_activity_device"),
    ("locationSpoofing", "location_spoofing"),
    ("suspectScore", "suspect_score"),
    ("velocity", "velocity"),
    ("developerTools", "developer_tools"),
    ("mitmAttack", "mitm_attack"),
    ("rareDevice", "rare_device"),
    ("proximity", "proximity"),
    ("labels", "labels"),
];

/// The v4 name of a v3 product.
pub fn v4_name(v3_name: &str) -> &str {
    PRODUCTS
        .iter()
        .find(|(v3, _)| *v3 == v3_name)
        .map_or(v3_name, |(_, v4)| v4)
}

/// One `products.<name>` entry: `data` goes through `f`, `error` into `signal_errors`.
fn product(p: &mut Obj, e: &mut Event, v3_name: &str, f: impl FnOnce(&mut Obj, &mut Event)) {
    let v4_name = v4_name(v3_name);
    p.obj(v3_name, |entry| {
        entry.obj("data", |d| f(d, e));
        signal_error(entry, e, v4_name);
    });
}

fn signal_error(entry: &mut Obj, e: &mut Event, v4_name: &str) {
    entry.obj("error", |err| {
        let code = err.str("code").unwrap_or_default();
        let message = err.str("message").unwrap_or_default();
        e.signal_errors
            .insert(v4_name.to_owned(), SignalError { code, message });
    });
}

/// `labels.data` is an array, not an object.
fn labels(p: &mut Obj, e: &mut Event) {
    p.obj("labels", |entry| {
        e.labels = entry.objs("data", |l| Label {
            label: l.str("label"),
            prediction: l.bool("prediction"),
            ml_score: l.f64("mlScore"),
        });
        signal_error(entry, e, v4_name("labels"));
    });
}

/// The workspace's time of a v3 `firstSeenAt`/`lastSeenAt`.
fn seen_at(s: &mut Obj) -> Option<prost_types::Timestamp> {
    let raw = s.str("subscription")?;
    match parse_rfc3339(&raw) {
        Some(ts) => {
            s.drop_if_same("global", Some(&raw));
            Some(ts)
        }
        None => {
            s.put_back("subscription", Json::String(raw));
            None
        }
    }
}

/// `identification.data`, or a visit of `GET /visitors`: the same members.
fn identification_data(d: &mut Obj, e: &mut Event) {
    let mut ident = Identification {
        visitor_id: d.str("visitorId").unwrap_or_default(),
        visitor_found: d.bool("visitorFound"),
        confidence: d.obj("confidence", |c| Confidence {
            score: c.f64("score"),
            version: c.str("revision"),
            comment: c.str("comment"),
        }),
        ..Identification::default()
    };
    // v3 has global and per-workspace first/last seen; v4 reports the workspace's. The
    // global time is dropped only when it is the workspace's too (it adds nothing then).
    d.obj("firstSeenAt", |s| ident.first_seen_at = seen_at(s));
    d.obj("lastSeenAt", |s| ident.last_seen_at = seen_at(s));
    e.identification = Some(ident);
    e.event_id = d.str("requestId").unwrap_or_default();
    e.incognito = d.bool("incognito");
    e.linked_id = d.str("linkedId");
    e.suspect = d.bool("suspect");
    e.tags = d.structure("tag");
    e.timestamp = d.millis("timestamp");
    let time = e.timestamp.map(second_string);
    d.drop_if_same("time", time.as_deref());
    e.url = d.str("url");
    e.ip_address = d.str("ip");
    e.client_referrer = d.str("clientReferrer");
    e.replayed = d.bool("replayed");
    e.environment_id = d.str("environmentId");
    e.sdk = d.obj("sdk", |s| Sdk {
        platform: s.str("platform"),
        version: s.str("version"),
        integrations: s.objs("integrations", integration),
    });
    d.obj("browserDetails", |b| {
        let details = BrowserDetails {
            browser_name: b.str("browserName"),
            browser_major_version: b.str("browserMajorVersion"),
            browser_full_version: b.str("browserFullVersion"),
            os: b.str("os"),
            os_version: b.str("osVersion"),
            device: b.str("device"),
        };
        // v4 repeats these at the top level of the event.
        e.os = details.os.clone();
        e.os_version = details.os_version.clone();
        e.device = details.device.clone();
        e.user_agent = b.str("userAgent");
        e.browser_details = Some(details);
    });
    // Webhooks carry the user agent at the top level.
    if e.user_agent.is_none() {
        e.user_agent = d.str("userAgent");
    }
}

fn integration(i: &mut Obj) -> Integration {
    Integration {
        name: i.str("name"),
        version: i.str("version"),
        subintegration: i.obj("subintegration", integration).map(Box::new),
    }
}

fn ip_details(d: &mut Obj) -> IpDetails {
    let mut out = IpDetails {
        address: d.str("address"),
        geolocation: d.obj("geolocation", geolocation),
        ..IpDetails::default()
    };
    d.obj("asn", |a| {
        out.asn = a.str_or_number("asn");
        out.asn_name = a.str("name");
        out.asn_network = a.str("network");
        out.asn_type = a.str("type");
    });
    d.obj("datacenter", |c| {
        out.datacenter_result = c.bool("result");
        out.datacenter_name = c.str("name");
    });
    out
}

fn geolocation(g: &mut Obj) -> Geolocation {
    let mut geo = Geolocation {
        accuracy_radius: g.i64("accuracyRadius"),
        latitude: g.f64("latitude"),
        longitude: g.f64("longitude"),
        postal_code: g.str("postalCode"),
        timezone: g.str("timezone"),
        subdivisions: g.objs("subdivisions", |s| Subdivision {
            iso_code: s.str("isoCode"),
            name: s.str("name"),
        }),
        ..Geolocation::default()
    };
    g.obj("city", |c| geo.city_name = c.str("name"));
    g.obj("country", |c| {
        geo.country_code = c.str("code");
        geo.country_name = c.str("name");
    });
    g.obj("continent", |c| {
        geo.continent_code = c.str("code");
        geo.continent_name = c.str("name");
    });
    geo
}

fn counts(c: &mut Obj) -> VelocityCounts {
    c.obj("intervals", |i| VelocityCounts {
        five_minutes: i.i64("5m"),
        one_hour: i.i64("1h"),
        twenty_four_hours: i.i64("24h"),
    })
    .unwrap_or_default()
}

/// v3 wraps each attribute as `{"value": ...}` or `{"error": ...}` under a camel-case
/// name; v4 has the bare value under a snake-case name. Values are unwrapped and renamed;
/// errored or odd attributes stay in `unmapped`.
fn raw_device_attributes(d: &mut Obj) -> Option<prost_types::Struct> {
    let all = std::mem::take(d).finish();
    let mut values = Map::new();
    for (name, attr) in all {
        match attr {
            Json::Object(mut a) if a.len() == 1 && a.contains_key("value") => {
                let value = a.remove("value").unwrap_or(Json::Null);
                values.insert(snake_case(&name), value);
            }
            other => d.put_back(&name, other),
        }
    }
    (!values.is_empty()).then(|| to_struct(values))
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.char_indices() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// RFC 3339 at whole seconds, the way v3 writes `time`.
fn second_string(ts: prost_types::Timestamp) -> String {
    prost_types::Timestamp {
        seconds: ts.seconds,
        nanos: 0,
    }
    .to_string()
}

/// Parses a v3 `time` member; exposed for the sandbox's round trips.
pub fn parse_time(s: &str) -> Option<prost_types::Timestamp> {
    parse_rfc3339(s)
}
