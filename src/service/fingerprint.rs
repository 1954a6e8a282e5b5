//! `FingerprintService`: thin handlers over the fingerprint.com client.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{respond, validate, wants_bypass};
use crate::cache::{Cache, Key};
use crate::config::{CacheConfig, Generation};
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    GetEventRequest, GetEventResponse, GetVisitsRequest, GetVisitsResponse, SearchEventsRequest,
    SearchEventsResponse, fingerprint_service_server::FingerprintService,
};
use crate::upstream::fingerprint::FingerprintClient;

/// Largest `GetVisitsRequest.limit` (v3's largest page; under v4 the gateway pages).
pub const MAX_VISITS_LIMIT: u32 = 500;
/// Largest `SearchEventsRequest.limit` (both generations' largest page).
pub const MAX_SEARCH_LIMIT: u32 = 100;

/// The `FingerprintService` implementation.
#[derive(Clone)]
pub struct FingerprintApi {
    client: Option<Arc<FingerprintClient>>,
    cache: Cache,
    ttl: CacheConfig,
}

// === impl FingerprintApi ===

impl FingerprintApi {
    /// The service; `client` is `None` when fingerprint.com is not configured.
    pub fn new(client: Option<FingerprintClient>, cache: Cache, ttl: CacheConfig) -> Self {
        Self {
            client: client.map(Arc::new),
            cache,
            ttl,
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
        let key = Key::new("GetEvent", client.identity(), &req);
        let fetch = async {
            let event = client.get_event(&req.event_id, &req.ruleset_id).await?;
            Ok(GetEventResponse { event: Some(event) })
        };
        let (answer, status) = self
            .cache
            .get_or_fetch(key, self.ttl.get_event, self.ttl.not_found, bypass, fetch)
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
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
        let key = Key::new("GetVisits", client.identity(), &req);
        let (answer, status) = self
            .cache
            .get_or_fetch(
                key,
                self.ttl.get_visits,
                self.ttl.not_found,
                bypass,
                client.visits(&req),
            )
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchEventsResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        let client = self.client()?;
        check_search(&req, client.generation())?;
        let key = Key::new("SearchEvents", client.identity(), &req);
        let (answer, status) = self
            .cache
            .get_or_fetch(
                key,
                self.ttl.search_events,
                self.ttl.not_found,
                bypass,
                client.search(&req),
            )
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
    }
}
