//! gRPC servers (feature `grpc`): the same lifecycle for tonic services.
//!
//! [`serve`] serves [`Routes`] (tonic services, collected as with `tonic::service::Routes`,
//! keeping their names) as a discoverable instance:
//!
//! - the standard health service, `grpc.health.v1.Health`, is added; it answers for the whole
//!   server (`""`) and for each served service, from the instance's [`Health`] (the same
//!   indicators and [`Instance::set_health`](crate::Instance::set_health) as the HTTP route),
//!   and `NOT_SERVING` from the moment shutdown begins;
//! - the registration carries a `GRPC` check on the advertised address, which Consul runs
//!   with `grpc.health.v1.Health/Check`, and one Fabio route per served service,
//!   `urlprefix-/<package.Service> proto=grpc`, next to the service's own prefix and tags;
//! - SIGTERM deregisters, waits the grace period, then drains calls in flight, unary and
//!   streaming, within the drain bound, as for HTTP.
//!
//! gRPC's health has no warning state, so [`Health::Degraded`] answers `NOT_SERVING`: Consul
//! marks the check critical, and routers and [`Discovery`](crate::Discovery) stop sending
//! calls, as they do for a degraded HTTP instance. Unlike a warning, a critical check counts
//! towards `deregister_after`: an instance degraded for longer leaves Consul, and registers
//! again (probing its state afresh) once Consul has removed it.
//!
//! The server also answers the HTTP health route (`GET /health` over HTTP/1.1) on the same
//! port, with which the runtime probes itself before registering.
//!
//! Over TLS ([`Routes::tls`] with a [`ServerTls`]), the check has `GRPCUseTLS` set (and
//! `TLSServerName`, `TLSSkipVerify` as the `ServerTls` says), the routes say `proto=grpcs`,
//! and the instance reads its own health instead of probing itself.
//! [`Discovery::grpc_channel_tls`](crate::Discovery::grpc_channel_tls) is the calling side.
//! Fabio v1.7.2 speaks TLS to a `proto=grpcs` route only from a `grpcs` listener (one with a
//! certificate source): from a plaintext `grpc` listener it dials the instance in plaintext.
//!
//! ```no_run
//! # use tonic_health::pb::health_server::{Health, HealthServer};
//! # fn my_service() -> HealthServer<impl Health> { tonic_health::server::health_reporter().1 }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let service = discoverable_runtime::Service::builder("greeter").build()?;
//! let routes = discoverable_runtime::grpc::Routes::new(my_service());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:50051").await?;
//! discoverable_runtime::grpc::serve(service, listener, routes).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use tokio_stream::Stream;
use tonic::server::NamedService;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthApi, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_service::Service as TowerService;
use tracing::instrument::WithSubscriber as _;

use crate::health::Health;
use crate::instance::Instance;
use crate::serve::{NoDelay, Protocol, Serve, ServeListener, Server, Start};
use crate::service::Service;

/// The tonic services one server serves, with their names (`NamedService::NAME`), from which
/// the registration gets one Fabio route each. Built as `tonic::service::Routes` is.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: tonic::service::Routes,
    names: Vec<&'static str>,
    tls: Option<ServerTls>,
}

impl Routes {
    /// Routes serving `service`.
    pub fn new<S>(service: S) -> Routes
    where
        S: TowerService<Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        Routes {
            routes: tonic::service::Routes::new(service),
            names: vec![S::NAME],
            tls: None,
        }
    }

    /// Adds another service.
    pub fn add_service<S>(mut self, service: S) -> Routes
    where
        S: TowerService<Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// The served services' full names, e.g. `helloworld.Greeter`.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Serves the routes over TLS (HTTP/2 negotiated by ALPN), as tonic's
    /// `Server::builder().tls_config(..)` does: the registration's `GRPC` check then has
    /// `GRPCUseTLS` set, and the Fabio routes say `proto=grpcs`.
    ///
    /// ```no_run
    /// # use tonic_health::pb::health_server::{Health, HealthServer};
    /// # fn my_service() -> HealthServer<impl Health> { tonic_health::server::health_reporter().1 }
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use discoverable_runtime::grpc::{Routes, ServerTls};
    ///
    /// let tls = ServerTls::from_pem(std::fs::read("server.pem")?, std::fs::read("server.key")?)?;
    /// let routes = Routes::new(my_service()).tls(tls);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, tls: ServerTls) -> Routes {
        self.tls = Some(tls);
        self
    }
}

