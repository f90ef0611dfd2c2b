//! The serve lifecycle in-process, against the dev agent (`dev_agent::<name>`) and a real
//! Consul (`real_consul::<name>`): the ways serving can end, Consul faults at start-up and
//! shutdown (for the real agent made from outside: killed, restarted, frozen), and the
//! make-service flavours. Everything on loopback.

#[path = "support/fake_consul.rs"]
mod fake_consul;
#[path = "support/logs.rs"]
mod logs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::{Router, extract::ConnectInfo, routing::get};
use discoverable_runtime::consul::{self, Client};
use discoverable_runtime::{Error, Instance, Service, ServiceBuilder};
use discoverable_testkit::{Agent, AgentKind, until};
use fake_consul::{Answer, FakeConsul, Kind};
use logs::Logs;
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(10);

/// An agent of `kind` and a client for it; `None`: the test skips, saying why.
async fn agent(kind: AgentKind, test: &str) -> Option<(Agent, Client)> {
    let agent = Agent::start(kind, test, None).await?;
    let client = Client::new(config(&agent)).unwrap();
    Some((agent, client))
}

fn config(agent: &Agent) -> consul::Config {
    consul::Config::builder()
        .address(agent.url())
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn builder(agent: &Agent) -> ServiceBuilder {
    Service::builder("svc")
        .prefix("/svc")
        .consul(config(agent))
        .grace_period(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// Waits (bounded) for the spawned `serve` to return, and asserts it returned `Ok`.
async fn returns_ok(served: tokio::task::JoinHandle<std::io::Result<()>>) {
    tokio::time::timeout(T, served)
        .await
        .expect("serve returns in time")
        .expect("serve did not panic")
        .expect("serve returned Ok");
}

async fn registered(client: &Client, id: &str) -> bool {
    client
        .agent_services()
        .await
        .map(|s| s.contains_key(id))
        .unwrap_or(false)
}

async fn passing(client: &Client, name: &str) -> usize {
    let q = consul::HealthQuery::default();
    client
        .health_service(name, &q)
        .await
        .map(|e| e.value.len())
        .unwrap_or(0)
}

async fn instance_shutdown_takes_the_signal_path(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "instance_shutdown_takes_the_signal_path").await else {
        return;
    };
    // A grace period long enough to ask the health route inside it on a busy machine.
    let service = builder(&agent)
        .grace_period(Duration::from_secs(1))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    assert!(instance.is_registered());
    assert_eq!(
        passing(&client, "svc").await,
        1,
        "registered as passing at once"
    );

    instance.shutdown();
    until(T, "deregistered", || async {
        !registered(&client, instance.id()).await
    })
    .await;
    // Still serving during the grace period, health says 503.
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), 503);
    returns_ok(served).await;
    assert!(
        reqwest::get(&url).await.is_err(),
        "listener closed after serve returned"
    );
}

async fn user_shutdown_future_and_connect_info_make_service(kind: AgentKind) {
    let Some((agent, client)) =
        agent(kind, "user_shutdown_future_and_connect_info_make_service").await
    else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        discoverable_runtime::serve(instance.clone(), listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .into_future(),
    );
    until(T, "registered", || registered(&client, &id)).await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().text().await.unwrap(),
        "127.0.0.1"
    );
    assert_eq!(
        reqwest::get(format!("{url}/health"))
            .await
            .unwrap()
            .status(),
        200
    );
    tx.send(()).unwrap();
    returns_ok(served).await;
    assert!(!registered(&client, &id).await);
}

async fn into_make_service_works(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "into_make_service_works").await else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = tokio::spawn(
        discoverable_runtime::serve(instance.clone(), listener, app().into_make_service())
            .into_future(),
    );
    until(T, "registered", || registered(&client, instance.id())).await;
    instance.shutdown();
    returns_ok(served).await;
    assert!(!registered(&client, instance.id()).await);
}

// Multi-threaded: the best-effort deregistration blocks the dropping thread for its bound, and
// the agent under test runs on this same runtime.
async fn dropping_the_serve_future_still_deregisters(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "dropping_the_serve_future_still_deregisters").await
    else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = discoverable_runtime::serve(instance.clone(), listener, app()).into_future();
    let client2 = client.clone();
    let id2 = id.clone();
    // The serve future loses a select! once the instance is registered, as an early `?` or a
    // competing branch in user code would do.
    tokio::select! {
        _ = serving => panic!("serve returned on its own"),
        () = until(T, "registered", move || { let (c, i) = (client2.clone(), id2.clone()); async move { registered(&c, &i).await } }) => {}
    }
    assert!(
        !registered(&client, &id).await,
        "deregistered when the serve future was dropped"
    );
    // Nothing outlives it: the registrar does not register the instance again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !registered(&client, &id).await,
        "no registration after the serve future was dropped"
    );
}

