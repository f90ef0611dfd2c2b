//! Request bodies decoded the way Consul decodes them, and Go durations.
//!
//! Consul decodes a registration with Go's `encoding/json`, unknown fields disallowed, plus a few
//! snake_case aliases: a key matches a field case-insensitively, and only the aliases Consul
//! declares ([`SNAKE_ALIASES`], e.g. `deregister_critical_service_after`) stand for their field.
//! Any other key is refused with Go's `json: unknown field "k"` (so `check_id`, or `CheckID` in a
//! check registration, which names its ID `ID`, are errors as in Consul). Map keys (`Meta`,
//! `Header`, `TaggedAddresses`) are kept as sent and `null` means the zero value, as in Go. Error
//! texts follow Go's (`json: cannot unmarshal ...`, `time: invalid duration "x"`); handlers
//! prefix them with `Request decode failed: `.
//!
//! Durations are Go's: [`parse_go_duration`] reads `"1m30s"`, [`GoDuration`]'s `Display` writes them
//! back the way Go's `time.Duration.String` does.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// A body that could not be decoded; the text is Go's wording for the same failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signed duration in nanoseconds, as Go's `time.Duration`; `Display` is Go's `Duration.String`.
pub(crate) use discoverable_rules::GoDuration;

/// Go's `time.ParseDuration`, with Go's error texts, e.g. `time: invalid duration "abc"`,
/// `time: missing unit in duration "10"`.
pub(crate) fn parse_go_duration(s: &str) -> Result<GoDuration, DecodeError> {
    discoverable_rules::parse_go_duration(s).map_err(|e| DecodeError(e.to_string()))
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Parses a request body as Go's `json.Decoder.Decode` does: the first JSON value, anything after
/// it ignored; an empty body is `EOF`.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError("EOF".into()));
    }
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match stream.next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) if e.is_eof() => Err(DecodeError("unexpected EOF".into())),
        Some(Err(e)) => {
            // Where a key was expected Go says so; serde_json calls that "key must be a string".
            let looking = if e.to_string().starts_with("key must be a string") {
                "looking for beginning of object key string"
            } else {
                "looking for beginning of value"
            };
            // Point at the offending character, as Go does.
            let offset = body
                .split(|b| *b == b'\n')
                .take(e.line().saturating_sub(1))
                .map(|l| l.len() + 1)
                .sum::<usize>()
                + e.column().saturating_sub(1);
            let c = std::str::from_utf8(&body[offset.min(body.len())..])
                .ok()
                .and_then(|s| s.chars().next())
                .unwrap_or('?');
            Err(DecodeError(format!("invalid character {c:?} {looking}")))
        }
        None => Err(DecodeError("EOF".into())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The snake_case keys Consul 1.14 decodes as another name of a field: (field, alias).
pub(crate) const SNAKE_ALIASES: &[(&str, &str)] = &[
    ("EnableTagOverride", "enable_tag_override"),
    ("TaggedAddresses", "tagged_addresses"),
    (
        "DeregisterCriticalServiceAfter",
        "deregister_critical_service_after",
    ),
    ("TLSSkipVerify", "tls_skip_verify"),
    ("TLSServerName", "tls_server_name"),
    ("ScriptArgs", "script_args"),
    ("ScriptArgs", "args"),
    ("DockerContainerID", "docker_container_id"),
    ("GRPCUseTLS", "grpc_use_tls"),
    ("ServiceID", "service_id"),
];

/// The fields of a service registration (`structs.ServiceDefinition`).
pub(crate) const SERVICE_FIELDS: &[&str] = &[
    "Kind",
    "ID",
    "Name",
    "Tags",
    "Address",
    "TaggedAddresses",
    "Meta",
    "Port",
    "SocketPath",
    "Check",
    "Checks",
    "Weights",
    "Token",
    "EnableTagOverride",
    "Proxy",
    "Connect",
];

/// The fields every check definition has (`structs.CheckType` and `structs.CheckDefinition`).
const CHECK_COMMON_FIELDS: &[&str] = &[
    "Name",
    "Status",
    "Notes",
    "ServiceID",
    "ScriptArgs",
    "HTTP",
    "H2PING",
    "H2PingUseTLS",
    "Header",
    "Method",
    "Body",
    "DisableRedirects",
    "TCP",
    "UDP",
    "Interval",
    "AliasNode",
    "AliasService",
    "DockerContainerID",
    "Shell",
    "GRPC",
    "GRPCUseTLS",
    "OSService",
    "TLSServerName",
    "TLSSkipVerify",
    "Timeout",
    "TTL",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
    "DeregisterCriticalServiceAfter",
    "OutputMaxSize",
];

/// Which check definition a body is: a service's `Check`/`Checks` item (`structs.CheckType`, its
/// ID is `CheckID`) or a `/v1/agent/check/register` body (`structs.CheckDefinition`, its ID is
/// `ID`, and it takes a `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckForm {
    ServiceCheck,
    Registration,
}

