//! The lifecycle of one instance, whatever its protocol, step by step: start serving, probe
//! and register, keep the registration alive, then shut down (503, deregister, grace
//! period, drain). Each step is a function of its own; [`run`] strings them together.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

use crate::consul::{CheckStatus, Client};
use crate::error::Error;
use crate::instance::Instance;
use crate::service::Settings;
use crate::task::AbortOnDrop;

use super::address;
use super::guard::DeregisterGuard;
use super::registrar::{self, Registrar};
use super::server::{CloseSignal, Server, ServerFuture};
use super::{ShutdownSignal, probe, signal};

/// Runs `instance` on `server` until shutdown is complete.
pub(crate) async fn run(
    instance: Instance,
    server: Server,
    user_signal: Option<ShutdownSignal>,
) -> Result<(), Error> {
    let settings = instance.settings().clone();
    let probes_over_http = server.probes_over_http();
    let bound = server.bound?;
    let advertised = address::advertise(&settings, bound)?;
    // Shared with the service's other instances in this process while it runs.
    let agent = settings.agent.link(&settings.consul)?;
    let client = agent.client.clone();
    let registration = registrar::registration(
        &settings,
        &instance,
        &advertised,
        &server.check,
        &server.tags,
    );

    // 1. Serve. Shutdown is graceful from the moment the listener serves: SIGTERM during
    //    the start-up probe drains instead of ending the process.
    let mut serving = Serving::start(&instance, server.start);
    let terminated = signal::listen();
    tokio::pin!(terminated);
    tracing::info!(id = %instance.id(), %bound, advertised = %advertised.url(""), "serving");
    let guard = DeregisterGuard::new(settings.consul.clone(), instance.id().to_owned());

    // 2. Probe, then register.
    let status = tokio::select! {
        status = probe_self(&instance, bound, probes_over_http) => status,
        () = &mut terminated => {
            // Nothing registered yet: nothing for routers to drop, so no grace period.
            tracing::info!("shutdown began before registration");
            signal::exit_on_second_signal();
            instance.begin_shutdown();
            guard.disarm();
            serving.close();
            return drain(&instance, serving.task, settings.lifecycle.drain_timeout).await;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let registrar = Registrar {
        agent: agent.clone(),
        registration,
        instance: instance.clone(),
        ttl: match settings.check {
            discoverable_rules::CheckTiming::Ttl { ttl } => Some(ttl),
            discoverable_rules::CheckTiming::Http { .. } => None,
        },
        retry_min: settings.lifecycle.retry_min,
        retry_max: settings.lifecycle.retry_max,
        stop: stop_rx,
    };
    let registrar = match register(registrar, &settings, status).await {
        Ok(registrar) => registrar,
        Err(e) => {
            // Reported once, by the error `serve` returns (under the attribute: one line on
            // stderr, exit code 2).
            tracing::debug!(error = %e, "registration failed and fail_fast is set; stopping");
            serving.close();
            let _ = serving.task.await;
            guard.disarm();
            return Err(Error::Io(io::Error::other(super::StartFailed(e))));
        }
    };

    // 3. Keep alive until a shutdown signal, or until the server ends on its own.
    let ended = wait_for_shutdown(&instance, &mut serving, terminated, user_signal).await;

    // 4. Shut down: 503, stop the registrar, deregister.
    instance.begin_shutdown();
    let _ = stop_tx.send(true);
    stop_registrar(registrar, settings.lifecycle.deregister_timeout).await;
    deregister(&client, &instance, settings.lifecycle.deregister_timeout).await;
    guard.disarm();
    if let Some(ended) = ended {
        return server_ended(ended);
    }
    // Grace period: routers watching Consul drop the instance.
    tracing::info!(grace = ?settings.lifecycle.grace_period, "waiting for routers to drop the instance");
    tokio::time::sleep(settings.lifecycle.grace_period).await;
    // Stop accepting; finish in-flight requests (bounded).
    serving.close();
    drain(&instance, serving.task, settings.lifecycle.drain_timeout).await
}

/// The running server and the switch that closes it.
struct Serving {
    /// Aborted if the serve future is dropped, so nothing outlives it (the guard deregisters
    /// first: locals drop in reverse order).
    task: AbortOnDrop<io::Result<()>>,
    close: watch::Sender<bool>,
}

impl Serving {
    fn start(
        instance: &Instance,
        start: Box<dyn FnOnce(Instance, CloseSignal) -> ServerFuture + Send>,
    ) -> Serving {
        let (close, mut closed) = watch::channel(false);
        let server = start(
            instance.clone(),
            Box::pin(async move {
                let _ = closed.wait_for(|closed| *closed).await;
            }),
        );
        Serving {
            task: AbortOnDrop(tokio::spawn(server)),
            close,
        }
    }

    /// Stops accepting; connections in flight go on until they finish.
    fn close(&self) {
        let _ = self.close.send(true);
    }
}

/// The instance's state before it registers: its health route probed over HTTP, or its own
/// health read where the server speaks TLS.
async fn probe_self(instance: &Instance, bound: SocketAddr, over_http: bool) -> CheckStatus {
    if over_http {
        probe::probe(
            address::probe_addr(bound),
            instance.health_path(),
            instance.check_timeout(),
        )
        .await
    } else {
        registrar::status_of(instance.report().await.status)
    }
}

/// Starts the registrar task. With `fail_fast`, the first registration is made here, and
/// its failure is returned.
async fn register(
    mut registrar: Registrar,
    settings: &Settings,
    status: CheckStatus,
) -> Result<AbortOnDrop<()>, Error> {
    let mut registered = false;
    if settings.lifecycle.fail_fast {
        registrar.register_fail_fast(status).await?;
        registered = true;
    }
    // Every line the registrar logs names the instance, so several instances in one process
    // can be told apart.
    let span =
        tracing::info_span!("registrar", service = %settings.name, id = %registrar.instance.id());
    Ok(AbortOnDrop(tokio::spawn(
        registrar
            .run(status, registered)
            .instrument(span)
            .with_current_subscriber(),
    )))
}

/// Waits for a reason to shut down: SIGTERM or SIGINT, the user's shutdown future,
/// [`Instance::shutdown`], or the server ending on its own (its result is returned).
async fn wait_for_shutdown(
    instance: &Instance,
    serving: &mut Serving,
    terminated: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    user_signal: Option<ShutdownSignal>,
) -> Option<Result<io::Result<()>, tokio::task::JoinError>> {
    let mut requested = instance.shutdown_requested();
    let user_signal = async move {
        match user_signal {
            Some(signal) => signal.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminated => {
            signal::exit_on_second_signal();
            None
        }
        () = user_signal => { tracing::info!("shutdown future completed"); None }
        _ = requested.wait_for(|r| *r) => { tracing::info!("shutdown requested"); None }
        ended = &mut serving.task => Some(ended),
    }
}

/// Stops the registrar, so nothing is registered after this; cut after `bound`.
async fn stop_registrar(mut registrar: AbortOnDrop<()>, bound: Duration) {
    if tokio::time::timeout(bound, &mut registrar).await.is_err() {
        registrar.0.abort();
    }
}

/// What `serve` returns when the server ended before shutdown was asked for.
fn server_ended(ended: Result<io::Result<()>, tokio::task::JoinError>) -> Result<(), Error> {
    match ended {
        Ok(result) => {
            tracing::warn!("server stopped on its own");
            result.map_err(Error::Io)
        }
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(Error::Io(io::Error::other(join))),
    }
}

/// The last step of shutdown, once the server was told to close: in-flight requests finish
/// within `bound`, then the rest are cut. The drain ends when the server has closed every
/// connection and nothing is counted in flight (a WebSocket its handler counts is the app's
/// once upgraded: the server no longer holds it).
async fn drain(
    instance: &Instance,
    mut server: AbortOnDrop<io::Result<()>>,
    bound: Duration,
) -> Result<(), Error> {
    tracing::info!(in_flight = instance.in_flight(), "draining");
    let drained = async {
        let closed = (&mut server).await;
        instance.idle().await;
        closed
    };
    match tokio::time::timeout(bound, drained).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(join)) => return Err(Error::Io(io::Error::other(join))),
        Err(_) => {
            tracing::warn!(
                in_flight = instance.in_flight(),
                ?bound,
                "drain bound reached; closing remaining connections"
            );
            server.0.abort();
        }
    }
    tracing::info!(id = %instance.id(), "stopped");
    Ok(())
}

/// Deregisters the instance, waiting at most `bound`; on failure Consul removes it once its
/// check has been critical for `deregister_after`.
///
/// The call runs as a task of its own that the bound does not cut: when many instances of the
/// process stop at once, their deregistrations wait for turns on the shared client (see
/// [`Client`]) and Consul applies them one at a time, so the last may come after the bound.
/// They still reach Consul while the runtime runs.
async fn deregister(client: &Client, instance: &Instance, bound: Duration) {
    let call = {
        let (client, id) = (client.clone(), instance.id().to_owned());
        let call = async move { client.deregister(&id).await };
        tokio::spawn(call.in_current_span().with_current_subscriber())
    };
    match tokio::time::timeout(bound, call).await {
        Ok(Ok(Ok(()))) => tracing::info!(id = %instance.id(), "deregistered from Consul"),
        Ok(Ok(Err(Error::NotFound { .. }))) => {
            tracing::debug!(id = %instance.id(), "was not registered")
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "deregistration failed; Consul removes the instance once its check has been critical for deregister_after")
        }
        Ok(Err(_)) => tracing::warn!(
            "deregistration failed; Consul removes the instance once its check has been critical for deregister_after"
        ),
        Err(_) => tracing::warn!(
            ?bound,
            "deregistration timed out; it goes on while the process runs, and Consul removes the instance once its check has been critical for deregister_after otherwise"
        ),
    }
    instance.set_registered(false);
}
