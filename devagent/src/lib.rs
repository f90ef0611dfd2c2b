//! A Consul-compatible agent for development and tests.
//!
//! **This is a development tool, not Consul.** Tests, examples and the demo of `discoverable`
//! run against it because no Consul binary can be installed where they run. In production,
//! services talk to a real Consul cluster.
//!
//! `devagent` implements the part of Consul's HTTP API that service registration and discovery
//! use, with Consul's own behaviour: the same paths, JSON field names, status codes, error texts
//! and headers. HTTP and TCP checks really run against the service (2xx passing, 429 warning,
//! anything else critical; the first run staggered within the interval), TTL checks expire,
//! `DeregisterCriticalServiceAfter` reaps, reads block on `?index=` with `X-Consul-Index`, ACL
//! tokens are enforced when configured, and [`Faults`] simulate an agent that is down, slow,
//! failing, or restarted without its data.
//!
//! It serves one node (the agent itself) in one datacenter, as a single server that is its own
//! leader.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use discoverable_devagent::{Config, DevAgent};
//!
//! let agent = DevAgent::start(Config::default()).await?; // 127.0.0.1, a free port
//! let url = agent.url(); // "http://127.0.0.1:PORT": what CONSUL_HTTP_ADDR should point at
//! assert!(url.starts_with("http://127.0.0.1:"));
//! agent.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The same agent runs as a program, `devagent --addr 127.0.0.1:8500` (see `devagent --help`).
//!
//! Open `{url}/ui/` in a browser for its page: the services, their instances and checks, and
//! the KV keys, kept up to date by the page's blocking queries on this API (with ACLs on, the
//! page asks for a token first). Its files are compiled in; nothing is fetched from elsewhere.
//!
//! For tests of a client's TLS settings it can serve HTTPS, with or without requiring client
//! certificates: see [`TlsConfig`] (a development and test feature).
//!
//! # Endpoints
//!
//! Agent: `PUT /v1/agent/service/register` (`?replace-existing-checks`),
//! `PUT /v1/agent/service/deregister/:id`, `GET /v1/agent/services`, `GET /v1/agent/service/:id`
//! (hash-blocking), `GET /v1/agent/checks`, `PUT /v1/agent/check/{register,deregister/:id}`,
//! `PUT /v1/agent/check/{pass,warn,fail}/:id?note=`, `PUT /v1/agent/check/update/:id`,
//! `PUT /v1/agent/service/maintenance/:id`, `PUT /v1/agent/maintenance`,
//! `GET /v1/agent/health/service/{id,name}/:x`, `GET /v1/agent/self`, `GET /v1/agent/members`.
//! Health (blocking): `GET /v1/health/{service,checks,state,node}/:x`. Catalog (blocking):
//! `GET /v1/catalog/{services,service/:name,nodes,node/:node}`, `GET /v1/catalog/datacenters`.
//! KV (blocking reads): `GET|PUT|DELETE /v1/kv/<key>`. Status: `GET /v1/status/{leader,peers}`,
//! `GET /v1/operator/raft/configuration`.
//! Fault switches: `PUT /_devagent/fault/...`, see [`Faults`]. How each check's registration
//! was decoded (Consul's views leave `Definition` empty): `GET /_devagent/checks`. The page:
//! `GET /ui/`.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

mod acl;
mod agent;
mod api;
mod checks;
mod decode;
mod faults;
mod server;
mod state;
mod tls;
mod ui;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use faults::Faults;
pub use tls::TlsConfig;

/// Not public API: what the `devagent` binary needs from the library.
#[doc(hidden)]
pub mod __private {
    use std::time::Duration;

    /// A non-negative Go duration (`500ms`, `1m30s`), or `None`.
    pub fn go_duration(s: &str) -> Option<Duration> {
        let d = crate::decode::parse_go_duration(s).ok()?;
        (d.0 >= 0).then(|| d.positive().unwrap_or_default())
    }
}

use crate::acl::Acl;
use crate::agent::Agent;
use crate::checks::Runners;
use crate::server::Server;
use crate::state::Store;

/// How to run a [`DevAgent`].
///
/// ```
/// use std::time::Duration;
/// use discoverable_devagent::Config;
///
/// let config = Config {
///     acl_token: Some("root-token".into()),
///     reap_interval: Duration::from_millis(200),
///     deregister_critical_min: Duration::from_secs(1),
///     ..Config::default()
/// };
/// // The token never shows in Debug output.
/// assert!(!format!("{config:?}").contains("root-token"));
/// ```
#[derive(Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// The node name. Default `devagent`.
    pub node: String,
    /// The datacenter. Default `dc1`.
    pub datacenter: String,
    /// `Some(token)`: ACLs on with default policy `deny`, `token` being the management token.
    /// `None` (default): ACLs off.
    pub acl_token: Option<String>,
    /// How often services with long-critical checks are reaped. Default 30s (Consul's
    /// `check_reap_interval`).
    pub reap_interval: Duration,
    /// The least `DeregisterCriticalServiceAfter` honoured. Default 60s (Consul's minimum).
    pub deregister_critical_min: Duration,
    /// **Not Consul behaviour**, for tests only: every `DeregisterCriticalServiceAfter` is
    /// treated as at most this long, so a test can watch a crashed instance being reaped
    /// although its registration asks for Consul's one-minute minimum. Default `None`.
    pub deregister_critical_cap: Option<Duration>,
    /// `Some`: serve HTTPS (optionally requiring client certificates) instead of plain HTTP,
    /// for tests of a client's TLS settings. A development and test feature, see
    /// [`TlsConfig`]. Default `None`.
    pub tls: Option<TlsConfig>,
    /// How many HTTP connections one client IP may hold open at once; one more is answered
    /// `429 Too Many Requests` and closed, as Consul does. Default 200, Consul's
    /// `limits.http_max_conns_per_client`; 0: no limit.
    pub http_max_conns_per_client: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            node: "devagent".into(),
            datacenter: "dc1".into(),
            acl_token: None,
            reap_interval: Duration::from_secs(30),
            deregister_critical_min: Duration::from_secs(60),
            deregister_critical_cap: None,
            tls: None,
            http_max_conns_per_client: 200,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("node", &self.node)
            .field("datacenter", &self.datacenter)
            .field("acl_token", &self.acl_token.as_ref().map(|_| "<redacted>"))
            .field("reap_interval", &self.reap_interval)
            .field("deregister_critical_min", &self.deregister_critical_min)
            .field("deregister_critical_cap", &self.deregister_critical_cap)
            .field("tls", &self.tls)
            .field("http_max_conns_per_client", &self.http_max_conns_per_client)
            .finish()
    }
}

