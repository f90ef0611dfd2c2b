//! The rules a discoverable service's metadata must follow, in one place.
//!
//! Both the `#[discoverable]` attribute (which turns each broken rule into a compile error
//! pointing at the offending argument) and `Service::builder` (which returns the first as a
//! run-time error) call [`check_service`]. A plain, dependency-light crate is the one form
//! both a proc-macro crate and the runtime can compile and call; `const fn` checks could not
//! parse durations or build messages.
//!
//! The limits are Consul's (`agent/structs/structs.go`: service meta) and Fabio's (route tags
//! `urlprefix-<host>/<path>`). Service names may contain `_` because Consul accepts it, but DNS
//! lookups (`<name>.service.consul`) cannot find such a name; use `-` if you need DNS.
//!
//! Consul's durations are Go's, and read and written here once for everything that speaks to
//! Consul or acts as it (the attribute, the runtime, the dev agent): [`parse_go_duration`] as
//! Go's `time.ParseDuration`, [`GoDuration`]'s `Display` as Go's `Duration.String`, and
//! [`go_duration`], the exact one-unit form sent to Consul.
//!
//! The rules are walked once, by [`check_service`], over a [`Description`] of what was
//! written:
//!
//! ```
//! use discoverable_rules as rules;
//!
//! let written = rules::Description {
//!     name: rules::Given::Value("cool_app"),
//!     prefix: rules::Given::Value("/oops"),
//!     interval: rules::Given::Value(rules::Timed::Text("1m30s")),
//!     ..rules::Description::default()
//! };
//! let read = rules::check_service(&written, |place, error| panic!("{place:?}: {error}"));
//! assert_eq!(read.interval.unwrap().as_secs(), 90);
//! assert_eq!(rules::urlprefix_tag("/oops", true), "urlprefix-/oops strip=/oops");
//! ```

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

use std::fmt;
use std::time::Duration;

mod go;
mod service;

pub use go::{GoDuration, GoDurationError, go_duration, parse_go_duration};
pub use service::{Description, Durations, Given, Place, Timed, check_service};

/// Longest service name: a DNS label.
pub const NAME_MAX_LEN: usize = 63;
/// Most meta pairs Consul accepts on a service.
pub const META_MAX_PAIRS: usize = 64;
/// Longest meta key Consul accepts.
pub const META_KEY_MAX_LEN: usize = 128;
/// Longest meta value Consul accepts.
pub const META_VALUE_MAX_LEN: usize = 512;
/// Meta key prefix Consul reserves for itself.
pub const META_RESERVED_PREFIX: &str = "consul-";
/// Shortest `DeregisterCriticalServiceAfter` Consul honours (`check_deregister_interval_min`).
pub const DEREGISTER_MIN: Duration = Duration::from_secs(60);
/// Shortest check interval Consul runs (`MinInterval`); shorter ones are raised to it.
pub const INTERVAL_MIN: Duration = Duration::from_secs(1);

/// Default health route path.
pub const DEFAULT_HEALTH_PATH: &str = "/health";
/// Default HTTP check interval: Consul's own examples and Spring Cloud Consul use 10 s. Routing
/// does not wait for it (the instance registers as passing after a local probe), so it only
/// bounds how fast Consul notices a hung process.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default HTTP check timeout: half the interval, so a slow answer fails the check before the
/// next one is due.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `DeregisterCriticalServiceAfter`: Consul's minimum, so a crashed instance that
/// never deregistered itself leaves the catalog as soon as Consul allows.
pub const DEFAULT_DEREGISTER_AFTER: Duration = DEREGISTER_MIN;

/// The argument (or builder setting) a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `name`
    Name,
    /// `prefix`
    Prefix,
    /// `tags`
    Tags,
    /// `meta`
    Meta,
    /// `health`
    Health,
    /// `interval`
    Interval,
    /// `timeout`
    Timeout,
    /// `deregister_after`
    DeregisterAfter,
    /// `ttl`
    Ttl,
    /// `strip`
    Strip,
    /// `checks`: the health indicators
    Checks,
}

