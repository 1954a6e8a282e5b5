//! Who may call what, black-box: callers of a sample policy tried against every RPC by
//! bearer token, by mTLS certificate (a real TLS handshake) and by mesh header (trusted
//! and not); the audit trail of a deletion; policy reloads; per-caller limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{path::PathBuf, sync::Arc, time::Duration};

use common::{Harness, details};
use fingerprint_gateway::{
    config::Generation,
    proto::v1::{
        DeleteVisitorDataRequest, GetEventRequest, GetVisitsRequest, ListRulesRequest,
        ListVerdictReasonsRequest, LookupTelemetryRequest, SearchEventsRequest, SetRuleRequest,
        SetVerdictReasonOverrideRequest, StreamEventsRequest, UnsealEventRequest,
        UpdateEventRequest, VerifyWebhookSignatureRequest,
        fingerprint_service_client::FingerprintServiceClient, set_rule_request::Identifier,
        stytch_service_client::StytchServiceClient,
    },
};
use sha2::{Digest, Sha256};
use tonic::{Code, Request, transport::Channel};

fn sha(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fpgw-authz-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const CHECKOUT: &str = "spiffe://test.example/ns/shop/sa/checkout";

fn policy() -> String {
    format!(
        r#"
[[caller]]
name = "checkout"
token_sha256 = "{}"
identities = ["{CHECKOUT}", "checkout.shop.serviceaccount.identity.linkerd.cluster.local"]
allow = ["FingerprintService/Get*", "StytchService/LookupTelemetry"]

[[caller]]
name = "privacy-desk"
token_sha256 = "{}"
allow = ["FingerprintService/DeleteVisitorData", "FingerprintService/*"]

[[caller]]
name = "fraud-ops"
token_sha256 = "{}"
allow = ["StytchService/*", "StytchService/SetRule", "FingerprintService/UpdateEvent"]

[[caller]]
name = "throttled"
token_sha256 = "{}"
allow = ["FingerprintService/GetEvent"]
rate = "1/m"

[[caller]]
name = "one-at-a-time"
token_sha256 = "{}"
allow = ["FingerprintService/GetEvent", "FingerprintService/StreamEvents"]
max_in_flight = 1
"#,
        sha("tok-checkout"),
        sha("tok-privacy"),
        sha("tok-fraud"),
        sha("tok-throttled"),
        sha("tok-single"),
    )
}

/// Every RPC, called once through `channel` with `auth` metadata; the codes in order.
async fn every_rpc(
    channel: &Channel,
    token: Option<&str>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, Code)> {
    let mut fp = FingerprintServiceClient::new(channel.clone());
    let mut st = StytchServiceClient::new(channel.clone());
    fn req<T>(m: T, token: Option<&str>, extra: &[(&'static str, &str)]) -> Request<T> {
        let mut r = Request::new(m);
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        for (k, v) in extra {
            r.metadata_mut().insert(*k, v.parse().unwrap());
        }
        r.set_timeout(Duration::from_secs(5));
        r
    }
    let code = |r: Result<Code, tonic::Status>| r.unwrap_or_else(|e| e.code());
    vec![
        (
            "GetEvent",
            code(
                fp.get_event(req(
                    GetEventRequest {
                        event_id: "authz-1".into(),
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "GetVisits",
            code(
                fp.get_visits(req(
                    GetVisitsRequest {
                        visitor_id: "authz-v".into(),
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "SearchEvents",
            code(
                fp.search_events(req(SearchEventsRequest::default(), token, extra))
                    .await
                    .map(|_| Code::Ok),
            ),
        ),
        (
            "StreamEvents",
            code(
                fp.stream_events(req(
                    StreamEventsRequest {
                        max_events: 1,
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "UpdateEvent",
            code(
                fp.update_event(req(
                    UpdateEventRequest {
                        event_id: "authz-1".into(),
                        suspect: Some(true),
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "DeleteVisitorData",
            code(
                fp.delete_visitor_data(req(
                    DeleteVisitorDataRequest {
                        visitor_id: "authz-del".into(),
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "UnsealEvent",
            code(
                fp.unseal_event(req(
                    UnsealEventRequest {
                        sealed: vec![1, 2, 3],
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "VerifyWebhookSignature",
            code(
                fp.verify_webhook_signature(req(
                    VerifyWebhookSignatureRequest::default(),
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "LookupTelemetry",
            code(
                st.lookup_telemetry(req(
                    LookupTelemetryRequest {
                        telemetry_id: "authz-t".into(),
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "ListRules",
            code(
                st.list_rules(req(ListRulesRequest::default(), token, extra))
                    .await
                    .map(|_| Code::Ok),
            ),
        ),
        (
            "ListVerdictReasons",
            code(
                st.list_verdict_reasons(req(ListVerdictReasonsRequest::default(), token, extra))
                    .await
                    .map(|_| Code::Ok),
            ),
        ),
        (
            "SetRule",
            code(
                st.set_rule(req(
                    SetRuleRequest {
                        identifier: Some(Identifier::VisitorId("authz-rule".into())),
                        action: 3,
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
        (
            "SetVerdictReasonOverride",
            code(
                st.set_verdict_reason_override(req(
                    SetVerdictReasonOverrideRequest {
                        verdict_reason: "VIRTUAL_MACHINE".into(),
                        override_action: 3,
                        ..Default::default()
                    },
                    token,
                    extra,
                ))
                .await
                .map(|_| Code::Ok),
            ),
        ),
    ]
}

/// The codes a caller allowed `allowed` should get: not refused by the policy where
/// allowed (the call itself may fail on its own terms), refused everywhere else.
fn check(who: &str, seen: &[(&'static str, Code)], allowed: &[&str], refused: Code) {
    for (rpc, code) in seen {
        if allowed.contains(rpc) {
            assert!(
                !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                "{who}: {rpc} should be allowed, got {code:?}"
            );
        } else {
            assert_eq!(*code, refused, "{who}: {rpc}");
        }
    }
}

#[tokio::test]
async fn each_caller_gets_exactly_its_policy_by_token() {
    let d = dir();
    let policy_file = d.join("policy.toml");
    std::fs::write(&policy_file, policy()).unwrap();
    let audit = d.join("audit.jsonl");
    let metrics = common::process::free_port();
    let h = Harness::start_with(
        Generation::V4,
        &[
            ("GATEWAY_AUTH", "true".into()),
            ("GATEWAY_POLICY_FILE", policy_file.to_str().unwrap().into()),
            ("GATEWAY_AUDIT_LOG", audit.to_str().unwrap().into()),
            ("GATEWAY_METRICS_LISTEN", metrics.to_string()),
        ],
    )
    .await;
    let reads = ["GetEvent", "GetVisits"];
    let checkout = every_rpc(&h.channel, Some("tok-checkout"), &[]).await;
    check(
        "checkout",
        &checkout,
        &[reads[0], reads[1], "LookupTelemetry"],
        Code::PermissionDenied,
    );
    // A wildcard grants every read of the service but no mutation; DeleteVisitorData by name.
    let privacy = every_rpc(&h.channel, Some("tok-privacy"), &[]).await;
    check(
        "privacy-desk",
        &privacy,
        &[
            "GetEvent",
            "GetVisits",
            "SearchEvents",
            "StreamEvents",
            "DeleteVisitorData",
            "UnsealEvent",
            "VerifyWebhookSignature",
        ],
        Code::PermissionDenied,
    );
    let fraud = every_rpc(&h.channel, Some("tok-fraud"), &[]).await;
    check(
        "fraud-ops",
        &fraud,
        &[
            "LookupTelemetry",
            "ListRules",
            "ListVerdictReasons",
            "SetRule",
            "UpdateEvent",
        ],
        Code::PermissionDenied,
    );
    // No token, or one nobody holds: UNAUTHENTICATED for every RPC.
    check(
        "nobody",
        &every_rpc(&h.channel, None, &[]).await,
        &[],
        Code::Unauthenticated,
    );
    check(
        "stranger",
        &every_rpc(&h.channel, Some("tok-guess"), &[]).await,
        &[],
        Code::Unauthenticated,
    );

    // The refusal names the missing permission, not the policy.
    let mut fp = FingerprintServiceClient::new(h.channel.clone());
    let mut r = Request::new(DeleteVisitorDataRequest {
        visitor_id: "vx".into(),
    });
    r.metadata_mut()
        .insert("authorization", "Bearer tok-checkout".parse().unwrap());
    let err = fp.delete_visitor_data(r).await.unwrap_err();
    let info = details(&err).error_info().unwrap().clone();
    assert_eq!(info.reason, "PERMISSION_DENIED");
    assert_eq!(
        info.metadata["permission"],
        "FingerprintService/DeleteVisitorData"
    );
    assert_eq!(info.metadata["caller"], "checkout");

    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();

    // Who deleted visitor authz-del, and when: the audit trail alone says.
    let trail = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deletions: Vec<_> = records
        .iter()
        .filter(|r| r["targets"]["visitor_id"] == "authz-del")
        .collect();
    let allowed: Vec<_> = deletions
        .iter()
        .filter(|r| r["decision"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "{deletions:#?}");
    assert_eq!(allowed[0]["caller"], "privacy-desk");
    assert_eq!(allowed[0]["code"], "Ok");
    assert!(allowed[0]["time"].as_str().unwrap().starts_with("20"));
    // Every denied attempt is there too, with who tried.
    let denied: Vec<_> = deletions
        .iter()
        .filter(|r| r["decision"] == "denied")
        .map(|r| r["caller"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        denied.contains(&"checkout".to_owned()) && denied.contains(&"anonymous".to_owned()),
        "{denied:?}"
    );
    // Only mutations, and never a token.
    assert!(records.iter().all(|r| {
        r["rpc"].as_str().unwrap().ends_with("UpdateEvent")
            || r["rpc"].as_str().unwrap().ends_with("DeleteVisitorData")
            || r["rpc"].as_str().unwrap().ends_with("SetRule")
            || r["rpc"]
                .as_str()
                .unwrap()
                .ends_with("SetVerdictReasonOverride")
    }));
    assert!(!trail.contains("tok-"), "no token in the trail");
    // The caller's name labels its calls.
    let scrape = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains(r#"fpgw_caller_rpc_total{caller="privacy-desk",rpc="fingerprint.gateway.v1.FingerprintService/DeleteVisitorData",code="Ok"} 1"#),
        "{scrape}"
    );
    assert!(!scrape.contains("tok-"));
    h.stop().await;
}

#[tokio::test]
async fn mesh_headers_count_only_from_the_trusted_peer() {
    let d = dir();
    let policy_file = d.join("policy.toml");
    std::fs::write(&policy_file, policy()).unwrap();
    let xfcc = format!("By=spiffe://test.example/ns/gw/sa/gateway;Hash=abc;URI={CHECKOUT}");
    let linkerd = "checkout.shop.serviceaccount.identity.linkerd.cluster.local";
    for (mesh, header, value) in [
        ("envoy", "x-forwarded-client-cert", xfcc.as_str()),
        ("linkerd", "l5d-client-id", linkerd),
    ] {
        // The test client connects from loopback: the default trusted peer.
        let trusted = Harness::start_with(
            Generation::V4,
            &[
                ("GATEWAY_AUTH", "true".into()),
                ("GATEWAY_POLICY_FILE", policy_file.to_str().unwrap().into()),
                ("GATEWAY_MESH_IDENTITY", mesh.into()),
                ("GATEWAY_AUDIT_LOG", d.join("a1").to_str().unwrap().into()),
            ],
        )
        .await;
        let seen = every_rpc(&trusted.channel, None, &[(header, value)]).await;
        check(
            &format!("{mesh} trusted"),
            &seen,
            &["GetEvent", "GetVisits", "LookupTelemetry"],
            Code::PermissionDenied,
        );
        trusted.stop().await;
        // The same header from a peer outside GATEWAY_MESH_TRUSTED_PEERS is ignored.
        let untrusted = Harness::start_with(
            Generation::V4,
            &[
                ("GATEWAY_AUTH", "true".into()),
                ("GATEWAY_POLICY_FILE", policy_file.to_str().unwrap().into()),
                ("GATEWAY_MESH_IDENTITY", mesh.into()),
                ("GATEWAY_MESH_TRUSTED_PEERS", "10.99.0.0/16".into()),
                ("GATEWAY_AUDIT_LOG", d.join("a2").to_str().unwrap().into()),
            ],
        )
        .await;
        check(
            &format!("{mesh} untrusted"),
            &every_rpc(&untrusted.channel, None, &[(header, value)]).await,
            &[],
            Code::Unauthenticated,
        );
        untrusted.stop().await;
    }
}

/// A gateway enforcing the sample policy, its audit trail in `dir`, plus `extra`.
async fn enforcing(dir: &std::path::Path, extra: &[(&'static str, String)]) -> Harness {
    let policy_file = dir.join("policy.toml");
    if !policy_file.exists() {
        std::fs::write(&policy_file, policy()).unwrap();
    }
    let mut settings = vec![
        ("GATEWAY_AUTH", "true".to_owned()),
        (
            "GATEWAY_POLICY_FILE",
            policy_file.to_str().unwrap().to_owned(),
        ),
        (
            "GATEWAY_AUDIT_LOG",
            dir.join("audit.jsonl").to_str().unwrap().to_owned(),
        ),
    ];
    settings.extend(extra.iter().cloned());
    Harness::start_with(Generation::V4, &settings).await
}

#[tokio::test]
async fn the_policy_reloads_and_a_broken_file_keeps_the_old_one() {
    let d = dir();
    let policy_file = d.join("policy.toml");
    let h = enforcing(&d, &[]).await;
    let get = |token: &'static str| {
        let channel = h.channel.clone();
        async move {
            let mut r = Request::new(GetEventRequest {
                event_id: "reload-1".into(),
                ..Default::default()
            });
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            FingerprintServiceClient::new(channel)
                .get_event(r)
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }
    };
    assert_eq!(get("tok-checkout").await, Ok(()));
    // A broken file: refused, the old policy stays.
    std::fs::write(
        &policy_file,
        "[[caller]]\nname = \"checkout\"\nallow = [\"Nope/*\"]\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(get("tok-checkout").await, Ok(()));
    // A good file without checkout: applied.
    std::fs::write(&policy_file, format!("[[caller]]\nname = \"other\"\ntoken_sha256 = \"{}\"\nallow = [\"FingerprintService/GetEvent\"]\n", sha("tok-other"))).unwrap();
    let mut applied = false;
    for _ in 0..40 {
        if get("tok-checkout").await == Err(Code::Unauthenticated)
            && get("tok-other").await == Ok(())
        {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied, "the new policy applied");
    h.stop().await;
}

#[tokio::test]
async fn a_caller_over_its_own_rate_is_refused_alone() {
    let d = dir();
    let h = enforcing(&d, &[]).await;
    let call = |token: &'static str, id: &'static str| {
        let channel = h.channel.clone();
        async move {
            let mut r = Request::new(GetEventRequest {
                event_id: id.into(),
                ..Default::default()
            });
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            FingerprintServiceClient::new(channel).get_event(r).await
        }
    };
    call("tok-throttled", "rate-1").await.unwrap();
    let err = call("tok-throttled", "rate-2").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let d2 = details(&err);
    assert_eq!(d2.error_info().unwrap().reason, "CALLER_LIMITED");
    assert!(d2.retry_info().is_some());
    // Another caller is unaffected.
    call("tok-checkout", "rate-3").await.unwrap();
    h.stop().await;
}

/// A CA, a server certificate for 127.0.0.1, and client certificates.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    rogue_client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, issuer) = ca("test CA");
    let (_, rogue) = ca("rogue CA");
    let leaf = |issuer: &Issuer<'_, KeyPair>, sans: Vec<SanType>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server = leaf(
        &issuer,
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
        "gateway",
    );
    let client = leaf(
        &issuer,
        vec![SanType::URI(CHECKOUT.try_into().unwrap())],
        "checkout",
    );
    let rogue_client = leaf(
        &rogue,
        vec![SanType::URI(CHECKOUT.try_into().unwrap())],
        "checkout",
    );
    Pki {
        ca_pem,
        server,
        client,
        rogue_client,
    }
}

/// A gRPC channel over TLS to `addr`, trusting `ca`, presenting `client` if any.
async fn tls_channel(
    addr: std::net::SocketAddr,
    ca: &str,
    client: Option<&(String, String)>,
) -> Result<Channel, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

/// A gateway with `extra` settings beside its own sandbox, served by hand (the
/// harness's plaintext channel cannot reach a TLS listener); stops when dropped.
struct TlsGateway {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _sandbox: fingerprint_gateway::sandbox::Sandbox,
}

impl TlsGateway {
    async fn start(extra: Vec<(&'static str, String)>) -> Self {
        let sandbox = fingerprint_gateway::sandbox::Sandbox::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            fingerprint_gateway::sandbox::Credentials::default(),
        )
        .unwrap();
        let mut all = common::sandbox_settings(&sandbox, Generation::V4);
        all.extend(extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(fingerprint_gateway::server::serve(
            listener,
            common::config(&all),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            _sandbox: sandbox,
        }
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn mutual_tls_names_the_caller_and_refuses_a_foreign_certificate() {
    let d = dir();
    let pki = pki();
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let policy_file = write("policy.toml", &policy());
    let settings = vec![
        ("GATEWAY_AUTH", "true".to_owned()),
        ("GATEWAY_POLICY_FILE", policy_file),
        ("GATEWAY_TLS_CERT_FILE", write("server.pem", &pki.server.0)),
        ("GATEWAY_TLS_KEY_FILE", write("server.key", &pki.server.1)),
        ("GATEWAY_TLS_CLIENT_CA_FILE", write("ca.pem", &pki.ca_pem)),
        (
            "GATEWAY_AUDIT_LOG",
            d.join("a").to_str().unwrap().to_owned(),
        ),
    ];
    let gateway = TlsGateway::start(settings).await;
    let addr = gateway.addr;

    // mTLS with the checkout certificate: exactly checkout's permissions.
    let channel = tls_channel(addr, &pki.ca_pem, Some(&pki.client))
        .await
        .unwrap();
    let seen = every_rpc(&channel, None, &[]).await;
    check(
        "checkout by mTLS",
        &seen,
        &["GetEvent", "GetVisits", "LookupTelemetry"],
        Code::PermissionDenied,
    );
    // TLS without a client certificate: the handshake is refused.
    let bare = match tls_channel(addr, &pki.ca_pem, None).await {
        Err(_) => true,
        Ok(c) => every_rpc(&c, Some("tok-checkout"), &[])
            .await
            .iter()
            .all(|(_, code)| *code == Code::Unavailable || *code == Code::Unknown),
    };
    assert!(bare, "a client without a certificate is refused");
    // A certificate from another CA, claiming the same SPIFFE id: refused.
    let rogue = match tls_channel(addr, &pki.ca_pem, Some(&pki.rogue_client)).await {
        Err(_) => true,
        Ok(c) => every_rpc(&c, None, &[])
            .await
            .iter()
            .all(|(_, code)| *code != Code::Ok),
    };
    assert!(rogue, "a foreign client certificate is refused");
    drop(gateway);
}

#[tokio::test]
async fn plain_tls_serves_and_a_renewed_certificate_is_picked_up() {
    let d = dir();
    let first = pki();
    let cert = d.join("server.pem");
    let key = d.join("server.key");
    std::fs::write(&cert, &first.server.0).unwrap();
    std::fs::write(&key, &first.server.1).unwrap();
    let gateway = TlsGateway::start(vec![
        ("GATEWAY_TLS_CERT_FILE", cert.to_str().unwrap().to_owned()),
        ("GATEWAY_TLS_KEY_FILE", key.to_str().unwrap().to_owned()),
    ])
    .await;
    let addr = gateway.addr;
    // A TLS client without a certificate: served (authorization is off).
    let channel = tls_channel(addr, &first.ca_pem, None).await.unwrap();
    FingerprintServiceClient::new(channel)
        .get_event(GetEventRequest {
            event_id: "tls-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A plaintext client gets no answer from a TLS listener.
    let plain = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(
            FingerprintServiceClient::new(plain)
                .get_event(GetEventRequest::default())
                .await
                .is_err()
        );
    }
    // The certificate is renewed (by another CA): new connections get the new one.
    let renewed = pki();
    std::fs::write(&cert, &renewed.server.0).unwrap();
    std::fs::write(&key, &renewed.server.1).unwrap();
    let mut picked = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(c) = tls_channel(addr, &renewed.ca_pem, None).await
            && FingerprintServiceClient::new(c)
                .get_event(GetEventRequest {
                    event_id: "tls-2".into(),
                    ..Default::default()
                })
                .await
                .is_ok()
        {
            picked = true;
            break;
        }
    }
    assert!(picked, "the renewed certificate was served");
    drop(gateway);
}

#[tokio::test]
async fn a_stream_holds_its_callers_place_until_it_ends() {
    // The caller may have one call in flight. A stream's headers come at once, but its
    // pages are fetched while it is read: its place must stay taken until it ends.
    let d = dir();
    let h = enforcing(&d, &[]).await;
    h.sandbox
        .control
        .faults
        .set(
            fingerprint_gateway::sandbox::faults::parse_rules(
                r#"[{"path": "/v4/events", "method": "GET", "latency_ms": 1500}]"#,
            )
            .unwrap(),
        )
        .unwrap();
    fn authed<T>(message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut()
            .insert("authorization", "Bearer tok-single".parse().unwrap());
        r
    }
    let mut client = FingerprintServiceClient::new(h.channel.clone());
    let mut stream = client
        .stream_events(authed(StreamEventsRequest {
            max_events: 3,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    // Its first page is still on its way: a second call is one too many.
    let err = client
        .get_event(authed(GetEventRequest {
            event_id: "second-call".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(details(&err).error_info().unwrap().reason, "CALLER_LIMITED");
    // Read to its end: the place is free again.
    let mut events = 0;
    while let Some(message) = stream.message().await.unwrap() {
        events += usize::from(message.event.is_some());
    }
    assert!(events > 0);
    drop(stream);
    h.sandbox.control.faults.set(Vec::new()).unwrap();
    let mut freed = false;
    for _ in 0..50 {
        match client
            .get_event(authed(GetEventRequest {
                event_id: "after-the-stream".into(),
                ..Default::default()
            }))
            .await
        {
            Ok(_) => {
                freed = true;
                break;
            }
            Err(e) if e.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(freed, "the place was never given back");
    h.stop().await;
}
