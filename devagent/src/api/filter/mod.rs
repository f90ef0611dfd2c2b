//! `?filter=`: Consul's filter language, go-bexpr 0.1.2 as Consul 1.14 uses it.
//!
//! An expression is parsed by its grammar ([`grammar`], with the generated parser's error
//! texts), then checked against the fields of the Go type the endpoint filters ([`fields`]):
//! every selector must name a field (`Selector "Service.Port" is not valid`), its operator must
//! apply to that field (`Invalid match operator "Equal" for selector "Service"`), and its value
//! must read as the field's type (`Failed to coerce value "x" for selector "Port":
//! strconv.ParseInt: ...`). Consul answers such errors `500`, prefixed `Failed to create boolean
//! expression evaluator: `.
//!
//! Entries are then matched as go-bexpr matches the Go values behind their JSON: a field the
//! JSON leaves out holds its zero value, a selector through a list matches if any element
//! does, a missing map key makes `==`, `in` and `is not empty` false and the others true,
//! `in`/`contains` on a string is a substring test.
//!
//! Limits of this agent, answered `400`: parentheses nest at most [`grammar::MAX_DEPTH`] deep
//! (Consul's parser takes time exponential in the depth: seconds at 8 levels, minutes at 11);
//! the `matches` operators (regular expressions) are not supported.

mod fields;
mod gostr;
mod grammar;

use serde_json::Value;

use fields::Kind;
pub(crate) use fields::{
    AGENT_SERVICE, CHECK_SERVICE_NODE, HEALTH_CHECK, NODE_FIELDS, SERVICE_NODE_FIELDS, Schema,
};
use grammar::{Expr, Failure, Match, Op};

/// The prefix of every filter error of Consul's non-streaming endpoints.
const PREFIX: &str = "Failed to create boolean expression evaluator: ";

/// A filter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterError {
    /// Consul's error (`500`): the text without [`PREFIX`].
    Invalid(String),
    /// A limit of this agent (`400`).
    Refused(String),
}

impl FilterError {
    /// The answer's status and text; `prefixed` for the endpoints that wrap the evaluator's
    /// error (all but a streamed health query).
    pub(crate) fn answer(&self, prefixed: bool) -> (u16, String) {
        let prefix = if prefixed { PREFIX } else { "" };
        match self {
            FilterError::Invalid(e) => (500, format!("{prefix}{e}")),
            FilterError::Refused(e) => (400, format!("{PREFIX}{e}")),
        }
    }
}

/// A checked filter, ready to match entries.
#[derive(Debug, Clone)]
pub(crate) struct Filter(Node);

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Match(Matcher),
}

/// A match expression resolved against the schema.
#[derive(Debug, Clone)]
struct Matcher {
    /// The selector's names, each with the kind of field it names.
    steps: Vec<(String, Kind)>,
    op: Op,
    value: Coerced,
}

/// A value read as its field's type.
#[derive(Debug, Clone, PartialEq)]
enum Coerced {
    None,
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A parsed filter, not yet checked against the fields of a type.
#[derive(Debug, Clone)]
pub(crate) struct Parsed(Expr);

/// Parses `input`.
pub(crate) fn parse(input: &str) -> Result<Parsed, FilterError> {
    grammar::parse(input).map(Parsed).map_err(|f| match f {
        Failure::Syntax(e) => FilterError::Invalid(e),
        Failure::TooDeep => FilterError::Refused(format!(
            "expression nested too deeply (more than {} levels of parentheses)",
            grammar::MAX_DEPTH
        )),
    })
}

impl Parsed {
    /// Checks the expression against the fields of `schema`.
    pub(crate) fn check(&self, schema: &Schema) -> Result<Filter, FilterError> {
        check(&self.0, schema).map(Filter)
    }
}

/// Parses `input` and checks it against `schema`.
#[cfg(test)]
fn compile(input: &str, schema: &Schema) -> Result<Filter, FilterError> {
    parse(input)?.check(schema)
}

fn check(expr: &Expr, schema: &Schema) -> Result<Node, FilterError> {
    let all = |items: &[Expr]| -> Result<Vec<Node>, FilterError> {
        items.iter().map(|e| check(e, schema)).collect()
    };
    Ok(match expr {
        Expr::And(items) => Node::And(all(items)?),
        Expr::Or(items) => Node::Or(all(items)?),
        Expr::Not(e) => Node::Not(Box::new(check(e, schema)?)),
        Expr::Match(m) => Node::Match(check_match(m, schema)?),
    })
}

fn ops(kind: Kind) -> &'static [Op] {
    match kind {
        Kind::Str => &[
            Op::Equal,
            Op::NotEqual,
            Op::In,
            Op::NotIn,
            Op::Matches,
            Op::NotMatches,
        ],
        Kind::Int | Kind::Bool => &[Op::Equal, Op::NotEqual],
        Kind::Strings | Kind::Map => &[Op::In, Op::NotIn, Op::IsEmpty, Op::IsNotEmpty],
        Kind::List => &[Op::IsEmpty, Op::IsNotEmpty],
        Kind::Struct => &[],
    }
}

