//! Keeps the instance registered: probe, register (with backoff), notice a lost registration,
//! send TTL heartbeats, and stop cleanly before deregistration.
//!
//! Owns every Consul call of a running instance except the final deregistration, which the
//! shutdown sequence makes after this task has stopped, so nothing is registered after
//! shutdown began.

use std::time::Duration;

use discoverable_rules::CheckTiming;
use tokio::sync::watch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::consul::{AgentService, CheckDefinition, CheckStatus, Registration};
use crate::discovery::blocking::{Blocking, Step, Then};
use crate::error::Error;
use crate::health::Health;
use crate::instance::Instance;
use crate::service::Settings;

use super::address::Advertised;
use super::agent::{Held, Link, WATCH_WAIT};
use super::server::Check;

/// Delay between attempts after Consul rejected the registration itself (400, 403): the
/// request will not succeed until someone changes the token or the service, so do not hammer.
const REJECTED_RETRY: Duration = Duration::from_secs(30);
/// How long `fail_fast` gives an agent that cannot be reached yet (one still starting beside
/// the service, say) before start-up fails.
const FAIL_FAST_WITHIN: Duration = Duration::from_secs(5);

pub(crate) struct Registrar {
    /// The agent's client, and the blocking read, that the service's instances in this
    /// process share.
    pub(crate) agent: Arc<Link>,
    pub(crate) registration: Registration,
    pub(crate) instance: Instance,
    pub(crate) ttl: Option<Duration>,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) stop: watch::Receiver<bool>,
}

/// What the registration sends: ID, name, address, port, tags (the server's, then the
/// service's), meta and the check.
pub(crate) fn registration(
    settings: &Settings,
    instance: &Instance,
    at: &Advertised,
    kind: &Check,
    server_tags: &[String],
) -> Registration {
    let id = instance.id().to_owned();
    let mut check = CheckDefinition {
        check_id: Some(check_id(&id)),
        name: Some(format!("{} health", settings.name)),
        deregister_critical_service_after: Some(settings.deregister_after),
        ..CheckDefinition::default()
    };
    match settings.check {
        CheckTiming::Http { interval, timeout } => {
            match kind {
                Check::Http => check.http = Some(at.url(instance.health_path())),
                Check::Grpc { tls } => {
                    check.grpc = Some(at.authority());
                    if let Some(tls) = tls {
                        check.grpc_use_tls = true;
                        check.tls_server_name = tls.server_name.clone();
                        check.tls_skip_verify = tls.skip_verify;
                    }
                }
            }
            check.interval = Some(interval);
            check.timeout = Some(timeout);
        }
        CheckTiming::Ttl { ttl } => check.ttl = Some(ttl),
    }
    Registration {
        id,
        name: settings.name.clone(),
        tags: server_tags.iter().chain(&settings.tags).cloned().collect(),
        address: at.host.clone(),
        port: at.port,
        meta: settings.meta.clone(),
        checks: vec![check],
        replace_existing_checks: true,
    }
}

/// The check's ID, as Consul would name the service's only check.
pub(crate) fn check_id(service_id: &str) -> String {
    format!("service:{service_id}")
}

pub(crate) fn status_of(health: Health) -> CheckStatus {
    match health {
        Health::Up => CheckStatus::Passing,
        Health::Degraded => CheckStatus::Warning,
        Health::Down => CheckStatus::Critical,
    }
}

/// Remembers the last failure so each distinct cause is logged once, not on every retry.
#[derive(Default)]
struct Quiet {
    /// What failed (registration, watch, heartbeat) and the error's text.
    last: Option<(&'static str, String)>,
}

impl Quiet {
    fn failed(&mut self, what: &'static str, error: &Error) {
        let text = error.to_string();
        if self.last.as_ref().map(|(_, t)| t.as_str()) != Some(text.as_str()) {
            match error {
                Error::PermissionDenied { .. } | Error::Status { status: 400, .. } => {
                    tracing::error!(error = %error, "{what} rejected by Consul; retrying every {REJECTED_RETRY:?} until fixed")
                }
                _ => tracing::warn!(error = %error, "{what} failed; retrying in the background"),
            }
            self.last = Some((what, text));
        } else {
            tracing::debug!(error = %error, "{what} failed again");
        }
    }

