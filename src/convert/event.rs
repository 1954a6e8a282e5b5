//! v4 event JSON (and v3 event JSON) to the typed `Event`.

use serde_json::{Map, Value as Json};

use super::json::Obj;
use crate::proto::v1::{
    BotInfo, BotResult, BrowserDetails, Confidence, Event, Geolocation, Identification,
    Integration, IpBlocklist, IpDetails, IpInfo, Label, Proximity, ProxyDetails, Sdk, Subdivision,
    TamperingDetails, TriggeringRule, Velocity, VelocityCounts, VpnMethods,
};

/// Converts one v4 event object. Never fails: what is not modelled lands in `unmapped`.
pub fn from_v4(map: Map<String, Json>) -> Event {
    let mut o = Obj::new(map);
    let mut e = Event {
        event_id: o.str("event_id").unwrap_or_default(),
        timestamp: o.millis("timestamp"),
        source: o.str("source"),
        incremental_identification_status: o.str("incremental_identification_status"),
        linked_id: o.str("linked_id"),
        environment_id: o.str("environment_id"),
        suspect: o.bool("suspect"),
        sdk: o.obj("sdk", sdk),
        replayed: o.bool("replayed"),
        identification: o.obj("identification", identification_v4),
        supplementary_id_high_recall: o.obj("supplementary_id_high_recall", identification_v4),
        tags: o.structure("tags"),
        url: o.str("url"),
        bundle_id: o.str("bundle_id"),
        package_name: o.str("package_name"),
        ip_address: o.str("ip_address"),
        user_agent: o.str("user_agent"),
        device: o.str("device"),
        os: o.str("os"),
        os_version: o.str("os_version"),
        client_referrer: o.str("client_referrer"),
        browser_details: o.obj("browser_details", |b| BrowserDetails {
            browser_name: b.str("browser_name"),
            browser_major_version: b.str("browser_major_version"),
            browser_full_version: b.str("browser_full_version"),
            os: b.str("os"),
            os_version: b.str("os_version"),
            device: b.str("device"),
        }),
        proximity: o.obj("proximity", |p| Proximity {
            id: p.str("id"),
            precision_radius: p.i64("precision_radius"),
            confidence: p.f64("confidence"),
        }),
        active_call: o.bool("active_call"),
        bot_type: o.str("bot_type"),
        bot_info: o.obj("bot_info", bot_info),
        cloned_app: o.bool("cloned_app"),
        developer_tools: o.bool("developer_tools"),
        emulator: o.bool("emulator"),
        factory_reset_time: o.millis_nonzero("factory_reset_timestamp"),
        frida: o.bool("frida"),
        ip_blocklist: o.obj("ip_blocklist", |b| IpBlocklist {
            email_spam: b.bool("email_spam"),
            attack_source: b.bool("attack_source"),
            tor_node: b.bool("tor_node"),
        }),
        ip_info: o.obj("ip_info", ip_info),
        proxy: o.bool("proxy"),
        proxy_confidence: o.str("proxy_confidence"),
        proxy_details: o.obj("proxy_details", proxy_details),
        proxy_ml_score: o.f64("proxy_ml_score"),
        incognito: o.bool("incognito"),
        jailbroken: o.bool("jailbroken"),
        location_spoofing: o.bool("location_spoofing"),
        mitm_attack: o.bool("mitm_attack"),
        privacy_settings: o.bool("privacy_settings"),
        root_apps: o.bool("root_apps"),
        rule_action: o.structure("rule_action"),
        simulator: o.bool("simulator"),
        suspect_score: o.i64("suspect_score"),
        tampering: o.bool("tampering"),
        tampering_confidence: o.str("tampering_confidence"),
        tampering_ml_score: o.f64("tampering_ml_score"),
        tampering_details: o.obj("tampering_details", |t| TamperingDetails {
            anomaly_score: t.f64("anomaly_score"),
            anti_detect_browser: t.bool("anti_detect_browser"),
        }),
        velocity: o.obj("velocity", |v| velocity(v, counts_v4)),
        virtual_machine: o.bool("virtual_machine"),
        virtual_machine_ml_score: o.f64("virtual_machine_ml_score"),
        vpn: o.bool("vpn"),
        vpn_confidence: o.str("vpn_confidence"),
        vpn_ml_score: o.f64("vpn_ml_score"),
        vpn_origin_timezone: o.str("vpn_origin_timezone"),
        vpn_origin_country: o.str("vpn_origin_country"),
        vpn_methods: o.obj("vpn_methods", vpn_methods),
        high_activity_device: o.bool("high_activity_device"),
        rare_device: o.bool("rare_device"),
        rare_device_percentile_bucket: o.str("rare_device_percentile_bucket"),
        raw_device_attributes: o.structure("raw_device_attributes"),
        triggered_by: o.objs("triggered_by", |t| TriggeringRule {
            id: t.str("id"),
            name: t.str("name"),
            description: t.str("description"),
        }),
        labels: o.objs("labels", |l| Label {
            label: l.str("label"),
            prediction: l.bool("prediction"),
            ml_score: l.f64("ml_score"),
        }),
        ..Event::default()
    };
    if let Some(raw) = o.str("bot") {
        set_bot(&mut e, raw);
    }
    e.unmapped = o.finish_struct();
    e
}

