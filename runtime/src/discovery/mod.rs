//! Discovery: the calling side. Watches a service's healthy instances in Consul.
//!
//! - [`Discovery::watch`] starts a [`Watch`]: blocking queries on
//!   `/v1/health/service/<name>?passing` with Consul's index rules (an index that goes
//!   backwards resets the watch; index 0 is never waited on), backoff with jitter on error,
//!   and the last good set kept, marked [stale](InstanceSet::is_stale), while Consul cannot
//!   be reached. One task and one open request per watch; no busy loop.
//! - [`Watch::discover`] turns it into a `tower::discover::Discover` for
//!   `tower::balance::p2c::Balance`.
//! - [`Balanced`] is a small load-balanced HTTP client on top.
//! - [`Discovery::catalog`] watches the list of services and their tags.
//! - [`Discovery::services`] watches every service's passing instances with one blocking
//!   query, as Fabio does: for a router over many services (Consul allows each client
//!   address 200 connections, and a watch per service holds one each).
//! - The watches run in one blocking-query loop (`blocking`), with one set of index rules.
//! - [`Route`] reads Fabio's `urlprefix-` tags, for routers that route as Fabio does.
//!
//! Only passing instances are returned by default, as Fabio routes: a `warning` (degraded)
//! instance is left out too.
//!
//! Owns nothing but its watch tasks; reads Consul through [`consul::Client`](crate::consul::Client).

pub(crate) mod blocking;
mod catalog;
mod client;
mod discover;
#[cfg(feature = "grpc")]
mod grpc_channel;
mod route;
mod services;
mod watch;

pub use catalog::{Catalog, CatalogWatch};
pub use client::Balanced;
pub use discover::DiscoverEndpoints;
pub use route::{Route, URLPREFIX};
pub use services::{Services, ServicesWatch};
pub use watch::{Discovery, Endpoint, InstanceSet, Watch, WatchBuilder, WatchStream};
