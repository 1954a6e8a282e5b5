//! The gRPC server: our services, health, reflection, tracing, graceful shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

use crate::cache::{Cache, layer::Serving};
use crate::config::{Config, ConfigError, FingerprintConfig, Secret, StytchConfig};
use crate::edge::EdgeLayer;
use crate::metrics::Metrics;
use crate::proto::{
    self,
    v1::{
        fingerprint_service_server::FingerprintServiceServer,
        stytch_service_server::StytchServiceServer,
    },
};
use crate::resilience::{BreakerState, Guards, InFlight};
use crate::sandbox::{Credentials, Sandbox, faults::FaultRule};
use crate::service::{fingerprint::FingerprintApi, stytch::StytchApi};
use crate::shared::Local;
use crate::upstream::{Http, fingerprint::FingerprintClient, stytch::StytchClient};

/// Fully qualified names of our services, as health and reflection know them.
pub const SERVICE_NAMES: [&str; 2] = [
    "fingerprint.gateway.v1.FingerprintService",
    "fingerprint.gateway.v1.StytchService",
];

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The upstream HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// A credential cannot be used.
    #[error("{0}")]
    Credentials(String),
    /// Reflection could not load the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A setting that only the module using it can read is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener (sandbox, metrics) could not start, or the server task failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains.
