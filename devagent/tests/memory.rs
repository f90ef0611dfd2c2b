//! What the agent keeps after load has come and gone: the bytes it has allocated and not freed
//! (counted by this test binary's allocator) return to where they were before the load, once
//! the connections that carried it are closed and the services it registered are gone; and
//! what a blocking query holds while it waits.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::start;
use discoverable_devagent::Config;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// Bytes allocated and not yet freed, by the whole test process.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// The most `LIVE_BYTES` has been since [`reset_peak`].
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);

fn grow(by: i64) {
    let now = LIVE_BYTES.fetch_add(by, Ordering::Relaxed) + by;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
}

fn reset_peak() -> i64 {
    let now = live();
    PEAK_BYTES.store(now, Ordering::SeqCst);
    now
}

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size() as i64);
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
            grow(new_size as i64 - layout.size() as i64);
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
    // 300 connections at once from one IP: over Consul's per-client limit, which is off here.
    let env = common::start_with(Config {
        http_max_conns_per_client: 0,
        ..Config::default()
    })
    .await;
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

/// A keep-alive connection speaking just enough HTTP/1.1 for GET requests.
struct KeepAlive(tokio::io::BufReader<tokio::net::TcpStream>);

impl KeepAlive {
    async fn connect(addr: std::net::SocketAddr) -> KeepAlive {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        KeepAlive(tokio::io::BufReader::new(stream))
    }

    /// GET `path`; the status line and the body.
    async fn get(&mut self, path: &str) -> (String, String) {
        use tokio::io::AsyncBufReadExt;
        let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n");
        self.0
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let mut status = String::new();
        self.0.read_line(&mut status).await.expect("status line");
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).await.expect("header line");
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("content-length: ") {
                length = n.parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("UTF-8 body"))
    }
}

#[tokio::test]
async fn a_waiting_query_holds_little_beyond_its_connection() {
    let _exclusive = EXCLUSIVE.lock().await;
    // 200 connections beside the test's own client, from one IP: over Consul's per-client
    // limit, which is off here.
    let env = common::start_with(Config {
        http_max_conns_per_client: 0,
        ..Config::default()
    })
    .await;
    env.register(
        json!({"ID": "x-1", "Name": "x", "Port": 8080, "Tags": ["v1"],
                        "Check": {"TTL": "30s", "Status": "passing"}}),
    )
    .await;
    let index = common::index_of(&env.get("/v1/health/service/x").await);
    let addr = env.agent.addr();
    const QUERIES: usize = 200;
    // Connections that have answered a request once hold their buffers already.
    let mut conns = Vec::new();
    for _ in 0..QUERIES {
        let mut conn = KeepAlive::connect(addr).await;
        let (status, _) = conn.get("/v1/health/service/x").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        conns.push(conn);
    }
    let baseline = reset_peak();

    let path = format!("/v1/health/service/x?index={index}&wait=300ms");
    let queries: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let path = path.clone();
            tokio::spawn(async move { conn.get(&path).await })
        })
        .collect();
    for query in queries {
        let (status, body) = query.await.expect("query task");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert!(body.contains("\"x-1\""), "{body}");
    }
    let per_query = (PEAK_BYTES.load(Ordering::SeqCst) - baseline) / QUERIES as i64;
    eprintln!("{QUERIES} waiting queries: at most {per_query} bytes each");
    // Holding the request's read buffer (8 KiB) or the first answer (several KiB) while
    // waiting would be well above this.
    assert!(per_query < 4096, "{per_query} bytes per waiting query");
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
