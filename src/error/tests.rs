use super::*;

#[test]
fn quotes_are_bounded() {
    assert_eq!(quote("a/b"), "\"a/b\"");
    let long = "é".repeat(5000);
    let q = quote(&long);
    assert!(q.ends_with('…'));
    assert_eq!(q.chars().filter(|c| *c == 'é').count(), MAX_QUOTED_CHARS);
}

#[test]
fn both_generations_spell_one_reason() {
    let api = |status, code: &str, resource| ApiError {
        upstream: Upstream::Fingerprint,
        resource,
        status,
        code: Some(code.to_owned()),
        message: None,
        request_id: None,
        retry_after: None,
    };
    for (v4, v3) in [
        ("event_not_found", "RequestNotFound"),
        ("too_many_requests", "TooManyRequests"),
        ("secret_api_key_not_found", "TokenNotFound"),
        ("wrong_region", "WrongRegion"),
    ] {
        let status = if v4.contains("found") && !v4.contains("key") {
            404
        } else if v4.contains("many") {
            429
        } else {
            403
        };
        assert_eq!(
            api(status, v4, Resource::Event).classify(),
            api(status, v3, Resource::Event).classify(),
            "{v4} / {v3}"
        );
    }
    // An unknown 404 code is named after what was asked for.
    assert_eq!(
        api(404, "gone", Resource::Visitor).classify(),
        (Code::NotFound, ErrorReason::VisitorNotFound)
    );
}