impl CheckForm {
    fn accepts(self, key: &str) -> bool {
        let extra: &[&str] = match self {
            CheckForm::ServiceCheck => &["CheckID", "ProxyHTTP", "ProxyGRPC"],
            CheckForm::Registration => &["ID", "Token"],
        };
        CHECK_COMMON_FIELDS
            .iter()
            .chain(extra)
            .any(|f| field_matches(key, f))
    }
}

/// Whether a JSON key names `field` for Go: case-insensitively, or as one of its snake aliases.
fn field_matches(key: &str, field: &str) -> bool {
    key.eq_ignore_ascii_case(field)
        || SNAKE_ALIASES
            .iter()
            .any(|(f, alias)| *f == field && key.eq_ignore_ascii_case(alias))
}

/// The fields of one JSON object, looked up Consul's way (case-insensitive, its snake aliases).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// The struct path Go names in type errors, e.g. `.Alias.Check.Alias`.
    path: &'static str,
}

impl<'a> Fields<'a> {
    /// The object `v`, or Go's error for decoding a non-object into a struct.
    pub(crate) fn new(v: &'a Value, ty: &'static str) -> Result<Self, DecodeError> {
        match v {
            Value::Object(map) => Ok(Fields {
                map,
                // Consul's registration types decode through an `Alias` type.
                path: match ty {
                    "ServiceDefinition" | "CheckDefinition" => ".Alias",
                    other => other,
                },
            }),
            other => Err(DecodeError(format!(
                "json: cannot unmarshal {} into Go value of type structs.{ty}",
                kind(other)
            ))),
        }
    }

    /// Go's `DisallowUnknownFields`: the first key that names none of `accepts`' fields is an
    /// error, `json: unknown field "k"`.
    pub(crate) fn deny_unknown(&self, accepts: impl Fn(&str) -> bool) -> Result<(), DecodeError> {
        match self.map.keys().find(|k| !accepts(k)) {
            Some(k) => Err(DecodeError(format!("json: unknown field {}", quote(k)))),
            None => Ok(()),
        }
    }

    /// [`Fields::deny_unknown`] against a list of field names.
    pub(crate) fn deny_unknown_of(&self, fields: &[&str]) -> Result<(), DecodeError> {
        self.deny_unknown(|k| fields.iter().any(|f| field_matches(k, f)))
    }

