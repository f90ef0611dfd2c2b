//! Every serve call in an annotated body is an instance of its own: `tokio::join!` of two
//! `axum::serve` calls registers two IDs, two spawned serve tasks compile and register two
//! more, and the environment is read when serving starts, so a variable set at the top of the
//! function (as `dotenvy::dotenv()` does) is honoured.
//!
//! One test in this binary: it sets `CONSUL_HTTP_ADDR` before any runtime thread exists.

use std::future::IntoFuture;
use std::time::Duration;

use axum::{Router, routing::get};
use discoverable_devagent::DevAgent;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[discoverable::discoverable(name = "joined", prefix = "/joined")]
async fn serve_joined(stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let l1 = TcpListener::bind("127.0.0.1:0").await?;
    let l2 = TcpListener::bind("127.0.0.1:0").await?;
    let (a, b) = tokio::join!(
        axum::serve(l1, app())
            .with_graceful_shutdown(stopped(stop.clone()))
            .into_future(),
        axum::serve(l2, app())
            .with_graceful_shutdown(stopped(stop))
            .into_future(),
    );
    a.and(b)
}

#[discoverable::discoverable(name = "spawned", prefix = "/spawned")]
async fn serve_spawned(stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, app())
                .with_graceful_shutdown(stopped(stop))
                .await
        }));
    }
    for task in tasks {
        task.await.expect("serve task")?;
    }
    Ok(())
}

async fn ids(agent: &str, name: &str) -> Vec<String> {
    let all: serde_json::Value = reqwest::get(format!("{agent}/v1/agent/services"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = all
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["Service"] == name)
        .map(|s| s["ID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn until_ids(agent: &str, name: &str, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = ids(agent, name).await;
        if found.len() == count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {count} instances expected, found {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn every_serve_call_is_its_own_instance_and_reads_the_environment_when_it_starts() {
    // The dev agent runs on a runtime of its own, so its address is known before the
    // variable is set and before the runtime that serves starts.
    let agent_rt = tokio::runtime::Runtime::new().unwrap();
    let agent = agent_rt
        .block_on(DevAgent::start(Default::default()))
        .unwrap();
    let url = agent.url();
    // SAFETY: no other thread of this test binary reads or writes the environment now: this
    // is its only test, and the agent's runtime does not touch the environment.
    unsafe {
        std::env::set_var("CONSUL_HTTP_ADDR", &url);
        std::env::set_var("DISCOVERABLE_GRACE_PERIOD", "50ms");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (stop_tx, stop) = watch::channel(false);
        let joined = tokio::spawn(serve_joined(stop.clone()));
        let spawned = tokio::spawn(serve_spawned(stop));
        let joined_ids = until_ids(&url, "joined", 2).await;
        let spawned_ids = until_ids(&url, "spawned", 2).await;
        assert_ne!(joined_ids[0], joined_ids[1]);
        assert_ne!(spawned_ids[0], spawned_ids[1]);
        stop_tx.send(true).unwrap();
        joined.await.unwrap().unwrap();
        spawned.await.unwrap().unwrap();
        assert!(ids(&url, "joined").await.is_empty(), "both deregistered");
        assert!(ids(&url, "spawned").await.is_empty(), "both deregistered");
    });
    drop(rt);
    agent_rt.block_on(agent.shutdown());
}
