//! A bound on client connections: the listener accepts the next connection only while
//! fewer than the limit are open, so the rest wait in the kernel's accept queue.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A connection that holds one of the limited places until it is dropped.
pub struct Counted {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

/// `incoming`, accepting at most `limit` connections open at once.
pub fn limit<S>(incoming: S, limit: usize) -> impl Stream<Item = io::Result<Counted>>
where
    S: Stream<Item = io::Result<TcpStream>> + Send + Unpin + 'static,
{
    let places = Arc::new(Semaphore::new(limit));
    futures_util::stream::unfold((incoming, places), |(mut incoming, places)| async move {
        // Wait for a place before accepting: the connection waits in the kernel meanwhile.
        let place = places.clone().acquire_owned().await.ok()?;
        let next = incoming.next().await?;
        let counted = next.map(|stream| Counted {
            stream,
            _place: place,
        });
        Some((counted, (incoming, places)))
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
