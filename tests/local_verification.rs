//! UnsealEvent and VerifyWebhookSignature: the official test vectors, tampered variants,
//! and vectors made here (so the checks also run without `../shared`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{Harness, details};
use fingerprint_gateway::{
    config::Generation,
    convert::event,
    proto::v1::{UnsealEventRequest, VerifyWebhookSignatureRequest},
};
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;
use tonic::Code;

const OUR_KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn seal(key: &[u8; 32], nonce: [u8; 12], plain: &[u8], compress: bool) -> Vec<u8> {
    let payload = if compress {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    } else {
        plain.to_vec()
    };
    let sealed = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), payload.as_slice())
        .unwrap();
    [&[0x9e, 0x85, 0xdc, 0xed][..], &nonce, &sealed].concat()
}

async fn with_keys(keys: &[String]) -> Harness {
    Harness::start_with(
        Generation::V4,
        &[("FINGERPRINT_SEALED_RESULT_KEYS", keys.join(","))],
    )
    .await
}

async fn unseal(
    h: &Harness,
    sealed: Vec<u8>,
) -> Result<fingerprint_gateway::proto::v1::Event, tonic::Status> {
    h.fingerprint()
        .unseal_event(UnsealEventRequest { sealed })
        .await
        .map(|r| r.into_inner().event.unwrap())
}

fn reason(err: &tonic::Status) -> String {
    details(err).error_info().unwrap().reason.clone()
}

