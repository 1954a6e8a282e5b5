//! Paging: page sizes, and page tokens that wrap the upstream's key or cursor.
//!
//! A token is opaque to callers. Inside it is a format version, the RPC, a digest that
//! binds it to the upstream account, generation and the request's other fields, and
//! the upstream's own key. A token used with another RPC, account, generation or
//! filter is refused as INVALID_ARGUMENT instead of being sent upstream, where it would
//! mean something else or nothing.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::rpc::Rpc;

/// Format version of page tokens.
const VERSION: u8 = 1;
/// Bytes before the upstream key: version, RPC, binding digest.
const HEADER_LEN: usize = 2 + DIGEST_LEN;
const DIGEST_LEN: usize = 8;
/// Longest page token accepted.
pub const MAX_TOKEN_CHARS: usize = 4096;

/// What a page token is bound to: one RPC, and one request (without its paging fields)
/// to one upstream account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    rpc: Rpc,
    digest: [u8; DIGEST_LEN],
}

/// The page size to use: `0` is the RPC's default, a size above `max` is lowered to it,
/// a negative size is refused.
pub fn size(field: &'static str, requested: i32, default: u32, max: u32) -> Result<u32, Error> {
    match u32::try_from(requested) {
        Err(_) => Err(Error::invalid(
            field,
            format!("{requested} is negative; use 0 for the default ({default})"),
        )),
        Ok(0) => Ok(default),
        Ok(n) => Ok(n.min(max)),
    }
}

// === impl Binding ===

impl Binding {
    /// The binding of `request` (with its paging fields cleared by the caller) to `rpc`
    /// on the upstream account known as `identity`.
    pub fn new(rpc: Rpc, identity: &str, request: &impl prost::Message) -> Self {
        let mut hash = Sha256::new();
        hash.update([VERSION, rpc_byte(rpc)]);
        hash.update(identity.as_bytes());
        hash.update([0]);
        hash.update(request.encode_to_vec());
        let full = hash.finalize();
        let mut digest = [0; DIGEST_LEN];
        digest.copy_from_slice(&full[..DIGEST_LEN]);
        Self { rpc, digest }
    }

    /// The token for the upstream's `key`; empty when there is no next page.
    pub fn wrap(&self, key: &str) -> String {
        if key.is_empty() {
            return String::new();
        }
        let mut bytes = Vec::with_capacity(HEADER_LEN + key.len());
        bytes.push(VERSION);
        bytes.push(rpc_byte(self.rpc));
        bytes.extend_from_slice(&self.digest);
        bytes.extend_from_slice(key.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The upstream key inside `token` (empty for the first page), if the token was
    /// issued for this binding.
    pub fn unwrap(&self, field: &'static str, token: &str) -> Result<String, Error> {
        if token.is_empty() {
            return Ok(String::new());
        }
        let not_ours = || {
            Error::invalid(
                field,
                "is not a page token of this gateway: pass a next_page_token exactly as received",
            )
        };
        if token.len() > MAX_TOKEN_CHARS {
            return Err(not_ours());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| not_ours())?;
        if bytes.len() <= HEADER_LEN || bytes[0] != VERSION {
            return Err(not_ours());
        }
        if bytes[1] != rpc_byte(self.rpc) {
            return Err(Error::invalid(
                field,
                format!("is a page token of another RPC, not of {}", self.rpc.name()),
            ));
        }
        if bytes[2..HEADER_LEN] != self.digest {
            return Err(Error::invalid(
                field,
                "was issued for another request: the filters, the upstream account or the API generation differ",
            ));
        }
        String::from_utf8(bytes[HEADER_LEN..].to_vec()).map_err(|_| not_ours())
    }
}

fn rpc_byte(rpc: Rpc) -> u8 {
    // Rpc::ALL has 15 members: the index always fits.
    u8::try_from(rpc.index()).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::GetVisitsRequest;

    fn visits(visitor: &str) -> GetVisitsRequest {
        GetVisitsRequest {
            visitor_id: visitor.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_bindings() {
        let b = Binding::new(Rpc::GetVisits, "v4|acct", &visits("a"));
        let token = b.wrap("upstream-key_1");
        assert!(!token.contains("upstream"), "opaque: {token}");
        assert_eq!(b.unwrap("page_token", &token).unwrap(), "upstream-key_1");
        assert_eq!(b.unwrap("page_token", "").unwrap(), "");
        assert_eq!(b.wrap(""), "");
        for other in [
            Binding::new(Rpc::SearchEvents, "v4|acct", &visits("a")),
            Binding::new(Rpc::GetVisits, "v3|acct", &visits("a")),
            Binding::new(Rpc::GetVisits, "v4|other", &visits("a")),
            Binding::new(Rpc::GetVisits, "v4|acct", &visits("b")),
        ] {
            assert!(other.unwrap("page_token", &token).is_err());
        }
        for junk in ["x", "%%%", "AAAAAAAAAAAAAAAA", &"A".repeat(5000)] {
            assert!(b.unwrap("page_token", junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(size("page_size", 0, 10, 100).unwrap(), 10);
        assert_eq!(size("page_size", 7, 10, 100).unwrap(), 7);
        assert_eq!(size("page_size", 1000, 10, 100).unwrap(), 100);
        assert!(size("page_size", -1, 10, 100).is_err());
    }
}
