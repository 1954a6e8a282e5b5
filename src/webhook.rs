//! Webhook signatures: `fpjs-event-signature: v1=<hex>[,v1=<hex>…]`, where each hex
//! value is HMAC-SHA256 of the raw body under one of the workspace's secrets.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// Longest header accepted (a handful of entries).
pub const MAX_HEADER_BYTES: usize = 4096;

/// Whether any `v1` entry of `header` signs `body` under any of `secrets`.
///
/// Comparison is constant-time (`Mac::verify_slice`). Entries of other versions, or
/// that are not hex of the right length, never match.
pub fn verify(header: &str, body: &[u8], secrets: &[Secret]) -> bool {
    let signatures: Vec<[u8; 32]> = header
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("v1="))
        .filter_map(decode_hex)
        .collect();
    let mut valid = false;
    for secret in secrets.iter().filter(|s| !s.expose().is_empty()) {
        let Ok(mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            continue;
        };
        let mac = mac.chain_update(body);
        for sig in &signatures {
            // Check every pair without stopping early, so timing says nothing either.
            valid |= mac.clone().verify_slice(sig).is_ok();
        }
    }
    valid
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_entries_and_secrets() {
        let secrets = [Secret::new("old"), Secret::new("secret")];
        let good = "v1=1b2c16b75bd2a870c114153ccda5bcfca63314bc722fa160d690de133ccbb9db";
        assert!(verify(good, b"data", &secrets));
        assert!(verify(&format!("v1=00, {good}"), b"data", &secrets));
        assert!(!verify(good, b"data!", &secrets));
        assert!(!verify(&good.replace("v1=", "v2="), b"data", &secrets));
        assert!(!verify(&good.to_uppercase(), b"data", &[]));
    }
}
