//! Property tests: whatever "Consul" answers, the client returns `Ok` or a typed `Error`,
//! never panics, never hangs past its bound, and never shows the token.
//!
//! - Every response type the client decodes, from arbitrary bytes and from arbitrary JSON,
//!   most of it Consul-shaped with values of the wrong type (`serde_json::from_slice`).
//! - The index of the next blocking read, for any pair of indexes.
//! - Every client call against a fake Consul on 127.0.0.1 that answers arbitrary statuses,
//!   headers (`X-Consul-Index`, `X-Consul-LastContact`, ...), framings and bodies, or bytes
//!   that are not HTTP at all; well-formed answers decode.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discoverable_runtime::Error;
use discoverable_runtime::consul::{
    AgentMember, AgentService, CheckStatus, Client, Config, HealthCheck, HealthCheckDefinition,
    HealthQuery, HealthState, Node, QueryOptions, Registration, ServiceAddress, ServiceEntry,
    Weights, next_index,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-77aa66bb-55cc-secret";

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

// ---- JSON ------------------------------------------------------------------------------------

/// Every field name of the response types, so generated objects hit the decoders' fields.
const KEYS: &[&str] = &[
    "ID",
    "Service",
    "Tags",
    "Meta",
    "Port",
    "Address",
    "TaggedAddresses",
    "Weights",
    "Passing",
    "Warning",
    "EnableTagOverride",
    "Kind",
    "Datacenter",
    "Namespace",
    "Partition",
    "ContentHash",
    "CreateIndex",
    "ModifyIndex",
    "Node",
    "Checks",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Interval",
    "Timeout",
    "Definition",
    "HTTP",
    "Method",
    "Header",
    "TLSSkipVerify",
    "TCP",
    "DeregisterCriticalServiceAfter",
    "TTL",
    "Config",
    "Member",
    "Addr",
    "NodeName",
    "Version",
    "Server",
    "address",
    "port",
    "lan",
    "wan",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "passing",
            "warning",
            "critical",
            "maintenance",
            "10s",
            "1m30s",
            "1.5h",
            "0",
            "-1s",
            "5",
            "1e3s",
            "2562047h47m16.854775808s",
            "99999999999999999999h",
            "3µs",
            "1μs",
            ".5s",
            "1.s",
            "s",
            "h1",
            "10.0.0.7",
            "::1",
        ])
        .prop_map(str::to_owned),
        ".{0,16}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        string().prop_map(Value::from),
    ]
}

/// Any JSON value, mostly objects with Consul's field names.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => string()
                    ],
                    inner
                ),
                0..7
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Decodes `bytes` into every response type. A panic fails the property; errors are fine.
fn decode_all(bytes: &[u8]) {
    fn one<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
        let _ = serde_json::from_slice::<T>(bytes);
        let _ = serde_json::from_slice::<Option<T>>(bytes);
    }
    one::<AgentService>(bytes);
    one::<ServiceEntry>(bytes);
    one::<HealthCheck>(bytes);
    one::<HealthCheckDefinition>(bytes);
    one::<Node>(bytes);
    one::<ServiceAddress>(bytes);
    one::<Weights>(bytes);
    one::<AgentMember>(bytes);
    one::<CheckStatus>(bytes);
    one::<HashMap<String, AgentService>>(bytes);
    one::<HashMap<String, HealthCheck>>(bytes);
    one::<Vec<ServiceEntry>>(bytes);
    one::<Vec<HealthCheck>>(bytes);
    one::<HashMap<String, Option<Vec<String>>>>(bytes);
}

