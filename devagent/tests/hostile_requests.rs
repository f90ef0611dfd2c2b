//! Property tests: whatever a client sends, the agent answers with an HTTP status (Consul's
//! texts where Consul defines them) and stays up. Register bodies of arbitrary bytes and of
//! arbitrary, near-valid JSON; arbitrary `index`, `wait`, `passing`, `filter` and friends on the
//! blocking reads; arbitrary methods and paths; arbitrary bytes on the socket. Requests go
//! over raw TCP to one agent on 127.0.0.1, so nothing is normalised on the way. Checks the
//! bodies register point at 127.0.0.1 only.

use std::net::SocketAddr;
use std::time::Duration;

use discoverable_devagent::{Config, DevAgent};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const CASES: u32 = 192;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

/// A runtime and one agent on it, for all the cases of a test.
fn agent() -> (Runtime, DevAgent) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = rt.block_on(DevAgent::start(Config::default())).unwrap();
    (rt, agent)
}

/// A response off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What came back on a connection.
#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    /// The connection closed without a complete answer.
    Closed(Vec<u8>),
    /// Nothing within the bound.
    TimedOut,
}

fn parse(buf: &[u8], head: bool) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let len = if head { 0 } else { len };
    let rest = &buf[end + 4..];
    (rest.len() >= len).then(|| Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&rest[..len]).into_owned(),
    })
}

/// Writes `bytes` (then half-closes, if asked) and reads one answer, or the end of the
/// connection.
async fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    head: bool,
    half_close: bool,
    bound: Duration,
) -> Outcome {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    if half_close {
        let _ = stream.shutdown().await;
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(a) = parse(&buf, head) {
                return Outcome::Answer(a);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Outcome::Closed(std::mem::take(&mut buf)),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.unwrap_or(Outcome::TimedOut)
}

fn request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn send(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Answer {
    match exchange(
        addr,
        &request(method, target, body),
        method == "HEAD",
        false,
        Duration::from_secs(10),
    )
    .await
    {
        Outcome::Answer(a) => a,
        other => panic!("{method} {target}: no HTTP answer: {other:?}"),
    }
}

/// The agent still answers.
async fn alive(addr: SocketAddr) {
    let a = send(addr, "GET", "/v1/status/leader", b"").await;
    assert_eq!(a.status, 200, "{a:?}");
}

/// Every byte outside `[A-Za-z0-9-._~]` percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---- Register bodies -----------------------------------------------------------------------

/// Consul's texts for a rejected registration (`CONSUL_API.md` §2).
const REGISTER_400: &[&str] = &[
    "Request decode failed: ",
    "Missing service name",
    "Invalid service address",
    "Invalid Weights: ",
    "Invalid Service Meta: ",
    "Invalid check: ",
    "Status for checks must 'passing', 'warning', 'critical'",
];

const SCRIPTS_DISABLED: &str = "Scripts are disabled on this agent from remote calls";

fn assert_register_answer(a: &Answer, body: &[u8]) {
    let shown = String::from_utf8_lossy(body);
    match a.status {
        200 => assert_eq!(a.body, "", "{shown}"),
        400 => assert!(
            REGISTER_400.iter().any(|t| a.body.starts_with(t)),
            "unexpected 400 text {:?} for {shown}",
            a.body
        ),
        500 => assert!(a.body.starts_with(SCRIPTS_DISABLED), "{:?}", a.body),
        other => panic!("status {other} ({:?}) for {shown}", a.body),
    }
}

/// Keys of a registration, in the spellings Consul accepts (any case, snake_case).
const SERVICE_KEYS: &[&str] = &[
    "Name",
    "name",
    "NAME",
    "ID",
    "id",
    "Tags",
    "tags",
    "Address",
    "address",
    "Port",
    "port",
    "Meta",
    "meta",
    "Weights",
    "weights",
    "Kind",
    "EnableTagOverride",
    "enable_tag_override",
    "TaggedAddresses",
    "tagged_addresses",
    "SocketPath",
    "Proxy",
    "Connect",
    "Check",
    "check",
    "Checks",
    "checks",
];

const CHECK_KEYS: &[&str] = &[
    "CheckID",
    "check_id",
    "Name",
    "Status",
    "status",
    "Notes",
    "TTL",
    "ttl",
    "Interval",
    "interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "deregister_critical_service_after",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
    "Method",
    "Header",
    "TLSSkipVerify",
    "AliasService",
    "OutputMaxSize",
];

/// Strings a registration holds: durations, statuses, addresses, names, meta keys, and any.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "web",
            "10s",
            "0s",
            "-1s",
            "1.5h",
            "1m30s",
            "999999999999h",
            "5",
            "1e3s",
            "passing",
            "warning",
            "critical",
            "maintenance",
            "0.0.0.0",
            "::",
            "[::]",
            "127.0.0.1",
            "consul-x",
            "a b",
            "é",
            "\u{0}",
            "GET",
            "POST",
        ])
        .prop_map(str::to_owned),
        ".{0,24}",
        "[a-zA-Z0-9_-]{0,140}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-70_000i64..70_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep, with Consul's keys among the object keys.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(SERVICE_KEYS).prop_map(str::to_owned),
                        ".{0,8}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Where a check may point: only 127.0.0.1, or nowhere.
fn check_target() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (
            Just("HTTP"),
            prop::sample::select(vec![
                Value::from("http://127.0.0.1:1/health"),
                Value::from("https://127.0.0.1:1/"),
                Value::from("not a url"),
                Value::from(""),
                Value::from(7),
                Value::Null,
            ])
        ),
        (
            Just("TCP"),
            prop::sample::select(vec![
                Value::from("127.0.0.1:1"),
                Value::from("no-port"),
                Value::from(""),
                Value::from(false),
            ])
        ),
        (
            Just("ScriptArgs"),
            prop::sample::select(vec![
                Value::from(vec!["/bin/true"]),
                Value::from("not a list"),
                Value::Array(vec![]),
            ])
        ),
    ]
}

