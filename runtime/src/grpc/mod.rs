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
//! Over TLS (feature `tls`; [`Routes::tls`] with a [`ServerTls`]), the check has `GRPCUseTLS` set (and
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
//! let service = discoverable::Service::builder("greeter").build()?;
//! let routes = discoverable::grpc::Routes::new(my_service());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:50051").await?;
//! discoverable::grpc::serve(service, listener, routes).await?;
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
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

use crate::health::Health;
use crate::instance::Instance;
use crate::serve::server::{Check, CheckTls, Server};
use crate::serve::{Serve, ServeListener};

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::ServerTls;

/// The tonic services one server serves, with their names (`NamedService::NAME`), from which
/// the registration gets one Fabio route each. Built as `tonic::service::Routes` is.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: tonic::service::Routes,
    names: Vec<&'static str>,
    #[cfg(feature = "tls")]
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
            #[cfg(feature = "tls")]
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

    #[cfg(feature = "tls")]
    /// Serves the routes over TLS (HTTP/2 negotiated by ALPN), as tonic's
    /// `Server::builder().tls_config(..)` does: the registration's `GRPC` check then has
    /// `GRPCUseTLS` set, and the Fabio routes say `proto=grpcs`.
    ///
    /// ```no_run
    /// # use tonic_health::pb::health_server::{Health, HealthServer};
    /// # fn my_service() -> HealthServer<impl Health> { tonic_health::server::health_reporter().1 }
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use discoverable::grpc::{Routes, ServerTls};
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

/// Serves `routes` on `listener` as a discoverable gRPC instance of `service` (a
/// [`Service`](crate::Service), or an [`Instance`] of it, as [`crate::serve`] takes); see the
/// [module docs](self). Await it: it returns when shutdown is complete.
pub fn serve<L: ServeListener>(
    service: impl Into<Instance>,
    listener: L,
    routes: Routes,
) -> Serve<axum::Router, axum::Router> {
    let instance = service.into();
    #[cfg(feature = "tls")]
    let Routes { routes, names, tls } = routes;
    #[cfg(not(feature = "tls"))]
    let Routes { routes, names } = routes;
    let listener = listener.into_tcp();
    let health = HealthServer::new(GrpcHealth {
        instance: instance.clone(),
        names: names.clone().into(),
    });
    let router = routes.add_service(health).into_axum_router();
    #[cfg(feature = "tls")]
    let mut server = match tls {
        None => Server::axum(listener, router),
        Some(tls) => tls.server(listener, router),
    };
    #[cfg(not(feature = "tls"))]
    let mut server = Server::axum(listener, router);
    let tls = match server.check {
        Check::Grpc { tls } => tls,
        Check::Http => None,
    };
    server.tags = names
        .iter()
        .map(|name| route_tag(name, tls.as_ref()))
        .collect();
    server.check = Check::Grpc { tls };
    Serve::ready(instance, server)
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

/// The Fabio route of a served gRPC service: `proto=grpcs` over TLS, with `tlsskipverify=true`
/// for an unverified certificate.
fn route_tag(service: &str, tls: Option<&CheckTls>) -> String {
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
        let mut tls = CheckTls::default();
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

    #[tokio::test]
    async fn check_answers_for_the_server_and_each_service() {
        let service = crate::Service::builder("greeter").build().unwrap();
        let instance = service.new_instance();
        let health = GrpcHealth {
            instance: instance.clone(),
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
        instance.set_health(Health::Degraded);
        assert_eq!(ask("").await.unwrap(), ServingStatus::NotServing as i32);
    }
}