/// Sets the bot result from the upstream's word for it (v4 or v3 spelling).
///
/// Known v3 words are spelled the v4 way in `bot_raw`, so both generations answer
/// alike; unknown words pass through as sent.
pub fn set_bot(e: &mut Event, raw: String) {
    let (bot, raw) = bot_of(raw);
    e.bot = bot as i32;
    e.bot_raw = raw;
}

/// `bot` as the enum and the text kept beside it (`notDetected`, v3's spelling, as v4's).
pub fn bot_of(raw: String) -> (BotResult, String) {
    match raw.as_str() {
        "not_detected" | "notDetected" => (BotResult::NotDetected, "not_detected".to_owned()),
        "good" => (BotResult::Good, raw),
        "bad" => (BotResult::Bad, raw),
        _ => (BotResult::Unspecified, raw),
    }
}

fn sdk(s: &mut Obj) -> Sdk {
    Sdk {
        platform: s.str("platform"),
        version: s.str("version"),
        integrations: s.objs("integrations", integration),
    }
}

fn integration(i: &mut Obj) -> Integration {
    Integration {
        name: i.str("name"),
        version: i.str("version"),
        subintegration: i.obj("subintegration", integration).map(Box::new),
    }
}

fn identification_v4(i: &mut Obj) -> Identification {
    Identification {
        visitor_id: i.str("visitor_id").unwrap_or_default(),
        visitor_found: i.bool("visitor_found"),
        confidence: i.obj("confidence", |c| Confidence {
            score: c.f64("score"),
            version: c.str("version"),
            comment: c.str("comment"),
        }),
        first_seen_at: i.millis("first_seen_at"),
        last_seen_at: i.millis("last_seen_at"),
    }
}

/// v4 `bot_info` (events and edge analyses share it).
pub(super) fn bot_info(b: &mut Obj) -> BotInfo {
    BotInfo {
        category: b.str("category"),
        provider: b.str("provider"),
        provider_url: b.str("provider_url"),
        name: b.str("name"),
        identity: b.str("identity"),
        confidence: b.str("confidence"),
    }
}

/// v4 `ip_info` (events and edge analyses share it).
pub(super) fn ip_info(i: &mut Obj) -> IpInfo {
    IpInfo {
        v4: i.obj("v4", ip_details_v4),
        v6: i.obj("v6", ip_details_v4),
    }
}

/// v4 `proxy_details` (events and edge analyses share it).
pub(super) fn proxy_details(p: &mut Obj) -> ProxyDetails {
    ProxyDetails {
        proxy_type: p.str("proxy_type"),
        last_seen_at: p.millis("last_seen_at"),
        provider: p.str("provider"),
    }
}