/// On a multi-threaded runtime a dropped serve future waits for its deregistration inside
/// `block_in_place`, so its worker hands its other tasks over. With one worker and Consul
/// hanging (the wait lasts its whole 2 s bound), a ticker on that worker ticks on through the
/// wait; a wait that blocked the worker would stop it until the drop returned.
fn a_dropped_serve_future_hands_its_workers_other_tasks_over(kind: AgentKind) {
    let test = "a_dropped_serve_future_hands_its_workers_other_tasks_over";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Some((agent, client)) = agent(kind, test).await else {
            return;
        };
        let agent = Arc::new(agent);
        let service = builder(&agent).build().unwrap();
        let instance = service.new_instance();
        let id = instance.id().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ticks: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        // The future is made, polled and dropped on the worker, as in a spawned task of a
        // user's own.
        let dropper = tokio::spawn({
            let agent = agent.clone();
            async move {
                let mut serving = Box::pin(
                    discoverable_runtime::serve(instance.clone(), listener, app()).into_future(),
                );
                tokio::select! {
                    _ = &mut serving => panic!("serve returned on its own"),
                    () = until(T, "registered", || registered(&client, &id)) => {}
                }
                agent.hang();
                let from = Instant::now();
                drop(serving);
                (from, Instant::now())
            }
        });
        let (from, to) = tokio::time::timeout(T, dropper)
            .await
            .expect("the drop returns within its bound")
            .unwrap();
        agent.unhang();
        ticker.abort();
        let waited = to - from;
        let during = ticks
            .lock()
            .unwrap()
            .iter()
            .filter(|t| (from..to).contains(*t))
            .count();
        eprintln!(
            "{kind:?}: the drop waited {waited:?}; the ticker ticked {during} times meanwhile"
        );
        assert!(
            waited >= Duration::from_secs(1),
            "the drop waited {waited:?}: Consul hung, so it should wait for its bound"
        );
        assert!(
            during >= 20,
            "the ticker on the same worker ticked {during} times in the {waited:?} the drop waited"
        );
    });
}

/// A stream's chunks, from a channel, as a response body.
struct Chunks(tokio::sync::mpsc::Receiver<&'static str>);

impl futures_core::Stream for Chunks {
    type Item = Result<&'static str, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}

/// A long-lived response's test: an instance with a 20 s drain bound (far beyond what a
/// clean end takes), serving `app()` plus `route(&instance)` at `path`, once registered.
/// Returns the instance, the listener's address and the serve task.
async fn serving_long_lived(
    agent: &Agent,
    client: &Client,
    path: &str,
    route: impl FnOnce(&discoverable_runtime::Instance) -> axum::routing::MethodRouter,
) -> (
    discoverable_runtime::Instance,
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let service = builder(agent)
        .drain_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app().route(path, route(&instance));
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());
    until(T, "registered", || registered(client, instance.id())).await;
    (instance, addr, served)
}

/// A long-lived response (server-sent events) ends cleanly at shutdown: its handler awaits
/// `Instance::shutting_down`, sends a last event and ends the body, so the client reads the
/// stream to its end, with no reset, long before the drain's bound.
async fn a_stream_ends_cleanly_with_a_last_event_when_shutdown_begins(kind: AgentKind) {
    let test = "a_stream_ends_cleanly_with_a_last_event_when_shutdown_begins";
    let Some((agent, client)) = agent(kind, test).await else {
        return;
    };
    let (instance, addr, served) = serving_long_lived(&agent, &client, "/events", |instance| {
        let instance = instance.clone();
        get(move || {
            let shutting_down = instance.shutting_down();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                tokio::spawn(async move {
                    tokio::pin!(shutting_down);
                    loop {
                        tokio::select! {
                            () = &mut shutting_down => {
                                let _ = tx.send("event: bye\ndata: shutting down\n\n").await;
                                return;
                            }
                            () = tokio::time::sleep(Duration::from_millis(20)) => {
                                if tx.send("data: tick\n\n").await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(Chunks(rx)),
                )
            }
        })
    })
    .await;
    let url = format!("http://{addr}/events");
    let mut response = reqwest::get(url).await.unwrap();
    let first = response.chunk().await.unwrap().expect("a first event");
    assert_eq!(&first[..], b"data: tick\n\n");
    // The stream is a request in flight until its body ends.
    assert_eq!(instance.in_flight(), 1, "the event stream is in flight");
    let asked = Instant::now();
    instance.shutdown();
    let mut rest = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .expect("the stream ends cleanly, no reset")
    {
        rest.extend_from_slice(&chunk);
    }
    let ended = asked.elapsed();
    let rest = String::from_utf8(rest).unwrap();
    assert!(
        rest.ends_with("event: bye\ndata: shutting down\n\n"),
        "the last event ends the stream: {rest:?}"
    );
    assert!(
        ended < Duration::from_secs(5),
        "ended {ended:?} after shutdown began, not at the drain's 20 s bound"
    );
    returns_ok(served).await;
    assert_eq!(instance.in_flight(), 0, "the stream ended");
}

/// A WebSocket whose handler awaits `Instance::shutting_down` sends a close frame when
/// shutdown begins: the client sees a clean close ("going away"), long before the drain's
/// bound, not a cut connection.
async fn a_websocket_closes_cleanly_when_shutdown_begins(kind: AgentKind) {
    use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite;

    let test = "a_websocket_closes_cleanly_when_shutdown_begins";
    let Some((agent, client)) = agent(kind, test).await else {
        return;
    };
    let (instance, addr, served) = serving_long_lived(&agent, &client, "/echo", |instance| {
        let instance = instance.clone();
        get(move |upgrade: WebSocketUpgrade| {
            let shutting_down = instance.shutting_down();
            async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    tokio::pin!(shutting_down);
                    loop {
                        tokio::select! {
                            () = &mut shutting_down => {
                                let bye = CloseFrame {
                                    code: close_code::AWAY,
                                    reason: "shutting down".into(),
                                };
                                let _ = socket.send(Message::Close(Some(bye))).await;
                                return;
                            }
                            received = socket.recv() => match received {
                                Some(Ok(Message::Text(text))) => {
                                    if socket.send(Message::Text(text)).await.is_err() {
                                        return;
                                    }
                                }
                                Some(Ok(_)) => {}
                                _ => return,
                            },
                        }
                    }
                })
            }
        })
    })
    .await;
    let url = format!("ws://{addr}/echo");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(tungstenite::Message::text("ping"))
        .await
        .unwrap();
    let echoed = socket.next().await.expect("an echo").unwrap();
    assert_eq!(echoed, tungstenite::Message::text("ping"));
    let asked = Instant::now();
    instance.shutdown();
    let closed = socket
        .next()
        .await
        .expect("a close frame, not a cut connection")
        .expect("a clean close, no error");
    let ended = asked.elapsed();
    let tungstenite::Message::Close(Some(frame)) = closed else {
        panic!("expected a close frame, got {closed:?}");
    };
    assert_eq!(
        frame.code,
        tungstenite::protocol::frame::coding::CloseCode::Away
    );
    assert_eq!(frame.reason, "shutting down");
    assert!(
        ended < Duration::from_secs(5),
        "closed {ended:?} after shutdown began, not at the drain's 20 s bound"
    );
    returns_ok(served).await;
}

/// The drain waits for what the app counts in flight: a WebSocket whose handler holds
/// `Instance::count_in_flight` while the socket is open (and ignores shutdown) keeps `serve`
/// from returning after the listener closed, until the client closes it; then `serve` returns
/// long before the drain's bound.
async fn the_drain_waits_for_a_websocket_its_handler_counts(kind: AgentKind) {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite;

    let test = "the_drain_waits_for_a_websocket_its_handler_counts";
    let Some((agent, client)) = agent(kind, test).await else {
        return;
    };
    let (instance, addr, served) = serving_long_lived(&agent, &client, "/echo", |instance| {
        let instance = instance.clone();
        get(move |upgrade: WebSocketUpgrade| {
            let counted = instance.count_in_flight();
            async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    let _counted = counted;
                    while let Some(Ok(message)) = socket.recv().await {
                        if let Message::Text(text) = message {
                            if socket.send(Message::Text(text)).await.is_err() {
                                return;
                            }
                        }
                    }
                })
            }
        })
    })
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
        .await
        .unwrap();
    assert_eq!(instance.in_flight(), 1, "the handler counts the WebSocket");
    instance.shutdown();
    until(T, "the listener closed for the drain", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    // Draining: the WebSocket still serves, and holds the drain.
    socket
        .send(tungstenite::Message::text("still here"))
        .await
        .unwrap();
    let echoed = socket.next().await.expect("an echo").unwrap();
    assert_eq!(echoed, tungstenite::Message::text("still here"));
    assert!(
        !served.is_finished(),
        "serve returned while a counted WebSocket was still open"
    );
    let closing = Instant::now();
    socket.close(None).await.unwrap();
    returns_ok(served).await;
    assert!(
        closing.elapsed() < Duration::from_secs(5),
        "serve returned {:?} after the WebSocket closed, not at the drain's 20 s bound",
        closing.elapsed()
    );
    assert_eq!(instance.in_flight(), 0, "the WebSocket closed");
}

