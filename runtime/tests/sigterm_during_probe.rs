//! SIGTERM while the instance still probes itself before registering: the listener already
//! serves, so shutdown is graceful from then on. The request in flight gets its answer, `serve`
//! returns `Ok`, nothing is registered, and the process lives on.
//!
//! A test binary of its own: the signal goes to the whole process, and no other test may be
//! listening for it.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use discoverable_runtime::consul::{self, Client};
use discoverable_runtime::{Health, Service};
use discoverable_testkit::{Agent, AgentKind, until};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_start_up_probe_drains_instead_of_ending_the_process() {
    let test = "sigterm_during_the_start_up_probe_drains_instead_of_ending_the_process";
    let Some(agent) = Agent::start(AgentKind::Dev, test, None).await else {
        return;
    };
    let config = consul::Config::builder()
        .address(agent.url())
        .build()
        .unwrap();
    let client = Client::new(config.clone()).unwrap();
    // An indicator that takes its time: the start-up probe waits for it (up to the check's
    // 1 s timeout).
    let service = Service::builder("slowcheck")
        .consul(config)
        .interval(Duration::from_secs(2))
        .timeout(Duration::from_secs(1))
        .grace_period(Duration::from_secs(5))
        .check("slow", || async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            Health::Up
        })
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "slow"
        }),
    );
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());
    // Serving, and a request in flight, while the probe still waits for the indicator.
    let request = tokio::spawn(async move {
        let answer = reqwest::get(format!("{url}/slow")).await?;
        Ok::<_, reqwest::Error>((answer.status().as_u16(), answer.text().await?))
    });
    until(T, "the slow request in flight", || async {
        instance.in_flight() == 1
    })
    .await;
    assert!(!instance.is_registered(), "still probing");
    let signalled = Instant::now();
    // SAFETY: `kill` on the test's own process with a signal its runtime handles.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0);

    let result = tokio::time::timeout(T, served)
        .await
        .expect("serve returns after SIGTERM")
        .expect("serve did not panic");
    assert!(result.is_ok(), "{result:?}");
    let took = signalled.elapsed();
    // Never registered, so no grace period to wait out (5 s here).
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let answer = request.await.unwrap().map_err(|e| e.to_string());
    assert_eq!(
        answer,
        Ok((200, "slow".to_owned())),
        "the request in flight"
    );
    assert!(!instance.is_registered());
    until(T, "nothing registered", || async {
        client
            .agent_services()
            .await
            .is_ok_and(|services| services.is_empty())
    })
    .await;
}
