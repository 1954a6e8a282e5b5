//! The webhook signature header (`v1=<hex>,v1=…`) and body, against two secrets.
#![no_main]
use fingerprint_gateway::{config::Secret, webhook};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let header = String::from_utf8_lossy(header);
    let secrets = [Secret::new("whsec_fuzz"), Secret::new("")];
    let _ = webhook::verify(&header, body, &secrets);
});
