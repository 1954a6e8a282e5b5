//! A cursor over an upstream JSON object that hands out typed members and keeps
//! everything it could not hand out, so converters never drop data.

use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};
use serde_json::{Map, Value as Json};

/// An upstream JSON object being converted.
///
/// Each `take_*` removes a member. A member of the expected type is returned; a member
/// of another type (the upstream changed, or sent garbage) is kept for `unmapped`
/// rather than coerced, so no value is ever corrupted or lost. `null` counts as absent.
#[derive(Debug, Default)]
pub struct Obj {
    rest: Map<String, Json>,
    kept: Map<String, Json>,
}

// === impl Obj ===

impl Obj {
    /// Wraps a JSON object.
    pub fn new(map: Map<String, Json>) -> Self {
        Self {
            rest: map,
            kept: Map::new(),
        }
    }

    /// Wraps any JSON value; a non-object becomes an empty cursor that keeps nothing.
    pub fn from_value(value: Json) -> Option<Self> {
        match value {
            Json::Object(map) => Some(Self::new(map)),
            _ => None,
        }
    }

    /// Removes a member, treating `null` as absent.
    pub fn take(&mut self, key: &str) -> Option<Json> {
        match self.rest.remove(key) {
            None | Some(Json::Null) => None,
            Some(value) => Some(value),
        }
    }

    fn keep(&mut self, key: &str, value: Json) {
        self.kept.insert(key.to_owned(), value);
    }

    /// Puts a member back, to be reported as unmapped.
    pub fn put_back(&mut self, key: &str, value: Json) {
        self.keep(key, value);
    }

    /// Whether the member is present and not `null`.
    pub fn has(&self, key: &str) -> bool {
        self.rest.get(key).is_some_and(|v| !v.is_null())
    }