    /// The value for field `name` (CamelCase), if present and not `null`.
    fn get(&self, name: &str) -> Option<&'a Value> {
        let v = self.map.get(name).or_else(|| {
            self.map
                .iter()
                .find(|(k, _)| field_matches(k, name))
                .map(|(_, v)| v)
        })?;
        (!v.is_null()).then_some(v)
    }

    fn mismatch(&self, name: &str, v: &Value, go_type: &str) -> DecodeError {
        // Go names the number only when a number could not be read as the integer wanted.
        let what = match v {
            Value::Number(n) if go_type == "int" => format!("number {n}"),
            other => kind(other).to_string(),
        };
        DecodeError(format!(
            "json: cannot unmarshal {what} into Go struct field {}.{name} of type {go_type}",
            self.path
        ))
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, DecodeError> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.mismatch(name, v, "string")),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, DecodeError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.mismatch(name, v, "bool")),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<i64, DecodeError> {
        match self.get(name) {
            None => Ok(0),
            Some(v @ Value::Number(n)) => n.as_i64().ok_or_else(|| self.mismatch(name, v, "int")),
            Some(v) => Err(self.mismatch(name, v, "int")),
        }
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, DecodeError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    other => Err(self.mismatch(name, other, "string")),
                })
                .collect(),
            Some(v) => Err(self.mismatch(name, v, "[]string")),
        }
    }

    pub(crate) fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, DecodeError> {
        self.map_of(name, "map[string]string", "string", |v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => Some(String::new()),
            _ => None,
        })
    }

    pub(crate) fn strings_map(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, DecodeError> {
        self.map_of(name, "map[string][]string", "[]string", |v| match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            Value::Null => Some(Vec::new()),
            _ => None,
        })
    }

    fn map_of<T>(
        &self,
        name: &str,
        go_type: &str,
        element_type: &str,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<BTreeMap<String, T>, DecodeError> {
        match self.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    f(v).map(|t| (k.clone(), t))
                        .ok_or_else(|| self.mismatch(name, v, element_type))
                })
                .collect(),
            Some(v) => Err(self.mismatch(name, v, go_type)),
        }
    }

    /// A duration as Consul's check decoding reads it: a Go duration string or a number of
    /// nanoseconds; other JSON types are ignored.
    pub(crate) fn duration(&self, name: &str) -> Result<GoDuration, DecodeError> {
        match self.get(name) {
            Some(Value::String(s)) => parse_go_duration(s),
            Some(Value::Number(n)) => Ok(GoDuration(n.as_f64().unwrap_or(0.0) as i64)),
            _ => Ok(GoDuration(0)),
        }
    }

    /// A nested object, typed `ty` in error texts.
    pub(crate) fn object(
        &self,
        name: &str,
        ty: &'static str,
    ) -> Result<Option<Fields<'a>>, DecodeError> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Fields::new(v, ty).map(|f| Some(f.under(name))),
            Some(v) => Err(self.mismatch(name, v, ty)),
        }
    }

    /// A list of objects, typed `ty` in error texts; `null` items decode as empty objects.
    pub(crate) fn objects(
        &self,
        name: &str,
        ty: &'static str,
    ) -> Result<Vec<Option<Fields<'a>>>, DecodeError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::Null => Ok(None),
                    v => Fields::new(v, ty).map(|f| Some(f.under(name))),
                })
                .collect(),
            Some(v) => Err(self.mismatch(name, v, ty)),
        }
    }
}

impl Fields<'_> {
    /// The struct path Go reports for the fields of a nested object `name`.
    fn under(mut self, name: &str) -> Self {
        self.path = match name {
            "Check" => ".Alias.Check.Alias",
            "Checks" => ".Alias.Checks.Alias",
            "Weights" => "Weights.Alias.Weights",
            _ => self.path,
        };
        self
    }
}

/// Consul's default check output limit (`CheckBufSize`).
pub(crate) const OUTPUT_MAX: usize = 4096;

/// Consul's truncation of long output: the first `max` bytes and a note of how much there was.
pub(crate) fn truncate_output(output: &str, max: usize) -> String {
    if output.len() <= max {
        return output.to_owned();
    }
    let mut cut = max;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{} ... (captured {max} of {} bytes)",
        &output[..cut],
        output.len()
    )
}

/// One address of a service's `TaggedAddresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaggedAddress {
    pub(crate) address: String,
    pub(crate) port: i64,
}

/// A check definition: Consul's `CheckType`, plus `ServiceID` for `/agent/check/register`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CheckDef {
    pub(crate) check_id: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) notes: String,
    pub(crate) service_id: String,
    pub(crate) script_args: Vec<String>,
    pub(crate) http: String,
    pub(crate) header: BTreeMap<String, Vec<String>>,
    pub(crate) method: String,
    pub(crate) body: String,
    pub(crate) tcp: String,
    pub(crate) udp: String,
    pub(crate) grpc: String,
    pub(crate) grpc_use_tls: bool,
    pub(crate) h2ping: String,
    pub(crate) alias_node: String,
    pub(crate) alias_service: String,
    pub(crate) docker_container_id: String,
    pub(crate) shell: String,
    pub(crate) interval: GoDuration,
    pub(crate) timeout: GoDuration,
    pub(crate) ttl: GoDuration,
    pub(crate) tls_server_name: String,
    pub(crate) tls_skip_verify: bool,
    pub(crate) disable_redirects: bool,
    pub(crate) output_max_size: i64,
    pub(crate) deregister_critical_service_after: GoDuration,
    pub(crate) success_before_passing: i64,
    pub(crate) failures_before_warning: i64,
    pub(crate) failures_before_critical: i64,
}

