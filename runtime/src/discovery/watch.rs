//! Watching a service's instances with Consul's blocking queries.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tracing::instrument::WithSubscriber as _;

use super::blocking::{Blocking, Step};
use super::route::Route;
use crate::consul::{self, Client, Consistency, HealthQuery, QueryOptions, ServiceEntry};
use crate::error::Error;
use crate::health::Health;

/// How long one blocking query waits for a change before Consul answers anyway.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The query options every watch starts from (the instance, catalog and services watches):
/// unless a watch says otherwise, any server answers, from its own copy. Measured (README,
/// Scale): on one server and across hosts it costs the servers and takes what asking the
/// leader does; while a leader was lost it was stale for 160 ms at most, where asking the
/// leader was stale for the whole election in most runs (2.9 s, 4.2 s); and it spreads the
/// reads over the servers.
pub(crate) fn watch_options() -> QueryOptions {
    QueryOptions {
        consistency: Consistency::Stale,
        ..QueryOptions::default()
    }
}

/// Finds and watches the instances of services registered in Consul.
///
/// ```no_run
/// # async fn run() -> Result<(), discoverable::Error> {
/// use discoverable::Discovery;
///
/// let discovery = Discovery::from_env()?;
/// let mut watch = discovery.watch("cool_app").start();
/// loop {
///     let set = watch.changed().await;
///     for e in set.endpoints() {
///         println!("{} at {}", e.id, e.authority());
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Discovery {
    client: Client,
}

impl Discovery {
    /// Discovery through `client`.
    pub fn new(client: Client) -> Self {
        Discovery { client }
    }

    /// Discovery through the Consul agent the environment names (`CONSUL_HTTP_ADDR`, ...).
    pub fn from_env() -> Result<Self, Error> {
        Ok(Discovery::new(Client::from_env()?))
    }

    /// The Consul client used.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts describing a watch of service `name`'s instances.
    pub fn watch(&self, name: impl Into<String>) -> WatchBuilder {
        WatchBuilder {
            client: self.client.clone(),
            name: name.into(),
            query: HealthQuery {
                options: watch_options(),
                ..HealthQuery::default()
            },
            wait: DEFAULT_WAIT,
            retry_min: crate::DEFAULT_RETRY_MIN,
            retry_max: crate::DEFAULT_RETRY_MAX,
        }
    }
}

/// Options of a watch; [`start`](Self::start) starts it.
#[must_use = "call .start() to start watching"]
#[derive(Debug)]
pub struct WatchBuilder {
    client: Client,
    name: String,
    query: HealthQuery,
    wait: Duration,
    retry_min: Duration,
    retry_max: Duration,
}

impl WatchBuilder {
    /// Only instances with this tag (repeat for several: all must match).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.query.tags.push(tag.into());
        self
    }

    /// Instances in another datacenter.
    pub fn datacenter(mut self, dc: impl Into<String>) -> Self {
        self.query.options.datacenter = Some(dc.into());
        self
    }

    /// Only passing instances (default `true`, as Fabio routes). With `false`, every
    /// instance, each with its [`Endpoint::health`].
    pub fn passing_only(mut self, passing: bool) -> Self {
        self.query.passing = passing;
        self
    }

    /// A Consul filter expression, e.g. `Service.Meta.version == "2"`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.query.options.filter = Some(filter.into());
        self
    }

    /// Who answers the watch's queries. By default [`Consistency::Stale`]: any server, from
    /// its copy, which may lag the leader by the replication delay (milliseconds in a healthy
    /// cluster); the reads spread over the servers and go on while there is no leader.
    /// [`Consistency::Default`] asks the leader (through the agent and a server), and fails
    /// while there is none; [`Consistency::Cached`] lets the local agent answer from its
    /// cache. Against Consul 1.14 across hosts, a change cost the servers the same in all
    /// three modes, however many watches: the client agents carry each watch.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), discoverable::Error> {
    /// use discoverable::Discovery;
    /// use discoverable::consul::Consistency;
    ///
    /// let discovery = Discovery::from_env()?;
    /// // Only the leader's answers, at the price of none while a new one is elected.
    /// let mut watch = discovery.watch("cool_app").consistency(Consistency::Default).start();
    /// let set = watch.changed().await;
    /// println!("{} instances", set.endpoints().len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.query.options.consistency = consistency;
        self
    }

    /// How long each blocking query waits (default 60 s; Consul caps it at 10 min).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// First and largest delay between attempts while Consul fails (default 100 ms, 2 s).
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// Starts the watch: one task, one open request at a time. It stops when every
    /// [`Watch`] (and stream) of it is dropped.
    pub fn start(self) -> Watch {
        let (tx, rx) = watch::channel(InstanceSet::default());
        let name = self.name.as_str().into();
        tokio::spawn(run(self, tx).with_subscriber(crate::log::dispatch()));
        Watch { rx, name }
    }
}

