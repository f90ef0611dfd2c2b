//! Discovery against the dev agent: watches, Consul's index rules, staleness, tower's p2c
//! balancer, and the load-balanced client. Everything on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::{Router, extract::Query, http::HeaderMap, routing::get};
use discoverable_runtime::consul::{
    self, CheckDefinition, CheckStatus, Client, Consistency, HealthQuery, Registration,
};
use discoverable_runtime::discovery::{Balanced, InstanceSet};
use discoverable_runtime::{Discovery, Health};
use discoverable_testkit::{Agent, AgentKind};
use tower::{Service, ServiceExt, balance::p2c::Balance, load::Constant};

const T: Duration = Duration::from_secs(10);

/// An agent of `kind` and a client for it; `None`: the test skips, saying why.
async fn agent(kind: AgentKind, test: &str) -> Option<(Agent, Client)> {
    let agent = Agent::start(kind, test, None).await?;
    let client = Client::new(
        consul::Config::builder()
            .address(agent.url())
            .build()
            .unwrap(),
    )
    .unwrap();
    Some((agent, client))
}

fn registration(id: &str, port: u16, status: CheckStatus, tags: &[&str]) -> Registration {
    let mut reg = Registration::new(id, "web");
    reg.address = "127.0.0.1".into();
    reg.port = port;
    reg.tags = tags.iter().map(|t| t.to_string()).collect();
    let mut check = CheckDefinition::ttl(Duration::from_secs(600));
    check.status = Some(status);
    reg.checks.push(check);
    reg
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(T_WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
const T_WAIT: Duration = T;

fn ids(set: &InstanceSet) -> Vec<&str> {
    set.endpoints().iter().map(|e| e.id.as_str()).collect()
}

async fn watch_follows_registrations_and_health(kind: AgentKind) {
    let Some((_agent, client)) = agent(kind, "watch_follows_registrations_and_health").await else {
        return;
    };
    let discovery = Discovery::new(client.clone());
    let mut watch = discovery.watch("web").wait(Duration::from_secs(5)).start();
    // A wait can run on a task of its own (its future is Send).
    let mut waiting = watch.clone();
    let first = tokio::spawn(async move { waiting.wait_for(|s| s.is_known()).await });
    let first = within("first answer", first).await.unwrap();
    assert!(first.is_empty());

    client
        .register(&registration(
            "web-1",
            1001,
            CheckStatus::Passing,
            &["urlprefix-/web"],
        ))
        .await
        .unwrap();
    let set = within("web-1", watch.wait_for(|s| s.len() == 1)).await;
    let e = &set.endpoints()[0];
    assert_eq!(
        (e.id.as_str(), e.name.as_str(), e.address.as_str(), e.port),
        ("web-1", "web", "127.0.0.1", 1001)
    );
    assert_eq!(e.authority(), "127.0.0.1:1001");
    assert_eq!(e.routes()[0].path, "/web");
    assert_eq!(e.health, Health::Up);

    // A critical instance is not passing: left out by default, as Fabio routes.
    client
        .register(&registration("web-2", 1002, CheckStatus::Critical, &[]))
        .await
        .unwrap();
    client.check_pass("service:web-2", "ok").await.unwrap();
    let set = within("web-2 passing", watch.wait_for(|s| s.len() == 2)).await;
    assert_eq!(ids(&set), ["web-1", "web-2"]);
    client.check_warn("service:web-2", "slow").await.unwrap();
    let set = within("web-2 warning leaves", watch.wait_for(|s| s.len() == 1)).await;
    assert_eq!(ids(&set), ["web-1"]);

    // passing_only(false) sees it, with its state.
    let all = discovery.watch("web").passing_only(false).start();
    let mut all2 = all.clone();
    let set = within("both", all2.wait_for(|s| s.len() == 2)).await;
    assert_eq!(set.get("web-2").unwrap().health, Health::Degraded);

    // Tag filter.
    let mut tagged = discovery.watch("web").tag("urlprefix-/web").start();
    let set = within("tagged", tagged.wait_for(|s| s.is_known())).await;
    assert_eq!(ids(&set), ["web-1"]);

    client.deregister("web-1").await.unwrap();
    let set = within("web-1 gone", watch.wait_for(|s| s.is_empty())).await;
    assert!(!set.is_stale());
}

async fn last_good_set_is_kept_and_marked_stale_while_consul_is_down(kind: AgentKind) {
    let Some((mut agent, client)) = agent(
        kind,
        "last_good_set_is_kept_and_marked_stale_while_consul_is_down",
    )
    .await
    else {
        return;
    };
    client
        .register(&registration("web-1", 1001, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let mut watch = Discovery::new(client.clone())
        .watch("web")
        .wait(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start();
    within("web-1", watch.wait_for(|s| s.len() == 1)).await;
    agent.go_down().await;
    let set = within("stale", watch.wait_for(|s| s.is_stale())).await;
    assert_eq!(ids(&set), ["web-1"], "the last good set is kept");
    agent.come_back().await;
    // A real agent comes back without its state: the instance registers again, as the
    // runtime's registrar would.
    client
        .register(&registration("web-1", 1001, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let set = within(
        "fresh again",
        watch.wait_for(|s| !s.is_stale() && s.len() == 1),
    )
    .await;
    assert_eq!(ids(&set), ["web-1"]);
}

async fn an_index_that_goes_backwards_resets_the_watch(kind: AgentKind) {
    let Some((mut agent, client)) =
        agent(kind, "an_index_that_goes_backwards_resets_the_watch").await
    else {
        return;
    };
    client
        .register(&registration("web-1", 1001, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let mut watch = Discovery::new(client.clone())
        .watch("web")
        .wait(Duration::from_secs(30))
        .start();
    // Move the service's index well past anything a fresh agent reaches with its start-up
    // writes and one registration, so that the index after the restart certainly differs
    // from (is below) the one before, on both agents.
    // Each a write of its own in the catalog, whatever the agent's sync merges.
    for n in 2..42 {
        client
            .register(&registration(
                &format!("web-{n}"),
                1000 + n,
                CheckStatus::Passing,
                &[],
            ))
            .await
            .unwrap();
    }
    within("41 instances", watch.wait_for(|s| s.len() == 41)).await;
    for n in 2..42 {
        client.deregister(&format!("web-{n}")).await.unwrap();
    }
    within("web-1 alone again", watch.wait_for(|s| s.len() == 1)).await;
    let moved = client
        .health_service("web", &HealthQuery::default())
        .await
        .unwrap()
        .index;
    let before = within(
        "web-1 at the moved index",
        watch.wait_for(|s| s.len() == 1 && s.index() >= moved),
    )
    .await;
    assert!(
        before.index() >= 80,
        "40 registrations and deregistrations moved it: {before:?}"
    );
    // The agent restarts without its data: the index starts again from a low value. The
    // watch's read is parked first, as during a real agent's restart (seconds long): a read
    // sent only after an instant restart, carrying the old index, is held for its whole wait
    // by a fresh Consul and by the dev agent alike.
    agent.parked(1).await;
    agent.lose_state().await;
    within("emptied", watch.wait_for(|s| s.is_empty())).await;
    client
        .register(&registration("web-9", 1009, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let after = within(
        "web-9 seen after the reset",
        watch.wait_for(|s| s.len() == 1),
    )
    .await;
    assert_eq!(ids(&after), ["web-9"]);
    // The dev agent's restart answers the query in flight with its new, lower index; a real
    // agent killed and started again drops the connection, and after the error the watch
    // reads afresh. Either way the watch follows the fresh agent's lower index: kept, the old
    // one would hold every read for the whole wait.
    assert!(after.index() < before.index(), "{before:?} {after:?}");
}

/// After the agent restarts without its state, the catalog watch sees a service registered
/// on the fresh agent within 3 s, though its index before the restart was far past the fresh
/// agent's: a watch that kept its old index would block on it for its whole wait.
async fn the_catalog_watch_follows_an_agent_restarted_without_its_state(kind: AgentKind) {
    let Some((mut agent, client)) = agent(
        kind,
        "the_catalog_watch_follows_an_agent_restarted_without_its_state",
    )
    .await
    else {
        return;
    };
    // Each registration and deregistration moves the service list's index.
    for n in 0..40 {
        client
            .register(&registration(
                &format!("filler-{n}"),
                2000 + n,
                CheckStatus::Passing,
                &[],
            ))
            .await
            .unwrap();
        client.deregister(&format!("filler-{n}")).await.unwrap();
    }
    client
        .register(&registration("web-1", 1001, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let before = client
        .catalog_services(&consul::QueryOptions::default())
        .await
        .unwrap()
        .index;
    let mut catalog = Discovery::new(client.clone()).catalog();
    within("web in the catalog", async {
        while !catalog.current().contains_key("web") {
            catalog.changed().await;
        }
    })
    .await;
    // The watch's read is parked when the agent restarts, as during a real restart.
    agent.parked(1).await;
    agent.lose_state().await;
    let fresh = client
        .catalog_services(&consul::QueryOptions::default())
        .await
        .unwrap()
        .index;
    assert!(
        fresh + 40 < before,
        "the fresh agent's index {fresh} is well below {before}"
    );
    let mut api = registration("api-1", 1002, CheckStatus::Passing, &[]);
    api.name = "api".into();
    client.register(&api).await.unwrap();
    let registered = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), async {
        while !catalog.current().contains_key("api") {
            catalog.changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the catalog watch did not see a service registered after the restart within 3 s: {:?}",
            catalog.current()
        )
    });
    eprintln!(
        "{kind:?}: a service registered after the restart seen after {:?}",
        registered.elapsed()
    );
}

/// One blocking query follows every service (`Discovery::services`): each service's passing
/// instances, through registrations, deregistrations and check changes, with one read parked
/// in the agent however many services there are.
async fn one_blocking_query_follows_every_service(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "one_blocking_query_follows_every_service").await
    else {
        return;
    };
    const SERVICES: u16 = 30;
    let instance = |name: &str, n: u16, status| {
        let mut reg = registration(&format!("{name}-{n}"), 3000 + n, status, &[]);
        reg.name = name.into();
        reg.checks[0].check_id = Some(format!("{name}-{n}-ttl"));
        reg
    };
    for n in 0..SERVICES {
        let reg = instance(&format!("svc{n}"), n, CheckStatus::Passing);
        client.register(&reg).await.unwrap();
    }
    client
        .register(&instance("down", 0, CheckStatus::Critical))
        .await
        .unwrap();

    let mut services = Discovery::new(client.clone()).services();
    let seen = within(
        "every passing service",
        services.wait_for(|s| s.len() == usize::from(SERVICES)),
    )
    .await;
    assert!(!seen.contains_key("down"), "only passing instances");
    assert_eq!(seen["svc7"][0].port, 3007);
    agent.parked(1).await;

    client.check_pass("down-0-ttl", "up").await.unwrap();
    within(
        "a service whose instance passes",
        services.wait_for(|s| s.contains_key("down")),
    )
    .await;
    client.check_fail("svc0-0-ttl", "down").await.unwrap();
    within(
        "a service whose only instance fails",
        services.wait_for(|s| !s.contains_key("svc0")),
    )
    .await;
    client
        .register(&instance("svc1", 100, CheckStatus::Passing))
        .await
        .unwrap();
    let two = within(
        "a second instance",
        services.wait_for(|s| s.get("svc1").is_some_and(|i| i.len() == 2)),
    )
    .await;
    assert_eq!(
        two["svc1"].iter().map(|e| e.port).collect::<Vec<_>>(),
        [3001, 3100]
    );
    client.deregister("svc2-2").await.unwrap();
    let last = within(
        "a deregistered service",
        services.wait_for(|s| !s.contains_key("svc2")),
    )
    .await;
    assert_eq!(last.len(), usize::from(SERVICES) - 1);
    // Still the one read, parked again.
    agent.parked(1).await;
}

/// A fake Consul answering `/v1/health/service/web` with a scripted sequence of indexes; it
/// records the `index` each request asked for and holds each answer for `hold`.
async fn scripted_consul(
    indexes: Vec<u64>,
    hold: Duration,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Option<u64>>>>) {
    let seen: Arc<std::sync::Mutex<Vec<Option<u64>>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/v1/health/service/web",
        get({
            let seen = seen.clone();
            move |Query(q): Query<HashMap<String, String>>| {
                let (seen, calls, indexes) = (seen.clone(), calls.clone(), indexes.clone());
                async move {
                    seen.lock()
                        .unwrap()
                        .push(q.get("index").and_then(|i| i.parse().ok()));
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    let index = indexes[n.min(indexes.len() - 1)];
                    let mut headers = HeaderMap::new();
                    headers.insert("X-Consul-Index", index.to_string().parse().unwrap());
                    headers.insert("X-Consul-KnownLeader", "true".parse().unwrap());
                    headers.insert("X-Consul-LastContact", "0".parse().unwrap());
                    (headers, "[]")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn index_rules_and_one_request_at_a_time() {
    // Answers 10, then backwards to 3 (reset: the next read must not wait on an index),
    // then 4 from then on.
    let (addr, seen) = scripted_consul(vec![10, 3, 4, 4], Duration::from_millis(100)).await;
    let client = Client::new(
        consul::Config::builder()
            .address(format!("http://{addr}"))
            .build()
            .unwrap(),
    )
    .unwrap();
    let watch = Discovery::new(client)
        .watch("web")
        .wait(Duration::from_secs(1))
        .start();
    let deadline = tokio::time::Instant::now() + T;
    while seen.lock().unwrap().len() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch stopped asking"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        &seen[..5],
        &[None, Some(10), None, Some(4), Some(4)],
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|i| *i != Some(0)),
        "never waits on index 0: {seen:?}"
    );
    drop(watch);
}

#[tokio::test]
async fn no_busy_loop_when_answers_do_not_change() {
    // Consul answering at once with the same index (e.g. idempotent writes) must not turn the
    // watch into a tight loop: one request at a time, each held by the server.
    let (addr, seen) = scripted_consul(vec![7], Duration::from_millis(50)).await;
    let client = Client::new(
        consul::Config::builder()
            .address(format!("http://{addr}"))
            .build()
            .unwrap(),
    )
    .unwrap();
    let _watch = Discovery::new(client).watch("web").start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = seen.lock().unwrap().len();
    // Strictly sequential requests of 50 ms each: at most ~10 in 500 ms.
    assert!((2..=11).contains(&n), "{n} requests in 500 ms");
}

async fn backend(name: &'static str, hits: Arc<AtomicUsize>) -> SocketAddr {
    let app = Router::new().route(
        "/who",
        get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                name
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Registers `web-dead`, passing, at a loopback port that refuses connections; returns it.
async fn register_dead(client: &Client) -> SocketAddr {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    client
        .register(&registration(
            "web-dead",
            dead.port(),
            CheckStatus::Passing,
            &[],
        ))
        .await
        .unwrap();
    dead
}

async fn p2c_balances_over_discovered_instances(kind: AgentKind) {
    let Some((_agent, client)) = agent(kind, "p2c_balances_over_discovered_instances").await else {
        return;
    };
    let (a_hits, b_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = backend("a", a_hits.clone()).await;
    let b = backend("b", b_hits.clone()).await;
    client
        .register(&registration("web-a", a.port(), CheckStatus::Passing, &[]))
        .await
        .unwrap();
    client
        .register(&registration("web-b", b.port(), CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let watch = Discovery::new(client.clone()).watch("web").start();
    let mut w = watch.clone();
    within("both", w.wait_for(|s| s.len() == 2)).await;

    let http = reqwest::Client::new();
    let discover = watch.discover(move |e| {
        let url = format!("http://{}/who", e.authority());
        let http = http.clone();
        Constant::new(
            tower::service_fn(move |()| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let body = http
                        .get(&url)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .text()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<String, String>(body)
                }
            }),
            1u32,
        )
    });
    let mut balance = Balance::new(discover);
    let mut answers = HashMap::<String, usize>::new();
    for _ in 0..60 {
        let answer = balance.ready().await.unwrap().call(()).await.unwrap();
        *answers.entry(answer).or_default() += 1;
    }
    assert!(
        answers.get("a").copied().unwrap_or(0) > 0 && answers.get("b").copied().unwrap_or(0) > 0,
        "{answers:?}"
    );

    client.deregister("web-a").await.unwrap();
    let gone = within("a gone", w.wait_for(|s| s.len() == 1)).await;
    assert_eq!(ids(&gone), ["web-b"]);
    // The balancer learns of the removal when it next polls its discover stream, which may
    // come a few requests after the reader above saw it (seen once on a loaded machine with
    // a real Consul). Once it answers b twenty times in a row (by chance 1 in a million with
    // both), every later request goes to b.
    let mut in_a_row = 0;
    let deadline = std::time::Instant::now() + T;
    while in_a_row < 20 {
        let answer = balance.ready().await.unwrap().call(()).await.unwrap();
        in_a_row = if answer == "b" { in_a_row + 1 } else { 0 };
        assert!(
            std::time::Instant::now() < deadline,
            "the balancer kept web-a"
        );
    }
    let a_before = a_hits.load(Ordering::SeqCst);
    for _ in 0..30 {
        let answer = balance.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(answer, "b");
    }
    assert_eq!(a_hits.load(Ordering::SeqCst), a_before);
}

async fn balanced_client_retries_a_dead_instance_and_skips_departed_ones(kind: AgentKind) {
    let Some((_agent, client)) = agent(
        kind,
        "balanced_client_retries_a_dead_instance_and_skips_departed_ones",
    )
    .await
    else {
        return;
    };
    let (a_hits, b_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = backend("a", a_hits.clone()).await;
    let b = backend("b", b_hits.clone()).await;
    // A registered instance whose port refuses connections.
    register_dead(&client).await;
    client
        .register(&registration("web-a", a.port(), CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let watch = Discovery::new(client.clone()).watch("web").start();
    let mut w = watch.clone();
    within("both", w.wait_for(|s| s.len() == 2)).await;
    let balanced = Balanced::new(watch);
    for _ in 0..20 {
        let r = balanced
            .get("/who")
            .await
            .expect("GET retried on the live instance");
        assert_eq!(r.text().await.unwrap(), "a");
    }

    client
        .register(&registration("web-b", b.port(), CheckStatus::Passing, &[]))
        .await
        .unwrap();
    client.deregister("web-a").await.unwrap();
    client.deregister("web-dead").await.unwrap();
    within(
        "only b",
        w.wait_for(|s| s.len() == 1 && s.get("web-b").is_some()),
    )
    .await;
    let a_before = a_hits.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(
            balanced.get("/who").await.unwrap().text().await.unwrap(),
            "b"
        );
    }
    assert_eq!(
        a_hits.load(Ordering::SeqCst),
        a_before,
        "no request to a departed instance"
    );

    client.deregister("web-b").await.unwrap();
    within("none", w.wait_for(|s| s.is_empty())).await;
    match balanced.get("/who").await {
        Err(discoverable_runtime::Error::NoInstance { service }) => assert_eq!(service, "web"),
        other => panic!("expected NoInstance, got {other:?}"),
    }
}

/// Consul accepts a registration with port 70000; its entry cannot be an instance, and must
/// not hide the healthy ones.
async fn an_entry_that_does_not_decode_hides_no_other_instance(kind: AgentKind) {
    let test = "an_entry_that_does_not_decode_hides_no_other_instance";
    let Some((agent, client)) = agent(kind, test).await else {
        return;
    };
    client
        .register(&registration("web-1", 1001, CheckStatus::Passing, &[]))
        .await
        .unwrap();
    let bad = reqwest::Client::new()
        .put(format!("{}/v1/agent/service/register", agent.url()))
        .body(
            serde_json::json!({"ID": "web-bad", "Name": "web", "Port": 70000,
                "Check": {"TTL": "10m", "Status": "passing"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.status(),
        200,
        "the agent accepts port 70000, as Consul does"
    );
    let mut watch = Discovery::new(client.clone()).watch("web").start();
    let set = within("the healthy instance", watch.wait_for(|s| s.len() == 1)).await;
    assert_eq!(ids(&set), ["web-1"]);
    assert!(!set.is_stale(), "the watch reads Consul fine: {set:?}");
}

async fn balanced_waits_for_the_watchs_first_answer(kind: AgentKind) {
    let test = "balanced_waits_for_the_watchs_first_answer";
    let Some((_agent, client)) = agent(kind, test).await else {
        return;
    };
    let a = backend("a", Arc::new(AtomicUsize::new(0))).await;
    client
        .register(&registration("web-a", a.port(), CheckStatus::Passing, &[]))
        .await
        .unwrap();
    // The first request right after the watch starts: it waits for Consul's first answer.
    let http = reqwest::Client::new();
    for round in 0..5 {
        let watch = Discovery::new(client.clone()).watch("web").start();
        let balanced = Balanced::with_client(watch, http.clone());
        let r = balanced
            .get("/who")
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(r.text().await.unwrap(), "a");
    }
}

async fn balanced_errors_name_the_instance_not_consul(kind: AgentKind) {
    let test = "balanced_errors_name_the_instance_not_consul";
    let Some((_agent, client)) = agent(kind, test).await else {
        return;
    };
    let dead = register_dead(&client).await;
    let balanced = Balanced::new(Discovery::new(client.clone()).watch("web").start());
    let e = balanced.get("/who").await.unwrap_err();
    let shown = e.to_string();
    match &e {
        discoverable_runtime::Error::Instance { instance, addr, .. } => {
            assert_eq!(instance, "web-dead");
            assert_eq!(addr, &dead.to_string());
        }
        other => panic!("expected an instance error, got {other:?}"),
    }
    assert!(
        shown.contains("web-dead") && shown.contains(&dead.to_string()),
        "{shown}"
    );
    // The cause by name, not only reqwest's "error sending request".
    assert!(shown.contains("Connection refused"), "{shown}");
    assert!(!shown.contains("CONSUL_HTTP_ADDR"), "{shown}");
    assert!(!shown.contains("cannot reach Consul"), "{shown}");
}

/// Consul answers a filter it cannot parse with an error: the query is refused, Consul is
/// reached. The balanced client says what Consul said and what to fix, not to check
/// CONSUL_HTTP_ADDR.
async fn a_refused_query_is_reported_as_refused_not_as_consul_unreachable(kind: AgentKind) {
    let test = "a_refused_query_is_reported_as_refused_not_as_consul_unreachable";
    let Some((_agent, client)) = agent(kind, test).await else {
        return;
    };
    let watch = Discovery::new(client)
        .watch("web")
        .filter("garbage ((")
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start();
    let e = Balanced::new(watch.clone()).get("/who").await.unwrap_err();
    let shown = e.to_string();
    assert!(
        matches!(e, discoverable_runtime::Error::InstancesUnknown { .. }),
        "{e:?}"
    );
    assert!(
        shown.contains("Consul refused the watch's query"),
        "{shown}"
    );
    assert!(shown.contains("fix the query (its filter, say)"), "{shown}");
    assert!(!shown.contains("CONSUL_HTTP_ADDR"), "{shown}");
    assert!(!shown.contains("cannot be reached"), "{shown}");
    assert!(watch.current().is_stale() && !watch.current().is_known());
}

#[tokio::test]
async fn balanced_says_consul_cannot_be_reached_before_any_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(
        consul::Config::builder()
            .address(format!("http://{closed}"))
            .build()
            .unwrap(),
    )
    .unwrap();
    let watch = Discovery::new(client)
        .watch("web")
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start();
    let e = Balanced::new(watch).get("/who").await.unwrap_err();
    let shown = e.to_string();
    assert!(
        matches!(e, discoverable_runtime::Error::InstancesUnknown { .. }),
        "{e:?}"
    );
    assert!(shown.contains("Consul cannot be reached"), "{shown}");
    assert!(!shown.contains("is registered"), "{shown}");
}

/// A watch asked for any consistency mode (`?stale`, `?cached`, or neither) sees a
/// registration and a deregistration. The dev agent answers the three alike; a real Consul
/// answers `?cached` from its agent cache.
async fn a_watch_in_every_consistency_mode_sees_a_registration(kind: AgentKind) {
    let test = "a_watch_in_every_consistency_mode_sees_a_registration";
    let Some((_agent, client)) = agent(kind, test).await else {
        return;
    };
    let discovery = Discovery::new(client.clone());
    for (i, mode) in [
        Consistency::Default,
        Consistency::Stale,
        Consistency::Cached,
    ]
    .into_iter()
    .enumerate()
    {
        let mut watch = discovery
            .watch("web")
            .consistency(mode)
            .wait(Duration::from_secs(5))
            .start();
        let first = within("first answer", watch.wait_for(|s| s.is_known())).await;
        assert!(first.is_empty(), "{mode:?}: {first:?}");
        let id = format!("web-{i}");
        client
            .register(&registration(&id, 1001, CheckStatus::Passing, &[]))
            .await
            .unwrap();
        let set = within("the registration", watch.wait_for(|s| s.len() == 1)).await;
        assert_eq!(ids(&set), [id.as_str()], "{mode:?}");
        client.deregister(&id).await.unwrap();
        within("the deregistration", watch.wait_for(|s| s.is_empty())).await;
        assert!(!watch.current().is_stale(), "{mode:?}");
    }
}

discoverable_testkit::against_both_agents!(
    a_watch_in_every_consistency_mode_sees_a_registration,
    balanced_waits_for_the_watchs_first_answer,
    balanced_errors_name_the_instance_not_consul,
    a_refused_query_is_reported_as_refused_not_as_consul_unreachable,
    an_entry_that_does_not_decode_hides_no_other_instance,
    watch_follows_registrations_and_health,
    last_good_set_is_kept_and_marked_stale_while_consul_is_down,
    an_index_that_goes_backwards_resets_the_watch,
    the_catalog_watch_follows_an_agent_restarted_without_its_state,
    p2c_balances_over_discovered_instances,
    balanced_client_retries_a_dead_instance_and_skips_departed_ones,
    one_blocking_query_follows_every_service,
);
