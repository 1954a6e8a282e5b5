//! The wire reader's tables: for each message of a v4 event, each member's name, field
//! number and kind, following `proto/fingerprint/gateway/v1/event.proto`.

use Kind::{Flag, Messages, Millis, Object, Real, Text, Whole};

/// How a member's value is read, and the field it becomes.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// `optional string`: written when not null, even empty.
    Text,
    /// `string` (no presence): written when not empty, and kept for the cache's tags.
    Id(Keep),
    /// `optional bool`.
    Flag,
    /// `optional double`.
    Real,
    /// `optional int64`.
    Whole,
    /// Unix milliseconds into a `Timestamp`.
    Millis,
    /// As `Millis`, with 0 meaning "never" (no field).
    MillisNonzero,
    /// A JSON object into a `google.protobuf.Struct`.
    Object,
    /// A nested message.
    Message(&'static Table),
    /// The event's `identification` (an [`IDENTIFICATION`]): its visitor, even with no
    /// id, tags the answer.
    Identification,
    /// A repeated nested message (null or an array).
    Messages(&'static Table),
    /// `bot`: the `BotResult` enum (field `field`) and `bot_raw` (field `field + 1`).
    Bot,
}

/// Which of the event's identities a member is.
#[derive(Clone, Copy)]
pub(super) enum Keep {
    Event,
    /// Kept only within the event's `identification`, not within
    /// `supplementary_id_high_recall`, which has the same shape.
    Visitor,
}

#[derive(Clone, Copy)]
pub(super) struct Member {
    pub(super) field: u32,
    pub(super) kind: Kind,
}

/// A message's members.
pub(super) struct Table {
    /// The member of that name (a `match`: a switch on the length, then one compare).
    pub(super) find: fn(&str) -> Option<Member>,
}

/// A message's table: each member's name, field number and kind. Field numbers stay
/// under 128, so one `u128` tells the members already seen.
macro_rules! table {
    ($name:ident; $($key:literal => $field:literal, $kind:expr;)*) => {
        pub(super) static $name: Table = Table {
            find: |name| match name {
                $($key => Some(Member { field: $field, kind: $kind }),)*
                _ => None,
            },
        };
        $(const _: () = assert!($field < 128);)*
    };
}

table! {
    EVENT;
    "active_call" => 30, Flag;
    "bot" => 31, Kind::Bot;
    "bot_info" => 34, Kind::Message(&BOT_INFO);
    "bot_type" => 33, Text;
    "browser_details" => 22, Kind::Message(&BROWSER_DETAILS);
    "bundle_id" => 14, Text;
    "client_referrer" => 21, Text;
    "cloned_app" => 35, Flag;
    "developer_tools" => 36, Flag;
    "device" => 18, Text;
    "emulator" => 37, Flag;
    "environment_id" => 6, Text;
    "event_id" => 1, Kind::Id(Keep::Event);
    "factory_reset_timestamp" => 38, Kind::MillisNonzero;
    "frida" => 39, Flag;
    "high_activity_device" => 68, Flag;
    "identification" => 10, Kind::Identification;
    "incognito" => 46, Flag;
    "incremental_identification_status" => 4, Text;
    "ip_address" => 16, Text;
    "ip_blocklist" => 40, Kind::Message(&IP_BLOCKLIST);
    "ip_info" => 41, Kind::Message(&IP_INFO);
    "jailbroken" => 47, Flag;
    "labels" => 72, Messages(&LABEL);
    "linked_id" => 5, Text;
    "location_spoofing" => 48, Flag;
    "mitm_attack" => 49, Flag;
    "os" => 19, Text;
    "os_version" => 20, Text;
    "package_name" => 15, Text;
    "privacy_settings" => 50, Flag;
    "proximity" => 23, Kind::Message(&PROXIMITY);
    "proxy" => 42, Flag;
    "proxy_confidence" => 43, Text;
    "proxy_details" => 44, Kind::Message(&PROXY_DETAILS);
    "proxy_ml_score" => 45, Real;
    "rare_device" => 69, Flag;
    "rare_device_percentile_bucket" => 70, Text;
    "raw_device_attributes" => 71, Object;
    "replayed" => 9, Flag;
    "root_apps" => 51, Flag;
    "rule_action" => 52, Object;
    "sdk" => 8, Kind::Message(&SDK);
    "simulator" => 53, Flag;
    "source" => 3, Text;
    "supplementary_id_high_recall" => 11, Kind::Message(&IDENTIFICATION);
    "suspect" => 7, Flag;
    "suspect_score" => 54, Whole;
    "tags" => 12, Object;
    "tampering" => 55, Flag;
    "tampering_confidence" => 56, Text;
    "tampering_details" => 58, Kind::Message(&TAMPERING_DETAILS);
    "tampering_ml_score" => 57, Real;
    "timestamp" => 2, Millis;
    "triggered_by" => 73, Messages(&TRIGGERING_RULE);
    "url" => 13, Text;
    "user_agent" => 17, Text;
    "velocity" => 59, Kind::Message(&VELOCITY);
    "virtual_machine" => 60, Flag;
    "virtual_machine_ml_score" => 61, Real;
    "vpn" => 62, Flag;
    "vpn_confidence" => 63, Text;
    "vpn_methods" => 67, Kind::Message(&VPN_METHODS);
    "vpn_ml_score" => 64, Real;
    "vpn_origin_country" => 66, Text;
    "vpn_origin_timezone" => 65, Text;
}

table! {
    SDK;
    "integrations" => 3, Messages(&INTEGRATION);
    "platform" => 1, Text;
    "version" => 2, Text;
}

table! {
    INTEGRATION;
    "name" => 1, Text;
    "subintegration" => 3, Kind::Message(&INTEGRATION);
    "version" => 2, Text;
}

table! {
    IDENTIFICATION;
    "confidence" => 3, Kind::Message(&CONFIDENCE);
    "first_seen_at" => 4, Millis;
    "last_seen_at" => 5, Millis;
    "visitor_found" => 2, Flag;
    "visitor_id" => 1, Kind::Id(Keep::Visitor);
}

table! {
    CONFIDENCE;
    "comment" => 3, Text;
    "score" => 1, Real;
    "version" => 2, Text;
}

table! {
    BROWSER_DETAILS;
    "browser_full_version" => 3, Text;
    "browser_major_version" => 2, Text;
    "browser_name" => 1, Text;
    "device" => 6, Text;
    "os" => 4, Text;
    "os_version" => 5, Text;
}

table! {
    PROXIMITY;
    "confidence" => 3, Real;
    "id" => 1, Text;
    "precision_radius" => 2, Whole;
}

table! {
    BOT_INFO;
    "category" => 1, Text;
    "confidence" => 6, Text;
    "identity" => 5, Text;
    "name" => 4, Text;
    "provider" => 2, Text;
    "provider_url" => 3, Text;
}

table! {
    IP_BLOCKLIST;
    "attack_source" => 2, Flag;
    "email_spam" => 1, Flag;
    "tor_node" => 3, Flag;
}

table! {
    IP_INFO;
    "v4" => 1, Kind::Message(&IP_DETAILS);
    "v6" => 2, Kind::Message(&IP_DETAILS);
}

table! {
    IP_DETAILS;
    "address" => 1, Text;
    "asn" => 3, Text;
    "asn_name" => 4, Text;
    "asn_network" => 5, Text;
    "asn_type" => 6, Text;
    "datacenter_name" => 8, Text;
    "datacenter_result" => 7, Flag;
    "geolocation" => 2, Kind::Message(&GEOLOCATION);
}

table! {
    GEOLOCATION;
    "accuracy_radius" => 1, Whole;
    "city_name" => 6, Text;
    "continent_code" => 9, Text;
    "continent_name" => 10, Text;
    "country_code" => 7, Text;
    "country_name" => 8, Text;
    "latitude" => 2, Real;
    "longitude" => 3, Real;
    "postal_code" => 4, Text;
    "subdivisions" => 11, Messages(&SUBDIVISION);
    "timezone" => 5, Text;
}

table! {
    SUBDIVISION;
    "iso_code" => 1, Text;
    "name" => 2, Text;
}

table! {
    PROXY_DETAILS;
    "last_seen_at" => 2, Millis;
    "provider" => 3, Text;
    "proxy_type" => 1, Text;
}

table! {
    TAMPERING_DETAILS;
    "anomaly_score" => 1, Real;
    "anti_detect_browser" => 2, Flag;
}

table! {
    VELOCITY;
    "distinct_country" => 3, Kind::Message(&COUNTS);
    "distinct_ip" => 1, Kind::Message(&COUNTS);
    "distinct_ip_by_linked_id" => 6, Kind::Message(&COUNTS);
    "distinct_linked_id" => 2, Kind::Message(&COUNTS);
    "distinct_visitor_id_by_linked_id" => 7, Kind::Message(&COUNTS);
    "events" => 4, Kind::Message(&COUNTS);
    "ip_events" => 5, Kind::Message(&COUNTS);
}

table! {
    COUNTS;
    "1_hour" => 2, Whole;
    "24_hours" => 3, Whole;
    "5_minutes" => 1, Whole;
}

table! {
    VPN_METHODS;
    "auxiliary_mobile" => 3, Flag;
    "ml_prediction" => 6, Flag;
    "os_mismatch" => 4, Flag;
    "public_vpn" => 2, Flag;
    "relay" => 5, Flag;
    "timezone_mismatch" => 1, Flag;
}

table! {
    LABEL;
    "label" => 1, Text;
    "ml_score" => 3, Real;
    "prediction" => 2, Flag;
}

table! {
    TRIGGERING_RULE;
    "description" => 3, Text;
    "id" => 1, Text;
    "name" => 2, Text;
}
