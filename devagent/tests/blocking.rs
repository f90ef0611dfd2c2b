//! Blocking queries: headers, waking on change (and only on a relevant change), timing out with
//! the same index, errors, the index reset after a restart, KV and hash-based blocking.

mod common;

use std::time::{Duration, Instant};

use common::{Env, index_of, start};
use discoverable_testkit::until;
use reqwest::Method;
use serde_json::{Value, json};

/// Waits until `n` blocking queries are parked in the agent, waiting for a change.
async fn parked(env: &Env, n: usize) {
    until(
        Duration::from_secs(5),
        &format!("{n} blocking queries parked"),
        || async { env.agent.blocking_queries() == n },
    )
    .await;
}

#[tokio::test]
async fn read_endpoints_carry_the_blocking_headers() {
    let env = start().await;
    for path in [
        "/v1/health/service/web",
        "/v1/health/state/any",
        "/v1/health/checks/web",
        "/v1/health/node/devagent",
        "/v1/catalog/services",
        "/v1/catalog/service/web",
        "/v1/catalog/nodes",
        "/v1/catalog/node/devagent",
        "/v1/kv/missing",
    ] {
        let resp = env.get(path).await;
        assert!(index_of(&resp) >= 1, "{path}");
        assert_eq!(resp.headers()["x-consul-knownleader"], "true", "{path}");
        assert_eq!(resp.headers()["x-consul-lastcontact"], "0", "{path}");
        assert_eq!(
            resp.headers()["x-consul-query-backend"],
            "blocking-query",
            "{path}"
        );
        assert_eq!(
            resp.headers()["x-consul-default-acl-policy"],
            "allow",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_change_wakes_the_query_promptly_and_not_before() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    let first = env.get("/v1/health/service/web").await;
    let index = index_of(&first);

    let url = format!("{}/v1/health/service/web?index={index}&wait=30s", env.url);
    let http = env.http.clone();
    let started = Instant::now();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    assert!(!waiting.is_finished(), "must block while nothing changed");

    env.send(Method::PUT, "/v1/agent/check/pass/service:web", None)
        .await;
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("woken well before the wait")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(resp.status(), 200);
    assert!(index_of(&resp) > index);
    // Consul answers a blocking health query from its streaming backend, which knows no leader.
    assert_eq!(resp.headers()["x-consul-query-backend"], "streaming");
    assert_eq!(resp.headers()["x-consul-knownleader"], "false");
    let body: Value = resp.json().await.unwrap();
    let check = body[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "service:web")
        .unwrap()
        .clone();
    assert_eq!(check["Status"], "passing");
}

#[tokio::test]
async fn every_waiter_wakes_at_once() {
    let env = start().await;
    let index = index_of(&env.get("/v1/catalog/services").await);
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let url = format!("{}/v1/catalog/services?index={index}&wait=30s", env.url);
            let http = env.http.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap() })
        })
        .collect();
    // All five wait in the agent before the change, so the one change wakes them all.
    parked(&env, 5).await;
    env.register(json!({"Name": "new"})).await;
    for w in waiters {
        let resp = tokio::time::timeout(Duration::from_secs(3), w)
            .await
            .expect("woken")
            .unwrap();
        assert!(index_of(&resp) > index);
    }
    assert_eq!(env.agent.blocking_queries(), 0);
}

#[tokio::test]
async fn the_catalogs_service_list_blocks_through_health_changes_as_in_consul() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    let index = index_of(&env.get("/v1/catalog/services").await);
    let url = format!("{}/v1/catalog/services?index={index}&wait=30s", env.url);
    let http = env.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    // A check's change raises the health views' index, not the service list's ...
    env.send(Method::PUT, "/v1/agent/check/pass/service:web", None)
        .await;
    let health = env.get("/v1/health/service/web").await;
    assert!(index_of(&health) > index);
    assert_eq!(index_of(&env.get("/v1/catalog/services").await), index);
    // ... so the waiting list answers for the next instance, not for the check.
    env.register(json!({"Name": "api"})).await;
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("woken by the registration")
        .unwrap();
    assert!(index_of(&resp) > index);
    let names: Value = resp.json().await.unwrap();
    assert!(names.get("api").is_some(), "{names}");
}

#[tokio::test]
async fn without_change_the_query_returns_at_wait_with_the_same_index() {
    let env = start().await;
    env.register(json!({"Name": "web"})).await;
    let index = index_of(&env.get("/v1/health/service/web").await);
    let started = Instant::now();
    // Held for the wait and answered then: never early, and not held on (the jitter's own
    // bound, wait/16, is the unit test's in `api`; how late the answer reaches this test on
    // a busy machine is no property of the agent).
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        env.get(&format!("/v1/health/service/web?index={index}&wait=1s")),
    )
    .await
    .expect("answered once the wait is over");
    let took = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(index_of(&resp), index);
    assert!(took >= Duration::from_millis(990), "{took:?}");
    assert_eq!(
        resp.json::<Value>().await.unwrap()[0]["Service"]["ID"],
        "web"
    );
}

