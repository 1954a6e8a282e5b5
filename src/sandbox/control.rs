//! The sandbox's test and rehearsal hooks: scripted answers, added latency, and the
//! (opt-in, bounded) log of requests and answers.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    faults::{self, Applied, Faults},
};

/// Largest request or answer body kept in a record (longer ones are cut).
const MAX_RECORDED_BODY: usize = 1 << 20;
/// Largest answer a recorded exchange passes on (tests script oversized ones).
const MAX_FORWARDED_BODY: usize = 64 << 20;

/// One exchange the sandbox served.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path, percent-encoded as received.
    pub path: String,
    /// Raw query string ("" if none).
    pub query: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
    /// The answer's status.
    pub status: u16,
    /// The answer's content type ("" if none).
    pub content_type: String,
    /// The answer's body as text.
    pub response: String,
}

/// An answer a test scripts for the next request, whatever it asks.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Content type.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long first.
    pub delay: Duration,
}

/// Hooks: scripted answers, added latency, and the log of exchanges.
///
/// Recording is off unless asked for ([`Control::record`]), and keeps at most the
/// newest `limit` exchanges: `sandbox --listen` serves other teams for days, and must
/// not grow with every request. The count of requests is always kept.
#[derive(Debug, Default)]
pub struct Control {
    recorded: Mutex<VecDeque<Exchange>>,
    record_limit: Mutex<usize>,
    served: AtomicU64,
    scripted: Mutex<VecDeque<Scripted>>,
    delay: Mutex<Duration>,
    read_delay: Mutex<Duration>,
    /// Fault rules (see [`super::faults`]).
    pub faults: Faults,
}

/// A request as it arrived, and its answer once sent.
#[derive(Debug)]
struct Exchange {
    request: Recorded,
    answer: Arc<OnceLock<(u16, String, String)>>,
}

// === impl Scripted ===

impl Scripted {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

// === impl Control ===

impl Control {
    /// Keeps the newest `limit` exchanges from now on (0 stops recording).
    pub fn record(&self, limit: usize) {
        if let Ok(mut l) = self.record_limit.lock() {
            *l = limit;
        }
        if let Ok(mut r) = self.recorded.lock() {
            while r.len() > limit {
                r.pop_front();
            }
        }
    }

    /// The exchanges recorded so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        let all = self.recorded.lock().map(|r| {
            r.iter()
                .map(|e| {
                    let mut r = e.request.clone();
                    if let Some((status, content_type, body)) = e.answer.get() {
                        r.status = *status;
                        r.content_type.clone_from(content_type);
                        r.response.clone_from(body);
                    }
                    r
                })
                .collect()
        });
        all.unwrap_or_default()
    }

    /// Forgets the exchanges recorded so far.
    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.recorded.lock() {
            r.clear();
        }
    }

    /// How many requests the sandbox has answered, recorded or not.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Answers the next request with `answer`.
    pub fn script(&self, answer: Scripted) {
        if let Ok(mut s) = self.scripted.lock() {
            s.push_back(answer);
        }
    }

    /// Delays every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.delay.lock() {
            *d = delay;
        }
    }

    /// Holds every answer to a read (GET, or a Stytch lookup or list) for `delay` after
    /// it was computed: the answer reflects the state before any write made meanwhile.
    pub fn set_read_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.read_delay.lock() {
            *d = delay;
        }
    }

    fn read_delay(&self) -> Duration {
        self.read_delay.lock().map(|d| *d).unwrap_or_default()
    }

    fn recording(&self) -> bool {
        self.record_limit.lock().is_ok_and(|l| *l > 0)
    }

    /// Logs a request as it arrives; its answer is filled in once sent.
    fn keep(&self, request: Recorded) -> Arc<OnceLock<(u16, String, String)>> {
        let answer = Arc::new(OnceLock::new());
        let limit = self.record_limit.lock().map(|l| *l).unwrap_or(0);
        if let Ok(mut all) = self.recorded.lock() {
            all.push_back(Exchange {
                request,
                answer: answer.clone(),
            });
            while all.len() > limit {
                all.pop_front();
            }
        }
        answer
    }

    fn next_scripted(&self) -> Option<Scripted> {
        self.scripted.lock().ok()?.pop_front()
    }

    fn delay(&self) -> Duration {
        self.delay.lock().map(|d| *d).unwrap_or_default()
    }
}

/// Applies added latency and scripted answers, and records the exchange when asked.
pub(super) async fn record_and_script(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.control.served.fetch_add(1, Ordering::Relaxed);
    let recording = state.control.recording();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_RECORDED_BODY)
        .await
        .unwrap_or_default();
    let record = recording.then(|| Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
        content_type: String::new(),
        response: String::new(),
    });
    let answered = record.map(|r| state.control.keep(r));
    let delay = state.control.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let decision = state.control.faults.decide(&parts.method, parts.uri.path());
    if let Some(d) = decision.filter(|d| !d.latency.is_zero()) {
        tokio::time::sleep(d.latency).await;
    }
    let fault = decision.and_then(|d| d.fault);
    if matches!(fault, Some(Applied::Outage)) {
        state.control.faults.changed().await;
    }
    let standalone = fault.and_then(|f| faults::standalone(f, parts.uri.path()));
    let response = if let Some(s) = state.control.next_scripted() {
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        scripted(s)
    } else if let Some(r) = standalone {
        r
    } else {
        let is_read = parts.method == Method::GET
            || parts.uri.path().ends_with("/lookup")
            || parts.uri.path().ends_with("/list");
        let response = next
            .run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
            .await;
        let read_delay = state.control.read_delay();
        if is_read && !read_delay.is_zero() {
            tokio::time::sleep(read_delay).await;
        }
        response
    };
    // Reshaping faults act on the answer as sent, after it was recorded whole.
    let reshaping = match fault {
        Some(f @ (Applied::Truncated | Applied::Reset | Applied::Drip(_))) => Some(f),
        _ => None,
    };
    let Some(answered) = answered else {
        return match reshaping {
            Some(f) => faults::reshape(f, response).await,
            None => response,
        };
    };
    // Recording: read the answer to keep it, then send it on unchanged.
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await else {
        return sandbox_state_lost_answer();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_RECORDED_BODY)]).into_owned();
    let _ = answered.set((parts.status.as_u16(), content_type, text));
    let response = Response::from_parts(parts, Body::from(body));
    match reshaping {
        Some(f) => faults::reshape(f, response).await,
        None => response,
    }
}

fn sandbox_state_lost_answer() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "sandbox could not read its own answer",
    )
        .into_response()
}

fn scripted(s: Scripted) -> Response {
    let mut response = (
        StatusCode::from_u16(s.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        s.body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&s.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in s.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}
