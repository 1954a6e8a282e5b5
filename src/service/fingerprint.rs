//! `FingerprintService`: thin handlers over the fingerprint.com client.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::page::{self, Binding};
use super::{deadline, tagged, validate};
use crate::cache::{Cache, Invalidation, Tag};
use crate::config::{Generation, SealedKey, Secret};
use crate::convert::{self, json::struct_to_json, list::EventPage, typed::Answer};
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    DeleteVisitorDataRequest, DeleteVisitorDataResponse, Event, EventFilter, GetEventRequest,
    GetVisitsRequest, GetVisitsResponse, SearchEventsRequest, SearchEventsResponse,
    StreamEventsRequest, StreamEventsResponse, UnsealEventRequest, UnsealEventResponse,
    UpdateEventRequest, UpdateEventResponse, VerifyWebhookSignatureRequest,
    VerifyWebhookSignatureResponse, fingerprint_service_server::FingerprintService,
};
use crate::proto::wire::GetEventResponse;
use crate::rpc::Rpc;
use crate::secrets::Live;
use crate::upstream::fingerprint::{FingerprintClient, V4_PAGE_MAX, VisitsFilter};

/// Default and largest `GetVisitsRequest.page_size` (v3's default and largest page;
/// under v4 the gateway fetches several upstream pages).
pub const VISITS_PAGE: (u32, u32) = (100, 500);
/// Default and largest `SearchEventsRequest.page_size` (both generations' own).
pub const SEARCH_PAGE: (u32, u32) = (10, 100);
/// Largest `SearchEventsRequest.max_total_size` (v4 `total_hits`).
pub const MAX_TOTAL_SIZE: u32 = 1000;
/// Upstream page size StreamEvents uses: the largest both generations allow.
pub const STREAM_PAGE: u32 = 100;
/// How often StreamEvents waits out an upstream 429 on one page before giving up.
pub const STREAM_RATE_LIMIT_RETRIES: u32 = 5;

/// Longest `UpdateEventRequest.tags`, as JSON.
pub const MAX_TAGS_BYTES: usize = 16 * 1024;
/// Longest webhook body accepted.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long UpdateEvent keeps retrying `409 state_not_ready` when the caller set no deadline.
pub const NOT_READY_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The `FingerprintService` implementation.
#[derive(Clone)]
pub struct FingerprintApi {
    client: Arc<Live<Option<Arc<FingerprintClient>>>>,
    cache: Cache,
    sealed_keys: Arc<Live<Vec<SealedKey>>>,
    webhook_secrets: Arc<Live<Vec<Secret>>>,
}

/// What a rotation replaces in [`FingerprintApi`] (shared with it).
#[derive(Clone)]
pub struct FingerprintSecrets {
    /// The upstream client (its key).
    pub client: Arc<Live<Option<Arc<FingerprintClient>>>>,
    /// Sealed-result keys.
    pub sealed_keys: Arc<Live<Vec<SealedKey>>>,
    /// Webhook secrets.
    pub webhook_secrets: Arc<Live<Vec<Secret>>>,
}

/// The answer stream of StreamEvents.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

/// Where a StreamEvents call is: the page in hand, and how to get the next.
struct StreamState {
    client: Arc<FingerprintClient>,
    filter: EventFilter,
    binding: Binding,
    /// The upstream key of the next page; empty once the last page was fetched.
    next_key: String,
    fetched_any: bool,
    /// The events of the current page not sent yet (at most one upstream page).
    buffer: VecDeque<Event>,
    /// Envelope leftovers of the current page, sent with its first event.
    unmapped: Option<prost_types::Struct>,
    sent: u64,
    max: u64,
    deadline: Option<Instant>,
    done: bool,
}

// === impl FingerprintApi ===

impl FingerprintApi {
    /// The service; `client` is `None` when fingerprint.com is not configured.
    pub fn new(
        client: Option<FingerprintClient>,
        cache: Cache,
        sealed_keys: Vec<SealedKey>,
        webhook_secrets: Vec<Secret>,
    ) -> Self {
        Self {
            client: Arc::new(Live::new(client.map(Arc::new))),
            cache,
            sealed_keys: Arc::new(Live::new(sealed_keys)),
            webhook_secrets: Arc::new(Live::new(webhook_secrets)),
        }
    }

