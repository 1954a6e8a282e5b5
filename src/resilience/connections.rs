//! The listener's connections: accepted only while fewer than the limit are open (the
//! rest wait in the kernel's accept queue), TLS handshakes done apart from accepting (a
//! slow client never holds the listener up), each connection's peer told to the
//! services ([`PeerInfo`]), a bound on each connection's life (one still open at its
//! age plus grace, asked to go at its age, is closed), and writes held until a flush so
//! that an answer's frames leave together (see [`Counted::poll_flush`]).

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
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
    /// What was written and not yet handed to the socket (see [`Counted::poll_flush`]).
    pending: Vec<u8>,
    /// Whether the flush has already let the other ready tasks run once.
    yielded: bool,
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
            pending: Vec::new(),
            yielded: false,
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

/// Most bytes held for the next flush. A write this large, with nothing held, goes to
/// the socket at once; so a connection never holds more than this.
const HOLD: usize = 16 * 1024;

/// Most buffer a connection keeps between batches.
const KEEP: usize = 4 * 1024;

impl Counted {
    fn poll_write_io(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    /// Hands the held bytes to the socket; ready when all of them are written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        let mut pending = std::mem::take(&mut self.pending);
        let result = loop {
            if sent == pending.len() {
                break Poll::Ready(Ok(()));
            }
            match self.poll_write_io(cx, &[io::IoSlice::new(&pending[sent..])]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        pending.drain(..sent);
        // An idle connection keeps little: a batch that grew the buffer past KEEP gives
        // it back once written (busy connections hold one or two answers, well below).
        if pending.is_empty() && pending.capacity() > KEEP {
            pending = Vec::new();
        }
        self.pending = pending;
        result
    }

    /// Holds `bufs` for the next flush, or writes them at once when they are large.
    fn poll_hold(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.pending.len() + total > HOLD {
            ready!(self.poll_drain(cx))?;
        }
        if total >= HOLD {
            return self.poll_write_io(cx, bufs);
        }
        for buf in bufs {
            self.pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(total))
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_hold(cx, &[io::IoSlice::new(buf)])
    }

    /// HTTP/2 answers are written by the connection's task while each call's task adds
    /// its frames: a call's trailers often arrive a moment after its data, and a flush
    /// at once sends them in two segments (two system calls here, two wake-ups in the
    /// client). So the first flush of held bytes lets the tasks already waiting run
    /// first, and the next flush writes everything held by then in one call.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            if !this.yielded {
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_drain(cx))?;
        }
        this.yielded = false;
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_hold(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A `Counted` over one end of a loopback connection, and the other end.
    async fn pair() -> (Counted, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server, _) = accepted.unwrap();
        let places = Arc::new(Semaphore::new(1));
        let made = Made {
            place: places.acquire_owned().await.unwrap(),
            metrics: Arc::new(Metrics::new()),
            life: Duration::from_secs(60),
        };
        let peer = PeerInfo {
            remote: None,
            identity: None,
        };
        (made.counted(Io::Plain(server), peer), client.unwrap())
    }

    /// What the peer has received so far, waiting briefly for more.
    async fn received(peer: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), peer.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn small_writes_wait_for_the_flush_and_arrive_in_order() {
        let (mut conn, mut peer) = pair().await;
        conn.write_all(b"headers,").await.unwrap();
        conn.write_all(b"data,").await.unwrap();
        assert!(
            received(&mut peer).await.is_empty(),
            "sent before the flush"
        );
        conn.write_all(b"trailers").await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(received(&mut peer).await, b"headers,data,trailers");
    }

    #[tokio::test]
    async fn a_large_write_goes_out_after_what_is_held() {
        let (mut conn, mut peer) = pair().await;
        let large: Vec<u8> = (0..3 * HOLD).map(|i| (i % 251) as u8).collect();
        conn.write_all(b"first").await.unwrap();
        conn.write_all(&large).await.unwrap();
        conn.write_all(b"last").await.unwrap();
        conn.flush().await.unwrap();
        let got = received(&mut peer).await;
        assert_eq!(got.len(), 5 + large.len() + 4);
        assert_eq!(&got[..5], b"first");
        assert_eq!(&got[5..5 + large.len()], &large[..]);
        assert_eq!(&got[5 + large.len()..], b"last");
        assert!(
            conn.pending.capacity() <= KEEP,
            "held {}",
            conn.pending.capacity()
        );
    }

    #[tokio::test]
    async fn a_big_batch_gives_its_buffer_back_once_written() {
        let (mut conn, mut peer) = pair().await;
        let piece = [7u8; 1024];
        for _ in 0..12 {
            conn.write_all(&piece).await.unwrap();
        }
        assert!(conn.pending.capacity() > KEEP);
        conn.flush().await.unwrap();
        assert_eq!(received(&mut peer).await.len(), 12 * 1024);
        assert!(
            conn.pending.capacity() <= KEEP,
            "kept {}",
            conn.pending.capacity()
        );
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_held() {
        let (mut conn, mut peer) = pair().await;
        conn.write_all(b"goaway").await.unwrap();
        conn.shutdown().await.unwrap();
        assert_eq!(received(&mut peer).await, b"goaway");
    }
}
