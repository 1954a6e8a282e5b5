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

mod tables;

use self::tables::{EVENT, IDENTIFICATION, Keep, Kind, Member, Table};
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
            in_identification: false,
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

/// The buffer the event is written into, and the identities kept on the way.
struct Writer {
    buf: Vec<u8>,
    event_id: String,
    visitor_id: Option<String>,
    /// Reading the event's `identification`, whose visitor tags the answer.
    in_identification: bool,
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
            Kind::Message(table) => d.deserialize_option(Present(Nested {
                field,
                table,
                w,
                identification: false,
            })),
            Kind::Identification => d.deserialize_option(Present(Nested {
                field,
                table: &IDENTIFICATION,
                w,
                identification: true,
            })),
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
                    Keep::Visitor if self.w.in_identification => {
                        self.w.visitor_id = Some(v.to_owned());
                    }
                    Keep::Visitor => {}
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
    /// The event's `identification`: present, it tags the answer by its visitor, even
    /// with no id.
    identification: bool,
}

impl<'de> Read<'de> for Nested<'_> {
    fn read<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let Nested {
            field,
            table,
            w,
            identification,
        } = self;
        if identification {
            w.visitor_id = Some(String::new());
            w.in_identification = true;
        }
        let start = w.open(field);
        d.deserialize_map(Fields { table, w: &mut *w })?;
        w.close(start);
        if identification {
            w.in_identification = false;
        }
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
            identification: false,
        }
        .read(d)
    }
}
