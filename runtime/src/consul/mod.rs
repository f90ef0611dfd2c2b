//! A typed client for the part of Consul's HTTP API that registration and discovery use.
//!
//! This module owns everything that speaks HTTP to Consul:
//!
//! - [`Config`]: where the agent is and how to talk to it, read from Consul's own
//!   environment variables (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, ...) exactly as Consul's
//!   CLI reads them, or set with [`Config::builder`];
//! - [`Client`]: one async method per endpoint (agent services and checks, TTL updates,
//!   `agent/self`, health, catalog), blocking queries by index or hash, a time bound on every
//!   request, and failures mapped onto [`Error`](crate::Error) (`Unreachable`, `Timeout`,
//!   `PermissionDenied`, `NotFound`, `Status`, `Decode`);
//! - the request and response types in Consul's JSON (`#[non_exhaustive]`: requests are
//!   built with constructors such as [`Registration::new`], then their public fields set),
//!   and [`next_index`], Consul's rules for the index of the next blocking read.
//!
//! It calls only `reqwest` (HTTP, rustls; the error types of rustls and hyper to read its
//! failures), `serde`, `tokio` (DNS for the TLS server name), `tracing`, the Go durations of
//! `discoverable-rules` and the crate's [`Error`](crate::Error); nothing else in the runtime. The
//! service description, the layer, `serve` and discovery build on it, never the other way
//! round. It does no retrying: callers decide when to try again.
//!
//! The ACL token is sent only as the `X-Consul-Token` header. It never appears in a `Debug`
//! output, a log line or an error text.
//!
//! ```no_run
//! use std::time::Duration;
//! use discoverable::consul::{CheckDefinition, Client, Registration};
//!
//! # async fn demo() -> Result<(), discoverable::Error> {
//! let client = Client::from_env()?;
//! let mut registration = Registration::new("web-1", "web");
//! registration.address = "10.0.0.7".into();
//! registration.port = 8080;
//! registration.checks.push(CheckDefinition::http(
//!     "http://10.0.0.7:8080/health",
//!     Duration::from_secs(10),
//! ));
//! client.register(&registration).await?;
//! client.deregister("web-1").await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod error_text;
pub(crate) use error_text::chain;
mod types;

#[cfg(test)]
mod fault_tests;

pub use client::Client;
pub(crate) use config::parse_go_bool;
pub use config::{Config, ConfigBuilder, DEFAULT_ADDRESS, DEFAULT_REQUEST_TIMEOUT, Token};
pub use types::{
    AgentMember, AgentSelf, AgentService, CheckDefinition, CheckStatus, Consistency, DEFAULT_WAIT,
    Hashed, HealthCheck, HealthCheckDefinition, HealthQuery, HealthState, Indexed, MAX_WAIT, Node,
    QueryOptions, Registration, ServiceAddress, ServiceEntry, Weights, next_index,
};
