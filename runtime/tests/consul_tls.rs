//! TLS to Consul against the dev agent serving HTTPS, with certificates made in the test:
//! `CONSUL_HTTP_SSL` + `CONSUL_CACERT` (and `CONSUL_CAPATH`), an untrusted CA, mutual TLS with
//! `CONSUL_CLIENT_CERT`/`CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME` when dialling an IP, and
//! `CONSUL_HTTP_SSL_VERIFY=false`. Through the client and through `serve`; every failure is a
//! typed error or a log line, never a panic. Everything on 127.0.0.1.

mod capture;
use discoverable_testkit::pki;

use discoverable_testkit::until;

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, routing::get};
use discoverable_devagent::{Config as AgentConfig, DevAgent, TlsConfig};
use discoverable_runtime::consul::{
    self, CheckDefinition, CheckStatus, Client, HealthQuery, Registration,
};
use discoverable_runtime::{Error, Service};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(10);

async fn tls_agent(pair: &pki::Pair, client_ca: Option<&str>) -> DevAgent {
    capture::install();
    let mut tls = TlsConfig::new(pair.cert_pem.clone(), pair.key_pem.clone());
    if let Some(ca) = client_ca {
        tls = tls.require_client_cert(ca.to_owned());
    }
    DevAgent::start(AgentConfig {
        tls: Some(tls),
        ..AgentConfig::default()
    })
    .await
    .unwrap()
}

/// A Consul configuration read from these "environment variables" only.
fn config(vars: &[(&str, String)]) -> consul::Config {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    consul::Config::builder()
        .request_timeout(Duration::from_secs(3))
        .apply_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
        .build()
        .unwrap()
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Registers `name` with a passing TTL check and reads it back three ways.
async fn register_and_read_back(client: &Client, name: &str) -> Result<(), Error> {
    let id = format!("{name}-1");
    client
        .register(&{
            let mut reg = Registration::new(&id, name);
            reg.address = "127.0.0.1".into();
            reg.port = 8080;
            reg.tags = vec!["tls".into()];
            let mut check = CheckDefinition::ttl(Duration::from_secs(30));
            check.status = Some(CheckStatus::Passing);
            reg.checks.push(check);
            reg
        })
        .await?;
    let found = client.agent_service(&id, None, None).await?;
    let service = found.value.expect("registered");
    assert_eq!((service.service.as_str(), service.port), (name, 8080));
    assert!(client.agent_services().await?.contains_key(&id));
    let healthy = client.health_service(name, &HealthQuery::default()).await?;
    assert_eq!(healthy.value.len(), 1);
    assert_eq!(healthy.value[0].service.tags, ["tls"]);
    client.deregister(&id).await?;
    assert!(client.agent_service(&id, None, None).await?.value.is_none());
    Ok(())
}

/// Serves an instance with `config`; returns its handle and `serve`'s task.
async fn serve(
    name: &str,
    config: consul::Config,
) -> (
    discoverable_runtime::Instance,
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let service = Service::builder(name)
        .prefix(format!("/{name}"))
        .consul(config)
        .grace_period(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "home page" }));
    let task =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());
    (instance, addr, task)
}