/// v4 `vpn_methods` (events and edge analyses share it).
pub(super) fn vpn_methods(m: &mut Obj) -> VpnMethods {
    VpnMethods {
        timezone_mismatch: m.bool("timezone_mismatch"),
        public_vpn: m.bool("public_vpn"),
        auxiliary_mobile: m.bool("auxiliary_mobile"),
        os_mismatch: m.bool("os_mismatch"),
        relay: m.bool("relay"),
        ml_prediction: m.bool("ml_prediction"),
    }
}

fn ip_details_v4(d: &mut Obj) -> IpDetails {
    IpDetails {
        address: d.str("address"),
        geolocation: d.obj("geolocation", |g| Geolocation {
            accuracy_radius: g.i64("accuracy_radius"),
            latitude: g.f64("latitude"),
            longitude: g.f64("longitude"),
            postal_code: g.str("postal_code"),
            timezone: g.str("timezone"),
            city_name: g.str("city_name"),
            country_code: g.str("country_code"),
            country_name: g.str("country_name"),
            continent_code: g.str("continent_code"),
            continent_name: g.str("continent_name"),
            subdivisions: g.objs("subdivisions", |s| Subdivision {
                iso_code: s.str("iso_code"),
                name: s.str("name"),
            }),
        }),
        asn: d.str_or_number("asn"),
        asn_name: d.str("asn_name"),
        asn_network: d.str("asn_network"),
        asn_type: d.str("asn_type"),
        datacenter_result: d.bool("datacenter_result"),
        datacenter_name: d.str("datacenter_name"),
    }
}

/// Velocity, with the per-generation reader of one counter set.
pub fn velocity(v: &mut Obj, counts: fn(&mut Obj) -> VelocityCounts) -> Velocity {
    // v4 names its counters in snake case, v3 in camel case; accept each generation's own.
    let mut pick = |snake: &str, camel: &str| v.obj(snake, counts).or_else(|| v.obj(camel, counts));
    Velocity {
        distinct_ip: pick("distinct_ip", "distinctIp"),
        distinct_linked_id: pick("distinct_linked_id", "distinctLinkedId"),
        distinct_country: pick("distinct_country", "distinctCountry"),
        events: pick("events", "events"),
        ip_events: pick("ip_events", "ipEvents"),
        distinct_ip_by_linked_id: pick("distinct_ip_by_linked_id", "distinctIpByLinkedId"),
        distinct_visitor_id_by_linked_id: pick(
            "distinct_visitor_id_by_linked_id",
            "distinctVisitorIdByLinkedId",
        ),
    }
}

fn counts_v4(c: &mut Obj) -> VelocityCounts {
    VelocityCounts {
        five_minutes: c.i64("5_minutes"),
        one_hour: c.i64("1_hour"),
        twenty_four_hours: c.i64("24_hours"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn webhook_members_and_presence() {
        let body = json!({
            "event_id": "e1",
            "timestamp": 1708102555327_i64,
            "suspect": false,
            "factory_reset_timestamp": 0,
            "bot": "a_new_kind_of_bot",
            "triggered_by": [{"id": "r_1", "name": "Block bots", "description": "d"}],
            "brand_new_signal": {"score": 3}
        });
        let e = from_v4(body.as_object().cloned().unwrap_or_default());
        assert_eq!(e.suspect, Some(false));
        assert_eq!(e.factory_reset_time, None);
        assert_eq!(e.bot, BotResult::Unspecified as i32);
        assert_eq!(e.bot_raw, "a_new_kind_of_bot");
        assert_eq!(e.triggered_by[0].name.as_deref(), Some("Block bots"));
        let unmapped = e.unmapped.unwrap_or_default();
        assert!(unmapped.fields.contains_key("brand_new_signal"));
        assert_eq!(unmapped.fields.len(), 1);
    }
}