impl CheckDef {
    /// Decodes one check object (`Check`, an item of `Checks`, or a check registration).
    pub(crate) fn decode(f: Fields<'_>, form: CheckForm) -> Result<CheckDef, DecodeError> {
        f.deny_unknown(|k| form.accepts(k))?;
        Ok(CheckDef {
            check_id: f.string("CheckID")?,
            name: f.string("Name")?,
            status: f.string("Status")?,
            notes: f.string("Notes")?,
            service_id: f.string("ServiceID")?,
            script_args: f.strings("ScriptArgs")?,
            http: f.string("HTTP")?,
            header: f.strings_map("Header")?,
            method: f.string("Method")?,
            body: f.string("Body")?,
            tcp: f.string("TCP")?,
            udp: f.string("UDP")?,
            grpc: f.string("GRPC")?,
            grpc_use_tls: f.bool("GRPCUseTLS")?,
            h2ping: f.string("H2PING")?,
            alias_node: f.string("AliasNode")?,
            alias_service: f.string("AliasService")?,
            docker_container_id: f.string("DockerContainerID")?,
            shell: f.string("Shell")?,
            interval: f.duration("Interval")?,
            timeout: f.duration("Timeout")?,
            ttl: f.duration("TTL")?,
            tls_server_name: f.string("TLSServerName")?,
            tls_skip_verify: f.bool("TLSSkipVerify")?,
            disable_redirects: f.bool("DisableRedirects")?,
            output_max_size: f.int("OutputMaxSize")?,
            deregister_critical_service_after: f.duration("DeregisterCriticalServiceAfter")?,
            success_before_passing: f.int("SuccessBeforePassing")?,
            failures_before_warning: f.int("FailuresBeforeWarning")?,
            failures_before_critical: f.int("FailuresBeforeCritical")?,
        })
    }

    /// `output` as a check keeps it: at most `OutputMaxSize` bytes (Consul's default without
    /// one), cut as Consul cuts it.
    pub(crate) fn truncate_output(&self, output: &str) -> String {
        let max = usize::try_from(self.output_max_size)
            .ok()
            .filter(|m| *m > 0)
            .unwrap_or(OUTPUT_MAX);
        truncate_output(output, max)
    }

    /// Whether every field is zero: Consul silently drops such a `Check`.
    pub(crate) fn is_empty(&self) -> bool {
        *self == CheckDef::default()
    }

    fn interval_check(&self) -> bool {
        !self.script_args.is_empty()
            || !self.http.is_empty()
            || !self.tcp.is_empty()
            || !self.grpc.is_empty()
    }

    /// Consul's `CheckType.Validate`, with its texts (the caller prefixes `Invalid check: `).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.interval.0 > 0 && self.ttl.0 > 0 {
            return Err("Interval and TTL cannot both be specified".into());
        }
        if self.interval_check() && self.interval.0 <= 0 {
            return Err(
                "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
                    .into(),
            );
        }
        if !self.interval_check() && self.ttl.0 <= 0 {
            return Err("TTL must be > 0 for TTL checks".into());
        }
        Ok(())
    }

    /// Consul's check `Type` for this definition.
    pub(crate) fn type_name(&self) -> &'static str {
        if self.ttl.0 > 0 {
            "ttl"
        } else if !self.script_args.is_empty() && !self.docker_container_id.is_empty() {
            "docker"
        } else if !self.script_args.is_empty() {
            "script"
        } else if !self.http.is_empty() {
            "http"
        } else if !self.tcp.is_empty() {
            "tcp"
        } else if !self.grpc.is_empty() {
            "grpc"
        } else {
            ""
        }
    }
}

/// A service instance as a registration describes it: Consul's `ServiceDefinition` without its
/// checks. The agent stores it as it is, with the ID and tagged addresses filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceDef {
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) address: String,
    pub(crate) tagged_addresses: BTreeMap<String, TaggedAddress>,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) port: i64,
    pub(crate) socket_path: String,
    /// `(Passing, Warning)`: as sent, else Consul's default `(1, 1)`.
    pub(crate) weights: (i64, i64),
    pub(crate) enable_tag_override: bool,
}

/// A `PUT /v1/agent/service/register` body: the service and its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) service: ServiceDef,
    pub(crate) check: CheckDef,
    pub(crate) checks: Vec<CheckDef>,
}