impl Field {
    /// The argument's name as the attribute and the builder spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Prefix => "prefix",
            Field::Tags => "tags",
            Field::Meta => "meta",
            Field::Health => "health",
            Field::Interval => "interval",
            Field::Timeout => "timeout",
            Field::DeregisterAfter => "deregister_after",
            Field::Ttl => "ttl",
            Field::Strip => "strip",
            Field::Checks => "checks",
        }
    }
}

/// A broken rule: which argument, and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    field: Field,
    message: String,
    /// The message names its setting itself, so it is shown without the name in front.
    names_itself: bool,
}

impl RuleError {
    fn new(field: Field, message: impl Into<String>) -> Self {
        RuleError {
            field,
            message: message.into(),
            names_itself: false,
        }
    }

    /// A rule whose message already says which setting it is about.
    fn naming_itself(field: Field, message: impl Into<String>) -> Self {
        RuleError {
            names_itself: true,
            ..RuleError::new(field, message)
        }
    }

    /// The same error, with `note` added to its message.
    fn noted(mut self, note: &str) -> Self {
        self.message.push_str(note);
        self
    }

    /// The argument the rule is about.
    pub fn field(&self) -> Field {
        self.field
    }

    /// The message, without the argument name in front.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.names_itself {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.field.as_str(), self.message)
        }
    }
}

impl std::error::Error for RuleError {}

