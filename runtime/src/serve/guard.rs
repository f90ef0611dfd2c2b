//! Best-effort deregistration when serving ends without the shutdown sequence: the serve
//! future dropped (e.g. lost a `select!`), or a panic unwinding through it.

use std::time::Duration;

use crate::consul::{Client, Config};

/// Bound on the best-effort call.
const BOUND: Duration = Duration::from_secs(2);

pub(crate) struct DeregisterGuard {
    armed: Option<(Config, String)>,
}

impl DeregisterGuard {
    pub(crate) fn new(config: Config, id: String) -> Self {
        DeregisterGuard {
            armed: Some((config, id)),
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
        };
        // On the caller's runtime when there is one and it is not unwinding a panic: on a
        // multi-threaded runtime the call runs here (the worker hands its other tasks over
        // while it waits, so nothing else stalls); on a current-thread runtime it runs as a
        // task, because waiting here would stop that runtime's only thread.
        if !std::thread::panicking() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                match handle.runtime_flavor() {
                    tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(|| handle.block_on(deregister));
                        return;
                    }
                    tokio::runtime::RuntimeFlavor::CurrentThread => {
                        handle.spawn(deregister);
                        return;
                    }
                    _ => {}
                }
            }
        }
        // No runtime (or one that may be going away with the panic): a thread of its own
        // with its own small runtime, waited for (bounded).
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
    }
}
