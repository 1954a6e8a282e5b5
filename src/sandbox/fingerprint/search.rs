//! Searching the sandbox's events: the parameters read the way each generation
//! documents them, and the matching page.

use super::*;

/// Parsed search parameters both generations share.
pub(super) struct Search {
    pub(super) limit: u64,
    pub(super) offset: u64,
    pub(super) visitor_id: Option<String>,
    pub(super) linked_id: Option<String>,
    pub(super) suspect: Option<bool>,
    pub(super) reverse: bool,
    /// `source=edge`: Automation Intelligence events only.
    pub(super) edge: bool,
}

/// Reads the search parameters the way the real APIs do: case-sensitive words,
/// booleans (see [`boolean`]), numbers, times (v4: RFC 3339 or Unix ms; v3: Unix ms),
/// addresses.
pub(super) fn parse_search(
    params: &[(String, String)],
    generation: Gen,
    op: Op,
    limits: (u64, u64),
) -> Result<Search, Response> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bad = |msg: &str| error(generation, op, StatusCode::BAD_REQUEST, CANNOT_PARSE, msg);
    let limit = match get("limit") {
        None => limits.0,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if (1..=limits.1).contains(&n) => n,
            _ => return Err(bad("invalid limit")),
        },
    };
    let key = get("pagination_key").or_else(|| get("paginationKey"));
    let offset = match key {
        None => 0,
        Some(k) => match k
            .strip_prefix("sandbox-page-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => n,
            None => return Err(bad("invalid pagination key")),
        },
    };
    for (name, value) in params {
        let ok = match name.as_str() {
            "start" | "end" | "before" => is_time(generation, value),
            "reverse"
            | "suspect"
            | "vpn"
            | "virtual_machine"
            | "tampering"
            | "incognito"
            | "privacy_settings"
            | "jailbroken"
            | "frida"
            | "factory_reset"
            | "cloned_app"
            | "emulator"
            | "root_apps"
            | "developer_tools"
            | "location_spoofing"
            | "mitm_attack"
            | "rare_device"
            | "proxy"
            | "tor_node"
            | "simulator"
            | "active_call"
            | "anti_detect_browser"
            | "ip_blocklist"
            | "datacenter" => boolean(value).is_some(),
            "ip_address" => Cidr::parse(value).is_ok(),
            "min_suspect_score" => value.parse::<f64>().is_ok(),
            "total_hits" => value.parse::<u64>().is_ok_and(|n| (1..=1000).contains(&n)),
            _ => true,
        };
        if !ok {
            return Err(bad(&format!("invalid {}", name.replace('_', " "))));
        }
    }
    for (name, allowed) in vocabularies(generation) {
        for (_, value) in params.iter().filter(|(k, _)| k == name) {
            if !allowed.contains(&value.as_str()) {
                return Err(bad(&format!("invalid {}", name.replace('_', " "))));
            }
        }
    }
    let flag = |k: &str| get(k).as_deref().and_then(boolean);
    Ok(Search {
        limit,
        offset,
        visitor_id: get("visitor_id"),
        linked_id: get("linked_id"),
        suspect: flag("suspect"),
        reverse: flag("reverse").unwrap_or(false),
        edge: get("source").as_deref() == Some("edge"),
    })
}

/// A query-string boolean in the spellings the official SDKs send: `true`/`false`, and
/// Python's `True`/`False` (the v3 Python SDK writes `str(value)`).
pub(super) fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "True" => Some(true),
        "false" | "False" => Some(false),
        _ => None,
    }
}

pub(super) fn is_time(generation: Gen, value: &str) -> bool {
    value.parse::<i64>().is_ok()
        || (generation == Gen::V4 && value.parse::<prost_types::Timestamp>().is_ok())
}

/// What makes one search the same search on every page: its parameters without the
/// page size and position.
pub(super) fn search_seed(params: &[(String, String)]) -> String {
    let mut kept: Vec<String> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "pagination_key" | "paginationKey"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    kept.sort();
    kept.join("&")
}

/// The events a search finds: a visitor's visits, or events seeded by the filters.
pub(super) fn find(
    state: &AppState,
    search: &Search,
    query_seed: &str,
) -> (Vec<Json>, Option<String>) {
    let visitor = search
        .visitor_id
        .clone()
        .unwrap_or_else(|| data::visitor_id_for(query_seed));
    let Ok(mut world) = state.world.lock() else {
        return (Vec::new(), None);
    };
    if world.is_deleted(&visitor) {
        return (Vec::new(), None);
    }
    let total = if search.visitor_id.is_some() {
        data::visit_count(&visitor)
    } else {
        25
    };
    let mut events = Vec::new();
    let end = (search.offset + search.limit).min(total);
    for i in search.offset..end {
        let n = if search.reverse { total - 1 - i } else { i };
        let id = data::visit_id(&visitor, n);
        let mut event = data::event_v4(&id, &visitor, data::timestamp_of(&id));
        world.apply_updates(&id, &mut event);
        world.visitor_of.insert(id, visitor.clone());
        if let Some(linked) = &search.linked_id {
            event["linked_id"] = json!(linked);
        }
        if let Some(s) = search.suspect {
            event["suspect"] = json!(s);
        }
        if search.edge {
            event["source"] = json!("edge");
        }
        events.push(event);
    }
    let next = (end < total).then(|| format!("sandbox-page-{end}"));
    (events, next)
}
