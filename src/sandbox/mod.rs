//! The sandbox: an embedded emulator of the three upstream REST surfaces
//! (fingerprint.com v4 and v3, Stytch DFP), served over HTTP on loopback.
//!
//! The gateway's real clients talk to it, so `--sandbox` runs the whole path with no
//! credentials and no network. It checks credentials the way the real APIs do, answers
//! in the shapes their OpenAPI schemas give (a test validates every answer against
//! them), and answers any well-formed id with deterministic data (see [`data`]). Ids
//! with these prefixes trigger failures:
//!
//! | prefix | answer |
//! |---|---|
//! | `notfound` | 404 with the upstream's not-found error (v3 visits: 200, no visits) |
//! | `ratelimit` | 429 with `Retry-After: 7` |
//! | `error500` | 500 with the upstream's JSON error |
//! | `html` | 502 with an HTML page, as a failing proxy sends |
//! | `slow` | the normal answer, after 3 seconds |
//! | `notready` | (event updates) 409 `state_not_ready` to the first two updates of the event |
//! | `many<N>` | (visitor ids) a visitor with exactly N visits |
//!
//! Writes are kept: an updated event reads back updated, a deleted visitor's events are
//! gone, and Stytch rules and verdict-reason overrides change later lookups and lists.
//! What it remembers is bounded ([`world`]).
//!
//! Layout: [`control`] (scripted answers, latency, the opt-in log), [`fingerprint`] and
//! [`stytch`] (the emulators), [`world`] (state), [`data`] (generated answers).

// Handlers answer early with a ready `Response`; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

pub mod control;
pub mod data;
pub mod faults;
pub mod fingerprint;
pub mod stytch;
pub mod world;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::serve::ListenerExt;
use axum::{
    Router,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;

pub use control::{Control, Recorded, Scripted};
use fingerprint::Gen;
use world::World;

/// Credentials the sandbox accepts, and the gateway uses in `--sandbox` mode.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// fingerprint.com secret API key.
    pub fingerprint_secret: String,
    /// Stytch project id.
    pub stytch_project_id: String,
    /// Stytch secret.
    pub stytch_secret: String,
    /// More fingerprint.com keys and Stytch secrets accepted besides these, as a vendor
    /// accepts the old and the new key while one is rotated.
    pub also_accepted: Vec<String>,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    creds: Arc<Credentials>,
    control: Arc<Control>,
    world: Arc<Mutex<World>>,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its hooks.
    pub control: Arc<Control>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A failure an id asks for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    NotFound,
    RateLimited,
    ServerError,
    HtmlPage,
}

// === impl Credentials ===

impl Default for Credentials {
    fn default() -> Self {
        Self {
            fingerprint_secret: "sandbox-fingerprint-secret-key".to_owned(),
            stytch_project_id: "project-test-sandbox".to_owned(),
            stytch_secret: "secret-test-sandbox".to_owned(),
            also_accepted: Vec::new(),
        }
    }
}

// === impl Sandbox ===

impl Sandbox {
    /// Serves the sandbox on `listener` until dropped or shut down.
    pub fn start(listener: TcpListener, creds: Credentials) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let control = Arc::new(Control::default());
        let state = AppState {
            creds: Arc::new(creds),
            control: control.clone(),
            world: Arc::new(Mutex::new(World::default())),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            // TCP_NODELAY: answers must not wait for delayed ACKs (see server.rs).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server failed");
            }
        });
        Ok(Self {
            addr,
            control,
            shutdown: Some(tx),
            task,
        })
    }

    /// The base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.control.faults.release();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.control.faults.release();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: AppState) -> Router {
    use axum::routing::delete;
    use fingerprint as fp;
    Router::new()
        .route("/v4/events", get(|s, h, q| fp::search(Gen::V4, s, h, q)))
        .route("/v4/edge", post(fp::edge::analyze))
        .route(
            "/v4/events/{event_id}",
            get(|s, h, p| fp::event(Gen::V4, s, h, p))
                .patch(|s, h, p, b| fp::update(Gen::V4, s, h, p, b)),
        )
        .route(
            "/v4/visitors/{visitor_id}",
            delete(|s, h, p| fp::delete(Gen::V4, s, h, p)),
        )
        .route(
            "/events/search",
            get(|s, h, q| fp::search(Gen::V3, s, h, q)),
        )
        .route(
            "/events/{request_id}",
            get(|s, h, p| fp::event(Gen::V3, s, h, p))
                .put(|s, h, p, b| fp::update(Gen::V3, s, h, p, b)),
        )
        .route(
            "/visitors/{visitor_id}",
            get(fp::visits).delete(|s, h, p| fp::delete(Gen::V3, s, h, p)),
        )
        .route("/v1/fingerprint/lookup", post(stytch::lookup))
        .route("/v1/rules/list", post(stytch::rules))
        .route("/v1/rules/set", post(stytch::set_rule))
        .route("/v1/verdict_reasons/list", post(stytch::reasons))
        .route("/v1/verdict_reasons/override", post(stytch::set_override))
        .fallback(not_routed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            control::record_and_script,
        ))
        // Added after the layer: control requests are not counted, recorded or faulted.
        .route(
            faults::CONTROL_PATH,
            get(faults::list)
                .put(faults::replace)
                .post(faults::add)
                .delete(faults::clear),
        )
        .with_state(state)
}

/// No such route: Stytch answers its `route_not_found`; fingerprint.com's paths get a
/// bare 404 page, as a router in front of an API does.
async fn not_routed(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        return answer(
            StatusCode::NOT_FOUND,
            json!({
                "status_code": 404,
                "request_id": "request-id-sandbox-route-not-found",
                "error_type": "route_not_found",
                "error_message": format!("Route not supported: {method} {}", uri.path()),
                "error_url": "https://stytch.com/docs/api/errors/404",
            }),
        );
    }
    (StatusCode::NOT_FOUND, "404 page not found").into_response()
}

fn answer(status: StatusCode, body: Json) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The answer when the sandbox's own state is unusable (a poisoned lock).
fn sandbox_state_lost() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "sandbox state lost").into_response()
}

/// A 502 HTML page, as a failing proxy in front of an API sends.
fn html_502() -> Response {
    let page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";
    let mut r = (StatusCode::BAD_GATEWAY, page).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

/// The failure an id asks for; a `slow` id waits 3 seconds and asks for none.
async fn fault_of(id: &str) -> Option<Fault> {
    let id = id.to_ascii_lowercase();
    if id.starts_with("notfound") {
        return Some(Fault::NotFound);
    }
    if id.starts_with("ratelimit") {
        return Some(Fault::RateLimited);
    }
    if id.starts_with("error500") {
        return Some(Fault::ServerError);
    }
    if id.starts_with("html") {
        return Some(Fault::HtmlPage);
    }
    if id.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    None
}
