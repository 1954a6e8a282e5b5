//! StreamEvents: the answer stream, one upstream search page at a time.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::Stream;
use tonic::Status;

use super::page::Binding;
use crate::convert::{self, json::leftovers};
use crate::error::Error;
use crate::proto::v1::{Event, EventFilter, StreamEventsResponse};
use crate::upstream::fingerprint::FingerprintClient;

/// Upstream page size StreamEvents uses: the largest both generations allow.
pub const STREAM_PAGE: u32 = 100;
/// How often StreamEvents waits out an upstream 429 on one page before giving up.
pub const STREAM_RATE_LIMIT_RETRIES: u32 = 5;

/// The answer stream of StreamEvents.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

/// Where a StreamEvents call is: the page in hand, and how to get the next.
pub(super) struct StreamState {
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

// === impl StreamState ===

impl StreamState {
    /// A stream of the events matching `filter`, from the upstream key `next_key` (empty:
    /// from the start), at most `max` of them (0: all), within `deadline`.
    pub(super) fn new(
        client: Arc<FingerprintClient>,
        filter: EventFilter,
        binding: Binding,
        next_key: String,
        max: u64,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
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
        }
    }

    /// Pull-driven: the next upstream page is fetched only when the caller has taken
    /// every event of the last one, so a slow reader slows the paging, and nothing
    /// outlives a cancelled call (dropping the stream drops the state).
    pub(super) fn into_stream(self) -> EventStream {
        Box::pin(futures_util::stream::unfold(self, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        }))
    }

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
                    self.unmapped = leftovers(page.unmapped);
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