type Result<T = ()> = std::result::Result<T, RuleError>;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A service name: 1 to 63 letters, digits, `-` and `_`.
pub(crate) fn check_name(name: &str) -> Result {
    if name.is_empty() {
        return Err(RuleError::new(
            Field::Name,
            "the service name is empty; give the name clients look the service up by, e.g. \"cool_app\"",
        ));
    }
    if name.len() > NAME_MAX_LEN {
        return Err(RuleError::new(
            Field::Name,
            format!(
                "the service name is {} characters long; the limit is {NAME_MAX_LEN} (one DNS label)",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(RuleError::new(
            Field::Name,
            format!("the service name contains {c:?}; use only letters, digits, `-` and `_`"),
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        // Not a DNS label: `<name>.service.consul` cannot be looked up.
        return Err(RuleError::new(
            Field::Name,
            format!(
                "the service name `{name}` starts or ends with `-`, which a DNS label cannot; start and end it with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A Fabio route source: `/path` or `host/path` (host may start with `*.` and end in `:port`),
/// with no whitespace.
pub(crate) fn check_prefix(prefix: &str) -> Result {
    const HINT: &str =
        "write a path prefix such as \"/oops\", or a host and path such as \"example.com/oops\"";
    if prefix.is_empty() {
        return Err(RuleError::new(
            Field::Prefix,
            format!("the prefix is empty; {HINT}"),
        ));
    }
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RuleError::new(
            Field::Prefix,
            format!(
                "the prefix contains whitespace, which separates options in Fabio's `urlprefix-` tag; {HINT}"
            ),
        ));
    }
    if prefix.starts_with(':') {
        return Err(RuleError::new(
            Field::Prefix,
            format!("`{prefix}` is a TCP route; discoverable serves HTTP, so {HINT}"),
        ));
    }
    let Some(slash) = prefix.find('/') else {
        return Err(RuleError::new(
            Field::Prefix,
            format!("`{prefix}` has no `/`; a route needs a path; {HINT}"),
        ));
    };
    let (host, path) = prefix.split_at(slash);
    if !host.is_empty() {
        check_route_host(host)?;
    }
    if let Some(c) = path.chars().find(|c| matches!(c, '?' | '#' | '"' | '\\')) {
        return Err(RuleError::new(
            Field::Prefix,
            format!("the path `{path}` contains {c:?}; a route matches paths only, {HINT}"),
        ));
    }
    Ok(())
}

fn check_route_host(host: &str) -> Result {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(RuleError::new(
                Field::Prefix,
                format!("`{port}` in host `{host}` is not a port number"),
            ));
        }
    }
    let name = name.strip_prefix("*.").unwrap_or(name);
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !ok {
        return Err(RuleError::new(
            Field::Prefix,
            format!(
                "`{host}` is not a host name Fabio can route; use letters, digits, `-` and `.` (optionally `*.` in front and `:port` after), or start the prefix with `/`"
            ),
        ));
    }
    Ok(())
}

/// A user tag: not empty, no spaces at either end, no control characters. The same rule for
/// the attribute, the builder and `DISCOVERABLE_TAGS` (whose list is split at commas).
///
/// Spaces inside a tag are kept: Consul stores a tag as it is given, and a router that reads
/// tags sees it whole. Fabio reads only `urlprefix-` tags, where the first space ends the
/// route and options follow (`urlprefix-/api strip=/api`); so a `urlprefix-` tag among the
/// user's tags adds a route, with its options, beside the one `prefix` registers. Spaces at
/// either end are refused: Consul would keep them, and ` urlprefix-/api` would be no route.
pub(crate) fn check_tag(tag: &str) -> Result {
    if tag.is_empty() {
        return Err(RuleError::new(
            Field::Tags,
            "a tag is empty; remove it or give it text",
        ));
    }
    if tag.trim() != tag {
        return Err(RuleError::new(
            Field::Tags,
            format!(
                "the tag {tag:?} starts or ends with a space; remove it (spaces inside a tag are kept)"
            ),
        ));
    }
    if tag.chars().any(char::is_control) {
        return Err(RuleError::new(
            Field::Tags,
            format!("the tag {tag:?} contains a control character; use printable text"),
        ));
    }
    Ok(())
}

/// The number of meta pairs.
pub(crate) fn check_meta_len(len: usize) -> Result {
    if len > META_MAX_PAIRS {
        return Err(RuleError::new(
            Field::Meta,
            format!("{len} meta pairs given; Consul accepts at most {META_MAX_PAIRS}"),
        ));
    }
    Ok(())
}

/// A meta key: 1 to 128 of `[A-Za-z0-9_-]`, not starting with `consul-`.
pub(crate) fn check_meta_key(key: &str) -> Result {
    if key.is_empty() {
        return Err(RuleError::new(
            Field::Meta,
            "a meta key is empty; give it a name",
        ));
    }
    if key.len() > META_KEY_MAX_LEN {
        return Err(RuleError::new(
            Field::Meta,
            format!(
                "the meta key `{key}` is {} characters long; Consul accepts at most {META_KEY_MAX_LEN}",
                key.len()
            ),
        ));
    }
    if let Some(c) = key.chars().find(|c| !is_name_char(*c)) {
        return Err(RuleError::new(
            Field::Meta,
            format!(
                "the meta key `{key}` contains {c:?}; Consul accepts only letters, digits, `-` and `_`"
            ),
        ));
    }
    if key.starts_with(META_RESERVED_PREFIX) {
        return Err(RuleError::new(
            Field::Meta,
            format!(
                "the meta key `{key}` starts with `{META_RESERVED_PREFIX}`, which Consul reserves for itself; choose another name"
            ),
        ));
    }
    Ok(())
}

/// A meta value: at most 512 characters.
pub(crate) fn check_meta_value(key: &str, value: &str) -> Result {
    if value.len() > META_VALUE_MAX_LEN {
        return Err(RuleError::new(
            Field::Meta,
            format!(
                "the value of meta key `{key}` is {} characters long; Consul accepts at most {META_VALUE_MAX_LEN}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// The health route path: starts with `/`, no whitespace, no query.
pub(crate) fn check_health_path(path: &str) -> Result {
    if !path.starts_with('/') {
        return Err(RuleError::new(
            Field::Health,
            format!("the health path `{path}` must start with `/`, e.g. \"/health\""),
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(RuleError::new(
            Field::Health,
            format!(
                "the health path `{path}` contains {c:?}; give a plain path such as \"/health\""
            ),
        ));
    }
    Ok(())
}

/// Parses a duration such as `"10s"`, `"500ms"` or `"1m30s"` for `field`, as Go (and so
/// Consul) reads durations; zero is refused.
pub(crate) fn parse_duration(field: Field, text: &str) -> Result<Duration> {
    let parsed = read_duration(text).map_err(|why| RuleError::new(field, why))?;
    check_nonzero(field, parsed)?;
    Ok(parsed)
}

/// Reads a duration as Go's `time.ParseDuration` does (`"10s"`, `"500ms"`, `"1m30s"`,
/// `"1.5h"`), the form Consul itself reads; a negative one is refused. The error echoes the
/// text as it was given and says what to write.
///
/// ```
/// use std::time::Duration;
/// use discoverable_rules::read_duration;
///
/// assert_eq!(read_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(read_duration("ten seconds").unwrap_err().starts_with("`ten seconds` is not a duration"));
/// ```
pub fn read_duration(text: &str) -> std::result::Result<Duration, String> {
    match parse_go_duration(text.trim()) {
        Ok(d) => d
            .to_std()
            .ok_or_else(|| format!("`{text}` is negative; give a duration such as \"10s\"")),
        Err(e) if e.to_string().starts_with("time: invalid duration") && overflows(text) => {
            Err(format!(
                "`{text}` is longer than the longest duration Consul reads (about 292 years); give a shorter one"
            ))
        }
        Err(_) => Err(format!(
            "`{text}` is not a duration; write it like \"10s\", \"500ms\" or \"1m30s\""
        )),
    }
}

/// Whether `text` is well-formed (digits and units only) but too long for Go's durations.
fn overflows(text: &str) -> bool {
    let t = text.trim().trim_start_matches(['+', '-']);
    !t.is_empty()
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.split(|c: char| c.is_ascii_digit() || c == '.')
            .filter(|unit| !unit.is_empty())
            .all(|unit| matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"))
}

/// A duration in the one largest whole unit (`"10m"`, `"2h"`, `"90s"`, `"500ms"`), a form
/// [`read_duration`] reads back: how messages show settings and their ranges.
pub fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs > 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if d.subsec_nanos() == 0 && secs > 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        go_duration(d)
    }
}

/// A meta key may be given once: `key` against the keys given `earlier`.
pub(crate) fn check_meta_key_unique<'a>(
    key: &str,
    earlier: impl IntoIterator<Item = &'a str>,
) -> Result {
    if earlier.into_iter().any(|k| k == key) {
        return Err(RuleError::naming_itself(
            Field::Meta,
            format!("the meta key `{key}` is given more than once; keep one"),
        ));
    }
    Ok(())
}

/// `strip` removes the prefix, so it needs one.
pub(crate) fn check_strip(strip: bool, prefix_given: bool) -> Result {
    if strip && !prefix_given {
        return Err(RuleError::naming_itself(
            Field::Strip,
            r#"`strip = true` removes the `prefix` from request paths, but no `prefix` is given; add one, e.g. `prefix = "/oops"`, or remove `strip`"#,
        ));
    }
    Ok(())
}

/// Health indicators are told apart by name: `name` against the names given `earlier`.
pub(crate) fn check_indicator_name_unique<'a>(
    name: &str,
    earlier: impl IntoIterator<Item = &'a str>,
) -> Result {
    if earlier.into_iter().any(|n| n == name) {
        return Err(RuleError::naming_itself(
            Field::Checks,
            format!(
                "a check named `{name}` is already listed; checks are named after the last segment of their path, so give each function a different name"
            ),
        ));
    }
    Ok(())
}

fn check_nonzero(field: Field, d: Duration) -> Result {
    if d.is_zero() {
        return Err(RuleError::new(
            field,
            "the duration is zero; give a positive duration",
        ));
    }
    Ok(())
}

/// How the service's health check is run and timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckTiming {
    /// Consul calls the health route every `interval`, giving up after `timeout`.
    Http {
        /// Time between checks.
        interval: Duration,
        /// Time an answer may take.
        timeout: Duration,
    },
    /// The service reports to Consul at least every `ttl`.
    Ttl {
        /// How long a report stays valid.
        ttl: Duration,
    },
}

/// The timing rules: interval at least 1 s, timeout shorter than the interval, positive TTL,
/// `deregister_after` at least Consul's one-minute minimum.
pub(crate) fn check_timing(timing: CheckTiming, deregister_after: Duration) -> Result {
    match timing {
        CheckTiming::Http { interval, timeout } => {
            check_nonzero(Field::Interval, interval)?;
            check_nonzero(Field::Timeout, timeout)?;
            if interval < INTERVAL_MIN {
                return Err(RuleError::new(
                    Field::Interval,
                    format!(
                        "{} is shorter than Consul's 1s minimum check interval; give \"1s\" or more",
                        go_duration(interval)
                    ),
                ));
            }
            if timeout >= interval {
                return Err(RuleError::new(
                    Field::Timeout,
                    format!(
                        "the timeout ({}) must be shorter than the interval ({}), or checks overlap",
                        go_duration(timeout),
                        go_duration(interval)
                    ),
                ));
            }
        }
        CheckTiming::Ttl { ttl } => check_nonzero(Field::Ttl, ttl)?,
    }
    if deregister_after < DEREGISTER_MIN {
        return Err(RuleError::new(
            Field::DeregisterAfter,
            format!(
                "{} is below Consul's minimum of 1m for DeregisterCriticalServiceAfter; give \"1m\" or more",
                go_duration(deregister_after)
            ),
        ));
    }
    Ok(())
}

/// The `ttl` argument excludes the HTTP check's `health` and `interval`.
pub(crate) fn check_ttl_exclusive(ttl_set: bool, other: Field) -> Result {
    if ttl_set {
        return Err(RuleError::new(
            other,
            format!(
                "`{}` configures the HTTP check, but `ttl` selects a TTL check instead; remove one of them",
                other.as_str()
            ),
        ));
    }
    Ok(())
}

/// `grpc` serves the standard gRPC health service and Consul checks it with a `GRPC` check, so
/// the HTTP health route's path, Fabio's `strip=` (HTTP routes only) and a TTL check do not
/// apply.
pub(crate) fn check_grpc_exclusive(grpc: bool, other: Field) -> Result {
    if !grpc {
        return Ok(());
    }
    let why = match other {
        Field::Health => {
            "`health` sets the HTTP health route's path, but with `grpc` Consul calls the gRPC \
             health service (`grpc.health.v1.Health/Check`); remove `health`"
        }
        Field::Strip => {
            "`strip` is Fabio's option for HTTP routes; a gRPC service is routed by its full \
             name (`urlprefix-/<package.Service> proto=grpc`); remove `strip`"
        }
        Field::Ttl => {
            "`ttl` replaces Consul's check of the instance, but with `grpc` Consul calls its \
             gRPC health service; remove `ttl`"
        }
        _ => return Ok(()),
    };
    Err(RuleError::new(other, why.to_owned()))
}

/// Fabio's route tag for a prefix: `urlprefix-<prefix>`, plus ` strip=<path>` when asked.
pub fn urlprefix_tag(prefix: &str, strip: bool) -> String {
    if strip {
        let path = prefix.find('/').map_or(prefix, |i| &prefix[i..]);
        format!("urlprefix-{prefix} strip={path}")
    } else {
        format!("urlprefix-{prefix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("cool_app").is_ok());
        assert!(check_name("a-1").is_ok());
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert_eq!(check_name("").unwrap_err().field(), Field::Name);
        assert!(
            check_name(&"a".repeat(64))
                .unwrap_err()
                .message()
                .contains("64 characters")
        );
        assert!(
            check_name("cool app")
                .unwrap_err()
                .message()
                .contains("' '")
        );
        assert!(check_name("café").is_err());
        // Not DNS labels.
        for name in ["-", "-lead", "trail-"] {
            let e = check_name(name).unwrap_err();
            assert!(
                e.message().contains("starts or ends with `-`"),
                "{name}: {e}"
            );
        }
        assert!(check_name("in-between").is_ok());
    }

    #[test]
    fn prefixes() {
        for ok in [
            "/",
            "/oops",
            "/v1/",
            "example.com/",
            "*.example.com/api",
            "example.com:8080/a",
        ] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "oops",
            "/a b",
            ":8080",
            "exa_mple.com/a",
            "/a?b",
            "-x.com/",
            "host:port/",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
        assert!(
            check_prefix("/a\tb")
                .unwrap_err()
                .message()
                .contains("whitespace")
        );
    }

    #[test]
    fn meta() {
        assert!(check_meta_len(64).is_ok());
        assert!(check_meta_len(65).is_err());
        assert!(check_meta_key("version").is_ok());
        assert!(check_meta_key("").is_err());
        assert!(check_meta_key(&"k".repeat(129)).is_err());
        assert!(check_meta_key(&"k".repeat(128)).is_ok());
        assert!(check_meta_key("a.b").is_err());
        assert!(
            check_meta_key("consul-x")
                .unwrap_err()
                .message()
                .contains("reserves")
        );
        assert!(check_meta_value("k", &"v".repeat(512)).is_ok());
        assert!(check_meta_value("k", &"v".repeat(513)).is_err());
    }

    #[test]
    fn tags_and_health() {
        assert!(check_tag("primary").is_ok());
        assert!(check_tag("").is_err());
        assert!(check_tag("a\nb").is_err());
        // Inside, a space is kept (Fabio's route options); at either end it is refused.
        assert!(check_tag("urlprefix-/api strip=/api").is_ok());
        assert!(check_tag("blue green").is_ok());
        assert!(check_tag(" urlprefix-/api").is_err());
        assert!(check_tag("v1 ").is_err());
        assert!(check_tag("\u{a0}v1").is_err());
        assert!(check_health_path("/health").is_ok());
        assert!(check_grpc_exclusive(false, Field::Health).is_ok());
        assert!(check_grpc_exclusive(true, Field::Interval).is_ok());
        for field in [Field::Health, Field::Strip, Field::Ttl] {
            let error = check_grpc_exclusive(true, field).unwrap_err();
            assert_eq!(error.field(), field);
            assert!(
                error
                    .to_string()
                    .contains(&format!("remove `{}`", field.as_str()))
            );
        }
        assert!(check_health_path("health").is_err());
        assert!(check_health_path("/he alth").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration(Field::Interval, "10s"),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            parse_duration(Field::Timeout, "500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration(Field::Ttl, "1m30s"),
            Ok(Duration::from_secs(90))
        );
        let err = parse_duration(Field::Timeout, "ten").unwrap_err();
        assert_eq!(err.field(), Field::Timeout);
        assert!(
            parse_duration(Field::Interval, "0s")
                .unwrap_err()
                .message()
                .contains("zero")
        );
    }

    #[test]
    fn timing() {
        let http = |i, t| CheckTiming::Http {
            interval: Duration::from_secs(i),
            timeout: Duration::from_secs(t),
        };
        assert!(check_timing(http(10, 5), DEREGISTER_MIN).is_ok());
        assert_eq!(
            check_timing(http(5, 5), DEREGISTER_MIN)
                .unwrap_err()
                .field(),
            Field::Timeout
        );
        assert_eq!(
            check_timing(http(10, 5), Duration::from_secs(30))
                .unwrap_err()
                .field(),
            Field::DeregisterAfter
        );
        let sub_second = CheckTiming::Http {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(100),
        };
        assert_eq!(
            check_timing(sub_second, DEREGISTER_MIN)
                .unwrap_err()
                .field(),
            Field::Interval
        );
        assert!(check_ttl_exclusive(true, Field::Health).is_err());
        assert!(check_ttl_exclusive(false, Field::Health).is_ok());
    }

    /// Each message word for word as the attribute reports it (`ui/tests/ui/fail` shows each
    /// at its token): with the argument in front (`Display`) or bare (`message`), as there.
    #[test]
    fn messages() {
        let shown = |result: Result| result.unwrap_err().to_string();
        let bare = |result: Result| result.unwrap_err().message().to_owned();
        let http = |interval: u64, timeout: u64| CheckTiming::Http {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
        };
        let long_key = format!(
            "`meta`: the meta key `{}` is 129 characters long; Consul accepts at most 128",
            "k".repeat(129)
        );
        let cases = [
            (
                shown(check_name("cool.app")),
                "`name`: the service name contains '.'; use only letters, digits, `-` and `_`",
            ),
            (
                shown(check_name("")),
                "`name`: the service name is empty; give the name clients look the service up by, e.g. \"cool_app\"",
            ),
            (
                shown(check_name(&"a".repeat(64))),
                "`name`: the service name is 64 characters long; the limit is 63 (one DNS label)",
            ),
            (
                shown(check_prefix("oops")),
                "`prefix`: `oops` has no `/`; a route needs a path; write a path prefix such as \"/oops\", or a host and path such as \"example.com/oops\"",
            ),
            (
                shown(check_prefix("exa_mple.com/api")),
                "`prefix`: `exa_mple.com` is not a host name Fabio can route; use letters, digits, `-` and `.` (optionally `*.` in front and `:port` after), or start the prefix with `/`",
            ),
            (
                shown(check_prefix("/oops now")),
                "`prefix`: the prefix contains whitespace, which separates options in Fabio's `urlprefix-` tag; write a path prefix such as \"/oops\", or a host and path such as \"example.com/oops\"",
            ),
            (
                shown(check_tag("")),
                "`tags`: a tag is empty; remove it or give it text",
            ),
            (
                shown(check_meta_len(65)),
                "`meta`: 65 meta pairs given; Consul accepts at most 64",
            ),
            (
                shown(check_meta_key("build.id")),
                "`meta`: the meta key `build.id` contains '.'; Consul accepts only letters, digits, `-` and `_`",
            ),
            (
                shown(check_meta_key("consul-version")),
                "`meta`: the meta key `consul-version` starts with `consul-`, which Consul reserves for itself; choose another name",
            ),
            (shown(check_meta_key(&"k".repeat(129))), long_key.as_str()),
            (
                bare(check_meta_key_unique("version", ["version"])),
                "the meta key `version` is given more than once; keep one",
            ),
            (
                shown(check_meta_value("notes", &"v".repeat(513))),
                "`meta`: the value of meta key `notes` is 513 characters long; Consul accepts at most 512",
            ),
            (
                shown(check_health_path("health")),
                "`health`: the health path `health` must start with `/`, e.g. \"/health\"",
            ),
            (
                shown(parse_duration(Field::Interval, "ten seconds").map(drop)),
                "`interval`: `ten seconds` is not a duration; write it like \"10s\", \"500ms\" or \"1m30s\"",
            ),
            (
                shown(parse_duration(Field::Timeout, "0s").map(drop)),
                "`timeout`: the duration is zero; give a positive duration",
            ),
            (
                shown(check_timing(http(500, 100), DEREGISTER_MIN)),
                "`interval`: 500ms is shorter than Consul's 1s minimum check interval; give \"1s\" or more",
            ),
            (
                shown(check_timing(http(5000, 5000), DEREGISTER_MIN)),
                "`timeout`: the timeout (5s) must be shorter than the interval (5s), or checks overlap",
            ),
            (
                shown(check_timing(http(10_000, 5000), Duration::from_secs(30))),
                "`deregister_after`: 30s is below Consul's minimum of 1m for DeregisterCriticalServiceAfter; give \"1m\" or more",
            ),
            (
                bare(check_strip(true, false)),
                "`strip = true` removes the `prefix` from request paths, but no `prefix` is given; add one, e.g. `prefix = \"/oops\"`, or remove `strip`",
            ),
            (
                bare(check_indicator_name_unique("ready", ["ready"])),
                "a check named `ready` is already listed; checks are named after the last segment of their path, so give each function a different name",
            ),
            (
                shown(check_ttl_exclusive(true, Field::Health)),
                "`health`: `health` configures the HTTP check, but `ttl` selects a TTL check instead; remove one of them",
            ),
            (
                shown(check_ttl_exclusive(true, Field::Interval)),
                "`interval`: `interval` configures the HTTP check, but `ttl` selects a TTL check instead; remove one of them",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(message, expected);
        }
    }

    #[test]
    fn route_tags() {
        assert_eq!(urlprefix_tag("/oops", false), "urlprefix-/oops");
        assert_eq!(
            urlprefix_tag("example.com/api", true),
            "urlprefix-example.com/api strip=/api"
        );
    }
}
