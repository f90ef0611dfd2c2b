//! What the agent keeps after load has come and gone: the bytes it has allocated and not freed
//! (counted by this test binary's allocator) return to where they were before the load, once
//! the connections that carried it are closed and the services it registered are gone.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::start;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// Bytes allocated and not yet freed, by the whole test process.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
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

/// One test at a time: the counter is the whole process's.
static EXCLUSIVE: Mutex<()> = Mutex::const_new(());

fn live() -> i64 {
    LIVE_BYTES.load(Ordering::SeqCst)
}

/// Waits until the live bytes are back within `slack` of `baseline`; panics with the growth.
async fn back_to(baseline: i64, slack: i64, what: &str) {
    let mut growth = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        growth = live() - baseline;
        if growth <= slack {
            eprintln!("{what}: live bytes {growth:+} against the baseline");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: {growth} bytes more than before, 10 s after the load ended");
}

/// One request on a fresh connection that the agent closes after answering.
async fn one_shot(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

/// `count` blocking queries at once, each on its own connection that the agent closes after
/// answering.
async fn blocking_queries(addr: std::net::SocketAddr, path: &str, count: usize) {
    let queries: Vec<_> = (0..count)
        .map(|_| {
            let path = path.to_owned();
            tokio::spawn(async move { one_shot(addr, &path).await })
        })
        .collect();
    for query in queries {
        let answer = query.await.expect("query task");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("x-consul-index: "), "{answer}");
    }
}

#[tokio::test]
async fn connections_that_came_and_went_leave_nothing_behind() {
    let _exclusive = EXCLUSIVE.lock().await;
    let env = start().await;
    env.register(json!({"ID": "x-1", "Name": "x", "Port": 8080}))
        .await;
    let index = common::index_of(&env.get("/v1/health/service/x").await);
    let addr = env.agent.addr();
    let path = format!("/v1/health/service/x?index={index}&wait=100ms");
    // A first round sets up what grows once to the size the load needs (the runtime's
    // queues, timer wheel and I/O driver); one more connection after it finds it all ended.
    blocking_queries(addr, &path, 300).await;
    assert!(
        one_shot(addr, "/v1/status/leader")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let baseline = live();

    // Nothing reaches the agent after the last of these connections: the client's pooled
    // connection stays idle.
    blocking_queries(addr, &path, 300).await;
    // Each connection ended and kept would hold at least some hundreds of bytes (its whole
    // task, several KiB, in a release build): 300 of them well above the slack.
    back_to(baseline, 16 * 1024, "300 connections closed").await;
    env.agent.shutdown().await;
}

#[tokio::test]
async fn services_that_came_and_went_leave_nothing_behind() {
    let _exclusive = EXCLUSIVE.lock().await;
    let env = start().await;
    let register = |i: usize| {
        let name = format!("svc-{i}");
        json!({"ID": name, "Name": name, "Port": 8080, "Tags": ["v1"],
               "Check": {"TTL": "30s"}})
    };
    env.register(register(0)).await;
    env.send(
        reqwest::Method::PUT,
        "/v1/agent/service/deregister/svc-0",
        None,
    )
    .await;
    let baseline = live();

    for i in 1..=2000 {
        env.register(register(i)).await;
    }
    for i in 1..=2000 {
        let resp = env
            .send(
                reqwest::Method::PUT,
                &format!("/v1/agent/service/deregister/svc-{i}"),
                None,
            )
            .await;
        assert_eq!(resp.status(), 200);
    }
    let names = env.json("/v1/catalog/services").await;
    assert_eq!(names, json!({"consul": []}));
    // Each service name kept would be some tens of bytes: 2 000 of them about 100 KiB.
    back_to(baseline, 32 * 1024, "2000 services deregistered").await;
    env.agent.shutdown().await;
}
