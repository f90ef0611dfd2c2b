//! The service description that the attribute and the builder both produce.
//!
//! [`Service::builder`] checks every field with the same rules the `#[discoverable]` attribute
//! checks at compile time (crate `discoverable-rules`), then applies the `DISCOVERABLE_*`
//! environment variables, which override what the code set so operators can change a
//! deployment without a rebuild.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use discoverable_rules::{self as rules, CheckTiming, Description, Given, Timed};

use crate::consul;
use crate::error::Error;
use crate::health::{Health, Indicator};
use crate::settings::Lifecycle;

/// A service to make discoverable: its Consul metadata, its health check, and how it shuts
/// down. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use discoverable::Service;
///
/// let service = Service::builder("cool_app")
///     .prefix("/oops")
///     .tag("v1")
///     .meta("team", "payments")
///     .interval(Duration::from_secs(5))
///     .timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(service.name(), "cool_app");
/// assert_eq!(service.tags(), ["urlprefix-/oops", "v1"]);
/// # Ok::<(), discoverable::Error>(())
/// ```
///
/// A `Service` is a description and has no ID: each serve call runs an instance of it with an
/// ID of its own (see [`Instance`](crate::Instance), and [`Service::new_instance`]).
#[derive(Clone)]
pub struct Service {
    pub(crate) settings: std::sync::Arc<Settings>,
}

/// Everything [`Service`] knows, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) check: CheckTiming,
    pub(crate) deregister_after: Duration,
    /// How the instance starts, is reached and stops: what `DISCOVERABLE_*` can override.
    pub(crate) lifecycle: Lifecycle,
    pub(crate) consul: consul::Config,
    /// The health route's path.
    pub(crate) health_path: String,
    /// The user's health indicators, which the health route runs.
    pub(crate) indicators: Vec<Indicator>,
    /// What the running instances share: their agent's client, one blocking read.
    pub(crate) agent: std::sync::Arc<crate::serve::agent::Slot>,
}

impl Service {
    /// Starts describing a service called `name` (letters, digits, `-`, `_`; at most 63).
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder::new(name.into())
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Every tag registered: the `urlprefix-` route first (when there is a prefix), then the
    /// user's tags.
    pub fn tags(&self) -> &[String] {
        &self.settings.tags
    }

    /// The service meta.
    pub fn meta(&self) -> &BTreeMap<String, String> {
        &self.settings.meta
    }

