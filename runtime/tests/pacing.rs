//! How fast the registrar retries, in tokio's paused time: a minute of backoff passes in
//! milliseconds, the gaps between attempts are exact, and a registrar that retried at full
//! speed would show thousands of attempts where these tests allow a few dozen.
//!
//! Consul here is a fake on loopback served by the test's own runtime (so every answer is in
//! when the runtime next looks, and the paused clock only moves while everything waits on a
//! timer): failing with 500, never answering, refusing connections, and rejecting the
//! registration with 403 or 400 until it is fixed; and the TTL heartbeat's period.

#[path = "support/fake_consul.rs"]
mod fake_consul;
#[path = "support/logs.rs"]
mod logs;

use std::time::Duration;

use axum::{Router, routing::get};
use discoverable_runtime::{Instance, Service, ServiceBuilder, consul};
use fake_consul::{Answer, FakeConsul, Kind};
use logs::Logs;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Level;

/// The first and the largest delay between attempts.
const MIN: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(2);
/// How long one request to Consul may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long each test watches the retries.
const WINDOW: Duration = Duration::from_secs(60);
/// The pause after a registration Consul rejected (400, 403), as the README gives it.
const REJECTED_RETRY: Duration = Duration::from_secs(30);

fn builder(consul_url: &str) -> ServiceBuilder {
    Service::builder("paced")
        .consul(
            consul::Config::builder()
                .address(consul_url)
                .request_timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
        )
        .retry_backoff(MIN, MAX)
        .grace_period(Duration::from_millis(50))
        .deregister_timeout(Duration::from_secs(1))
}

/// Serves `service` on 127.0.0.1:0 in a task of the test's runtime.
async fn start(service: impl Into<Instance>) -> JoinHandle<std::io::Result<()>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(discoverable_runtime::serve(service, listener, app).into_future())
}

async fn stop(instance: &Instance, served: JoinHandle<std::io::Result<()>>) {
    instance.shutdown();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("serve returns after shutdown")
        .expect("serve did not panic")
        .expect("serve returned Ok");
}

/// The delay before the `k`-th retry at its longest: `MIN` doubled `k` times, capped at `MAX`.
fn backoff_at(k: usize) -> Duration {
    MIN.saturating_mul(1 << k.min(16)).min(MAX)
}

