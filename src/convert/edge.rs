//! v4 `EdgeResponse` (`POST /v4/edge`, Automation Intelligence) to
//! `AnalyzeRequestResponse`. The bot, IP, proxy and VPN members are the event's own
//! messages, read by the same functions; what is not modelled lands in `unmapped`.

use serde_json::{Map, Value as Json};

use super::event::{bot_info, ip_info, proxy_details, vpn_methods};
use super::json::Obj;
use crate::proto::v1::AnalyzeRequestResponse;

/// Converts one edge analysis. Never fails: what is not modelled, or arrived with
/// another type than documented, lands in `unmapped`.
pub fn from_v4(map: Map<String, Json>) -> AnalyzeRequestResponse {
    let mut o = Obj::new(map);
    let mut r = AnalyzeRequestResponse {
        event_id: o.str("event_id").unwrap_or_default(),
        timestamp: o.millis("timestamp"),
        source: o.str("source"),
        linked_id: o.str("linked_id"),
        tags: o.structure("tags"),
        url: o.str("url"),
        bot_info: o.obj("bot_info", bot_info),
        ip_info: o.obj("ip_info", ip_info),
        proxy: o.bool("proxy"),
        proxy_confidence: o.str("proxy_confidence"),
        proxy_details: o.obj("proxy_details", proxy_details),
        vpn: o.bool("vpn"),
        vpn_confidence: o.str("vpn_confidence"),
        vpn_methods: o.obj("vpn_methods", vpn_methods),
        unmapped: None,
    };
    r.unmapped = o.finish_struct();
    r
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn convert(v: Json) -> AnalyzeRequestResponse {
        match v {
            Json::Object(m) => from_v4(m),
            _ => AnalyzeRequestResponse::default(),
        }
    }

    #[test]
    fn new_and_mistyped_members_land_in_unmapped() {
        let r = convert(json!({
            "event_id": "1.a", "timestamp": 1758130560902_i64, "ip_info": {},
            "proxy": "yes", "bot_info": {"category": "ai_agent", "novel": 1},
            "brand_new_signal": {"x": true}
        }));
        assert_eq!(r.event_id, "1.a");
        assert_eq!(r.proxy, None);
        let bot = r.bot_info.unwrap_or_default();
        assert_eq!(bot.category.as_deref(), Some("ai_agent"));
        let unmapped = r.unmapped.unwrap_or_default();
        let keys: Vec<&String> = unmapped.fields.keys().collect();
        assert!(keys.contains(&&"proxy".to_owned()), "{keys:?}");
        assert!(keys.contains(&&"brand_new_signal".to_owned()), "{keys:?}");
        // A new member of a known object stays at its path.
        assert!(keys.contains(&&"bot_info".to_owned()), "{keys:?}");
    }
}