impl Registration {
    /// Decodes a `PUT /v1/agent/service/register` body.
    pub(crate) fn decode(body: &[u8]) -> Result<Registration, DecodeError> {
        let value = parse_json(body)?;
        let f = Fields::new(&value, "ServiceDefinition")?;
        f.deny_unknown_of(SERVICE_FIELDS)?;
        let mut tagged_addresses = BTreeMap::new();
        if let Some(tagged) = f.object("TaggedAddresses", "map[string]structs.ServiceAddress")? {
            for (name, v) in tagged.map {
                let a = Fields::new(v, "ServiceAddress")?;
                a.deny_unknown_of(&["Address", "Port"])?;
                tagged_addresses.insert(
                    name.clone(),
                    TaggedAddress {
                        address: a.string("Address")?,
                        port: a.int("Port")?,
                    },
                );
            }
        }
        let weights = match f.object("Weights", "Weights")? {
            Some(w) => {
                w.deny_unknown_of(&["Passing", "Warning"])?;
                (w.int("Passing")?, w.int("Warning")?)
            }
            None => (1, 1),
        };
        let check = match f.object("Check", "CheckType")? {
            Some(c) => CheckDef::decode(c, CheckForm::ServiceCheck)?,
            None => CheckDef::default(),
        };
        let checks = f
            .objects("Checks", "CheckType")?
            .into_iter()
            .map(|c| {
                c.map_or_else(
                    || Ok(CheckDef::default()),
                    |c| CheckDef::decode(c, CheckForm::ServiceCheck),
                )
            })
            .collect::<Result<_, _>>()?;
        let service = ServiceDef {
            kind: f.string("Kind")?,
            id: f.string("ID")?,
            name: f.string("Name")?,
            tags: f.strings("Tags")?,
            address: f.string("Address")?,
            tagged_addresses,
            meta: f.string_map("Meta")?,
            port: f.int("Port")?,
            socket_path: f.string("SocketPath")?,
            weights,
            enable_tag_override: f.bool("EnableTagOverride")?,
        };
        Ok(Registration {
            service,
            check,
            checks,
        })
    }