    /// The handles a rotation replaces.
    pub fn secrets(&self) -> FingerprintSecrets {
        FingerprintSecrets {
            client: self.client.clone(),
            sealed_keys: self.sealed_keys.clone(),
            webhook_secrets: self.webhook_secrets.clone(),
        }
    }

    /// The client in use now: the call keeps it (and its key) to the end.
    fn client(&self) -> Result<Arc<FingerprintClient>, Error> {
        (*self.client.get()).clone().ok_or(Error::NotConfigured {
            what: "fingerprint.com",
            upstream: Some(Upstream::Fingerprint),
            setting: "FINGERPRINT_SECRET_API_KEY",
        })
    }
}

fn unsupported(field: &'static str, generation: Generation) -> Error {
    Error::Unsupported {
        field,
        what: match generation {
            Generation::V3 => "the fingerprint.com v3 API the gateway is configured for",
            Generation::V4 => "the fingerprint.com v4 API the gateway is configured for",
        },
    }
}

/// Checks a filter: strict where a value shapes the URL, open where the upstream owns
/// the vocabulary (an unknown word goes upstream, whose 400 says what is wrong).
fn check_filter(f: &EventFilter, generation: Generation) -> Result<(), Error> {
    validate::window(
        ("filter.start", "filter.end"),
        f.start.as_ref(),
        f.end.as_ref(),
    )?;
    for (field, value) in [
        ("filter.visitor_id", &f.visitor_id),
        ("filter.high_recall_id", &f.high_recall_id),
        ("filter.proximity_id", &f.proximity_id),
    ] {
        validate::optional_id(field, value)?;
    }
    for (field, value) in [
        ("filter.linked_id", &f.linked_id),
        ("filter.url", &f.url),
        ("filter.bundle_id", &f.bundle_id),
        ("filter.package_name", &f.package_name),
        ("filter.origin", &f.origin),
        ("filter.sdk_version", &f.sdk_version),
    ] {
        validate::text(field, value)?;
    }
    validate::ip_or_cidr("filter.ip_address", &f.ip_address)?;
    validate::digits("filter.asn", &f.asn)?;
    for (field, value) in [
        ("filter.bot", &f.bot),
        ("filter.bot_info", &f.bot_info),
        ("filter.vpn_confidence", &f.vpn_confidence),
        (
            "filter.rare_device_percentile_bucket",
            &f.rare_device_percentile_bucket,
        ),
        ("filter.sdk_platform", &f.sdk_platform),
        (
            "filter.incremental_identification_status",
            &f.incremental_identification_status,
        ),
    ] {
        validate::word(field, value)?;
    }
    for (field, values) in [
        ("filter.bot_info_category", &f.bot_info_category),
        ("filter.bot_info_identity", &f.bot_info_identity),
        ("filter.bot_info_confidence", &f.bot_info_confidence),
        ("filter.source", &f.source),
    ] {
        validate::words(field, values)?;
    }
    for (field, values) in [
        ("filter.bot_info_provider", &f.bot_info_provider),
        ("filter.bot_info_name", &f.bot_info_name),
        ("filter.environment", &f.environment),
    ] {
        validate::tokens(field, values)?;
    }
    if f.proximity_precision_radius.is_some_and(|r| r <= 0) {
        return Err(Error::invalid(
            "filter.proximity_precision_radius",
            "must be a positive number of metres",
        ));
    }
    if let Some(score) = f.min_suspect_score
        && (!score.is_finite() || score < 0.0)
    {
        return Err(Error::invalid(
            "filter.min_suspect_score",
            "must be a finite number >= 0",
        ));
    }
    // Filters one generation has and the other lacks fail clearly instead of being ignored.
    let v4_only: [(&'static str, bool); 17] = [
        ("filter.high_recall_id", !f.high_recall_id.is_empty()),
        ("filter.asn", !f.asn.is_empty()),
        ("filter.url", !f.url.is_empty()),
        ("filter.bundle_id", !f.bundle_id.is_empty()),
        ("filter.package_name", !f.package_name.is_empty()),
        ("filter.origin", !f.origin.is_empty()),
        ("filter.bot_info", !f.bot_info.is_empty()),
        ("filter.bot_info_category", !f.bot_info_category.is_empty()),
        ("filter.bot_info_identity", !f.bot_info_identity.is_empty()),
        (
            "filter.bot_info_confidence",
            !f.bot_info_confidence.is_empty(),
        ),
        ("filter.bot_info_provider", !f.bot_info_provider.is_empty()),
        ("filter.bot_info_name", !f.bot_info_name.is_empty()),
        (
            "filter.incremental_identification_status",
            !f.incremental_identification_status.is_empty(),
        ),
        ("filter.source", !f.source.is_empty()),
        ("filter.tor_node", f.tor_node.is_some()),
        ("filter.simulator", f.simulator.is_some()),
        ("filter.active_call", f.active_call.is_some()),
    ];
    let v3_only = [
        ("filter.ip_blocklist", f.ip_blocklist.is_some()),
        ("filter.datacenter", f.datacenter.is_some()),
        (
            "filter.proximity_precision_radius",
            f.proximity_precision_radius.is_some(),
        ),
    ];
    let lacking: &[(&'static str, bool)] = match generation {
        Generation::V3 => &v4_only,
        Generation::V4 => &v3_only,
    };
    if let Some((field, _)) = lacking.iter().find(|(_, set)| *set) {
        return Err(unsupported(field, generation));
    }
    Ok(())
}

/// Reads pages of a v4 visitor search until `size` visits arrived or the upstream has
/// no more, starting after `key`. The last upstream page asked for exactly what was
/// still missing, so its key resumes right after the last visit returned.
async fn visits_v4(
    client: &FingerprintClient,
    filter: &EventFilter,
    size: u32,
    mut key: String,
) -> Result<EventPage, Error> {
    let mut out = EventPage::default();
    loop {
        let missing = size.saturating_sub(u32::try_from(out.events.len()).unwrap_or(u32::MAX));
        let ask = missing.min(V4_PAGE_MAX);
        let body = client.search(filter, ask, &key, None).await?;
        let page = convert::list::search_answer(Generation::V4, body);
        let got = page.events.len();
        out.events.extend(page.events);
        out.unmapped.extend(page.unmapped);
        key = page.next_key;
        // Stop on the last page, when enough arrived, or on a short page.
        if key.is_empty() || got == 0 || u32::try_from(got).unwrap_or(u32::MAX) < ask {
            break;
        }
        if u32::try_from(out.events.len()).unwrap_or(u32::MAX) >= size {
            break;
        }
    }
    out.next_key = key;
    Ok(out)
}

/// The events and visitors in an answer, for the cache's invalidation.
fn event_tags(events: &[Event]) -> Vec<Tag> {
    let mut tags = Vec::with_capacity(events.len() * 2);
    for e in events {
        push_tags(
            &mut tags,
            &e.event_id,
            e.identification.as_ref().map(|i| i.visitor_id.as_str()),
        );
    }
    tags
}

/// An event's tags: its id (when it has one), and its visitor's when it has an
/// `identification`.
fn push_tags(tags: &mut Vec<Tag>, event_id: &str, visitor_id: Option<&str>) {
    if !event_id.is_empty() {
        tags.push(Tag::event(event_id));
    }
    if let Some(visitor_id) = visitor_id {
        tags.push(Tag::visitor(visitor_id));
    }
}

fn unmapped(map: serde_json::Map<String, serde_json::Value>) -> Option<prost_types::Struct> {
    (!map.is_empty()).then(|| convert::json::to_struct(map))
}

#[tonic::async_trait]
impl FingerprintService for FingerprintApi {
    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        let req = request.into_inner();
        validate::id("event_id", &req.event_id)?;
        validate::optional_id("ruleset_id", &req.ruleset_id)?;
        let client = self.client()?;
        let generation = client.generation();
        if !req.ruleset_id.is_empty() && generation == Generation::V3 {
            return Err(unsupported("ruleset_id", Generation::V3).into());
        }
        let (answer, tags) = match client.get_event(&req.event_id, &req.ruleset_id).await? {
            // A v4 event of exactly the published shape, already encoded.
            Answer::Typed(event) => {
                let mut tags = Vec::with_capacity(2);
                push_tags(&mut tags, &event.event_id, event.visitor_id.as_deref());
                (GetEventResponse::Encoded(event.bytes), tags)
            }
            Answer::Json(body) => {
                let event = convert::event(generation, body);
                let tags = event_tags(std::slice::from_ref(&event));
                (GetEventResponse::Event(Some(Box::new(event))), tags)
            }
        };
        Ok(tagged(answer, tags))
    }

    async fn get_visits(
        &self,
        request: Request<GetVisitsRequest>,
    ) -> Result<Response<GetVisitsResponse>, Status> {
        let req = request.into_inner();
        validate::id("visitor_id", &req.visitor_id)?;
        let size = page::size("page_size", req.page_size, VISITS_PAGE.0, VISITS_PAGE.1)?;
        validate::text("linked_id", &req.linked_id)?;
        validate::window(("start", "end"), req.start.as_ref(), req.end.as_ref())?;
        let client = self.client()?;
        let generation = client.generation();
        validate::optional_id("event_id", &req.event_id)?;
        if req.start.is_some() && generation == Generation::V3 {
            return Err(unsupported("start", Generation::V3).into());
        }
        if !req.event_id.is_empty() && generation == Generation::V4 {
            return Err(unsupported("event_id", Generation::V4).into());
        }
        let binding = Binding::new(
            Rpc::GetVisits,
            client.identity(),
            &GetVisitsRequest {
                page_size: 0,
                page_token: String::new(),
                ..req.clone()
            },
        );
        let upstream_key = binding.unwrap("page_token", &req.page_token)?;
        let (visitor_id, page) = match generation {
            Generation::V4 => {
                let filter = EventFilter {
                    visitor_id: req.visitor_id.clone(),
                    linked_id: req.linked_id.clone(),
                    start: req.start,
                    end: req.end,
                    ..EventFilter::default()
                };
                let page = visits_v4(&client, &filter, size, upstream_key).await?;
                (req.visitor_id.clone(), page)
            }
            Generation::V3 => {
                let filter = VisitsFilter {
                    event_id: &req.event_id,
                    linked_id: &req.linked_id,
                    end: req.end.as_ref(),
                };
                let body = client
                    .visits_v3(&req.visitor_id, filter, size, &upstream_key)
                    .await?;
                convert::list::visits_page_v3(body, &req.visitor_id)
            }
        };
        let mut tags = event_tags(&page.events);
        tags.push(Tag::visitor(&visitor_id));
        let answer = GetVisitsResponse {
            visitor_id,
            visits: page.events,
            next_page_token: binding.wrap(&page.next_key),
            unmapped: unmapped(page.unmapped),
        };
        Ok(tagged(answer, tags))
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchEventsResponse>, Status> {
        let req = request.into_inner();
        let client = self.client()?;
        let generation = client.generation();
        let filter = req.filter.clone().unwrap_or_default();
        check_filter(&filter, generation)?;
        let size = page::size("page_size", req.page_size, SEARCH_PAGE.0, SEARCH_PAGE.1)?;
        let total = match u32::try_from(req.max_total_size) {
            Err(_) => {
                return Err(Error::invalid(
                    "max_total_size",
                    "is negative; use 0 to not count matches",
                )
                .into());
            }
            Ok(0) => None,
            Ok(n) => Some(n.min(MAX_TOTAL_SIZE)),
        };
        if total.is_some() && generation == Generation::V3 {
            return Err(unsupported("max_total_size", Generation::V3).into());
        }
        let binding = Binding::new(
            Rpc::SearchEvents,
            client.identity(),
            &SearchEventsRequest {
                page_size: 0,
                page_token: String::new(),
                ..req.clone()
            },
        );
        let upstream_key = binding.unwrap("page_token", &req.page_token)?;
        let body = client.search(&filter, size, &upstream_key, total).await?;
        let page = convert::list::search_answer(generation, body);
        let tags = event_tags(&page.events);
        let answer = SearchEventsResponse {
            events: page.events,
            next_page_token: binding.wrap(&page.next_key),
            total_size: page
                .total
                .map(|t| i32::try_from(t.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)),
            unmapped: unmapped(page.unmapped),
        };
        Ok(tagged(answer, tags))
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let deadline = deadline(&request).map(|d| Instant::now() + d);
        let req = request.into_inner();
        let client = self.client()?;
        let filter = req.filter.clone().unwrap_or_default();
        check_filter(&filter, client.generation())?;
        let max = u64::try_from(req.max_events).map_err(|_| {
            Error::invalid("max_events", "is negative; use 0 for every matching event")
        })?;
        let binding = Binding::new(
            Rpc::StreamEvents,
            client.identity(),
            &StreamEventsRequest {
                filter: Some(filter.clone()),
                ..StreamEventsRequest::default()
            },
        );
        let next_key = binding.unwrap("page_token", &req.page_token)?;
        let state = StreamState {
            client,
            filter,
            binding,
            fetched_any: !next_key.is_empty(),
            next_key,
            buffer: VecDeque::new(),
            unmapped: None,
            sent: 0,
            max,
            deadline,
            done: false,
        };
        // Pull-driven: the next upstream page is fetched only when the caller has taken
        // every event of the last one, so a slow reader slows the paging, and nothing
        // outlives a cancelled call (dropping the stream drops the state).
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_event(
        &self,
        request: Request<UpdateEventRequest>,
    ) -> Result<Response<UpdateEventResponse>, Status> {
        // The call's deadline (the caller's, or GATEWAY_DEFAULT_DEADLINE), set by the edge.
        let deadline = crate::resilience::current_deadline().map_or(NOT_READY_RETRY_BUDGET, |at| {
            at.saturating_duration_since(tokio::time::Instant::now())
        });
        let req = request.into_inner();
        validate::id("event_id", &req.event_id)?;
        if let Some(linked) = &req.linked_id {
            validate::text("linked_id", linked)?;
            if linked.len() > validate::MAX_ID_BYTES {
                return Err(Error::invalid("linked_id", "is longer than 256 bytes").into());
            }
        }
        let tags = req
            .tags
            .as_ref()
            .map(|t| serde_json::Value::Object(struct_to_json(t)));
        if let Some(t) = &tags
            && t.to_string().len() > MAX_TAGS_BYTES
        {
            return Err(Error::invalid(
                "tags",
                format!("is larger than {MAX_TAGS_BYTES} bytes as JSON"),
            )
            .into());
        }
        if req.linked_id.is_none() && tags.is_none() && req.suspect.is_none() {
            return Err(Error::invalid(
                "linked_id",
                "nothing to change: set linked_id, tags or suspect",
            )
            .into());
        }
        let client = self.client()?;
        // 409 state_not_ready means "not applied yet, try again": retrying cannot apply
        // a different state, so retry with backoff while the caller's deadline allows.
        // A caller's deadline can be years away; retries never need more than a minute.
        let give_up = Instant::now() + deadline.min(Duration::from_secs(60));
        let mut backoff = Duration::from_millis(100);
        let result = loop {
            let attempt = client
                .update_event(
                    &req.event_id,
                    req.linked_id.as_deref(),
                    tags.clone(),
                    req.suspect,
                )
                .await;
            match attempt {
                Err(Error::Api(api)) if api.is_not_ready() => {
                    let wait = api
                        .retry_after
                        .unwrap_or(backoff)
                        .min(Duration::from_secs(2));
                    if Instant::now() + wait >= give_up {
                        break Err(Error::Api(api));
                    }
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        // Whatever the outcome, the event may have changed: drop what could show it.
        self.cache
            .invalidate(Invalidation {
                upstream: Upstream::Fingerprint,
                rpcs: vec![Rpc::GetVisits, Rpc::SearchEvents],
                tags: vec![Tag::event(&req.event_id)],
                all: false,
            })
            .await;
        result?;
        Ok(Response::new(UpdateEventResponse {}))
    }

    async fn delete_visitor_data(
        &self,
        request: Request<DeleteVisitorDataRequest>,
    ) -> Result<Response<DeleteVisitorDataResponse>, Status> {
        let req = request.into_inner();
        validate::id("visitor_id", &req.visitor_id)?;
        let client = self.client()?;
        // Never retried: the upstream allows few deletions, and its 429 must reach the caller.
        let result = client.delete_visitor(&req.visitor_id).await;
        self.cache
            .invalidate(Invalidation {
                upstream: Upstream::Fingerprint,
                rpcs: Vec::new(),
                tags: vec![Tag::visitor(&req.visitor_id)],
                all: false,
            })
            .await;
        result?;
        Ok(Response::new(DeleteVisitorDataResponse {}))
    }

    async fn unseal_event(
        &self,
        request: Request<UnsealEventRequest>,
    ) -> Result<Response<UnsealEventResponse>, Status> {
        let req = request.into_inner();
        let keys = self.sealed_keys.get();
        let event = crate::sealed::unseal(&req.sealed, &keys).map_err(Error::from)?;
        Ok(Response::new(UnsealEventResponse { event: Some(event) }))
    }

    async fn verify_webhook_signature(
        &self,
        request: Request<VerifyWebhookSignatureRequest>,
    ) -> Result<Response<VerifyWebhookSignatureResponse>, Status> {
        let req = request.into_inner();
        let webhook_secrets = self.webhook_secrets.get();
        if webhook_secrets.is_empty() {
            return Err(Error::NotConfigured {
                what: "webhook verification",
                upstream: None,
                setting: "FINGERPRINT_WEBHOOK_SECRETS",
            }
            .into());
        }
        if req.header.len() > crate::webhook::MAX_HEADER_BYTES {
            return Err(Error::invalid(
                "header",
                format!("is longer than {} bytes", crate::webhook::MAX_HEADER_BYTES),
            )
            .into());
        }
        if req.body.len() > MAX_WEBHOOK_BODY_BYTES {
            return Err(Error::invalid(
                "body",
                format!("is larger than {MAX_WEBHOOK_BODY_BYTES} bytes"),
            )
            .into());
        }
        let valid = crate::webhook::verify(&req.header, &req.body, &webhook_secrets);
        let event = valid
            .then(|| serde_json::from_slice(&req.body).ok())
            .flatten()
            .and_then(convert::any_event);
        Ok(Response::new(VerifyWebhookSignatureResponse {
            valid,
            event,
        }))
    }
}

// === impl StreamState ===

impl StreamState {
    /// The next message, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Result<StreamEventsResponse, Status>> {
        if self.done || (self.max > 0 && self.sent >= self.max) {
            return None;
        }
        if self.buffer.is_empty() {
            if self.fetched_any && self.next_key.is_empty() {
                return None;
            }
            if let Err(status) = self.fetch().await {
                self.done = true;
                return Some(Err(status));
            }
        }
        let event = self.buffer.pop_front()?;
        self.sent += 1;
        let resume_page_token = if self.buffer.is_empty() {
            self.binding.wrap(&self.next_key)
        } else {
            String::new()
        };
        Some(Ok(StreamEventsResponse {
            event: Some(event),
            resume_page_token,
            unmapped: self.unmapped.take(),
        }))
    }

    /// Fetches the next upstream page into the buffer, waiting out rate limits that
    /// fit in the deadline.
    async fn fetch(&mut self) -> Result<(), Status> {
        let left = self.max.saturating_sub(self.sent);
        let size = if self.max > 0 {
            u32::try_from(left.min(u64::from(STREAM_PAGE))).unwrap_or(STREAM_PAGE)
        } else {
            STREAM_PAGE
        };
        let mut waits = 0;
        loop {
            let call = self.client.search(&self.filter, size, &self.next_key, None);
            // Pages are fetched while the body is read, outside the handler: each runs
            // within the caller's deadline, or gets the default deadline of its own.
            let result = match self.deadline {
                Some(at) => match tokio::time::timeout_at(
                    at.into(),
                    crate::resilience::within(at.into(), call),
                )
                .await
                {
                    Ok((result, _)) => result,
                    Err(_) => {
                        return Err(Error::DeadlineExceeded {
                            during: "StreamEvents (resume with the last resume_page_token)",
                        }
                        .to_status());
                    }
                },
                None => call.await,
            };
            match result {
                Ok(body) => {
                    let page = convert::list::search_answer(self.client.generation(), body);
                    self.fetched_any = true;
                    self.next_key = page.next_key;
                    self.buffer = page.events.into();
                    self.unmapped = unmapped(page.unmapped);
                    return Ok(());
                }
                Err(Error::Api(api)) if api.status == 429 && waits < STREAM_RATE_LIMIT_RETRIES => {
                    let wait = api.retry_after.unwrap_or(Duration::from_secs(1));
                    let fits = self.deadline.is_none_or(|at| Instant::now() + wait < at);
                    if !fits {
                        return Err(Error::Api(api).to_status());
                    }
                    tracing::debug!(?wait, "stream: waiting out the upstream's rate limit");
                    tokio::time::sleep(wait).await;
                    waits += 1;
                }
                Err(e) => return Err(e.to_status()),
            }
        }
    }
}
