//! A v4 event of exactly the published shape, written straight from its JSON into the
//! protobuf encoding of [`Event`](crate::proto::v1::Event): what GetEvent answers.
//!
//! The typed reader ([`V4Event`](super::V4Event)) allocates a `String` per member, and a
//! miss then builds an `Event` from it, encodes it and drops both. Here one loop, driven
//! by a table per message (member name → field number and kind, following
//! `proto/fingerprint/gateway/v1/event.proto`), appends each member's field to one
//! buffer as it is read. It takes what the typed reader takes and refuses the rest (an
//! unknown member, a duplicate, a value of another type, a time out of range), which the
//! caller then reads the general way. `tests.rs`, `tests/conformance.rs` (the official
//! examples) and the `convert_v4` fuzz target check that what it writes decodes to the
//! very `Event` the general reader builds.

use std::fmt;

use bytes::Bytes;
use prost::encoding;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::Shape;
use crate::convert::{
    event::bot_of,
    json::{millis_to_timestamp, to_struct},
};

/// An encoded `Event`, and what the cache tags it by.
#[derive(Debug)]
pub struct EncodedEvent {
    /// The `Event`'s protobuf encoding.
    pub bytes: Bytes,
    /// `event_id` (empty when absent).
    pub event_id: String,
    /// `identification.visitor_id`, when the event has an `identification`.
    pub visitor_id: Option<String>,
}