async fn registers_once_consul_comes_up_and_serves_meanwhile(kind: AgentKind) {
    let Some((mut agent, client)) =
        agent(kind, "registers_once_consul_comes_up_and_serves_meanwhile").await
    else {
        return;
    };
    agent.go_down().await;
    // The serve future carries the dispatcher current where it is made, and its registrar
    // task too, so the registrar's lines land here on any worker thread.
    let (logs, _guard) = Logs::capture(tracing::Level::DEBUG);
    let service = builder(&agent)
        .retry_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    // Serving at once although Consul is down.
    until(T, "serving", || async {
        reqwest::get(&url)
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await;
    // The backoff reaches its cap before Consul comes back: from 100 ms, doubling, the delay
    // after the sixth failed attempt is the 2 s cap (less its jitter).
    until(
        Duration::from_secs(20),
        "six failed registration attempts",
        || async { logs.count(&["registration failed"]) >= 6 },
    )
    .await;
    assert!(!instance.is_registered());
    agent.come_back().await;
    let up = Instant::now();
    until(T, "registered after Consul came up", || {
        registered(&client, instance.id())
    })
    .await;
    let took = up.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "registered {took:?} after Consul came up"
    );
    eprintln!("registered {took:?} after the agent came up");
    instance.shutdown();
    returns_ok(served).await;
}

async fn fail_fast_refuses_to_start_without_consul(kind: AgentKind) {
    let Some((mut agent, _client)) = agent(kind, "fail_fast_refuses_to_start_without_consul").await
    else {
        return;
    };
    agent.go_down().await;
    let service = builder(&agent).fail_fast(true).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = tokio::time::timeout(
        T,
        discoverable_runtime::serve(service, listener, app()).into_future(),
    )
    .await
    .expect("fail_fast returns promptly")
    .expect_err("fail_fast fails without Consul");
    assert!(err.to_string().contains("cannot reach Consul"), "{err}");
}

/// An agent still starting beside the service (up after it) gets a short chance under
/// `fail_fast`: start-up waits for it instead of failing at the first refused connection.
async fn fail_fast_waits_briefly_for_an_agent_that_is_starting(kind: AgentKind) {
    let test = "fail_fast_waits_briefly_for_an_agent_that_is_starting";
    let Some((mut agent, client)) = agent(kind, test).await else {
        return;
    };
    agent.go_down().await;
    let service = builder(&agent).fail_fast(true).build().unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    // Its first attempts are refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!served.is_finished(), "fail_fast gave up at once");
    agent.come_back().await;
    until(T, "registered once the agent is up", || {
        registered(&client, instance.id())
    })
    .await;
    instance.shutdown();
    returns_ok(served).await;
}

async fn re_registers_after_the_agent_loses_its_state(kind: AgentKind) {
    let Some((mut agent, client)) =
        agent(kind, "re_registers_after_the_agent_loses_its_state").await
    else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    agent.lose_state().await;
    let lost = Instant::now();
    registered_again_within_3_s(&client, &[instance.id()], lost, "registered again").await;
    assert_eq!(passing(&client, "svc").await, 1);
    // An operator's deregistration is healed the same way, as promptly.
    client.deregister(instance.id()).await.unwrap();
    let removed = Instant::now();
    let what = "registered after an operator removed it";
    registered_again_within_3_s(&client, &[instance.id()], removed, what).await;
    instance.shutdown();
    returns_ok(served).await;
    assert!(!registered(&client, instance.id()).await);
}

async fn shutdown_is_bounded_when_consul_hangs(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "shutdown_is_bounded_when_consul_hangs").await else {
        return;
    };
    let service = builder(&agent)
        .deregister_timeout(Duration::from_millis(300))
        .consul(
            consul::Config::builder()
                .address(agent.url())
                .request_timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    // A request that is still in flight when shutdown begins and ends after the bound.
    let app = app().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "slow"
        }),
    );
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    let request = tokio::spawn(async move {
        let answer = reqwest::get(url).await?;
        Ok::<_, reqwest::Error>((answer.status().as_u16(), answer.text().await?))
    });
    until(T, "the slow request in flight", || async {
        instance.in_flight() == 1
    })
    .await;
    agent.hang();
    let asked = Instant::now();
    instance.shutdown();
    returns_ok(served).await;
    // registrar stop (≤ bound) + deregistration (≤ bound) + grace 100 ms + drain.
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        asked.elapsed()
    );
    // The drain still happened: the request in flight got its whole answer.
    let answer = request.await.unwrap();
    assert_eq!(
        answer.as_ref().map_err(ToString::to_string),
        Ok(&(200, "slow".to_owned())),
        "the request in flight when Consul hung"
    );
}

