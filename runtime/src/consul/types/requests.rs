//! The bodies the client sends: a service registration with its checks, a TTL update.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{CheckStatus, is_false, is_zero_u16, ser_go_duration};

/// A service registration, the body of `PUT /v1/agent/service/register`.
///
/// Serializes to the keys Consul's Go `api.AgentServiceRegistration` sends (`ID`, `Name`,
/// `Tags`, `Address`, `Port`, `Meta`, `Checks`), leaving out empty values as Go's `omitempty`
/// does. Start from [`Registration::new`] and set the other fields.
///
/// ```
/// use std::time::Duration;
/// use discoverable::consul::{CheckDefinition, CheckStatus, Registration};
///
/// let mut reg = Registration::new("web-1", "web");
/// reg.tags.push("urlprefix-/web".into());
/// reg.address = "10.0.0.7".into();
/// reg.port = 8080;
/// let mut check = CheckDefinition::http("http://10.0.0.7:8080/health", Duration::from_secs(10));
/// check.status = Some(CheckStatus::Passing);
/// reg.checks.push(check);
///
/// let json = serde_json::to_value(&reg).unwrap();
/// assert_eq!(json["ID"], "web-1");
/// assert_eq!(json["Checks"][0]["Interval"], "10s");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Registration {
    /// Unique id of this instance on the agent (`ID`); Consul uses `name` when empty.
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Logical service name (`Name`), required by Consul.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tags (`Tags`), e.g. Fabio's `urlprefix-/path`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Address the service is reached at (`Address`); empty means the agent's address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Port the service is reached at (`Port`).
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    /// Service metadata (`Meta`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Health checks of the service (`Checks`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDefinition>,
    /// Send `?replace-existing-checks=true`, so the agent drops checks of this service that
    /// are not in `checks`. Not part of the body.
    #[serde(skip)]
    pub replace_existing_checks: bool,
}

impl Registration {
    /// Instance `id` of service `name`, with nothing else set: no address (the agent's), no
    /// port, tags, meta or checks.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Registration {
        Registration {
            id: id.into(),
            name: name.into(),
            ..Registration::default()
        }
    }
}

/// One health check of a [`Registration`], as Consul's Go `api.AgentServiceCheck`.
///
/// Durations serialize as Go duration strings, exactly and in one unit (`"10s"`,
/// `"1500ms"`). Fields left at their default are not sent. Start from
/// [`CheckDefinition::http`] or [`CheckDefinition::ttl`] and set the other fields.
///
/// ```
/// use std::time::Duration;
/// use discoverable::consul::CheckDefinition;
///
/// let mut check = CheckDefinition::ttl(Duration::from_secs(15));
/// check.deregister_critical_service_after = Some(Duration::from_secs(60));
/// assert_eq!(
///     serde_json::to_string(&check).unwrap(),
///     r#"{"TTL":"15s","DeregisterCriticalServiceAfter":"60s"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CheckDefinition {
    /// Check id (`CheckID`); Consul uses `service:<service id>` (or `service:<id>:<n>`) when
    /// absent.
    #[serde(rename = "CheckID", skip_serializing_if = "Option::is_none")]
    pub check_id: Option<String>,
    /// Check name (`Name`); Consul uses `Service '<name>' check` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL of an HTTP check (`HTTP`).
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// HTTP method of an HTTP check (`Method`); Consul uses GET when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Extra headers of an HTTP check (`Header`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    /// Do not verify the certificate of an HTTPS or gRPC-over-TLS check (`TLSSkipVerify`).
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// The name the certificate of an HTTPS or gRPC-over-TLS check is verified for
    /// (`TLSServerName`); Consul uses the target's host when absent.
    #[serde(rename = "TLSServerName", skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Target of a gRPC check (`GRPC`): `host:port`, optionally `/<service>`; Consul calls
    /// `grpc.health.v1.Health/Check` there and passes only on `SERVING`.
    #[serde(rename = "GRPC", skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// Call the gRPC check over TLS (`GRPCUseTLS`).
    #[serde(rename = "GRPCUseTLS", skip_serializing_if = "is_false")]
    pub grpc_use_tls: bool,
    /// How often an HTTP check runs (`Interval`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub interval: Option<Duration>,
    /// Bound of one HTTP check run (`Timeout`); Consul's default is 10s.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub timeout: Option<Duration>,
    /// Time to live of a TTL check (`TTL`); the check turns critical unless updated within it.
    #[serde(
        rename = "TTL",
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub ttl: Option<Duration>,
    /// Deregister the service when this check has been critical this long
    /// (`DeregisterCriticalServiceAfter`; Consul's minimum is one minute).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_go_duration"
    )]
    pub deregister_critical_service_after: Option<Duration>,
    /// Initial status (`Status`); Consul starts checks `critical` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    /// Human-readable notes (`Notes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl CheckDefinition {
    /// An HTTP check: the agent requests `url` every `interval`; 2xx passes, 429 warns,
    /// anything else is critical.
    pub fn http(url: impl Into<String>, interval: Duration) -> CheckDefinition {
        CheckDefinition {
            http: Some(url.into()),
            interval: Some(interval),
            ..CheckDefinition::default()
        }
    }

    /// A TTL check: critical unless updated (`Client::check_pass`, ...) within `ttl`.
    pub fn ttl(ttl: Duration) -> CheckDefinition {
        CheckDefinition {
            ttl: Some(ttl),
            ..CheckDefinition::default()
        }
    }
}

