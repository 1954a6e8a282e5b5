//! The listener's connections: accepted only while fewer than the limit are open (the
//! rest wait in the kernel's accept queue), TLS handshakes done apart from accepting (a
//! slow client never holds the listener up), each connection's peer told to the
//! services ([`PeerInfo`]), and a bound on each connection's life: one still open at
//! its age plus grace (it was asked to go at its age) is closed.

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
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::metrics::Metrics;
use crate::tls::{PeerInfo, Tls, identity_of};

/// Longest a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A connection that holds one of the limited places until it is dropped.
pub struct Counted {
    io: Io,
    peer: PeerInfo,
    _place: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    /// When the connection is closed, whatever is on it.
    end: Pin<Box<tokio::time::Sleep>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// What the listener needs besides its sockets.
pub struct Limits {
    /// Connections open at once.
    pub max: usize,
    /// Age plus grace: when a connection is closed.
    pub life: Duration,
    /// TLS, if on.
    pub tls: Option<Arc<Tls>>,
}

/// `incoming`, accepting at most `limits.max` connections open at once, with TLS when
/// configured. The listener closes when the returned stream is dropped.
pub fn limit<S>(
    mut incoming: S,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = io::Result<Counted>>
where
    S: Stream<Item = io::Result<TcpStream>> + Send + Unpin + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Counted>(64);
    tokio::spawn(async move {
        let places = Arc::new(Semaphore::new(limits.max));
        loop {
            // Wait for a place before accepting: the connection waits in the kernel.
            let place = tokio::select! {
                _ = tx.closed() => return,
                place = places.clone().acquire_owned() => match place {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let stream = tokio::select! {
                _ = tx.closed() => return,
                next = incoming.next() => match next {
                    None => return,
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let remote = stream.peer_addr().ok();
            let made = Made {
                place,
                metrics: metrics.clone(),
                life: limits.life,
            };
            match &limits.tls {
                None => {
                    let counted = made.counted(
                        Io::Plain(stream),
                        PeerInfo {
                            remote,
                            identity: None,
                        },
                    );
                    if tx.send(counted).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let identity = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(identity_of);
                                let peer = PeerInfo { remote, identity };
                                let _ =
                                    tx.send(made.counted(Io::Tls(Box::new(stream)), peer)).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(?remote, error = %e, "TLS handshake refused");
                            }
                            Err(_) => tracing::debug!(?remote, "TLS handshake took too long"),
                        }
                    });
                }
            }
        }
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) },
    )
}

struct Made {
    place: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    life: Duration,
}

impl Made {
    fn counted(self, io: Io, peer: PeerInfo) -> Counted {
        self.metrics.connection_opened();
        Counted {
            io,
            peer,
            _place: self.place,
            metrics: self.metrics,
            end: Box::pin(tokio::time::sleep(self.life)),
        }
    }
}

impl Connected for Counted {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        // hyper always waits on a read, so the end's timer is armed (polled) only when
        // the read waits, and it wakes that read; while data flows, the elapsed flag the
        // timer driver sets is enough. Polling it on every read cost ~250 instructions
        // per call.
        let ended = match read {
            Poll::Pending => self.end.poll_unpin(cx).is_ready(),
            Poll::Ready(_) => self.end.is_elapsed(),
        };
        if ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection outlived GATEWAY_MAX_CONNECTION_AGE and its grace",
            )));
        }
        read
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