/// One instance of a service, as Consul reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance's service ID.
    pub id: String,
    /// The service name.
    pub name: String,
    /// The node (agent) it is registered on.
    pub node: String,
    /// The address (the service's, else its node's).
    pub address: String,
    /// The port.
    pub port: u16,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its meta.
    pub meta: BTreeMap<String, String>,
    /// The worst state among its checks (node checks included, as Consul's `?passing` does).
    pub health: Health,
}

impl Endpoint {
    /// `host:port`, an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The Fabio routes in its `urlprefix-` tags.
    pub fn routes(&self) -> Vec<Route> {
        Route::from_tags(&self.tags)
    }

    pub(super) fn from_entry(entry: &ServiceEntry) -> Endpoint {
        let health = entry
            .checks
            .iter()
            .map(|c| match c.status {
                consul::CheckStatus::Passing => Health::Up,
                consul::CheckStatus::Warning => Health::Degraded,
                consul::CheckStatus::Critical => Health::Down,
            })
            .max()
            .unwrap_or(Health::Up);
        Endpoint {
            id: entry.service.id.clone(),
            name: entry.service.service.clone(),
            node: entry.node.node.clone(),
            address: entry.address().to_owned(),
            port: entry.service.port,
            tags: entry.service.tags.clone(),
            meta: entry.service.meta.clone().into_iter().collect(),
            health,
        }
    }
}

/// The instances of a service at one moment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InstanceSet {
    endpoints: Arc<[Endpoint]>,
    index: u64,
    stale: bool,
    known: bool,
    /// While stale because Consul answered the query with an error (a bad filter, a token
    /// without `service:read`): what Consul said. `None` while Consul cannot be reached.
    refused: Option<Arc<str>>,
}

impl fmt::Debug for InstanceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceSet")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.id).collect::<Vec<_>>(),
            )
            .field("index", &self.index)
            .field("stale", &self.stale)
            .finish()
    }
}

impl InstanceSet {
    /// The instances, sorted by ID.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The instance with this ID.
    pub fn get(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// Consul's index of this answer.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// What Consul said while it refuses the watch's query (a filter it cannot parse, a token
    /// it denies): the set is [stale](Self::is_stale) then too, but reaching Consul is not the
    /// problem.
    pub(crate) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// True while Consul cannot be reached: this is the last good set.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// False until Consul answered once.
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// True when there is no instance.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// A running watch; clone it for more readers. Dropping every clone stops the watch.
#[derive(Clone, Debug)]
pub struct Watch {
    rx: watch::Receiver<InstanceSet>,
    name: Arc<str>,
}

impl Watch {
    /// The service watched.
    pub fn service(&self) -> &str {
        &self.name
    }

    /// The current set (empty and not [known](InstanceSet::is_known) before Consul's first
    /// answer).
    pub fn current(&self) -> InstanceSet {
        self.rx.borrow().clone()
    }

    /// Waits for the next set different from the last one this reader saw.
    pub async fn changed(&mut self) -> InstanceSet {
        if self.rx.changed().await.is_err() {
            // The task only ends when every receiver is gone; this one is alive.
            std::future::pending::<()>().await;
        }
        self.rx.borrow_and_update().clone()
    }

    /// Waits until `pred` holds for the current set, and returns that set.
    ///
    /// The future is `Send` (when `pred` is), so it can be spawned.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&InstanceSet) -> bool) -> InstanceSet {
        // The borrow of the set ends before any other await, which keeps the future `Send`.
        let found = self.rx.wait_for(|s| pred(s)).await.map(|set| set.clone());
        match found {
            Ok(set) => set,
            Err(_) => std::future::pending().await,
        }
    }

    /// The sets as a [`Stream`](futures_core::Stream): the current one first, then each
    /// change.
    ///
    /// ```no_run
    /// use futures_util::StreamExt as _;
    ///
    /// # async fn run() -> Result<(), discoverable::Error> {
    /// let discovery = discoverable::Discovery::from_env()?;
    /// let mut sets = discovery.watch("cool_app").start().into_stream();
    /// while let Some(set) = sets.next().await {
    ///     println!("{} healthy instances of cool_app", set.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_stream(self) -> WatchStream {
        WatchStream {
            next: Some(Box::pin(next_set(self.rx, true))),
        }
    }
}