    /// Consul's `CheckTypes()`: `Check` (unless empty) then `Checks`, each validated.
    pub(crate) fn check_types(&self) -> Result<Vec<CheckDef>, String> {
        let first = (!self.check.is_empty()).then(|| self.check.clone());
        let all: Vec<CheckDef> = first
            .into_iter()
            .chain(self.checks.iter().cloned())
            .collect();
        for c in &all {
            c.validate()?;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_like_consul() {
        assert_eq!(truncate_output("short", 10), "short");
        assert_eq!(
            truncate_output("abcdefgh", 4),
            "abcd ... (captured 4 of 8 bytes)"
        );
        // Never splits a character.
        assert_eq!(truncate_output("ééé", 3), "é ... (captured 3 of 6 bytes)");
    }

    #[test]
    fn durations_are_go_s_with_go_s_error_texts() {
        assert_eq!(parse_go_duration("1m30s"), Ok(GoDuration(90_000_000_000)));
        assert_eq!(
            parse_go_duration("10x").unwrap_err().0,
            r#"time: unknown unit "x" in duration "10x""#
        );
    }

    #[test]
    fn decodes_case_insensitively_and_snake_case() {
        let body = br#"{"name":"web","ID":"web-1","tags":["a"],"PORT":80,
            "enable_tag_override":true,"tagged_addresses":{"lan":{"address":"10.0.0.1","port":81}},
            "meta":{"redis_version":"4"},"weights":{"passing":3,"warning":2},
            "check":{"http":"http://x/health","interval":"10s","checkid":"c1",
                     "deregister_critical_service_after":"1m","tls_skip_verify":true},
            "checks":[{"ttl":"5s","status":"passing"}]}"#;
        let r = Registration::decode(body).unwrap();
        let s = &r.service;
        assert_eq!(
            (s.name.as_str(), s.id.as_str(), s.port),
            ("web", "web-1", 80)
        );
        assert!(s.enable_tag_override);
        assert_eq!(s.tags, ["a"]);
        assert_eq!(s.meta["redis_version"], "4");
        assert_eq!(s.tagged_addresses["lan"].port, 81);
        assert_eq!(s.weights, (3, 2));
        assert_eq!(r.check.check_id, "c1");
        assert!(r.check.tls_skip_verify);
        assert_eq!(r.check.interval.0, 10_000_000_000);
        assert_eq!(r.check.deregister_critical_service_after.0, 60_000_000_000);
        assert_eq!(r.checks[0].ttl.0, 5_000_000_000);
        assert_eq!(r.check_types().unwrap().len(), 2);
        let plain = Registration::decode(br#"{"Name":"web"}"#).unwrap();
        assert_eq!(plain.service.weights, (1, 1), "Consul's default");
    }

    #[test]
    fn decode_errors_read_like_go() {
        assert_eq!(Registration::decode(b"").unwrap_err().0, "EOF");
        assert_eq!(
            Registration::decode(b"{\"Name\":").unwrap_err().0,
            "unexpected EOF"
        );
        assert_eq!(
            Registration::decode(b"xyz").unwrap_err().0,
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            Registration::decode(b"[]").unwrap_err().0,
            "json: cannot unmarshal array into Go value of type structs.ServiceDefinition"
        );
        assert_eq!(
            Registration::decode(br#"{"Name":"a","Port":"80"}"#)
                .unwrap_err()
                .0,
            "json: cannot unmarshal string into Go struct field .Alias.Port of type int"
        );
        assert_eq!(
            Registration::decode(br#"{"Name":5}"#).unwrap_err().0,
            "json: cannot unmarshal number into Go struct field .Alias.Name of type string"
        );
        assert_eq!(
            Registration::decode(br#"{"Name":"a","Port":1.5}"#)
                .unwrap_err()
                .0,
            "json: cannot unmarshal number 1.5 into Go struct field .Alias.Port of type int"
        );
        assert_eq!(
            Registration::decode(br#"{"Name":"a","Meta":{"k":5}}"#)
                .unwrap_err()
                .0,
            "json: cannot unmarshal number into Go struct field .Alias.Meta of type string"
        );
        assert_eq!(
            Registration::decode(br#"{"Name":"a","Check":{"TTL":"1s","Name":5}}"#)
                .unwrap_err()
                .0,
            "json: cannot unmarshal number into Go struct field .Alias.Check.Alias.Name of type string"
        );
        assert_eq!(
            Registration::decode(b"{not json").unwrap_err().0,
            "invalid character 'n' looking for beginning of object key string"
        );
        // Unknown fields are refused, snake_case only where Consul declares an alias.
        for (body, field) in [
            (r#"{"Name":"a","Bogus":1}"#, "Bogus"),
            (
                r#"{"Name":"a","Check":{"TTL":"1s","check_id":"c"}}"#,
                "check_id",
            ),
            (r#"{"Name":"a","Check":{"TTL":"1s","ID":"c"}}"#, "ID"),
            (r#"{"Name":"a","service_id":"c"}"#, "service_id"),
            (r#"{"Name":"a","Weights":{"Passing":1,"Bogus":1}}"#, "Bogus"),
        ] {
            assert_eq!(
                Registration::decode(body.as_bytes()).unwrap_err().0,
                format!("json: unknown field {field:?}"),
                "{body}"
            );
        }
        assert_eq!(
            Registration::decode(br#"{"Name":"a","Check":{"TTL":"ten"}}"#)
                .unwrap_err()
                .0,
            r#"time: invalid duration "ten""#
        );
        // Trailing data after the first value is ignored, as Go's decoder does.
        assert_eq!(
            Registration::decode(br#"{"Name":"a"} junk"#)
                .unwrap()
                .service
                .name,
            "a"
        );
    }

    #[test]
    fn validates_checks_like_consul() {
        let check = |json: &str| {
            let v: Value = serde_json::from_str(json).unwrap();
            CheckDef::decode(
                Fields::new(&v, "CheckType").unwrap(),
                CheckForm::ServiceCheck,
            )
            .unwrap()
            .validate()
        };
        assert_eq!(
            check(r#"{"TTL":"1s","Interval":"1s"}"#).unwrap_err(),
            "Interval and TTL cannot both be specified"
        );
        assert_eq!(
            check(r#"{"HTTP":"http://x"}"#).unwrap_err(),
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        );
        assert_eq!(
            check(r#"{"Name":"x"}"#).unwrap_err(),
            "TTL must be > 0 for TTL checks"
        );
        assert!(check(r#"{"TCP":"x:1","Interval":"1s"}"#).is_ok());
    }
}
