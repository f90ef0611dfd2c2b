//! The settings of the serve lifecycle that a deployment changes without a rebuild: how the
//! instance is reached (advertised address and port), whether start-up needs Consul, and the
//! bounds of its shutdown and retries. Each has its builder method, its `DISCOVERABLE_*`
//! variable and its range here, in one place.

use std::time::Duration;

use discoverable_rules as rules;

use crate::error::Error;

/// Default time between deregistration and closing the listener: routers that watch Consul
/// with blocking queries (Fabio, [`Discovery`](crate::Discovery)) drop the instance within
/// milliseconds; two seconds also covers a loaded Consul cluster and the router's table swap.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(2);
/// Default bound on finishing in-flight requests after the listener closed: long enough for
/// ordinary requests, and with the grace period well inside the 30 s a scheduler such as
/// Kubernetes or Nomad waits before it kills.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on the deregistration call during shutdown; when Consul does not answer in
/// time the check's `DeregisterCriticalServiceAfter` removes the instance later.
pub const DEFAULT_DEREGISTER_TIMEOUT: Duration = Duration::from_secs(3);
/// Default first delay between registration attempts while Consul cannot be reached.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(100);
/// Default cap on the delay between registration attempts: with jitter, the instance is
/// registered within about 2 s of Consul answering again.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(2);

/// The lifecycle settings, as the builder and then the environment set them.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    pub(crate) fail_fast: bool,
    pub(crate) advertise_address: Option<String>,
    pub(crate) advertise_port: Option<u16>,
    pub(crate) grace_period: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) deregister_timeout: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            fail_fast: false,
            advertise_address: None,
            advertise_port: None,
            grace_period: DEFAULT_GRACE_PERIOD,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            deregister_timeout: DEFAULT_DEREGISTER_TIMEOUT,
            retry_min: DEFAULT_RETRY_MIN,
            retry_max: DEFAULT_RETRY_MAX,
        }
    }
}

/// A duration setting of the serve lifecycle, set by a builder method or a `DISCOVERABLE_*`
/// variable. Each has a range, so that no value makes an instance impossible to deregister
/// (a zero deregistration bound) or to stop (a grace period of years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Setting {
    /// `grace_period` / `DISCOVERABLE_GRACE_PERIOD`: 0 to 10 minutes.
    GracePeriod,
    /// `drain_timeout` / `DISCOVERABLE_DRAIN_TIMEOUT`: 1 ms to 1 hour.
    DrainTimeout,
    /// `deregister_timeout` / `DISCOVERABLE_DEREGISTER_TIMEOUT`: 10 ms to 5 minutes.
    DeregisterTimeout,
    /// The first retry delay, `retry_backoff` / `DISCOVERABLE_RETRY_MIN`: 1 ms to 10 minutes.
    RetryMin,
    /// The largest retry delay, `retry_backoff` / `DISCOVERABLE_RETRY_MAX`: 1 ms to 1 hour.
    RetryMax,
}

impl Setting {
    /// Every setting.
    pub(crate) const ALL: [Setting; 5] = [
        Setting::GracePeriod,
        Setting::DrainTimeout,
        Setting::DeregisterTimeout,
        Setting::RetryMin,
        Setting::RetryMax,
    ];

    /// The environment variable that overrides it.
    pub(crate) const fn env_var(self) -> &'static str {
        match self {
            Setting::GracePeriod => "DISCOVERABLE_GRACE_PERIOD",
            Setting::DrainTimeout => "DISCOVERABLE_DRAIN_TIMEOUT",
            Setting::DeregisterTimeout => "DISCOVERABLE_DEREGISTER_TIMEOUT",
            Setting::RetryMin => "DISCOVERABLE_RETRY_MIN",
            Setting::RetryMax => "DISCOVERABLE_RETRY_MAX",
        }
    }

    /// The builder method that sets it.
    pub(crate) const fn builder_method(self) -> &'static str {
        match self {
            Setting::GracePeriod => "grace_period",
            Setting::DrainTimeout => "drain_timeout",
            Setting::DeregisterTimeout => "deregister_timeout",
            Setting::RetryMin | Setting::RetryMax => "retry_backoff",
        }
    }

    /// The least and the largest value allowed, both included.
    pub(crate) const fn range(self) -> (Duration, Duration) {
        const MS: Duration = Duration::from_millis(1);
        match self {
            Setting::GracePeriod => (Duration::ZERO, Duration::from_secs(10 * 60)),
            Setting::DrainTimeout => (MS, Duration::from_secs(60 * 60)),
            Setting::DeregisterTimeout => (Duration::from_millis(10), Duration::from_secs(5 * 60)),
            Setting::RetryMin => (MS, Duration::from_secs(10 * 60)),
            Setting::RetryMax => (MS, Duration::from_secs(60 * 60)),
        }
    }
}

