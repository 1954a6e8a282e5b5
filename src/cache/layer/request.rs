//! What a call's request tells the cache: its `cache-control` directives, and its
//! body, read whole and bounded.

use super::*;

/// How stale an answer the caller accepts (`cache-control: max-stale=N`, in seconds);
/// `None`: whatever the gateway keeps. A bare `max-stale` accepts any.
pub fn max_stale(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let (name, value) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-stale")
                .then_some(value)
        })
        .map(|v| {
            // An unreadable value is read as "no stale answers": the safe side.
            v.trim()
                .trim_matches('"')
                .parse::<u64>()
                .map_or(Duration::ZERO, Duration::from_secs)
        })
        .min()
}

/// How the caller lets this call use the cache (`cache-control` request metadata):
/// `no-store` wins over `no-cache`.
pub fn cache_mode(headers: &HeaderMap) -> CacheMode {
    let mut mode = CacheMode::Normal;
    for directive in headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if directive.eq_ignore_ascii_case("no-store") {
            return CacheMode::NoStore;
        }
        if directive.eq_ignore_ascii_case("no-cache") {
            mode = CacheMode::NoCache;
        }
    }
    mode
}

/// The whole request body, up to [`MAX_REQUEST_BYTES`]. A unary request's body is
/// nearly always one data frame: that one is kept as it is, without a copy.
pub async fn read_body(mut body: Body) -> Option<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        let total = first.as_ref().map_or(0, Bytes::len)
            + more.as_ref().map_or(0, bytes::BytesMut::len)
            + data.len();
        if total > MAX_REQUEST_BYTES {
            return None;
        }
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut joined = bytes::BytesMut::with_capacity(total);
                joined.extend_from_slice(head);
                joined.extend_from_slice(&data);
                more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    Some(match more {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The message inside a body that is exactly one uncompressed gRPC frame.
pub fn single_frame(body: &Bytes) -> Option<Bytes> {
    let (&flag, rest) = body.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (flag == 0 && rest.len() == 4 + len).then(|| body.slice(5..))
}
