//! The client against small in-test servers on loopback: what it sends, and what it makes of
//! refused connections, error statuses, bad bodies and headers, slow answers, TLS and Unix
//! sockets. Every failure must come back as a typed error, without panicking or hanging, and
//! without the token in it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;

use super::*;
use crate::Error;

const TOKEN: &str = "tok-5e6f7a8b-9c0d-secret";

/// A request as the mock server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: http::HeaderMap,
    body: String,
}

impl Seen {
    /// The query as pairs, percent- and plus-decoded.
    fn params(&self) -> Vec<(String, String)> {
        reqwest::Url::parse(&format!("http://x/?{}", self.query))
            .map(|u| {
                u.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `reply` on 127.0.0.1:0; returns the address and the log of requests.
async fn mock<F>(reply: F) -> (SocketAddr, Log)
where
    F: Fn(&Seen) -> Response + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let reply = Arc::new(reply);
    let seen_log = log.clone();
    let app = Router::new().fallback(move |req: Request| {
        let reply = reply.clone();
        let log = seen_log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            log.lock().unwrap().push(seen.clone());
            reply(&seen)
        }
    });
    (serve(app).await, log)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

fn client_for(addr: SocketAddr) -> Client {
    client_with(addr, |b| b)
}

fn client_with(addr: SocketAddr, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Client {
    let builder = Config::builder()
        .address(format!("{addr}"))
        .token(TOKEN)
        .request_timeout(Duration::from_millis(300));
    Client::new(f(builder).build().unwrap()).unwrap()
}

/// The error must not show the token, in either form, nor any error in its source chain.
fn assert_clean(e: &Error) {
    let mut shown = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        write!(shown, " | {s} {s:?}").unwrap();
        source = s.source();
    }
    assert!(!shown.contains(TOKEN), "token leaked: {shown}");
    assert!(!shown.contains("5e6f7a8b"), "token leaked: {shown}");
}

fn indexed_json(body: &str) -> Response {
    respond(
        200,
        &[
            ("content-type", "application/json"),
            ("X-Consul-Index", "42"),
            ("X-Consul-KnownLeader", "true"),
            ("X-Consul-LastContact", "7"),
        ],
        body.to_owned(),
    )
}

/// Every client call, each boxed so a test can run them all against one fault.
async fn every_call(client: &Client) -> Vec<(&'static str, Result<(), Error>)> {
    let q = QueryOptions::default();
    vec![
        (
            "register",
            client
                .register(&Registration {
                    name: "web".into(),
                    ..Default::default()
                })
                .await,
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
            client.check_update("c", CheckStatus::Passing, "ok").await,
        ),
        ("check_pass", client.check_pass("c", "ok").await),
        ("check_warn", client.check_warn("c", "meh").await),
        ("check_fail", client.check_fail("c", "bad").await),
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

#[tokio::test]
async fn consul_fault_refused_connection_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = client_for(SocketAddr::from(([127, 0, 0, 1], port)));
    let started = Instant::now();
    for (name, result) in every_call(&client).await {
        match result {
            Err(
                ref e @ Error::Unreachable {
                    ref addr,
                    ref message,
                    ref source,
                },
            ) => {
                assert_eq!(addr, &format!("http://127.0.0.1:{port}"), "{name}");
                assert!(!message.is_empty(), "{name}");
                let source = source
                    .as_ref()
                    .expect("the transport's error is the source");
                assert!(
                    source
                        .downcast_ref::<reqwest::Error>()
                        .is_some_and(reqwest::Error::is_connect),
                    "{name}: {source:?}"
                );
                assert!(e.to_string().contains("CONSUL_HTTP_ADDR"), "{e}");
                assert_clean(e);
            }
            other => panic!("{name}: expected Unreachable, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn consul_fault_500_with_body_is_status() {
    let (addr, _) = mock(|_| respond(500, &[], "rpc error: No cluster leader\n")).await;
    let client = client_for(addr);
    for (name, result) in every_call(&client).await {
        match result {
            Err(
                ref e @ Error::Status {
                    status,
                    ref message,
                },
            ) => {
                assert_eq!(status, 500, "{name}");
                assert_eq!(message, "rpc error: No cluster leader", "{name}: trimmed");
                assert_clean(e);
            }
            other => panic!("{name}: expected Status, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn consul_fault_403_is_permission_denied_with_consuls_text() {
    let text = "Permission denied: token with AccessorID 'a1b2' lacks permission 'service:write' on \"web\"";
    let (addr, _) = mock(move |_| respond(403, &[], text)).await;
    let client = client_for(addr);
    for (name, result) in every_call(&client).await {
        match result {
            Err(ref e @ Error::PermissionDenied { ref message }) => {
                assert_eq!(message, text, "{name}");
                assert!(e.to_string().contains("CONSUL_HTTP_TOKEN"), "{e}");
                assert_clean(e);
            }
            other => panic!("{name}: expected PermissionDenied, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn consul_fault_404_is_not_found_except_agent_service() {
    let text =
        "Unknown service ID \"web-1\". Ensure that the service ID is passed, not the service name.";
    let (addr, _) = mock(move |_| respond(404, &[], text)).await;
    let client = client_for(addr);
    for (name, result) in every_call(&client).await {
        match (name, result) {
            ("agent_service", r) => assert!(r.is_ok(), "agent_service: {r:?}"),
            (_, Err(ref e @ Error::NotFound { ref message })) => {
                assert_eq!(message, text, "{name}");
                assert_clean(e);
            }
            (_, other) => panic!("{name}: expected NotFound, got {other:?}"),
        }
    }
    let none = client.agent_service("web-1", None, None).await.unwrap();
    assert_eq!(
        none,
        Hashed {
            value: None,
            hash: None
        }
    );
}

#[tokio::test]
async fn consul_fault_other_statuses_and_long_bodies() {
    let long = "x".repeat(5000);
    let (addr, _) = mock(move |seen| match seen.path.as_str() {
        "/v1/agent/self" => respond(429, &[], ""),
        "/v1/agent/services" => respond(502, &[], long.clone()),
        "/v1/agent/checks" => respond(301, &[("location", "http://elsewhere.invalid/")], ""),
        _ => respond(400, &[], "Missing service name"),
    })
    .await;
    let client = client_for(addr);
    // A 429 is Consul's per-client connection limit, named for what it is.
    match client.agent_self().await {
        Err(Error::TooManyConnections { message }) => assert_eq!(message, "Too Many Requests"),
        other => panic!("{other:?}"),
    }
    match client.agent_services().await {
        Err(Error::Status {
            status: 502,
            message,
        }) => {
            assert!(message.chars().count() <= 520, "{}", message.len());
            assert!(message.ends_with("..."));
        }
        other => panic!("{other:?}"),
    }
    match client.agent_checks().await {
        Err(Error::Status { status: 301, .. }) => {}
        other => panic!("redirects are not followed: {other:?}"),
    }
    match client.register(&Registration::default()).await {
        Err(Error::Status {
            status: 400,
            message,
        }) => assert_eq!(message, "Missing service name"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn consul_fault_malformed_json_is_decode() {
    let (addr, _) = mock(|_| indexed_json("{\"Node\": [1, 2")).await;
    let client = client_for(addr);
    for (name, result) in every_call(&client).await {
        match name {
            // Writes do not read the body.
            "register" | "deregister" | "check_update" | "check_pass" | "check_warn"
            | "check_fail" => assert!(result.is_ok(), "{name}: {result:?}"),
            _ => match result {
                Err(ref e @ Error::Decode { ref what, .. }) => {
                    assert!(what.starts_with("GET /v1/"), "{name}: {what}");
                    assert_clean(e);
                }
                other => panic!("{name}: expected Decode, got {other:?}"),
            },
        }
    }
}

#[tokio::test]
async fn consul_fault_wrong_json_shapes_are_decode() {
    let (addr, _) = mock(|seen| match seen.path.as_str() {
        "/v1/agent/services" => indexed_json("[1, 2]"),
        "/v1/agent/self" => indexed_json("\"hello\""),
        "/v1/health/service/web" => indexed_json("{\"not\": \"a list\"}"),
        "/v1/catalog/services" => indexed_json("{\"web\": \"tags\"}"),
        _ => indexed_json("[{\"Service\": {\"Port\": 70000}}]"),
    })
    .await;
    let client = client_for(addr);
    assert!(matches!(
        client.agent_services().await,
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        client.agent_self().await,
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        client.health_service("web", &HealthQuery::default()).await,
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        client.catalog_services(&QueryOptions::default()).await,
        Err(Error::Decode { .. })
    ));
    // A list whose entry does not decode (a port out of range, which Consul accepts): that
    // entry is skipped, the answer stands.
    let skipped = client
        .health_service("other", &HealthQuery::default())
        .await
        .expect("the list decodes without its bad entry");
    assert!(skipped.value.is_empty(), "{:?}", skipped.value);
}

#[tokio::test]
async fn consul_fault_null_bodies_are_empty() {
    let (addr, _) = mock(|_| indexed_json("null")).await;
    let client = client_for(addr);
    assert!(client.agent_services().await.unwrap().is_empty());
    assert!(client.agent_checks().await.unwrap().is_empty());
    assert_eq!(client.agent_self().await.unwrap(), AgentSelf::default());
    let h = client
        .health_service("web", &HealthQuery::default())
        .await
        .unwrap();
    assert!(h.value.is_empty());
    assert_eq!(
        (h.index, h.known_leader, h.last_contact),
        (42, true, Duration::from_millis(7))
    );
    assert!(
        client
            .catalog_services(&QueryOptions::default())
            .await
            .unwrap()
            .value
            .is_empty()
    );
}

#[tokio::test]
async fn consul_fault_missing_or_bad_index_header_is_decode() {
    let (addr, _) = mock(|seen| match seen.path.as_str() {
        "/v1/health/service/web" => respond(200, &[], "[]"),
        "/v1/health/state/any" => respond(200, &[("X-Consul-Index", "abc")], "[]"),
        "/v1/catalog/services" => respond(200, &[("X-Consul-Index", "-1")], "{}"),
        "/v1/health/service/lc" => respond(
            200,
            &[("X-Consul-Index", "3"), ("X-Consul-LastContact", "soon")],
            "[]",
        ),
        // Only what Consul promises: index, no leader headers.
        _ => respond(200, &[("X-Consul-Index", "9")], "[]"),
    })
    .await;
    let client = client_for(addr);
    match client.health_service("web", &HealthQuery::default()).await {
        Err(Error::Decode { what, message }) => {
            assert_eq!(what, "GET /v1/health/service/web");
            assert!(message.contains("X-Consul-Index"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match client
        .health_state(HealthState::Any, &QueryOptions::default())
        .await
    {
        Err(Error::Decode { message, .. }) => assert!(message.contains("`abc`"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client.catalog_services(&QueryOptions::default()).await,
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        client.health_service("lc", &HealthQuery::default()).await,
        Err(Error::Decode { .. })
    ));
    let ok = client
        .health_service("minimal", &HealthQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (ok.index, ok.known_leader, ok.last_contact),
        (9, false, Duration::ZERO)
    );
}

#[tokio::test]
async fn consul_fault_slow_server_times_out() {
    let app = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    });
    let addr = serve(app).await;
    let client = client_for(addr);
    let started = Instant::now();
    match client.agent_self().await {
        Err(ref e @ Error::Timeout { ref addr, after }) => {
            assert_eq!(after, Duration::from_millis(300));
            assert!(addr.starts_with("http://127.0.0.1:"));
            // What to do about it, with the default to raise.
            let shown = e.to_string();
            assert!(shown.contains("did not answer within 300ms"), "{shown}");
            assert!(shown.contains("not overloaded"), "{shown}");
            assert!(
                shown.contains("ConfigBuilder::request_timeout (default 10s)"),
                "{shown}"
            );
            assert_clean(e);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // Every call is bounded the same way.
    let started = Instant::now();
    for (name, result) in every_call(&client).await {
        assert!(
            matches!(result, Err(Error::Timeout { .. })),
            "{name}: {result:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(13 * 2),
        "{:?}",
        started.elapsed()
    );
}

/// A body that sends one chunk and then nothing, ever.
struct Stall {
    sent: bool,
}

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.sent {
            Poll::Pending
        } else {
            self.sent = true;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                b"[{\"Node\":",
            )))))
        }
    }
}

#[tokio::test]
async fn consul_fault_stalled_body_times_out() {
    let app = Router::new().fallback(|| async {
        respond(
            200,
            &[("X-Consul-Index", "5")],
            Body::new(Stall { sent: false }),
        )
    });
    let addr = serve(app).await;
    let client = client_for(addr);
    let started = Instant::now();
    let result = client.health_service("web", &HealthQuery::default()).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn consul_fault_blocking_read_bounded_by_wait() {
    // A server that ignores `wait` and never answers a blocking read.
    let app = Router::new().fallback(|req: Request| async move {
        if req.uri().query().unwrap_or("").contains("index=") {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        respond(200, &[("X-Consul-Index", "5")], "[]")
    });
    let addr = serve(app).await;
    let client = client_for(addr);
    let wait = Duration::from_millis(400);
    let query = HealthQuery {
        options: QueryOptions {
            index: Some(5),
            wait: Some(wait),
            ..Default::default()
        },
        ..Default::default()
    };
    let started = Instant::now();
    match client.health_service("web", &query).await {
        Err(Error::Timeout { after, .. }) => {
            assert_eq!(after, wait + wait / 16 + Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Without an index the same server answers at once.
    let now = client
        .health_service("web", &HealthQuery::default())
        .await
        .unwrap();
    assert_eq!(now.index, 5);
}

#[tokio::test]
async fn consul_fault_secrets_echoed_by_the_server_are_scrubbed() {
    let (addr, _) = mock(|seen| {
        let token = seen
            .headers
            .get("x-consul-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let auth = seen
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        match seen.path.as_str() {
            "/v1/agent/self" => respond(500, &[], format!("bad token {token} from {auth}")),
            "/v1/agent/services" => respond(403, &[], format!("ACL not found: {token}")),
            _ => indexed_json(&format!("{{\"{token}\": ")),
        }
    })
    .await;
    let client = client_with(addr, |b| b.basic_auth("bob", "pw-1f2e3d4c-secret"));
    for result in [
        client.agent_self().await.map(drop),
        client.agent_services().await.map(drop),
        client.agent_checks().await.map(drop),
    ] {
        let e = result.unwrap_err();
        assert_clean(&e);
        assert!(!format!("{e:?}").contains("1f2e3d4c"), "{e:?}");
    }
}

#[tokio::test]
async fn consul_fault_requests_carry_token_scope_and_parameters() {
    let (addr, log) = mock(|seen| match seen.path.as_str() {
        "/v1/agent/service/web%2F1" => respond(
            200,
            &[("X-Consul-ContentHash", "abc123")],
            "{\"ID\":\"web/1\",\"Service\":\"web\",\"ContentHash\":\"zzz\"}",
        ),
        "/v1/health/service/web" | "/v1/health/state/critical" => indexed_json("[]"),
        "/v1/catalog/services" => indexed_json("{\"consul\":[],\"web\":null}"),
        _ => respond(200, &[], ""),
    })
    .await;
    let client = client_with(addr, |b| {
        b.namespace("team-a")
            .partition("part-1")
            .basic_auth("bob", "pw-1f2e3d4c-secret")
    });
    let reg = Registration {
        id: "web-1".into(),
        name: "web".into(),
        port: 8080,
        replace_existing_checks: true,
        ..Default::default()
    };
    client.register(&reg).await.unwrap();
    client.deregister("web/1").await.unwrap();
    let svc = client
        .agent_service("web/1", Some("prev"), Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(svc.value.unwrap().id, "web/1");
    assert_eq!(
        svc.hash.as_deref(),
        Some("abc123"),
        "the header wins over the field"
    );
    client
        .check_update("service:web-1", CheckStatus::Warning, "slow")
        .await
        .unwrap();
    client
        .check_pass("service:web-1", "all good")
        .await
        .unwrap();
    client.check_warn("service:web-1", "").await.unwrap();
    client.check_fail("service:web-1", "down").await.unwrap();
    client
        .health_service(
            "web",
            &HealthQuery {
                passing: true,
                tags: vec!["a".into(), "b c".into()],
                options: QueryOptions {
                    datacenter: Some("dc2".into()),
                    filter: Some("Service.Meta.v == \"2\"".into()),
                    index: Some(17),
                    wait: Some(Duration::from_secs(1)),
                    consistency: Consistency::Stale,
                },
            },
        )
        .await
        .unwrap();
    client
        .health_state(HealthState::Critical, &QueryOptions::default())
        .await
        .unwrap();
    let catalog = client
        .catalog_services(&QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(catalog.value.get("web"), Some(&Vec::new()));
    assert_eq!(catalog.value.get("consul"), Some(&Vec::new()));
    client
        .health_service(
            "web",
            &HealthQuery {
                passing: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let log = log.lock().unwrap().clone();
    let lines: Vec<String> = log
        .iter()
        .map(|s| format!("{} {}?{}", s.method, s.path, s.query))
        .collect();
    assert_eq!(
        lines,
        [
            "PUT /v1/agent/service/register?replace-existing-checks=true&ns=team-a&partition=part-1",
            "PUT /v1/agent/service/deregister/web%2F1?ns=team-a&partition=part-1",
            "GET /v1/agent/service/web%2F1?hash=prev&wait=2000ms&ns=team-a&partition=part-1",
            "PUT /v1/agent/check/update/service:web-1?ns=team-a&partition=part-1",
            "PUT /v1/agent/check/pass/service:web-1?note=all+good&ns=team-a&partition=part-1",
            "PUT /v1/agent/check/warn/service:web-1?note=&ns=team-a&partition=part-1",
            "PUT /v1/agent/check/fail/service:web-1?note=down&ns=team-a&partition=part-1",
            "GET /v1/health/service/web?passing=1&tag=a&tag=b+c&dc=dc2&filter=Service.Meta.v+%3D%3D+%222%22&index=17&wait=1000ms&stale=&ns=team-a&partition=part-1",
            "GET /v1/health/state/critical?ns=team-a&partition=part-1",
            "GET /v1/catalog/services?ns=team-a&partition=part-1",
            "GET /v1/health/service/web?ns=team-a&partition=part-1",
        ]
    );
    for seen in &log {
        assert_eq!(
            seen.headers
                .get("x-consul-token")
                .and_then(|v| v.to_str().ok()),
            Some(TOKEN),
            "{}",
            seen.path
        );
        // bob:pw-1f2e3d4c-secret
        assert_eq!(
            seen.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Basic Ym9iOnB3LTFmMmUzZDRjLXNlY3JldA=="),
        );
        assert!(
            seen.params().iter().all(|(k, _)| k != "token"),
            "never a query token"
        );
    }
    let register = &log[0];
    assert_eq!(
        register
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&register.body).unwrap(),
        serde_json::json!({"ID": "web-1", "Name": "web", "Port": 8080})
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&log[3].body).unwrap(),
        serde_json::json!({"Status": "warning", "Output": "slow"})
    );
}

#[tokio::test]
async fn consul_fault_without_token_sends_no_token_header() {
    let (addr, log) = mock(|_| respond(200, &[], "{}")).await;
    let client = Client::new(Config::builder().address(addr.to_string()).build().unwrap()).unwrap();
    client.agent_self().await.unwrap();
    let log = log.lock().unwrap();
    assert!(log[0].headers.get("x-consul-token").is_none());
    assert!(log[0].headers.get("authorization").is_none());
}

/// A client sends at most 32 requests that do not block at once, across its clones, and the
/// rest wait their turn (Consul turns a client address's 201st connection away); blocking
/// reads do not wait for a turn.
#[tokio::test]
async fn consul_fault_at_most_32_requests_that_do_not_block_are_in_flight() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Default)]
    struct Count {
        plain: AtomicUsize,
        blocking: AtomicUsize,
        most_plain: AtomicUsize,
    }
    let count = Arc::new(Count::default());
    let (open, gate) = tokio::sync::watch::channel(false);
    let app = {
        let count = count.clone();
        Router::new().fallback(move |req: Request| {
            let (count, mut gate) = (count.clone(), gate.clone());
            async move {
                let blocking = req.uri().query().is_some_and(|q| q.contains("hash="));
                if blocking {
                    count.blocking.fetch_add(1, Ordering::SeqCst);
                } else {
                    let now = count.plain.fetch_add(1, Ordering::SeqCst) + 1;
                    count.most_plain.fetch_max(now, Ordering::SeqCst);
                }
                let _ = gate.wait_for(|open| *open).await;
                if !blocking {
                    count.plain.fetch_sub(1, Ordering::SeqCst);
                }
                respond(200, &[("content-type", "application/json")], "{}")
            }
        })
    };
    let client = client_with(serve(app).await, |b| {
        b.request_timeout(Duration::from_secs(30))
    });
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        calls.spawn(async move { client.agent_services().await.map(drop) });
    }
    let mut held = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let client = client.clone();
        held.spawn(async move {
            client
                .agent_service("web-1", Some("h"), Some(Duration::from_secs(30)))
                .await
                .map(drop)
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (
        count.plain.load(Ordering::SeqCst),
        count.blocking.load(Ordering::SeqCst),
    ) != (32, 5)
    {
        assert!(
            Instant::now() < deadline,
            "32 plain and 5 blocking requests in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The other 68 wait their turn: none reaches the server while the 32 are answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count.plain.load(Ordering::SeqCst), 32);
    open.send(true).unwrap();
    while let Some(call) = calls.join_next().await {
        call.unwrap().unwrap();
    }
    assert_eq!(count.most_plain.load(Ordering::SeqCst), 32);
    held.abort_all();
}

#[tokio::test]
async fn consul_fault_path_prefix_is_kept() {
    let (addr, log) = mock(|_| respond(200, &[], "{}")).await;
    let client = Client::new(
        Config::builder()
            .address(format!("http://{addr}/consul/"))
            .build()
            .unwrap(),
    )
    .unwrap();
    client.agent_self().await.unwrap();
    assert_eq!(log.lock().unwrap()[0].path, "/consul/v1/agent/self");
}

// ---- logging ---------------------------------------------------------------------------------

/// Collects every event and span field as text.
struct Capture(Arc<Mutex<String>>);

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Visitor(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Visitor(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "{} ", event.metadata().level());
        event.record(&mut Visitor(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn consul_fault_logs_requests_without_the_token() {
    let logs = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(logs.clone()));
    let (addr, _) = mock(|seen| match seen.path.as_str() {
        "/v1/agent/self" => respond(500, &[], format!("{:?}", seen.headers)),
        _ => indexed_json("[]"),
    })
    .await;
    let client = client_with(addr, |b| b.insecure_skip_verify(true));
    let _ = client.agent_self().await;
    client
        .health_service("web", &HealthQuery::default())
        .await
        .unwrap();
    let _ = client_for(SocketAddr::from(([127, 0, 0, 1], 1)))
        .agent_self()
        .await;
    let logs = logs.lock().unwrap().clone();
    // The request's span fields (`method=`, `path=`) or its events (`request=GET /...`): a
    // span's callsite may have been registered as uninteresting by a parallel test's thread
    // that has no subscriber, so only the events are certain to be seen.
    assert!(
        logs.contains("GET /v1/agent/self") || logs.contains("path=/v1/agent/self"),
        "{logs}"
    );
    assert!(
        logs.contains("GET /v1/health/service/web") || logs.contains("path=/v1/health/service/web"),
        "{logs}"
    );
    assert!(logs.contains("WARN"), "skip-verify warns: {logs}");
    assert!(!logs.contains("5e6f7a8b"), "token logged: {logs}");
}

// ---- Unix socket -----------------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn consul_fault_unix_socket() {
    let path =
        std::env::temp_dir().join(format!("discoverable-consul-{}.sock", uuid::Uuid::new_v4()));
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let app = Router::new().fallback(|req: Request| async move {
        if req.uri().path() == "/v1/agent/self" {
            respond(
                200,
                &[],
                "{\"Config\":{\"Datacenter\":\"unix-dc\",\"NodeName\":\"sock\"}}",
            )
        } else {
            respond(404, &[], "nope")
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let config = Config::from_lookup(|k| {
        (k == "CONSUL_HTTP_ADDR").then(|| format!("unix://{}", path.display()))
    })
    .unwrap();
    let client = Client::new(config).unwrap();
    let me = client.agent_self().await.unwrap();
    assert_eq!(
        (me.datacenter.as_str(), me.node_name.as_str()),
        ("unix-dc", "sock")
    );
    assert!(matches!(
        client.deregister("x").await,
        Err(Error::NotFound { .. })
    ));
    let _ = std::fs::remove_file(&path);

    // A socket that is not there.
    let client = Client::new(
        Config::builder()
            .address("unix:///nonexistent/discoverable/consul.sock")
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        client.agent_self().await,
        Err(Error::Unreachable { .. })
    ));
}

// ---- TLS (feature `tls`) -------------------------------------------------------------------

#[cfg(feature = "tls")]
mod tls {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/consul/testdata")
            .join(name)
    }

    /// Accepts TLS connections with the test server certificate (for `consul.test` only).
    struct TlsListener {
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, peer)) = self.tcp.accept().await else {
                    continue;
                };
                // Failed handshakes are what several tests expect; skip them.
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, peer);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }

    async fn tls_agent(require_client_cert: bool) -> SocketAddr {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: tls_acceptor(require_client_cert),
        };
        let app = Router::new()
            .fallback(|| async { respond(200, &[], "{\"Config\":{\"Datacenter\":\"tls-dc\"}}") });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    fn tls_env(addr: SocketAddr, extra: &[(&str, String)]) -> Result<Client, Error> {
        let mut vars: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        vars.insert("CONSUL_HTTP_ADDR".into(), format!("https://{addr}"));
        vars.insert("CONSUL_HTTP_TOKEN".into(), TOKEN.into());
        let config = Config::builder()
            .request_timeout(Duration::from_secs(2))
            .apply_lookup(|k| vars.get(k).cloned())?
            .build()?;
        Client::new(config)
    }

    fn path_of(name: &str) -> String {
        testdata(name).to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn consul_fault_tls_server_name_and_ca() {
        let addr = tls_agent(false).await;
        let ca = ("CONSUL_CACERT", path_of("ca.pem"));
        let name = ("CONSUL_TLS_SERVER_NAME", "consul.test".to_owned());

        // Trusted CA, and the name in the certificate: works although we dial 127.0.0.1.
        let client = tls_env(addr, &[ca.clone(), name.clone()]).unwrap();
        assert_eq!(client.agent_self().await.unwrap().datacenter, "tls-dc");
        assert_eq!(client.config().address(), format!("https://{addr}"));

        // The same with a port on the server name, and with the CA from a directory.
        let client = tls_env(
            addr,
            &[
                ("CONSUL_CAPATH", path_of("capath")),
                ("CONSUL_TLS_SERVER_NAME", "consul.test:8501".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(client.agent_self().await.unwrap().datacenter, "tls-dc");

        // The name resolved through DNS: `localhost` instead of the IP.
        let client = Client::new(
            Config::builder()
                .address(format!("https://localhost:{}", addr.port()))
                .ca_file(testdata("ca.pem"))
                .tls_server_name("consul.test")
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(client.agent_self().await.unwrap().datacenter, "tls-dc");

        // Without the server name the certificate (for consul.test) does not match 127.0.0.1.
        let client = tls_env(addr, std::slice::from_ref(&ca)).unwrap();
        let e = client.agent_self().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("set CONSUL_TLS_SERVER_NAME"), "{e}");
        assert_clean(&e);

        // An untrusted CA.
        let client = tls_env(
            addr,
            &[("CONSUL_CACERT", path_of("other-ca.pem")), name.clone()],
        )
        .unwrap();
        let e = client.agent_self().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("set CONSUL_CACERT"), "{e}");

        // Verification off: anything goes.
        let client = tls_env(addr, &[("CONSUL_HTTP_SSL_VERIFY", "false".to_owned())]).unwrap();
        assert_eq!(client.agent_self().await.unwrap().datacenter, "tls-dc");

        // Plain HTTP against a TLS port fails cleanly.
        let client = client_for(addr);
        assert!(client.agent_self().await.is_err());
    }

    #[tokio::test]
    async fn consul_fault_tls_client_certificate() {
        let addr = tls_agent(true).await;
        let base = [
            ("CONSUL_CACERT", path_of("ca.pem")),
            ("CONSUL_TLS_SERVER_NAME", "consul.test".to_owned()),
        ];
        let mut with_cert = base.to_vec();
        with_cert.push(("CONSUL_CLIENT_CERT", path_of("client.pem")));
        with_cert.push(("CONSUL_CLIENT_KEY", path_of("client-key.pem")));
        let client = tls_env(addr, &with_cert).unwrap();
        assert_eq!(client.agent_self().await.unwrap().datacenter, "tls-dc");

        let client = tls_env(addr, &base).unwrap();
        let e = client.agent_self().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("set CONSUL_CLIENT_CERT"), "{e}");
        assert_clean(&e);
    }

    /// Accepts connections, completes the TLS handshake when `acceptor` is given, and closes
    /// each without an answer once the request has arrived (over TLS with `close_notify`, as
    /// Go's `tls.Conn.Close` does).
    async fn closing_agent(acceptor: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = tcp.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(mut tls) = acceptor.accept(stream).await {
                                let _ = tls.read(&mut buf).await;
                                let _ = tls.shutdown().await;
                            }
                        }
                        None => {
                            let mut stream = stream;
                            let _ = stream.read(&mut buf).await;
                        }
                    }
                });
            }
        });
        addr
    }

    /// The test agent's TLS side: its certificate from `testdata`, and with
    /// `require_client_cert`, client certificates signed by the test CA required.
    fn tls_acceptor(require_client_cert: bool) -> tokio_rustls::TlsAcceptor {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(testdata("server.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(testdata("server-key.pem")).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(testdata("ca.pem")).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder.with_single_cert(certs, key).unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn consul_fault_a_connection_closed_unanswered_over_tls_names_the_client_certificate() {
        // As a Consul with `verify_incoming` does in TLS 1.3 when its alert is lost: the handshake
        // completes, then the connection closes without an answer.
        let addr = closing_agent(Some(tls_acceptor(false))).await;
        let client = tls_env(
            addr,
            &[
                ("CONSUL_CACERT", path_of("ca.pem")),
                ("CONSUL_TLS_SERVER_NAME", "consul.test".to_owned()),
            ],
        )
        .unwrap();
        let e = client.agent_self().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.contains("closed the connection without answering"),
            "{shown}"
        );
        assert!(shown.contains("set CONSUL_CLIENT_CERT"), "{shown}");
        assert_clean(&e);

        // The same over plain HTTP says nothing about TLS.
        let addr = closing_agent(None).await;
        let e = client_for(addr).agent_self().await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert!(!e.to_string().contains("TLS"), "{e}");
    }
}