async fn no_ghost_when_shutdown_comes_while_registration_retries(kind: AgentKind) {
    let Some((mut agent, client)) = agent(
        kind,
        "no_ghost_when_shutdown_comes_while_registration_retries",
    )
    .await
    else {
        return;
    };
    agent.go_down().await;
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (logs, _guard) = Logs::capture(tracing::Level::DEBUG);
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "a failed registration attempt", || async {
        logs.count(&["registration failed"]) >= 1
    })
    .await;
    instance.shutdown();
    returns_ok(served).await;
    agent.come_back().await;
    // Give a leftover retry every chance to land: several backoff caps.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        client.agent_services().await.unwrap().is_empty(),
        "nothing registered after shutdown"
    );
}

async fn ipv6_addresses_are_bracketed_and_checked(kind: AgentKind) {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        // A row of the README's failure table: under `CI=true` this fails instead.
        discoverable_testkit::peers::skip::<()>(
            "ipv6_addresses_are_bracketed_and_checked",
            "no IPv6 loopback on this host",
        );
        return;
    };
    let Some((agent, client)) = agent(kind, "ipv6_addresses_are_bracketed_and_checked").await
    else {
        return;
    };
    let service = builder(&agent)
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let port = listener.local_addr().unwrap().port();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    let services = client.agent_services().await.unwrap();
    assert_eq!(services[instance.id()].address, "::1");
    // The agent's own HTTP check reaches the bracketed URL: its output shows a real run.
    let url = format!("http://[::1]:{port}/health");
    until(T, "agent ran the check", || async {
        let checks = client.agent_checks().await.unwrap();
        let output = &checks[&format!("service:{}", instance.id())].output;
        output.contains(&url) && output.contains("200")
    })
    .await;
    instance.shutdown();
    returns_ok(served).await;
}

#[tokio::test]
async fn bad_service_is_a_run_time_error() {
    match Service::builder("bad name").build() {
        Err(Error::InvalidService(e)) => assert!(e.to_string().contains("`name`"), "{e}"),
        other => panic!("{other:?}"),
    }
}

use std::future::IntoFuture;

