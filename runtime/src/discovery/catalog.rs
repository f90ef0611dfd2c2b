//! Watching which services exist, with their tags: what a router needs to build its table.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tracing::instrument::WithSubscriber as _;

use super::blocking::{Blocking, Step};
use super::watch::Discovery;
use crate::consul::QueryOptions;

/// Service names and the union of their instances' tags, as `/v1/catalog/services` reports.
pub type Catalog = BTreeMap<String, Vec<String>>;

/// A running watch of the catalog's service list. Dropping every clone stops it.
#[derive(Clone, Debug)]
pub struct CatalogWatch {
    rx: watch::Receiver<Catalog>,
}

impl CatalogWatch {
    /// The current list (empty before Consul's first answer).
    pub fn current(&self) -> Catalog {
        self.rx.borrow().clone()
    }

    /// Waits for the next list different from the last one this reader saw.
    pub async fn changed(&mut self) -> Catalog {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.rx.borrow_and_update().clone()
    }
}

impl Discovery {
    /// Watches the list of services and their tags (blocking queries on
    /// `/v1/catalog/services`), e.g. to find every service with a `urlprefix-` route.
    pub fn catalog(&self) -> CatalogWatch {
        let (tx, rx) = watch::channel(Catalog::new());
        let client = self.client().clone();
        let blocking = Blocking {
            wait: Duration::from_secs(60),
            retry_min: crate::DEFAULT_RETRY_MIN,
            retry_max: crate::DEFAULT_RETRY_MAX,
        };
        let watch = async move {
            let mut failing = false;
            let read = |options: QueryOptions| {
                let client = client.clone();
                async move { client.catalog_services(&options).await }
            };
            blocking
                .run(super::watch::watch_options(), read, tx.closed(), |step| match step {
                    Step::Fresh { value, .. } => {
                        failing = false;
                        let mut catalog: Catalog = value.into_iter().collect();
                        for tags in catalog.values_mut() {
                            tags.sort();
                            tags.dedup();
                        }
                        tx.send_if_modified(|current| {
                            let changed = *current != catalog;
                            if changed {
                                *current = catalog;
                            }
                            changed
                        });
                    }
                    Step::Failed(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "the catalog watch failed; keeping the last list and trying again");
                            failing = true;
                        }
                    }
                })
                .await;
        };
        tokio::spawn(watch.with_subscriber(crate::log::dispatch()));
        CatalogWatch { rx }
    }
}
