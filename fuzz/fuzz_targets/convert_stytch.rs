//! Stytch DFP answers (lookup, rules, verdict reasons, writes) → protobuf.
#![no_main]
use fingerprint_gateway::convert::stytch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        let _ = stytch::lookup(map.clone());
        let _ = stytch::rules(map.clone());
        let _ = stytch::verdict_reasons(map.clone());
        let _ = stytch::set_rule(map.clone());
        let _ = stytch::verdict_reason_override(map);
    }
});