/// The TLS side of a gRPC server: its certificate and key (or a whole rustls configuration),
/// and how Consul's check and Fabio verify it. Given to [`Routes::tls`].
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
    check: crate::service::CheckTls,
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
    pub fn from_config(mut config: tokio_rustls::rustls::ServerConfig) -> ServerTls {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        ServerTls {
            config: Arc::new(config),
            check: crate::service::CheckTls::default(),
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

/// Serves `routes` on `listener` as a discoverable gRPC instance of `service`; see the
/// [module docs](self). Await it: it returns when shutdown is complete.
pub fn serve<L: ServeListener>(
    service: Service,
    listener: L,
    routes: Routes,
) -> Serve<axum::Router, axum::Router> {
    serve_with(Ok(service), listener, routes)
}

/// The attribute's entry, as [`crate::serve::serve_attribute`] is for HTTP.
#[doc(hidden)]
pub fn serve_attribute<L: ServeListener>(
    service: Result<Service, crate::Error>,
    listener: L,
    routes: Routes,
) -> Serve<axum::Router, axum::Router> {
    serve_with(service, listener, routes)
}

fn serve_with<L: ServeListener>(
    service: Result<Service, crate::Error>,
    listener: L,
    routes: Routes,
) -> Serve<axum::Router, axum::Router> {
    let Routes { routes, names, tls } = routes;
    let listener = listener.into_tcp();
    let Ok(built) = &service else {
        // A service that cannot be built stops the serve call before anything is served.
        let server = Server::Plain {
            listener,
            make_service: routes.into_axum_router(),
        };
        return crate::serve::serve_protocol(service, server, Protocol::Http);
    };
    let instance = crate::serve::claim_instance(built);
    let health = HealthServer::new(GrpcHealth {
        instance: instance.clone(),
        names: names.clone().into(),
    });
    let router = routes.add_service(health).into_axum_router();
    let (server, check_tls) = match tls {
        None => (
            Server::Plain {
                listener,
                make_service: router,
            },
            None,
        ),
        Some(ServerTls { config, check }) => {
            let listener = TlsListener {
                tcp: listener,
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                handshakes: tokio::task::JoinSet::new(),
            };
            (
                Server::Started(Start::axum(listener, router, true)),
                Some(check),
            )
        }
    };
    let protocol = Protocol::Grpc {
        services: names,
        instance,
        tls: check_tls,
    };
    crate::serve::serve_protocol(service, server, protocol)
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

/// The `grpc.health.v1.Health` service over an instance's health.
#[derive(Clone)]
struct GrpcHealth {
    instance: Instance,
    names: Arc<[&'static str]>,
}

/// How often a `Watch` call reads the health again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

fn serving_status(health: Health) -> ServingStatus {
    match health {
        Health::Up => ServingStatus::Serving,
        Health::Degraded | Health::Down => ServingStatus::NotServing,
    }
}

impl GrpcHealth {
    fn knows(&self, service: &str) -> bool {
        service.is_empty() || self.names.contains(&service)
    }

    async fn status(&self) -> ServingStatus {
        serving_status(self.instance.report().await.status)
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl HealthApi for GrpcHealth {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let service = &request.get_ref().service;
        if !self.knows(service) {
            return Err(tonic::Status::not_found(format!(
                "this server does not serve `{service}`"
            )));
        }
        Ok(tonic::Response::new(HealthCheckResponse {
            status: self.status().await as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<WatchStream>, tonic::Status> {
        let service = &request.get_ref().service;
        // As the standard says: an unknown service is watched as SERVICE_UNKNOWN, not refused.
        let known = self.knows(service);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let this = self.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let status = if known {
                    this.status().await
                } else {
                    ServingStatus::ServiceUnknown
                };
                if last != Some(status) {
                    last = Some(status);
                    let answer = HealthCheckResponse {
                        status: status as i32,
                    };
                    if tx.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(WATCH_EVERY) => {}
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

impl crate::Discovery {
    /// A tonic `Channel` balanced over the passing instances of `service`, following Consul:
    /// an instance is added when it turns passing and removed when it leaves (deregistered,
    /// critical, in maintenance); while Consul cannot be reached, the last instances it
    /// reported stay in. Calls made before the first answer wait for an instance.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    ///
    /// let discovery = discoverable_runtime::Discovery::from_env()?;
    /// let mut health = HealthClient::new(discovery.grpc_channel("greeter"));
    /// let answer = health.check(HealthCheckRequest { service: String::new() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_channel(&self, service: impl Into<String>) -> tonic::transport::Channel {
        self.balanced(service.into(), None)
    }

    /// [`grpc_channel`](Self::grpc_channel) to instances served over TLS
    /// ([`Routes::tls`]): each connection verifies the instance's certificate with `tls`
    /// (its roots, and the name to verify, since instances are reached by address:
    /// `ClientTlsConfig::new().ca_certificate(ca).domain_name("greeter.internal")`).
    ///
    /// ```no_run
    /// # async fn run(ca_pem: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// use tonic::transport::{Certificate, ClientTlsConfig};
    ///
    /// let discovery = discoverable_runtime::Discovery::from_env()?;
    /// let tls = ClientTlsConfig::new()
    ///     .ca_certificate(Certificate::from_pem(ca_pem))
    ///     .domain_name("greeter.internal");
    /// let channel = discovery.grpc_channel_tls("greeter", tls);
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_channel_tls(
        &self,
        service: impl Into<String>,
        tls: tonic::transport::ClientTlsConfig,
    ) -> tonic::transport::Channel {
        self.balanced(service.into(), Some(tls))
    }

    fn balanced(
        &self,
        service: String,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> tonic::transport::Channel {
        let watch = self.watch(service).start();
        let (channel, changes) = tonic::transport::Channel::balance_channel(CHANGES_BUFFER);
        tokio::spawn(follow(watch, changes, tls).with_subscriber(crate::log::dispatch()));
        channel
    }
}

/// The endpoint of the instance at `authority`: `http://`, or `https://` with `tls`.
fn endpoint(
    authority: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    use tonic::transport::Endpoint;
    match tls {
        None => Endpoint::from_shared(format!("http://{authority}")),
        Some(tls) => Endpoint::from_shared(format!("https://{authority}"))?.tls_config(tls.clone()),
    }
}

/// Changes queued for a balanced channel before the watch waits for it to take them.
const CHANGES_BUFFER: usize = 64;

type Changes = tokio::sync::mpsc::Sender<
    tonic::transport::channel::Change<String, tonic::transport::Endpoint>,
>;

/// Feeds a balanced channel the watch's instances, keyed by instance ID, until the channel is
/// dropped.
async fn follow(
    mut watch: crate::discovery::Watch,
    changes: Changes,
    tls: Option<tonic::transport::ClientTlsConfig>,
) {
    use tonic::transport::channel::Change;
    let mut inserted: BTreeMap<String, String> = BTreeMap::new();
    let mut set = watch.current();
    loop {
        if set.is_known() {
            let wanted: BTreeMap<String, String> = set
                .endpoints()
                .iter()
                .map(|e| (e.id.clone(), e.authority()))
                .collect();
            for (id, authority) in &inserted {
                if wanted.get(id) != Some(authority)
                    && changes.send(Change::Remove(id.clone())).await.is_err()
                {
                    return;
                }
            }
            inserted.retain(|id, authority| wanted.get(id) == Some(authority));
            for (id, authority) in wanted {
                if inserted.contains_key(&id) {
                    continue;
                }
                let endpoint = match endpoint(&authority, tls.as_ref()) {
                    Ok(endpoint) => endpoint,
                    Err(e) => {
                        tracing::warn!(%id, %authority, error = %e, "instance address is not a URI authority, or the TLS configuration cannot be used; leaving it out of the channel");
                        continue;
                    }
                };
                if changes
                    .send(Change::Insert(id.clone(), endpoint))
                    .await
                    .is_err()
                {
                    return;
                }
                inserted.insert(id, authority);
            }
        }
        tokio::select! {
            () = changes.closed() => return,
            next = watch.changed() => set = next,
        }
    }
}

/// The Fabio route of a served gRPC service: `proto=grpcs` over TLS, with `tlsskipverify=true`
/// for an unverified certificate.
pub(crate) fn route_tag(service: &str, tls: Option<&crate::service::CheckTls>) -> String {
    match tls {
        None => format!("urlprefix-/{service} proto=grpc"),
        Some(tls) if tls.skip_verify => {
            format!("urlprefix-/{service} proto=grpcs tlsskipverify=true")
        }
        Some(_) => format!("urlprefix-/{service} proto=grpcs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_is_not_serving() {
        assert_eq!(serving_status(Health::Up), ServingStatus::Serving);
        assert_eq!(serving_status(Health::Degraded), ServingStatus::NotServing);
        assert_eq!(serving_status(Health::Down), ServingStatus::NotServing);
    }

    #[test]
    fn a_route_per_service() {
        assert_eq!(
            route_tag("helloworld.Greeter", None),
            "urlprefix-/helloworld.Greeter proto=grpc"
        );
        let mut tls = crate::service::CheckTls::default();
        assert_eq!(
            route_tag("helloworld.Greeter", Some(&tls)),
            "urlprefix-/helloworld.Greeter proto=grpcs"
        );
        tls.skip_verify = true;
        assert_eq!(
            route_tag("helloworld.Greeter", Some(&tls)),
            "urlprefix-/helloworld.Greeter proto=grpcs tlsskipverify=true"
        );
    }

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
            crate::service::CheckTls {
                server_name: Some("greeter.internal".into()),
                skip_verify: true
            }
        );
    }

    #[tokio::test]
    async fn check_answers_for_the_server_and_each_service() {
        let service = Service::builder("greeter").build().unwrap();
        let health = GrpcHealth {
            instance: service.instance(),
            names: vec!["helloworld.Greeter"].into(),
        };
        let ask = |name: &str| {
            let health = health.clone();
            let request = tonic::Request::new(HealthCheckRequest {
                service: name.to_owned(),
            });
            async move { health.check(request).await.map(|r| r.into_inner().status) }
        };
        let serving = ServingStatus::Serving as i32;
        assert_eq!(ask("").await.unwrap(), serving);
        assert_eq!(ask("helloworld.Greeter").await.unwrap(), serving);
        assert_eq!(
            ask("other.Service").await.unwrap_err().code(),
            tonic::Code::NotFound
        );
        service.instance().set_health(Some(Health::Degraded));
        assert_eq!(ask("").await.unwrap(), ServingStatus::NotServing as i32);
    }
}