    /// The health route's path.
    pub fn health_path(&self) -> &str {
        &self.settings.health_path
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Builds a [`Service`]; setters take and return the builder, [`build`](Self::build) checks.
#[must_use = "call .build() to get the Service"]
pub struct ServiceBuilder {
    name: String,
    prefix: Option<String>,
    strip: bool,
    tags: Vec<String>,
    meta: Vec<(String, String)>,
    health_path: Option<String>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    ttl: Option<Duration>,
    deregister_after: Duration,
    indicators: Vec<Indicator>,
    lifecycle: Lifecycle,
    consul: Option<consul::Config>,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    fn new(name: String) -> Self {
        ServiceBuilder {
            name,
            prefix: None,
            strip: false,
            tags: Vec::new(),
            meta: Vec::new(),
            health_path: None,
            interval: None,
            timeout: None,
            ttl: None,
            deregister_after: rules::DEFAULT_DEREGISTER_AFTER,
            indicators: Vec::new(),
            lifecycle: Lifecycle::default(),
            consul: None,
        }
    }

    /// The route Fabio serves this service under: `/path` or `host/path`. Registered as the
    /// tag `urlprefix-<prefix>`. Without a prefix no route tag is registered.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Asks Fabio to strip the prefix's path before forwarding (`strip=` route option).
    pub fn strip(mut self, strip: bool) -> Self {
        self.strip = strip;
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds a meta pair (at most 64; keys `[A-Za-z0-9_-]`, at most 128 characters, not
    /// starting with `consul-`; values at most 512 characters).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }

    /// The health route's path (default `/health`). The route is answered before the app.
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = Some(path.into());
        self
    }

    /// Time between Consul's HTTP checks (default 10 s, at least 1 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Time Consul's HTTP check, and each health indicator, may take (default 5 s; shorter
    /// than the interval).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Uses a TTL check instead of an HTTP check: the runtime reports the health to Consul
    /// every third of `ttl`. Excludes `health_path`, `interval` and `timeout`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long the check may stay critical before Consul removes the instance (default and
    /// minimum 1 min): the backstop for a process that died without deregistering.
    pub fn deregister_after(mut self, after: Duration) -> Self {
        self.deregister_after = after;
        self
    }

    /// Adds a health indicator: an async function whose result (a [`Health`] or a `bool`)
    /// the health route folds into its answer. One that takes longer than the check timeout
    /// counts as down.
    pub fn check<F, Fut, H>(mut self, name: impl Into<String>, indicator: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = H> + Send + 'static,
        H: Into<Health>,
    {
        self.indicators.push(Indicator::new(name, indicator));
        self
    }

    /// Fails start-up when Consul cannot be reached, instead of serving and retrying in the
    /// background (default `false`; `DISCOVERABLE_FAIL_FAST`).
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.lifecycle.fail_fast = fail_fast;
        self
    }

    /// The address registered in Consul (IP or host name). Default: the bound IP, or the
    /// host's primary IP when bound to `0.0.0.0` / `::` (`DISCOVERABLE_ADVERTISE_ADDR`).
    pub fn advertise_address(mut self, address: impl Into<String>) -> Self {
        self.lifecycle.advertise_address = Some(address.into());
        self
    }

    /// The port registered in Consul. Default: the bound port (`DISCOVERABLE_ADVERTISE_PORT`).
    pub fn advertise_port(mut self, port: u16) -> Self {
        self.lifecycle.advertise_port = Some(port);
        self
    }

    /// Time between deregistration and closing the listener (default 2 s;
    /// `DISCOVERABLE_GRACE_PERIOD`).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.lifecycle.grace_period = grace;
        self
    }

    /// Bound on finishing in-flight requests at shutdown (default 10 s;
    /// `DISCOVERABLE_DRAIN_TIMEOUT`).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.lifecycle.drain_timeout = timeout;
        self
    }

    /// Bound on the deregistration call at shutdown (default 3 s;
    /// `DISCOVERABLE_DEREGISTER_TIMEOUT`).
    pub fn deregister_timeout(mut self, timeout: Duration) -> Self {
        self.lifecycle.deregister_timeout = timeout;
        self
    }

    /// First and largest delay between registration attempts (default 100 ms and 2 s,
    /// exponential with jitter; `DISCOVERABLE_RETRY_MIN`, `DISCOVERABLE_RETRY_MAX`).
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.lifecycle.retry_min = min;
        self.lifecycle.retry_max = max;
        self
    }

    /// How to reach Consul. Default: Consul's own environment variables
    /// (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, ...), as the Consul CLI reads them.
    pub fn consul(mut self, config: consul::Config) -> Self {
        self.consul = Some(config);
        self
    }

    /// Checks every field, applies the environment, and returns the service.
    pub fn build(self) -> Result<Service, Error> {
        self.build_with(|key| std::env::var(key).ok())
    }

    pub(crate) fn build_with(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Service, Error> {
        let env = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        if let Some(v) = env("DISCOVERABLE_TAGS") {
            self.tags.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from),
            );
        }
        let given = |value: Option<Duration>| value.map(Timed::Exact).into();
        let description = Description {
            name: Given::Value(&self.name),
            prefix: self.prefix.as_deref().into(),
            strip: Given::Value(self.strip),
            tags: self.tags.iter().map(String::as_str).collect(),
            meta: self
                .meta
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            health: self.health_path.as_deref().into(),
            interval: given(self.interval),
            timeout: given(self.timeout),
            deregister_after: given(Some(self.deregister_after)),
            ttl: given(self.ttl),
            checks: self.indicators.iter().map(|i| &*i.name).collect(),
            grpc: false,
        };
        let mut first = None;
        rules::check_service(&description, |_, error| {
            first.get_or_insert(error);
        });
        if let Some(error) = first {
            return Err(error.into());
        }