/// A running agent. Dropping it stops it (listener, connections, check runners).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use discoverable_devagent::{Config, DevAgent};
///
/// let agent = DevAgent::start(Config::default()).await?;
/// let http = reqwest::Client::new();
/// // Exactly what a Consul client sends.
/// http.put(format!("{}/v1/agent/service/register", agent.url()))
///     .body(r#"{"Name": "web", "Port": 8080, "Check": {"TTL": "15s", "Status": "passing"}}"#)
///     .send()
///     .await?
///     .error_for_status()?;
/// let healthy: serde_json::Value = http
///     .get(format!("{}/v1/health/service/web?passing", agent.url()))
///     .send()
///     .await?
///     .json()
///     .await?;
/// assert_eq!(healthy[0]["Service"]["Port"], 8080);
/// agent.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct DevAgent {
    agent: Arc<Agent>,
    server: Server,
    reaper: JoinHandle<()>,
}

impl fmt::Debug for DevAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAgent")
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}

impl DevAgent {
    /// Binds `config.addr`, starts serving, and returns once it is listening.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The bind error, or `InvalidInput` when the TLS material of `config.tls` cannot be used.
    pub async fn start(config: Config) -> io::Result<DevAgent> {
        let tls = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        Self::serve(server::bind(config.addr)?, tls, &config)
    }

    /// Starts serving on a listener the caller bound already (`config.addr` is ignored), e.g.
    /// to learn the agent's port before any thread exists.
    ///
    /// Must be called within a tokio runtime.
    pub async fn from_listener(
        listener: std::net::TcpListener,
        config: Config,
    ) -> io::Result<DevAgent> {
        let tls = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        listener.set_nonblocking(true)?;
        Self::serve(tokio::net::TcpListener::from_std(listener)?, tls, &config)
    }

    fn serve(
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        config: &Config,
    ) -> io::Result<DevAgent> {
        let store = Arc::new(Store::new());
        let checks = Arc::new(Runners::new(store.clone()));
        let (listening, orders) = server::switch();
        let faults = Faults::new(checks.clone(), listening.clone(), listener.local_addr()?);
        let agent = Arc::new(Agent {
            node: config.node.clone(),
            datacenter: config.datacenter.clone(),
            acl: Acl::new(config.acl_token.clone()),
            reap_interval: config.reap_interval,
            deregister_critical_min: config.deregister_critical_min,
            deregister_critical_cap: config.deregister_critical_cap,
            store,
            checks: checks.clone(),
            faults,
        });
        let handler = {
            let agent = agent.clone();
            move |req| api::handle(agent.clone(), req)
        };
        let limit = config.http_max_conns_per_client;
        let server = Server::start(listener, tls, limit, (listening, orders), handler)?;
        let reaper = checks::spawn_reaper(checks, config.reap_interval);
        tracing::info!(
            addr = %server.addr(),
            tls = server.is_tls(),
            node = %agent.node,
            datacenter = %agent.datacenter,
            acl = agent.acl.default_policy(),
            "devagent started"
        );
        Ok(DevAgent {
            agent,
            server,
            reaper,
        })
    }

    /// The bound address (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:8500`, or `https://127.0.0.1:8501`
    /// with [`Config::tls`] (loopback when bound to a wildcard address).
    pub fn url(&self) -> String {
        let mut addr = self.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let scheme = if self.server.is_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    }

    /// Whether the agent serves HTTPS ([`Config::tls`]).
    pub fn is_tls(&self) -> bool {
        self.server.is_tls()
    }

    /// How many blocking queries wait for a change right now: a test can wait until its queries
    /// are parked before it makes the change they wait for.
    pub fn blocking_queries(&self) -> usize {
        self.agent.store.waiting()
    }

    /// How many check runners (HTTP, TCP, TTL) are alive: one per such check, gone once the
    /// check is deregistered or replaced.
    pub fn running_checks(&self) -> usize {
        self.agent.checks.alive()
    }

    /// A handle on the fault switches.
    pub fn faults(&self) -> Faults {
        self.agent.faults.clone()
    }

    /// Stops listening, drops open connections and stops every check runner; returns when done.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        self.reaper.abort();
        self.agent.checks.stop_all();
        tracing::info!(addr = %self.addr(), "devagent stopped");
    }
}

impl Drop for DevAgent {
    fn drop(&mut self) {
        // Dropping the server stops it.
        self.reaper.abort();
        self.agent.checks.stop_all();
    }
}