/// The body of `PUT /v1/agent/check/update/:check_id`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CheckUpdate<'a> {
    pub(crate) status: CheckStatus,
    pub(crate) output: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consul_registration_serializes_with_go_api_keys() {
        let reg = Registration {
            id: "web-1".into(),
            name: "web".into(),
            tags: vec!["urlprefix-/web".into(), "v1".into()],
            address: "10.0.0.7".into(),
            port: 8080,
            meta: BTreeMap::from([("version".into(), "1.2".into())]),
            checks: vec![
                CheckDefinition {
                    check_id: Some("web-1-http".into()),
                    name: Some("HTTP on /health".into()),
                    http: Some("http://10.0.0.7:8080/health".into()),
                    method: Some("HEAD".into()),
                    header: BTreeMap::from([("X-Probe".into(), vec!["consul".into()])]),
                    tls_skip_verify: true,
                    interval: Some(Duration::from_secs(10)),
                    timeout: Some(Duration::from_millis(1500)),
                    deregister_critical_service_after: Some(Duration::from_secs(60)),
                    status: Some(CheckStatus::Passing),
                    notes: Some("served by the app".into()),
                    ..Default::default()
                },
                CheckDefinition::ttl(Duration::from_secs(15)),
            ],
            replace_existing_checks: true,
        };
        let json = serde_json::to_value(&reg).unwrap();
        assert_eq!(
            json,
            json!({
                "ID": "web-1",
                "Name": "web",
                "Tags": ["urlprefix-/web", "v1"],
                "Address": "10.0.0.7",
                "Port": 8080,
                "Meta": {"version": "1.2"},
                "Checks": [
                    {
                        "CheckID": "web-1-http",
                        "Name": "HTTP on /health",
                        "HTTP": "http://10.0.0.7:8080/health",
                        "Method": "HEAD",
                        "Header": {"X-Probe": ["consul"]},
                        "TLSSkipVerify": true,
                        "Interval": "10s",
                        "Timeout": "1500ms",
                        "DeregisterCriticalServiceAfter": "60s",
                        "Status": "passing",
                        "Notes": "served by the app"
                    },
                    {"TTL": "15s"}
                ]
            })
        );
        // The bytes, in the order Consul's Go api sends the keys.
        assert_eq!(
            serde_json::to_string(&reg).unwrap(),
            concat!(
                r#"{"ID":"web-1","Name":"web","Tags":["urlprefix-/web","v1"],"Address":"10.0.0.7","#,
                r#""Port":8080,"Meta":{"version":"1.2"},"Checks":[{"CheckID":"web-1-http","#,
                r#""Name":"HTTP on /health","HTTP":"http://10.0.0.7:8080/health","Method":"HEAD","#,
                r#""Header":{"X-Probe":["consul"]},"TLSSkipVerify":true,"Interval":"10s","#,
                r#""Timeout":"1500ms","DeregisterCriticalServiceAfter":"60s","Status":"passing","#,
                r#""Notes":"served by the app"},{"TTL":"15s"}]}"#
            )
        );
    }

    #[test]
    fn consul_registration_leaves_out_zero_values() {
        let reg = Registration::new("", "web");
        assert_eq!(serde_json::to_value(&reg).unwrap(), json!({"Name": "web"}));
        assert_eq!(
            serde_json::to_value(CheckDefinition::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn consul_constructors_set_only_their_fields() {
        assert_eq!(
            Registration::new("web-1", "web"),
            Registration {
                id: "web-1".into(),
                name: "web".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            CheckDefinition::http("http://x/health", Duration::from_secs(10)),
            CheckDefinition {
                http: Some("http://x/health".into()),
                interval: Some(Duration::from_secs(10)),
                ..Default::default()
            }
        );
        assert_eq!(
            serde_json::to_string(&CheckDefinition::http(
                "http://x/health",
                Duration::from_secs(10)
            ))
            .unwrap(),
            r#"{"HTTP":"http://x/health","Interval":"10s"}"#
        );
        assert_eq!(
            CheckDefinition::ttl(Duration::from_secs(15)),
            CheckDefinition {
                ttl: Some(Duration::from_secs(15)),
                ..Default::default()
            }
        );
    }

    #[test]
    fn consul_check_update_keys() {
        assert_eq!(
            serde_json::to_string(&CheckUpdate {
                status: CheckStatus::Warning,
                output: "slow"
            })
            .unwrap(),
            r#"{"Status":"warning","Output":"slow"}"#
        );
    }
}
