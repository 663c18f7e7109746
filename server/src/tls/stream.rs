//! [`MaybeTls`]: the one stream type a session runs over, plaintext until STARTTLS and TLS
//! after it (or from the start on an implicit-TLS listener). The TLS state is boxed: rustls'
//! connection is over a kilobyte, and an idle plaintext session must stay small (a thousand
//! idle MX sessions are normal; see `benches/scripts/idle-sessions-rss.sh`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream that may have been upgraded to TLS. Client and server side alike
/// (`tokio_rustls::TlsStream` is either), so the simulator's actors use it too.
pub enum MaybeTls<S> {
    Plain(S),
    Tls(Box<tokio_rustls::TlsStream<S>>),
    /// The plain stream was handed to a handshake that failed: nothing left to talk over.
    Gone,
}

impl<S> MaybeTls<S> {
    /// Takes the plaintext stream out for a handshake; `None` if already TLS (or gone).
    pub fn take_plain(&mut self) -> Option<S> {
        match std::mem::replace(self, MaybeTls::Gone) {
            MaybeTls::Plain(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl<S> From<tokio_rustls::server::TlsStream<S>> for MaybeTls<S> {
    fn from(s: tokio_rustls::server::TlsStream<S>) -> Self {
        MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Server(s)))
    }
}

impl<S> From<tokio_rustls::client::TlsStream<S>> for MaybeTls<S> {
    fn from(s: tokio_rustls::client::TlsStream<S>) -> Self {
        MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Client(s)))
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS handshake failed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}
