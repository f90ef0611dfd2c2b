//! A small load-balanced HTTP client over a [`Watch`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;

use super::watch::{Endpoint, InstanceSet, Watch};
use crate::error::Error;

/// How long a request waits for the watch's first answer from Consul.
const FIRST_ANSWER: Duration = Duration::from_secs(5);

/// Sends each request to a healthy instance of one service.
///
/// Picks by the power of two choices: two random instances of the current set, the one with
/// fewer requests in flight from this client. A request whose connection fails (so it was
/// never sent, whatever its method) is sent once more, to another instance, and the instance
/// that refused is left out until the watch brings a new answer from Consul. The set is read
/// at every request, so an instance that left it gets no more requests; a request made before
/// the watch's first answer waits for it (up to 5 s).
///
/// ```no_run
/// # async fn run() -> Result<(), discoverable::Error> {
/// use discoverable::{Discovery, discovery::Balanced};
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
    /// Instances that refused a connection, with the watch's index at that time.
    refused: Arc<Mutex<HashMap<String, u64>>>,
}

/// One request in flight to an instance; the count goes down when it ends or is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(load: Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        InFlight(load)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
            refused: Arc::default(),
        }
    }

    /// `GET path` on one instance.
    pub async fn get(&self, path_and_query: &str) -> Result<reqwest::Response, Error> {
        self.send(Method::GET, path_and_query, None).await
    }

    /// The current set, waiting (bounded) for the watch's first answer.
    async fn known_set(&self) -> Result<InstanceSet, Error> {
        let set = self.watch.current();
        if set.is_known() {
            return Ok(set);
        }
        let mut watch = self.watch.clone();
        let unknown = |why: &str| Error::InstancesUnknown {
            service: self.watch.service().to_owned(),
            why: why.to_owned(),
        };
        match tokio::time::timeout(
            FIRST_ANSWER,
            watch.wait_for(|s| s.is_known() || s.is_stale()),
        )
        .await
        {
            Ok(set) if set.is_known() => Ok(set),
            Ok(set) => Err(unknown(&match set.refused() {
                Some(said) => format!(
                    "Consul refused the watch's query: {said}; fix the query (its filter, say) or the token"
                ),
                None => "Consul cannot be reached; check that a Consul agent runs where CONSUL_HTTP_ADDR says".to_owned(),
            })),
            Err(_) => Err(unknown(&format!(
                "no answer within {FIRST_ANSWER:?}; check that a Consul agent runs where CONSUL_HTTP_ADDR says"
            ))),
        }
    }

    /// Sends `method path` with an optional body to one instance.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, Error> {
        let mut tried: Option<(String, Error)> = None;
        loop {
            let set = self.known_set().await?;
            let Some(endpoint) = self.pick(&set, tried.as_ref().map(|(id, _)| id.as_str())) else {
                // No other instance to try: the first one's failure is the answer.
                return Err(tried.map_or_else(
                    || Error::NoInstance {
                        service: self.watch.service().to_owned(),
                    },
                    |(_, e)| e,
                ));
            };
            let in_flight = InFlight::start(self.load(&endpoint.id));
            let url = format!("http://{}{}", endpoint.authority(), path_and_query);
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let result = request.send().await;
            drop(in_flight);
            match result {
                Ok(response) => return Ok(response),
                Err(e) if e.is_connect() => {
                    self.refused
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(endpoint.id.clone(), set.index());
                    if tried.is_none() {
                        tracing::debug!(instance = %endpoint.id, error = %e, "connection failed; trying another instance");
                        tried = Some((endpoint.id.clone(), self.instance_error(endpoint, e)));
                        continue;
                    }
                    return Err(self.instance_error(endpoint, e));
                }
                Err(e) => return Err(self.instance_error(endpoint, e)),
            }
        }
    }

    fn instance_error(&self, endpoint: &Endpoint, e: reqwest::Error) -> Error {
        Error::Instance {
            service: self.watch.service().to_owned(),
            instance: endpoint.id.clone(),
            addr: endpoint.authority(),
            // The whole chain: reqwest's own words ("error sending request for url") do not
            // say what happened (connection refused, reset, timed out).
            message: crate::consul::chain(&e),
            source: Box::new(e),
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

    /// Two random candidates, the less loaded one. Candidates: the set without `skip` and
    /// without instances that refused a connection since the set's last answer (unless
    /// nothing else is left).
    fn pick<'a>(&self, set: &'a InstanceSet, skip: Option<&str>) -> Option<&'a Endpoint> {
        let all: Vec<&Endpoint> = set
            .endpoints()
            .iter()
            .filter(|e| Some(e.id.as_str()) != skip)
            .collect();
        let candidates: Vec<&Endpoint> = {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            // A newer answer from Consul decides again.
            refused.retain(|_, at| *at == set.index());
            let live: Vec<&Endpoint> = all
                .iter()
                .copied()
                .filter(|e| !refused.contains_key(&e.id))
                .collect();
            if live.is_empty() { all } else { live }
        };
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let a = crate::random::below(n);
                let b = (a + 1 + crate::random::below(n - 1)) % n;
                let (ea, eb) = (candidates[a], candidates[b]);
                let load = |e: &Endpoint| self.load(&e.id).load(Ordering::Relaxed);
                Some(if load(ea) <= load(eb) { ea } else { eb })
            }
        }
    }

    /// Requests in flight from this client to the instance `id`.
    #[cfg(test)]
    fn in_flight(&self, id: &str) -> usize {
        self.load(id).load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Discovery;
    use crate::consul::{CheckDefinition, CheckStatus, Client, Config, Registration};

    #[tokio::test]
    async fn a_cancelled_request_leaves_no_load_behind() {
        let agent = discoverable_devagent::DevAgent::start(Default::default())
            .await
            .unwrap();
        let client = Client::new(Config::builder().address(agent.url()).build().unwrap()).unwrap();
        // An instance that takes the connection and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        client
            .register(&Registration {
                id: "web-1".into(),
                name: "web".into(),
                address: "127.0.0.1".into(),
                port: silent.local_addr().unwrap().port(),
                checks: vec![CheckDefinition {
                    ttl: Some(Duration::from_secs(600)),
                    status: Some(CheckStatus::Passing),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        let balanced = Balanced::new(Discovery::new(client).watch("web").start());
        let cancelled = tokio::time::timeout(Duration::from_millis(300), balanced.get("/")).await;
        assert!(cancelled.is_err(), "the silent instance answered");
        assert_eq!(
            balanced.in_flight("web-1"),
            0,
            "the cancelled request still counts"
        );
    }
}