    /// `what` worked: if the last failure logged was of `what`, say it works again. A success
    /// of something else (a heartbeat while the watch fails) leaves it, so that failure is
    /// not logged again on its next retry.
    fn recovered(&mut self, what: &str) {
        if self.last.as_ref().is_some_and(|(w, _)| *w == what) {
            self.last = None;
            tracing::info!("{what} works again");
        }
    }
}

/// Why the watch on the instance's own registration cannot block, when it cannot.
fn not_blocking(id: &str, message: &str) -> Error {
    Error::Decode {
        what: format!("GET /v1/agent/service/{id}"),
        message: message.to_owned(),
    }
}

impl Registrar {
    /// Registers once with `status`.
    async fn register_once(&mut self, status: CheckStatus) -> Result<(), Error> {
        self.registration.checks[0].status = Some(status);
        self.agent.client.register(&self.registration).await?;
        self.instance.set_registered(true);
        tracing::info!(id = %self.registration.id, address = %self.registration.address, port = self.registration.port, "registered with Consul");
        Ok(())
    }

    /// Registers for `fail_fast`, before the background task starts: an agent that is still
    /// starting gets a short chance ([`FAIL_FAST_WITHIN`], retrying at the usual backoff); one
    /// that refuses the registration (400, 403) fails it at once.
    pub(crate) async fn register_fail_fast(&mut self, status: CheckStatus) -> Result<(), Error> {
        let within = tokio::time::Instant::now() + FAIL_FAST_WITHIN;
        self.register(status, &mut Quiet::default(), Some(within))
            .await
            .map(drop)
    }

    /// Runs until `stop` turns true: registers, then keeps the registration alive.
    pub(crate) async fn run(mut self, mut status: CheckStatus, mut registered: bool) {
        let mut quiet = Quiet::default();
        // Backoff between registrations that Consul accepts but then does not show.
        let mut unseen = crate::retry::backoff(self.retry_min, self.retry_max);
        // A loss of an instance that does not pass was reported: its check stays critical, so
        // Consul removes it every `deregister_after` and it registers again, a cycle said
        // once, then quietly, until a loss finds it passing.
        let mut lost_reported = false;
        loop {
            if !registered {
                match self.register(status, &mut quiet, None).await {
                    Ok(Registered::Stopped) | Err(_) => return,
                    // An attempt that failed may have reached an agent that went down before
                    // it answered, and came back keeping its state: it then holds the check
                    // as critical, and the registration that worked kept that status.
                    Ok(Registered::AfterFailures) if self.restored_otherwise().await => {
                        status = status_of(self.instance.report().await.status);
                        continue;
                    }
                    Ok(Registered::AfterFailures | Registered::AtOnce) => {}
                }
            }
            registered = false;
            // Registered: watch our own entry; heartbeat in TTL mode.
            match self.keep_alive(&mut quiet).await {
                KeepAlive::Stopped => return,
                KeepAlive::Lost { seen: true } => {
                    // The agent restarted without its state, or an operator removed the
                    // instance: register again at once.
                    unseen = crate::retry::backoff(self.retry_min, self.retry_max);
                    self.instance.set_registered(false);
                    let passing =
                        status_of(self.instance.report().await.status) == CheckStatus::Passing;
                    if passing {
                        tracing::warn!(id = %self.registration.id, "Consul lost this instance's registration; registering again");
                    } else if !lost_reported {
                        tracing::warn!(id = %self.registration.id, "Consul lost this instance's registration; registering again (its check does not pass, so Consul removes it again after deregister_after: said once until it passes)");
                    } else {
                        tracing::debug!(id = %self.registration.id, "Consul lost this instance's registration again; registering again");
                    }
                    lost_reported = !passing;
                }
                KeepAlive::Reconnected => {
                    // The agent was unreachable and answers again, still holding the
                    // instance.
                    registered = !self.restored_otherwise().await;
                }
                KeepAlive::Lost { seen: false } => {
                    // Accepted, yet never shown: registering again at once would loop as fast
                    // as Consul answers. Back off, and log the cause once.
                    self.instance.set_registered(false);
                    let e = Error::NotFound {
                        message: format!(
                            "Consul accepted the registration of {} but GET /v1/agent/service/{} does not show it; point CONSUL_HTTP_ADDR at the local agent, not at a load balancer over several agents",
                            self.registration.id, self.registration.id
                        ),
                    };
                    quiet.failed("watching the registration", &e);
                    if !self.pause(unseen.next().unwrap_or(self.retry_max)).await {
                        return;
                    }
                }
            }
            status = status_of(self.instance.report().await.status);
        }
    }

