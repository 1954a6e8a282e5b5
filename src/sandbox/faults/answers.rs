//! What the sandbox answers when a fault applies: a whole error answer, or the normal
//! answer reshaped (slowed, cut, oversized, malformed).

use super::*;

/// The answer of a fault that needs no normal answer (`None` for those that reshape one).
pub(in crate::sandbox) fn standalone(fault: Applied, path: &str) -> Option<Response> {
    Some(match fault {
        Applied::Status(status) => error_body(path, status),
        Applied::RateLimit(seconds) => {
            let mut r = error_body(path, StatusCode::TOO_MANY_REQUESTS);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            r
        }
        Applied::Html(status) => html_page(status),
        Applied::Garbage => {
            let mut r = (StatusCode::OK, "{\"sandbox\": this is not JSON}").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Applied::Oversized(bytes) => oversized(bytes),
        Applied::Truncated | Applied::Reset | Applied::Drip(_) | Applied::Outage => return None,
    })
}

/// The normal answer, reshaped by `fault`.
pub(in crate::sandbox) async fn reshape(fault: Applied, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_RESHAPED).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox: answer too large",
        )
            .into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let half = body.slice(..body.len() / 2);
    let body = match fault {
        Applied::Truncated => Body::from(half),
        Applied::Reset => {
            // Announce the whole length, send half, then fail: hyper drops the connection.
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            // The pause lets the headers and the first half leave before the drop.
            let cut = futures_util::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        None
                    }
                }
            });
            let reset = futures_util::stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "sandbox fault: reset mid-body",
                ))
            });
            Body::from_stream(futures_util::StreamExt::chain(cut, reset))
        }
        Applied::Drip(every) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let drip = futures_util::stream::unfold(body, move |mut rest| async move {
                if rest.is_empty() {
                    return None;
                }
                tokio::time::sleep(every).await;
                let chunk = rest.split_to(rest.len().min(DRIP_CHUNK));
                Some((Ok::<_, std::io::Error>(chunk), rest))
            });
            Body::from_stream(drip)
        }
        _ => Body::from(body),
    };
    Response::from_parts(parts, body)
}

/// An error in the shape of the API the path belongs to.
fn error_body(path: &str, status: StatusCode) -> Response {
    if path.starts_with("/v1/") {
        let error_type = match status.as_u16() {
            429 => "too_many_requests",
            500..=599 => "internal_server_error",
            _ => "bad_request",
        };
        return crate::sandbox::stytch::error(status, error_type, "sandbox fault rule");
    }
    let generation = if path.starts_with("/v4/") {
        crate::sandbox::fingerprint::Gen::V4
    } else {
        crate::sandbox::fingerprint::Gen::V3
    };
    crate::sandbox::fingerprint::fault_error(generation, status, path)
}

fn html_page(status: StatusCode) -> Response {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>"
    );
    let mut r = (status, page).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

/// `{"padding": "    …"}` of exactly `bytes` bytes (at least 16), streamed in 64 KiB
/// chunks with no length announced, so that the reader must count.
fn oversized(bytes: u64) -> Response {
    const HEAD: &[u8] = b"{\"padding\": \"";
    const TAIL: &[u8] = b"\"}";
    let fill = bytes.saturating_sub((HEAD.len() + TAIL.len()) as u64);
    let block = Bytes::from(vec![b' '; 64 << 10]);
    let body = futures_util::stream::unfold((0u8, fill), move |(stage, left)| {
        let block = block.clone();
        async move {
            match stage {
                0 => Some((Bytes::from_static(HEAD), (1, left))),
                1 if left > 0 => {
                    let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(0);
                    Some((block.slice(..n), (1, left - n as u64)))
                }
                1 => Some((Bytes::from_static(TAIL), (2, 0))),
                _ => None,
            }
        }
    });
    let body = futures_util::StreamExt::map(body, Ok::<_, std::io::Error>);
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
