//! One walk over a whole service description, for the attribute and the builder alike.
//!
//! The attribute reports every broken rule as a compile error at its token; the builder
//! returns the first as a run-time error. Both describe what was written as a
//! [`Description`] and call [`check_service`], which applies the rules in one order and
//! reports each broken one with its [`Place`].

use std::time::Duration;

use crate::{
    CheckTiming, DEFAULT_DEREGISTER_AFTER, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Field, RuleError,
    check_grpc_exclusive, check_health_path, check_indicator_name_unique, check_meta_key,
    check_meta_key_unique, check_meta_len, check_meta_value, check_name, check_prefix, check_strip,
    check_tag, check_timing, check_ttl_exclusive, go_duration, parse_duration,
};

/// What was written for one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Given<T> {
    /// Not written: the default applies.
    #[default]
    Absent,
    /// Written with a value that could not be read at all (the attribute reports that syntax
    /// error itself), so no rule is checked against it.
    Unreadable,
    /// Written with this value.
    Value(T),
}

impl<T> Given<T> {
    /// The value, when one was written and read.
    pub fn value(&self) -> Option<&T> {
        match self {
            Given::Value(value) => Some(value),
            Given::Absent | Given::Unreadable => None,
        }
    }

    fn is_written(&self) -> bool {
        !matches!(self, Given::Absent)
    }
}

impl<T> From<Option<T>> for Given<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Given::Absent, Given::Value)
    }
}

/// A duration as written: the attribute's text, read as Go (and so Consul) reads durations,
/// or the builder's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed<'a> {
    /// Text such as `"10s"`, `"500ms"` or `"1m30s"`.
    Text(&'a str),
    /// A duration already read.
    Exact(Duration),
}

/// A service description as written, for [`check_service`].
#[derive(Debug, Clone, Default)]
pub struct Description<'a> {
    /// `name`.
    pub name: Given<&'a str>,
    /// `prefix`: Fabio's route.
    pub prefix: Given<&'a str>,
    /// `strip`.
    pub strip: Given<bool>,
    /// The user's tags, in order.
    pub tags: Vec<&'a str>,
    /// The meta pairs, in order.
    pub meta: Vec<(&'a str, &'a str)>,
    /// `health`: the health route's path.
    pub health: Given<&'a str>,
    /// `interval` of the HTTP check.
    pub interval: Given<Timed<'a>>,
    /// `timeout` of the HTTP check.
    pub timeout: Given<Timed<'a>>,
    /// `deregister_after`.
    pub deregister_after: Given<Timed<'a>>,
    /// `ttl`: a TTL check instead of the HTTP check.
    pub ttl: Given<Timed<'a>>,
    /// The health indicators' names, in order.
    pub checks: Vec<&'a str>,
    /// `grpc`: Consul calls the gRPC health service.
    pub grpc: bool,
}

/// Where a broken rule is, so the attribute can point at the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The setting's name, such as `strip` in `strip = true`.
    Keyword(Field),
    /// The setting's value, such as `"/oops"` in `prefix = "/oops"`.
    Value(Field),
    /// The tag at this index of [`Description::tags`].
    Tag(usize),
    /// The key of the meta pair at this index of [`Description::meta`].
    MetaKey(usize),
    /// The value of the meta pair at this index of [`Description::meta`].
    MetaValue(usize),
    /// The indicator at this index of [`Description::checks`].
    Check(usize),
}

/// The durations [`check_service`] read; `None` where none was written or it broke a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    /// `interval`.
    pub interval: Option<Duration>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `deregister_after`.
    pub deregister_after: Option<Duration>,
    /// `ttl`.
    pub ttl: Option<Duration>,
}

