//! `cool_app` behind a real Fabio, on the dev agent (`dev_agent::real_fabio_*`) and on a real
//! Consul (`real_consul::real_fabio_*`): routed under `/oops`, dropped from Fabio's table on
//! SIGTERM while its listener still answers, replaced under load without a failed request, and
//! taken out of the table while degraded though it stays registered. Every process on
//! loopback; every wait bounded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use discoverable_testkit::until;
use discoverable_testkit::{AgentKind, Fabio, peers};
use support::{AgentProc, Proc, agent_instances, agent_process, blocking, example};

const T: Duration = Duration::from_secs(20);

/// The agent and a Fabio reading it; `None`: the test skips, saying why.
fn agent_and_fabio(kind: AgentKind, test: &str) -> Option<(AgentProc, String, Fabio)> {
    let peers = peers::require(test)?;
    let (agent, consul) = agent_process(kind, test, &[])?;
    let addr = consul.trim_start_matches("http://").parse().unwrap();
    let fabio = blocking(|| Fabio::start(&peers, addr, None));
    Some((agent, consul, fabio))
}

/// `http://127.0.0.1:<port>/`, as Fabio names a destination.
fn destination(url: &str) -> String {
    format!("{url}/")
}

/// Waits until Fabio routes `/oops` to exactly `want` (sorted); returns when it did.
async fn routed_to(fabio: &Fabio, want: &[&str]) -> Instant {
    let mut want: Vec<String> = want.iter().map(|u| destination(u)).collect();
    want.sort();
    until(T, &format!("Fabio to route /oops to {want:?}"), || {
        let dst = fabio.destinations("/oops");
        let ok = dst == want;
        async move { ok.then(Instant::now) }
    })
    .await
}

/// A bounded load through Fabio: GET `/oops/` in a loop from `clients` tasks until stopped
/// (or 60 s pass), counting answers that are not `200 home page`.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(fabio: &Fabio, clients: usize) -> Load {
        let url = format!("http://{}/oops/", fabio.proxy_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop, ok, failed) =
                    (url.clone(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut errors = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let answer = client.get(&url).timeout(Duration::from_secs(5)).send();
                        let result = match answer.await {
                            Ok(r) if r.status() == 200 => match r.text().await {
                                Ok(body) if body == "home page" => Ok(()),
                                other => Err(format!("body {other:?}")),
                            },
                            Ok(r) => Err(format!("status {}", r.status())),
                            Err(e) => Err(e.to_string()),
                        };
                        match result {
                            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                if errors.len() < 5 {
                                    errors.push(e);
                                }
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    errors
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Waits until at least `n` more requests succeeded (bounded).
    async fn wait_ok(&self, n: u64) {
        let from = self.ok.load(Ordering::Relaxed);
        until(T, "requests through Fabio", || async {
            (self.ok.load(Ordering::Relaxed) >= from + n).then_some(())
        })
        .await;
    }

    /// Stops the clients; returns (ok, failed, the first errors).
    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.unwrap());
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

/// Starts `cool_app` and waits until Fabio routes to it; returns it, its URL and the time
/// from its `listening on` line to the first request answered by it through Fabio.
async fn routed_cool_app(
    consul: &str,
    fabio: &Fabio,
    env: &[(&str, &str)],
) -> (Proc, String, Duration) {
    let (app, url) = example("cool_app", consul, env);
    let bound = Instant::now();
    let proxy = format!("http://{}/oops/", fabio.proxy_addr());
    let client = reqwest::Client::new();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    until(T, "cool_app answering through Fabio", || async {
        if !fabio.routes_to("/oops", port) {
            return None;
        }
        let r = client.get(&proxy).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    (app, url, bound.elapsed())
}

async fn real_fabio_routes_cool_app_under_its_prefix(kind: AgentKind) {
    let test = "real_fabio_routes_cool_app_under_its_prefix";
    let Some((_agent, consul, fabio)) = agent_and_fabio(kind, test) else {
        return;
    };
    let (_app, url, took) = routed_cool_app(&consul, &fabio, &[]).await;
    println!("{kind:?}: bind to first request answered through Fabio: {took:?}");
    let routes = fabio.routes().unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].service, "cool_app");
    assert_eq!(routes[0].dst, destination(&url));
    let r = fabio.get("/oops/anything").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "home page"));
    // Nothing else is routed.
    assert_eq!(fabio.get("/elsewhere").unwrap().status, 404);
}

async fn real_fabio_drops_cool_app_on_sigterm_before_its_listener_closes(kind: AgentKind) {
    let test = "real_fabio_drops_cool_app_on_sigterm_before_its_listener_closes";
    let Some((_agent, consul, fabio)) = agent_and_fabio(kind, test) else {
        return;
    };
    let (mut app, url, _) = routed_cool_app(&consul, &fabio, &[]).await;
    let signalled = Instant::now();
    app.signal("TERM");
    let dropped = routed_to(&fabio, &[]).await;
    let unroutable = dropped - signalled;
    // The listener still answers (the 2 s grace period runs), so no request Fabio sent
    // before its table changed met a closed port.
    let health = reqwest::get(format!("{url}/health"))
        .await
        .expect("still listening after Fabio dropped it");
    assert_eq!(health.status(), 503);
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "exited before Fabio dropped it"
    );
    assert_eq!(app.wait_exit(T), Some(0));
    let exited = signalled.elapsed();
    println!("{kind:?}: SIGTERM to out of Fabio's table: {unroutable:?}; to exit: {exited:?}");
    assert!(unroutable < exited);
}

