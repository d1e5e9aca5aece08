//! HTTPS served by the binary itself, as an option beside the usual
//! TLS-terminating reverse proxy (`CUSTOS_TLS_CERT` / `CUSTOS_TLS_KEY`).
//!
//! Rules: rustls on the ring provider, installed as the process default so
//! nothing else in the process picks another; certificates and key read
//! from PEM files at start, and a bad file stops the start with the
//! setting named. Each connection's handshake runs inside its own stream,
//! on the connection's task, so a slow client never holds up the accept
//! loop.

use std::{
    future::Future,
    io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{FutureExt, future::BoxFuture};
use poem::{
    http::uri::Scheme,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{
    rustls::{
        self, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct TlsError {
    /// The setting that names the file at fault.
    pub setting: &'static str,
    /// What is wrong, without the file's contents.
    pub reason: String,
}

/// Installs ring as the process's crypto provider; a second call (another
/// server in the same process) finds it installed and changes nothing.
pub fn install_ring_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// Reads the PEM certificate chain and private key into a server config
/// that speaks HTTP/2 and HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    install_ring_provider();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError {
            setting: "CUSTOS_TLS_CERT",
            reason: format!("cannot read a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError {
            setting: "CUSTOS_TLS_CERT",
            reason: "the file holds no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        setting: "CUSTOS_TLS_KEY",
        reason: format!("cannot read a PEM private key: {e}"),
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                setting: "CUSTOS_TLS_CERT",
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError {
                setting: "CUSTOS_TLS_KEY",
                reason: format!("the key does not fit the certificate: {e}"),
            })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Wraps an acceptor so that every connection speaks TLS.
pub struct TlsAcceptor<A> {
    inner: A,
    tls: tokio_rustls::TlsAcceptor,
}

impl<A> TlsAcceptor<A> {
    /// TLS with `config` over the connections `inner` accepts.
    pub fn new(inner: A, config: Arc<ServerConfig>) -> Self {
        Self {
            inner,
            tls: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

impl<A: Acceptor> Acceptor for TlsAcceptor<A> {
    type Io = HandshakeStream<TlsStream<A::Io>>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, _) = self.inner.accept().await?;
        let handshake = self.tls.accept(stream);
        Ok((
            HandshakeStream::new(handshake),
            local,
            remote,
            Scheme::HTTPS,
        ))
    }
}

/// A TLS stream whose handshake completes on first use.
pub enum HandshakeStream<S> {
    /// Handshaking.
    Handshaking(BoxFuture<'static, io::Result<S>>),
    /// Ready for data.
    Ready(S),
    /// The handshake failed.
    Failed,
}

impl<S> HandshakeStream<S> {
    fn new(handshake: impl Future<Output = io::Result<S>> + Send + 'static) -> Self {
        Self::Handshaking(handshake.boxed())
    }

    /// Drives the handshake; `Ready(Ok(stream))` once it is done.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut S>> {
        if let Self::Handshaking(handshake) = self {
            match handshake.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = Self::Ready(stream),
                Poll::Ready(Err(err)) => {
                    *self = Self::Failed;
                    return Poll::Ready(Err(err));
                }
            }
        }
        match self {
            Self::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HandshakeStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_read(cx, buf),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HandshakeStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_write(cx, buf),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_flush(cx),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_shutdown(cx),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}
