//! What writes changed in the sandbox, and what it remembers between requests, every
//! part bounded: the emulator must not grow with the requests it serves.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

use serde_json::{Map, Value as Json, json};

use super::data;
use crate::cidr::Cidr;

/// How many events, visitors and update counts the sandbox remembers; the oldest are
/// forgotten first.
pub const MEMORY: usize = 100_000;

/// A map that forgets its oldest entries beyond a bound.
#[derive(Debug)]
pub struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    limit: usize,
}

/// The emulated accounts' state.
#[derive(Debug)]
pub struct World {
    /// Per event id: v4 members set by updates (`linked_id`, `tags`, `suspect`).
    pub updates: Bounded<String, Map<String, Json>>,
    /// Deleted visitors.
    pub deleted: Bounded<String, ()>,
    /// Update attempts per `notready…` event.
    pub attempts: Bounded<String, u32>,
    /// The visitor of each event a list produced, so the event reads back alike.
    pub visitor_of: Bounded<String, String>,
    /// Stytch rules in list order.
    pub rules: Vec<Json>,
    /// Stytch verdict reasons with their overrides.
    pub reasons: Vec<Json>,
}

// === impl Bounded ===

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    /// An empty map of at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            limit,
        }
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// The value of `key`, inserted with `make` when absent (forgetting the oldest
    /// entry when full).
    pub fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            self.make_room();
            self.order.push_back(key.clone());
        }
        self.map.entry(key).or_insert_with(make)
    }

    /// Sets `key`; whether it was absent before.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        if let Some(slot) = self.map.get_mut(&key) {
            *slot = value;
            return false;
        }
        self.make_room();
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        true
    }

    fn make_room(&mut self) {
        if self.map.len() >= self.limit
            && let Some(oldest) = self.order.pop_front()
        {
            self.map.remove(&oldest);
        }
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

// === impl World ===

impl Default for World {
    fn default() -> Self {
        Self {
            updates: Bounded::new(MEMORY),
            deleted: Bounded::new(MEMORY),
            attempts: Bounded::new(MEMORY),
            visitor_of: Bounded::new(MEMORY),
            rules: data::stytch_rules(),
            reasons: data::stytch_verdict_reasons(),
        }
    }
}

impl World {
    /// Whether the visitor's data was deleted.
    pub fn is_deleted(&self, visitor_id: &str) -> bool {
        self.deleted.contains(visitor_id)
    }

    /// Applies the updates made to `event_id` to its v4 JSON.
    pub fn apply_updates(&self, event_id: &str, event: &mut Json) {
        if let (Some(changes), Some(e)) = (self.updates.get(event_id), event.as_object_mut()) {
            for (k, v) in changes {
                e.insert(k.clone(), v.clone());
            }
        }
    }

    /// The v4 event for an id, with updates applied; `None` once its visitor is deleted.
    pub fn event(&self, event_id: &str) -> Option<Json> {
        let visitor = self
            .visitor_of
            .get(event_id)
            .cloned()
            .unwrap_or_else(|| data::visitor_id_for(event_id));
        if self.is_deleted(&visitor) {
            return None;
        }
        let mut event = data::event_v4(event_id, &visitor, data::timestamp_of(event_id));
        self.apply_updates(event_id, &mut event);
        Some(event)
    }

    /// Rules first (a match wins, as RULE_MATCH), then verdict-reason overrides.
    pub fn apply_rules(&self, lookup: &mut Json) {
        let fp = lookup["fingerprints"].clone();
        let net = lookup["properties"]["network_properties"].clone();
        let matched = self.rules.iter().find_map(|rule| {
            let kind = rule["rule_type"].as_str()?;
            let (field, value) = match kind {
                "CIDR_BLOCK" => ("cidr_block", rule["cidr_block"].as_str()?),
                "COUNTRY_CODE" => ("country_code", rule["country_code"].as_str()?),
                "ASN" => ("asn", rule["asn"].as_str()?),
                other => {
                    let field = other.to_ascii_lowercase();
                    let value = rule[&field].as_str()?;
                    return (fp[&field].as_str() == Some(value))
                        .then(|| (rule.clone(), value.to_owned()));
                }
            };
            let hit = match field {
                "cidr_block" => {
                    let ip = net["ip_address"].as_str().and_then(|ip| ip.parse().ok());
                    match (Cidr::parse(value), ip) {
                        (Ok(cidr), Some(ip)) => cidr.contains(ip),
                        _ => false,
                    }
                }
                "country_code" => net["ip_geolocation"]["country"].as_str() == Some(value),
                _ => net["asn"]["asn"].as_str() == Some(value),
            };
            hit.then(|| (rule.clone(), value.to_owned()))
        });
        let verdict = &mut lookup["verdict"];
        if let Some((rule, identifier)) = matched {
            verdict["action"] = rule["action"].clone();
            verdict["reasons"] = json!(["RULE_MATCH"]);
            verdict["rule_match_type"] = rule["rule_type"].clone();
            verdict["rule_match_identifier"] = json!(identifier);
            return;
        }
        let reasons: Vec<String> = verdict["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut applied = Vec::new();
        for reason in &reasons {
            if let Some(o) = self
                .reasons
                .iter()
                .find(|r| r["verdict_reason"] == reason.as_str())
                && let Some(action) = o.get("override_action")
            {
                verdict["action"] = action.clone();
                applied.push(json!({"verdict_reason": reason, "override_action": action}));
            }
        }
        verdict["verdict_reason_overrides"] = json!(applied);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_forgets_the_oldest() {
        let mut b: Bounded<u32, u32> = Bounded::new(3);
        for i in 0..10 {
            b.insert(i, i * 10);
        }
        assert_eq!(b.len(), 3);
        assert!(!b.contains(&6));
        assert_eq!(b.get(&9), Some(&90));
        assert!(!b.insert(9, 1), "an update, not a new entry");
        assert_eq!(b.get(&9), Some(&1));
    }
}
