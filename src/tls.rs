//! TLS on the gateway's own listener (rustls), optional client-certificate
//! verification (mTLS), and what each connection tells about its peer.
//!
//! `GATEWAY_TLS_CERT_FILE` and `GATEWAY_TLS_KEY_FILE` (PEM) turn TLS on;
//! `GATEWAY_TLS_CLIENT_CA_FILE` (PEM bundle) makes client certificates required and
//! verified against it. The files are re-read when they change (checked every second,
//! and on SIGHUP): new connections get the new certificate, established ones keep
//! theirs. A set of files that does not load is refused with an error log; the
//! previous one stays.
//!
//! A verified client certificate names the caller: its SPIFFE id (a `spiffe://` URI
//! SAN), else its subject CN (which the `auth` module reads).

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, RwLock},
    time::SystemTime,
};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

use crate::config::TlsConfig;

/// What a connection tells about its peer (in every request's extensions).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// The verified client certificate's identity (mTLS).
    pub identity: Option<String>,
}

/// The server TLS configuration in force, reloaded when its files change.
#[derive(Debug)]
pub struct Tls {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    stamp: RwLock<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// Loads the files; an error names the file that does not hold.
    pub fn new(config: TlsConfig) -> Result<Arc<Self>, String> {
        let server = build(&config)?;
        let stamp = stamps(&config);
        Ok(Arc::new(Self {
            config,
            current: RwLock::new(Arc::new(server)),
            stamp: RwLock::new(stamp),
        }))
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Whether client certificates are required.
    pub fn mutual(&self) -> bool {
        self.config.client_ca.is_some()
    }

    /// Re-reads the files if they changed (or when `force`).
    pub fn reload(&self, force: bool) {
        let now = stamps(&self.config);
        let last = self.stamp.read().map(|s| s.clone()).unwrap_or_default();
        if !force && now == last {
            return;
        }
        if let Ok(mut s) = self.stamp.write() {
            *s = now;
        }
        match build(&self.config) {
            Ok(server) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(server);
                }
                tracing::info!("TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS files refused; the previous certificate stays in force");
            }
        }
    }

    /// Watches the files: every second, and on SIGHUP.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut recheck = crate::secrets::Recheck::new();
            loop {
                let forced = recheck.next().await;
                tls.reload(forced);
            }
        })
    }
}

fn stamps(config: &TlsConfig) -> Vec<Option<SystemTime>> {
    [
        Some(&config.cert),
        Some(&config.key),
        config.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

fn build(config: &TlsConfig) -> Result<ServerConfig, String> {
    let certs = certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| format!("GATEWAY_TLS_KEY_FILE {}: {e}", config.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs_named(ca, "GATEWAY_TLS_CLIENT_CA_FILE")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("GATEWAY_TLS_CLIENT_CA_FILE {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("GATEWAY_TLS_CLIENT_CA_FILE {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE do not match: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(server)
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    certs_named(path, "GATEWAY_TLS_CERT_FILE")
}

fn certs_named(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{setting} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting} {}: no certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The identity a verified client certificate names: its `spiffe://` URI SAN, else its
/// subject CN.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("spiffe://")
            {
                return Some((*uri).to_owned());
            }
        }
    }
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}
