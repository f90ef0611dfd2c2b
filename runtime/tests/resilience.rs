//! What a running instance does when Consul misbehaves: answers 5xx, answers slowly, answers
//! garbage, refuses the registration (403, 400), goes away during shutdown; the TTL
//! heartbeat; many instances in one process; and no growth in tasks or memory over a
//! thousand failed calls.
//!
//! The tests that need an agent run against the dev agent (`dev_agent::<name>`, faults from
//! its own switches) and a real Consul (`real_consul::<name>`, faults from a `FaultProxy` in
//! front of it that the service talks through). A fake on loopback (`support/fake_consul.rs`)
//! stands in where the test needs answers Consul never gives or needs to count what reaches
//! it. Log lines are captured per test thread (`support/logs.rs`) to check that each distinct
//! cause is logged once, so the tests that read them run on a current-thread runtime.
//!
//! This binary counts allocated bytes with its own global allocator. The test that reads the
//! count takes [`EXCLUSIVE`] for writing so no other test of this binary runs meanwhile; all
//! others take it for reading and run in parallel with each other.

#[path = "support/fake_consul.rs"]
mod fake_consul;
#[path = "support/logs.rs"]
mod logs;

use discoverable_testkit::until;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use discoverable_devagent::{Config as AgentConfig, DevAgent};
use discoverable_runtime::consul::{self, Client, HealthQuery};
use discoverable_runtime::{Service, ServiceBuilder};
use discoverable_testkit::{Agent, AgentKind, FaultProxy};
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tracing::Level;

use fake_consul::{Answer, FakeConsul, Kind};
use logs::Logs;

// ---------------------------------------------------------------------------------------------
// Allocation counting
// ---------------------------------------------------------------------------------------------

/// Bytes currently allocated by this process (allocations minus frees).
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held for writing by the test that measures memory, for reading by every other test.
static EXCLUSIVE: RwLock<()> = RwLock::const_new(());

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const T: Duration = Duration::from_secs(15);

fn consul_at(url: &str, request_timeout: Duration) -> consul::Config {
    consul::Config::builder()
        .address(url)
        .request_timeout(request_timeout)
        .build()
        .unwrap()
}

fn builder(name: &str, consul_url: &str) -> ServiceBuilder {
    Service::builder(name)
        .prefix("/svc")
        .consul(consul_at(consul_url, Duration::from_secs(2)))
        .grace_period(Duration::from_millis(50))
        .deregister_timeout(Duration::from_secs(1))
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "slow"
        }),
    )
}

/// Serves `service` on 127.0.0.1:0 in a task; returns the task and the base URL.
async fn start(
    service: impl Into<discoverable_runtime::Instance>,
) -> (tokio::task::JoinHandle<std::io::Result<()>>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(discoverable_runtime::serve(service, listener, app()).into_future());
    (served, url)
}

async fn stop(
    instance: &discoverable_runtime::Instance,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    instance.shutdown();
    tokio::time::timeout(T, served)
        .await
        .expect("serve returns after shutdown")
        .expect("serve did not panic")
        .expect("serve returned Ok");
}

async fn serving(url: &str) -> bool {
    reqwest::get(url)
        .await
        .map(|r| r.status() == 200)
        .unwrap_or(false)
}

/// The agent a test runs against and its faults: the dev agent's own switches, or, for a real
/// Consul (which has none), a [`FaultProxy`] in front of it that the service talks through.
struct Target {
    agent: Agent,
    proxy: Option<FaultProxy>,
}

impl Target {
    /// An agent of `kind` (ACLs on with `token`); `None`: the test skips, saying why.
    async fn start(kind: AgentKind, test: &str, token: Option<&str>) -> Option<Target> {
        Some(Target::around(Agent::start(kind, test, token).await?))
    }

    fn around(agent: Agent) -> Target {
        let proxy = match agent.kind() {
            AgentKind::Dev => None,
            AgentKind::RealConsul => {
                let addr = agent.url().trim_start_matches("http://").parse().unwrap();
                Some(FaultProxy::start(addr))
            }
        };
        Target { agent, proxy }
    }