#[tokio::test]
async fn changes_to_other_services_or_unchanged_checks_do_not_wake_it() {
    let env = start().await;
    env.register(json!({"Name": "web", "Check": {"TTL": "30s", "Status": "passing"}}))
        .await;
    env.send(
        Method::PUT,
        "/v1/agent/check/pass/service:web?note=same",
        None,
    )
    .await;
    let index = index_of(&env.get("/v1/health/service/web").await);
    let url = format!(
        "{}/v1/health/service/web?index={index}&wait=1500ms",
        env.url
    );
    let http = env.http.clone();
    let started = Instant::now();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    env.register(json!({"Name": "other"})).await;
    env.send(
        Method::PUT,
        "/v1/agent/check/pass/service:web?note=same",
        None,
    )
    .await;
    let resp = waiting.await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1450));
    assert_eq!(index_of(&resp), index);
}

#[tokio::test]
async fn invalid_wait_and_index_are_400() {
    let env = start().await;
    for (query, text) in [
        ("wait=soon", "Invalid wait time"),
        ("index=abc", "Invalid index"),
        ("index=-5", "Invalid index"),
    ] {
        let resp = env.get(&format!("/v1/health/service/web?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(resp.text().await.unwrap(), text);
    }
}

#[tokio::test]
async fn restart_resets_the_index_and_wakes_waiters() {
    let env = start().await;
    for i in 0..5 {
        env.register(json!({"Name": "web", "Port": i})).await;
    }
    let index = index_of(&env.get("/v1/health/service/web").await);
    assert!(index > 2);
    let url = format!("{}/v1/health/service/web?index={index}&wait=30s", env.url);
    let http = env.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    env.agent.faults().restart_losing_state();
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("restart wakes the waiter")
        .unwrap();
    let after = index_of(&resp);
    assert!(after < index, "index went backwards: {after} < {index}");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));
    // A query that still carries the old index, above the agent's now, waits as in Consul:
    // held for its whole wait, then answered with the current index.
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        env.get(&format!("/v1/health/service/web?index={index}&wait=1s")),
    )
    .await
    .expect("answered once the wait is over");
    assert!(started.elapsed() >= Duration::from_millis(990));
    assert_eq!(resp.status(), 200);
    assert_eq!(index_of(&resp), after);
}

#[tokio::test]
async fn kv_reads_block_on_index() {
    let env = start().await;
    let resp = env.get("/v1/kv/fabio/config?consistent=&recurse=").await;
    assert_eq!(resp.status(), 404);
    let index = index_of(&resp);
    let url = format!(
        "{}/v1/kv/fabio/config?consistent=&recurse=&index={index}&wait=30s",
        env.url
    );
    let http = env.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    assert!(!waiting.is_finished());
    env.put_raw("/v1/kv/fabio/config", "route add a /a http://127.0.0.1:1/")
        .await;
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("woken by the write")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(index_of(&resp) > index);
    assert_eq!(
        resp.json::<Value>().await.unwrap()[0]["Key"],
        "fabio/config"
    );
}

/// An agent with `web` registered, and a query parked on `web`'s content hash: the agent,
/// the hash and the waiting query.
async fn waiting_on_webs_hash() -> (Env, String, tokio::task::JoinHandle<reqwest::Response>) {
    let env = start().await;
    env.register(json!({"Name": "web", "Port": 1})).await;
    let resp = env.get("/v1/agent/service/web").await;
    let hash = resp.headers()["x-consul-contenthash"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v1/agent/service/web?hash={hash}&wait=30s", env.url);
    let http = env.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    parked(&env, 1).await;
    (env, hash, waiting)
}

#[tokio::test]
async fn agent_service_blocks_on_its_hash() {
    let (env, hash, waiting) = waiting_on_webs_hash().await;
    assert!(!waiting.is_finished());
    env.register(json!({"Name": "web", "Port": 2})).await;
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("woken by the change")
        .unwrap();
    assert_ne!(resp.headers()["x-consul-contenthash"], hash.as_str());
    assert_eq!(resp.json::<Value>().await.unwrap()["Port"], 2);
}

#[tokio::test]
async fn agent_service_hash_query_waits_through_other_services_changes() {
    let (env, hash, waiting) = waiting_on_webs_hash().await;
    // Other services come and go, and web is registered again unchanged: each wakes the
    // query, which finds its answer as it was and waits on.
    for port in 2..12 {
        env.register(json!({"ID": format!("api-{port}"), "Name": "api", "Port": port}))
            .await;
    }
    env.register(json!({"Name": "web", "Port": 1})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered without a change to web");
    env.register(json!({"Name": "web", "Port": 2})).await;
    let resp = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("woken by web's change")
        .unwrap();
    assert_ne!(resp.headers()["x-consul-contenthash"], hash.as_str());
    assert_eq!(resp.json::<Value>().await.unwrap()["Port"], 2);
}