#[tokio::test]
async fn unseal_round_trip_rotation_and_every_failure_is_distinct() {
    let right = B64.encode(OUR_KEY);
    let wrong = B64.encode([7u8; 32]);
    let h = with_keys(&[wrong.clone(), right]).await;
    let event = br#"{"event_id":"1708102555327.NLOjmg","timestamp":1708102555327,"suspect":false,"identification":{"visitor_id":"Ibk1527CUFmcnjLwIs4A9","visitor_found":true}}"#;
    let good = seal(&OUR_KEY, [1; 12], event, true);
    let e = unseal(&h, good.clone()).await.unwrap();
    assert_eq!(e.event_id, "1708102555327.NLOjmg");
    assert_eq!(e.suspect, Some(false));
    // v3 payloads are detected too.
    let v3 = br#"{"products":{"identification":{"data":{"requestId":"r-1","visitorId":"v-1","timestamp":1708102555327}}}}"#;
    assert_eq!(
        unseal(&h, seal(&OUR_KEY, [2; 12], v3, true))
            .await
            .unwrap()
            .event_id,
        "r-1"
    );

    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut bad_header = good.clone();
    bad_header[1] = 0x8b;
    let cases: Vec<(&str, Vec<u8>, Code, &str)> = vec![
        (
            "tampered",
            tampered,
            Code::FailedPrecondition,
            "SEALED_DECRYPTION_FAILED",
        ),
        (
            "foreign key",
            seal(&[9; 32], [1; 12], event, true),
            Code::FailedPrecondition,
            "SEALED_DECRYPTION_FAILED",
        ),
        (
            "bad header",
            bad_header,
            Code::InvalidArgument,
            "SEALED_BAD_HEADER",
        ),
        (
            "truncated",
            good[..20].to_vec(),
            Code::InvalidArgument,
            "SEALED_TRUNCATED",
        ),
        (
            "empty",
            Vec::new(),
            Code::InvalidArgument,
            "SEALED_BAD_SIZE",
        ),
        (
            "not deflate",
            seal(&OUR_KEY, [3; 12], b"\xff\xff\xff\xff not deflate", false),
            Code::InvalidArgument,
            "SEALED_BAD_COMPRESSION",
        ),
        (
            "not json",
            seal(&OUR_KEY, [4; 12], b"not json at all", true),
            Code::InvalidArgument,
            "SEALED_BAD_JSON",
        ),
        (
            "not an event",
            seal(&OUR_KEY, [5; 12], br#"{"hello":"world"}"#, true),
            Code::InvalidArgument,
            "SEALED_NOT_AN_EVENT",
        ),
    ];
    for (name, sealed, code, why) in cases {
        let err = unseal(&h, sealed).await.unwrap_err();
        assert_eq!(err.code(), code, "{name}: {}", err.message());
        assert_eq!(reason(&err), why, "{name}");
    }
    assert!(
        h.upstream_requests().is_empty(),
        "unsealing never calls the upstream"
    );
    h.stop().await;

    let none = Harness::start().await;
    let err = unseal(&none, good).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("FINGERPRINT_SEALED_RESULT_KEYS"));
    none.stop().await;
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn official_sealed_vectors() {
    let fx = common::fixtures();
    let dir = fx.join("fingerprint/vectors");
    let v: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sealed_vectors.json")).unwrap())
            .unwrap();
    let key = v["key_b64"].as_str().unwrap().to_owned();
    let wrong: Vec<String> = v["wrong_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let case = |name: &str| -> Vec<u8> {
        let c = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        B64.decode(c["sealed_b64"].as_str().unwrap()).unwrap()
    };
    // Rotation: the right key after wrong ones still opens it.
    let h = with_keys(&[wrong.clone(), vec![key]].concat()).await;
    let expected: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sealed_event.json")).unwrap())
            .unwrap();
    let got = unseal(&h, case("valid")).await.unwrap();
    assert_eq!(
        got,
        event::from_v4(expected.as_object().unwrap().clone()),
        "the typed event of sealed_event.json"
    );
    assert_eq!(
        reason(&unseal(&h, case("invalid_header")).await.unwrap_err()),
        "SEALED_BAD_HEADER"
    );
    assert_eq!(
        reason(&unseal(&h, case("invalid_compression")).await.unwrap_err()),
        "SEALED_BAD_COMPRESSION"
    );
    assert_eq!(
        reason(&unseal(&h, case("invalid_json")).await.unwrap_err()),
        "SEALED_BAD_JSON"
    );
    let mut tampered = case("valid");
    tampered[30] ^= 0x40;
    assert_eq!(
        reason(&unseal(&h, tampered).await.unwrap_err()),
        "SEALED_DECRYPTION_FAILED"
    );
    h.stop().await;
    let only_wrong = with_keys(&wrong).await;
    let err = unseal(&only_wrong, case("valid")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "SEALED_DECRYPTION_FAILED");
    only_wrong.stop().await;
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn verify(
    h: &Harness,
    header: &str,
    body: &[u8],
) -> fingerprint_gateway::proto::v1::VerifyWebhookSignatureResponse {
    h.fingerprint()
        .verify_webhook_signature(VerifyWebhookSignatureRequest {
            header: header.into(),
            body: body.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn official_webhook_vectors() {
    let fx = common::fixtures();
    let v: Json = serde_json::from_str(
        &std::fs::read_to_string(fx.join("fingerprint/vectors/webhook_vectors.json")).unwrap(),
    )
    .unwrap();
    for case in v["cases"].as_array().unwrap() {
        let secret = case["secret"].as_str().unwrap();
        let header = case["header"].as_str().unwrap();
        let body = case["body"].as_str().unwrap().as_bytes();
        let name = case["name"].as_str().unwrap();
        let h = Harness::start_with(
            Generation::V4,
            &[("FINGERPRINT_WEBHOOK_SECRETS", secret.to_owned())],
        )
        .await;
        let answer = h
            .fingerprint()
            .verify_webhook_signature(VerifyWebhookSignatureRequest {
                header: header.into(),
                body: body.to_vec(),
            })
            .await;
        match answer {
            Ok(a) => assert_eq!(
                a.into_inner().valid,
                case["valid"].as_bool().unwrap(),
                "{name}"
            ),
            // An empty secret is no secret: the gateway refuses to check rather than accept.
            Err(e) => {
                assert!(secret.is_empty(), "{name}: {e:?}");
                assert_eq!(e.code(), Code::FailedPrecondition);
                assert!(!case["valid"].as_bool().unwrap());
            }
        }
        h.stop().await;
    }
}

#[tokio::test]
async fn webhook_rotation_tampering_and_parsed_events() {
    let h = Harness::start_with(
        Generation::V4,
        &[(
            "FINGERPRINT_WEBHOOK_SECRETS",
            "old-secret,new-secret".to_owned(),
        )],
    )
    .await;
    let body =
        br#"{"event_id":"1708102555327.NLOjmg","timestamp":1708102555327,"linked_id":"order-9"}"#;
    let good = sign("new-secret", body);
    let answer = verify(&h, &format!("v1={good}"), body).await;
    assert!(answer.valid);
    assert_eq!(answer.event.unwrap().linked_id.as_deref(), Some("order-9"));
    // Several entries, the valid one not first; the old secret still works.
    assert!(
        verify(&h, &format!("v1={}, v1={good}", "0".repeat(64)), body)
            .await
            .valid
    );
    assert!(
        verify(&h, &format!("v1={}", sign("old-secret", body)), body)
            .await
            .valid
    );
    // Tampered body, tampered signature, other versions, garbage: answers, not errors.
    let mut tampered = body.to_vec();
    tampered[20] ^= 1;
    let bad = verify(&h, &format!("v1={good}"), &tampered).await;
    assert!(!bad.valid && bad.event.is_none());
    let mut flipped = good.clone().into_bytes();
    flipped[0] = if flipped[0] == b'a' { b'b' } else { b'a' };
    assert!(
        !verify(
            &h,
            &format!("v1={}", String::from_utf8(flipped).unwrap()),
            body
        )
        .await
        .valid
    );
    assert!(!verify(&h, &format!("v2={good}"), body).await.valid);
    assert!(!verify(&h, &good, body).await.valid);
    assert!(!verify(&h, "", body).await.valid);
    assert!(
        !verify(&h, &format!("v1={}", sign("stranger", body)), body)
            .await
            .valid
    );
    // Valid signature on a body that is not an event: valid, no event.
    let text = b"not json";
    let a = verify(&h, &format!("v1={}", sign("new-secret", text)), text).await;
    assert!(a.valid && a.event.is_none());
    let err = h
        .fingerprint()
        .verify_webhook_signature(VerifyWebhookSignatureRequest {
            header: "v1=".repeat(2000),
            body: body.to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.stop().await;
}

#[tokio::test]
#[ignore = "needs ../shared/fixtures beside the checkout (CI has it): cargo test -- --include-ignored"]
async fn official_webhook_bodies_parse_when_signed() {
    let fx = common::fixtures();
    let h = Harness::start_with(
        Generation::V4,
        &[("FINGERPRINT_WEBHOOK_SECRETS", "s3cret".to_owned())],
    )
    .await;
    for (file, id) in [
        (
            "fingerprint/v4/paths/examples/webhook/webhook_event.json",
            "1708102555327.NLOjmg",
        ),
        (
            "fingerprint/v3/examples/webhook.json",
            "Px6VxbRC6WBkA39yeNH3",
        ),
    ] {
        let body = std::fs::read(fx.join(file)).unwrap();
        let a = verify(&h, &format!("v1={}", sign("s3cret", &body)), &body).await;
        assert!(a.valid, "{file}");
        let e = a.event.unwrap();
        assert_eq!(e.event_id, id, "{file}");
        assert!(e.identification.is_some(), "{file}");
    }
    h.stop().await;
}
