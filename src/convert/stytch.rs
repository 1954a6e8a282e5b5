//! Stytch DFP JSON to protobuf messages.

use serde_json::{Map, Value as Json};

use super::json::Obj;
use crate::proto::v1::{
    Action, Asn, BrowserProperties, ExternalMetadata, Fingerprints, IpGeolocation,
    ListRulesResponse, ListVerdictReasonsResponse, LookupTelemetryResponse, NetworkProperties,
    Properties, Rule, SetRuleResponse, SetVerdictReasonOverrideResponse, Verdict,
    VerdictReasonAction, VerdictReasonOverride,
};

/// Members every Stytch answer carries that restate the HTTP exchange itself.
fn drop_envelope(o: &mut Obj) {
    // `status_code` repeats the HTTP status the client already checked.
    if let Some(code) = o.take("status_code")
        && code.as_u64() != Some(200)
    {
        o.put_back("status_code", code);
    }
}

/// `POST /v1/fingerprint/lookup` 200 body.
pub fn lookup(map: Map<String, Json>) -> LookupTelemetryResponse {
    let mut o = Obj::new(map);
    drop_envelope(&mut o);
    let mut out = LookupTelemetryResponse {
        request_id: o.str("request_id").unwrap_or_default(),
        telemetry_id: o.str("telemetry_id").unwrap_or_default(),
        fingerprints: o.obj("fingerprints", |f| Fingerprints {
            network_fingerprint: f.str("network_fingerprint"),
            hardware_fingerprint: f.str("hardware_fingerprint"),
            browser_fingerprint: f.str("browser_fingerprint"),
            visitor_fingerprint: f.str("visitor_fingerprint"),
            visitor_id: f.str("visitor_id"),
            browser_id: f.str("browser_id"),
        }),
        verdict: o.obj("verdict", verdict),
        external_metadata: o.obj("external_metadata", |m| ExternalMetadata {
            external_id: m.str("external_id"),
            organization_id: m.str("organization_id"),
            user_action: m.str("user_action"),
        }),
        created_at: o.rfc3339("created_at"),
        expires_at: o.rfc3339("expires_at"),
        properties: o.obj("properties", |p| Properties {
            network_properties: p.obj("network_properties", |n| NetworkProperties {
                ip_address: n.str("ip_address"),
                asn: n.obj("asn", |a| Asn {
                    asn: a.str_or_number("asn"),
                    name: a.str("name"),
                    network: a.str("network"),
                }),
                ip_geolocation: n.obj("ip_geolocation", |g| IpGeolocation {
                    city: g.str("city"),
                    region: g.str("region"),
                    country: g.str("country"),
                }),
                is_proxy: n.bool("is_proxy"),
                is_vpn: n.bool("is_vpn"),
            }),
            browser_properties: p.obj("browser_properties", |b| BrowserProperties {
                user_agent: b.str("user_agent"),
            }),
        }),
        raw_signals: o.structure("raw_signals"),
        unmapped: None,
    };
    out.unmapped = o.finish_struct();
    out
}

fn verdict(v: &mut Obj) -> Verdict {
    let (action, action_raw) = read_action(v, "action");
    Verdict {
        action,
        action_raw,
        reasons: v.strs("reasons"),
        detected_device_type: v.str("detected_device_type"),
        is_authentic_device: v.bool("is_authentic_device"),
        verdict_reason_overrides: v.objs("verdict_reason_overrides", |r| {
            let (override_action, override_action_raw) = read_action(r, "override_action");
            VerdictReasonOverride {
                verdict_reason: r.str("verdict_reason").unwrap_or_default(),
                override_action,
                override_action_raw,
            }
        }),
        // The deprecated GET lookup sends "" when no rule matched.
        rule_match_type: v.str_nonempty("rule_match_type"),
        rule_match_identifier: v.str_nonempty("rule_match_identifier"),
    }
}

/// Reads an action member: the typed value plus the string as sent.
fn read_action(o: &mut Obj, key: &str) -> (i32, String) {
    let raw = o.str(key).unwrap_or_default();
    (parse_action(&raw) as i32, raw)
}

/// Stytch's action words.
pub fn parse_action(raw: &str) -> Action {
    match raw {
        "ALLOW" => Action::Allow,
        "CHALLENGE" => Action::Challenge,
        "BLOCK" => Action::Block,
        "NONE" => Action::None,
        _ => Action::Unspecified,
    }
}

/// `POST /v1/rules/list` 200 body. `next_page_token` holds Stytch's raw `next_cursor`,
/// for the service to wrap.
pub fn rules(map: Map<String, Json>) -> ListRulesResponse {
    let mut o = Obj::new(map);
    drop_envelope(&mut o);
    let mut out = ListRulesResponse {
        request_id: o.str("request_id").unwrap_or_default(),
        rules: o.objs("rules", rule),
        // Cursors arrive as null, "" or absent on the last page; all mean "no more".
        next_page_token: o.str("next_cursor").unwrap_or_default(),
        unmapped: None,
    };
    out.unmapped = o.finish_struct();
    out
}

