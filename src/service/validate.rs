//! Request validation at the RPC edge: every field is checked before any upstream call.

use prost_types::Timestamp;

use crate::cidr::{Cidr, CidrError};
use crate::error::{Error, quote};

/// Longest id accepted (event, visitor, telemetry and ruleset ids).
pub const MAX_ID_BYTES: usize = 256;
/// Longest free-text filter accepted (URLs, linked ids, cursors).
pub const MAX_TEXT_BYTES: usize = 2048;
/// Most values accepted in one repeated filter.
pub const MAX_LIST_LEN: usize = 32;
/// Longest word of an open vocabulary accepted (`bot`, `sdk_platform`, ...).
pub const MAX_WORD_BYTES: usize = 64;

/// A required id that will travel as a URL path segment or JSON value.
pub fn id(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    optional_id(field, value)
}

/// An id that may be empty (meaning "not set"): visible ASCII only, since no
/// fingerprint.com or Stytch id has anything else, and nothing that changes a URL.
pub fn optional_id(field: &'static str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    // URL libraries drop "." and ".." path segments: such an id would reach another endpoint.
    if value == "." || value == ".." {
        return Err(Error::invalid(field, format!("{value:?} is not an id")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | '?' | '#' | '%' | '\\'))
    {
        return Err(Error::invalid(
            field,
            format!(
                "{} contains the character {c:?}, which no id has (ids are visible ASCII without / ? # % \\)",
                quote(value),
            ),
        ));
    }
    Ok(())
}

/// Free text (may be empty): bounded, no control characters. It only ever travels in
/// a query string or a JSON body, so any other Unicode is fine.
pub fn text(field: &'static str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A word of an open upstream vocabulary (empty means "not set"): any visible ASCII up
/// to [`MAX_WORD_BYTES`], so a word the upstream adds later works before the gateway
/// knows it. The upstream judges the word itself.
pub fn word(field: &'static str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_WORD_BYTES {
        return Err(Error::invalid(
            field,
            format!("{} is longer than {MAX_WORD_BYTES} bytes", quote(value)),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!("{} is not a word (visible ASCII, no spaces)", quote(value)),
        ));
    }
    Ok(())
}

/// A repeated filter of open-vocabulary words.
pub fn words(field: &'static str, values: &[String]) -> Result<(), Error> {
    each(field, values, word)
}

/// A repeated filter of short free-text values (bot names, environments).
pub fn tokens(field: &'static str, values: &[String]) -> Result<(), Error> {
    each(field, values, |field, v| {
        text(field, v)?;
        if v.len() > MAX_ID_BYTES {
            return Err(Error::invalid(
                field,
                format!("has a value longer than {MAX_ID_BYTES} bytes"),
            ));
        }
        Ok(())
    })
}

/// A bounded list of non-empty values, each checked by `check`.
fn each(
    field: &'static str,
    values: &[String],
    check: impl Fn(&'static str, &str) -> Result<(), Error>,
) -> Result<(), Error> {
    if values.len() > MAX_LIST_LEN {
        return Err(Error::invalid(
            field,
            format!("has more than {MAX_LIST_LEN} values"),
        ));
    }
    for v in values {
        if v.is_empty() {
            return Err(Error::invalid(field, "contains an empty value"));
        }
        check(field, v)?;
    }
    Ok(())
}

/// A timestamp a caller sent: normalised nanos, within years 1970..=9999.
pub fn timestamp(field: &'static str, value: Option<&Timestamp>) -> Result<(), Error> {
    let Some(ts) = value else { return Ok(()) };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Error::invalid(field, "nanos must be within 0..1e9"));
    }
    if !(0..=253_402_300_799).contains(&ts.seconds) {
        return Err(Error::invalid(field, "must be between 1970 and 9999"));
    }
    Ok(())
}

/// `start` must not be after `end` (fields named by the caller, e.g. `filter.start`).
pub fn window(
    fields: (&'static str, &'static str),
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
) -> Result<(), Error> {
    timestamp(fields.0, start)?;
    timestamp(fields.1, end)?;
    if let (Some(s), Some(e)) = (start, end)
        && (s.seconds, s.nanos) > (e.seconds, e.nanos)
    {
        return Err(Error::invalid(fields.0, format!("is after {}", fields.1)));
    }
    Ok(())
}

/// An IP address or CIDR range (empty means "not set").
pub fn ip_or_cidr(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Ok(());
    }
    match Cidr::parse(value) {
        Ok(_) => Ok(()),
        Err(CidrError::Address) => Err(Error::invalid(
            field,
            format!("{} is not an IP address or CIDR range", quote(value)),
        )),
        Err(CidrError::Prefix { max }) => Err(Error::invalid(
            field,
            format!("{} has a prefix outside 0..={max}", quote(value)),
        )),
    }
}

/// A decimal number such as an ASN (empty means "not set").
pub fn digits(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() || (value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit())) {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!("{} is not a number", quote(value)),
    ))
}

/// Stytch's external metadata rule: at most 65 of `A-Z a-z 0-9 _ - + . @`.
pub fn metadata(field: &'static str, value: Option<&String>) -> Result<(), Error> {
    let Some(v) = value else { return Ok(()) };
    if v.is_empty() || v.chars().count() > 65 {
        return Err(Error::invalid(field, "must be 1 to 65 characters"));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '@')))
    {
        return Err(Error::invalid(
            field,
            format!("contains {c:?}; only letters, digits and _ - + . @ are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_rejected() {
        for bad in [
            "", ".", "..", "a/b", "a?b", "a#b", "a%2Fb", "a b", "a\nb", "a\u{0}b", "..\\x",
        ] {
            assert!(id("event_id", bad).is_err(), "{bad:?}");
        }
        assert!(id("event_id", &"x".repeat(257)).is_err());
        assert!(id("event_id", "1708102555327.NLOjmg").is_ok());
    }

    #[test]
    fn ids_are_visible_ascii() {
        for bad in ["a\u{202E}b", "a\u{200B}b", "a\u{FF0F}b", "é"] {
            assert!(id("event_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_are_open_but_sane() {
        assert!(word("filter.bot", "a_new_kind").is_ok());
        assert!(word("filter.rare_device_percentile_bucket", "<p95").is_ok());
        assert!(word("filter.bot", "two words").is_err());
        assert!(word("filter.bot", &"x".repeat(65)).is_err());
        assert!(words("filter.source", &[String::new()]).is_err());
    }

    #[test]
    fn messages_quote_a_bounded_prefix() {
        let long = "a/".repeat(5000);
        let err = id("event_id", &long[..200]).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        let err = ip_or_cidr("ip_address", &"z".repeat(10_000))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn cidr() {
        assert!(ip_or_cidr("ip_address", "10.0.0.0/24").is_ok());
        assert!(ip_or_cidr("ip_address", "2001:db8::/129").is_err());
        assert!(ip_or_cidr("ip_address", "nope").is_err());
    }
}
