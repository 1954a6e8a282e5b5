//! A bound on client connections: the listener accepts the next connection only while
//! fewer than the limit are open, so the rest wait in the kernel's accept queue. And a
//! bound on their life: a connection still open at its age plus grace (it was asked to
//! go at its age) is closed.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{FutureExt, Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::Metrics;

/// A connection that holds one of the limited places until it is dropped.
pub struct Counted {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    /// When the connection is closed, whatever is on it.
    end: Pin<Box<tokio::time::Sleep>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// `incoming`, accepting at most `limit` connections open at once.
pub fn limit<S>(
    incoming: S,
    limit: usize,
    life: Duration,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = io::Result<Counted>>
where
    S: Stream<Item = io::Result<TcpStream>> + Send + Unpin + 'static,
{
    let places = Arc::new(Semaphore::new(limit));
    futures_util::stream::unfold((incoming, places), move |(mut incoming, places)| {
        let metrics = metrics.clone();
        async move {
            // Wait for a place before accepting: the connection waits in the kernel meanwhile.
            let place = places.clone().acquire_owned().await.ok()?;
            let next = incoming.next().await?;
            let counted = next.map(|stream| {
                metrics.connection_opened();
                Counted {
                    stream,
                    _place: place,
                    metrics,
                    end: Box::pin(tokio::time::sleep(life)),
                }
            });
            Some((counted, (incoming, places)))
        }
    })
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // hyper always waits on a read: the end's timer wakes it.
        if self.end.poll_unpin(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection outlived GATEWAY_MAX_CONNECTION_AGE and its grace",
            )));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