///
/// On shutdown, health turns NOT_SERVING first so load balancers stop sending, then
/// in-flight RPCs get `config.shutdown_grace` to finish before the server stops.
pub async fn serve(
    listener: TcpListener,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let sandbox = if config.sandbox {
        let sandbox = start_sandbox(&mut config).await?;
        tracing::info!(url = %sandbox.base_url(), "sandbox upstreams serving");
        Some(sandbox)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new());
    let shared = match &config.redis {
        Some(redis) => {
            let account = account_of(
                config
                    .fingerprint
                    .as_ref()
                    .map(|f| crate::upstream::account_digest(f.secret_api_key.expose())),
                config.stytch.as_ref().map(|s| {
                    crate::upstream::account_digest(&format!(
                        "{}|{}",
                        s.project_id,
                        s.secret.expose()
                    ))
                }),
            );
            Some(
                crate::shared::Shared::new(redis, &account, metrics.clone()).map_err(|e| {
                    ServeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?,
            )
        }
        None => None,
    };
    let guards = Guards::new(&config.resilience, &metrics, shared.as_ref());
    let http = Http::new(
        &config.resilience,
        config.max_body_bytes,
        metrics.clone(),
        guards.clone(),
    )?;
    let fingerprint = config
        .fingerprint
        .clone()
        .map(|c| {
            FingerprintClient::new(http.clone(), c)
                .map(|client| client.with_blank_headers(&config.edge.blank_headers))
        })
        .transpose()
        .map_err(ServeError::Credentials)?;
    let stytch = config
        .stytch
        .clone()
        .map(|c| StytchClient::new(http.clone(), c));
    let cache = match &shared {
        Some(shared) => Cache::new(config.cache.clone()).with_shared(shared.clone()),
        None => Cache::new(config.cache.clone()),
    };
    // Invalidations from the other replicas, heartbeats, and Redis's health entry.
    let mut shared_tasks = vec![tokio::spawn(report_cache_size(
        cache.clone(),
        metrics.clone(),
    ))];
    if let Some(shared) = &shared {
        shared_tasks = shared.start(cache.clone());
    }
    let in_flight = InFlight::new(config.resilience.max_in_flight, metrics.clone());
    let audit = Arc::new(crate::audit::Audit::open(&config.audit_log)?);
    // No policy, no mesh, not enforced: every call is anonymous, and the hot path does
    // not look.
    let auth = if config.auth.enforce
        || config.auth.policy_file.is_some()
        || config.auth.mesh != crate::config::Mesh::None
        || config.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
    {
        let auth = crate::auth::Auth::new(config.auth.clone()).map_err(|e| {
            ServeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })?;
        if let Some(watch) = auth.watch() {
            shared_tasks.push(watch);
        }
        Some(auth)
    } else {
        None
    };
    let tls = match &config.tls {
        Some(tls) => {
            let tls = crate::tls::Tls::new(tls.clone()).map_err(|e| {
                ServeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
            shared_tasks.push(tls.watch());
            Some(tls)
        }
        None => None,
    };
    let serving = Arc::new(Serving {
        cache: cache.clone(),
        metrics: metrics.clone(),
        in_flight: in_flight.clone(),
        default_deadline: config.resilience.default_deadline,
        auth,
        audit: audit.clone(),
    });
    let fingerprint_api = FingerprintApi::new(
        fingerprint,
        cache.clone(),
        config.sealed_result_keys.clone(),
        config.webhook_secrets.clone(),
    );
    let stytch_api = StytchApi::new(stytch, cache.clone());
    // The edge decisions use the same live client, so a key rotation reaches them too.
    let screen = crate::screen::Screen::new(
        &config.edge,
        fingerprint_api.secrets().client,
        metrics.clone(),
        audit.clone(),
    )
    .map_err(|e| ServeError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    if let Some(screen) = &screen {
        shared_tasks.push(screen.watch());
    }
    if !config.secret_files.is_empty() {
        shared_tasks.push(rotate(
            &config,
            &fingerprint_api,
            &stytch_api,
            cache.clone(),
            shared.clone(),
        ));
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    // Each service reports SERVING only when its upstream is configured.
    let enabled = [config.fingerprint.is_some(), config.stytch.is_some()];
    for (name, on) in SERVICE_NAMES.iter().zip(enabled) {
        let status = if on {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        health.set_service_status(*name, status).await;
    }
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    if screen.is_some() {
        health
            .set_service_status(
                crate::rpc::ENVOY_AUTHZ_SERVICE,
                tonic_health::ServingStatus::Serving,
            )
            .await;
    }
    // Each upstream's breaker, mirrored as a health service of its own. The gateway's
    // own status stays SERVING while a breaker is open: every replica shares the same
    // vendor, so pulling them from rotation would turn a vendor outage into a total one
    // (cached and stale answers, Unseal and webhook checks all still work).
    if let Some(shared) = &shared {
        shared_tasks.push(tokio::spawn(mirror_redis(shared.clone(), health.clone())));
    }
    let breaker_watchers: Vec<_> = [&guards.fingerprint, &guards.stytch]
        .into_iter()
        .map(|guard| {
            let name = match guard.upstream() {
                crate::error::Upstream::Fingerprint => BREAKER_HEALTH_NAMES[0],
                crate::error::Upstream::Stytch => BREAKER_HEALTH_NAMES[1],
            };
            tokio::spawn(mirror_breaker(
                guard.breaker.subscribe(),
                health.clone(),
                name,
            ))
        })
        .collect();

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let grace = config.shutdown_grace;
    let health_on_stop = health.clone();
    let on_signal = async move {
        shutdown.await;
        tracing::info!(
            ?grace,
            "shutting down: health NOT_SERVING, draining in-flight calls"
        );
        health_on_stop
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health_on_stop
            .set_service_status(
                crate::rpc::ENVOY_AUTHZ_SERVICE,
                tonic_health::ServingStatus::NotServing,
            )
            .await;
        for name in SERVICE_NAMES {
            health_on_stop
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
    };

    // Metrics bind before serving, so a taken port fails start-up instead of later.
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = metrics_listener.map(|listener| {
        tokio::spawn(crate::metrics::serve(listener, metrics.clone(), async {
            let _ = metrics_stopped.await;
        }))
    });

    let router = Server::builder()
        // Bounded: calls a connection may hold open (clients queue the rest).
        .max_concurrent_streams(Some(config.resilience.max_streams_per_connection))
        .http2_max_pending_accept_reset_streams(Some(
            config.resilience.max_streams_per_connection as usize,
        ))
        // Recycled (GOAWAY; `connections::limit` closes it after the grace), so that
        // callers' long-lived connections spread over replicas added since. tonic's
        // own grace is not used: with one set, tonic 0.14 skips the GOAWAY and only
        // closes the connection at age + grace.
        .max_connection_age(config.max_connection_age)
        // Every call is traced, counted and timed here, including rejected ones and cache
        // hits; a hit is answered from its stored frame without reaching the services,
        // and a miss reaches them once for all identical concurrent calls.
        .layer(EdgeLayer::new(serving.clone()))
        .add_service(health_service)
        .add_optional_service(config.reflection.then_some(reflection_v1))
        .add_optional_service(config.reflection.then_some(reflection_v1alpha))
        .add_service(FingerprintServiceServer::new(fingerprint_api))
        .add_service(StytchServiceServer::new(stytch_api))
        .add_optional_service(
            screen
                .clone()
                .map(envoy_types::ext_authz::v3::pb::AuthorizationServer::new),
        );

    // The HTTP listener (forward-auth), bound before serving like the metrics one.
    let http_listener = match config.edge.http_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = match (http_listener, screen) {
        (Some(listener), Some(screen)) => {
            tracing::info!(addr = ?listener.local_addr().ok(), "forward-auth serving at /auth");
            let app = crate::screen::forward::router(screen)
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            Some(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = http_stopped.await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "forward-auth listener failed");
                }
            }))
        }
        _ => None,
    };

    // Without TCP_NODELAY, answers larger than a segment wait ~40 ms for delayed ACKs.
    // TCP keepalive (the kernel's probes after 30 s of silence, every 10 s, 3 unanswered
    // close it) keeps idle connections open through NATs and L4 balancers and finds
    // dead peers. It replaced HTTP/2 PINGs, whose timer hyper polls on every frame:
    // about 700 instructions, 1.4% of a health Check.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
        .with_keepalive_interval(Some(Duration::from_secs(10)))
        .with_keepalive_retries(Some(3));
    let incoming = crate::resilience::connections::limit(
        incoming,
        crate::resilience::connections::Limits {
            max: config.resilience.max_connections,
            life: config.max_connection_age + config.max_connection_age_grace,
            tls: tls.clone(),
        },
        metrics.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_rx.await;
    }));
    on_signal.await;
    // Stop accepting; tonic lets in-flight calls finish, bounded by the grace period.
    let _ = stop_tx.send(());
    let mut server = server;
    // No call starts an attempt, backoff or wait it could not finish within the grace.
    guards.drain_by(tokio::time::Instant::now() + grace);
    let result = match tokio::time::timeout(grace, &mut server).await {
        Ok(joined) => joined.map_err(|e| ServeError::Io(std::io::Error::other(e)))?,
        Err(_) => {
            tracing::warn!(
                ?grace,
                cut_off = in_flight.in_flight(),
                "grace period over; cutting off the calls still in flight"
            );
            server.abort();
            Ok(())
        }
    };
    for watcher in breaker_watchers {
        watcher.abort();
    }
    for task in shared_tasks {
        task.abort();
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    let _ = metrics_stop.send(());
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let _ = http_stop.send(());
    if let Some(task) = http_task {
        let _ = tokio::time::timeout(grace, task).await;
    }
    result.map_err(ServeError::from)
}

/// The health service names that mirror each upstream's circuit breaker: SERVING while
/// it is closed or half-open, NOT_SERVING while it is open.
pub const BREAKER_HEALTH_NAMES: [&str; 2] = [
    "fingerprint.gateway.v1.upstream.fingerprint",
    "fingerprint.gateway.v1.upstream.stytch",
];

/// The account identity of both upstreams' credentials (the shared cache's key space).
fn account_of(fingerprint: Option<String>, stytch: Option<String>) -> String {
    crate::upstream::account_digest(&format!(
        "{}|{}",
        fingerprint.unwrap_or_default(),
        stytch.unwrap_or_default()
    ))
}

/// Watches the secret files and applies what changes (see [`crate::secrets`]).
fn rotate(
    config: &Config,
    fingerprint_api: &FingerprintApi,
    stytch_api: &StytchApi,
    cache: Cache,
    shared: Option<Arc<crate::shared::Shared>>,
) -> tokio::task::JoinHandle<()> {
    let files = config
        .secret_files
        .iter()
        .map(|(setting, path)| {
            let now = crate::secrets::read(path).ok();
            crate::secrets::Watched::new(setting, path.clone(), now.as_deref())
        })
        .collect();
    let fp = fingerprint_api.secrets();
    let st = stytch_api.secrets();
    crate::secrets::watch(files, move |setting, value| {
        let credentials = match setting {
            "FINGERPRINT_SECRET_API_KEY" => {
                let current = fp.client.get();
                let client = current
                    .as_ref()
                    .as_ref()
                    .ok_or("fingerprint.com is not configured")?;
                let next = client.rotated(Secret::new(value))?;
                fp.client.set(Some(Arc::new(next)));
                true
            }
            "STYTCH_SECRET" => {
                let current = st.get();
                let client = current
                    .as_ref()
                    .as_ref()
                    .ok_or("Stytch is not configured")?;
                st.set(Some(Arc::new(client.rotated(Secret::new(value)))));
                true
            }
            "FINGERPRINT_SEALED_RESULT_KEYS" => {
                fp.sealed_keys.set(crate::config::sealed_keys_from(value)?);
                false
            }
            "FINGERPRINT_WEBHOOK_SECRETS" => {
                fp.webhook_secrets
                    .set(crate::config::webhook_secrets_from(value)?);
                false
            }
            other => return Err(format!("{other} is not rotated live")),
        };
        if credentials {
            // Another key may be another account: never serve the old one's answers.
            cache.clear_local();
            if let Some(shared) = &shared {
                let fp_account = fp.client.get().as_ref().as_ref().map(|c| c.account());
                let st_account = st.get().as_ref().as_ref().map(|c| c.account());
                shared.set_account(&account_of(fp_account, st_account));
            }
        }
        Ok(())
    })
}

/// Keeps the cache-size gauges current.
async fn report_cache_size(cache: Cache, metrics: Arc<Metrics>) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        let (entries, bytes) = cache.usage().await;
        metrics.cache_size(bytes, entries);
    }
}

/// The health service name that mirrors whether the shared Redis answers (only with
/// `GATEWAY_REDIS_URL`). The gateway's own status stays SERVING without it.
pub const REDIS_HEALTH_NAME: &str = "fingerprint.gateway.v1.redis";

/// Mirrors whether Redis answers into the health service [`REDIS_HEALTH_NAME`].
async fn mirror_redis(
    shared: Arc<crate::shared::Shared>,
    health: tonic_health::server::HealthReporter,
) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let mut last = None;
    loop {
        every.tick().await;
        let up = shared.is_up();
        if last != Some(up) {
            let status = if up {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            health.set_service_status(REDIS_HEALTH_NAME, status).await;
            last = Some(up);
        }
    }
}

/// Mirrors a breaker's state into the health service `name`.
async fn mirror_breaker(
    mut state: tokio::sync::watch::Receiver<BreakerState>,
    health: tonic_health::server::HealthReporter,
    name: &'static str,
) {
    loop {
        let status = match *state.borrow_and_update() {
            BreakerState::Open => tonic_health::ServingStatus::NotServing,
            BreakerState::Closed | BreakerState::HalfOpen => tonic_health::ServingStatus::Serving,
        };
        health.set_service_status(name, status).await;
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// The embedded sandbox's start-up fault rules (`GATEWAY_SANDBOX_FAULTS`): the settings
/// table keeps their text, the sandbox reads it. `main` calls this before binding, so a
/// bad rule exits with the usage code like any other setting.
pub fn sandbox_faults(config: &Config) -> Result<Vec<FaultRule>, ConfigError> {
    let rules = config
        .sandbox_faults
        .as_deref()
        .map(crate::sandbox::faults::load_rules)
        .transpose()
        .map_err(|reason| ConfigError::Invalid {
            name: "GATEWAY_SANDBOX_FAULTS",
            reason,
        })?;
    Ok(rules.unwrap_or_default())
}

/// Starts the embedded sandbox and points both upstreams at it.
async fn start_sandbox(config: &mut Config) -> Result<Sandbox, ServeError> {
    let creds = Credentials::default();
    let listener = TcpListener::bind(config.sandbox_listen).await?;
    let sandbox = Sandbox::start(listener, creds.clone())?;
    sandbox
        .control
        .faults
        .set(sandbox_faults(config)?)
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
    let base = reqwest::Url::parse(&sandbox.base_url())
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
    config.fingerprint = Some(FingerprintConfig {
        generation: config.fingerprint_generation,
        base_url: base.clone(),
        secret_api_key: Secret::new(creds.fingerprint_secret),
    });
    config.stytch = Some(StytchConfig {
        base_url: base,
        project_id: creds.stytch_project_id,
        secret: Secret::new(creds.stytch_secret),
    });
    Ok(sandbox)
}
