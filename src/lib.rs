//! Make an axum service discoverable through HashiCorp Consul with one attribute.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! #[discoverable::discoverable(name = "cool_app", prefix = "/oops")]
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let app = Router::new().route("/", get(|| async { "home page" }));
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! The attribute checks the service metadata at compile time, adds a health route
//! (`/health`), registers the instance with Consul as soon as the listener is bound (with a
//! `urlprefix-/oops` tag for Fabio and an HTTP check), and on SIGTERM or Ctrl-C deregisters
//! it, waits a short grace period so routers drop it, then drains in-flight requests. See
//! [`discoverable`] for every argument.
//!
//! The same without the attribute:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//!
//! let service = discoverable::Service::builder("cool_app").prefix("/oops").build()?;
//! let app = Router::new().route("/", get(|| async { "home page" }));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! discoverable::serve(service, listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! or only the health route and drain tracking, on a server of your own:
//! `app.layer(discoverable::DiscoveryLayer::new(&service))`.
//!
//! The calling side watches healthy instances: [`Discovery`].
//!
//! How to reach Consul comes from Consul's own environment variables (`CONSUL_HTTP_ADDR`,
//! `CONSUL_HTTP_TOKEN`, ...); per-deployment settings from `DISCOVERABLE_*` variables, which
//! override the code. The README lists them all.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

pub use discoverable_macros::discoverable;

// The surface, named one by one (the listing in api/discoverable.txt is what users get), and
// the modules of optional features: `grpc`, present whenever the runtime is built with it.
#[allow(unused_imports, reason = "empty without the optional features")]
pub use discoverable_runtime::optional::*;
pub use discoverable_runtime::{
    DEFAULT_DEREGISTER_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_GRACE_PERIOD, DEFAULT_RETRY_MAX,
    DEFAULT_RETRY_MIN, Discovery, DiscoveryLayer, Error, Health, HealthReport, InFlight, Instance,
    Serve, ServeListener, Service, ServiceBuilder, consul, discovery, layer, serve,
};

/// Items the `#[discoverable]` attribute's expansion calls. Not public API: no stability
/// promise; may change in any release.
#[doc(hidden)]
pub use discoverable_runtime::__private;
