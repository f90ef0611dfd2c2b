//! A tiny stand-in for Consul on 127.0.0.1:0 for the resilience tests: it answers what the
//! test's script says (including what Consul never says: malformed JSON, wrong shapes, HTML
//! error pages, answers that never come) or forwards to a real agent, and counts every call
//! it gets by kind, so a test sees exactly what reached "Consul".

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which Consul endpoint a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `PUT /v1/agent/service/register`
    Register,
    /// `GET /v1/agent/service/:id` (the runtime's watch on its own registration)
    Watch,
    /// `PUT /v1/agent/service/deregister/:id`
    Deregister,
    /// `PUT /v1/agent/check/update/:id` (TTL heartbeat)
    CheckUpdate,
    /// Anything else.
    Other,
}

impl Kind {
    fn of(method: &Method, path: &str) -> Kind {
        match (method.as_str(), path) {
            ("PUT", "/v1/agent/service/register") => Kind::Register,
            ("PUT", p) if p.starts_with("/v1/agent/service/deregister/") => Kind::Deregister,
            ("GET", p) if p.starts_with("/v1/agent/service/") => Kind::Watch,
            ("PUT", p) if p.starts_with("/v1/agent/check/update/") => Kind::CheckUpdate,
            _ => Kind::Other,
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: Kind,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// What to answer.
pub enum Answer {
    /// Status, body, extra headers.
    Reply(u16, String, Vec<(&'static str, String)>),
    /// Never answer (the connection stays open until the client gives up).
    Hang,
    /// Pass the request on to the upstream agent and its answer back.
    Forward,
    /// Pass the request on to the upstream agent, but answer 502: the agent did what was
    /// asked, and its answer was lost on the way (it went down before answering, say).
    ForwardDroppingTheReply,
}

impl Answer {
    pub fn status(code: u16, body: &str) -> Answer {
        Answer::Reply(code, body.to_owned(), Vec::new())
    }
}

type Script = Box<dyn Fn(Kind, &str) -> Answer + Send + Sync>;

struct Shared {
    script: Mutex<Script>,
    counts: Mutex<HashMap<Kind, Arc<AtomicUsize>>>,
    /// Every call, when recording (off for the memory test: the record itself would grow).
    calls: Option<Mutex<Vec<Call>>>,
    /// When each request arrived on tokio's clock (paused in the pacing tests), including those
    /// never answered; when recording.
    arrivals: Option<Mutex<Vec<(Kind, tokio::time::Instant)>>>,
    upstream: Option<(reqwest::Client, String)>,
}

/// A running fake; stops when dropped.
pub struct FakeConsul {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeConsul {
    /// A fake answering by `script(kind, path and query)`, counting calls, recording each one when
    /// `record` is set.
    pub async fn start(
        record: bool,
        script: impl Fn(Kind, &str) -> Answer + Send + Sync + 'static,
    ) -> FakeConsul {
        Self::start_with(record, None, Box::new(script)).await
    }

    /// A recording proxy in front of the agent at `upstream`: everything is forwarded unless
    /// the script later says otherwise.
    pub async fn proxy(upstream: &str) -> FakeConsul {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self::start_with(
            true,
            Some((client, upstream.trim_end_matches('/').to_owned())),
            Box::new(|_, _| Answer::Forward),
        )
        .await
    }

    async fn start_with(
        record: bool,
        upstream: Option<(reqwest::Client, String)>,
        script: Script,
    ) -> FakeConsul {
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            counts: Mutex::new(HashMap::new()),
            calls: record.then(|| Mutex::new(Vec::new())),
            arrivals: record.then(|| Mutex::new(Vec::new())),
            upstream,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeConsul { url, shared, task }
    }

    /// Answers by `script` from now on.
    pub fn set(&self, script: impl Fn(Kind, &str) -> Answer + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Box::new(script);
    }

    /// How many calls of `kind` arrived so far.
    pub fn count(&self, kind: Kind) -> usize {
        self.counter(kind).load(Ordering::SeqCst)
    }

    fn counter(&self, kind: Kind) -> Arc<AtomicUsize> {
        counter(&self.shared, kind)
    }

    /// When each request of `kind` arrived, on tokio's clock, answered or not (empty when not
    /// recording).
    pub fn arrivals(&self, kind: Kind) -> Vec<tokio::time::Instant> {
        self.shared.arrivals.as_ref().map_or_else(Vec::new, |a| {
            a.lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, at)| *at)
                .collect()
        })
    }

    /// Every call so far (empty when not recording).
    pub fn calls(&self) -> Vec<Call> {
        self.shared
            .calls
            .as_ref()
            .map(|c| c.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

fn counter(shared: &Shared, kind: Kind) -> Arc<AtomicUsize> {
    shared
        .counts
        .lock()
        .unwrap()
        .entry(kind)
        .or_default()
        .clone()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let path = uri.path().to_owned();
    let kind = Kind::of(&method, &path);
    counter(&shared, kind).fetch_add(1, Ordering::SeqCst);
    if let Some(arrivals) = &shared.arrivals {
        arrivals
            .lock()
            .unwrap()
            .push((kind, tokio::time::Instant::now()));
    }
    let target = uri.path_and_query().map_or(path.as_str(), |p| p.as_str());
    let answer = (shared.script.lock().unwrap())(kind, target);
    let response = match answer {
        Answer::Reply(status, body, extra) => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in extra {
                r.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            r
        }
        Answer::Hang => std::future::pending::<Response>().await,
        Answer::Forward => forward(&shared, &method, &uri, &headers, body).await,
        Answer::ForwardDroppingTheReply => {
            let _ = forward(&shared, &method, &uri, &headers, body).await;
            status_only(502)
        }
    };
    if let Some(calls) = &shared.calls {
        calls.lock().unwrap().push(Call {
            kind,
            method: method.to_string(),
            path,
            status: response.status().as_u16(),
            at,
        });
    }
    response
}

async fn forward(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some((client, upstream)) = &shared.upstream else {
        return status_only(502);
    };
    let target = format!(
        "{upstream}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = client.request(method.clone(), target).body(body);
    for name in ["x-consul-token", "content-type"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let Ok(answer) = req.send().await else {
        return status_only(502);
    };
    let status = answer.status();
    let copied: Vec<(HeaderName, HeaderValue)> = answer
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-consul") || *n == "content-type")
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let Ok(bytes) = answer.bytes().await else {
        return status_only(502);
    };
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    for (n, v) in copied {
        r.headers_mut().insert(n, v);
    }
    r
}

fn status_only(code: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    r
}