/// Checks a setting's value against its [range](Setting::range); the error says the range.
fn check_setting(setting: Setting, value: Duration) -> std::result::Result<(), String> {
    let (least, most) = setting.range();
    if value < least || value > most {
        return Err(format!(
            "{} is out of range; give a duration from {} to {}",
            rules::show_duration(value),
            rules::show_duration(least),
            rules::show_duration(most)
        ));
    }
    Ok(())
}

impl Lifecycle {
    /// The builder's values, checked as the same values from the environment are.
    pub(crate) fn checked(mut self) -> Result<Lifecycle, Error> {
        self.advertise_address = self
            .advertise_address
            .map(|a| parse_host("advertise_address", &a))
            .transpose()?;
        self.advertise_port = self
            .advertise_port
            .map(|p| parse_port("advertise_port", &p.to_string()))
            .transpose()?;
        Ok(self)
    }

    /// Applies the `DISCOVERABLE_*` variables (each overrides the builder's value), then checks
    /// every duration against its range.
    pub(crate) fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(v) = env("DISCOVERABLE_ADVERTISE_ADDR") {
            self.advertise_address = Some(parse_host("DISCOVERABLE_ADVERTISE_ADDR", &v)?);
        }
        if let Some(v) = env("DISCOVERABLE_ADVERTISE_PORT") {
            self.advertise_port = Some(parse_port("DISCOVERABLE_ADVERTISE_PORT", &v)?);
        }
        // Where each duration came from, to name it when it is wrong: the variable when the
        // environment set it, else the builder method.
        let mut source = Setting::ALL.map(Setting::builder_method);
        let durations: [(Setting, &mut Duration); 5] = [
            (Setting::GracePeriod, &mut self.grace_period),
            (Setting::DrainTimeout, &mut self.drain_timeout),
            (Setting::DeregisterTimeout, &mut self.deregister_timeout),
            (Setting::RetryMin, &mut self.retry_min),
            (Setting::RetryMax, &mut self.retry_max),
        ];
        for (i, (setting, slot)) in durations.into_iter().enumerate() {
            let key = setting.env_var();
            if let Some(v) = env(key) {
                *slot = rules::read_duration(&v).map_err(|message| Error::Config {
                    setting: key,
                    message,
                })?;
                source[i] = key;
            }
            check_setting(setting, *slot).map_err(|message| Error::Config {
                setting: source[i],
                message,
            })?;
        }
        if let Some(v) = env("DISCOVERABLE_FAIL_FAST") {
            self.fail_fast = crate::consul::parse_go_bool("DISCOVERABLE_FAIL_FAST", &v)?;
        }
        if self.retry_min > self.retry_max {
            // Name the one the user changed: the largest delay when only it moved from its
            // default.
            let (min_source, max_source) = (source[3], source[4]);
            let min_moved =
                min_source.starts_with("DISCOVERABLE_") || self.retry_min != DEFAULT_RETRY_MIN;
            let max_moved =
                max_source.starts_with("DISCOVERABLE_") || self.retry_max != DEFAULT_RETRY_MAX;
            let (setting, message) = if max_moved && !min_moved {
                (
                    max_source,
                    format!(
                        "the largest retry delay ({}) is below the first one ({}); give at least that",
                        rules::show_duration(self.retry_max),
                        rules::show_duration(self.retry_min)
                    ),
                )
            } else {
                (
                    min_source,
                    format!(
                        "the first retry delay ({}) is above the largest one ({}); give at most that",
                        rules::show_duration(self.retry_min),
                        rules::show_duration(self.retry_max)
                    ),
                )
            };
            return Err(Error::Config { setting, message });
        }
        Ok(())
    }
}

fn config_error(setting: &'static str, value: &str, expected: &str) -> Error {
    Error::Config {
        setting,
        message: format!("{value:?} is not valid; expected {expected}"),
    }
}

/// A port other hosts can reach: 1 to 65535.
fn parse_port(setting: &'static str, value: &str) -> Result<u16, Error> {
    match value.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(config_error(
            setting,
            value,
            "a port number from 1 to 65535",
        )),
    }
}

/// An IP address or a DNS host name.
fn parse_host(setting: &'static str, value: &str) -> Result<String, Error> {
    let v = value.trim();
    let v = v
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(v);
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok(v.to_owned());
    }
    let is_host = v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    // A name whose last label is all digits is no host name (no top-level domain is
    // numeric): `999.1.1.1` is a mistyped IPv4 address.
    let numeric_tail = v
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
    if is_host && !numeric_tail {
        Ok(v.to_owned())
    } else if is_host {
        Err(config_error(
            setting,
            value,
            "an IP address (this is not a valid IPv4 address) or a host name",
        ))
    } else {
        Err(config_error(setting, value, "an IP address or a host name"))
    }
}