async fn real_fabio_rolling_restart_under_load_fails_no_request(kind: AgentKind) {
    let test = "real_fabio_rolling_restart_under_load_fails_no_request";
    let Some((_agent, consul, fabio)) = agent_and_fabio(kind, test) else {
        return;
    };
    // A short grace period keeps the test quick; Fabio drops an instance within milliseconds.
    let env = [("DISCOVERABLE_GRACE_PERIOD", "500ms")];
    let (a, url_a, _) = routed_cool_app(&consul, &fabio, &env).await;
    let (b, url_b, _) = routed_cool_app(&consul, &fabio, &env).await;
    routed_to(&fabio, &[&url_a, &url_b]).await;
    let load = Load::start(&fabio, 4);
    load.wait_ok(50).await;
    let mut live = vec![(a, url_a), (b, url_b)];
    for round in 0..2 {
        // Start the replacement, wait until Fabio routes to it, then stop the oldest.
        let (new, new_url, _) = routed_cool_app(&consul, &fabio, &env).await;
        let (mut old, old_url) = live.remove(0);
        old.signal("TERM");
        assert_eq!(
            old.wait_exit(T),
            Some(0),
            "round {round}: {old_url} exits cleanly"
        );
        live.push((new, new_url));
        let urls: Vec<&str> = live.iter().map(|(_, u)| u.as_str()).collect();
        routed_to(&fabio, &urls).await;
        load.wait_ok(50).await;
    }
    let (ok, failed, errors) = load.finish().await;
    println!("{kind:?}: rolling restart through Fabio: {ok} ok, {failed} failed {errors:?}");
    assert!(ok > 100, "{ok}");
    assert_eq!(failed, 0, "failed requests through Fabio: {errors:?}");
    // Both replacements registered, the old ones gone.
    let left = agent_instances(&consul, "cool_app").await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
}

async fn real_fabio_drops_a_degraded_instance_that_stays_registered(kind: AgentKind) {
    let test = "real_fabio_drops_a_degraded_instance_that_stays_registered";
    let Some((_agent, consul, fabio)) = agent_and_fabio(kind, test) else {
        return;
    };
    // The `layer` example with a TTL check: its heartbeat reports the instance's state.
    let (_app, url) = example("layer", &consul, &[("CHECK_TTL", "3s")]);
    routed_to(&fabio, &[&url]).await;
    let degraded = reqwest::get(format!("{url}/admin/degrade")).await.unwrap();
    assert_eq!(degraded.status(), 200);
    let asked = Instant::now();
    routed_to(&fabio, &[]).await;
    println!(
        "{kind:?}: degraded to out of Fabio's table: {:?}",
        asked.elapsed()
    );
    let registered = agent_instances(&consul, "cool_app").await.unwrap();
    assert_eq!(registered.len(), 1, "still registered: {registered:?}");
    assert_eq!(fabio.get("/oops/").unwrap().status, 404);
    reqwest::get(format!("{url}/admin/restore")).await.unwrap();
    routed_to(&fabio, &[&url]).await;
}

/// A process frozen with SIGSTOP sends no TTL heartbeat: its check goes critical when the TTL
/// runs out and Fabio stops routing to it, though it stays registered; after SIGCONT the next
/// beat makes it passing and routed again.
async fn real_fabio_stops_routing_a_frozen_ttl_instance_and_routes_it_once_thawed(kind: AgentKind) {
    let test = "real_fabio_stops_routing_a_frozen_ttl_instance_and_routes_it_once_thawed";
    let Some((_agent, consul, fabio)) = agent_and_fabio(kind, test) else {
        return;
    };
    let (app, url) = example("layer", &consul, &[("CHECK_TTL", "3s")]);
    routed_to(&fabio, &[&url]).await;
    app.signal("STOP");
    let frozen = Instant::now();
    routed_to(&fabio, &[]).await;
    println!(
        "{kind:?}: frozen to out of Fabio's table: {:?} (TTL 3 s)",
        frozen.elapsed()
    );
    assert!(
        frozen.elapsed() >= Duration::from_secs(2),
        "dropped {:?} after the freeze, before its 3 s TTL could have run out (the last beat was at most 1 s before it)",
        frozen.elapsed()
    );
    let registered = agent_instances(&consul, "cool_app").await.unwrap();
    assert_eq!(registered.len(), 1, "still registered: {registered:?}");
    assert_eq!(fabio.get("/oops/").unwrap().status, 404);
    app.signal("CONT");
    let thawed = Instant::now();
    routed_to(&fabio, &[&url]).await;
    println!("{kind:?}: thawed to routed again: {:?}", thawed.elapsed());
}

discoverable_testkit::against_both_agents!(
    real_fabio_routes_cool_app_under_its_prefix,
    real_fabio_drops_cool_app_on_sigterm_before_its_listener_closes,
    real_fabio_rolling_restart_under_load_fails_no_request,
    real_fabio_drops_a_degraded_instance_that_stays_registered,
    real_fabio_stops_routing_a_frozen_ttl_instance_and_routes_it_once_thawed,
);
