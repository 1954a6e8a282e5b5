//! Secrets from files, rotated live under load: the upstream key and secret, and the
//! webhook secrets, change by rewriting their files; no call fails, the next upstream
//! calls carry the new credentials, a file that does not hold is refused, and the
//! cache does not serve the old account's answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Harness, cache_of, config, no_cache, sandbox_settings};
use fingerprint_gateway::{
    config::Generation,
    proto::v1::{GetEventRequest, LookupTelemetryRequest, VerifyWebhookSignatureRequest},
    sandbox::{Credentials, Sandbox},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NEW_KEY: &str = "fp-key-rotated-9d2e";
const NEW_SECRET: &str = "secret-test-rotated-41aa";

/// Replaces a file's content the way a secret volume does: a new file, renamed over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotate_under_load_without_a_failed_call() {
    let dir = std::env::temp_dir().join(format!("fpgw-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = Credentials {
        // The vendor accepts the old and the new credentials during the rotation.
        also_accepted: vec![NEW_KEY.to_owned(), NEW_SECRET.to_owned()],
        ..Credentials::default()
    };
    let sandbox = Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        creds.clone(),
    )
    .unwrap();
    let key_file = dir.join("fingerprint-key");
    let secret_file = dir.join("stytch-secret");
    let webhook_file = dir.join("webhook-secrets");
    std::fs::write(&key_file, format!("{}\n", creds.fingerprint_secret)).unwrap();
    std::fs::write(&secret_file, format!("{}\n", creds.stytch_secret)).unwrap();
    std::fs::write(&webhook_file, "whsec_old\n").unwrap();
    let mut settings: Vec<(&'static str, String)> = sandbox_settings(&sandbox, Generation::V4)
        .into_iter()
        .filter(|(k, _)| *k != "FINGERPRINT_SECRET_API_KEY" && *k != "STYTCH_SECRET")
        .collect();
    settings.extend([
        (
            "FINGERPRINT_SECRET_API_KEY_FILE",
            key_file.to_str().unwrap().to_owned(),
        ),
        (
            "STYTCH_SECRET_FILE",
            secret_file.to_str().unwrap().to_owned(),
        ),
        (
            "FINGERPRINT_WEBHOOK_SECRETS_FILE",
            webhook_file.to_str().unwrap().to_owned(),
        ),
    ]);
    let h = Harness::start_config(sandbox, config(&settings)).await;
    let mut fp = h.fingerprint();
    // A cached answer of the old account.
    fp.get_event(GetEventRequest {
        event_id: "rot-cached".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let body = b"{\"event_id\":\"w\"}".to_vec();
    let verify = |secret: &str| VerifyWebhookSignatureRequest {
        header: signature(secret, &body),
        body: body.clone(),
    };
    assert!(
        fp.verify_webhook_signature(verify("whsec_old"))
            .await
            .unwrap()
            .into_inner()
            .valid
    );

    // Load: event reads and telemetry lookups that always reach the upstream.
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let mut fp = h.fingerprint();
            let mut st = h.stytch();
            let running = running.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let mut i = 0;
                while running.load(Ordering::Relaxed) {
                    i += 1;
                    let answer = if w % 2 == 0 {
                        fp.get_event(no_cache(GetEventRequest {
                            event_id: format!("rot-{w}-{i}"),
                            ..Default::default()
                        }))
                        .await
                        .map(|_| ())
                    } else {
                        st.lookup_telemetry(no_cache(LookupTelemetryRequest {
                            telemetry_id: format!("rot-{w}-{i}"),
                            ..Default::default()
                        }))
                        .await
                        .map(|_| ())
                    };
                    match answer {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A key that cannot be a header value: refused, the one in force stays.
    replace(&key_file, "bad\u{7}key");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // Now the real rotation.
    replace(&key_file, NEW_KEY);
    replace(&secret_file, NEW_SECRET);
    replace(&webhook_file, "whsec_new");
    let rotated_at = Instant::now();
    let uses = |needle: String| {
        let h = &h;
        move || {
            h.upstream_requests().iter().rev().take(20).any(|r| {
                r.headers
                    .iter()
                    .any(|(k, v)| k == "authorization" && v.contains(&needle))
            })
        }
    };
    let new_fp = uses(format!("Bearer {NEW_KEY}"));
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{NEW_SECRET}",
            Credentials::default().stytch_project_id
        ))
    };
    let new_st = uses(basic);
    while !(new_fp() && new_st()) {
        assert!(
            rotated_at.elapsed() < Duration::from_secs(5),
            "the new credentials were not used"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = rotated_at.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert!(
            failed.is_empty(),
            "calls failed during the rotation: {failed:?}"
        );
        total += ok;
    }
    eprintln!(
        "{total} calls through a refused file and a rotation; new credentials in use {took:?} after the files changed"
    );
    // From then on, only the new credentials go upstream.
    let recent: Vec<_> = h.upstream_requests().into_iter().rev().take(20).collect();
    for r in &recent {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(
            !auth.contains(&Credentials::default().fingerprint_secret),
            "old key still used"
        );
    }
    // The old account's answer is not served from the cache.
    let again = fp
        .get_event(GetEventRequest {
            event_id: "rot-cached".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cache_of(&again), "miss");
    // Webhook secrets rotated too.
    assert!(
        fp.verify_webhook_signature(verify("whsec_new"))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    assert!(
        !fp.verify_webhook_signature(verify("whsec_old"))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    h.stop().await;
}

#[test]
fn a_secret_and_its_file_cannot_both_be_set() {
    let dir = std::env::temp_dir().join(format!("fpgw-rotation-both-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, "k").unwrap();
    let err = fingerprint_gateway::config::Config::from_lookup(&|name| match name {
        "FINGERPRINT_SECRET_API_KEY" => Some("k".into()),
        "FINGERPRINT_SECRET_API_KEY_FILE" => Some(file.to_str().unwrap().into()),
        _ => None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("both set"), "{err}");
    let err = fingerprint_gateway::config::Config::from_lookup(&|name| match name {
        "FINGERPRINT_SECRET_API_KEY_FILE" => Some("/nonexistent/key".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("FINGERPRINT_SECRET_API_KEY_FILE"),
        "{err}"
    );
}
