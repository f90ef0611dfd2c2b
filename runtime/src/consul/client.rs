//! The client: one method per Consul endpoint, every request bounded in time, every failure
//! a typed [`Error`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::config::Config;
use super::error_text::{Secrets, body_message, chain, transport_error};
use super::types::{
    AgentSelf, AgentSelfWire, AgentService, CheckStatus, CheckUpdate, DEFAULT_WAIT, Hashed,
    HealthCheck, HealthQuery, HealthState, Indexed, MAX_WAIT, QueryOptions, Registration,
    ServiceEntry,
};
use crate::Error;

/// The header that carries the ACL token.
const TOKEN_HEADER: &str = "X-Consul-Token";

/// A client of one Consul agent. Cheap to clone (an [`Arc`] inside); clones share the
/// connection pool.
///
/// At most 32 requests that do not block are in flight at once, across the clones; more wait
/// their turn. Consul answers a client address's 201st connection with 429 by default, and
/// applies writes one at a time anyway. Blocking reads do not wait for a turn.
///
/// Every request is bounded: one that does not block by
/// [`Config::request_timeout`](super::Config::request_timeout), a blocking read by its wait
/// plus Consul's jitter (wait/16) plus that bound. Each request is logged at debug level
/// (method and path; never the token).
///
/// ```no_run
/// use discoverable::consul::{Client, HealthQuery};
///
/// # async fn demo() -> Result<(), discoverable::Error> {
/// let client = Client::from_env()?;
/// let me = client.agent_self().await?;
/// println!("agent {} in {}", me.node_name, me.datacenter);
/// let healthy = client.health_service("web", &HealthQuery::default()).await?;
/// for entry in &healthy.value {
///     println!("{}:{}", entry.address(), entry.service.port);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    /// Scheme, host (the TLS server name when one is set), port and path prefix.
    base: Url,
    token: Option<HeaderValue>,
    secrets: Secrets,
    /// Why entries of a list were skipped, each said once (a bounded set).
    skipped: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Turns for requests that do not block ([`PLAIN_AT_ONCE`]).
    plain: tokio::sync::Semaphore,
}

/// How many requests that do not block a client (and its clones) has in flight at once; more
/// wait their turn. Consul allows each client address 200 connections by default
/// (`limits.http_max_conns_per_client`) and answers more with 429, and it applies writes one
/// at a time anyway: a thousand instances that register or deregister at once through one
/// client go through this many connections, and leave the rest to blocking reads.
const PLAIN_AT_ONCE: usize = 32;

/// How many distinct skip reasons are remembered (and so logged once each).
const SKIPPED_REMEMBERED: usize = 256;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A response, read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// `METHOD /path`, for error texts.
    what: String,
}

/// How long a request may take.
#[derive(Clone, Copy)]
enum Bound {
    /// `request_timeout`.
    Plain,
    /// A blocking read with this wait (`None`: Consul's default).
    Blocking(Option<Duration>),
}