/// Checks a whole description against the rules, calling `report` for each broken one, in
/// the order the settings are written in the attribute; returns the durations it read.
///
/// ```
/// use discoverable_rules::{Description, Field, Given, Place, Timed, check_service};
///
/// let description = Description {
///     name: Given::Value("cool_app"),
///     prefix: Given::Value("oops"),
///     tags: vec!["v1", ""],
///     interval: Given::Value(Timed::Text("1m30s")),
///     ..Description::default()
/// };
/// let mut broken = Vec::new();
/// let read = check_service(&description, |place, error| broken.push((place, error)));
/// let places: Vec<Place> = broken.iter().map(|(place, _)| *place).collect();
/// assert_eq!(places, [Place::Value(Field::Prefix), Place::Tag(1)]);
/// assert!(broken[0].1.to_string().starts_with("`prefix`: `oops` has no `/`"));
/// assert_eq!(read.interval.map(|d| d.as_secs()), Some(90));
/// ```
pub fn check_service(
    service: &Description<'_>,
    mut report: impl FnMut(Place, RuleError),
) -> Durations {
    let mut holds = |place: Place, result: Result<(), RuleError>| match result {
        Ok(()) => true,
        Err(error) => {
            report(place, error);
            false
        }
    };

    if let Given::Value(name) = service.name {
        holds(Place::Value(Field::Name), check_name(name));
    }
    if let Given::Value(strip) = service.strip {
        let result = check_strip(strip, service.prefix.is_written());
        holds(Place::Keyword(Field::Strip), result);
    }
    if let Given::Value(prefix) = service.prefix {
        holds(Place::Value(Field::Prefix), check_prefix(prefix));
    }
    for (i, tag) in service.tags.iter().enumerate() {
        holds(Place::Tag(i), check_tag(tag));
    }

    holds(
        Place::Keyword(Field::Meta),
        check_meta_len(service.meta.len()),
    );
    for (i, (key, value)) in service.meta.iter().enumerate() {
        let earlier = service.meta[..i].iter().map(|(k, _)| *k);
        // A repeated key is reported once, as repeated.
        if holds(Place::MetaKey(i), check_meta_key_unique(key, earlier)) {
            holds(Place::MetaKey(i), check_meta_key(key));
            holds(Place::MetaValue(i), check_meta_value(key, value));
        }
    }

    // `grpc` has Consul call the gRPC health service: no HTTP health path, no `strip`, no TTL.
    let grpc_ok = [
        (service.health.is_written(), Field::Health),
        (service.strip.is_written(), Field::Strip),
        (service.ttl.is_written(), Field::Ttl),
    ]
    .into_iter()
    .filter(|(written, _)| *written)
    .fold(true, |ok, (_, field)| {
        holds(
            Place::Keyword(field),
            check_grpc_exclusive(service.grpc, field),
        ) & ok
    });

    // `ttl` replaces the HTTP check; the settings of the HTTP check then make no sense.
    let ttl_set = service.ttl.value().is_some() && grpc_ok;
    let mut http_only = |given: bool, field: Field| {
        given && holds(Place::Keyword(field), check_ttl_exclusive(ttl_set, field))
    };
    let health = http_only(service.health.value().is_some(), Field::Health);
    let interval = http_only(service.interval.value().is_some(), Field::Interval);
    let timeout = http_only(service.timeout.value().is_some(), Field::Timeout);
    let conflict = ttl_set
        && (service.health.value().is_some()
            || service.interval.value().is_some()
            || service.timeout.value().is_some());
    if let (true, Given::Value(path)) = (health, service.health) {
        holds(Place::Value(Field::Health), check_health_path(path));
    }

    let mut read_all = true;
    let mut read = |given: &Given<Timed<'_>>, wanted: bool, field: Field| {
        let timed = given.value().filter(|_| wanted)?;
        let duration = match *timed {
            Timed::Exact(duration) => Some(duration),
            Timed::Text(text) => parse_duration(field, text)
                .map_err(|error| holds(Place::Value(field), Err(error)))
                .ok(),
        };
        read_all &= duration.is_some();
        duration
    };
    let durations = Durations {
        interval: read(&service.interval, interval, Field::Interval),
        timeout: read(&service.timeout, timeout, Field::Timeout),
        deregister_after: read(&service.deregister_after, true, Field::DeregisterAfter),
        ttl: read(&service.ttl, true, Field::Ttl),
    };
    if read_all && !conflict {
        timing(&durations, &mut report);
    }

    for (i, name) in service.checks.iter().enumerate() {
        let earlier = service.checks[..i].iter().copied();
        if let Err(error) = check_indicator_name_unique(name, earlier) {
            report(Place::Check(i), error);
        }
    }
    durations
}

