//! Best-effort deregistration when serving ends without the shutdown sequence: the serve
//! future dropped (e.g. lost a `select!`), or a panic unwinding through it.

use std::time::Duration;

use tracing::instrument::WithSubscriber as _;

use crate::consul::{Client, Config};

/// Bound on the best-effort call.
const BOUND: Duration = Duration::from_secs(2);

pub(crate) struct DeregisterGuard {
    armed: Option<(Config, String)>,
    /// Where its log lines go: the serve call's dispatcher, also from another thread.
    dispatch: tracing::Dispatch,
}

impl DeregisterGuard {
    pub(crate) fn new(config: Config, id: String) -> Self {
        DeregisterGuard {
            armed: Some((config, id)),
            dispatch: tracing::dispatcher::get_default(tracing::Dispatch::clone),
        }
    }

    /// The shutdown sequence deregistered; nothing left to do.
    pub(crate) fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for DeregisterGuard {
    fn drop(&mut self) {
        let Some((config, id)) = self.armed.take() else {
            return;
        };
        let deregister = async move {
            let Ok(client) = Client::new(config) else {
                return;
            };
            match tokio::time::timeout(BOUND, client.deregister(&id)).await {
                Ok(Ok(())) => tracing::info!(%id, "deregistered after serving ended unexpectedly"),
                _ => {
                    tracing::warn!(%id, "best-effort deregistration failed; Consul removes the instance after deregister_after")
                }
            }
        }
        .with_subscriber(self.dispatch.clone());
        // The call runs on a thread of its own with its own small runtime, and is waited for
        // (bounded), on every runtime flavour: the caller's runtime may be about to go (a
        // `select!` the serve call lost, just before `main` returns), when a task of its own
        // would never run and the instance would stay registered and passing. On a
        // multi-threaded runtime the wait happens inside `block_in_place`, so the worker hands
        // its other tasks over; a current-thread runtime's only thread waits, for one call to
        // the local agent (at most the bound).
        let flavor = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|_| !std::thread::panicking())
            .map(|h| h.runtime_flavor());
        let wait = move || {
            let worker = std::thread::Builder::new()
                .name("discoverable-deregister".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(deregister);
                    }
                });
            if let Ok(worker) = worker {
                let _ = worker.join();
            }
        };
        if flavor == Some(tokio::runtime::RuntimeFlavor::MultiThread) {
            tokio::task::block_in_place(wait);
        } else {
            wait();
        }
    }
}