/// go-bexpr's checks of one match expression, in its order and with its texts.
fn check_match(m: &Match, schema: &Schema) -> Result<Matcher, FilterError> {
    let invalid = |e: String| Err(FilterError::Invalid(e));
    let joined = |n: usize| gostr::quote(&m.selector[..n].join("."));
    let mut steps = Vec::with_capacity(m.selector.len());
    let mut path = String::new();
    for (i, name) in m.selector.iter().enumerate() {
        let Some((found, kind)) = schema.child(&path, name) else {
            return invalid(format!("Selector {} is not valid", joined(i + 1)));
        };
        path = found;
        steps.push((name.clone(), kind));
    }
    let kind = steps.last().map_or(Kind::Struct, |(_, k)| *k);
    let whole = joined(m.selector.len());
    if !ops(kind).contains(&m.op) {
        return invalid(format!(
            "Invalid match operator {} for selector {whole}",
            gostr::quote(m.op.name())
        ));
    }
    let value = match &m.value {
        None => Coerced::None,
        Some(raw) => {
            let coerced = match kind {
                Kind::Int => gostr::parse_int(raw).map(Coerced::Int),
                Kind::Bool => gostr::parse_bool(raw).map(Coerced::Bool),
                Kind::Str | Kind::Strings | Kind::Map => Ok(Coerced::Str(raw.clone())),
                Kind::Struct | Kind::List => Ok(Coerced::None),
            };
            match coerced {
                Ok(v) => v,
                Err(e) => {
                    return invalid(format!(
                        "Failed to coerce value {} for selector {whole}: {e}",
                        gostr::quote(raw)
                    ));
                }
            }
        }
    };
    if matches!(m.op, Op::Matches | Op::NotMatches) {
        return Err(FilterError::Refused(
            "the \"matches\" operators are not supported by devagent".into(),
        ));
    }
    Ok(Matcher {
        steps,
        op: m.op,
        value,
    })
}

impl Filter {
    /// Whether `entry` (one result, as JSON) matches.
    pub(crate) fn matches(&self, entry: &Value) -> bool {
        self.0.matches(entry)
    }
}

impl Node {
    fn matches(&self, entry: &Value) -> bool {
        match self {
            Node::And(items) => items.iter().all(|n| n.matches(entry)),
            Node::Or(items) => items.iter().any(|n| n.matches(entry)),
            Node::Not(n) => !n.matches(entry),
            Node::Match(m) => m.walk(entry, 0, Kind::Struct),
        }
    }
}

impl Matcher {
    /// Follows the selector from step `at`, `v` being a value of kind `holder`.
    fn walk(&self, v: &Value, at: usize, holder: Kind) -> bool {
        let Some((name, kind)) = self.steps.get(at) else {
            return self.test(v, holder);
        };
        match holder {
            // Any element of a list.
            Kind::List => v
                .as_array()
                .is_some_and(|items| items.iter().any(|i| self.walk(i, at, Kind::Struct))),
            Kind::Map => match v.get(name).filter(|f| !f.is_null()) {
                Some(f) => self.walk(f, at + 1, *kind),
                None => !matches!(self.op, Op::Equal | Op::IsNotEmpty | Op::In),
            },
            _ => self.walk(v.get(name).unwrap_or(&Value::Null), at + 1, *kind),
        }
    }