/// Serves an instance over `config`, waits until `check` sees it registered, stops it, and
/// checks it left.
async fn serve_registered(name: &str, config: consul::Config, check: &Client) {
    let (instance, _, task) = serve(name, config).await;
    let id = instance.id().to_owned();
    let registered = |want: bool| {
        let id = id.clone();
        async move {
            matches!(check.agent_service(&id, None, None).await,
                Ok(h) if h.value.is_some() == want)
        }
    };
    until(T, "registered over TLS", || registered(true)).await;
    instance.shutdown();
    tokio::time::timeout(T, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(registered(false).await, "deregistered over TLS");
}

/// The error must be `Unreachable`, name the address, say it is about TLS, and name `fix`.
fn assert_tls_unreachable(what: &str, e: &Error, addr: &str, fix: &str) {
    let shown = e.to_string();
    match e {
        Error::Unreachable {
            addr: a, message, ..
        } => {
            assert_eq!(a, addr, "{what}");
            let lower = message.to_lowercase();
            assert!(
                [
                    "certificate",
                    "tls",
                    "handshake",
                    "alert",
                    "closed",
                    "reset"
                ]
                .iter()
                .any(|w| lower.contains(w)),
                "{what}: {shown}"
            );
        }
        other => panic!("{what}: expected Unreachable, got {other:?}"),
    }
    assert!(shown.contains("cannot reach Consul at"), "{what}: {shown}");
    // It says it is TLS, and which of Consul's variables fixes it.
    assert!(shown.contains("TLS"), "{what}: {shown}");
    assert!(shown.contains(fix), "{what}: {shown}");
}

#[tokio::test]
async fn consul_http_ssl_with_cacert_registers_and_reads_back() {
    let pki = pki::pki();
    let agent = tls_agent(&pki.server, None).await;
    let port = agent.addr().port();
    let base = [
        ("CONSUL_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("CONSUL_HTTP_SSL", "true".to_owned()),
    ];
    let mut with_ca = base.to_vec();
    with_ca.push(("CONSUL_CACERT", path(&pki.ca)));
    let cfg = config(&with_ca);
    assert_eq!(cfg.address(), format!("https://127.0.0.1:{port}"));
    let client = Client::new(cfg.clone()).unwrap();
    register_and_read_back(&client, "tls-cacert").await.unwrap();
    assert_eq!(client.agent_self().await.unwrap().datacenter, "dc1");

    // The same CA from a directory.
    let capath = pki.dir.join("capath");
    std::fs::create_dir_all(&capath).unwrap();
    std::fs::copy(&pki.ca, capath.join("ca.pem")).unwrap();
    let mut with_capath = base.to_vec();
    with_capath.push(("CONSUL_CAPATH", path(&capath)));
    register_and_read_back(&Client::new(config(&with_capath)).unwrap(), "tls-capath")
        .await
        .unwrap();

    // A served instance registers, and deregisters, over TLS.
    serve_registered("tls-served", cfg, &client).await;
    agent.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_ca_fails_with_a_clear_error_and_serving_goes_on() {
    let pki = pki::pki();
    let agent = tls_agent(&pki.server, None).await;
    let url = agent.url();
    let cfg = config(&[
        ("CONSUL_HTTP_ADDR", url.clone()),
        ("CONSUL_CACERT", path(&pki.other_ca)),
    ]);
    let client = Client::new(cfg.clone()).unwrap();
    for e in [
        client.agent_self().await.unwrap_err(),
        register_and_read_back(&client, "tls-untrusted")
            .await
            .unwrap_err(),
    ] {
        assert_tls_unreachable("untrusted CA", &e, &url, "CONSUL_CACERT");
        assert!(e.to_string().contains("certificate"), "{e}");
    }

    // Plain HTTP to the HTTPS port: a typed error too.
    let plain = Client::new(config(&[(
        "CONSUL_HTTP_ADDR",
        url.replace("https://", "http://"),
    )]))
    .unwrap();
    let e = plain.agent_self().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unreachable { .. } | Error::Decode { .. } | Error::Status { .. }
        ),
        "{e:?}"
    );

    // An instance keeps serving and says why it is not registered.
    let (instance, addr, task) = serve("tls-untrusted-served", cfg).await;
    let line = capture::wait_for(&["registration failed", &url, "certificate"], T).await;
    assert!(line.contains("WARN"), "{line}");
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(!instance.is_registered());
    instance.shutdown();
    tokio::time::timeout(T, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    agent.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_with_client_cert_and_key() {
    let pki = pki::pki();
    let agent = tls_agent(&pki.server, Some(&pki.ca_pem)).await;
    let url = agent.url();
    let base = [
        ("CONSUL_HTTP_ADDR", url.clone()),
        ("CONSUL_CACERT", path(&pki.ca)),
    ];
    let with = |pair: &pki::Pair| {
        let mut v = base.to_vec();
        v.push(("CONSUL_CLIENT_CERT", path(&pair.cert)));
        v.push(("CONSUL_CLIENT_KEY", path(&pair.key)));
        config(&v)
    };

    let cfg = with(&pki.client);
    assert_eq!(cfg.client_cert(), Some(pki.client.cert.as_path()));
    let client = Client::new(cfg.clone()).unwrap();
    register_and_read_back(&client, "tls-mutual").await.unwrap();
    serve_registered("tls-mutual-served", cfg, &client).await;

    for (what, cfg) in [
        ("no client certificate", config(&base)),
        ("a client certificate of another CA", with(&pki.stranger)),
    ] {
        let e = register_and_read_back(&Client::new(cfg).unwrap(), "tls-refused")
            .await
            .unwrap_err();
        assert_tls_unreachable(what, &e, &url, "CONSUL_CLIENT_CERT");
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn tls_server_name_when_dialling_an_ip_for_a_localhost_certificate() {
    let pki = pki::pki();
    let agent = tls_agent(&pki.localhost_only, None).await;
    let url = agent.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let base = [
        ("CONSUL_HTTP_ADDR", url.clone()),
        ("CONSUL_CACERT", path(&pki.ca)),
    ];

    // The certificate names `localhost` only: dialling the IP fails verification...
    let e = register_and_read_back(&Client::new(config(&base)).unwrap(), "tls-name")
        .await
        .unwrap_err();
    assert_tls_unreachable("no server name", &e, &url, "CONSUL_TLS_SERVER_NAME");
    assert!(e.to_string().contains("certificate"), "{e}");

    // ...and works with the name the certificate carries.
    let mut named = base.to_vec();
    named.push(("CONSUL_TLS_SERVER_NAME", "localhost".to_owned()));
    let cfg = config(&named);
    assert_eq!(cfg.tls_server_name(), Some("localhost"));
    assert_eq!(cfg.address(), url, "the address stays the IP");
    let client = Client::new(cfg.clone()).unwrap();
    register_and_read_back(&client, "tls-name").await.unwrap();
    serve_registered("tls-name-served", cfg, &client).await;

    // A name the certificate does not carry fails.
    let mut wrong = base.to_vec();
    wrong.push(("CONSUL_TLS_SERVER_NAME", "consul.example".to_owned()));
    let e = Client::new(config(&wrong))
        .unwrap()
        .agent_self()
        .await
        .unwrap_err();
    assert_tls_unreachable("wrong server name", &e, &url, "CONSUL_TLS_SERVER_NAME");
    agent.shutdown().await;
}

#[tokio::test]
async fn skip_verify_works_without_a_ca_and_logs_a_warning() {
    let pki = pki::pki();
    let agent = tls_agent(&pki.localhost_only, None).await;
    let url = agent.url();
    let cfg = config(&[
        ("CONSUL_HTTP_ADDR", url.clone()),
        ("CONSUL_HTTP_SSL_VERIFY", "false".to_owned()),
    ]);
    assert!(cfg.insecure_skip_verify());
    let client = Client::new(cfg.clone()).unwrap();
    let line = capture::wait_for(&["TLS verification", &url], T).await;
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("development"), "{line}");
    // Neither the CA nor the name (localhost, dialled as 127.0.0.1) is checked.
    register_and_read_back(&client, "tls-skip").await.unwrap();
    serve_registered("tls-skip-served", cfg, &client).await;
    agent.shutdown().await;
}

/// The same settings against a real Consul serving HTTPS with the test's certificates and
/// requiring client certificates: `CONSUL_HTTP_SSL` + `CONSUL_CACERT` + the client pair
/// register, read back and serve; without the client pair, or with an untrusted CA, the
/// error says it is TLS and which variable fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_https_with_cacert_and_client_certificates() {
    let test = "real_consul_https_with_cacert_and_client_certificates";
    let Some(peers) = discoverable_testkit::peers::require(test) else {
        return;
    };
    let pki = pki::pki();
    let options = discoverable_testkit::ConsulOptions {
        https: Some(discoverable_testkit::Https {
            ca_file: pki.ca.clone(),
            cert_file: pki.server.cert.clone(),
            key_file: pki.server.key.clone(),
            verify_incoming: true,
        }),
        ..Default::default()
    };
    let consul =
        tokio::task::block_in_place(|| discoverable_testkit::Consul::start(&peers, options));
    let port = consul.https_addr().expect("an HTTPS listener").port();
    let base = [
        ("CONSUL_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("CONSUL_HTTP_SSL", "true".to_owned()),
    ];
    let with = |ca: &std::path::Path, pair: Option<&pki::Pair>| {
        let mut v = base.to_vec();
        v.push(("CONSUL_CACERT", path(ca)));
        if let Some(pair) = pair {
            v.push(("CONSUL_CLIENT_CERT", path(&pair.cert)));
            v.push(("CONSUL_CLIENT_KEY", path(&pair.key)));
        }
        config(&v)
    };
    let cfg = with(&pki.ca, Some(&pki.client));
    let url = cfg.address().to_owned();
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    let client = Client::new(cfg.clone()).unwrap();
    register_and_read_back(&client, "tls-real").await.unwrap();
    serve_registered("tls-real-served", cfg, &client).await;

    for (what, cfg, fix) in [
        (
            "no client certificate",
            with(&pki.ca, None),
            "CONSUL_CLIENT_CERT",
        ),
        (
            "a client certificate of another CA",
            with(&pki.ca, Some(&pki.stranger)),
            "CONSUL_CLIENT_CERT",
        ),
        (
            "an untrusted CA",
            with(&pki.other_ca, Some(&pki.client)),
            "CONSUL_CACERT",
        ),
    ] {
        let e = register_and_read_back(&Client::new(cfg).unwrap(), "tls-refused")
            .await
            .unwrap_err();
        assert_tls_unreachable(what, &e, &url, fix);
    }
}