impl Client {
    /// A client for the agent `config` describes.
    ///
    /// With `insecure_skip_verify` on, logs a warning: the agent's identity is not checked.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the TLS material cannot be used.
    pub fn new(config: Config) -> Result<Client, Error> {
        let mut builder = reqwest::Client::builder()
            // A redirect could carry the token elsewhere; Consul never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // HTTP/1.1 to the agent, whatever features reqwest gets elsewhere in the
            // application's dependency graph: over HTTP/2 a failed connection reaches us as
            // text only (the h2 crate keeps an I/O error as its kind and message), which hides
            // rustls's error, and with it the hint that names the TLS variable to set.
            .http1_only()
            .user_agent(concat!("discoverable/", env!("CARGO_PKG_VERSION")));
        let mut base = config.url().clone();

        #[cfg(feature = "tls")]
        if let Some(ca) = config.ca() {
            let mut certs = Vec::new();
            for pem in &ca.pems {
                let more = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    config_error(
                        ca.origin,
                        format!(
                            "cannot use the CA certificates of {} ({e}); expected PEM CA certificates",
                            ca.source.display()
                        ),
                    )
                })?;
                certs.extend(more);
            }
            // As Consul's CLI: the given CAs replace the system's roots.
            builder = builder.tls_certs_only(certs);
        } else if !config.is_https() {
            // Plain HTTP verifies nothing: skip loading the system's roots, which costs tens
            // of milliseconds at every start.
            builder = builder.tls_certs_only(Vec::new());
        }
        #[cfg(feature = "tls")]
        if let Some(id) = config.identity() {
            let identity = reqwest::Identity::from_pem(&id.pem).map_err(|e| {
                config_error(
                    id.origin,
                    format!(
                        "cannot use the client certificate {} ({e}); expected a PEM certificate and its PEM private key",
                        id.cert_path.display()
                    ),
                )
            })?;
            builder = builder.identity(identity);
        }
        if config.insecure_skip_verify() {
            tracing::warn!(
                address = %config.address(),
                "TLS verification of the Consul agent is off (CONSUL_HTTP_SSL_VERIFY=false or insecure_skip_verify): its identity is not checked; use this only in development"
            );
            #[cfg(feature = "tls")]
            {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        #[cfg(unix)]
        if let Some(path) = config.unix_socket() {
            builder = builder.unix_socket(path.to_path_buf());
        }
        if let Some(name) = config.tls_server_name().filter(|_| config.is_https()) {
            // Verify (and send as SNI) the server name while connecting to the configured
            // host: requests name the server in the URL, and the name resolves to the host.
            if config.unix_socket().is_none() {
                let host = base
                    .host_str()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = base.port_or_known_default().unwrap_or(443);
                builder = match host.parse::<IpAddr>() {
                    Ok(ip) => builder.resolve(name, SocketAddr::new(ip, port)),
                    Err(_) => builder.dns_resolver(Arc::new(ServerNameResolver { host, port })),
                };
            }
            base.set_host(Some(name)).map_err(|e| {
                config_error(
                    "tls_server_name",
                    format!("`{name}` cannot be used as a host ({e}); expected a DNS name"),
                )
            })?;
        }
        let http = builder.build().map_err(|e| {
            let origin = config
                .identity()
                .map(|i| i.origin)
                .or(config.ca().map(|c| c.origin))
                .unwrap_or(config.address_origin());
            config_error(
                origin,
                format!(
                    "cannot set up the HTTP client ({}); expected usable TLS material",
                    chain(&e)
                ),
            )
        })?;

        let token = match config.token() {
            Some(t) => {
                let mut value = HeaderValue::from_str(t.secret()).map_err(|_| {
                    config_error(
                        config.token_origin(),
                        "the token is not a valid header value; expected an ACL token such as a UUID",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let secrets = Secrets::new(config.secrets());
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                base,
                token,
                secrets,
                skipped: Default::default(),
                plain: tokio::sync::Semaphore::new(PLAIN_AT_ONCE),
            }),
        })
    }

    /// A client configured from Consul's environment variables, see
    /// [`Config::from_env`](super::Config::from_env).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable whose value cannot be used.
    pub fn from_env() -> Result<Client, Error> {
        Client::new(Config::from_env()?)
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    // -----------------------------------------------------------------------------------------
    // Agent
    // -----------------------------------------------------------------------------------------

    /// Registers (or updates) a service with the local agent:
    /// `PUT /v1/agent/service/register`, with `?replace-existing-checks=true` when
    /// [`Registration::replace_existing_checks`] is set.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] 400 with Consul's reason when the registration is invalid,
    /// [`Error::PermissionDenied`] without `service:write`, and the transport errors.
    pub async fn register(&self, reg: &Registration) -> Result<(), Error> {
        let body = serde_json::to_vec(reg).map_err(|e| {
            config_error(
                "registration",
                format!("cannot be encoded as JSON ({e}); expected string keys and values"),
            )
        })?;
        let mut query = Vec::new();
        if reg.replace_existing_checks {
            query.push(("replace-existing-checks", "true".to_owned()));
        }
        let answer = self
            .call(
                Method::PUT,
                &["agent", "service", "register"],
                &query,
                Some(body),
                Bound::Plain,
            )
            .await?;
        self.require_ok(answer).map(drop)
    }

    /// Removes a service and its checks from the local agent:
    /// `PUT /v1/agent/service/deregister/:service_id`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the agent does not know the id (current Consul answers 404),
    /// [`Error::PermissionDenied`], and the transport errors.
    pub async fn deregister(&self, service_id: &str) -> Result<(), Error> {
        let answer = self
            .call(
                Method::PUT,
                &["agent", "service", "deregister", service_id],
                &[],
                None,
                Bound::Plain,
            )
            .await?;
        self.require_ok(answer).map(drop)
    }

    /// One service of the local agent: `GET /v1/agent/service/:id`. `Ok` with `value: None`
    /// when the agent does not know it (404).
    ///
    /// Hash-based blocking: with `hash` set to the hash of an earlier answer, the agent holds
    /// the answer until the definition changes or `wait` (default 5 minutes) runs out.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] without `service:read`, [`Error::Decode`], and the transport
    /// errors.
    pub async fn agent_service(
        &self,
        id: &str,
        hash: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<Hashed<Option<AgentService>>, Error> {
        let mut query = Vec::new();
        let hash = hash.filter(|h| !h.is_empty());
        if let Some(h) = hash {
            query.push(("hash", h.to_owned()));
        }
        if let Some(w) = wait {
            query.push(("wait", wait_param(w)));
        }
        let bound = if hash.is_some() {
            Bound::Blocking(wait)
        } else {
            Bound::Plain
        };
        let answer = self
            .call(Method::GET, &["agent", "service", id], &query, None, bound)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(Hashed {
                value: None,
                hash: None,
            });
        }
        let answer = self.require_ok(answer)?;
        let service: AgentService = self.decode(&answer)?;
        let hash = header_str(&answer.headers, "X-Consul-ContentHash")
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .or_else(|| Some(service.content_hash.clone()).filter(|h| !h.is_empty()));
        Ok(Hashed {
            value: Some(service),
            hash,
        })
    }

    /// All services of the local agent, by service id: `GET /v1/agent/services`. Services the
    /// token may not read are left out by Consul.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`], [`Error::PermissionDenied`], and the transport errors.
    pub async fn agent_services(&self) -> Result<HashMap<String, AgentService>, Error> {
        let answer = self
            .call(Method::GET, &["agent", "services"], &[], None, Bound::Plain)
            .await?;
        let answer = self.require_ok(answer)?;
        self.decode_or_default(&answer)
    }

    /// All checks of the local agent, by check id: `GET /v1/agent/checks`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`], [`Error::PermissionDenied`], and the transport errors.
    pub async fn agent_checks(&self) -> Result<HashMap<String, HealthCheck>, Error> {
        let answer = self
            .call(Method::GET, &["agent", "checks"], &[], None, Bound::Plain)
            .await?;
        let answer = self.require_ok(answer)?;
        self.decode_or_default(&answer)
    }

    /// Sets the status and output of a TTL check and restarts its timer:
    /// `PUT /v1/agent/check/update/:check_id` with `{"Status", "Output"}`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown check id (current Consul), [`Error::Status`] for a
    /// check without TTL, [`Error::PermissionDenied`], and the transport errors.
    pub async fn check_update(
        &self,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(&CheckUpdate { status, output }).map_err(|e| {
            config_error(
                "output",
                format!("cannot be encoded as JSON ({e}); expected text"),
            )
        })?;
        let answer = self
            .call(
                Method::PUT,
                &["agent", "check", "update", check_id],
                &[],
                Some(body),
                Bound::Plain,
            )
            .await?;
        self.require_ok(answer).map(drop)
    }

    /// Marks a TTL check passing with `note` as output: `PUT /v1/agent/check/pass/:id?note=`.
    ///
    /// # Errors
    ///
    /// As [`Client::check_update`].
    pub async fn check_pass(&self, check_id: &str, note: &str) -> Result<(), Error> {
        self.check_mark("pass", check_id, note).await
    }

    /// Marks a TTL check warning with `note` as output: `PUT /v1/agent/check/warn/:id?note=`.
    ///
    /// # Errors
    ///
    /// As [`Client::check_update`].
    pub async fn check_warn(&self, check_id: &str, note: &str) -> Result<(), Error> {
        self.check_mark("warn", check_id, note).await
    }

    /// Marks a TTL check critical with `note` as output: `PUT /v1/agent/check/fail/:id?note=`.
    ///
    /// # Errors
    ///
    /// As [`Client::check_update`].
    pub async fn check_fail(&self, check_id: &str, note: &str) -> Result<(), Error> {
        self.check_mark("fail", check_id, note).await
    }

    async fn check_mark(&self, verb: &str, check_id: &str, note: &str) -> Result<(), Error> {
        let answer = self
            .call(
                Method::PUT,
                &["agent", "check", verb, check_id],
                &[("note", note.to_owned())],
                None,
                Bound::Plain,
            )
            .await?;
        self.require_ok(answer).map(drop)
    }

    /// What the agent says about itself: `GET /v1/agent/self` (needs `agent:read`).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] without `agent:read`, [`Error::Decode`], and the transport
    /// errors.
    pub async fn agent_self(&self) -> Result<AgentSelf, Error> {
        let answer = self
            .call(Method::GET, &["agent", "self"], &[], None, Bound::Plain)
            .await?;
        let answer = self.require_ok(answer)?;
        let wire: AgentSelfWire = self.decode_or_default(&answer)?;
        Ok(AgentSelf::from(wire))
    }

    // -----------------------------------------------------------------------------------------
    // Health
    // -----------------------------------------------------------------------------------------

    /// The instances of a service with their node and checks:
    /// `GET /v1/health/service/:name`, by default only those whose every check passes.
    /// An unknown service gives an empty list.
    ///
    /// Blocks when `query.options.index` is greater than zero; see [`QueryOptions`] and
    /// [`next_index`](super::next_index).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use discoverable::consul::{next_index, Client, HealthQuery, QueryOptions};
    ///
    /// # async fn demo(client: Client) -> Result<(), discoverable::Error> {
    /// let mut index = 0;
    /// loop {
    ///     let mut query = HealthQuery::default();
    ///     query.options = QueryOptions::blocking(index, Duration::from_secs(60));
    ///     let answer = client.health_service("web", &query).await?;
    ///     println!("{} healthy instances", answer.value.len());
    ///     index = next_index(index, answer.index);
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for a bad body or a missing or unparsable `X-Consul-Index`,
    /// [`Error::Status`] for Consul's 400s, and the transport errors.
    pub async fn health_service(
        &self,
        name: &str,
        query: &HealthQuery,
    ) -> Result<Indexed<Vec<ServiceEntry>>, Error> {
        let mut params = Vec::new();
        if query.passing {
            // As Consul's Go api sends it.
            params.push(("passing", "1".to_owned()));
        }
        for tag in &query.tags {
            params.push(("tag", tag.clone()));
        }
        let bound = read_params(&query.options, &mut params);
        let answer = self
            .call(
                Method::GET,
                &["health", "service", name],
                &params,
                None,
                bound,
            )
            .await?;
        let answer = self.require_ok(answer)?;
        let raw: Indexed<Vec<serde_json::Value>> = self.indexed(&answer)?;
        Ok(Indexed {
            value: self.each_decoded(&answer.what, raw.value),
            index: raw.index,
            known_leader: raw.known_leader,
            last_contact: raw.last_contact,
        })
    }

    /// Decodes every entry of a list on its own: one that does not decode (a port out of
    /// range, say, which Consul itself accepts) is skipped, and said once, instead of hiding
    /// every other entry.
    fn each_decoded<T: DeserializeOwned>(&self, what: &str, raw: Vec<serde_json::Value>) -> Vec<T> {
        raw.into_iter()
            .filter_map(|entry| match serde_json::from_value::<T>(entry) {
                Ok(v) => Some(v),
                Err(e) => {
                    let why = self.scrub(format!("{what}: an entry that does not decode ({e})"));
                    let mut said = self.inner.skipped.lock().unwrap_or_else(|p| p.into_inner());
                    if said.len() < SKIPPED_REMEMBERED && said.insert(why.clone()) {
                        tracing::warn!("{why}; skipping it, keeping the others");
                    }
                    None
                }
            })
            .collect()
    }

    /// The checks in a state (or all of them, [`HealthState::Any`]):
    /// `GET /v1/health/state/:state`. Blocks as [`Client::health_service`] does.
    ///
    /// # Errors
    ///
    /// As [`Client::health_service`].
    pub async fn health_state(
        &self,
        state: HealthState,
        query: &QueryOptions,
    ) -> Result<Indexed<Vec<HealthCheck>>, Error> {
        let mut params = Vec::new();
        let bound = read_params(query, &mut params);
        let answer = self
            .call(
                Method::GET,
                &["health", "state", state.as_str()],
                &params,
                None,
                bound,
            )
            .await?;
        let answer = self.require_ok(answer)?;
        self.indexed(&answer)
    }

    // -----------------------------------------------------------------------------------------
    // Catalog
    // -----------------------------------------------------------------------------------------

    /// Every service name of the catalog with the union of its tags:
    /// `GET /v1/catalog/services`. Blocks as [`Client::health_service`] does.
    ///
    /// # Errors
    ///
    /// As [`Client::health_service`].
    pub async fn catalog_services(
        &self,
        query: &QueryOptions,
    ) -> Result<Indexed<HashMap<String, Vec<String>>>, Error> {
        let mut params = Vec::new();
        let bound = read_params(query, &mut params);
        let answer = self
            .call(Method::GET, &["catalog", "services"], &params, None, bound)
            .await?;
        let answer = self.require_ok(answer)?;
        let raw: Indexed<HashMap<String, Option<Vec<String>>>> = self.indexed(&answer)?;
        Ok(raw.map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect()
        }))
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing
    // -----------------------------------------------------------------------------------------

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        let config = &self.inner.config;
        let scope = [
            ("ns", config.namespace()),
            ("partition", config.partition()),
        ];
        let mut pairs = query
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(scope.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
            .peekable();
        if pairs.peek().is_some() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    fn bound(&self, bound: Bound) -> Duration {
        let plain = self.inner.config.request_timeout();
        match bound {
            Bound::Plain => plain,
            Bound::Blocking(wait) => {
                // Consul treats a missing or zero wait as its default, and caps it.
                let wait = wait
                    .filter(|w| !w.is_zero())
                    .unwrap_or(DEFAULT_WAIT)
                    .min(MAX_WAIT);
                wait + wait / 16 + plain
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        bound: Bound,
    ) -> Result<Answer, Error> {
        let url = self.url(segments, query);
        // Never closed, so the turn always comes.
        let _turn = match bound {
            Bound::Plain => self.inner.plain.acquire().await.ok(),
            Bound::Blocking(_) => None,
        };
        let bound = self.bound(bound);
        let what = format!("{method} {}", url.path());
        tracing::debug!(method = %method, path = %url.path(), "request to Consul");

        let mut req = self.inner.http.request(method, url).timeout(bound);
        if let Some(token) = &self.inner.token {
            req = req.header(TOKEN_HEADER, token.clone());
        }
        if let Some((user, password)) = self.inner.config.basic_auth() {
            req = req.basic_auth(user, Some(password.secret()));
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }

        let started = Instant::now();
        let response = req
            .send()
            .await
            .map_err(|e| self.transport_error(e, bound))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, bound))?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            request = %what,
            "answer from Consul"
        );
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
            what,
        })
    }

    fn transport_error(&self, e: reqwest::Error, bound: Duration) -> Error {
        let config = &self.inner.config;
        let timed_out = e.is_timeout();
        transport_error(
            e,
            timed_out,
            config.address().to_owned(),
            bound,
            config.is_https(),
            &self.inner.secrets,
        )
    }

    fn require_ok(&self, answer: Answer) -> Result<Answer, Error> {
        if answer.status.is_success() {
            return Ok(answer);
        }
        let message = self.body_message(&answer);
        Err(match answer.status.as_u16() {
            403 => Error::PermissionDenied { message },
            404 => Error::NotFound { message },
            429 => Error::TooManyConnections { message },
            status => Error::Status { status, message },
        })
    }

    fn body_message(&self, answer: &Answer) -> String {
        body_message(answer.status, &answer.body, &self.inner.secrets)
    }

    fn excerpt(&self, text: &str, max: usize) -> String {
        self.inner.secrets.excerpt(text, max)
    }

    fn scrub(&self, text: String) -> String {
        self.inner.secrets.scrub(text)
    }

    fn decode<T: DeserializeOwned>(&self, answer: &Answer) -> Result<T, Error> {
        serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
            what: answer.what.clone(),
            message: self.scrub(e.to_string()),
        })
    }

    /// Decodes, taking a `null` body as the empty value.
    fn decode_or_default<T: DeserializeOwned + Default>(
        &self,
        answer: &Answer,
    ) -> Result<T, Error> {
        self.decode::<Option<T>>(answer)
            .map(Option::unwrap_or_default)
    }

    fn indexed<T: DeserializeOwned + Default>(&self, answer: &Answer) -> Result<Indexed<T>, Error> {
        let decode_error = |message: String| Error::Decode {
            what: answer.what.clone(),
            message,
        };
        let index = match header_str(&answer.headers, "X-Consul-Index") {
            None => {
                return Err(decode_error(
                    "the X-Consul-Index header is missing; a blocking read needs it".to_owned(),
                ));
            }
            Some(raw) => raw.trim().parse::<u64>().map_err(|_| {
                decode_error(format!(
                    "the X-Consul-Index header `{}` is not an unsigned integer",
                    self.excerpt(raw, 40)
                ))
            })?,
        };
        let known_leader = header_str(&answer.headers, "X-Consul-KnownLeader") == Some("true");
        let last_contact = match header_str(&answer.headers, "X-Consul-LastContact") {
            None => Duration::ZERO,
            Some(raw) => Duration::from_millis(raw.trim().parse::<u64>().map_err(|_| {
                decode_error(format!(
                    "the X-Consul-LastContact header `{}` is not a number of milliseconds",
                    self.excerpt(raw, 40)
                ))
            })?),
        };
        let value = self.decode_or_default(answer)?;
        Ok(Indexed {
            value,
            index,
            known_leader,
            last_contact,
        })
    }
}

