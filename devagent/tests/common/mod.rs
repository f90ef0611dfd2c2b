//! Shared helpers of the integration tests: an agent, a client, raw requests, and waiting on a
//! condition with a deadline.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use discoverable_devagent::{Config, DevAgent};
use reqwest::{Method, Response};
use serde_json::Value;

pub struct Env {
    pub agent: DevAgent,
    pub http: reqwest::Client,
    pub url: String,
}

pub async fn start() -> Env {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> Env {
    let agent = DevAgent::start(config).await.expect("agent starts");
    let url = agent.url();
    Env {
        agent,
        http: reqwest::Client::new(),
        url,
    }
}

impl Env {
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.body(serde_json::to_vec(b).unwrap());
        }
        req.send().await.expect("request")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn put_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.http
            .put(format!("{}{path}", self.url))
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    pub async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    /// Registers a service, asserting Consul's 200 with an empty body.
    pub async fn register(&self, body: Value) {
        let resp = self.put("/v1/agent/service/register", &body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(
            (status.as_u16(), text.as_str()),
            (200, ""),
            "register {body}"
        );
    }

    /// The checks of the agent, keyed by check ID.
    pub async fn checks(&self) -> Value {
        self.json("/v1/agent/checks").await
    }

    pub async fn check(&self, id: &str) -> Value {
        self.checks().await[id].clone()
    }

    /// How the agent decoded check `id`'s registration (`GET /_devagent/checks`): Consul's
    /// views leave `Definition` empty.
    pub async fn definition(&self, id: &str) -> Value {
        self.json("/_devagent/checks").await[id].clone()
    }
}

pub fn index_of(resp: &Response) -> u64 {
    resp.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A tiny service whose `/health` answers the current status code (and counts requests).
pub struct Probe {
    pub addr: std::net::SocketAddr,
    pub status: Arc<AtomicU16>,
    pub hits: Arc<AtomicUsize>,
    pub last_headers: Arc<std::sync::Mutex<Option<axum::http::HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    pub async fn start() -> Probe {
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let last_headers = Arc::new(std::sync::Mutex::new(None));
        let (s, h, l) = (status.clone(), hits.clone(), last_headers.clone());
        let app = axum::Router::new().route(
            "/health",
            axum::routing::any(move |headers: axum::http::HeaderMap| {
                let (s, h, l) = (s.clone(), h.clone(), l.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    *l.lock().unwrap() = Some(headers);
                    let code = axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                    (code, "ok")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Probe {
            addr,
            status,
            hits,
            last_headers,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn set(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

/// A port nothing listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
