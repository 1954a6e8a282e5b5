//! Sealed client results: any bytes, with the documented test key and a random one.
#![no_main]
use fingerprint_gateway::{config::SealedKey, sealed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = [SealedKey([7u8; 32]), SealedKey([0u8; 32])];
    let _ = sealed::unseal(data, &keys);
});
