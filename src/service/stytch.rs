//! `StytchService`: thin handlers over the Stytch client.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::page::{self, Binding};
use super::validate;
use crate::cache::Cache;
use crate::cidr::Cidr;
use crate::convert::stytch as convert;
use crate::entry::Invalidation;
use crate::error::{Error, Upstream, quote};
use crate::proto::v1::{
    Action, SetRuleRequest, SetRuleResponse, SetVerdictReasonOverrideRequest,
    SetVerdictReasonOverrideResponse, set_rule_request::Identifier,
};
use crate::proto::v1::{
    ListRulesRequest, ListRulesResponse, ListVerdictReasonsRequest, ListVerdictReasonsResponse,
    LookupTelemetryRequest, LookupTelemetryResponse, stytch_service_server::StytchService,
};
use crate::rpc::Rpc;
use crate::secrets::Live;
use crate::upstream::stytch::StytchClient;

/// Default and largest `ListRulesRequest.page_size` (Stytch's own).
pub const RULES_PAGE: (u32, u32) = (10, 100);
/// Largest `ListVerdictReasonsRequest.page_size`; 0 means every reason.
pub const MAX_REASONS_PAGE: u32 = 1000;

/// The `StytchService` implementation.
#[derive(Clone)]
pub struct StytchApi {
    client: Arc<Live<Option<Arc<StytchClient>>>>,
    cache: Cache,
}

// === impl StytchApi ===

impl StytchApi {
    /// The service; `client` is `None` when Stytch is not configured.
    pub fn new(client: Option<StytchClient>, cache: Cache) -> Self {
        Self {
            client: Arc::new(Live::new(client.map(Arc::new))),
            cache,
        }
    }

    /// The client a rotation replaces (shared with the service).
    pub fn secrets(&self) -> Arc<Live<Option<Arc<StytchClient>>>> {
        self.client.clone()
    }