// Multi-threaded for the same reason as the dropped-future test above.
async fn a_panic_next_to_serve_still_deregisters(kind: AgentKind) {
    let Some((agent, client)) = agent(kind, "a_panic_next_to_serve_still_deregisters").await else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (c, i) = (client.clone(), id.clone());
    // User code beside the server panics once the instance is registered; unwinding drops
    // the serve future.
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = discoverable_runtime::serve(instance.clone(), listener, app()).into_future() => {}
            () = async {
                until(T, "registered", || registered(&c, &i)).await;
                panic!("user code failed after registration");
            } => {}
        }
    });
    let joined = tokio::time::timeout(T, task).await.unwrap();
    assert!(joined.unwrap_err().is_panic());
    assert!(
        !registered(&client, &id).await,
        "deregistered while the panic unwound"
    );
}

/// Waits until every one of `ids` is registered (again), and asserts that took under 3 s from
/// `since`, when they were lost.
async fn registered_again_within_3_s(client: &Client, ids: &[&str], since: Instant, what: &str) {
    for id in ids {
        until(T, what, || registered(client, id)).await;
    }
    assert!(
        since.elapsed() < Duration::from_secs(3),
        "{what}: took {:?}",
        since.elapsed()
    );
}

/// One `Service` served twice (or a clone of it) runs two instances, each with its own ID;
/// one `Instance` is served once.
async fn one_service_served_twice_registers_two_ids(kind: AgentKind) {
    let test = "one_service_served_twice_registers_two_ids";
    let Some((agent, client)) = agent(kind, test).await else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = discoverable_runtime::serve(service.clone(), l1, app());
    let first = serving.instance().clone();
    let a = tokio::spawn(serving.into_future());
    until(T, "the first registered", || {
        registered(&client, first.id())
    })
    .await;
    let serving = discoverable_runtime::serve(service, l2, app());
    let second = serving.instance().clone();
    let b = tokio::spawn(serving.into_future());
    let svc_ids = || async {
        let services = client.agent_services().await.unwrap_or_default();
        let ids: Vec<String> = services
            .values()
            .filter(|s| s.service == "svc")
            .map(|s| s.id.clone())
            .collect();
        ids
    };
    until(T, "two instances", || async { svc_ids().await.len() == 2 }).await;
    let ids = svc_ids().await;
    assert_ne!(ids[0], ids[1]);
    assert!(ids.contains(&first.id().to_owned()));
    assert!(ids.contains(&second.id().to_owned()));
    // The first instance again: refused, and nothing more is registered.
    let l3 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let again = discoverable_runtime::serve(first.clone(), l3, app()).await;
    let error = again.expect_err("one instance served twice");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("is served already"), "{error}");
    assert_eq!(svc_ids().await.len(), 2);
    first.shutdown();
    returns_ok(a).await;
    // The second instance stays until its own shutdown.
    assert!(registered(&client, second.id()).await);
    b.abort();
}

/// The instances of one service in one process hold one blocking read on their
/// registrations between them, not one each (Consul allows a client address 200 connections
/// by default). All of them still register again at once when the agent loses its state, and
/// when the instance holding the read stops, another takes it over.
async fn instances_of_one_service_share_one_blocking_read(kind: AgentKind) {
    let test = "instances_of_one_service_share_one_blocking_read";
    let Some((mut agent, client)) = agent(kind, test).await else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let mut instances = Vec::new();
    let serve = |instance: Instance| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let served = discoverable_runtime::serve(instance.clone(), listener, app()).into_future();
        (instance, tokio::spawn(served))
    };
    // The first holds the read: it is the only one yet.
    instances.push(serve(service.new_instance()).await);
    until(T, "the first registered", || {
        registered(&client, instances[0].0.id())
    })
    .await;
    agent.parked(1).await;
    for _ in 1..5 {
        instances.push(serve(service.new_instance()).await);
    }
    for (instance, _) in &instances {
        until(T, "all five registered", || {
            registered(&client, instance.id())
        })
        .await;
    }
    agent.parked(1).await;

    agent.lose_state().await;
    let lost = Instant::now();
    let ids: Vec<&str> = instances.iter().map(|(i, _)| i.id()).collect();
    registered_again_within_3_s(&client, &ids, lost, "all five registered again").await;
    agent.parked(1).await;

    // The first stops, then three more: the last one left holds the read, so an operator's
    // deregistration of it is healed as promptly as a single instance's (one that does not
    // hold it reads only every minute).
    let (last, last_served) = instances.pop().unwrap();
    for (instance, served) in instances {
        instance.shutdown();
        returns_ok(served).await;
    }
    client.deregister(last.id()).await.unwrap();
    let removed = Instant::now();
    let what = "the last registered after an operator removed it";
    registered_again_within_3_s(&client, &[last.id()], removed, what).await;
    agent.parked(1).await;
    last.shutdown();
    returns_ok(last_served).await;
    assert_eq!(passing(&client, "svc").await, 0);
}

discoverable_testkit::against_both_agents!(
    instances_of_one_service_share_one_blocking_read,
    one_service_served_twice_registers_two_ids,
    instance_shutdown_takes_the_signal_path,
    user_shutdown_future_and_connect_info_make_service,
    into_make_service_works,
    dropping_the_serve_future_still_deregisters,
    registers_once_consul_comes_up_and_serves_meanwhile,
    fail_fast_refuses_to_start_without_consul,
    fail_fast_waits_briefly_for_an_agent_that_is_starting,
    re_registers_after_the_agent_loses_its_state,
    shutdown_is_bounded_when_consul_hangs,
    no_ghost_when_shutdown_comes_while_registration_retries,
    ipv6_addresses_are_bracketed_and_checked,
    a_panic_next_to_serve_still_deregisters,
    a_stream_ends_cleanly_with_a_last_event_when_shutdown_begins,
    a_websocket_closes_cleanly_when_shutdown_begins,
    the_drain_waits_for_a_websocket_its_handler_counts,
);