/// One rule (`rules[]`, or the body of a set answer).
fn rule(r: &mut Obj) -> Rule {
    let (action, action_raw) = read_action(r, "action");
    let mut rule = Rule {
        rule_type: r.str("rule_type").unwrap_or_default(),
        action,
        action_raw,
        visitor_id: r.str("visitor_id"),
        browser_id: r.str("browser_id"),
        visitor_fingerprint: r.str("visitor_fingerprint"),
        browser_fingerprint: r.str("browser_fingerprint"),
        hardware_fingerprint: r.str("hardware_fingerprint"),
        network_fingerprint: r.str("network_fingerprint"),
        cidr_block: r.str("cidr_block"),
        country_code: r.str("country_code"),
        asn: r.str_or_number("asn"),
        description: r.str("description"),
        created_at: r.rfc3339("created_at"),
        expires_at: r.rfc3339("expires_at"),
        last_updated_at: r.rfc3339("last_updated_at"),
        unmapped: None,
    };
    rule.unmapped = std::mem::take(r).finish_struct();
    rule
}

/// `POST /v1/verdict_reasons/list` 200 body.
pub fn verdict_reasons(map: Map<String, Json>) -> ListVerdictReasonsResponse {
    let mut o = Obj::new(map);
    drop_envelope(&mut o);
    let mut out = ListVerdictReasonsResponse {
        request_id: o.str("request_id").unwrap_or_default(),
        verdict_reason_actions: o.objs("verdict_reason_actions", reason_action),
        next_page_token: String::new(),
        unmapped: None,
    };
    out.unmapped = o.finish_struct();
    out
}

/// One verdict reason with its actions.
fn reason_action(r: &mut Obj) -> VerdictReasonAction {
    let (default_action, default_action_raw) = read_action(r, "default_action");
    let (override_action, override_action_raw) = read_action(r, "override_action");
    let mut item = VerdictReasonAction {
        verdict_reason: r.str("verdict_reason").unwrap_or_default(),
        default_action,
        default_action_raw,
        override_action,
        override_action_raw,
        override_created_at: r.rfc3339("override_created_at"),
        override_description: r.str("override_description"),
        unmapped: None,
    };
    item.unmapped = std::mem::take(r).finish_struct();
    item
}

/// `POST /v1/rules/set` 200 body: the rule as stored. Its unmapped members stay on the rule.
pub fn set_rule(map: Map<String, Json>) -> SetRuleResponse {
    let mut o = Obj::new(map);
    drop_envelope(&mut o);
    let request_id = o.str("request_id").unwrap_or_default();
    let mut stored = rule(&mut o);
    if stored.rule_type.is_empty() {
        stored.rule_type = rule_type_of(&stored).to_owned();
    }
    SetRuleResponse {
        request_id,
        rule: Some(stored),
    }
}

/// Stytch's rule identifiers: the request and rule member, and the `rule_type` that
/// names it, in the order of `SetRuleRequest.identifier`'s fields.
pub const RULE_IDENTIFIERS: [(&str, &str); 9] = [
    ("visitor_id", "VISITOR_ID"),
    ("browser_id", "BROWSER_ID"),
    ("visitor_fingerprint", "VISITOR_FINGERPRINT"),
    ("browser_fingerprint", "BROWSER_FINGERPRINT"),
    ("hardware_fingerprint", "HARDWARE_FINGERPRINT"),
    ("network_fingerprint", "NETWORK_FINGERPRINT"),
    ("cidr_block", "CIDR_BLOCK"),
    ("country_code", "COUNTRY_CODE"),
    ("asn", "ASN"),
];

/// The rule type a set answer implies by its identifier (it does not say it itself).
fn rule_type_of(rule: &Rule) -> &'static str {
    let set = [
        rule.visitor_id.is_some(),
        rule.browser_id.is_some(),
        rule.visitor_fingerprint.is_some(),
        rule.browser_fingerprint.is_some(),
        rule.hardware_fingerprint.is_some(),
        rule.network_fingerprint.is_some(),
        rule.cidr_block.is_some(),
        rule.country_code.is_some(),
        rule.asn.is_some(),
    ];
    RULE_IDENTIFIERS
        .iter()
        .zip(set)
        .find_map(|((_, rule_type), set)| set.then_some(*rule_type))
        .unwrap_or_default()
}

/// `POST /v1/verdict_reasons/override` 200 body.
pub fn verdict_reason_override(map: Map<String, Json>) -> SetVerdictReasonOverrideResponse {
    let mut o = Obj::new(map);
    drop_envelope(&mut o);
    let request_id = o.str("request_id").unwrap_or_default();
    let verdict_reason_action = o.obj("verdict_reason_action", reason_action);
    SetVerdictReasonOverrideResponse {
        request_id,
        verdict_reason_action,
        unmapped: o.finish_struct(),
    }
}