/// A check object: Consul's keys with values of any type, and perhaps a loopback target.
fn check() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::sample::select(CHECK_KEYS), leaf()), 0..6),
        prop::option::of(check_target()),
    )
        .prop_map(|(fields, target)| {
            let mut m: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some((k, v)) = target {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

/// A near-valid registration: Consul's keys with values of the right or the wrong shape.
fn registration() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        (Just("Name"), text().prop_map(Value::from)),
        (Just("ID"), text().prop_map(Value::from)),
        (Just("Address"), text().prop_map(Value::from)),
        (Just("Port"), leaf()),
        (
            Just("Tags"),
            prop_oneof![
                prop::collection::vec(text(), 0..4).prop_map(Value::from),
                leaf()
            ]
        ),
        (
            Just("Meta"),
            prop_oneof![
                prop::collection::btree_map(text(), text(), 0..4).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
                )),
                prop::collection::btree_map("[a-z]{1,3}", leaf(), 60..70)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                leaf()
            ]
        ),
        (
            Just("Weights"),
            prop_oneof![
                (leaf(), leaf()).prop_map(|(p, w)| serde_json::json!({"Passing": p, "Warning": w})),
                leaf()
            ]
        ),
        (Just("Check"), prop_oneof![check(), leaf()]),
        (
            Just("Checks"),
            prop_oneof![
                prop::collection::vec(check(), 0..3).prop_map(Value::Array),
                leaf()
            ]
        ),
        (prop::sample::select(SERVICE_KEYS), json()),
    ];
    prop::collection::vec(field, 0..8).prop_map(|fields| {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    })
}