/// An agent of `kind` and a client for it on a multi-threaded runtime of their own, beside
/// the runtimes a test builds for its serve calls; `None`: the test skips, saying why.
fn agent_beside(kind: AgentKind, test: &str) -> Option<(tokio::runtime::Runtime, Agent, Client)> {
    let infra = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (agent, client) = infra.block_on(agent(kind, test))?;
    Some((infra, agent, client))
}

/// A current-thread runtime, as `#[tokio::main(flavor = "current_thread")]` builds.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// On a current-thread runtime, a serve future dropped just before the runtime itself goes
/// (`main` returning after a `select!` the serve call lost, or with the serve call still in a
/// spawned task) deregisters its instance before the drop returns: the runtime gets no chance
/// to run a task for it afterwards.
fn a_dropped_serve_future_deregisters_on_a_current_thread_runtime(kind: AgentKind) {
    let test = "a_dropped_serve_future_deregisters_on_a_current_thread_runtime";
    // The agent and the test's own reads live on a runtime of their own, which outlives the
    // current-thread runtimes the serve calls run on.
    let Some((infra, agent, client)) = agent_beside(kind, test) else {
        return;
    };
    // 1. The serve call loses a select!, and `main` returns at once.
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let rt = current_thread();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        tokio::select! {
            _ = discoverable_runtime::serve(instance.clone(), listener, app()).into_future() => {
                panic!("serve returned on its own")
            }
            () = until(T, "registered", || registered(&client, &id)) => {}
        }
    });
    drop(rt);
    assert!(
        !infra.block_on(registered(&client, &id)),
        "select!: still registered after the runtime went"
    );
    // 2. The serve call runs in a spawned task when the runtime goes.
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let rt = current_thread();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
        until(T, "registered", || registered(&client, &id)).await;
    });
    drop(rt);
    assert!(
        !infra.block_on(registered(&client, &id)),
        "spawned: still registered after the runtime went"
    );
    drop(agent);
}

/// Tests that build their own runtimes.
mod one_worker {
    use discoverable_testkit::AgentKind;

    #[test]
    fn dev_agent_a_dropped_serve_future_hands_its_workers_other_tasks_over() {
        super::a_dropped_serve_future_hands_its_workers_other_tasks_over(AgentKind::Dev);
    }

    #[test]
    fn real_consul_a_dropped_serve_future_hands_its_workers_other_tasks_over() {
        super::a_dropped_serve_future_hands_its_workers_other_tasks_over(AgentKind::RealConsul);
    }

    #[test]
    fn dev_agent_a_dropped_serve_future_deregisters_on_a_current_thread_runtime() {
        super::a_dropped_serve_future_deregisters_on_a_current_thread_runtime(AgentKind::Dev);
    }

    #[test]
    fn real_consul_a_dropped_serve_future_deregisters_on_a_current_thread_runtime() {
        super::a_dropped_serve_future_deregisters_on_a_current_thread_runtime(
            AgentKind::RealConsul,
        );
    }
}

/// A real Consul keeping its state in a data directory across restarts; `None`: the test
/// skips, saying why.
fn persistent_consul(test: &str) -> Option<discoverable_testkit::Consul> {
    let peers = discoverable_testkit::peers::require(test)?;
    let options = discoverable_testkit::ConsulOptions {
        persistent: true,
        ..Default::default()
    };
    Some(tokio::task::block_in_place(|| {
        discoverable_testkit::Consul::start(&peers, options)
    }))
}