impl Shape for EncodedEvent {
    fn read(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        let mut writer = Writer {
            buf: Vec::with_capacity(body.len() / 2),
            event_id: String::new(),
            visitor_id: None,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(Fields {
            table: &EVENT,
            w: &mut writer,
        })
        .ok()?;
        de.end().ok()?;
        Some(EncodedEvent {
            bytes: Bytes::from(writer.buf),
            event_id: writer.event_id,
            visitor_id: writer.visitor_id,
        })
    }
}

/// How a member's value is read, and the field it becomes.
#[derive(Clone, Copy)]
enum Kind {
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
    /// A repeated nested message (null or an array).
    Messages(&'static Table),
    /// `bot`: the `BotResult` enum (field `field`) and `bot_raw` (field `field + 1`).
    Bot,
}

/// Which of the event's identities a member is.
#[derive(Clone, Copy)]
enum Keep {
    Event,
    Visitor,
    /// An id that is not tagged (`supplementary_id_high_recall.visitor_id`).
    Nothing,
}

#[derive(Clone, Copy)]
struct Member {
    field: u32,
    kind: Kind,
}

/// A message's members.
struct Table {
    /// The member of that name (a `match`: a switch on the length, then one compare).
    find: fn(&str) -> Option<Member>,
    /// The event's `identification`: its presence tags the visitor, even with no id.
    tags_visitor: bool,
}

/// A message's table: each member's name, field number and kind. Field numbers stay
/// under 128, so one `u128` tells the members already seen.
macro_rules! table {
    ($name:ident, tags_visitor: $tags:expr; $($key:literal => $field:literal, $kind:expr;)*) => {
        static $name: Table = Table {
            find: |name| match name {
                $($key => Some(Member { field: $field, kind: $kind }),)*
                _ => None,
            },
            tags_visitor: $tags,
        };
        $(const _: () = assert!($field < 128);)*
    };
}

use Kind::{Flag, Messages, Millis, Object, Real, Text, Whole};

table! {
    EVENT, tags_visitor: false;
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
    "identification" => 10, Kind::Message(&IDENTIFICATION);
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
    "supplementary_id_high_recall" => 11, Kind::Message(&SUPPLEMENTARY_ID);
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
    SDK, tags_visitor: false;
    "integrations" => 3, Messages(&INTEGRATION);
    "platform" => 1, Text;
    "version" => 2, Text;
}

table! {
    INTEGRATION, tags_visitor: false;
    "name" => 1, Text;
    "subintegration" => 3, Kind::Message(&INTEGRATION);
    "version" => 2, Text;
}

table! {
    IDENTIFICATION, tags_visitor: true;
    "confidence" => 3, Kind::Message(&CONFIDENCE);
    "first_seen_at" => 4, Millis;
    "last_seen_at" => 5, Millis;
    "visitor_found" => 2, Flag;
    "visitor_id" => 1, Kind::Id(Keep::Visitor);
}

table! {
    SUPPLEMENTARY_ID, tags_visitor: false;
    "confidence" => 3, Kind::Message(&CONFIDENCE);
    "first_seen_at" => 4, Millis;
    "last_seen_at" => 5, Millis;
    "visitor_found" => 2, Flag;
    "visitor_id" => 1, Kind::Id(Keep::Nothing);
}

table! {
    CONFIDENCE, tags_visitor: false;
    "comment" => 3, Text;
    "score" => 1, Real;
    "version" => 2, Text;
}

table! {
    BROWSER_DETAILS, tags_visitor: false;
    "browser_full_version" => 3, Text;
    "browser_major_version" => 2, Text;
    "browser_name" => 1, Text;
    "device" => 6, Text;
    "os" => 4, Text;
    "os_version" => 5, Text;
}

table! {
    PROXIMITY, tags_visitor: false;
    "confidence" => 3, Real;
    "id" => 1, Text;
    "precision_radius" => 2, Whole;
}

table! {
    BOT_INFO, tags_visitor: false;
    "category" => 1, Text;
    "confidence" => 6, Text;
    "identity" => 5, Text;
    "name" => 4, Text;
    "provider" => 2, Text;
    "provider_url" => 3, Text;
}

table! {
    IP_BLOCKLIST, tags_visitor: false;
    "attack_source" => 2, Flag;
    "email_spam" => 1, Flag;
    "tor_node" => 3, Flag;
}

table! {
    IP_INFO, tags_visitor: false;
    "v4" => 1, Kind::Message(&IP_DETAILS);
    "v6" => 2, Kind::Message(&IP_DETAILS);
}

table! {
    IP_DETAILS, tags_visitor: false;
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
    GEOLOCATION, tags_visitor: false;
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
    SUBDIVISION, tags_visitor: false;
    "iso_code" => 1, Text;
    "name" => 2, Text;
}

table! {
    PROXY_DETAILS, tags_visitor: false;
    "last_seen_at" => 2, Millis;
    "provider" => 3, Text;
    "proxy_type" => 1, Text;
}

table! {
    TAMPERING_DETAILS, tags_visitor: false;
    "anomaly_score" => 1, Real;
    "anti_detect_browser" => 2, Flag;
}

table! {
    VELOCITY, tags_visitor: false;
    "distinct_country" => 3, Kind::Message(&COUNTS);
    "distinct_ip" => 1, Kind::Message(&COUNTS);
    "distinct_ip_by_linked_id" => 6, Kind::Message(&COUNTS);
    "distinct_linked_id" => 2, Kind::Message(&COUNTS);
    "distinct_visitor_id_by_linked_id" => 7, Kind::Message(&COUNTS);
    "events" => 4, Kind::Message(&COUNTS);
    "ip_events" => 5, Kind::Message(&COUNTS);
}

table! {
    COUNTS, tags_visitor: false;
    "1_hour" => 2, Whole;
    "24_hours" => 3, Whole;
    "5_minutes" => 1, Whole;
}

table! {
    VPN_METHODS, tags_visitor: false;
    "auxiliary_mobile" => 3, Flag;
    "ml_prediction" => 6, Flag;
    "os_mismatch" => 4, Flag;
    "public_vpn" => 2, Flag;
    "relay" => 5, Flag;
    "timezone_mismatch" => 1, Flag;
}

table! {
    LABEL, tags_visitor: false;
    "label" => 1, Text;
    "ml_score" => 3, Real;
    "prediction" => 2, Flag;
}

table! {
    TRIGGERING_RULE, tags_visitor: false;
    "description" => 3, Text;
    "id" => 1, Text;
    "name" => 2, Text;
}

/// The buffer the event is written into, and the identities kept on the way.
struct Writer {
    buf: Vec<u8>,
    event_id: String,
    visitor_id: Option<String>,
}

impl Writer {
    fn string(&mut self, field: u32, value: &str) {
        encoding::encode_key(field, encoding::WireType::LengthDelimited, &mut self.buf);
        encoding::encode_varint(value.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// Opens an embedded message: its key, then one byte kept for its length.
    fn open(&mut self, field: u32) -> usize {
        encoding::encode_key(field, encoding::WireType::LengthDelimited, &mut self.buf);
        self.buf.push(0);
        self.buf.len()
    }

    /// Closes the message opened at `start`, widening its length when it needs more
    /// than the one byte kept.
    fn close(&mut self, start: usize) {
        let len = self.buf.len() - start;
        if len < 0x80 {
            // Lossless: checked just above.
            self.buf[start - 1] = len as u8;
        } else {
            let mut prefix = [0u8; 10];
            let n = encoding::encoded_len_varint(len as u64);
            encoding::encode_varint(len as u64, &mut &mut prefix[..]);
            self.buf
                .splice(start - 1..start, prefix[..n].iter().copied());
        }
    }
}

/// The members of one message, read from a JSON object.
struct Fields<'w> {
    table: &'static Table,
    w: &'w mut Writer,
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of the published shape")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.table.tags_visitor {
            self.w.visitor_id = Some(String::new());
        }
        let mut seen: u128 = 0;
        while let Some(member) = map.next_key_seed(Name(self.table))? {
            let bit = 1u128 << member.field;
            if seen & bit != 0 {
                return Err(de::Error::custom("duplicate member"));
            }
            seen |= bit;
            map.next_value_seed(Value {
                member,
                w: &mut *self.w,
            })?;
        }
        Ok(())
    }
}

/// A member's name, found in its table (refused when unknown).
struct Name(&'static Table);

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Member;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Name {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        (self.0.find)(name).ok_or_else(|| E::custom("unknown member"))
    }
}

/// One member's value, appended as its field.
struct Value<'w> {
    member: Member,
    w: &'w mut Writer,
}

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        use serde::Deserialize;
        let Value { member, w } = self;
        let field = member.field;
        match member.kind {
            Kind::Text => d.deserialize_option(Present(Str {
                field,
                keep: None,
                w,
            })),
            Kind::Id(keep) => d.deserialize_option(Present(Str {
                field,
                keep: Some(keep),
                w,
            })),
            Kind::Flag => {
                if let Some(v) = Option::<bool>::deserialize(d)? {
                    encoding::bool::encode(field, &v, &mut w.buf);
                }
                Ok(())
            }
            Kind::Real => {
                if let Some(v) = Option::<f64>::deserialize(d)? {
                    encoding::double::encode(field, &v, &mut w.buf);
                }
                Ok(())
            }
            Kind::Whole => {
                if let Some(v) = Option::<i64>::deserialize(d)? {
                    encoding::int64::encode(field, &v, &mut w.buf);
                }
                Ok(())
            }
            Kind::Millis | Kind::MillisNonzero => {
                let nonzero = matches!(member.kind, Kind::MillisNonzero);
                match Option::<i64>::deserialize(d)? {
                    None => {}
                    Some(0) if nonzero => {}
                    Some(ms) => {
                        let at = millis_to_timestamp(ms)
                            .ok_or_else(|| de::Error::custom("time out of range"))?;
                        encoding::message::encode(field, &at, &mut w.buf);
                    }
                }
                Ok(())
            }
            Kind::Object => {
                if let Some(map) = Option::<Map<String, Json>>::deserialize(d)? {
                    encoding::message::encode(field, &to_struct(map), &mut w.buf);
                }
                Ok(())
            }
            Kind::Message(table) => d.deserialize_option(Present(Nested { field, table, w })),
            Kind::Messages(table) => d.deserialize_option(Present(List { field, table, w })),
            Kind::Bot => {
                if let Some(raw) = Option::<String>::deserialize(d)? {
                    let (bot, raw) = bot_of(raw);
                    let bot = bot as i32;
                    if bot != 0 {
                        encoding::int32::encode(field, &bot, &mut w.buf);
                    }
                    if !raw.is_empty() {
                        w.string(field + 1, &raw);
                    }
                }
                Ok(())
            }
        }
    }
}