    /// The operator on the selected value `v` of kind `kind` (absent or `null`: its zero value).
    fn test(&self, v: &Value, kind: Kind) -> bool {
        let positive = match (self.op, &self.value) {
            (Op::Equal | Op::NotEqual, Coerced::Str(s)) => v.as_str().unwrap_or_default() == s,
            (Op::Equal | Op::NotEqual, Coerced::Int(i)) => v.as_i64().unwrap_or_default() == *i,
            (Op::Equal | Op::NotEqual, Coerced::Bool(b)) => v.as_bool().unwrap_or_default() == *b,
            (Op::In | Op::NotIn, Coerced::Str(s)) => match kind {
                Kind::Str => v.as_str().unwrap_or_default().contains(s.as_str()),
                Kind::Strings => v
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i.as_str() == Some(s))),
                _ => v.as_object().is_some_and(|o| o.contains_key(s)),
            },
            (Op::IsEmpty | Op::IsNotEmpty, _) => match v {
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::String(s) => s.is_empty(),
                _ => true,
            },
            _ => false,
        };
        match self.op {
            Op::NotEqual | Op::NotIn | Op::IsNotEmpty => !positive,
            _ => positive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({"Node": {"Node": "n", "Meta": {"zone": "a"}},
               "Service": {"ID": "web-1", "Tags": ["v1", "primary"], "Meta": {"version": "2"},
                           "Port": 8080, "EnableTagOverride": false,
                           "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 80}}},
               "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceTags": []},
                          {"CheckID": "c", "Status": "critical", "ServiceTags": ["v1"]}]})
    }

    fn eval(f: &str) -> bool {
        compile(f, &CHECK_SERVICE_NODE)
            .unwrap_or_else(|e| panic!("{f}: {e:?}"))
            .matches(&entry())
    }

    fn error(f: &str, schema: &Schema) -> (u16, String) {
        compile(f, schema).unwrap_err().answer(true)
    }

    #[test]
    fn evaluates_as_go_bexpr() {
        assert!(eval(r#"Service.Tags contains "v1""#));
        assert!(!eval(r#"Service.Tags contains "v2""#));
        assert!(eval(r#"Service.Tags not contains "v2""#));
        assert!(eval(r#"Service.Meta.version == "2""#));
        assert!(eval(r#"Service.Meta["version"] == "2""#));
        assert!(!eval(r#"Service.Meta.missing == "2""#));
        assert!(eval(r#"Service.Meta.missing != "2""#));
        assert!(eval(r#"Service.ID == "web-1" and Service.ID != "web-2""#));
        assert!(eval(r#""primary" in Service.Tags"#));
        assert!(eval("Service.Port == 8080"));
        assert!(eval(r#"Service.Port == "0x1f90""#));
        assert!(eval("Service.EnableTagOverride == false"));
        assert!(
            eval("Service.Kind == \"\""),
            "a field left out is its zero value"
        );
        assert!(eval("Service.ID contains eb"), "a substring");
        assert!(eval("Service.Meta contains version"));
        assert!(eval("Checks.Status == critical"), "any element of a list");
        assert!(!eval("Checks.Status == warning"));
        assert!(eval("Checks.ServiceTags contains v1"));
        assert!(eval("Checks is not empty and Service.Tags is not empty"));
        assert!(eval("Service.TaggedAddresses.lan.Port == 80"));
        assert!(eval(r#"not (Service.ID == "a" or Service.ID == "b")"#));
        assert!(eval("Node.Meta.zone == a"));
    }

    #[test]
    fn checks_selectors_operators_and_values_as_go_bexpr() {
        assert_eq!(
            error("Service.Port == 1", &AGENT_SERVICE),
            (
                500,
                "Failed to create boolean expression evaluator: Selector \"Service.Port\" is not valid".into()
            )
        );
        assert_eq!(
            error("Service.Nope.x == 1", &CHECK_SERVICE_NODE).1,
            "Failed to create boolean expression evaluator: Selector \"Service.Nope\" is not valid"
        );
        assert_eq!(
            error("Service == 1", &CHECK_SERVICE_NODE).1,
            "Failed to create boolean expression evaluator: Invalid match operator \"Equal\" for selector \"Service\""
        );
        assert_eq!(
            error("Service.Tags == 1", &CHECK_SERVICE_NODE).1,
            "Failed to create boolean expression evaluator: Invalid match operator \"Equal\" for selector \"Service.Tags\""
        );
        assert_eq!(
            error("Service.Port == abc", &CHECK_SERVICE_NODE).1,
            "Failed to create boolean expression evaluator: Failed to coerce value \"abc\" for selector \"Service.Port\": strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            error("EnableTagOverride == yes", &AGENT_SERVICE).1,
            "Failed to create boolean expression evaluator: Failed to coerce value \"yes\" for selector \"EnableTagOverride\": strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        let (status, text) = error("Service.ID matches \"x\"", &CHECK_SERVICE_NODE);
        assert_eq!(status, 400, "{text}");
        let deep = format!("{}Port == 1{}", "(".repeat(100), ")".repeat(100));
        let (status, text) = error(&deep, &AGENT_SERVICE);
        assert_eq!(status, 400);
        assert!(text.starts_with(PREFIX), "{text}");
        assert_eq!(
            compile("Port ==", &AGENT_SERVICE)
                .unwrap_err()
                .answer(false)
                .1,
            "1:8 (7): no match found, expected: \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]"
        );
    }
}
