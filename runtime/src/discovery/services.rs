//! Watching every service at once with one blocking query, as Fabio watches Consul.
//!
//! A watch per service holds a connection to the agent per service for its whole wait, and
//! Consul allows each client address 200 connections (`limits.http_max_conns_per_client`):
//! a router over a few hundred services would be turned away. This watch blocks on
//! `/v1/health/state/any`, every check of the datacenter, and reads a service's passing
//! instances (`/v1/health/service/:name?passing`, one request, not held) only when its checks
//! changed: one connection held however many services there are.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::instrument::WithSubscriber as _;

use super::blocking::{Blocking, Step};
use super::watch::{Discovery, Endpoint};
use crate::consul::{CheckStatus, Client, HealthCheck, HealthQuery, HealthState, QueryOptions};
use crate::error::Error;

/// Every service with a passing instance, by name, with its passing instances (sorted by ID).
pub type Services = BTreeMap<String, Arc<[Endpoint]>>;

/// A running watch of every service's passing instances. Dropping every clone stops it.
///
/// Sees the services that have a check, as Fabio does (a service registered with no check
/// has no row in `/v1/health/state/any`); every instance `discoverable` serves has one.
#[derive(Clone, Debug)]
pub struct ServicesWatch {
    rx: watch::Receiver<Services>,
}

impl ServicesWatch {
    /// The services now (empty before Consul's first answer).
    pub fn current(&self) -> Services {
        self.rx.borrow().clone()
    }

    /// Waits for the next services different from the last this reader saw.
    pub async fn changed(&mut self) -> Services {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.rx.borrow_and_update().clone()
    }

    /// Waits until `pred` holds for the services, and returns them.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&Services) -> bool) -> Services {
        let found = self.rx.wait_for(|s| pred(s)).await.map(|s| s.clone());
        match found {
            Ok(services) => services,
            Err(_) => std::future::pending().await,
        }
    }
}

/// A service's checks as last read, with the node checks of the nodes its instances are
/// on: when they differ, its instances are read again.
type Checks = Vec<(String, String, String, CheckStatus, Vec<String>)>;

/// What the last good read found.
#[derive(Default)]
struct Known {
    checks: HashMap<String, Checks>,
    services: HashMap<String, Arc<[Endpoint]>>,
}

impl Discovery {
    /// Watches the passing instances of every service with one blocking query on
    /// `/v1/health/state/any`, reading a service's instances again only when its checks
    /// change: what a router over many services needs, on one connection to the agent.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), discoverable::Error> {
    /// let discovery = discoverable::Discovery::from_env()?;
    /// let mut services = discovery.services();
    /// loop {
    ///     for (name, instances) in services.changed().await {
    ///         println!("{name}: {} passing", instances.len());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn services(&self) -> ServicesWatch {
        let (tx, rx) = watch::channel(Services::new());
        let client = self.client().clone();
        let blocking = Blocking {
            wait: Duration::from_secs(60),
            retry_min: crate::DEFAULT_RETRY_MIN,
            retry_max: crate::DEFAULT_RETRY_MAX,
        };
        let known = Arc::new(Mutex::new(Known::default()));
        let watch = async move {
            let mut failing = false;
            let read = |options: QueryOptions| read(client.clone(), known.clone(), options);
            let on = |step: Step<Known>| match step {
                Step::Fresh { value, .. } => {
                    failing = false;
                    let services: Services = value
                        .services
                        .iter()
                        .filter(|(_, instances)| !instances.is_empty())
                        .map(|(name, instances)| (name.clone(), instances.clone()))
                        .collect();
                    *known.lock().unwrap_or_else(|p| p.into_inner()) = value;
                    tx.send_if_modified(|current| {
                        let changed = *current != services;
                        if changed {
                            *current = services;
                        }
                        changed
                    });
                }
                Step::Failed(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "the services watch failed; keeping the last services and trying again");
                        failing = true;
                    }
                }
            };
            blocking
                .run(super::watch::watch_options(), read, tx.closed(), on)
                .await;
        };
        tokio::spawn(watch.with_subscriber(crate::log::dispatch()));
        ServicesWatch { rx }
    }
}

/// One round: every check (blocking from the last answer), then the passing instances of
/// each service whose checks changed since the last good round.
async fn read(
    client: Client,
    known: Arc<Mutex<Known>>,
    options: QueryOptions,
) -> Result<crate::consul::Indexed<Known>, Error> {
    let answer = client.health_state(HealthState::Any, &options).await?;
    let checks = by_service(&answer.value);
    let unchanged: HashMap<String, Arc<[Endpoint]>> = {
        let known = known.lock().unwrap_or_else(|p| p.into_inner());
        checks
            .iter()
            .filter(|(name, now)| known.checks.get(*name) == Some(now))
            .filter_map(|(name, _)| Some((name.clone(), known.services.get(name)?.clone())))
            .collect()
    };
    let mut services = unchanged;
    let passing = HealthQuery {
        passing: true,
        ..HealthQuery::default()
    };
    for name in checks.keys() {
        if services.contains_key(name) {
            continue;
        }
        let entries = client.health_service(name, &passing).await?.value;
        let mut instances: Vec<Endpoint> = entries.iter().map(Endpoint::from_entry).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        services.insert(name.clone(), instances.into());
    }
    Ok(answer.map(|_| Known { checks, services }))
}

/// The checks of each service, each with the node checks of its instances' nodes.
fn by_service(all: &[HealthCheck]) -> HashMap<String, Checks> {
    let row = |c: &HealthCheck| {
        (
            c.node.clone(),
            c.service_id.clone(),
            c.check_id.clone(),
            c.status,
            c.service_tags.clone(),
        )
    };
    let mut nodes: HashMap<&str, Checks> = HashMap::new();
    for check in all.iter().filter(|c| c.service_id.is_empty()) {
        nodes.entry(&check.node).or_default().push(row(check));
    }
    let mut services: HashMap<String, Checks> = HashMap::new();
    for check in all.iter().filter(|c| !c.service_id.is_empty()) {
        services
            .entry(check.service_name.clone())
            .or_default()
            .push(row(check));
    }
    for checks in services.values_mut() {
        let mut on: Vec<String> = checks.iter().map(|c| c.0.clone()).collect();
        on.sort();
        on.dedup();
        for node in on {
            checks.extend(nodes.get(node.as_str()).into_iter().flatten().cloned());
        }
        checks.sort();
    }
    services
}
