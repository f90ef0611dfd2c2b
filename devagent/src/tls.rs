//! HTTPS for the agent's API, **for development and tests**: a certificate and key given as PEM,
//! and optionally a CA whose client certificates the agent then requires (mutual TLS).
//!
//! It exists so that a Consul client's TLS settings (`CONSUL_HTTP_SSL`, `CONSUL_CACERT`,
//! `CONSUL_CLIENT_CERT`/`CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`, `CONSUL_HTTP_SSL_VERIFY`)
//! can be tested against an agent that serves TLS like Consul's HTTPS port does. It is not
//! hardened for anything else: it has no certificate reloading, no revocation checks, and
//! takes whatever rustls's safe defaults allow (TLS 1.2 and 1.3, rustls with the aws-lc-rs
//! provider, the same stack reqwest uses here). The agent speaks HTTP/1.1 over it, as Consul's
//! HTTP API does (ALPN `http/1.1`).
//!
//! Owns turning PEM material into a `tokio_rustls::TlsAcceptor`; the listener calls the
//! acceptor on each connection, off the accept loop.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS settings of a [`DevAgent`](crate::DevAgent): serve HTTPS instead of plain HTTP.
///
/// **A development and test feature**: the agent is not Consul and not a TLS terminator for
/// production use.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use discoverable_devagent::{Config, DevAgent, TlsConfig};
///
/// let tls = TlsConfig::from_files("server.pem", "server-key.pem", Some("ca.pem"))?;
/// let agent = DevAgent::start(Config { tls: Some(tls), ..Config::default() }).await?;
/// assert!(agent.url().starts_with("https://127.0.0.1:"));
/// agent.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    /// The server certificate chain, PEM: the agent's certificate first, then intermediates.
    pub cert_pem: Vec<u8>,
    /// The private key of the certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
    /// `Some(pem)`: require every client to present a certificate signed by one of these CA
    /// certificates (mutual TLS, Consul's `verify_incoming`). `None` (default): no client
    /// certificates asked for.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material never shows; sizes are enough to tell settings apart.
        f.debug_struct("TlsConfig")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "client_ca_pem",
                &self
                    .client_ca_pem
                    .as_ref()
                    .map(|ca| format!("<{} bytes>", ca.len())),
            )
            .finish()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn read(path: &Path, what: &str) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })
}

impl TlsConfig {
    /// A server certificate chain and its key, PEM; no client certificates asked for.
    pub fn new(cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> TlsConfig {
        TlsConfig {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            client_ca_pem: None,
        }
    }

    /// Requires client certificates signed by the CA certificates of `ca_pem` (mutual TLS).
    pub fn require_client_cert(mut self, ca_pem: impl Into<Vec<u8>>) -> TlsConfig {
        self.client_ca_pem = Some(ca_pem.into());
        self
    }

    /// Reads the certificate chain, the key and (optionally) the client CA from PEM files.
    ///
    /// # Errors
    ///
    /// An `io::Error` naming the file that cannot be read.
    pub fn from_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: Option<impl AsRef<Path>>,
    ) -> io::Result<TlsConfig> {
        Ok(TlsConfig {
            cert_pem: read(cert.as_ref(), "TLS certificate")?,
            key_pem: read(key.as_ref(), "TLS key")?,
            client_ca_pem: match client_ca {
                Some(ca) => Some(read(ca.as_ref(), "client CA file")?),
                None => None,
            },
        })
    }

    /// The acceptor for these settings.
    ///
    /// # Errors
    ///
    /// `InvalidInput` saying which part of the PEM material cannot be used.
    pub(crate) fn acceptor(&self) -> io::Result<TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("TLS certificate: not PEM certificates ({e})")))?;
        if certs.is_empty() {
            return Err(invalid(
                "TLS certificate: no PEM certificate found; expected -----BEGIN CERTIFICATE-----"
                    .into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| {
            invalid(format!(
                "TLS key: no usable PEM private key ({e}); expected PKCS#8, PKCS#1 or SEC1"
            ))
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS: {e}")))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert
                        .map_err(|e| invalid(format!("client CA: not PEM certificates ({e})")))?;
                    roots
                        .add(cert)
                        .map_err(|e| invalid(format!("client CA: unusable certificate ({e})")))?;
                }
                if roots.is_empty() {
                    return Err(invalid(
                        "client CA: no PEM certificate found; expected -----BEGIN CERTIFICATE-----"
                            .into(),
                    ));
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(format!("TLS certificate and key do not go together: {e}")))?;
        // Consul's HTTP API is HTTP/1.1, and so is this agent's server.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
