//! `StytchService`: thin handlers over the Stytch client.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{respond, validate, wants_bypass};
use crate::cache::{Cache, Key};
use crate::config::CacheConfig;
use crate::error::{Error, Upstream};
use crate::proto::v1::{
    ListRulesRequest, ListRulesResponse, ListVerdictReasonsRequest, ListVerdictReasonsResponse,
    LookupTelemetryRequest, LookupTelemetryResponse, stytch_service_server::StytchService,
};
use crate::upstream::stytch::StytchClient;

/// Largest `ListRulesRequest.limit` (Stytch's largest page).
pub const MAX_RULES_LIMIT: u32 = 100;

/// The `StytchService` implementation.
#[derive(Clone)]
pub struct StytchApi {
    client: Option<Arc<StytchClient>>,
    cache: Cache,
    ttl: CacheConfig,
}

// === impl StytchApi ===

impl StytchApi {
    /// The service; `client` is `None` when Stytch is not configured.
    pub fn new(client: Option<StytchClient>, cache: Cache, ttl: CacheConfig) -> Self {
        Self {
            client: client.map(Arc::new),
            cache,
            ttl,
        }
    }

    fn client(&self) -> Result<&Arc<StytchClient>, Error> {
        self.client.as_ref().ok_or(Error::Disabled {
            upstream: Upstream::Stytch,
            setting: "STYTCH_PROJECT_ID and STYTCH_SECRET",
        })
    }
}

#[tonic::async_trait]
impl StytchService for StytchApi {
    async fn lookup_telemetry(
        &self,
        request: Request<LookupTelemetryRequest>,
    ) -> Result<Response<LookupTelemetryResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        validate::id("telemetry_id", &req.telemetry_id)?;
        if let Some(meta) = &req.external_metadata {
            validate::metadata("external_metadata.external_id", meta.external_id.as_ref())?;
            validate::metadata(
                "external_metadata.organization_id",
                meta.organization_id.as_ref(),
            )?;
            validate::metadata("external_metadata.user_action", meta.user_action.as_ref())?;
        }
        let client = self.client()?;
        let key = Key::new("LookupTelemetry", client.identity(), &req);
        let (answer, status) = self
            .cache
            .get_or_fetch(
                key,
                self.ttl.lookup_telemetry,
                self.ttl.not_found,
                bypass,
                client.lookup(&req),
            )
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
    }

    async fn list_rules(
        &self,
        request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        validate::limit("limit", req.limit, MAX_RULES_LIMIT)?;
        validate::text("cursor", &req.cursor)?;
        let client = self.client()?;
        let key = Key::new("ListRules", client.identity(), &req);
        let (answer, status) = self
            .cache
            .get_or_fetch(
                key,
                self.ttl.list_rules,
                self.ttl.not_found,
                bypass,
                client.list_rules(&req),
            )
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
    }

    async fn list_verdict_reasons(
        &self,
        request: Request<ListVerdictReasonsRequest>,
    ) -> Result<Response<ListVerdictReasonsResponse>, Status> {
        let bypass = wants_bypass(&request);
        let req = request.into_inner();
        let client = self.client()?;
        let key = Key::new("ListVerdictReasons", client.identity(), &req);
        let (answer, status) = self
            .cache
            .get_or_fetch(
                key,
                self.ttl.list_verdict_reasons,
                self.ttl.not_found,
                bypass,
                client.list_verdict_reasons(&req),
            )
            .await
            .map_err(|e| e.to_status())?;
        Ok(respond(answer, status))
    }
}
