//! `FingerprintService`: thin handlers over the fingerprint.com client.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tonic::{Request, Response, Status};

use super::filter::{check_filter, unsupported};
use super::page::{self, Binding};
use super::stream::{EventStream, StreamState};
use super::{deadline, tagged, validate};
use crate::cache::Cache;
use crate::config::{Generation, SealedKey, Secret};
use crate::convert::{
    self,
    json::{leftovers, struct_to_json},
    page::EventPage,
    typed::Answer,
};
use crate::entry::{Invalidation, Tag};
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    AnalyzeRequestRequest, AnalyzeRequestResponse, DeleteVisitorDataRequest,
    DeleteVisitorDataResponse, Event, EventFilter, GetEventRequest, GetVisitsRequest,
    GetVisitsResponse, SearchEventsRequest, SearchEventsResponse, StreamEventsRequest,
    UnsealEventRequest, UnsealEventResponse, UpdateEventRequest, UpdateEventResponse,
    VerifyWebhookSignatureRequest, VerifyWebhookSignatureResponse,
    fingerprint_service_server::FingerprintService,
};
use crate::proto::wire::GetEventResponse;
use crate::rpc::Rpc;
use crate::secrets::Live;
use crate::upstream::fingerprint::{EdgeQuery, FingerprintClient, V4_PAGE_MAX, VisitsFilter};

/// Default and largest `GetVisitsRequest.page_size` (v3's default and largest page;
/// under v4 the gateway fetches several upstream pages).
pub const VISITS_PAGE: (u32, u32) = (100, 500);
/// Default and largest `SearchEventsRequest.page_size` (both generations' own).
pub const SEARCH_PAGE: (u32, u32) = (10, 100);
/// Largest `SearchEventsRequest.max_total_size` (v4 `total_hits`).
pub const MAX_TOTAL_SIZE: u32 = 1000;

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
            unmapped: leftovers(page.unmapped),
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
            unmapped: leftovers(page.unmapped),
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
        Ok(Response::new(
            StreamState::new(client, filter, binding, next_key, max, deadline).into_stream(),
        ))
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

    async fn analyze_request(
        &self,
        request: Request<AnalyzeRequestRequest>,
    ) -> Result<Response<AnalyzeRequestResponse>, Status> {
        let req = request.into_inner();
        let query = EdgeQuery {
            headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            method: req.method,
            url: req.url,
            ipv4_address: req.ipv4_address,
            ipv6_address: req.ipv6_address,
            linked_id: req.linked_id,
            tags: req
                .tags
                .as_ref()
                .map(|t| serde_json::Value::Object(struct_to_json(t))),
        };
        query.check()?;
        let client = self.client()?;
        let answer = client.analyze(&query).await?;
        Ok(Response::new(convert::edge::from_v4(answer)))
    }
}