/// The timing rules, with the defaults standing in for what is not given. A broken rule is
/// placed at the duration to change, and says which default it was compared with.
fn timing(given: &Durations, report: &mut impl FnMut(Place, RuleError)) {
    let timing = match given.ttl {
        Some(ttl) => CheckTiming::Ttl { ttl },
        None => CheckTiming::Http {
            interval: given.interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: given.timeout.unwrap_or(DEFAULT_TIMEOUT),
        },
    };
    // `check_timing` stops at its first broken rule; checking the check's timing and
    // `deregister_after` separately (each beside valid defaults) reports both.
    if let Err(error) = check_timing(timing, DEFAULT_DEREGISTER_AFTER) {
        // A timeout compared with a default interval, or the reverse, says so.
        let compared = given.timeout.is_none_or(|t| !t.is_zero());
        let (field, note) = match (error.field(), given.interval, given.timeout) {
            (Field::Timeout, None, Some(_)) if compared => (
                Field::Timeout,
                format!("; `interval` defaults to {}", go_duration(DEFAULT_INTERVAL)),
            ),
            (Field::Timeout, Some(_), None) if compared => (
                Field::Interval,
                format!(
                    "; `timeout` defaults to {}, so give a shorter one",
                    go_duration(DEFAULT_TIMEOUT)
                ),
            ),
            (field, ..) => (field, String::new()),
        };
        report(Place::Value(field), error.noted(&note));
    }
    if let Some(deregister_after) = given.deregister_after {
        let default_http = CheckTiming::Http {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
        };
        if let Err(error) = check_timing(default_http, deregister_after) {
            report(Place::Value(Field::DeregisterAfter), error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(service: &Description<'_>) -> Vec<(Place, String)> {
        let mut broken = Vec::new();
        check_service(service, |place, error| {
            broken.push((place, error.to_string()))
        });
        broken
    }

    #[test]
    fn an_unreadable_setting_is_written_but_not_checked() {
        let service = Description {
            name: Given::Unreadable,
            prefix: Given::Unreadable,
            strip: Given::Value(true),
            interval: Given::Unreadable,
            ..Description::default()
        };
        assert_eq!(broken(&service), []);
        let service = Description {
            prefix: Given::Absent,
            ..service
        };
        assert_eq!(broken(&service)[0].0, Place::Keyword(Field::Strip));
    }

    #[test]
    fn a_timing_error_is_placed_at_the_duration_to_change() {
        let exact = |secs| Given::Value(Timed::Exact(Duration::from_secs(secs)));
        let interval_only = Description {
            interval: exact(3),
            ..Description::default()
        };
        assert_eq!(
            broken(&interval_only),
            [(
                Place::Value(Field::Interval),
                "`timeout`: the timeout (5s) must be shorter than the interval (3s), or checks \
                 overlap; `timeout` defaults to 5s, so give a shorter one"
                    .to_owned()
            )]
        );
        // A zero timeout is not compared with anything.
        let zero = Description {
            timeout: exact(0),
            ..Description::default()
        };
        assert_eq!(
            broken(&zero),
            [(
                Place::Value(Field::Timeout),
                "`timeout`: the duration is zero; give a positive duration".to_owned()
            )]
        );
        // With a TTL, the HTTP check's settings are refused and their timing is not checked.
        let ttl = Description {
            ttl: exact(15),
            interval: exact(1),
            timeout: exact(9),
            ..Description::default()
        };
        let places: Vec<Place> = broken(&ttl).into_iter().map(|(place, _)| place).collect();
        assert_eq!(
            places,
            [
                Place::Keyword(Field::Interval),
                Place::Keyword(Field::Timeout)
            ]
        );
    }

    #[test]
    fn a_repeated_name_is_reported_once_and_names_itself() {
        let service = Description {
            meta: vec![("k", "1"), ("k", "2")],
            checks: vec!["ready", "ready"],
            ..Description::default()
        };
        assert_eq!(
            broken(&service),
            [
                (
                    Place::MetaKey(1),
                    "the meta key `k` is given more than once; keep one".to_owned()
                ),
                (
                    Place::Check(1),
                    "a check named `ready` is already listed; checks are named after the last \
                     segment of their path, so give each function a different name"
                        .to_owned()
                ),
            ]
        );
    }
}