    /// The client in use now: the call keeps it (and its secret) to the end.
    fn client(&self) -> Result<Arc<StytchClient>, Error> {
        (*self.client.get()).clone().ok_or(Error::NotConfigured {
            what: "Stytch",
            upstream: Some(Upstream::Stytch),
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
        let answer = convert::lookup(client.lookup(&req).await?);
        Ok(Response::new(answer))
    }

    async fn list_rules(
        &self,
        request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        let req = request.into_inner();
        let size = page::size("page_size", req.page_size, RULES_PAGE.0, RULES_PAGE.1)?;
        let client = self.client()?;
        let binding = Binding::new(
            Rpc::ListRules,
            client.identity(),
            &ListRulesRequest::default(),
        );
        let cursor = binding.unwrap("page_token", &req.page_token)?;
        let mut answer = convert::rules(client.list_rules(size, &cursor).await?);
        answer.next_page_token = binding.wrap(&answer.next_page_token);
        Ok(Response::new(answer))
    }

    async fn list_verdict_reasons(
        &self,
        request: Request<ListVerdictReasonsRequest>,
    ) -> Result<Response<ListVerdictReasonsResponse>, Status> {
        let req = request.into_inner();
        let size = page::size(
            "page_size",
            req.page_size,
            MAX_REASONS_PAGE,
            MAX_REASONS_PAGE,
        )?;
        let client = self.client()?;
        // Stytch answers every reason at once: the gateway pages that answer.
        let whole = ListVerdictReasonsRequest {
            overrides_only: req.overrides_only,
            ..ListVerdictReasonsRequest::default()
        };
        let binding = Binding::new(Rpc::ListVerdictReasons, client.identity(), &whole);
        let offset = match binding.unwrap("page_token", &req.page_token)?.as_str() {
            "" => 0,
            n => n.parse::<usize>().map_err(|_| {
                Error::invalid("page_token", "is not a page token of ListVerdictReasons")
            })?,
        };
        let mut answer =
            convert::verdict_reasons(client.list_verdict_reasons(req.overrides_only).await?);
        let all = std::mem::take(&mut answer.verdict_reason_actions);
        let end = offset.saturating_add(size as usize).min(all.len());
        answer.verdict_reason_actions = all
            .get(offset.min(end)..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        if end < all.len() {
            answer.next_page_token = binding.wrap(&end.to_string());
        }
        Ok(Response::new(answer))
    }

    async fn set_rule(
        &self,
        request: Request<SetRuleRequest>,
    ) -> Result<Response<SetRuleResponse>, Status> {
        let req = request.into_inner();
        check_rule(&req)?;
        let client = self.client()?;
        let result = client.set_rule(&req).await;
        // A rule changes verdicts and lists: drop every Stytch answer.
        self.cache
            .invalidate(Invalidation::everything(Upstream::Stytch))
            .await;
        let answer = convert::set_rule(result?);
        let request_id = crate::audit::UpstreamRequestId(answer.request_id.clone());
        let mut response = Response::new(answer);
        response.extensions_mut().insert(request_id);
        Ok(response)
    }

    async fn set_verdict_reason_override(
        &self,
        request: Request<SetVerdictReasonOverrideRequest>,
    ) -> Result<Response<SetVerdictReasonOverrideResponse>, Status> {
        let req = request.into_inner();
        check_action("override_action", req.override_action)?;
        if req.verdict_reason.is_empty() {
            return Err(Error::invalid("verdict_reason", "is required").into());
        }
        if req.verdict_reason.len() > 128
            || !req
                .verdict_reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::invalid(
                "verdict_reason",
                format!(
                    "{} is not a verdict reason (UPPER_SNAKE_CASE)",
                    quote(&req.verdict_reason)
                ),
            )
            .into());
        }
        if req.verdict_reason == "RULE_MATCH" {
            return Err(Error::invalid("verdict_reason", "RULE_MATCH cannot be overridden").into());
        }
        check_description("override_description", &req.override_description)?;
        let client = self.client()?;
        let result = client.set_verdict_reason_override(&req).await;
        self.cache
            .invalidate(Invalidation::everything(Upstream::Stytch))
            .await;
        let answer = convert::verdict_reason_override(result?);
        let request_id = crate::audit::UpstreamRequestId(answer.request_id.clone());
        let mut response = Response::new(answer);
        response.extensions_mut().insert(request_id);
        Ok(response)
    }
}

/// Longest rule or override description accepted.
const MAX_DESCRIPTION_CHARS: usize = 512;

fn check_action(field: &'static str, action: i32) -> Result<Action, Error> {
    match Action::try_from(action) {
        Ok(a @ (Action::Allow | Action::Block | Action::Challenge | Action::None)) => Ok(a),
        _ => Err(Error::invalid(
            field,
            "must be ACTION_ALLOW, ACTION_BLOCK, ACTION_CHALLENGE or ACTION_NONE",
        )),
    }
}

fn check_description(field: &'static str, text: &str) -> Result<(), Error> {
    validate::text(field, text)?;
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Stytch's own rules for a rule, checked before any call.
fn check_rule(req: &SetRuleRequest) -> Result<(), Error> {
    let action = check_action("action", req.action)?;
    check_description("description", &req.description)?;
    if req.expires_in_minutes == Some(0) {
        return Err(Error::invalid(
            "expires_in_minutes",
            "must be at least 1 (leave it unset for no expiry)",
        ));
    }
    if req.expires_in_minutes.is_some_and(|m| m > i32::MAX as u32) {
        return Err(Error::invalid("expires_in_minutes", "is too large"));
    }
    let Some(id) = &req.identifier else {
        return Err(Error::invalid(
            "identifier",
            "exactly one identifier is required (visitor_id, browser_id, visitor_fingerprint, browser_fingerprint, hardware_fingerprint, network_fingerprint, cidr_block, country_code or asn)",
        ));
    };
    let (field, value) = crate::upstream::stytch::identifier(id);
    if value.is_empty() {
        return Err(Error::invalid(field, "is empty"));
    }
    match id {
        Identifier::CidrBlock(cidr) => check_cidr(cidr)?,
        Identifier::CountryCode(code) => {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::invalid(
                    "country_code",
                    format!(
                        "{} is not an ISO 3166-1 alpha-2 code such as \"US\"",
                        quote(code)
                    ),
                ));
            }
            if action == Action::Allow {
                return Err(Error::invalid(
                    "action",
                    "ALLOW rules cannot be set on a country_code",
                ));
            }
        }
        Identifier::Asn(asn) => {
            if asn.len() > 10
                || !asn.bytes().all(|b| b.is_ascii_digit())
                || asn.parse::<u64>().map_or(true, |n| n > u64::from(u32::MAX))
            {
                return Err(Error::invalid(
                    "asn",
                    format!("{} is not a number from 0 to 4294967295", quote(asn)),
                ));
            }
        }
        _ => validate::optional_id(field, value)?,
    }
    Ok(())
}

/// An IPv4 address, or a CIDR block with a prefix from 16 to 32.
fn check_cidr(cidr: &str) -> Result<(), Error> {
    match Cidr::parse(cidr) {
        Ok(c) if c.addr.is_ipv4() && (c.prefix.is_none() || (16..=32).contains(&c.bits())) => {
            Ok(())
        }
        Ok(c) if c.addr.is_ipv4() => Err(Error::invalid(
            "cidr_block",
            format!("{}: the prefix must be between 16 and 32", quote(cidr)),
        )),
        _ => Err(Error::invalid(
            "cidr_block",
            format!("{} is not an IPv4 address or CIDR block", quote(cidr)),
        )),
    }
}