#[test]
fn register_bodies_of_arbitrary_bytes_get_consuls_decode_error() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    runner(CASES)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |body| {
            rt.block_on(async {
                let a = send(addr, "PUT", "/v1/agent/service/register", &body).await;
                if serde_json::from_slice::<Value>(&body).is_err() {
                    assert_eq!(a.status, 400, "{a:?}");
                    assert!(a.body.starts_with("Request decode failed: "), "{a:?}");
                } else {
                    assert_register_answer(&a, &body);
                }
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(alive(addr));
    rt.block_on(agent.shutdown());
}

#[test]
fn register_bodies_of_arbitrary_json_get_an_answer_in_consuls_words() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    let strategy = prop_oneof![json(), registration()];
    runner(CASES * 2)
        .run(&strategy, |value| {
            let body = serde_json::to_vec(&value).unwrap();
            rt.block_on(async {
                let a = send(addr, "PUT", "/v1/agent/service/register", &body).await;
                assert_register_answer(&a, &body);
                if a.status == 200 {
                    // Registered under its ID (or name): the agent lists it.
                    let listed = send(addr, "GET", "/v1/agent/services", b"").await;
                    let all: Value = serde_json::from_str(&listed.body).unwrap();
                    assert!(!all.as_object().unwrap().is_empty(), "{value}");
                }
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(alive(addr));
    rt.block_on(agent.shutdown());
}

// ---- Query strings of the reads -------------------------------------------------------------

const READ_400: &[&str] = &[
    "Invalid wait time",
    "Invalid index",
    "Invalid value for ?passing",
    "Cannot specify ?stale with ?consistent, conflicting semantics.",
    "Failed to create boolean expression evaluator: ",
];

fn param_value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.6,
        prop_oneof![
            ".{0,12}",
            "[0-9]{1,22}",
            any::<u64>().prop_map(|n| n.to_string()),
            (1u32..30).prop_map(|ms| format!("{ms}ms")),
            prop::sample::select(vec![
                "",
                "0",
                "-1",
                "1.5",
                "1e9",
                "true",
                "T",
                "yes",
                "10s",
                "1h",
                "-5s",
                "5",
                "0x10",
                "18446744073709551616",
                "Service.Tags contains \"a\"",
                "Checks.Status == passing",
                "Service.Port > 1",
                "not (",
                "\"unterminated",
                "a and or b",
                "Service.Meta.x is empty",
            ])
            .prop_map(str::to_owned),
        ],
    )
}

/// Whether `body` is Consul's answer to an unusable `?filter=` on `endpoint`: go-bexpr's error
/// after `Failed to create boolean expression evaluator: `, except where Consul reports it
/// bare: a blocking `/v1/health/service` query (its streaming backend) and the field checks of
/// `/v1/agent/checks` (made when the filter first meets a check).
fn is_filter_error(endpoint: &str, params: &[(&str, String)], body: &str) -> bool {
    const PREFIX: &str = "Failed to create boolean expression evaluator: ";
    let field_error = |e: &str| {
        [
            "Selector ",
            "Invalid match operator ",
            "Failed to coerce value ",
        ]
        .iter()
        .any(|p| e.starts_with(p))
    };
    // `1:7 (6): ...`: a position, as the parser words it.
    let parse_error = |e: &str| {
        e.split_once(' ').is_some_and(|(at, rest)| {
            at.split(':').count() == 2
                && at.split(':').all(|n| n.parse::<u64>().is_ok())
                && rest.starts_with('(')
        })
    };
    if endpoint.starts_with("/v1/health/service/") && may_block(params) {
        return parse_error(body) || field_error(body);
    }
    match body.strip_prefix(PREFIX) {
        Some(e) => parse_error(e) || (endpoint != "/v1/agent/checks" && field_error(e)),
        None => endpoint == "/v1/agent/checks" && field_error(body),
    }
}

/// Whether the query may legitimately block: a valid positive index without an error first.
fn may_block(params: &[(&str, String)]) -> bool {
    params
        .iter()
        .find(|(k, _)| *k == "index")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .is_some_and(|i| i > 0)
}

#[test]
fn arbitrary_read_parameters_get_an_answer_in_consuls_words() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    // Something to find, so filters have data to run on.
    rt.block_on(async {
        let a = send(
            addr,
            "PUT",
            "/v1/agent/service/register",
            br#"{"Name":"web","Tags":["a"],"Meta":{"x":""},"Port":80,"Check":{"TTL":"60s","Status":"passing"}}"#,
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    });
    let endpoint = prop::sample::select(vec![
        "/v1/health/service/web",
        "/v1/health/service/nope",
        "/v1/health/checks/web",
        "/v1/health/state/any",
        "/v1/health/state/passing",
        "/v1/catalog/services",
        "/v1/catalog/service/web",
        "/v1/catalog/nodes",
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/kv/some/key",
    ]);
    let names = [
        "index",
        "wait",
        "passing",
        "filter",
        "stale",
        "consistent",
        "dc",
        "tag",
        "near",
        "pretty",
    ];
    let params = prop::collection::vec(param_value(), names.len());
    let extra = prop::collection::vec((".{0,6}", ".{0,6}"), 0..3);
    runner(CASES * 2)
        .run(&(endpoint, params, extra), |(endpoint, values, extra)| {
            let mut params: Vec<(&str, String)> = names
                .iter()
                .zip(values)
                .filter_map(|(n, v)| v.map(|v| (*n, v)))
                .collect();
            if params.iter().any(|(k, _)| *k == "dc") {
                // Any datacenter but the agent's answers 500 "No path to datacenter"; keep to
                // the agent's own for the rest of the checks.
                params.retain(|(k, _)| *k != "dc");
                params.push(("dc", "dc1".into()));
            }
            let mut query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            query.extend(
                extra
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v))),
            );
            let target = format!("{endpoint}?{}", query.join("&"));
            rt.block_on(async {
                let bound = Duration::from_millis(800);
                match exchange(addr, &request("GET", &target, b""), false, false, bound).await {
                    Outcome::Answer(a) => match a.status {
                        200 => {}
                        404 => assert!(endpoint.starts_with("/v1/kv/"), "{target}: {a:?}"),
                        400 => assert!(
                            READ_400.iter().any(|t| a.body.starts_with(t)),
                            "{target}: unexpected 400 text {:?}",
                            a.body
                        ),
                        // A ?filter= that does not parse or names no field, as Consul
                        // answers it.
                        500 => assert!(
                            is_filter_error(endpoint, &params, &a.body),
                            "{target}: unexpected 500 {a:?}"
                        ),
                        other => panic!("{target}: status {other}: {a:?}"),
                    },
                    Outcome::TimedOut => {
                        assert!(
                            may_block(&params),
                            "{target}: no answer, and it does not block"
                        )
                    }
                    Outcome::Closed(b) => {
                        panic!(
                            "{target}: closed without an answer: {:?}",
                            String::from_utf8_lossy(&b)
                        )
                    }
                }
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(alive(addr));
    rt.block_on(agent.shutdown());
}

/// Deep nesting in `?filter=`: parentheses beyond the agent's limit answer 400 (Consul 1.14.11
/// answers no such filter at all: its parser backtracks in time exponential in the depth, 2 s at
/// 8 levels, 42 s at 10, still nothing after a minute at 12). A chain of `not`s is no nesting
/// for go-bexpr: Consul parses 10 000 of them and answers as it does for one, here `500`
/// because `Service.Port` is no field of an agent service.
#[test]
fn a_deeply_nested_filter_is_a_400_not_a_crash() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    rt.block_on(async {
        // Parentheses need no escaping in a query, so 30 000 levels fit hyper's 64 KiB URI.
        for depth in [100, 10_000, 30_000] {
            let filter = format!(
                "{}Service.Port%20==%201{}",
                "(".repeat(depth),
                ")".repeat(depth)
            );
            let target = format!("/v1/health/service/web?filter={filter}");
            let a = send(addr, "GET", &target, b"").await;
            assert_eq!(a.status, 400, "depth {depth}: {a:?}");
            assert_eq!(
                a.body,
                "Failed to create boolean expression evaluator: expression nested too deeply \
                 (more than 64 levels of parentheses)",
                "depth {depth}"
            );
            let not = format!(
                "{}Service.Port%20==%201",
                "not%20".repeat(depth.min(10_000))
            );
            let a = send(
                addr,
                "GET",
                &format!("/v1/agent/services?filter={not}"),
                b"",
            )
            .await;
            assert_eq!(a.status, 500, "not x {depth}: {a:?}");
            assert_eq!(
                a.body,
                "Failed to create boolean expression evaluator: Selector \"Service.Port\" is not valid",
                "not x {depth}"
            );
        }
        alive(addr).await;
    });
    rt.block_on(agent.shutdown());
}

// ---- Methods and paths ----------------------------------------------------------------------

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "v1",
            "agent",
            "service",
            "services",
            "register",
            "deregister",
            "maintenance",
            "check",
            "checks",
            "pass",
            "warn",
            "fail",
            "update",
            "health",
            "state",
            "any",
            "node",
            "catalog",
            "nodes",
            "datacenters",
            "kv",
            "status",
            "leader",
            "peers",
            "self",
            "members",
            "acl",
            "token",
            "id",
            "name",
            "web",
            "..",
            ".",
            "",
            "%2F",
            "%00",
            "%zz",
            "%",
            "%2e%2e",
        ])
        .prop_map(str::to_owned),
        ".{0,10}".prop_map(|s| encode(&s)),
    ]
}