/// Checks that consecutive attempts are at least `took` (the time one attempt itself takes)
/// plus the lower half of their jittered backoff delay apart, and that they go on: at least
/// `at_least` in the window.
fn assert_paced(what: &str, attempts: &[Instant], took: Duration, at_least: usize) {
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "{what}: {} attempts in {WINDOW:?}, gaps {gaps:?}",
        attempts.len()
    );
    assert!(
        attempts.len() >= at_least,
        "{what}: only {} attempts in {WINDOW:?}, expected at least {at_least} (one per backoff cap): {gaps:?}",
        attempts.len()
    );
    for (k, gap) in gaps.iter().enumerate() {
        let floor = took + backoff_at(k) / 2;
        assert!(
            *gap >= floor,
            "{what}: attempt {} came {gap:?} after the one before, under the backoff's {floor:?}: {gaps:?}",
            k + 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_consul_is_retried_at_the_backoff_pace() {
    let fake = FakeConsul::start(true, |kind, _| match kind {
        Kind::Register => Answer::status(500, "rpc error making call: no leader"),
        _ => Answer::Hang,
    })
    .await;
    let service = builder(&fake.url).build().unwrap();
    let instance = service.new_instance();
    let served = start(instance.clone()).await;
    tokio::time::sleep(WINDOW).await;
    // At the cap an attempt every 1–2 s: at least 25 in a minute after the ramp.
    assert_paced("500", &fake.arrivals(Kind::Register), Duration::ZERO, 25);
    assert!(!instance.is_registered());
    stop(&instance, served).await;
}

#[tokio::test(start_paused = true)]
async fn a_consul_that_never_answers_is_retried_after_each_timeout_and_backoff() {
    let fake = FakeConsul::start(true, |_, _| Answer::Hang).await;
    let service = builder(&fake.url).build().unwrap();
    let instance = service.new_instance();
    let served = start(instance.clone()).await;
    tokio::time::sleep(WINDOW).await;
    // Each attempt waits out the request timeout, then the backoff: 3–4 s each at the cap.
    assert_paced(
        "no answer",
        &fake.arrivals(Kind::Register),
        REQUEST_TIMEOUT,
        60 / 4,
    );
    stop(&instance, served).await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_consul_is_retried_at_the_backoff_pace() {
    let (logs, _guard) = Logs::capture(Level::DEBUG);
    // A port nobody listens on: every connection is refused.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let service = builder(&format!("http://{closed}")).build().unwrap();
    let instance = service.new_instance();
    let served = start(instance.clone()).await;
    tokio::time::sleep(WINDOW).await;
    // The first failure is a WARN, each later one a DEBUG line ("failed again").
    let attempts = logs.count(&["registration failed"]);
    eprintln!("refused: {attempts} attempts in {WINDOW:?}");
    // Not fewer than one per cap, not more than one per half cap (the jitter's floor), plus
    // the ramp from the first delay.
    let ramp = (0..4).map(backoff_at).sum::<Duration>();
    let most = 1 + 4 + ((WINDOW - ramp / 2).as_millis() / (MAX / 2).as_millis()) as usize;
    assert!(
        (25..=most).contains(&attempts),
        "{attempts} attempts in {WINDOW:?}, expected 25..={most}: {}",
        logs.text()
    );
    stop(&instance, served).await;
}

/// Consul rejects the registration until the test fixes it: an attempt every 30 s (not at
/// the 2 ms backoff asked for), and registered within 30 s of the fix.
async fn rejected_until_fixed(status: u16, body: &'static str) {
    let fake = FakeConsul::start(true, move |kind, _| match kind {
        Kind::Register => Answer::status(status, body),
        _ => Answer::Hang,
    })
    .await;
    let service = builder(&fake.url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let served = start(instance.clone()).await;
    // Four attempts: at 0, 30, 60 and 90 s.
    tokio::time::sleep(REJECTED_RETRY * 3 + REJECTED_RETRY / 6).await;
    let attempts = fake.arrivals(Kind::Register);
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{status}: gaps {gaps:?}");
    assert_eq!(attempts.len(), 4, "{status}: {gaps:?}");
    for gap in &gaps {
        assert!(
            *gap >= REJECTED_RETRY && *gap < REJECTED_RETRY + Duration::from_secs(1),
            "{status}: retried {gap:?} after a rejection, expected every {REJECTED_RETRY:?}: {gaps:?}"
        );
    }
    assert!(!instance.is_registered());

    // The operator fixes the token or the service; the registration lands at the next retry.
    fake.set(|kind, _| match kind {
        Kind::Register | Kind::Deregister => Answer::status(200, ""),
        _ => Answer::Hang,
    });
    let fixed = Instant::now();
    while !instance.is_registered() {
        assert!(
            fixed.elapsed() <= REJECTED_RETRY,
            "{status}: not registered {:?} after the fix",
            fixed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{status}: registered {:?} after the fix", fixed.elapsed());
    assert_eq!(fake.arrivals(Kind::Register).len(), 5);
    stop(&instance, served).await;
}

#[tokio::test(start_paused = true)]
async fn a_denied_registration_is_retried_every_30_s_and_lands_within_30_s_of_the_fix() {
    rejected_until_fixed(403, "Permission denied: token lacks service:write").await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_registration_is_retried_every_30_s_and_lands_within_30_s_of_the_fix() {
    rejected_until_fixed(400, "Invalid check: TTL must be > 0 for TTL checks").await;
}

/// A third of the TTL between heartbeats, exactly, also while the watch on the instance's own
/// registration fails and backs off: here it never gets an answer, so every read ends at the
/// 2 s request bound and the next waits out the backoff first.
#[tokio::test(start_paused = true)]
async fn ttl_heartbeats_come_every_third_of_the_ttl_while_the_watch_backs_off() {
    let fake = FakeConsul::start(true, |kind, _| match kind {
        Kind::Watch => Answer::Hang,
        _ => Answer::status(200, ""),
    })
    .await;
    let ttl = Duration::from_millis(1500);
    let beat = ttl / 3;
    let service = builder(&fake.url).ttl(ttl).build().unwrap();
    let instance = service.new_instance();
    let served = start(instance.clone()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let beats = fake.arrivals(Kind::CheckUpdate);
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("TTL {ttl:?}: {} beats, gaps {gaps:?}", beats.len());
    assert!(beats.len() >= 19, "{} beats in 10 s: {gaps:?}", beats.len());
    let reads = fake.arrivals(Kind::Watch).len();
    assert!(reads >= 3, "the watch failed and read again: {reads} reads");
    for gap in &gaps {
        assert!(
            gap.abs_diff(beat) <= Duration::from_millis(5),
            "heartbeat gap {gap:?}, expected {beat:?}: {gaps:?}"
        );
    }
    stop(&instance, served).await;
}
