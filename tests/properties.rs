//! Properties of the JSON→protobuf conversion, over generated JSON: it is total (no
//! panic on any JSON, in any of the upstream shapes), and what it does not type is kept
//! in `unmapped` rather than dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fingerprint_gateway::{config::Generation, convert};
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};

/// Any JSON value, up to a few levels deep.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects whose members are the upstreams' own names (so the typed paths are taken),
/// with any values.
fn shaped_object() -> impl Strategy<Value = Map<String, Json>> {
    let names = prop::sample::select(vec![
        "event_id",
        "timestamp",
        "url",
        "ip_address",
        "linked_id",
        "tags",
        "bot",
        "suspect",
        "identification",
        "visitor_id",
        "confidence",
        "ip_info",
        "velocity",
        "events",
        "pagination_key",
        "total_hits",
        "products",
        "requestId",
        "visitorId",
        "visits",
        "incognito",
        "browserDetails",
        "ipLocation",
        "verdict",
        "fingerprints",
        "rules",
        "verdict_reasons",
        "request_id",
        "telemetry_id",
        "action",
        "reasons",
        "data",
        "paginationKey",
        "lastTimestamp",
        "error",
        "status_code",
    ]);
    prop::collection::btree_map(names, any_json(), 0..12)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn conversion_is_total(map in shaped_object(), loose in any_json()) {
        for generation in [Generation::V4, Generation::V3] {
            let _ = convert::event(generation, map.clone());
            let _ = convert::list::search_page(generation, map.clone());
        }
        let _ = convert::v3::from_webhook(map.clone());
        let _ = convert::v3::from_visit(map.clone(), "visitor");
        let _ = convert::list::visits_page_v3(map.clone(), "visitor");
        let _ = convert::stytch::lookup(map.clone());
        let _ = convert::stytch::rules(map.clone());
        let _ = convert::stytch::verdict_reasons(map.clone());
        let _ = convert::stytch::set_rule(map.clone());
        let _ = convert::stytch::verdict_reason_override(map);
        let _ = convert::any_event(loose);
    }

    /// (A member whose value is `null` is absent, as in the upstreams' own schemas, and
    /// is not kept.)
    #[test]
    fn members_the_contract_lacks_are_kept_in_unmapped(
        extra in prop::collection::btree_map(
            "[a-z]{2,10}_zz[0-9]{1,3}",
            any_json().prop_filter("null is absent", |v| !v.is_null()),
            1..6,
        )
    ) {
        let mut map = Map::new();
        map.insert("event_id".into(), json!("1770000000000.prop"));
        map.insert("timestamp".into(), json!(1_770_000_000_000u64));
        for (k, v) in &extra {
            map.insert(k.clone(), v.clone());
        }
        let event = convert::event(Generation::V4, map);
        let unmapped = event.unmapped.expect("unknown members are kept");
        for k in extra.keys() {
            prop_assert!(unmapped.fields.contains_key(k), "{k} dropped");
        }
    }

    #[test]
    fn members_of_a_wrong_type_are_kept_in_unmapped(
        field in prop::sample::select(vec!["url", "ip_address", "linked_id", "user_agent"]),
        value in any_json().prop_filter("not a string or null", |v| !v.is_string() && !v.is_null()),
    ) {
        let mut map = Map::new();
        map.insert("event_id".into(), json!("1770000000000.prop"));
        map.insert(field.to_owned(), value);
        let event = convert::event(Generation::V4, map);
        let unmapped = event.unmapped.expect("a mistyped member is kept");
        prop_assert!(unmapped.fields.contains_key(field), "{field} dropped");
    }
}