#[test]
fn every_response_type_decodes_arbitrary_bytes_without_panicking() {
    runner(2048)
        .run(&prop::collection::vec(any::<u8>(), 0..128), |bytes| {
            decode_all(&bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_response_type_decodes_arbitrary_json_without_panicking() {
    // Values on their own, inside the containers the endpoints answer with, and keyed maps.
    let shapes = json().prop_flat_map(|v| {
        prop_oneof![
            Just(v.clone()),
            Just(Value::Array(vec![v.clone(), v.clone()])),
            Just(serde_json::json!({"web-1": v.clone()})),
            Just(serde_json::json!([{"Node": v.clone(), "Service": v.clone(), "Checks": [v]}])),
        ]
    });
    runner(2048)
        .run(&shapes, |value| {
            decode_all(&serde_json::to_vec(&value).unwrap());
            Ok(())
        })
        .unwrap();
}

#[test]
fn next_index_never_waits_on_zero_and_resets_when_the_index_goes_back() {
    runner(4096)
        .run(&(any::<u64>(), any::<u64>()), |(previous, returned)| {
            let next = next_index(previous, returned);
            if returned < previous {
                prop_assert_eq!(next, 0);
            } else {
                prop_assert!(next >= 1);
                prop_assert_eq!(next, returned.max(1));
            }
            Ok(())
        })
        .unwrap();
}

// ---- Through the client ------------------------------------------------------------------

/// A fake Consul: every connection gets the bytes currently set, then is closed.
struct Fake {
    addr: SocketAddr,
    answer: Arc<Mutex<Vec<u8>>>,
}

async fn fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer: Arc<Mutex<Vec<u8>>> = Arc::default();
    let current = answer.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let bytes = current.lock().unwrap().clone();
            tokio::spawn(async move {
                read_request(&mut stream).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Fake { addr, answer }
}

/// Reads one request: the head, then `Content-Length` bytes of body (bounded, best effort).
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
}

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length,
    ShortLength,
    LongLength,
    UntilClose,
    Chunked,
    BrokenChunks,
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "42",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            " 7 ",
            "1e3",
            "0x10",
            "true",
            "false",
            "TRUE",
            "nope",
            TOKEN,
            "index 42 for tok-77aa66bb-55cc-secret and more after it, long enough to be cut",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        // Visible ASCII and obs-text: what a header value may carry.
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..24),
    ]
}

/// An HTTP answer with arbitrary status, Consul headers, framing and body; or not HTTP.
fn answer() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        prop::sample::select(vec![
            200u16, 200, 200, 201, 204, 304, 400, 403, 404, 429, 500, 502, 503
        ]),
        100u16..600,
    ];
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec![
                "X-Consul-Index",
                "X-Consul-Index",
                "X-Consul-KnownLeader",
                "X-Consul-LastContact",
                "X-Consul-ContentHash",
                "Content-Type",
                "X-Consul-Effective-Consistency",
                "Location",
            ]),
            header_value(),
        ),
        0..5,
    );
    let body = prop_oneof![
        json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json().prop_map(|v| serde_json::to_vec(&vec![v]).unwrap()),
        prop::collection::vec(any::<u8>(), 0..256),
        Just(b"null".to_vec()),
        Just(Vec::new()),
        // An answer that echoes the token, as a misbehaving proxy might.
        Just(format!("denied for token {TOKEN}").into_bytes()),
    ];
    let framing = prop::sample::select(vec![
        Framing::Length,
        Framing::Length,
        Framing::Length,
        Framing::ShortLength,
        Framing::LongLength,
        Framing::UntilClose,
        Framing::Chunked,
        Framing::BrokenChunks,
    ]);
    let http = (status, headers, body, framing).prop_map(|(status, headers, body, framing)| {
        let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
        }
        let len = body.len();
        match framing {
            Framing::Length => {
                out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes())
            }
            Framing::ShortLength => out.extend_from_slice(
                format!("Content-Length: {}\r\n", len.saturating_sub(1)).as_bytes(),
            ),
            Framing::LongLength => {
                out.extend_from_slice(format!("Content-Length: {}\r\n", len + 10).as_bytes())
            }
            Framing::UntilClose => {}
            Framing::Chunked | Framing::BrokenChunks => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
            }
        }
        out.extend_from_slice(b"\r\n");
        match framing {
            Framing::Chunked => {
                for part in body.chunks(7) {
                    out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            Framing::BrokenChunks => {
                out.extend_from_slice(format!("{:x}\r\n", len + 3).as_bytes());
                out.extend_from_slice(&body);
            }
            _ => out.extend_from_slice(&body),
        }
        out
    });
    prop_oneof![
        6 => http,
        1 => prop::collection::vec(any::<u8>(), 0..128),
        1 => Just(Vec::new()),
        1 => Just(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec()),
    ]
}