/// Adds the common read parameters; says how long the read may take.
fn read_params(q: &QueryOptions, params: &mut Vec<(&'static str, String)>) -> Bound {
    if let Some(dc) = q.datacenter.as_deref().filter(|s| !s.is_empty()) {
        params.push(("dc", dc.to_owned()));
    }
    if let Some(filter) = q.filter.as_deref().filter(|s| !s.is_empty()) {
        params.push(("filter", filter.to_owned()));
    }
    let index = q.index.filter(|i| *i > 0);
    if let Some(i) = index {
        params.push(("index", i.to_string()));
    }
    if let Some(w) = q.wait {
        params.push(("wait", wait_param(w)));
    }
    if let Some(mode) = q.consistency.param() {
        // Consul reads only whether the parameter is present, as Go's api sends it.
        params.push((mode, String::new()));
    }
    if index.is_some() {
        Bound::Blocking(q.wait)
    } else {
        Bound::Plain
    }
}

/// `?wait=` in milliseconds, as Consul's Go api sends it; a positive wait under 1ms is sent
/// as 1ms, since Consul reads 0 as its 5-minute default.
fn wait_param(wait: Duration) -> String {
    let ms = wait.as_millis();
    let ms = if ms == 0 && !wait.is_zero() { 1 } else { ms };
    format!("{ms}ms")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn config_error(setting: &'static str, message: impl Into<String>) -> Error {
    Error::Config {
        setting,
        message: message.into(),
    }
}

/// Resolves every name to the configured host, so that a URL naming the TLS server name
/// connects to the address of `CONSUL_HTTP_ADDR`.
struct ServerNameResolver {
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for ServerNameResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::Consistency;

    #[test]
    fn consul_wait_param_in_milliseconds() {
        assert_eq!(wait_param(Duration::from_secs(1)), "1000ms");
        assert_eq!(wait_param(Duration::from_secs(300)), "300000ms");
        assert_eq!(wait_param(Duration::from_micros(10)), "1ms");
        assert_eq!(wait_param(Duration::ZERO), "0ms");
    }

    #[test]
    fn consul_bounds() {
        let client = Client::new(
            Config::builder()
                .request_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(client.bound(Bound::Plain), Duration::from_secs(2));
        assert_eq!(
            client.bound(Bound::Blocking(Some(Duration::from_secs(16)))),
            Duration::from_secs(16 + 1 + 2)
        );
        // Consul's default wait, and its cap.
        assert_eq!(
            client.bound(Bound::Blocking(None)),
            Duration::from_secs(300 + 300 / 16)
                + Duration::from_millis(750)
                + Duration::from_secs(2)
        );
        assert_eq!(
            client.bound(Bound::Blocking(Some(Duration::ZERO))),
            client.bound(Bound::Blocking(None))
        );
        assert_eq!(
            client.bound(Bound::Blocking(Some(Duration::from_secs(3600)))),
            Duration::from_secs(600 + 37) + Duration::from_millis(500) + Duration::from_secs(2)
        );
    }

    #[test]
    fn consul_urls_escape_ids_and_carry_scope() {
        let client = Client::new(
            Config::builder()
                .address("http://gw.example:8080/consul/")
                .namespace("team a")
                .partition("p1")
                .build()
                .unwrap(),
        )
        .unwrap();
        let url = client.url(
            &["agent", "service", "web/1?x#y"],
            &[("filter", "Service.Meta.v == \"2\"".to_owned())],
        );
        assert_eq!(
            url.as_str(),
            "http://gw.example:8080/consul/v1/agent/service/web%2F1%3Fx%23y?filter=Service.Meta.v+%3D%3D+%222%22&ns=team+a&partition=p1"
        );
        let plain = Client::new(Config::default()).unwrap();
        assert_eq!(
            plain
                .url(&["agent", "check", "pass", "service:web-1"], &[])
                .as_str(),
            "http://127.0.0.1:8500/v1/agent/check/pass/service:web-1"
        );
    }

    #[test]
    fn consul_read_params() {
        let mut p = Vec::new();
        let b = read_params(&QueryOptions::default(), &mut p);
        assert!(p.is_empty());
        assert!(matches!(b, Bound::Plain));

        let mut p = Vec::new();
        let b = read_params(
            &QueryOptions {
                datacenter: Some("dc2".into()),
                filter: Some("x".into()),
                index: Some(0),
                wait: Some(Duration::from_secs(1)),
                consistency: Consistency::Default,
            },
            &mut p,
        );
        assert_eq!(
            p,
            vec![
                ("dc", "dc2".to_owned()),
                ("filter", "x".to_owned()),
                ("wait", "1000ms".to_owned())
            ]
        );
        assert!(matches!(b, Bound::Plain), "index 0 does not block");

        let mut p = Vec::new();
        let b = read_params(
            &QueryOptions {
                index: Some(12),
                ..Default::default()
            },
            &mut p,
        );
        assert_eq!(p, vec![("index", "12".to_owned())]);
        assert!(matches!(b, Bound::Blocking(None)));

        for (mode, param) in [
            (Consistency::Stale, "stale"),
            (Consistency::Cached, "cached"),
        ] {
            let mut p = Vec::new();
            let b = read_params(
                &QueryOptions {
                    consistency: mode,
                    ..QueryOptions::blocking(12, Duration::from_secs(1))
                },
                &mut p,
            );
            assert_eq!(
                p,
                vec![
                    ("index", "12".to_owned()),
                    ("wait", "1000ms".to_owned()),
                    (param, String::new())
                ]
            );
            assert!(matches!(b, Bound::Blocking(Some(_))));
        }
    }

    #[test]
    fn consul_client_debug_hides_the_token() {
        let client = Client::new(
            Config::builder()
                .token("tok-9f8e7d6c-secret")
                .basic_auth("bob", "pw-9f8e7d6c-secret")
                .build()
                .unwrap(),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("9f8e7d6c"), "{shown}");
        assert!(shown.contains("127.0.0.1:8500"), "{shown}");
        assert_eq!(
            client.scrub("echo tok-9f8e7d6c-secret and pw-9f8e7d6c-secret".into()),
            "echo <redacted> and <redacted>",
            "both secrets of the configuration are scrubbed"
        );
    }
}
