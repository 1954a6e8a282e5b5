//! `FingerprintService`: thin handlers over the fingerprint.com client.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tonic::{Request, Response, Status};

use super::{deadline, read_through, validate, wants_bypass};
use crate::cache::{Cache, Key, Tag};
use crate::config::{CacheConfig, Generation, SealedKey, Secret};
use crate::convert::json::struct_to_json;
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    DeleteVisitorDataRequest, DeleteVisitorDataResponse, GetEventRequest, GetEventResponse,
    GetVisitsRequest, GetVisitsResponse, SearchEventsRequest, SearchEventsResponse,
    UnsealEventRequest, UnsealEventResponse, UpdateEventRequest, UpdateEventResponse,
    VerifyWebhookSignatureRequest, VerifyWebhookSignatureResponse,
    fingerprint_service_server::FingerprintService,
};
use crate::upstream::fingerprint::FingerprintClient;

/// Largest `GetVisitsRequest.limit` (v3's largest page; under v4 the gateway pages).
pub const MAX_VISITS_LIMIT: u32 = 500;
/// Largest `SearchEventsRequest.limit` (both generations' largest page).
pub const MAX_SEARCH_LIMIT: u32 = 100;

/// Longest `UpdateEventRequest.tags`, as JSON.
pub const MAX_TAGS_BYTES: usize = 16 * 1024;
/// Longest webhook body accepted.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long UpdateEvent keeps retrying `409 state_not_ready` when the caller set no deadline.
pub const NOT_READY_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The `FingerprintService` implementation.
#[derive(Clone)]
pub struct FingerprintApi {
    client: Option<Arc<FingerprintClient>>,
    cache: Cache,
    ttl: CacheConfig,
    sealed_keys: Arc<[SealedKey]>,
    webhook_secrets: Arc<[Secret]>,
}

// === impl FingerprintApi ===

impl FingerprintApi {
    /// The service; `client` is `None` when fingerprint.com is not configured.
    pub fn new(
        client: Option<FingerprintClient>,
        cache: Cache,
        ttl: CacheConfig,
        sealed_keys: Vec<SealedKey>,
        webhook_secrets: Vec<Secret>,
    ) -> Self {
        Self {
            client: client.map(Arc::new),
            cache,
            ttl,
            sealed_keys: sealed_keys.into(),
            webhook_secrets: webhook_secrets.into(),
        }
    }