/// A service checked every minute, so that the agent's own first run of the check is far off,
/// retrying quickly.
fn checked_every_minute(cfg: consul::Config) -> Service {
    Service::builder("svc")
        .consul(cfg)
        .interval(Duration::from_secs(60))
        .grace_period(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

/// The status of instance `id`'s check in the agent's view.
async fn check_status(client: &Client, id: &str) -> Option<consul::CheckStatus> {
    let checks = client.agent_checks().await.ok()?;
    checks.get(&format!("service:{id}")).map(|c| c.status)
}

/// Waits for instance `id`'s check to pass, and asserts it did within 3 s of `back` (when the
/// agent answered again): the registrar put it right, not the agent's first run of the check.
async fn passing_soon_after(client: &Client, id: &str, back: Instant) {
    until(T, "passing again after the restart", || async {
        check_status(client, id).await == Some(consul::CheckStatus::Passing)
    })
    .await;
    let took = back.elapsed();
    eprintln!("passing {took:?} after the agent came back with its state");
    assert!(
        took < Duration::from_secs(3),
        "critical for {took:?}: the agent's first check run decided, not the registrar"
    );
}

/// A proxy in front of the agent at `upstream` that fails every read of the instance's watch
/// until the flag it returns is set.
async fn proxy_failing_the_watch(upstream: &str) -> (FakeConsul, Arc<AtomicBool>) {
    let proxy = FakeConsul::proxy(upstream).await;
    let restarted = Arc::new(AtomicBool::new(false));
    let done = restarted.clone();
    proxy.set(move |kind, _| {
        if kind == Kind::Watch && !done.load(Ordering::SeqCst) {
            Answer::status(500, "the agent is restarting")
        } else {
            Answer::Forward
        }
    });
    (proxy, restarted)
}

/// A Consul agent that restarts keeping its state restores every check as critical until the
/// check's first run, at a random point within its interval. The registrar notices the agent
/// answering again and registers once more, so the instance is passing (routable) at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_restarted_keeping_its_state_shows_the_instance_passing_at_once() {
    let test = "real_consul_restarted_keeping_its_state_shows_the_instance_passing_at_once";
    let Some(mut consul) = persistent_consul(test) else {
        return;
    };
    let cfg = consul::Config::builder()
        .address(consul.url())
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = Client::new(cfg.clone()).unwrap();
    let service = checked_every_minute(cfg);
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    assert_eq!(
        check_status(&client, instance.id()).await,
        Some(consul::CheckStatus::Passing)
    );

    tokio::task::block_in_place(|| consul.restart(true));
    passing_soon_after(&client, instance.id(), Instant::now()).await;
    instance.shutdown();
    returns_ok(served).await;
}

/// The agent restarts keeping its state before the instance's watch has once seen the
/// registration (its first read failed): when the agent answers again, the check it restored
/// as critical is still put right at once, not left to the agent's first run of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_restarted_before_the_watch_saw_the_instance_shows_it_passing_at_once() {
    let test = "real_consul_restarted_before_the_watch_saw_the_instance_shows_it_passing_at_once";
    let Some(mut consul) = persistent_consul(test) else {
        return;
    };
    // The instance talks to Consul through a proxy that fails its watch until the restart.
    let (proxy, restarted) = proxy_failing_the_watch(&consul.url()).await;
    let through_proxy = consul::Config::builder()
        .address(proxy.url.clone())
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = Client::new(
        consul::Config::builder()
            .address(consul.url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let service = checked_every_minute(through_proxy);
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    until(T, "the watch's first read failed", || async {
        proxy.count(Kind::Watch) >= 1
    })
    .await;

    tokio::task::block_in_place(|| consul.restart(true));
    restarted.store(true, Ordering::SeqCst);
    passing_soon_after(&client, instance.id(), Instant::now()).await;
    instance.shutdown();
    returns_ok(served).await;
}

/// The agent takes the registration and goes down before its answer reaches the instance,
/// then comes back keeping its state, the check restored as critical. The registration retried
/// after the restart lands on that check and keeps its status; the instance is put right at
/// once, not left critical until the agent's own first run of the check (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_restarted_while_the_registrations_answer_was_lost_shows_it_passing_at_once() {
    let test =
        "real_consul_restarted_while_the_registrations_answer_was_lost_shows_it_passing_at_once";
    let Some(mut consul) = persistent_consul(test) else {
        return;
    };
    let proxy = FakeConsul::proxy(&consul.url()).await;
    let restarted = Arc::new(AtomicBool::new(false));
    let (done, lost) = (restarted.clone(), Arc::new(AtomicBool::new(false)));
    proxy.set(move |kind, _| match kind {
        // The first registration reaches the agent; its answer does not come back.
        Kind::Register if !lost.swap(true, Ordering::SeqCst) => Answer::ForwardDroppingTheReply,
        Kind::Register | Kind::Watch if !done.load(Ordering::SeqCst) => {
            Answer::status(500, "the agent is restarting")
        }
        _ => Answer::Forward,
    });
    let client = Client::new(
        consul::Config::builder()
            .address(consul.url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let service = checked_every_minute(
        consul::Config::builder()
            .address(proxy.url.clone())
            .request_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    // The agent has answered the registration (and kept it on disk) once the proxy has
    // passed the lost answer on.
    until(T, "the registration answered, its answer lost", || async {
        proxy
            .calls()
            .iter()
            .any(|c| c.kind == Kind::Register && c.status == 502)
    })
    .await;
    assert!(
        registered(&client, instance.id()).await,
        "the agent holds it"
    );
    assert!(!instance.is_registered(), "its answer was lost");

    tokio::task::block_in_place(|| consul.restart(true));
    // The agent restores the instance from its data directory, the check as critical (on a
    // busy machine a moment after its API answers).
    let restored = until(T, "the instance restored", || async {
        check_status(&client, instance.id()).await
    })
    .await;
    assert_eq!(
        restored,
        consul::CheckStatus::Critical,
        "the agent restores the check as critical"
    );
    restarted.store(true, Ordering::SeqCst);
    passing_soon_after(&client, instance.id(), Instant::now()).await;
    instance.shutdown();
    returns_ok(served).await;
}

/// The agent restarts losing its state before the instance's watch has once seen the
/// registration: the watch's next read finds nothing, which is a lost registration (registered
/// again at once), not one the agent never showed (which points at a load balancer).
#[tokio::test(flavor = "current_thread")]
async fn lost_before_the_watch_saw_the_instance_registers_again_at_once() {
    let test = "lost_before_the_watch_saw_the_instance_registers_again_at_once";
    let Some(mut agent) = Agent::start(AgentKind::Dev, test, None).await else {
        return;
    };
    let (logs, _guard) = Logs::capture(tracing::Level::INFO);
    let (proxy, restarted) = proxy_failing_the_watch(&agent.url()).await;
    let client = Client::new(config(&agent)).unwrap();
    let service = Service::builder("svc")
        .consul(
            consul::Config::builder()
                .address(proxy.url.clone())
                .request_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .grace_period(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app()).into_future());
    until(T, "registered", || registered(&client, instance.id())).await;
    until(T, "the watch's first read failed", || async {
        proxy.count(Kind::Watch) >= 1
    })
    .await;

    agent.lose_state().await;
    restarted.store(true, Ordering::SeqCst);
    until(T, "registered again", || registered(&client, instance.id())).await;
    let text = logs.text();
    assert!(
        text.contains("Consul lost this instance's registration; registering again"),
        "{text}"
    );
    assert!(!text.contains("load balancer"), "{text}");
    instance.shutdown();
    returns_ok(served).await;
}

/// On a current-thread runtime a dropped serve future waits for its deregistration (its only
/// thread cannot hand work over), bounded: with the agent answering in a second the drop takes
/// about that and the instance is gone when it returns; with the agent hanging the drop gives
/// up at its 2 s bound.
#[test]
fn dropping_the_serve_future_on_a_current_thread_runtime_waits_boundedly() {
    let test = "dropping_the_serve_future_on_a_current_thread_runtime_waits_boundedly";
    // The agent on a runtime of its own, so it answers while the serve call's thread waits.
    let Some((infra, agent, client)) = agent_beside(AgentKind::Dev, test) else {
        return;
    };
    let rt = current_thread();
    for (delay, what) in [
        (Duration::from_secs(1), "slow"),
        (Duration::from_secs(60), "hanging"),
    ] {
        let service = builder(&agent).build().unwrap();
        let instance = service.new_instance();
        let id = instance.id().to_owned();
        let took = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut serving = Box::pin(
                discoverable_runtime::serve(instance.clone(), listener, app()).into_future(),
            );
            tokio::select! {
                _ = &mut serving => panic!("serve returned on its own"),
                () = until(T, "registered", || registered(&client, &id)) => {}
            }
            agent.dev().unwrap().faults().set_delay(Some(delay));
            let dropping = Instant::now();
            drop(serving);
            dropping.elapsed()
        });
        agent.dev().unwrap().faults().set_delay(None);
        eprintln!("{what} agent: the drop took {took:?}");
        assert!(
            took < Duration::from_millis(2500),
            "{what} agent: the drop waited {took:?}, past its 2 s bound"
        );
        if delay < Duration::from_secs(2) {
            assert!(
                took >= delay,
                "{what} agent: the drop did not wait ({took:?})"
            );
            assert!(
                !infra.block_on(registered(&client, &id)),
                "{what} agent: deregistered by the time the drop returned"
            );
        }
    }
}

/// What the app sees of a connection: whether `TCP_NODELAY` was on when it was accepted.
#[derive(Clone, Copy)]
struct NoDelay(bool);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for NoDelay
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        NoDelay(stream.io().nodelay().unwrap())
    }
}