#[test]
fn arbitrary_methods_and_paths_get_an_http_answer() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    let method = prop::sample::select(vec![
        "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO",
    ]);
    let path = prop::collection::vec(segment(), 0..7).prop_map(|s| format!("/{}", s.join("/")));
    runner(CASES * 2)
        .run(&(method, path), |(method, path)| {
            // The fault switches are part of the agent, not of Consul's API: leave them be.
            prop_assume!(!path.to_ascii_lowercase().contains("devagent"));
            rt.block_on(async {
                let a = send(addr, method, &path, b"").await;
                match a.status {
                    200 | 400 | 404 | 500 => {}
                    405 => assert!(a.header("allow").is_some(), "{method} {path}: {a:?}"),
                    other => panic!("{method} {path}: status {other}: {a:?}"),
                }
                if a.status == 404 && !path.starts_with("/v1/") && method != "HEAD" {
                    assert!(
                        a.body.starts_with("Invalid URL path"),
                        "{method} {path}: {a:?}"
                    );
                }
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(alive(addr));
    rt.block_on(agent.shutdown());
}

#[test]
fn arbitrary_bytes_on_the_socket_never_take_the_agent_down() {
    let (rt, agent) = agent();
    let addr = agent.addr();
    let prefixes = prop::sample::select(vec![
        &b""[..],
        b"GET / HTTP/1.1\r\n",
        b"PUT /v1/agent/service/register HTTP/1.1\r\nContent-Length: 5\r\n",
        b"GET /v1/health/service/web HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]);
    runner(CASES)
        .run(
            &(prefixes, prop::collection::vec(any::<u8>(), 0..512)),
            |(prefix, junk)| {
                let mut bytes = prefix.to_vec();
                bytes.extend_from_slice(&junk);
                rt.block_on(async {
                    // Half-closed after the junk: the agent answers or closes, never hangs.
                    let outcome = exchange(addr, &bytes, false, true, Duration::from_secs(5)).await;
                    assert!(!matches!(outcome, Outcome::TimedOut), "{outcome:?}");
                });
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(alive(addr));
    rt.block_on(agent.shutdown());
}