fn client(addr: SocketAddr) -> Client {
    Client::new(
        Config::builder()
            .address(addr.to_string())
            .token(TOKEN)
            .request_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// Every client call once; the outcome of each, in order.
async fn every_call(client: &Client) -> Vec<(&'static str, Result<(), Error>)> {
    let q = QueryOptions::default();
    vec![
        (
            "register",
            client.register(&Registration::new("web-1", "web")).await,
        ),
        ("deregister", client.deregister("web-1").await),
        (
            "agent_service",
            client.agent_service("web-1", None, None).await.map(drop),
        ),
        ("agent_services", client.agent_services().await.map(drop)),
        ("agent_checks", client.agent_checks().await.map(drop)),
        (
            "check_update",
            client
                .check_update("service:web-1", CheckStatus::Passing, "ok")
                .await,
        ),
        (
            "check_fail",
            client.check_fail("service:web-1", "bad").await,
        ),
        ("agent_self", client.agent_self().await.map(drop)),
        (
            "health_service",
            client
                .health_service("web", &HealthQuery::default())
                .await
                .map(drop),
        ),
        (
            "health_state",
            client.health_state(HealthState::Any, &q).await.map(drop),
        ),
        (
            "catalog_services",
            client.catalog_services(&q).await.map(drop),
        ),
    ]
}

/// Neither the error nor any error in its source chain shows the token.
fn assert_clean(name: &str, e: &Error) {
    let mut shown = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        shown.push_str(&format!(" | {s} {s:?}"));
        source = s.source();
    }
    assert!(!shown.contains(TOKEN), "{name}: the token shows: {shown}");
    assert!(
        !shown.contains("77aa66bb"),
        "{name}: the token shows: {shown}"
    );
}

#[test]
fn every_call_survives_arbitrary_answers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(fake());
    let client = client(fake.addr);
    runner(160)
        .run(&answer(), |bytes| {
            *fake.answer.lock().unwrap() = bytes;
            rt.block_on(async {
                let started = Instant::now();
                // Each call is bounded by the 1 s request timeout; all of them well within 30 s.
                let outcomes = tokio::time::timeout(Duration::from_secs(30), every_call(&client))
                    .await
                    .expect("the calls return within their bounds");
                for (name, outcome) in outcomes {
                    if let Err(e) = &outcome {
                        assert_clean(name, e);
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(30));
            });
            Ok(())
        })
        .unwrap();
}

/// Well-formed answers with Consul's headers decode, with the index as sent.
#[test]
fn well_formed_answers_decode() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(fake());
    let client = client(fake.addr);
    let entry = (
        "[a-z0-9-]{1,12}",
        "[a-z0-9-]{1,12}",
        any::<u16>(),
        prop::collection::vec("[ -~]{0,8}", 0..3),
        prop::sample::select(vec!["passing", "warning", "critical"]),
        "[0-9a-z. ]{0,6}",
    )
        .prop_map(|(id, node, port, tags, status, interval)| {
            serde_json::json!({
                "Node": {"Node": node, "Address": "10.0.0.1"},
                "Service": {"ID": id, "Service": "web", "Port": port, "Tags": tags, "Address": ""},
                "Checks": [{"CheckID": format!("service:{id}"), "Status": status, "Interval": interval}],
            })
        });
    runner(256)
        .run(
            &(prop::collection::vec(entry, 0..4), 1u64..u64::MAX),
            |(entries, index)| {
                let body = serde_json::to_vec(&entries).unwrap();
                let mut bytes = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: {index}\r\nX-Consul-KnownLeader: true\r\nX-Consul-LastContact: 0\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                bytes.extend_from_slice(&body);
                *fake.answer.lock().unwrap() = bytes;
                let got = rt
                    .block_on(client.health_service("web", &HealthQuery::default()))
                    .unwrap();
                prop_assert_eq!(got.index, index);
                prop_assert!(got.known_leader);
                prop_assert_eq!(got.value.len(), entries.len());
                for (decoded, sent) in got.value.iter().zip(&entries) {
                    prop_assert_eq!(&decoded.service.id, sent["Service"]["ID"].as_str().unwrap());
                    prop_assert_eq!(
                        u64::from(decoded.service.port),
                        sent["Service"]["Port"].as_u64().unwrap()
                    );
                    prop_assert_eq!(decoded.address(), "10.0.0.1");
                }
                Ok(())
            },
        )
        .unwrap();
}
