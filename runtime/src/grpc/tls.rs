//! gRPC servers over TLS (features `grpc` and `tls`): the server's certificate and how
//! Consul's check and Fabio verify it ([`ServerTls`]), and a listener whose connections are
//! handshaken concurrently.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::instrument::WithSubscriber as _;

use crate::serve::server::{Check, CheckTls, NoDelay, Server};

/// The TLS side of a gRPC server: its certificate and key (or a whole rustls configuration),
/// and how Consul's check and Fabio verify it. Given to [`Routes::tls`](super::Routes::tls).
///
/// By default Consul's check verifies the certificate against the roots of the host Consul
/// runs on, for the advertised address (so the certificate names that IP address), and Fabio
/// against its host's roots. [`ServerTls::check_server_name`] names another name to verify;
/// [`ServerTls::unverified`] turns verification off for both (a self-signed certificate).
///
/// Its `Debug` output shows neither the key nor the certificate.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    check: CheckTls,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alpn: Vec<_> = self
            .config
            .alpn_protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect();
        f.debug_struct("ServerTls")
            .field("alpn", &alpn)
            .field("check_server_name", &self.check.server_name)
            .field("unverified", &self.check.skip_verify)
            .finish_non_exhaustive()
    }
}

/// What `ServerTls::from_pem` is called in its errors.
const FROM_PEM: &str = "grpc::ServerTls::from_pem";

impl ServerTls {
    /// A certificate chain (PEM, the server's certificate first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1), with rustls's defaults and the aws-lc-rs provider.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) when the PEM holds no certificate or no key,
    /// or the key does not fit the certificate.
    pub fn from_pem(
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<ServerTls, crate::Error> {
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |message: String| crate::Error::Config {
            setting: FROM_PEM,
            message,
        };
        let chain = CertificateDer::pem_slice_iter(cert_chain.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("the certificate chain is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(
                "the certificate chain holds no `BEGIN CERTIFICATE` block".into(),
            ));
        }
        // The key's own error text is not shown: it could quote key material.
        let key = PrivateKeyDer::from_pem_slice(key.as_ref()).map_err(|_| {
            invalid("the key holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into())
        })?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid(format!("the key does not fit the certificate: {e}")))?;
        Ok(ServerTls::from_config(config))
    }

    /// A rustls server configuration of the user's own (client certificates, resumption,
    /// another provider). Where it names no ALPN protocol, `h2` and `http/1.1` are offered:
    /// gRPC over the first, the HTTP health route over either.
    ///
    /// A server that asks for and verifies client certificates against the team's CA:
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use discoverable::grpc::ServerTls;
    /// use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    /// use rustls::server::WebPkiClientVerifier;
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(CertificateDer::from_pem_file("team-ca.pem")?)?;
    /// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    /// let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
    ///     // Consul's check and Fabio connect without a certificate of their own.
    ///     .allow_unauthenticated()
    ///     .build()?;
    /// let config = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_client_cert_verifier(clients)
    ///     .with_single_cert(
    ///         CertificateDer::pem_file_iter("server.pem")?.collect::<Result<_, _>>()?,
    ///         PrivateKeyDer::from_pem_file("server.key")?,
    ///     )?;
    /// let tls = ServerTls::from_config(config);
    /// # Ok(()) }
    /// ```
    pub fn from_config(mut config: tokio_rustls::rustls::ServerConfig) -> ServerTls {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        ServerTls {
            config: Arc::new(config),
            check: CheckTls::default(),
        }
    }

    /// Consul's check verifies the certificate for `name` (`TLSServerName`) instead of the
    /// advertised address.
    pub fn check_server_name(mut self, name: impl Into<String>) -> ServerTls {
        self.check.server_name = Some(name.into());
        self
    }

    /// Consul's check (`TLSSkipVerify`) and Fabio (`tlsskipverify=true` on the routes) do not
    /// verify the certificate: for a self-signed one, or one from a CA neither trusts. The
    /// connection is still encrypted, but not authenticated.
    pub fn unverified(mut self) -> ServerTls {
        self.check.skip_verify = true;
        self
    }
}

impl ServerTls {
    /// The server for `router` on `tcp` over TLS, with its `GRPC` check over TLS.
    pub(super) fn server(self, tcp: tokio::net::TcpListener, router: axum::Router) -> Server {
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(self.config),
            handshakes: tokio::task::JoinSet::new(),
        };
        let mut server = Server::axum(listener, router);
        server.check = Check::Grpc {
            tls: Some(self.check),
        };
        server
    }
}

/// How long a connection may take over its TLS handshake.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are TLS, handshaken concurrently so one slow client
/// does not hold up the others.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: tokio::task::JoinSet<Option<(TlsStream, SocketAddr)>>,
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsStream, SocketAddr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        tcp.no_delay();
                        let handshake = self.acceptor.accept(tcp);
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_WITHIN, handshake).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    None
                                }
                            }
                        }.with_current_subscriber());
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl NoDelay for TlsStream {
    fn no_delay(&self) {
        // Set on the TCP connection before its handshake.
    }
}

/// After a failed `accept`: a connection that went away before it was taken is nothing; any
/// other error (out of file descriptors, say) waits a second before the next try, as axum's
/// own listener does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_tls_from_pem_says_what_is_wrong() {
        let pki = discoverable_testkit::pki::pki();
        let (cert, key) = (&pki.server.cert_pem, &pki.server.key_pem);
        let tls = ServerTls::from_pem(cert, key).unwrap();
        assert_eq!(
            tls.config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let shown = format!("{tls:?}");
        assert!(shown.contains(r#"alpn: ["h2", "http/1.1"]"#), "{shown}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("CERTIFICATE"),
            "{shown}"
        );
        let error = |cert: &str, key: &str| ServerTls::from_pem(cert, key).unwrap_err().to_string();
        assert_eq!(
            error("", key),
            "invalid setting grpc::ServerTls::from_pem: the certificate chain holds no `BEGIN CERTIFICATE` block"
        );
        assert_eq!(
            error(cert, cert),
            "invalid setting grpc::ServerTls::from_pem: the key holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"
        );
        let mismatch = error(cert, &pki.client.key_pem);
        assert!(
            mismatch.starts_with(
                "invalid setting grpc::ServerTls::from_pem: the key does not fit the certificate"
            ),
            "{mismatch}"
        );
        let tls = tls.check_server_name("greeter.internal").unverified();
        assert_eq!(
            tls.check,
            CheckTls {
                server_name: Some("greeter.internal".into()),
                skip_verify: true
            }
        );
    }
}
