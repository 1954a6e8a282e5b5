//! The fingerprint.com search filter, checked before any upstream call, and what the
//! configured API generation cannot do.

use super::validate;
use crate::config::Generation;
use crate::error::Error;
use crate::proto::v1::EventFilter;

/// The error for a request field the configured API generation cannot serve.
pub(super) fn unsupported(field: &'static str, generation: Generation) -> Error {
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
pub(super) fn check_filter(f: &EventFilter, generation: Generation) -> Result<(), Error> {
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