/// The next set of `rx` (its current one when `first`), and the receiver for the one after;
/// `None` once the watch has stopped.
async fn next_set(
    mut rx: watch::Receiver<InstanceSet>,
    first: bool,
) -> Option<(InstanceSet, watch::Receiver<InstanceSet>)> {
    if !first {
        rx.changed().await.ok()?;
    }
    let set = rx.borrow_and_update().clone();
    Some((set, rx))
}

type NextSet =
    Pin<Box<dyn Future<Output = Option<(InstanceSet, watch::Receiver<InstanceSet>)>> + Send>>;

/// A [`Watch`] as a stream of [`InstanceSet`]s.
pub struct WatchStream {
    /// The wait for the next set; `None` once the stream has ended.
    next: Option<NextSet>,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl futures_core::Stream for WatchStream {
    type Item = InstanceSet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<InstanceSet>> {
        let Some(next) = self.next.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(next.as_mut().poll(cx)) {
            Some((set, rx)) => {
                self.next = Some(Box::pin(next_set(rx, false)));
                Poll::Ready(Some(set))
            }
            None => {
                self.next = None;
                Poll::Ready(None)
            }
        }
    }
}

async fn run(b: WatchBuilder, tx: watch::Sender<InstanceSet>) {
    let blocking = Blocking {
        wait: b.wait,
        retry_min: b.retry_min,
        retry_max: b.retry_max,
    };
    let mut logged: Option<String> = None;
    let read = |options: QueryOptions| {
        let mut query = b.query.clone();
        query.options = options;
        let (client, name) = (b.client.clone(), b.name.clone());
        async move { client.health_service(&name, &query).await }
    };
    let on = |step: Step<Vec<ServiceEntry>>| match step {
        Step::Fresh { value, at, .. } => {
            let index = at.unwrap_or(0);
            if logged.take().is_some() {
                tracing::info!(service = %b.name, "discovery reaches Consul again");
            }
            let mut endpoints: Vec<Endpoint> = value.iter().map(Endpoint::from_entry).collect();
            endpoints.sort_by(|a, b| a.id.cmp(&b.id));
            tx.send_if_modified(|set| {
                let changed = !set.known || set.stale || *set.endpoints != *endpoints;
                set.index = index;
                if changed {
                    set.endpoints = endpoints.into();
                    set.stale = false;
                    set.refused = None;
                    set.known = true;
                }
                changed
            });
        }
        Step::Failed(e) => {
            // An answer that is an error is a query Consul refused, not a lost agent: say what
            // it said.
            let refused = matches!(e, Error::Status { .. } | Error::PermissionDenied { .. })
                .then(|| Arc::<str>::from(e.to_string()));
            let text = e.to_string();
            if logged.as_deref() != Some(&text) {
                if refused.is_some() {
                    tracing::warn!(service = %b.name, error = %e, "Consul refused the watch's query; fix the query (its filter, say) or the token; keeping the last known instances");
                } else if matches!(e, Error::TooManyConnections { .. }) {
                    // Consul answers; it limits this process's connections.
                    tracing::warn!(service = %b.name, error = %e, "Consul turned the watch away; keeping the last known instances and trying again");
                } else {
                    tracing::warn!(service = %b.name, error = %e, "discovery cannot reach Consul; keeping the last known instances");
                }
                logged = Some(text);
            }
            tx.send_if_modified(|set| {
                let changed = !set.stale || set.refused != refused;
                set.stale = true;
                set.refused = refused;
                changed
            });
        }
    };
    blocking
        .run(b.query.options.clone(), read, tx.closed(), on)
        .await;
}
