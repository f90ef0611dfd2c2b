//! The request and response shapes of the Consul endpoints the client calls, in Consul's JSON.
//!
//! Request types ([`Registration`], [`CheckDefinition`]) serialize to the PascalCase keys that
//! Consul's Go `api` package sends, leaving out zero values as it does. Response types
//! ([`AgentService`], [`ServiceEntry`], [`HealthCheck`], ...) are tolerant: every field may be
//! missing or `null` and then takes its default, and unknown fields are ignored, so answers
//! from older or newer agents decode. [`QueryOptions`] and [`HealthQuery`] say what a read asks
//! for, [`Indexed`] and [`Hashed`] carry the query metadata of its answer.
//!
//! Every struct and enum here is `#[non_exhaustive]`, so a field Consul adds can be added
//! here without breaking code that uses them: build requests with their constructors
//! ([`Registration::new`], [`CheckDefinition::http`], [`QueryOptions::blocking`], ...) and set
//! the public fields from there.

use std::fmt;
use std::time::Duration;

use discoverable_rules::GoDuration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod queries;
mod requests;
mod responses;

pub use queries::{
    Consistency, DEFAULT_WAIT, Hashed, HealthQuery, HealthState, Indexed, MAX_WAIT, QueryOptions,
    next_index,
};
pub(crate) use requests::CheckUpdate;
pub use requests::{CheckDefinition, Registration};
pub(crate) use responses::AgentSelfWire;
pub use responses::{
    AgentMember, AgentSelf, AgentService, HealthCheck, HealthCheckDefinition, Node, ServiceAddress,
    ServiceEntry, Weights,
};

/// Status of a health check: `passing`, `warning` or `critical` in Consul's JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckStatus {
    /// Healthy; routers send traffic.
    Passing,
    /// Degraded; Consul keeps it in `?passing=false` results, Fabio does not route it.
    Warning,
    /// Unhealthy. Consul's initial status of a check, and the default here.
    #[default]
    Critical,
}

impl CheckStatus {
    /// The status as Consul spells it: `"passing"`, `"warning"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Parses Consul's spelling; anything else is `None`.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }

    /// How bad the status is, for aggregation: passing < warning < critical.
    fn severity(self) -> u8 {
        match self {
            CheckStatus::Passing => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Critical => 2,
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strict decoding: only `passing`, `warning` and `critical` are accepted.
impl<'de> Deserialize<'de> for CheckStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CheckStatus::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown check status `{s}`; expected passing, warning or critical"
            ))
        })
    }
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn ser_go_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&discoverable_rules::go_duration(*d)),
        None => s.serialize_none(),
    }
}

/// `null` decodes as the default, like a missing field does with `#[serde(default)]`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A check status that never fails to decode: unknown, missing or `null` is `Critical`.
fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> Result<CheckStatus, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(raw
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(CheckStatus::parse)
        .unwrap_or(CheckStatus::Critical))
}

/// A duration given as a Go duration string or as nanoseconds; anything else (a negative
/// duration among it) is `None`.
fn lenient_go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::String(s)) => discoverable_rules::parse_go_duration(&s)
            .ok()
            .and_then(GoDuration::to_std),
        Some(serde_json::Value::Number(n)) => n.as_u64().map(Duration::from_nanos),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consul_check_status_spelling() {
        for (s, v) in [
            ("passing", CheckStatus::Passing),
            ("warning", CheckStatus::Warning),
            ("critical", CheckStatus::Critical),
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<CheckStatus>(json!(s)).unwrap(), v);
            assert_eq!(CheckStatus::parse(s), Some(v));
            assert_eq!(v.to_string(), s);
        }
        assert!(serde_json::from_value::<CheckStatus>(json!("maintenance")).is_err());
        assert_eq!(CheckStatus::parse("maintenance"), None);
    }

    #[derive(Debug, Deserialize)]
    struct Lenient {
        #[serde(default, deserialize_with = "lenient_go_duration")]
        d: Option<Duration>,
    }

    #[test]
    fn consul_durations_in_answers_are_go_strings_or_nanoseconds() {
        let d = |v: serde_json::Value| {
            serde_json::from_value::<Lenient>(json!({ "d": v }))
                .unwrap()
                .d
        };
        assert_eq!(d(json!("1m30s")), Some(Duration::from_secs(90)));
        assert_eq!(d(json!("1.5ms")), Some(Duration::from_micros(1500)));
        assert_eq!(d(json!("0s")), Some(Duration::ZERO));
        assert_eq!(d(json!(5_000_000_000u64)), Some(Duration::from_secs(5)));
        assert_eq!(d(json!("-1s")), None, "negative");
        assert_eq!(d(json!("")), None);
        assert_eq!(d(json!("bogus")), None);
        assert_eq!(d(json!(-1)), None);
        assert_eq!(d(json!(true)), None);
        assert_eq!(d(json!(null)), None);
    }

    #[test]
    fn consul_durations_in_requests_are_exact_go_strings() {
        #[derive(Serialize)]
        struct Sent {
            #[serde(serialize_with = "ser_go_duration")]
            d: Option<Duration>,
        }
        let s = |d| serde_json::to_string(&Sent { d }).unwrap();
        assert_eq!(s(Some(Duration::from_millis(1500))), r#"{"d":"1500ms"}"#);
        assert_eq!(s(Some(Duration::from_secs(90))), r#"{"d":"90s"}"#);
        assert_eq!(s(None), r#"{"d":null}"#);
    }
}
