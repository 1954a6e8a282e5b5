//! v4 events and search pages read straight into typed structs, for the common case
//! where an answer has exactly the published shape.
//!
//! Reading an event into `serde_json::Value` first and then taking its members out one
//! by one costs about 60% of the CPU of a cache miss (BTreeMap inserts and removes, an
//! allocation per key). The structs here mirror the members [`super::event::from_v4`]
//! maps, with the types it accepts, and refuse anything else: an unknown member, a
//! member of another type, a duplicate member, a time out of range. An answer they
//! refuse is read the general way, so what the caller gets never depends on the path:
//! `tests`, `tests/conformance.rs` (the official examples) and the `convert_v4` fuzz
//! target check that both give the same `Event` or page.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value as Json};

pub mod wire;

use super::event::set_bot;
use super::json::{millis_to_timestamp, to_struct};
use super::page::EventPage;
use crate::proto::v1::{
    BotInfo, BrowserDetails, Confidence, Event, Geolocation, Identification, Integration,
    IpBlocklist, IpDetails, IpInfo, Label, Proximity, ProxyDetails, Sdk, Subdivision,
    TamperingDetails, TriggeringRule, Velocity, VelocityCounts, VpnMethods,
};

/// A successful answer: in a typed shape when the body had exactly that shape, else as
/// a JSON object.
#[derive(Debug)]
pub enum Answer<T> {
    /// Read by the typed shape.
    Typed(T),
    /// Read as JSON (any other body, or one that may echo a credential).
    Json(Map<String, Json>),
}

/// A typed reading of a successful answer's body, tried before the general one.
pub trait Shape: Sized + Send {
    /// `Some` only when `body` has exactly this shape.
    fn read(body: &[u8]) -> Option<Self>;
}

/// No typed shape: every answer is read as JSON.
#[derive(Debug)]
pub enum Untyped {}

impl Answer<Untyped> {
    /// The JSON object: an untyped answer holds nothing else.
    pub fn into_json(self) -> Map<String, Json> {
        match self {
            Self::Json(json) => json,
            Self::Typed(never) => match never {},
        }
    }
}

impl Shape for Untyped {
    fn read(_: &[u8]) -> Option<Self> {
        None
    }
}

/// The body as text, checked once: serde_json then reads each string as it stands
/// instead of checking every one of them again (a sixth of a typed read's cost).
fn text(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body).ok()
}

impl Shape for V4Event {
    fn read(body: &[u8]) -> Option<Self> {
        serde_json::from_str(text(body)?).ok()
    }
}

impl Shape for V4Page {
    fn read(body: &[u8]) -> Option<Self> {
        serde_json::from_str(text(body)?).ok()
    }
}

type Text = Option<String>;
type Flag = Option<bool>;
type Real = Option<f64>;
type Whole = Option<i64>;
type Object = Option<Map<String, Json>>;
type List<T> = Option<Vec<T>>;

/// Unix milliseconds that a `Timestamp` can hold; anything else refuses the shape.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<prost_types::Timestamp>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        None => Ok(None),
        Some(ms) => millis_to_timestamp(ms)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("time out of range")),
    }
}

/// As [`millis`], with `0` meaning "never".
fn millis_nonzero<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<prost_types::Timestamp>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        None | Some(0) => Ok(None),
        Some(ms) => millis_to_timestamp(ms)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("time out of range")),
    }
}

/// `GET /v4/events` (a search page), every member the general search-page reader maps,
/// each event of exactly the published shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4Page {
    events: List<V4Event>,
    pagination_key: Text,
    total_hits: Whole,
}

impl V4Page {
    /// The converted page; nothing is left over, so its `unmapped` is empty.
    pub fn into_page(self) -> EventPage {
        EventPage {
            events: list(self.events, V4Event::into_event),
            next_key: self.pagination_key.unwrap_or_default(),
            total: self.total_hits,
            unmapped: Map::new(),
        }
    }
}

