//! Sealed client results: AES-256-GCM encrypted, raw-DEFLATE compressed event JSON.
//!
//! Layout: a 4-byte header `9e 85 dc ed`, a 12-byte nonce, the ciphertext, and the
//! 16-byte GCM tag. The plaintext inflates to a v4 (or v3) event.

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead};
use serde_json::Value as Json;

use crate::config::SealedKey;
use crate::error::SealedError;
use crate::proto::v1::Event;

/// The header every sealed result starts with.
pub const HEADER: [u8; 4] = [0x9e, 0x85, 0xdc, 0xed];
/// Largest sealed input accepted (1 MiB, as `SealedError::Size` says).
pub const MAX_SEALED_BYTES: usize = 1024 * 1024;
/// Largest inflated payload accepted, a guard against compression bombs (8 MiB, as
/// `SealedError::TooLarge` says).
pub const MAX_PLAINTEXT_BYTES: u64 = 8 * 1024 * 1024;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Opens a sealed result with the first key that authenticates it.
pub fn unseal(sealed: &[u8], keys: &[SealedKey]) -> Result<Event, SealedError> {
    if keys.is_empty() {
        return Err(SealedError::NoKeys);
    }
    if sealed.is_empty() || sealed.len() > MAX_SEALED_BYTES {
        return Err(SealedError::Size);
    }
    let Some(rest) = sealed.strip_prefix(&HEADER) else {
        return Err(SealedError::Header);
    };
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SealedError::Truncated);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let compressed = keys
        .iter()
        .find_map(|key| {
            let cipher = Aes256Gcm::new(&key.0.into());
            cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()
        })
        .ok_or(SealedError::Decrypt)?;
    let plain = inflate(&compressed)?;
    let json: Json = serde_json::from_slice(&plain).map_err(|_| SealedError::Json)?;
    crate::convert::any_event(json).ok_or(SealedError::NotAnEvent)
}

/// Raw DEFLATE that must end properly (a truncated or corrupt stream is an error,
/// not a shorter payload), bounded by `MAX_PLAINTEXT_BYTES`.
fn inflate(input: &[u8]) -> Result<Vec<u8>, SealedError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).clamp(4096, 1 << 20));
    loop {
        if out.len() == out.capacity() {
            if out.len() as u64 >= MAX_PLAINTEXT_BYTES {
                return Err(SealedError::TooLarge);
            }
            out.reserve(out.len());
        }
        let consumed =
            usize::try_from(inflater.total_in()).map_err(|_| SealedError::Compression)?;
        let rest = input.get(consumed..).ok_or(SealedError::Compression)?;
        let progress = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|_| SealedError::Compression)?;
        if status == Status::StreamEnd {
            // Bytes after the end of the stream mean this was not one DEFLATE stream.
            if usize::try_from(inflater.total_in()).ok() != Some(input.len()) {
                return Err(SealedError::Compression);
            }
            break;
        }
        // Room left to write, yet nothing read or written: the stream is cut short.
        if (inflater.total_in(), inflater.total_out()) == progress && out.len() < out.capacity() {
            return Err(SealedError::Compression);
        }
    }
    if out.len() as u64 > MAX_PLAINTEXT_BYTES {
        return Err(SealedError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn inflate_refuses_bombs_and_truncation() {
        let bomb = deflate(&vec![0u8; (MAX_PLAINTEXT_BYTES + 1024) as usize]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(inflate(&bomb), Err(SealedError::TooLarge));
        let ok = deflate(b"{\"event_id\":\"x\"}");
        assert_eq!(inflate(&ok).unwrap(), b"{\"event_id\":\"x\"}");
        assert_eq!(inflate(&ok[..ok.len() - 2]), Err(SealedError::Compression));
    }
}