/// Reads `null` as nothing written, and anything else with the inner reader.
struct Present<R>(R);

impl<'de, R: Read<'de>> Visitor<'de> for Present<R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a value of the published type")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.read(d)
    }
}

/// What reads a present (not null) value.
trait Read<'de> {
    fn read<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error>;
}

/// A string member.
struct Str<'w> {
    field: u32,
    /// `Some` for a `string` with no presence (written only when not empty).
    keep: Option<Keep>,
    w: &'w mut Writer,
}

impl<'de> Read<'de> for Str<'_> {
    fn read<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Str<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.keep {
            None => self.w.string(self.field, v),
            Some(keep) => {
                if !v.is_empty() {
                    self.w.string(self.field, v);
                }
                match keep {
                    Keep::Event => v.clone_into(&mut self.w.event_id),
                    Keep::Visitor => self.w.visitor_id = Some(v.to_owned()),
                    Keep::Nothing => {}
                }
            }
        }
        Ok(())
    }
}

/// An embedded message.
struct Nested<'w> {
    field: u32,
    table: &'static Table,
    w: &'w mut Writer,
}

impl<'de> Read<'de> for Nested<'_> {
    fn read<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let start = self.w.open(self.field);
        d.deserialize_map(Fields {
            table: self.table,
            w: &mut *self.w,
        })?;
        self.w.close(start);
        Ok(())
    }
}

/// A repeated embedded message: an array of objects.
struct List<'w> {
    field: u32,
    table: &'static Table,
    w: &'w mut Writer,
}

impl<'de> Read<'de> for List<'_> {
    fn read<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Element {
                field: self.field,
                table: self.table,
                w: &mut *self.w,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One element of a repeated message (never null).
struct Element<'w> {
    field: u32,
    table: &'static Table,
    w: &'w mut Writer,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Nested {
            field: self.field,
            table: self.table,
            w: self.w,
        }
        .read(d)
    }
}
