//! The agent serving HTTPS (`Config::tls`, `--tls-cert/--tls-key/--tls-client-ca`): the same
//! API over TLS, client certificates when asked for, clear errors for unusable PEM material,
//! and a listener that survives failed handshakes. Certificates are made in the test (`discoverable_testkit::pki`);
//! everything runs on 127.0.0.1.

use discoverable_testkit::pki;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use discoverable_devagent::{Config, DevAgent, TlsConfig};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn tls(pair: &pki::Pair) -> TlsConfig {
    TlsConfig::new(pair.cert_pem.clone(), pair.key_pem.clone())
}

async fn start(tls: TlsConfig) -> DevAgent {
    DevAgent::start(Config {
        tls: Some(tls),
        ..Config::default()
    })
    .await
    .expect("TLS agent starts")
}

/// A client trusting only `ca_pem`, optionally presenting a certificate.
fn client(ca_pem: &str, identity: Option<&pki::Pair>) -> reqwest::Client {
    let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only(roots)
        .timeout(T)
        .no_proxy();
    if let Some(pair) = identity {
        let pem = format!("{}{}", pair.cert_pem, pair.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// Registers `web` and reads it back through the health endpoint.
async fn round_trip(http: &reqwest::Client, url: &str) -> Result<Value, reqwest::Error> {
    http.put(format!("{url}/v1/agent/service/register"))
        .body(json!({"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"TTL": "30s", "Status": "passing"}}).to_string())
        .send()
        .await?
        .error_for_status()?;
    http.get(format!("{url}/v1/health/service/web?passing"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// The error and its sources as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test]
async fn serves_the_api_over_https() {
    let pki = pki::pki();
    let agent = start(tls(&pki.server)).await;
    let url = agent.url();
    assert!(agent.is_tls());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let http = client(&pki.ca_pem, None);
    let healthy = round_trip(&http, &url).await.unwrap();
    assert_eq!(healthy[0]["Service"]["ID"], "web-1");
    assert_eq!(healthy[0]["Service"]["Port"], 8080);
    // The name in the certificate works as well as the IP.
    let by_name = url.replace("127.0.0.1", "localhost");
    let leader: String = http
        .get(format!("{by_name}/v1/status/leader"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(leader.starts_with("127.0.0.1:"), "{leader}");
    agent.shutdown().await;
}

#[tokio::test]
async fn refuses_what_a_tls_server_refuses_and_keeps_serving() {
    let pki = pki::pki();
    let agent = start(tls(&pki.server)).await;
    let url = agent.url();

    // A client that does not trust the agent's CA.
    let e = round_trip(&client(&pki.other_ca_pem, None), &url)
        .await
        .unwrap_err();
    let text = chain(&e);
    assert!(e.is_connect(), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = url.replace("https://", "http://");
    let e = reqwest::Client::new()
        .get(format!("{plain}/v1/status/leader"))
        .timeout(T)
        .send()
        .await;
    assert!(
        e.as_ref().map(|r| !r.status().is_success()).unwrap_or(true),
        "{e:?}"
    );

    // A connection that never starts its handshake holds up nobody.
    let _idle = tokio::net::TcpStream::connect(agent.addr()).await.unwrap();

    // The agent still serves a client that trusts it.
    round_trip(&client(&pki.ca_pem, None), &url).await.unwrap();
    agent.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = pki::pki();
    let agent = start(tls(&pki.server).require_client_cert(pki.ca_pem.clone())).await;
    let url = agent.url();

    let healthy = round_trip(&client(&pki.ca_pem, Some(&pki.client)), &url)
        .await
        .unwrap();
    assert_eq!(healthy[0]["Service"]["ID"], "web-1");

    for (what, identity) in [
        ("no client certificate", None),
        ("a certificate of another CA", Some(&pki.stranger)),
    ] {
        let e = round_trip(&client(&pki.ca_pem, identity), &url)
            .await
            .expect_err(what);
        assert!(
            e.is_connect() || e.is_request() || e.is_body(),
            "{what}: {}",
            chain(&e)
        );
    }
    // Still serving.
    round_trip(&client(&pki.ca_pem, Some(&pki.client)), &url)
        .await
        .unwrap();
    agent.shutdown().await;
}

#[tokio::test]
async fn unusable_pem_material_is_a_clear_start_error() {
    let pki = pki::pki();
    let cases = [
        (
            TlsConfig::new("not a certificate", pki.server.key_pem.clone()),
            "TLS certificate",
        ),
        (
            TlsConfig::new(pki.server.cert_pem.clone(), "not a key"),
            "TLS key",
        ),
        (
            TlsConfig::new(pki.server.cert_pem.clone(), pki.client.key_pem.clone()),
            "do not go together",
        ),
        (
            tls(&pki.server).require_client_cert("no CA here"),
            "client CA",
        ),
    ];
    for (config, expected) in cases {
        let shown = format!("{config:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        let e = start_err(config).await;
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(expected), "{expected}: {e}");
    }
}

async fn start_err(tls: TlsConfig) -> std::io::Error {
    DevAgent::start(Config {
        tls: Some(tls),
        ..Config::default()
    })
    .await
    .expect_err("must not start")
}

#[tokio::test]
async fn listens_with_tls_again_after_the_unavailable_fault() {
    let pki = pki::pki();
    let agent = start(tls(&pki.server)).await;
    let url = agent.url();
    let http = client(&pki.ca_pem, None);
    agent.faults().set_unavailable(true).await;
    assert!(round_trip(&http, &url).await.is_err());
    agent.faults().set_unavailable(false).await;
    round_trip(&http, &url).await.unwrap();
    agent.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_command_serves_mutual_tls_from_files() {
    let pki = pki::pki();
    let mut child = Command::new(env!("CARGO_BIN_EXE_devagent"))
        .args(["--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.server.cert)
        .arg("--tls-key")
        .arg(&pki.server.key)
        .arg("--tls-client-ca")
        .arg(&pki.ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("devagent starts");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut child = Kill(child);
    let url = line
        .trim_end()
        .strip_prefix("devagent listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    round_trip(&client(&pki.ca_pem, Some(&pki.client)), &url)
        .await
        .unwrap();
    assert!(
        round_trip(&client(&pki.ca_pem, None), &url).await.is_err(),
        "a client without a certificate is refused"
    );

    // Flags that do not go together, or a file that is not there: a clear error, exit 2.
    for args in [
        vec![
            "--tls-cert".to_owned(),
            pki.server.cert.display().to_string(),
        ],
        vec![
            "--tls-cert".to_owned(),
            pki.dir.join("missing.pem").display().to_string(),
            "--tls-key".to_owned(),
            pki.server.key.display().to_string(),
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_devagent"))
            .args(["--addr", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--tls-"), "{stderr}");
    }

    // SIGTERM stops it cleanly.
    let started = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(started.elapsed() < T, "devagent did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