    /// A string member.
    pub fn str(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Json::String(s) => Some(s),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// A string member where the upstream uses `""` for "absent".
    pub fn str_nonempty(&mut self, key: &str) -> Option<String> {
        self.str(key).filter(|s| !s.is_empty())
    }

    /// A boolean member.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            Json::Bool(b) => Some(b),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// A number member, as a double.
    pub fn f64(&mut self, key: &str) -> Option<f64> {
        match self.take(key)? {
            Json::Number(n) if n.as_f64().is_some() => n.as_f64(),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// An integer member; a fraction or an out-of-range number is kept, not truncated.
    pub fn i64(&mut self, key: &str) -> Option<i64> {
        match self.take(key)? {
            Json::Number(n) if n.as_i64().is_some() => n.as_i64(),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// A string member that upstreams sometimes send as a number (ASNs).
    pub fn str_or_number(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Json::String(s) => Some(s),
            Json::Number(n) if n.is_u64() => Some(n.to_string()),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// A Unix-milliseconds member as a timestamp.
    pub fn millis(&mut self, key: &str) -> Option<Timestamp> {
        let value = self.take(key)?;
        match value.as_i64().and_then(millis_to_timestamp) {
            Some(ts) => Some(ts),
            None => {
                self.keep(key, value);
                None
            }
        }
    }

    /// A Unix-milliseconds member where `0` means "never": absent then.
    pub fn millis_nonzero(&mut self, key: &str) -> Option<Timestamp> {
        if self.rest.get(key).and_then(Json::as_i64) == Some(0) {
            self.rest.remove(key);
            return None;
        }
        self.millis(key)
    }

    /// An RFC 3339 member as a timestamp.
    pub fn rfc3339(&mut self, key: &str) -> Option<Timestamp> {
        let value = self.take(key)?;
        match value.as_str().and_then(parse_rfc3339) {
            Some(ts) => Some(ts),
            None => {
                self.keep(key, value);
                None
            }
        }
    }

    /// An object member, as free-form `Struct`.
    pub fn structure(&mut self, key: &str) -> Option<Struct> {
        match self.take(key)? {
            Json::Object(map) => Some(to_struct(map)),
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// An object member converted by `f`; what `f` leaves is kept under the same key.
    pub fn obj<T>(&mut self, key: &str, f: impl FnOnce(&mut Obj) -> T) -> Option<T> {
        match self.take(key)? {
            Json::Object(map) => {
                let mut child = Obj::new(map);
                let out = f(&mut child);
                let left = child.finish();
                if !left.is_empty() {
                    self.keep(key, Json::Object(left));
                }
                Some(out)
            }
            other => {
                self.keep(key, other);
                None
            }
        }
    }

    /// An array of objects, each converted by `f`; leftovers are kept as an array of the
    /// same length (`null` where an element was fully mapped).
    pub fn objs<T>(&mut self, key: &str, mut f: impl FnMut(&mut Obj) -> T) -> Vec<T> {
        let Some(value) = self.take(key) else {
            return Vec::new();
        };
        let Json::Array(items) = value else {
            self.keep(key, value);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        let mut left = Vec::with_capacity(items.len());
        let mut any_left = false;
        for item in items {
            match item {
                Json::Object(map) => {
                    let mut child = Obj::new(map);
                    out.push(f(&mut child));
                    let rest = child.finish();
                    if rest.is_empty() {
                        left.push(Json::Null);
                    } else {
                        any_left = true;
                        left.push(Json::Object(rest));
                    }
                }
                other => {
                    any_left = true;
                    left.push(other);
                }
            }
        }
        if any_left {
            self.keep(key, Json::Array(left));
        }
        out
    }

    /// An array of strings; non-string elements are kept.
    pub fn strs(&mut self, key: &str) -> Vec<String> {
        let Some(value) = self.take(key) else {
            return Vec::new();
        };
        let Json::Array(items) = value else {
            self.keep(key, value);
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut left = Vec::new();
        for item in items {
            match item {
                Json::String(s) => out.push(s),
                other => left.push(other),
            }
        }
        if !left.is_empty() {
            self.keep(key, Json::Array(left));
        }
        out
    }

    /// Drops a member that repeats `known` exactly; keeps it if it differs.
    pub fn drop_if_same(&mut self, key: &str, known: Option<&str>) {
        if let Some(value) = self.take(key)
            && (value.as_str() != known || known.is_none())
        {
            self.keep(key, value);
        }
    }

    /// Everything not handed out: unknown members and members of an unexpected type.
    pub fn finish(mut self) -> Map<String, Json> {
        let rest = std::mem::take(&mut self.rest);
        for (k, v) in rest {
            if !v.is_null() {
                self.kept.insert(k, v);
            }
        }
        self.kept
    }

    /// Everything not handed out, as a `Struct`; `None` when nothing is left.
    pub fn finish_struct(self) -> Option<Struct> {
        leftovers(self.finish())
    }
}

/// Unix milliseconds to a timestamp; `None` outside the range a timestamp can hold.
pub fn millis_to_timestamp(ms: i64) -> Option<Timestamp> {
    // google.protobuf.Timestamp covers 0001-01-01 to 9999-12-31.
    const MIN: i64 = -62_135_596_800_000;
    const MAX: i64 = 253_402_300_799_999;
    if !(MIN..=MAX).contains(&ms) {
        return None;
    }
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?,
    })
}

/// A timestamp to Unix milliseconds (sub-millisecond precision is dropped).
pub fn timestamp_to_millis(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// JSON object to `google.protobuf.Struct`.
/// Members left over (`unmapped`), as a `Struct`; `None` when there are none.
pub fn leftovers(map: Map<String, Json>) -> Option<Struct> {
    (!map.is_empty()).then(|| to_struct(map))
}

pub fn to_struct(map: Map<String, Json>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

/// JSON value to `google.protobuf.Value`.
pub fn to_value(value: Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// `google.protobuf.Struct` back to a JSON object (used by the sandbox and tests).
pub fn struct_to_json(s: &Struct) -> Map<String, Json> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

/// `google.protobuf.Value` back to JSON.
pub fn value_to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Json::Object(struct_to_json(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Obj {
        Obj::from_value(v).unwrap_or_default()
    }

    #[test]
    fn wrong_types_are_kept_not_coerced() {
        let mut o = obj(json!({"a": "1", "b": 1.5, "c": true, "d": null}));
        assert_eq!(o.i64("a"), None);
        assert_eq!(o.i64("b"), None);
        assert_eq!(o.bool("c"), Some(true));
        assert_eq!(o.str("d"), None);
        assert_eq!(Json::Object(o.finish()), json!({"a": "1", "b": 1.5}));
    }

    #[test]
    fn nested_leftovers_keep_their_path() {
        let mut o = obj(json!({"x": {"known": 1, "new": 2}, "l": [{"k": 1}, {"k": 2, "n": 3}]}));
        assert_eq!(o.obj("x", |c| c.i64("known")), Some(Some(1)));
        assert_eq!(o.objs("l", |c| c.i64("k")), vec![Some(1), Some(2)]);
        assert_eq!(
            Json::Object(o.finish()),
            json!({"x": {"new": 2}, "l": [null, {"n": 3}]})
        );
    }

    #[test]
    fn zero_millis_sentinel_is_absent() {
        let mut o = obj(json!({"t": 0, "u": 1708102555327_i64}));
        assert_eq!(o.millis_nonzero("t"), None);
        let ts = o.millis_nonzero("u").unwrap_or_default();
        assert_eq!(timestamp_to_millis(&ts), 1_708_102_555_327);
        assert!(o.finish().is_empty());
    }
}