/// Forty instances of one service stop at once through their shared client, against an agent
/// that takes a second to answer: 32 deregistrations are sent, and 8 wait for a turn beyond
/// the serve calls' bound. Those 8 still reach the agent once the first answers come.
#[tokio::test]
async fn deregistrations_that_wait_for_a_turn_still_reach_the_agent() {
    let test = "deregistrations_that_wait_for_a_turn_still_reach_the_agent";
    let Some((agent, client)) = agent(AgentKind::Dev, test).await else {
        return;
    };
    let service = builder(&agent)
        .deregister_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut served = Vec::new();
    for _ in 0..40 {
        let instance = service.new_instance();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serve = discoverable_runtime::serve(instance.clone(), listener, app());
        served.push((instance, tokio::spawn(serve.into_future())));
    }
    for (instance, _) in &served {
        until(T, "all forty registered", || {
            registered(&client, instance.id())
        })
        .await;
    }
    let faults = agent.dev().expect("the dev agent").faults();
    faults.set_delay(Some(Duration::from_secs(1)));
    let stopping = Instant::now();
    for (instance, _) in &served {
        instance.shutdown();
    }
    for (_, serve) in served {
        returns_ok(serve).await;
    }
    // The serve calls waited at most their bound, not for the agent.
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "{:?}",
        stopping.elapsed()
    );
    faults.set_delay(None);
    until(T, "none left registered", || async {
        client
            .agent_services()
            .await
            .is_ok_and(|services| services.values().all(|s| s.service != "svc"))
    })
    .await;
}

/// HTTP/2's small frames must not wait for the peer's delayed ACK: accepted connections have
/// `TCP_NODELAY` set before the app's make-service sees them.
#[tokio::test]
async fn accepted_connections_have_nodelay() {
    let Some((agent, client)) = agent(AgentKind::Dev, "accepted_connections_have_nodelay").await
    else {
        return;
    };
    let service = builder(&agent).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/",
            get(|ConnectInfo(NoDelay(on)): ConnectInfo<NoDelay>| async move { on.to_string() }),
        )
        .into_make_service_with_connect_info::<NoDelay>();
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());
    until(T, "registered", || registered(&client, &id)).await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().text().await.unwrap(),
        "true"
    );
    instance.shutdown();
    returns_ok(served).await;
}