        let mut tags = Vec::with_capacity(self.tags.len() + 1);
        if let Some(prefix) = &self.prefix {
            tags.push(rules::urlprefix_tag(prefix, self.strip));
        }
        tags.extend(self.tags);
        let check = match self.ttl {
            Some(ttl) => CheckTiming::Ttl { ttl },
            None => CheckTiming::Http {
                interval: self.interval.unwrap_or(rules::DEFAULT_INTERVAL),
                timeout: self.timeout.unwrap_or(rules::DEFAULT_TIMEOUT),
            },
        };
        let health_path = self
            .health_path
            .unwrap_or_else(|| rules::DEFAULT_HEALTH_PATH.to_owned());

        let mut settings = Settings {
            name: self.name,
            tags,
            meta: self.meta.into_iter().collect(),
            check,
            deregister_after: self.deregister_after,
            lifecycle: self.lifecycle.checked()?,
            consul: match self.consul {
                Some(config) => config,
                None => consul::Config::from_lookup(env)?,
            },
            health_path,
            indicators: self.indicators,
            agent: std::sync::Arc::default(),
        };
        settings.lifecycle.apply_env(&env)?;
        Ok(Service {
            settings: std::sync::Arc::new(settings),
        })
    }
}

impl Settings {
    /// How long the health route's answer may take: the HTTP check's timeout, or a third of
    /// the TTL (the runtime reports that often).
    pub(crate) fn check_timeout(&self) -> Duration {
        match self.check {
            CheckTiming::Http { timeout, .. } => timeout,
            CheckTiming::Ttl { ttl } => ttl / 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use discoverable_rules::Field;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn builds_with_defaults() {
        let s = Service::builder("cool_app")
            .prefix("/oops")
            .build_with(env(&[]))
            .unwrap();
        assert_eq!(s.tags(), ["urlprefix-/oops"]);
        let id = s.new_instance().id().to_owned();
        assert!(id.starts_with("cool_app-"));
        assert_eq!(id.len(), "cool_app-".len() + 36);
        assert_eq!(s.health_path(), "/health");
        assert_eq!(
            s.settings.lifecycle.grace_period,
            crate::DEFAULT_GRACE_PERIOD
        );
        assert_eq!(
            s.settings.check,
            CheckTiming::Http {
                interval: rules::DEFAULT_INTERVAL,
                timeout: rules::DEFAULT_TIMEOUT
            }
        );
    }

    #[test]
    fn each_instance_gets_its_own_id() {
        let a = Service::builder("a").build_with(env(&[])).unwrap();
        let b = Service::builder("a").build_with(env(&[])).unwrap();
        assert_ne!(a.new_instance().id(), b.new_instance().id());
        assert_ne!(a.new_instance().id(), a.new_instance().id());
        // The description carries none.
        let described = Service::builder("idless").build_with(env(&[])).unwrap();
        assert!(described.new_instance().id().starts_with("idless-"));
        assert!(
            !format!("{described:?}").contains("idless-"),
            "{described:?}"
        );
    }

    #[test]
    fn same_rules_as_the_attribute() {
        let err = |b: ServiceBuilder| match b.build_with(env(&[])) {
            Err(Error::InvalidService(e)) => e.field(),
            other => panic!("expected a rule error, got {other:?}"),
        };
        assert_eq!(err(Service::builder("")), Field::Name);
        assert_eq!(err(Service::builder("a b")), Field::Name);
        assert_eq!(err(Service::builder("a").prefix("oops")), Field::Prefix);
        assert_eq!(
            err(Service::builder("a").meta("consul-x", "v")),
            Field::Meta
        );
        assert_eq!(err(Service::builder("a").tag("")), Field::Tags);
        assert_eq!(err(Service::builder("a").tag("v1 ")), Field::Tags);
        assert_eq!(
            err(Service::builder("a").health_path("health")),
            Field::Health
        );
        assert_eq!(
            err(Service::builder("a")
                .interval(Duration::from_secs(2))
                .timeout(Duration::from_secs(3))),
            Field::Timeout
        );
        assert_eq!(
            err(Service::builder("a").deregister_after(Duration::from_secs(5))),
            Field::DeregisterAfter
        );
        assert_eq!(
            err(Service::builder("a")
                .ttl(Duration::from_secs(5))
                .health_path("/h")),
            Field::Health
        );
        let many = (0..65).fold(Service::builder("a"), |b, i| b.meta(format!("k{i}"), "v"));
        assert_eq!(err(many), Field::Meta);
    }

    #[test]
    fn environment_overrides_code() {
        let s = Service::builder("a")
            .grace_period(Duration::from_secs(9))
            .advertise_port(1)
            .build_with(env(&[
                ("DISCOVERABLE_ADVERTISE_ADDR", "10.1.2.3"),
                ("DISCOVERABLE_ADVERTISE_PORT", "8080"),
                ("DISCOVERABLE_GRACE_PERIOD", "0s"),
                ("DISCOVERABLE_DRAIN_TIMEOUT", "1m"),
                ("DISCOVERABLE_FAIL_FAST", "true"),
                ("DISCOVERABLE_TAGS", "blue, canary"),
            ]))
            .unwrap();
        assert_eq!(
            s.settings.lifecycle.advertise_address.as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(s.settings.lifecycle.advertise_port, Some(8080));
        assert_eq!(s.settings.lifecycle.grace_period, Duration::ZERO);
        assert_eq!(s.settings.lifecycle.drain_timeout, Duration::from_secs(60));
        assert!(s.settings.lifecycle.fail_fast);
        assert_eq!(s.tags(), ["blue", "canary"]);
    }

    #[test]
    fn every_duration_setting_has_a_range_and_the_error_names_its_source() {
        let named = |b: ServiceBuilder, vars: &[(&str, &str)]| match b.build_with(env(vars)) {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("{vars:?}: expected a Config error, got {other:?}"),
        };
        for (key, value) in [
            ("DISCOVERABLE_DEREGISTER_TIMEOUT", "0s"),
            ("DISCOVERABLE_GRACE_PERIOD", "99999999999h"),
            ("DISCOVERABLE_GRACE_PERIOD", "11m"),
            ("DISCOVERABLE_DRAIN_TIMEOUT", "0s"),
            ("DISCOVERABLE_RETRY_MIN", "0s"),
            ("DISCOVERABLE_RETRY_MAX", "2h"),
        ] {
            let (setting, message) = named(Service::builder("a"), &[(key, value)]);
            assert_eq!(setting, key, "{message}");
        }
        let (setting, message) = named(
            Service::builder("a"),
            &[("DISCOVERABLE_GRACE_PERIOD", "11m")],
        );
        assert_eq!(setting, "DISCOVERABLE_GRACE_PERIOD");
        assert!(message.contains("from 0s to 10m"), "{message}");
        // The builder's own values are checked too, named by the method.
        let (setting, _) = named(
            Service::builder("a").deregister_timeout(Duration::ZERO),
            &[],
        );
        assert_eq!(setting, "deregister_timeout");
        // Only the largest retry delay set, below the first one's default: that one is named.
        let (setting, message) = named(Service::builder("a"), &[("DISCOVERABLE_RETRY_MAX", "1ms")]);
        assert_eq!(setting, "DISCOVERABLE_RETRY_MAX", "{message}");
        let (setting, _) = named(Service::builder("a"), &[("DISCOVERABLE_RETRY_MIN", "5s")]);
        assert_eq!(setting, "DISCOVERABLE_RETRY_MIN");
        // The bounds themselves are fine.
        Service::builder("a")
            .build_with(env(&[
                ("DISCOVERABLE_GRACE_PERIOD", "10m"),
                ("DISCOVERABLE_DEREGISTER_TIMEOUT", "10ms"),
            ]))
            .unwrap();
    }

    /// A hung indicator is cut before the check's own timeout, so the health route answers
    /// 503 naming it in time for Consul to record that, not a timeout of its own.
    #[tokio::test(start_paused = true)]
    async fn a_hung_indicator_is_reported_before_the_checks_timeout() {
        let service = Service::builder("a")
            .interval(Duration::from_secs(2))
            .timeout(Duration::from_secs(1))
            .check("hung", std::future::pending::<Health>)
            .build_with(env(&[]))
            .unwrap();
        let asked = tokio::time::Instant::now();
        let report = service.new_instance().report().await;
        let took = asked.elapsed();
        assert_eq!(report.status, Health::Down);
        assert!(report.to_json().contains("hung"), "{}", report.to_json());
        assert_eq!(
            took,
            Duration::from_millis(800),
            "cut at four fifths of 1 s"
        );
    }

    #[test]
    fn the_builders_advertised_address_and_port_are_checked_as_the_environments() {
        let named = |b: ServiceBuilder| match b.build_with(env(&[])) {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("expected a Config error, got {other:?}"),
        };
        let (setting, message) = named(Service::builder("a").advertise_address("not an addr!"));
        assert_eq!(setting, "advertise_address");
        assert!(
            message.contains("an IP address or a host name"),
            "{message}"
        );
        let (setting, _) = named(Service::builder("a").advertise_address("999.1.1.1"));
        assert_eq!(setting, "advertise_address");
        let (setting, message) = named(Service::builder("a").advertise_port(0));
        assert_eq!(setting, "advertise_port");
        assert!(message.contains("from 1 to 65535"), "{message}");
        // Brackets around an IPv6 address are taken off, as from the environment.
        for (given, kept) in [
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("svc.internal", "svc.internal"),
        ] {
            let s = Service::builder("a")
                .advertise_address(given)
                .build_with(env(&[]))
                .unwrap();
            assert_eq!(
                s.settings.lifecycle.advertise_address.as_deref(),
                Some(kept),
                "{given}"
            );
        }
    }

    #[test]
    fn the_builder_keeps_the_attributes_rules() {
        let err = |b: ServiceBuilder| match b.build_with(env(&[])) {
            Err(Error::InvalidService(e)) => e,
            other => panic!("expected InvalidService, got {other:?}"),
        };
        let e = err(Service::builder("a").meta("k", "1").meta("k", "2"));
        assert_eq!(e.field(), Field::Meta);
        assert!(e.message().contains("more than once"), "{e}");
        let e = err(Service::builder("a").strip(true));
        assert_eq!(e.field(), Field::Strip);
        let e = err(Service::builder("a")
            .check("db", || async { true })
            .check("db", || async { false }));
        assert_eq!(e.field(), Field::Checks);
        assert!(e.message().contains("`db`"), "{e}");
        Service::builder("a")
            .prefix("/a")
            .strip(true)
            .meta("k", "1")
            .meta("j", "1")
            .build_with(env(&[]))
            .unwrap();
    }

    #[test]
    fn a_mistyped_ipv4_address_is_not_a_host_name() {
        for value in ["999.1.1.1", "10.0.0.256", "1234"] {
            match Service::builder("a").build_with(env(&[("DISCOVERABLE_ADVERTISE_ADDR", value)])) {
                Err(Error::Config { setting, message }) => {
                    assert_eq!(setting, "DISCOVERABLE_ADVERTISE_ADDR");
                    assert!(message.contains("IP"), "{message}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
        for ok in ["10.0.0.1", "app-1.internal", "::1", "[fe80::1]", "host9"] {
            Service::builder("a")
                .build_with(env(&[("DISCOVERABLE_ADVERTISE_ADDR", ok)]))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn malformed_environment_names_the_variable() {
        for (key, value) in [
            ("DISCOVERABLE_ADVERTISE_ADDR", "not an address!"),
            ("DISCOVERABLE_ADVERTISE_PORT", "70000"),
            ("DISCOVERABLE_ADVERTISE_PORT", "0"),
            ("DISCOVERABLE_GRACE_PERIOD", "soon"),
            ("DISCOVERABLE_FAIL_FAST", "maybe"),
            ("DISCOVERABLE_RETRY_MIN", "1h"),
        ] {
            match Service::builder("a").build_with(env(&[(key, value)])) {
                Err(e @ Error::Config { setting, .. }) => {
                    assert_eq!(setting, key);
                    assert!(e.to_string().contains(key), "{e}");
                }
                other => panic!("{key}={value}: expected a config error, got {other:?}"),
            }
        }
    }
}