/// `GET /v4/events/{event_id}`, every member [`super::event::from_v4`] maps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4Event {
    event_id: Text,
    #[serde(default, deserialize_with = "millis")]
    timestamp: Option<prost_types::Timestamp>,
    source: Text,
    incremental_identification_status: Text,
    linked_id: Text,
    environment_id: Text,
    suspect: Flag,
    sdk: Option<TSdk>,
    replayed: Flag,
    identification: Option<TIdentification>,
    supplementary_id_high_recall: Option<TIdentification>,
    tags: Object,
    url: Text,
    bundle_id: Text,
    package_name: Text,
    ip_address: Text,
    user_agent: Text,
    device: Text,
    os: Text,
    os_version: Text,
    client_referrer: Text,
    browser_details: Option<TBrowserDetails>,
    proximity: Option<TProximity>,
    active_call: Flag,
    bot: Text,
    bot_type: Text,
    bot_info: Option<TBotInfo>,
    cloned_app: Flag,
    developer_tools: Flag,
    emulator: Flag,
    #[serde(default, deserialize_with = "millis_nonzero")]
    factory_reset_timestamp: Option<prost_types::Timestamp>,
    frida: Flag,
    ip_blocklist: Option<TIpBlocklist>,
    ip_info: Option<TIpInfo>,
    proxy: Flag,
    proxy_confidence: Text,
    proxy_details: Option<TProxyDetails>,
    proxy_ml_score: Real,
    incognito: Flag,
    jailbroken: Flag,
    location_spoofing: Flag,
    mitm_attack: Flag,
    privacy_settings: Flag,
    root_apps: Flag,
    rule_action: Object,
    simulator: Flag,
    suspect_score: Whole,
    tampering: Flag,
    tampering_confidence: Text,
    tampering_ml_score: Real,
    tampering_details: Option<TTamperingDetails>,
    velocity: Option<TVelocity>,
    virtual_machine: Flag,
    virtual_machine_ml_score: Real,
    vpn: Flag,
    vpn_confidence: Text,
    vpn_ml_score: Real,
    vpn_origin_timezone: Text,
    vpn_origin_country: Text,
    vpn_methods: Option<TVpnMethods>,
    high_activity_device: Flag,
    rare_device: Flag,
    rare_device_percentile_bucket: Text,
    raw_device_attributes: Object,
    triggered_by: List<TTriggeringRule>,
    labels: List<TLabel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TSdk {
    platform: Text,
    version: Text,
    integrations: List<TIntegration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TIntegration {
    name: Text,
    version: Text,
    subintegration: Option<Box<TIntegration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TIdentification {
    visitor_id: Text,
    visitor_found: Flag,
    confidence: Option<TConfidence>,
    #[serde(default, deserialize_with = "millis")]
    first_seen_at: Option<prost_types::Timestamp>,
    #[serde(default, deserialize_with = "millis")]
    last_seen_at: Option<prost_types::Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TConfidence {
    score: Real,
    version: Text,
    comment: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TBrowserDetails {
    browser_name: Text,
    browser_major_version: Text,
    browser_full_version: Text,
    os: Text,
    os_version: Text,
    device: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TProximity {
    id: Text,
    precision_radius: Whole,
    confidence: Real,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TBotInfo {
    category: Text,
    provider: Text,
    provider_url: Text,
    name: Text,
    identity: Text,
    confidence: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TIpBlocklist {
    email_spam: Flag,
    attack_source: Flag,
    tor_node: Flag,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TIpInfo {
    v4: Option<TIpDetails>,
    v6: Option<TIpDetails>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TIpDetails {
    address: Text,
    geolocation: Option<TGeolocation>,
    asn: Text,
    asn_name: Text,
    asn_network: Text,
    asn_type: Text,
    datacenter_result: Flag,
    datacenter_name: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TGeolocation {
    accuracy_radius: Whole,
    latitude: Real,
    longitude: Real,
    postal_code: Text,
    timezone: Text,
    city_name: Text,
    country_code: Text,
    country_name: Text,
    continent_code: Text,
    continent_name: Text,
    subdivisions: List<TSubdivision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TSubdivision {
    iso_code: Text,
    name: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TProxyDetails {
    proxy_type: Text,
    #[serde(default, deserialize_with = "millis")]
    last_seen_at: Option<prost_types::Timestamp>,
    provider: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TTamperingDetails {
    anomaly_score: Real,
    anti_detect_browser: Flag,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TVelocity {
    distinct_ip: Option<TCounts>,
    distinct_linked_id: Option<TCounts>,
    distinct_country: Option<TCounts>,
    events: Option<TCounts>,
    ip_events: Option<TCounts>,
    distinct_ip_by_linked_id: Option<TCounts>,
    distinct_visitor_id_by_linked_id: Option<TCounts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TCounts {
    #[serde(rename = "5_minutes")]
    five_minutes: Whole,
    #[serde(rename = "1_hour")]
    one_hour: Whole,
    #[serde(rename = "24_hours")]
    twenty_four_hours: Whole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TVpnMethods {
    timezone_mismatch: Flag,
    public_vpn: Flag,
    auxiliary_mobile: Flag,
    os_mismatch: Flag,
    relay: Flag,
    ml_prediction: Flag,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TTriggeringRule {
    id: Text,
    name: Text,
    description: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TLabel {
    label: Text,
    prediction: Flag,
    ml_score: Real,
}

fn list<T, U>(items: List<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    items.unwrap_or_default().into_iter().map(f).collect()
}

// === the typed structs made into the contract's messages ===
// What `convert::event::from_v4` does for a `serde_json::Value`, for an event read in
// its published shape.

impl V4Event {
    /// The typed `Event`; nothing is left over, so `unmapped` is empty.
    pub fn into_event(self) -> Event {
        let mut e = Event {
            event_id: self.event_id.unwrap_or_default(),
            timestamp: self.timestamp,
            source: self.source,
            incremental_identification_status: self.incremental_identification_status,
            linked_id: self.linked_id,
            environment_id: self.environment_id,
            suspect: self.suspect,
            sdk: self.sdk.map(TSdk::convert),
            replayed: self.replayed,
            identification: self.identification.map(TIdentification::convert),
            supplementary_id_high_recall: self
                .supplementary_id_high_recall
                .map(TIdentification::convert),
            tags: self.tags.map(to_struct),
            url: self.url,
            bundle_id: self.bundle_id,
            package_name: self.package_name,
            ip_address: self.ip_address,
            user_agent: self.user_agent,
            device: self.device,
            os: self.os,
            os_version: self.os_version,
            client_referrer: self.client_referrer,
            browser_details: self.browser_details.map(|b| BrowserDetails {
                browser_name: b.browser_name,
                browser_major_version: b.browser_major_version,
                browser_full_version: b.browser_full_version,
                os: b.os,
                os_version: b.os_version,
                device: b.device,
            }),
            proximity: self.proximity.map(|p| Proximity {
                id: p.id,
                precision_radius: p.precision_radius,
                confidence: p.confidence,
            }),
            active_call: self.active_call,
            bot_type: self.bot_type,
            bot_info: self.bot_info.map(|b| BotInfo {
                category: b.category,
                provider: b.provider,
                provider_url: b.provider_url,
                name: b.name,
                identity: b.identity,
                confidence: b.confidence,
            }),
            cloned_app: self.cloned_app,
            developer_tools: self.developer_tools,
            emulator: self.emulator,
            factory_reset_time: self.factory_reset_timestamp,
            frida: self.frida,
            ip_blocklist: self.ip_blocklist.map(|b| IpBlocklist {
                email_spam: b.email_spam,
                attack_source: b.attack_source,
                tor_node: b.tor_node,
            }),
            ip_info: self.ip_info.map(|i| IpInfo {
                v4: i.v4.map(TIpDetails::convert),
                v6: i.v6.map(TIpDetails::convert),
            }),
            proxy: self.proxy,
            proxy_confidence: self.proxy_confidence,
            proxy_details: self.proxy_details.map(|p| ProxyDetails {
                proxy_type: p.proxy_type,
                last_seen_at: p.last_seen_at,
                provider: p.provider,
            }),
            proxy_ml_score: self.proxy_ml_score,
            incognito: self.incognito,
            jailbroken: self.jailbroken,
            location_spoofing: self.location_spoofing,
            mitm_attack: self.mitm_attack,
            privacy_settings: self.privacy_settings,
            root_apps: self.root_apps,
            rule_action: self.rule_action.map(to_struct),
            simulator: self.simulator,
            suspect_score: self.suspect_score,
            tampering: self.tampering,
            tampering_confidence: self.tampering_confidence,
            tampering_ml_score: self.tampering_ml_score,
            tampering_details: self.tampering_details.map(|t| TamperingDetails {
                anomaly_score: t.anomaly_score,
                anti_detect_browser: t.anti_detect_browser,
            }),
            velocity: self.velocity.map(|v| Velocity {
                distinct_ip: v.distinct_ip.map(TCounts::convert),
                distinct_linked_id: v.distinct_linked_id.map(TCounts::convert),
                distinct_country: v.distinct_country.map(TCounts::convert),
                events: v.events.map(TCounts::convert),
                ip_events: v.ip_events.map(TCounts::convert),
                distinct_ip_by_linked_id: v.distinct_ip_by_linked_id.map(TCounts::convert),
                distinct_visitor_id_by_linked_id: v
                    .distinct_visitor_id_by_linked_id
                    .map(TCounts::convert),
            }),
            virtual_machine: self.virtual_machine,
            virtual_machine_ml_score: self.virtual_machine_ml_score,
            vpn: self.vpn,
            vpn_confidence: self.vpn_confidence,
            vpn_ml_score: self.vpn_ml_score,
            vpn_origin_timezone: self.vpn_origin_timezone,
            vpn_origin_country: self.vpn_origin_country,
            vpn_methods: self.vpn_methods.map(|m| VpnMethods {
                timezone_mismatch: m.timezone_mismatch,
                public_vpn: m.public_vpn,
                auxiliary_mobile: m.auxiliary_mobile,
                os_mismatch: m.os_mismatch,
                relay: m.relay,
                ml_prediction: m.ml_prediction,
            }),
            high_activity_device: self.high_activity_device,
            rare_device: self.rare_device,
            rare_device_percentile_bucket: self.rare_device_percentile_bucket,
            raw_device_attributes: self.raw_device_attributes.map(to_struct),
            triggered_by: list(self.triggered_by, |t| TriggeringRule {
                id: t.id,
                name: t.name,
                description: t.description,
            }),
            labels: list(self.labels, |l| Label {
                label: l.label,
                prediction: l.prediction,
                ml_score: l.ml_score,
            }),
            ..Event::default()
        };
        if let Some(raw) = self.bot {
            set_bot(&mut e, raw);
        }
        e
    }
}

impl TSdk {
    fn convert(self) -> Sdk {
        Sdk {
            platform: self.platform,
            version: self.version,
            integrations: list(self.integrations, TIntegration::convert),
        }
    }
}

impl TIntegration {
    fn convert(self) -> Integration {
        Integration {
            name: self.name,
            version: self.version,
            subintegration: self.subintegration.map(|s| Box::new(s.convert())),
        }
    }
}

impl TIdentification {
    fn convert(self) -> Identification {
        Identification {
            visitor_id: self.visitor_id.unwrap_or_default(),
            visitor_found: self.visitor_found,
            confidence: self.confidence.map(|c| Confidence {
                score: c.score,
                version: c.version,
                comment: c.comment,
            }),
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
        }
    }
}

impl TIpDetails {
    fn convert(self) -> IpDetails {
        IpDetails {
            address: self.address,
            geolocation: self.geolocation.map(|g| Geolocation {
                accuracy_radius: g.accuracy_radius,
                latitude: g.latitude,
                longitude: g.longitude,
                postal_code: g.postal_code,
                timezone: g.timezone,
                city_name: g.city_name,
                country_code: g.country_code,
                country_name: g.country_name,
                continent_code: g.continent_code,
                continent_name: g.continent_name,
                subdivisions: list(g.subdivisions, |s| Subdivision {
                    iso_code: s.iso_code,
                    name: s.name,
                }),
            }),
            asn: self.asn,
            asn_name: self.asn_name,
            asn_network: self.asn_network,
            asn_type: self.asn_type,
            datacenter_result: self.datacenter_result,
            datacenter_name: self.datacenter_name,
        }
    }
}

impl TCounts {
    fn convert(self) -> VelocityCounts {
        VelocityCounts {
            five_minutes: self.five_minutes,
            one_hour: self.one_hour,
            twenty_four_hours: self.twenty_four_hours,
        }
    }
}
