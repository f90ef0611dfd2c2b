//! A small load-balanced HTTP client over a [`Watch`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::Method;

use super::watch::{Endpoint, Watch};
use crate::error::Error;

/// Sends each request to a healthy instance of one service.
///
/// Picks by the power of two choices: two random instances of the current set, the one with
/// fewer requests in flight from this client. An idempotent request (GET, HEAD, PUT, DELETE,
/// OPTIONS, TRACE) whose connection fails is sent once more, to another instance. The set is
/// read at every request, so an instance that left it gets no more requests.
///
/// ```no_run
/// # async fn run() -> Result<(), discoverable_runtime::Error> {
/// use discoverable_runtime::{Discovery, discovery::Balanced};
///
/// let watch = Discovery::from_env()?.watch("cool_app").start();
/// let client = Balanced::new(watch);
/// let page = client.get("/oops").await?.text().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Balanced {
    watch: Watch,
    http: reqwest::Client,
    loads: Arc<Mutex<HashMap<String, Arc<AtomicUsize>>>>,
}

impl Balanced {
    /// A client over `watch`'s instances.
    pub fn new(watch: Watch) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        Balanced::with_client(watch, http)
    }

    /// A client over `watch`'s instances, sending with `http`.
    pub fn with_client(watch: Watch, http: reqwest::Client) -> Self {
        Balanced {
            watch,
            http,
            loads: Arc::default(),
        }
    }

    /// `GET path` on one instance.
    pub async fn get(&self, path_and_query: &str) -> Result<reqwest::Response, Error> {
        self.send(Method::GET, path_and_query, None).await
    }

    /// Sends `method path` with an optional body to one instance.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, Error> {
        let idempotent = matches!(
            method,
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        );
        let mut tried: Option<String> = None;
        loop {
            let set = self.watch.current();
            let endpoint = self
                .pick(set.endpoints(), tried.as_deref())
                .ok_or_else(|| Error::NoInstance {
                    service: self.watch.service().to_owned(),
                })?;
            let load = self.load(&endpoint.id);
            load.fetch_add(1, Ordering::Relaxed);
            let url = format!("http://{}{}", endpoint.authority(), path_and_query);
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let result = request.send().await;
            load.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(response) => return Ok(response),
                Err(e) if e.is_connect() && idempotent && tried.is_none() => {
                    tracing::debug!(instance = %endpoint.id, error = %e, "connection failed; trying another instance");
                    tried = Some(endpoint.id.clone());
                }
                Err(e) => {
                    return Err(Error::Unreachable {
                        addr: url,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    fn load(&self, id: &str) -> Arc<AtomicUsize> {
        let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        if loads.len() > 4 * self.watch.current().len() + 16 {
            let set = self.watch.current();
            loads.retain(|id, _| set.get(id).is_some());
        }
        loads.entry(id.to_owned()).or_default().clone()
    }

    fn pick<'a>(&self, endpoints: &'a [Endpoint], skip: Option<&str>) -> Option<&'a Endpoint> {
        let candidates: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| Some(e.id.as_str()) != skip)
            .collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (ea, eb) = (candidates[a], candidates[b]);
                let load = |e: &Endpoint| self.load(&e.id).load(Ordering::Relaxed);
                Some(if load(ea) <= load(eb) { ea } else { eb })
            }
        }
    }
}