    /// Where the service under test sends its requests.
    fn url(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.agent.url(), FaultProxy::url)
    }

    /// A client of the agent itself, past any fault, for the test's own reads.
    fn client(&self) -> Client {
        Client::new(consul_at(&self.agent.url(), Duration::from_secs(2))).unwrap()
    }

    /// The next `n` requests answer 500 (`u32::MAX`: all, until reset with 0).
    fn fail_next(&self, n: u32) {
        match &self.proxy {
            Some(proxy) => proxy.fail_next(n),
            None => self.agent.dev().unwrap().faults().fail_next(n),
        }
    }

    /// Every answer waits `delay` (`None`: no delay).
    fn set_delay(&self, delay: Option<Duration>) {
        match &self.proxy {
            Some(proxy) => proxy.set_delay(delay),
            None => self.agent.dev().unwrap().faults().set_delay(delay),
        }
    }

    /// Connections refused (`true`) or accepted again; a real Consul keeps running and keeps
    /// its state behind the proxy, as the dev agent does.
    async fn set_unavailable(&self, on: bool) {
        match &self.proxy {
            Some(proxy) => proxy.set_refusing(on).await,
            None => self.agent.dev().unwrap().faults().set_unavailable(on).await,
        }
    }

    /// Requests for `path` that were answered `status`: the dev agent's request log, or what
    /// the proxy passed back.
    fn requests(&self, logs: &Logs, path: &str, status: u16) -> usize {
        match &self.proxy {
            Some(proxy) => proxy.count(path, status),
            None => logs.agent_requests(path, status),
        }
    }
}

/// Calls of `kind` the fake gets within `window`.
async fn calls_within(fake: &FakeConsul, kind: Kind, window: Duration) -> usize {
    let before = fake.count(kind);
    tokio::time::sleep(window).await;
    fake.count(kind) - before
}

/// The problems (WARN/ERROR lines) containing `part`.
fn problems_with(logs: &Logs, part: &str) -> usize {
    logs.problems().iter().filter(|l| l.contains(part)).count()
}

// ---------------------------------------------------------------------------------------------
// 1. 5xx, slow, garbage: retried, healed, each cause logged once
// ---------------------------------------------------------------------------------------------

async fn consul_answering_5xx_is_retried_logged_once_and_heals(kind: AgentKind) {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    let Some(target) = Target::start(
        kind,
        "consul_answering_5xx_is_retried_logged_once_and_heals",
        None,
    )
    .await
    else {
        return;
    };
    // Every request fails until the switch is reset.
    target.fail_next(u32::MAX);
    // Default backoff (100 ms doubling to the 2 s cap, with jitter): the figure is the
    // default's.
    let service = builder("svc", &target.url()).build().unwrap();
    let instance = service.new_instance();
    let (served, url) = start(instance.clone()).await;
    assert!(serving(&url).await, "serves while Consul fails");
    const REGISTER: &str = "/v1/agent/service/register";
    // 100+200+400+800+1600 ms: the sixth attempt comes after the backoff reached its cap.
    until(T, "six failed registrations", || async {
        target.requests(&logs, REGISTER, 500) >= 6
    })
    .await;
    assert!(!instance.is_registered());
    target.fail_next(0);
    let cleared = Instant::now();
    until(T, "registered once Consul answers again", || async {
        instance.is_registered()
    })
    .await;
    let took = cleared.elapsed();
    eprintln!("5xx: registered {took:?} after Consul answered again");
    // The cap is 2 s and the jitter adds up to as much again (`retry::backoff`), so the
    // attempt after the fault cleared comes at most 4 s later.
    assert!(took < Duration::from_secs(5), "took {took:?}");

    let client = target.client();
    // A real Consul's health endpoint reads the catalog, which its agent syncs to right after
    // the registration: a moment later, not at once.
    until(T, "registered and passing", || async {
        client
            .health_service("svc", &HealthQuery::default())
            .await
            .is_ok_and(|p| p.value.len() == 1)
    })
    .await;

    let failures = target.requests(&logs, REGISTER, 500);
    assert!(failures >= 6);
    assert_eq!(
        problems_with(&logs, "500"),
        1,
        "one log line for {failures} failures of one cause:\n{}",
        logs.text()
    );
    assert_eq!(logs.problems().len(), 1, "{}", logs.text());
    assert_eq!(logs.count(&["registration works again"]), 1);

    stop(&instance, served).await;
    assert!(client.agent_services().await.unwrap().is_empty());
}