    fn client(&self) -> Result<&Arc<FingerprintClient>, Error> {
        self.client.as_ref().ok_or(Error::Disabled {
            upstream: Upstream::Fingerprint,
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

fn check_search(r: &SearchEventsRequest, generation: Generation) -> Result<(), Error> {
    validate::limit("limit", r.limit, MAX_SEARCH_LIMIT)?;
    validate::text("pagination_key", &r.pagination_key)?;
    validate::window(r.start.as_ref(), r.end.as_ref())?;
    for (field, value) in [
        ("visitor_id", &r.visitor_id),
        ("high_recall_id", &r.high_recall_id),
        ("proximity_id", &r.proximity_id),
    ] {
        validate::optional_id(field, value)?;
    }
    for (field, value) in [
        ("linked_id", &r.linked_id),
        ("url", &r.url),
        ("bundle_id", &r.bundle_id),
        ("package_name", &r.package_name),
        ("origin", &r.origin),
        ("sdk_version", &r.sdk_version),
    ] {
        validate::text(field, value)?;
    }
    validate::ip_or_cidr("ip_address", &r.ip_address)?;
    validate::digits("asn", &r.asn)?;
    validate::one_of("bot", &r.bot, &["all", "good", "bad", "none"])?;
    validate::one_of("bot_info", &r.bot_info, &["all", "none"])?;
    validate::one_of(
        "vpn_confidence",
        &r.vpn_confidence,
        &["high", "medium", "low"],
    )?;
    validate::one_of(
        "rare_device_percentile_bucket",
        &r.rare_device_percentile_bucket,
        &[
            "<p95",
            "p95-p99",
            "p99-p99.5",
            "p99.5-p99.9",
            "p99.9+",
            "not_seen",
        ],
    )?;
    validate::one_of("sdk_platform", &r.sdk_platform, &["js", "android", "ios"])?;
    validate::one_of(
        "incremental_identification_status",
        &r.incremental_identification_status,
        &["partially_completed", "completed"],
    )?;
    for (field, values) in [
        ("bot_info_category", &r.bot_info_category),
        ("bot_info_identity", &r.bot_info_identity),
        ("bot_info_confidence", &r.bot_info_confidence),
        ("bot_info_provider", &r.bot_info_provider),
        ("bot_info_name", &r.bot_info_name),
        ("environment", &r.environment),
    ] {
        validate::tokens(field, values)?;
    }
    if let Some(score) = r.min_suspect_score
        && (!score.is_finite() || score < 0.0)
    {
        return Err(Error::invalid(
            "min_suspect_score",
            "must be a finite number >= 0",
        ));
    }
    if let Some(total) = r.total_hits {
        validate::limit("total_hits", Some(total), 1000)?;
    }
    // Filters one generation has and the other lacks fail clearly instead of being ignored.
    let v4_only: [(&'static str, bool); 16] = [
        ("high_recall_id", !r.high_recall_id.is_empty()),
        ("asn", !r.asn.is_empty()),
        ("url", !r.url.is_empty()),
        ("bundle_id", !r.bundle_id.is_empty()),
        ("package_name", !r.package_name.is_empty()),
        ("origin", !r.origin.is_empty()),
        ("bot_info", !r.bot_info.is_empty()),
        ("bot_info_category", !r.bot_info_category.is_empty()),
        ("bot_info_identity", !r.bot_info_identity.is_empty()),
        ("bot_info_confidence", !r.bot_info_confidence.is_empty()),
        ("bot_info_provider", !r.bot_info_provider.is_empty()),
        ("bot_info_name", !r.bot_info_name.is_empty()),
        (
            "incremental_identification_status",
            !r.incremental_identification_status.is_empty(),
        ),
        ("total_hits", r.total_hits.is_some()),
        ("tor_node", r.tor_node.is_some()),
        (
            "simulator",
            r.simulator.is_some() || r.active_call.is_some(),
        ),
    ];
    let v3_only = [
        ("ip_blocklist", r.ip_blocklist.is_some()),
        ("datacenter", r.datacenter.is_some()),
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

#[tonic::async_trait]
impl FingerprintService for FingerprintApi {
    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        validate::id("event_id", &req.event_id)?;
        validate::optional_id("ruleset_id", &req.ruleset_id)?;
        let client = self.client()?;
        if !req.ruleset_id.is_empty() && client.generation() == Generation::V3 {
            return Err(unsupported("ruleset_id", Generation::V3).into());
        }
        let key = Key::new(Upstream::Fingerprint, "GetEvent", client.identity(), &req);
        let fetch = async {
            let event = client.get_event(&req.event_id, &req.ruleset_id).await?;
            Ok(GetEventResponse { event: Some(event) })
        };
        read_through(
            &self.cache,
            key,
            self.ttl.get_event,
            self.ttl.not_found,
            bypass,
            fetch,
        )
        .await
    }

    async fn get_visits(
        &self,
        request: Request<GetVisitsRequest>,
    ) -> Result<Response<GetVisitsResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        validate::id("visitor_id", &req.visitor_id)?;
        validate::limit("limit", req.limit, MAX_VISITS_LIMIT)?;
        validate::text("linked_id", &req.linked_id)?;
        validate::text("pagination_key", &req.pagination_key)?;
        validate::window(req.start.as_ref(), req.end.as_ref())?;
        let client = self.client()?;
        if req.start.is_some() && client.generation() == Generation::V3 {
            return Err(unsupported("start", Generation::V3).into());
        }
        let key = Key::new(Upstream::Fingerprint, "GetVisits", client.identity(), &req);
        read_through(
            &self.cache,
            key,
            self.ttl.get_visits,
            self.ttl.not_found,
            bypass,
            client.visits(&req),
        )
        .await
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchEventsResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        let client = self.client()?;
        check_search(&req, client.generation())?;
        let key = Key::new(
            Upstream::Fingerprint,
            "SearchEvents",
            client.identity(),
            &req,
        );
        read_through(
            &self.cache,
            key,
            self.ttl.search_events,
            self.ttl.not_found,
            bypass,
            client.search(&req),
        )
        .await
    }

    async fn update_event(
        &self,
        request: Request<UpdateEventRequest>,
    ) -> Result<Response<UpdateEventResponse>, Status> {
        let deadline = deadline(&request).unwrap_or(NOT_READY_RETRY_BUDGET);
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
        let event_id = req.event_id.clone();
        self.cache
            .invalidate(Upstream::Fingerprint, move |rpc, tags| {
                matches!(rpc, "GetVisits" | "SearchEvents")
                    || tags.contains(&Tag::Event(event_id.clone()))
            });
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
        let visitor = Tag::Visitor(req.visitor_id.clone());
        self.cache
            .invalidate(Upstream::Fingerprint, move |_, tags| {
                tags.contains(&visitor)
            });
        result?;
        Ok(Response::new(DeleteVisitorDataResponse {}))
    }

    async fn unseal_event(
        &self,
        request: Request<UnsealEventRequest>,
    ) -> Result<Response<UnsealEventResponse>, Status> {
        let req = request.into_inner();
        let event = crate::sealed::unseal(&req.sealed, &self.sealed_keys)?;
        Ok(Response::new(UnsealEventResponse { event: Some(event) }))
    }

    async fn verify_webhook_signature(
        &self,
        request: Request<VerifyWebhookSignatureRequest>,
    ) -> Result<Response<VerifyWebhookSignatureResponse>, Status> {
        let req = request.into_inner();
        if self.webhook_secrets.is_empty() {
            return Err(Error::NoWebhookSecrets.into());
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
        let valid = crate::webhook::verify(&req.header, &req.body, &self.webhook_secrets);
        let event = valid
            .then(|| serde_json::from_slice(&req.body).ok())
            .flatten()
            .and_then(crate::sealed::event_from_json);
        Ok(Response::new(VerifyWebhookSignatureResponse {
            valid,
            event,
        }))
    }
}
