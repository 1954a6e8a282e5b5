//! `GetEventResponse` as the server sends it.
//!
//! The generated `GetEventResponse` holds a built `Event`. This one may hold the event
//! already encoded instead (by the wire reader in `convert::typed`): field 1 carries an
//! embedded message as length-delimited bytes, so both encode to the same bytes and a
//! caller's stub cannot tell them apart. Only the server uses this type (`build.rs`
//! maps GetEvent's answer to it); clients and reflection keep the generated one.

use bytes::{Buf, BufMut, Bytes};
use prost::{
    DecodeError, Message,
    encoding::{self, DecodeContext, WireType},
};

use super::v1::Event;

/// The answer of `GetEvent`.
#[derive(Clone, Debug, PartialEq)]
pub enum GetEventResponse {
    /// A built event, or none.
    Event(Option<Box<Event>>),
    /// An `Event`, encoded.
    Encoded(Bytes),
}

impl Default for GetEventResponse {
    fn default() -> Self {
        Self::Event(None)
    }
}

impl Message for GetEventResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Self::Event(Some(event)) => encoding::message::encode(1, &**event, buf),
            Self::Event(None) => {}
            Self::Encoded(bytes) => encoding::bytes::encode(1, bytes, buf),
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != 1 {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut event = match std::mem::take(self) {
            Self::Event(event) => event.unwrap_or_default(),
            Self::Encoded(bytes) => Box::new(Event::decode(bytes)?),
        };
        encoding::message::merge(wire_type, &mut *event, buf, ctx)?;
        *self = Self::Event(Some(event));
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Event(Some(event)) => encoding::message::encoded_len(1, &**event),
            Self::Event(None) => 0,
            Self::Encoded(bytes) => encoding::bytes::encoded_len(1, bytes),
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}