    /// Whether the agent holds the instance's check in another state than the instance's
    /// own, and if so takes the instance out so that the next registration starts afresh.
    ///
    /// A Consul agent that restarted keeping its state restores every check as critical until
    /// its first run, at a random point within its interval, and a registration over an
    /// existing check keeps that check's status: the instance would stay unroutable until
    /// then.
    async fn restored_otherwise(&mut self) -> bool {
        let ours = status_of(self.instance.report().await.status);
        let check = check_id(&self.registration.id);
        let theirs = self
            .agent
            .client
            .agent_checks()
            .await
            .ok()
            .and_then(|checks| checks.get(&check).map(|c| c.status));
        match theirs {
            Some(theirs) if theirs != ours => {
                tracing::info!(id = %self.registration.id, agent = ?theirs, instance = ?ours, "Consul holds the check in another state; registering afresh");
                self.instance.set_registered(false);
                // A failure here leaves the old registration; the next registration replaces
                // it.
                let _ = self.agent.client.deregister(&self.registration.id).await;
                true
            }
            _ => false,
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits `d` unless stop comes first; returns false on stop.
    async fn pause(&mut self, d: Duration) -> bool {
        let stopped = tokio::select! {
            _ = self.stop.wait_for(|s| *s) => true,
            () = tokio::time::sleep(d) => false,
        };
        !stopped && !self.stopped()
    }

    /// Registers, retrying with backoff (every [`REJECTED_RETRY`] while Consul refuses the
    /// registration itself), until it works or `stop` turns true. With `give_up`, a refusal
    /// fails at once, and so does a failure whose next attempt would come after `give_up`.
    async fn register(
        &mut self,
        status: CheckStatus,
        quiet: &mut Quiet,
        give_up: Option<tokio::time::Instant>,
    ) -> Result<Registered, Error> {
        let mut backoff = crate::retry::backoff(self.retry_min, self.retry_max);
        let mut failed = false;
        loop {
            if self.stopped() {
                return Ok(Registered::Stopped);
            }
            let e = match self.register_once(status).await {
                Ok(()) => {
                    quiet.recovered("registration");
                    return Ok(if failed {
                        Registered::AfterFailures
                    } else {
                        Registered::AtOnce
                    });
                }
                Err(e) => e,
            };
            failed = true;
            let refused = matches!(
                e,
                Error::PermissionDenied { .. } | Error::Status { status: 400, .. }
            );
            let delay = match give_up {
                Some(_) if refused => return Err(e),
                Some(deadline) => {
                    let delay = backoff.next().unwrap_or(self.retry_max);
                    if tokio::time::Instant::now() + delay > deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "fail_fast: Consul not reachable yet; trying again");
                    delay
                }
                None => {
                    quiet.failed("registration", &e);
                    if refused {
                        REJECTED_RETRY.max(self.retry_max)
                    } else {
                        backoff.next().unwrap_or(self.retry_max)
                    }
                }
            };
            if !self.pause(delay).await {
                return Ok(Registered::Stopped);
            }
        }
    }

    /// Watches the registration with hash-based blocking reads (on the runtime's one
    /// blocking-query loop; one instance of the service in this process blocks at a time, the
    /// others read when it calls, see [`agent`]) and, in TTL mode, reports the health every
    /// third of the TTL, until the registration is lost, the agent answers again after
    /// failing, or `stop`.
    async fn keep_alive(&mut self, quiet: &mut Quiet) -> KeepAlive {
        let id = self.registration.id.clone();
        let check = check_id(&id);
        let client = self.agent.client.clone();
        // Shared by the watch and the heartbeats, which run side by side in this task.
        let quiet = Mutex::new(quiet);
        let quiet = || {
            quiet
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // Whether a watch answer has shown the registration since it was made.
        let seen = AtomicBool::new(false);
        // Whether the watch failed since it last showed the registration.
        let mut failed = false;
        // Blocking reads answered at once with the hash they were to wait on, in a row.
        let mut unblocked = 0u32;
        let blocking = Blocking {
            wait: WATCH_WAIT,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
        };
        // However this ends, another instance takes the blocking read over.
        let reader = self.agent.reader(&id);
        let read = |at: Option<Held>| reader.read(at);
        let on = |step: Step<Option<AgentService>, Held>| match step {
            // An answer the next read cannot block on (no hash), or one that came back at once
            // with the hash it was asked to wait on, would make the loop spin as fast as Consul
            // answers: back off instead, as after a failure.
            Step::Fresh {
                value: Some(_),
                at: None,
                ..
            } => {
                let e = not_blocking(
                    &id,
                    "the answer has no ContentHash, so the watch cannot block on it; expected Consul's agent service definition",
                );
                quiet().failed("watching the registration", &e);
                Then::BackOff
            }
            Step::Fresh {
                at_once_unchanged: true,
                ..
            } => {
                // The next read asks to block again, and does not count as the watch working
                // again. An agent that is stopping answers its blocking reads at once, once:
                // said only when it happens again.
                unblocked += 1;
                let e = not_blocking(
                    &id,
                    "Consul answered at once with an unchanged ContentHash instead of blocking until it changes",
                );
                if unblocked > 1 {
                    quiet().failed("watching the registration", &e);
                } else {
                    tracing::debug!(error = %e, "answered at once; reading again");
                }
                Then::BackOff
            }
            // Also when the watch failed before it ever saw the registration: the agent may
            // have restarted meanwhile, restoring the check as critical.
            Step::Fresh { value: Some(_), .. } if failed => {
                quiet().recovered("watching the registration");
                Then::Stop(KeepAlive::Reconnected)
            }
            Step::Fresh { value: Some(_), .. } => {
                seen.store(true, Ordering::Relaxed);
                unblocked = 0;
                quiet().recovered("watching the registration");
                Then::Go
            }
            // After a failed read the agent may have restarted without its state: a lost
            // registration, not one it never showed.
            Step::Fresh { value: None, .. } | Step::Failed(Error::NotFound { .. }) => {
                Then::Stop(KeepAlive::Lost {
                    seen: seen.load(Ordering::Relaxed) || failed,
                })
            }
            Step::Failed(e) => {
                quiet().failed("watching the registration", &e);
                failed = true;
                Then::Go
            }
        };
        let watch = blocking.run_at(read, std::future::pending(), on);
        let heartbeats = async {
            let Some(beat) = self.ttl.map(|ttl| ttl / 3) else {
                return std::future::pending().await;
            };
            loop {
                let report = self.instance.report().await;
                match client
                    .check_update(&check, status_of(report.status), &report.to_json())
                    .await
                {
                    Ok(()) => quiet().recovered("TTL heartbeat"),
                    Err(Error::NotFound { .. }) => {
                        return KeepAlive::Lost {
                            seen: seen.load(Ordering::Relaxed),
                        };
                    }
                    Err(e) => quiet().failed("TTL heartbeat", &e),
                }
                tokio::time::sleep(beat).await;
            }
        };
        let mut stop = self.stop.clone();
        tokio::select! {
            r = stop.wait_for(|s| *s) => { drop(r); KeepAlive::Stopped }
            kept = watch => kept.unwrap_or(KeepAlive::Stopped),
            lost = heartbeats => lost,
        }
    }
}

/// How a registration ended.
enum Registered {
    Stopped,
    /// The first attempt worked.
    AtOnce,
    /// An attempt worked after others had failed.
    AfterFailures,
}

enum KeepAlive {
    Stopped,
    /// Consul answers again after failing, and still holds the registration.
    Reconnected,
    /// Consul does not hold the registration (any more); `seen`: a watch answer had shown it.
    Lost {
        seen: bool,
    },
}
