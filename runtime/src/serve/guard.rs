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
        // The caller's runtime may be shutting down, so run the call on a thread of its own
        // with its own small runtime and client, and wait for it (bounded).
        let worker = std::thread::Builder::new()
            .name("discoverable-deregister".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let Ok(rt) = rt else { return };
                rt.block_on(async {
                    let Ok(client) = Client::new(config) else { return };
                    match tokio::time::timeout(BOUND, client.deregister(&id)).await {
                        Ok(Ok(())) => tracing::info!(%id, "deregistered after serving ended unexpectedly"),
                        _ => tracing::warn!(%id, "best-effort deregistration failed; Consul removes the instance after deregister_after"),
                    }
                });
            });
        if let Ok(worker) = worker {
            let _ = worker.join();
        }
    }
}