async fn consul_answering_too_slowly_is_retried_logged_once_and_heals(kind: AgentKind) {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::DEBUG);
    let Some(target) = Target::start(
        kind,
        "consul_answering_too_slowly_is_retried_logged_once_and_heals",
        None,
    )
    .await
    else {
        return;
    };
    // Every answer comes after the client's request bound.
    target.set_delay(Some(Duration::from_millis(1500)));
    let service = builder("svc", &target.url())
        .consul(consul_at(&target.url(), Duration::from_millis(300)))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let (served, url) = start(instance.clone()).await;
    assert!(serving(&url).await, "serves while Consul is slow");
    let attempts = || logs.count(&["request to Consul", "path=/v1/agent/service/register"]);
    until(T, "four timed-out registrations", || async {
        attempts() >= 4
    })
    .await;
    assert!(!instance.is_registered());
    target.set_delay(None);
    let cleared = Instant::now();
    until(T, "registered once Consul is quick again", || async {
        instance.is_registered()
    })
    .await;
    let took = cleared.elapsed();
    eprintln!(
        "slow: registered {took:?} after Consul was quick again ({} attempts)",
        attempts()
    );
    // One pending attempt may still wait out its 300 ms bound, then at most the 500 ms cap
    // doubled by jitter.
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(
        problems_with(&logs, "did not answer within 300ms"),
        1,
        "{}",
        logs.text()
    );
    assert_eq!(logs.problems().len(), 1, "{}", logs.text());

    let client = target.client();
    until(T, "the agent holds the registration", || async {
        client
            .agent_services()
            .await
            .map(|s| s.contains_key(instance.id()))
            .unwrap_or(false)
    })
    .await;
    stop(&instance, served).await;
    assert!(client.agent_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn garbage_from_consul_is_retried_logged_once_per_cause_and_never_spins() {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    // Phase 1: a proxy's HTML error page instead of Consul's answer.
    let fake = FakeConsul::start(true, |kind, _| match kind {
        Kind::Register => Answer::Reply(
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            vec![("content-type", "text/html".into())],
        ),
        _ => Answer::status(404, "unexpected"),
    })
    .await;
    let service = builder("svc", &fake.url)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(40))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let (served, url) = start(instance.clone()).await;
    assert!(serving(&url).await);
    until(T, "failed registrations", || async {
        fake.count(Kind::Register) >= 5
    })
    .await;
    assert!(!instance.is_registered());

    // Phase 2: registration accepted (Consul's answer has no body; a garbage one is ignored),
    // but the watch on the registration gets truncated JSON.
    fake.set(|kind, _| match kind {
        Kind::Register => Answer::status(200, "}{ not json"),
        Kind::Watch => Answer::status(200, r#"{"ID": "svc-"#),
        _ => Answer::status(200, ""),
    });
    until(T, "registered", || async { instance.is_registered() }).await;
    let watched = fake.count(Kind::Watch);
    until(T, "watches on truncated JSON", || async {
        fake.count(Kind::Watch) >= watched + 5
    })
    .await;

    // Phase 3: JSON of the wrong shape.
    fake.set(|kind, _| match kind {
        Kind::Watch => Answer::status(200, "42"),
        _ => Answer::status(200, ""),
    });
    let watched = fake.count(Kind::Watch);
    until(T, "watches on a JSON number", || async {
        fake.count(Kind::Watch) >= watched + 5
    })
    .await;

    // Phase 4: an object with none of the fields, so no ContentHash to block on. The watch
    // must not turn into a busy loop: at most a call or two per backoff step.
    fake.set(|kind, _| match kind {
        Kind::Watch => Answer::status(200, r#"{"Unexpected": true}"#),
        _ => Answer::status(200, ""),
    });
    // 5 ms doubling to 40 ms (with jitter): about 15 steps in 500 ms; a busy loop makes
    // hundreds of calls.
    let window = Duration::from_millis(500);
    let calls = calls_within(&fake, Kind::Watch, window).await;
    assert!(
        calls <= 40,
        "{calls} watch calls in {window:?} on answers without a hash"
    );

    // Phase 5: Consul's answer, but at once although asked to wait for a change.
    let body = format!(r#"{{"ID": "{id}", "Service": "svc", "Port": 1, "ContentHash": "abc"}}"#);
    let answer = move || {
        Answer::Reply(
            200,
            body.clone(),
            vec![("x-consul-contenthash", "abc".into())],
        )
    };
    let a = answer.clone();
    fake.set(move |kind, _| match kind {
        Kind::Watch => a(),
        _ => Answer::status(200, ""),
    });
    let calls = calls_within(&fake, Kind::Watch, window).await;
    assert!(
        calls <= 80,
        "{calls} watch calls in {window:?} on answers that do not block"
    );

    // Phase 6: registration accepted, but the agent does not show it (as behind a load
    // balancer over several agents): registering again must back off too.
    fake.set(|kind, _| match kind {
        Kind::Watch => Answer::status(404, "unknown service ID"),
        _ => Answer::status(200, ""),
    });
    let calls = calls_within(&fake, Kind::Register, window).await;
    assert!(
        calls <= 40,
        "{calls} registrations in {window:?} that the agent does not show"
    );

    // Phase 7: Consul's answer, blocking on the hash.
    let blocked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = blocked.clone();
    fake.set(move |kind, path| match kind {
        Kind::Watch if path.contains("hash=") => {
            b.fetch_add(1, Ordering::SeqCst);
            Answer::Hang
        }
        Kind::Watch => answer(),
        _ => Answer::status(200, ""),
    });
    until(T, "a watch blocks on the hash", || async {
        blocked.load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(instance.is_registered());
    let settled = fake.count(Kind::Watch);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.count(Kind::Watch), settled, "the blocking watch stays");

    // One line per distinct cause.
    for cause in [
        "502 Bad Gateway",
        "EOF while parsing",
        "invalid type: integer `42`, expected struct AgentService",
        "has no ContentHash",
        "unchanged ContentHash",
        "lost this instance's registration",
        "does not show it",
    ] {
        assert_eq!(problems_with(&logs, cause), 1, "{cause}:\n{}", logs.text());
    }
    assert_eq!(logs.problems().len(), 7, "{}", logs.text());

    stop(&instance, served).await;
    assert_eq!(fake.count(Kind::Deregister), 1);
}

/// An agent that is stopping answers its blocking reads at once, with the hash they were to
/// wait on: once is no fault (the next read goes to the agent that comes back, or fails), so
/// it is not logged; only a Consul that keeps doing it is (the garbage test above).
#[tokio::test]
async fn one_blocking_read_answered_at_once_is_not_reported() {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    let fake = FakeConsul::start(true, |_, _| Answer::status(200, "")).await;
    let service = builder("svc", &fake.url).build().unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let body = format!(r#"{{"ID": "{id}", "Service": "svc", "Port": 1, "ContentHash": "abc"}}"#);
    let answered_at_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = answered_at_once.clone();
    fake.set(move |kind, path| match kind {
        // The first blocking read is answered at once, unchanged, as by an agent stopping;
        // the rest block.
        Kind::Watch if path.contains("hash=") => {
            if once.swap(true, Ordering::SeqCst) {
                Answer::Hang
            } else {
                Answer::Reply(
                    200,
                    body.clone(),
                    vec![("x-consul-contenthash", "abc".into())],
                )
            }
        }
        Kind::Watch => Answer::Reply(
            200,
            body.clone(),
            vec![("x-consul-contenthash", "abc".into())],
        ),
        _ => Answer::status(200, ""),
    });
    let (served, _url) = start(instance.clone()).await;
    // The third read arrives only once the registrar has handled the second's answer.
    until(T, "the read answered at once, and the next one", || async {
        answered_at_once.load(Ordering::SeqCst) && fake.arrivals(Kind::Watch).len() >= 3
    })
    .await;
    assert!(instance.is_registered());
    assert_eq!(logs.problems(), Vec::<String>::new(), "{}", logs.text());
    stop(&instance, served).await;
}

// ---------------------------------------------------------------------------------------------
// 1b. A thousand failed calls: no growth in tasks or memory
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_thousand_failed_calls_grow_neither_tasks_nor_memory() {
    let _exclusive = EXCLUSIVE.write().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    let fake = FakeConsul::start(false, |_, _| {
        Answer::status(500, "rpc error making call: No cluster leader")
    })
    .await;
    let service = builder("svc", &fake.url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let (served, url) = start(instance.clone()).await;
    assert!(serving(&url).await);
    let metrics = tokio::runtime::Handle::current().metrics();

    until(T, "100 failed calls", || async {
        fake.count(Kind::Register) >= 100
    })
    .await;
    let (tasks_100, bytes_100) = (metrics.num_alive_tasks(), LIVE_BYTES.load(Ordering::SeqCst));
    until(Duration::from_secs(60), "1000 failed calls", || async {
        fake.count(Kind::Register) >= 1000
    })
    .await;
    let (tasks_1000, bytes_1000) = (metrics.num_alive_tasks(), LIVE_BYTES.load(Ordering::SeqCst));
    let growth = bytes_1000 - bytes_100;
    eprintln!(
        "1000 failed calls: tasks {tasks_100} -> {tasks_1000}, live bytes {bytes_100} -> {bytes_1000} ({growth:+})"
    );
    // A connection or request in flight at either reading holds a task and buffers for a
    // moment: wait until they are back to the level after 100 calls, which a task or 72 bytes
    // kept per failed call would never reach.
    until(T, "tasks back to their level after 100 calls", || async {
        metrics.num_alive_tasks() <= tasks_100
    })
    .await;
    until(
        T,
        "live heap within 64 KiB of its level after 100 calls",
        || async { LIVE_BYTES.load(Ordering::SeqCst).saturating_sub(bytes_100) < 64 * 1024 },
    )
    .await;
    assert_eq!(problems_with(&logs, "500"), 1, "{}", logs.text());
    assert_eq!(logs.problems().len(), 1, "{}", logs.text());

    stop(&instance, served).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Rejected registrations (403, 400): one clear line, then slow retries
// ---------------------------------------------------------------------------------------------

async fn permission_denied_is_logged_once_with_the_fix_and_not_retried_at_full_speed(
    kind: AgentKind,
) {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    const TOKEN: &str = "b1gs3cr3t-management-token";
    // ACLs on, default deny.
    let Some(target) = Target::start(
        kind,
        "permission_denied_is_logged_once_with_the_fix_and_not_retried_at_full_speed",
        Some(TOKEN),
    )
    .await
    else {
        return;
    };
    // No token, and a backoff that would retry hundreds of times a second.
    let service = builder("svc", &target.url())
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let (served, url) = start(instance.clone()).await;
    const REGISTER: &str = "/v1/agent/service/register";
    until(T, "the first registration denied", || async {
        target.requests(&logs, REGISTER, 403) >= 1
    })
    .await;
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let attempts = target.requests(&logs, REGISTER, 403);
    eprintln!("403: {attempts} registration attempts in the first {window:?}");
    assert!(
        attempts <= 2,
        "{attempts} denied registrations within {window:?}"
    );
    assert!(serving(&url).await, "serves although Consul refuses it");
    assert!(!instance.is_registered());

    let problems = logs.problems();
    assert_eq!(problems.len(), 1, "{}", logs.text());
    let line = &problems[0];
    assert!(line.contains("ERROR"), "{line}");
    for part in [
        "403",
        "Permission denied",
        "CONSUL_HTTP_TOKEN",
        "service:write",
    ] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
    assert!(
        !logs.text().contains(TOKEN),
        "the token never shows in a log line"
    );

    // Shutdown does not wait for the slow retry.
    let asked = Instant::now();
    stop(&instance, served).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_registration_consul_rejects_with_400_is_logged_once_and_not_retried_at_full_speed() {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    const REASON: &str = "Invalid check: TTL must be > 0 for TTL checks";
    let fake = FakeConsul::start(true, |kind, _| match kind {
        Kind::Register => Answer::status(400, REASON),
        _ => Answer::status(404, "unknown service ID"),
    })
    .await;
    let service = builder("svc", &fake.url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let (served, url) = start(instance.clone()).await;
    until(T, "the first registration rejected", || async {
        fake.count(Kind::Register) >= 1
    })
    .await;
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let attempts = fake.count(Kind::Register);
    eprintln!("400: {attempts} registration attempts in the first {window:?}");
    assert!(
        attempts <= 2,
        "{attempts} rejected registrations within {window:?}"
    );
    assert!(serving(&url).await);
    let problems = logs.problems();
    assert_eq!(problems.len(), 1, "{}", logs.text());
    let line = &problems[0];
    assert!(line.contains("ERROR"), "{line}");
    for part in ["400", REASON, "rejected by Consul", "30s"] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
    stop(&instance, served).await;
}

// ---------------------------------------------------------------------------------------------
// 3. TTL heartbeat: a third of the TTL, survives a failed update, stops before deregistration
// ---------------------------------------------------------------------------------------------

async fn ttl_heartbeat_runs_every_third_survives_a_failure_and_stops_before_deregistration(
    kind: AgentKind,
) {
    let _shared = EXCLUSIVE.read().await;
    let Some(target) = Target::start(
        kind,
        "ttl_heartbeat_runs_every_third_survives_a_failure_and_stops_before_deregistration",
        None,
    )
    .await
    else {
        return;
    };
    // Everything the instance sends goes through a recording proxy (in front of the fault
    // proxy, for a real Consul).
    let proxy = FakeConsul::proxy(&target.url()).await;
    let ttl = Duration::from_millis(1500);
    let beat = ttl / 3;
    let service = builder("svc", &proxy.url).ttl(ttl).build().unwrap();
    let instance = service.new_instance();
    let check_id = format!("service:{}", instance.id());
    let client = target.client();
    let (served, _url) = start(instance.clone()).await;
    let updates = |status: u16| {
        proxy
            .calls()
            .into_iter()
            .filter(|c| c.kind == Kind::CheckUpdate && c.status == status)
            .collect::<Vec<_>>()
    };

    // A third of the TTL between updates.
    until(T, "five heartbeats", || async { updates(200).len() >= 5 }).await;
    let beats = updates(200);
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("TTL {ttl:?}: heartbeat gaps {gaps:?}");
    // Never early. How late a beat may be on a busy machine is no fixed figure; the exact
    // period is checked on tokio's paused clock (`pacing.rs`).
    for gap in &gaps {
        assert!(
            *gap >= beat - Duration::from_millis(20),
            "heartbeat gap {gap:?}, expected about {beat:?}: {gaps:?}"
        );
    }

    // One failed update. The watch is parked in a blocking read, so the next request the
    // agent gets is the heartbeat; the test reads the agent only after that.
    target.fail_next(1);
    until(T, "a failed heartbeat", || async {
        proxy.calls().iter().any(|c| c.status == 500)
    })
    .await;
    let failed: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.status == 500)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, Kind::CheckUpdate, "{failed:?}");
    let after_failure = updates(200).len();
    // Passing for two TTLs after the failure, never critical.
    let watched = Instant::now();
    while watched.elapsed() < 2 * ttl {
        let checks = client.agent_checks().await.unwrap();
        assert_eq!(
            checks[&check_id].status.as_str(),
            "passing",
            "{:?} after the failed heartbeat",
            watched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        updates(200).len() >= after_failure + 4,
        "heartbeats went on"
    );

    // Shutdown: the last heartbeat comes before the deregistration, none after.
    stop(&instance, served).await;
    let returned = Instant::now();
    let calls = proxy.calls();
    let deregistered = calls
        .iter()
        .find(|c| c.kind == Kind::Deregister)
        .expect("deregistered");
    assert_eq!(deregistered.status, 200);
    let last_beat = updates(200).last().unwrap().at;
    assert!(
        last_beat < deregistered.at,
        "no heartbeat after deregistration began"
    );
    // Three heartbeat periods later nothing else arrived.
    let seen = calls.len();
    tokio::time::sleep(3 * beat).await;
    let late: Vec<_> = proxy.calls().into_iter().skip(seen).collect();
    assert!(late.is_empty(), "requests after serve returned: {late:?}");
    assert!(
        proxy.calls().iter().all(|c| c.at < returned),
        "every request came before serve returned"
    );
    assert!(client.agent_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_working_heartbeat_does_not_relog_a_failing_watch() {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    // Registration and heartbeats work; the watch on the registration gets garbage.
    let fake = FakeConsul::start(false, |kind, _| match kind {
        Kind::Watch => Answer::status(200, "<html>"),
        _ => Answer::status(200, ""),
    })
    .await;
    let service = builder("svc", &fake.url)
        .ttl(Duration::from_millis(600))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let (served, _url) = start(instance.clone()).await;
    until(T, "heartbeats and watches interleaved", || async {
        fake.count(Kind::CheckUpdate) >= 6 && fake.count(Kind::Watch) >= 10
    })
    .await;
    assert_eq!(logs.problems().len(), 1, "{}", logs.text());
    assert_eq!(problems_with(&logs, "could not decode"), 1);
    stop(&instance, served).await;
}

/// An instance whose check stays critical is removed by the agent every
/// `DeregisterCriticalServiceAfter` and registered again: a cycle kept by design, said once,
/// then quietly until the instance passes again; a loss after that is said again. (Dev agent
/// only: a real Consul's minimum for that setting is a minute.)
#[tokio::test]
async fn a_permanently_critical_instance_says_its_reap_cycle_once() {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::DEBUG);
    let agent = DevAgent::start(AgentConfig {
        reap_interval: Duration::from_millis(100),
        deregister_critical_cap: Some(Duration::from_millis(500)),
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(consul_at(&agent.url(), Duration::from_secs(2))).unwrap();
    let service = builder("flapping", &agent.url())
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let instance = service.new_instance();
    instance.set_health(discoverable_runtime::Health::Down);
    let (served, _url) = start(instance.clone()).await;
    let lost = "Consul lost this instance's registration";
    until(Duration::from_secs(30), "three reap cycles", || async {
        logs.count(&[lost, "again; registering again"]) >= 2
    })
    .await;
    assert_eq!(
        problems_with(&logs, lost),
        1,
        "the cycle is said once:\n{}",
        logs.text()
    );

    // It passes again: the cycle is over, and the next loss is said.
    instance.clear_health();
    until(T, "passing at the agent", || async {
        client.agent_checks().await.is_ok_and(|checks| {
            checks
                .values()
                .any(|c| c.service_id == instance.id() && c.status == consul::CheckStatus::Passing)
        })
    })
    .await;
    // (A reap between clear_health and the first passing run is a loss said already.)
    let said = problems_with(&logs, lost);
    client.deregister(instance.id()).await.unwrap();
    until(T, "the next loss said", || async {
        problems_with(&logs, lost) > said
    })
    .await;
    stop(&instance, served).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Shutdown while Consul is down: bounded, drains; the agent reaps the orphan
// ---------------------------------------------------------------------------------------------

/// The one slow test against a real Consul: its reaper runs every 30 s and honours no
/// `DeregisterCriticalServiceAfter` below one minute, so the orphan leaves 60–90 s after its
/// check went critical.
async fn shutdown_while_consul_is_down_still_drains_and_the_agent_reaps_the_orphan(
    kind: AgentKind,
) {
    let _shared = EXCLUSIVE.read().await;
    let (logs, _guard) = Logs::capture(Level::INFO);
    let test = "shutdown_while_consul_is_down_still_drains_and_the_agent_reaps_the_orphan";
    let (target, reaped_within) = match kind {
        // The test switch shortens Consul's one-minute DeregisterCriticalServiceAfter minimum.
        AgentKind::Dev => {
            let agent = DevAgent::start(AgentConfig {
                reap_interval: Duration::from_millis(200),
                deregister_critical_cap: Some(Duration::from_secs(1)),
                ..AgentConfig::default()
            })
            .await
            .unwrap();
            (Target::around(Agent::Dev(agent)), Duration::from_secs(20))
        }
        AgentKind::RealConsul => {
            let Some(target) = Target::start(kind, test, None).await else {
                return;
            };
            (target, Duration::from_secs(120))
        }
    };
    let client = target.client();
    let deregister_bound = Duration::from_millis(500);
    // `deregister_after` is the default, one minute: Consul's minimum.
    let service = builder("svc", &target.url())
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .deregister_timeout(deregister_bound)
        .grace_period(Duration::from_millis(100))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let id = instance.id().to_owned();
    let (served, url) = start(instance.clone()).await;
    until(T, "registered", || async { instance.is_registered() }).await;

    // A request in flight, then Consul goes away, then shutdown.
    let slow = tokio::spawn(async move {
        let r = reqwest::get(format!("{url}/slow")).await?;
        Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
    });
    until(T, "request in flight", || async {
        instance.in_flight() == 1
    })
    .await;
    target.set_unavailable(true).await;
    let asked = Instant::now();
    stop(&instance, served).await;
    let stopped = Instant::now();
    let shutdown = asked.elapsed();
    eprintln!("Consul down: serve returned {shutdown:?} after shutdown was asked");
    // Registrar stop and deregistration each at most the 500 ms bound, 100 ms grace, and
    // the rest of the 800 ms request.
    assert!(
        shutdown < 2 * deregister_bound + Duration::from_millis(900),
        "shutdown took {shutdown:?}"
    );
    let (status, body) = slow.await.unwrap().expect("in-flight request answered");
    assert_eq!((status, body.as_str()), (200, "slow"), "drained");
    assert_eq!(
        logs.count(&["WARN", "deregistration", "deregister_after"]),
        1,
        "{}",
        logs.text()
    );

    // Consul is back; nothing deregistered the instance, so its check goes critical (nothing
    // answers) and the agent reaps it after DeregisterCriticalServiceAfter.
    target.set_unavailable(false).await;
    let back = Instant::now();
    let services = client.agent_services().await.unwrap();
    assert!(services.contains_key(&id), "the orphan is still registered");
    until(reaped_within, "the orphan reaped", || async {
        client
            .agent_services()
            .await
            .map(|s| !s.contains_key(&id))
            .unwrap_or(false)
    })
    .await;
    let how = match kind {
        AgentKind::Dev => "DeregisterCriticalServiceAfter capped to 1 s, reaper every 200 ms",
        AgentKind::RealConsul => "DeregisterCriticalServiceAfter 1 min, Consul's reaper every 30 s",
    };
    eprintln!(
        "Consul down at shutdown: orphan reaped {:?} after the agent came back, {:?} after serve returned (check interval 1 s, {how})",
        back.elapsed(),
        stopped.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Many instances of one service in one process
// ---------------------------------------------------------------------------------------------

async fn fifty_instances_register_pass_and_deregister_each_with_its_own_id(kind: AgentKind) {
    let _shared = EXCLUSIVE.read().await;
    const N: u64 = 50;
    let Some(agent) = Agent::start(
        kind,
        "fifty_instances_register_pass_and_deregister_each_with_its_own_id",
        None,
    )
    .await
    else {
        return;
    };
    let client = Client::new(consul_at(&agent.url(), Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut instances = Vec::new();
    for i in 0..N {
        let service = Service::builder("many")
            .prefix("/many")
            .consul(consul_at(&agent.url(), Duration::from_secs(5)))
            .grace_period(Duration::from_millis(i * 2))
            .build()
            .unwrap();
        let instance = service.new_instance();
        let (served, _url) = start(instance.clone()).await;
        instances.push((instance, served));
    }
    until(Duration::from_secs(30), "all registered", || async {
        instances.iter().all(|(i, _)| i.is_registered())
    })
    .await;
    let registered = started.elapsed();
    let ours: HashSet<String> = instances.iter().map(|(i, _)| i.id().to_owned()).collect();
    assert_eq!(ours.len(), N as usize, "each instance has its own ID");
    // A real Consul's health endpoint reads the catalog, synced a moment after the agent.
    until(T, "all passing in the catalog", || async {
        client
            .health_service("many", &HealthQuery::default())
            .await
            .is_ok_and(|p| p.value.len() >= N as usize)
    })
    .await;
    let passing = client
        .health_service("many", &HealthQuery::default())
        .await
        .unwrap()
        .value;
    let theirs: HashSet<String> = passing.iter().map(|e| e.service.id.clone()).collect();
    assert_eq!(passing.len(), N as usize);
    assert_eq!(
        theirs, ours,
        "the agent holds exactly our instances, all passing"
    );

    let asked = Instant::now();
    for (instance, _) in &instances {
        instance.shutdown();
    }
    for (_, served) in instances {
        tokio::time::timeout(T, served)
            .await
            .expect("serve returns")
            .unwrap()
            .unwrap();
    }
    let stopped = asked.elapsed();
    assert!(client.agent_services().await.unwrap().is_empty());
    eprintln!(
        "{N} instances: all registered and passing {registered:?} after the first started; all deregistered and stopped {stopped:?} after shutdown"
    );
}

discoverable_testkit::against_both_agents!(
    fifty_instances_register_pass_and_deregister_each_with_its_own_id;
    // These read the log lines, captured on the test's thread only.
    current_thread:
    consul_answering_5xx_is_retried_logged_once_and_heals,
    consul_answering_too_slowly_is_retried_logged_once_and_heals,
    permission_denied_is_logged_once_with_the_fix_and_not_retried_at_full_speed,
    ttl_heartbeat_runs_every_third_survives_a_failure_and_stops_before_deregistration,
    shutdown_while_consul_is_down_still_drains_and_the_agent_reaps_the_orphan,
);
