//! A tonic server served as a discoverable instance, against the dev agent and a real Consul
//! (`dev_agent::` / `real_consul::`), which run the `GRPC` check themselves
//! (`grpc.health.v1.Health/Check` over HTTP/2): passing once registered,
//! critical while the instance says `NOT_SERVING`, one Fabio route per served service, and on
//! shutdown `NOT_SERVING` at once, deregistered, then the listener closed; a streaming call in
//! flight at shutdown completes within the drain, after the deregistration; over TLS, checked
//! over TLS and reached by the TLS channel.
//!
//! On the real Consul and Fabio: Fabio routes unary and streaming calls by the service's
//! `proto=grpc` route, and `proto=grpcs` ones from a TLS listener; a client on the balanced
//! channel loses no call while an instance leaves; a rolling restart of two example processes
//! under calls through Fabio and the balanced channel fails none. The example on its own runs
//! on the dev agent.

#[path = "../examples/support/greeter.rs"]
mod greeter;
mod support;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use discoverable::consul::{self, CheckStatus, Client};
use discoverable::{Discovery, Health, Service, grpc};
use discoverable_testkit::{
    Agent, AgentKind, Consul, ConsulOptions, Fabio, FabioOptions, peers, pki, until,
};
use greeter::{Greeter, GreeterClient};
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const T: Duration = Duration::from_secs(20);

/// A client configuration for the agent at `url`.
fn config(url: String) -> consul::Config {
    consul::Config::builder()
        .address(url)
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Whether the agent lists instance `id`; `None` while it does not answer.
async fn listed(client: &Client, id: &str) -> Option<bool> {
    let services = client.agent_services().await.ok()?;
    Some(services.contains_key(id))
}

async fn grpc_status(url: &str, service: &str) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = HealthClient::new(channel).check(request).await?;
    Ok(answer.into_inner().status)
}

/// The health answer of the TLS server at `addr`, verified with `ca_pem` for `localhost`.
async fn grpc_status_tls(addr: &str, ca_pem: &str) -> Result<i32, tonic::Status> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let answer = HealthClient::new(channel).check(request).await?;
    Ok(answer.into_inner().status)
}

/// A greeter answering as `name`, served on 127.0.0.1 as an instance of `service`.
struct Served {
    /// The service's own instance (taken before the serve call).
    instance: discoverable::Instance,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (bounded) for the serve call to return, and asserts it returned `Ok`.
    async fn returns_ok(self, what: &str) {
        tokio::time::timeout(T, self.task)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .unwrap()
            .unwrap();
    }
}

/// Serves a greeter answering as `name` for `service`, over TLS with `tls`.
async fn serve_greeter(service: Service, name: &str, tls: Option<grpc::ServerTls>) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Minted first, so the greeter's endless streams can end when its shutdown begins.
    let instance = service.new_instance();
    let mut routes = grpc::Routes::new(Greeter {
        instance: name.into(),
        serving: Some(instance.clone()),
    });
    if let Some(tls) = tls {
        routes = routes.tls(tls);
    }
    let task = tokio::spawn(grpc::serve(instance.clone(), listener, routes).into_future());
    Served {
        instance,
        addr,
        task,
    }
}

/// A real Consul and a Fabio in front of it whose proxy listener has `proto` (Fabio's
/// `proto=` and the listener options after it), with `args` besides.
fn consul_and_fabio(peers: &peers::Peers, proto: &str, args: Vec<String>) -> (Consul, Fabio) {
    tokio::task::block_in_place(|| {
        let consul = Consul::start(peers, ConsulOptions::default());
        let fabio = Fabio::start_in(
            peers,
            FabioOptions {
                proxy_proto: Some(proto.into()),
                args,
                ..FabioOptions::new(consul.http_addr())
            },
        );
        (consul, fabio)
    })
}

async fn check_status(client: &Client, id: &str) -> Option<CheckStatus> {
    let checks = client.agent_checks().await.ok()?;
    checks.get(&format!("service:{id}")).map(|c| c.status)
}

async fn grpc_check_and_a_route_per_service(kind: AgentKind) {
    let Some(agent) = Agent::start(kind, "grpc_check_and_a_route_per_service", None).await else {
        return;
    };
    let client = Client::new(config(agent.url())).unwrap();
    let service = Service::builder("greeter")
        .prefix("/greeter")
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .grace_period(Duration::from_secs(2))
        .consul(config(agent.url()))
        .build()
        .unwrap();
    let routes = grpc::Routes::new(Greeter {
        instance: "a".into(),
        serving: None,
    });
    assert_eq!(routes.names(), ["helloworld.Greeter"]);
    let served = serve_greeter(service, "a", None).await;
    let (instance, url) = (served.instance.clone(), served.url());
    let id = instance.id().to_owned();

    // Registered with a GRPC check on the advertised address, and Fabio's routes.
    let registered = until(T, "registered", || async {
        client.agent_services().await.ok()?.remove(&id)
    })
    .await;
    assert_eq!(
        registered.tags,
        [
            "urlprefix-/helloworld.Greeter proto=grpc",
            "urlprefix-/greeter"
        ]
    );
    let serving = ServingStatus::Serving as i32;
    assert_eq!(grpc_status(&url, "").await.unwrap(), serving);
    assert_eq!(
        grpc_status(&url, "helloworld.Greeter").await.unwrap(),
        serving
    );
    assert_eq!(
        grpc_status(&url, "other.Service").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // Consul's own gRPC client runs the check and reads SERVING ("gRPC check <target>:
    // success"; before its first run the output is empty).
    until(T, "Consul's GRPC check ran and passed", || async {
        let checks = client.agent_checks().await.ok()?;
        let check = checks.get(&format!("service:{id}"))?.clone();
        (check.status == CheckStatus::Passing && check.output.ends_with(": success")).then_some(())
    })
    .await;

    // NOT_SERVING turns the check critical; back to SERVING, passing again.
    instance.set_health(Health::Down);
    until(T, "critical while NOT_SERVING", || async {
        check_status(&client, &id).await == Some(CheckStatus::Critical)
    })
    .await;
    instance.clear_health();
    until(T, "passing again", || async {
        check_status(&client, &id).await == Some(CheckStatus::Passing)
    })
    .await;

    // Shutdown: NOT_SERVING at once, deregistered while the listener still answers.
    instance.shutdown();
    until(T, "NOT_SERVING from the start of shutdown", || async {
        grpc_status(&url, "").await.ok() == Some(ServingStatus::NotServing as i32)
    })
    .await;
    until(T, "deregistered", || async {
        listed(&client, &id).await == Some(false)
    })
    .await;
    assert_eq!(
        grpc_status(&url, "").await.ok(),
        Some(ServingStatus::NotServing as i32),
        "the listener still answers during the grace period, after deregistration"
    );
    served
        .returns_ok("serve returns after the grace period and the drain")
        .await;
}

/// A greeter answering as `tls`, served over TLS with `tls`, registered with the agent at
/// `agent_url` as `name`.
async fn serve_tls(agent_url: String, name: &str, tls: grpc::ServerTls) -> Served {
    let service = Service::builder(name)
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .grace_period(Duration::from_millis(300))
        .consul(config(agent_url))
        .build()
        .unwrap();
    serve_greeter(service, "tls", Some(tls)).await
}

/// A gRPC server over TLS: the agent's check calls it over TLS (`GRPCUseTLS`), verifying the
/// certificate unless told not to; the routes say `proto=grpcs`; a balanced channel with the
/// CA reaches it; a plaintext client does not.
async fn grpc_over_tls_is_checked_and_reached_over_tls(kind: AgentKind) {
    let test = "grpc_over_tls_is_checked_and_reached_over_tls";
    let Some(agent) = Agent::start(kind, test, None).await else {
        return;
    };
    let client = Client::new(config(agent.url())).unwrap();
    let pki = pki::pki();
    let pem = |pair: &pki::Pair| grpc::ServerTls::from_pem(&pair.cert_pem, &pair.key_pem).unwrap();

    // Verified: the test CA is not one the agent trusts, so the check fails on the certificate.
    let verified = pem(&pki.server).check_server_name("localhost");
    let served = serve_tls(agent.url(), "verified", verified).await;
    let instance = served.instance.clone();
    let id = instance.id().to_owned();
    if kind == AgentKind::Dev {
        // Both agents show a service check's `Definition` empty; the dev agent shows how it
        // decoded the registration at /_devagent/checks.
        let definition = until(T, "the check's definition", || async {
            let checks = support::get_json(&format!("{}/_devagent/checks", agent.url())).await?;
            Some(checks.get(format!("service:{id}"))?.clone())
        })
        .await;
        assert_eq!(definition["GRPCUseTLS"], true, "{definition}");
        assert_eq!(definition["TLSServerName"], "localhost", "{definition}");
        assert_eq!(definition.get("TLSSkipVerify"), None, "{definition}");
    }
    let registered = until(T, "registered", || async {
        client.agent_services().await.ok()?.remove(&id)
    })
    .await;
    assert_eq!(
        registered.tags,
        ["urlprefix-/helloworld.Greeter proto=grpcs"]
    );
    let output = until(
        T,
        "the check ran over TLS and refused the certificate",
        || async {
            let check = client
                .agent_checks()
                .await
                .ok()?
                .remove(&format!("service:{id}"))?;
            (check.status == CheckStatus::Critical && !check.output.is_empty())
                .then_some(check.output)
        },
    )
    .await;
    eprintln!("{kind:?}: a certificate of an unknown CA: {output}");
    // Both agents word it as grpc-go does.
    assert!(
        output.ends_with(
            "authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""
        ),
        "the check failed on the certificate: {output}"
    );
    instance.shutdown();
    served.returns_ok("serve returns after the shutdown").await;

    // Unverified: the check passes over TLS.
    let served = serve_tls(agent.url(), "unverified", pem(&pki.server).unverified()).await;
    let (instance, addr) = (served.instance.clone(), served.addr.to_string());
    let id = instance.id().to_owned();
    until(T, "the check passed over TLS", || async {
        let check = client
            .agent_checks()
            .await
            .ok()?
            .remove(&format!("service:{id}"))?;
        (check.status == CheckStatus::Passing && check.output.ends_with(": success")).then_some(())
    })
    .await;
    let registered = client.agent_services().await.unwrap().remove(&id).unwrap();
    assert_eq!(
        registered.tags,
        ["urlprefix-/helloworld.Greeter proto=grpcs tlsskipverify=true"]
    );
    // A client that connects and never says hello holds up nobody: each handshake runs on
    // its own (one in the accept loop would hold it for the 10 s handshake bound).
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), grpc_status_tls(&addr, &pki.ca_pem))
        .await
        .expect("answered while another connection stalls its handshake");
    assert_eq!(status.unwrap(), ServingStatus::Serving as i32);
    assert!(
        grpc_status(&format!("http://{addr}"), "").await.is_err(),
        "a plaintext client gets no answer from a TLS server"
    );
    // The HTTP health route answers over TLS too, HTTP/1.1 negotiated by ALPN.
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let health = https
        .get(format!("https://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (health.status().as_u16(), health.version()),
        (200, reqwest::Version::HTTP_11)
    );
    // The calling side: a balanced channel verifying with the CA.
    let discovery = Discovery::new(Client::new(config(agent.url())).unwrap());
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let mut greeter = GreeterClient::new(discovery.grpc_channel_tls("unverified", tls));
    let reply = tokio::time::timeout(T, greeter.say_hello("TLS"))
        .await
        .expect("answered through the TLS channel")
        .unwrap();
    assert_eq!(reply.message, "hello TLS from tls");
    instance.shutdown();
    until(T, "deregistered", || async {
        listed(&client, &id).await == Some(false)
    })
    .await;
    served.returns_ok("serve returns after the shutdown").await;
}

/// Two instances; a client on `Discovery::grpc_channel` calls them while one shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_balanced_channel_follows_an_instance_leaving_without_a_failed_call() {
    let test = "real_consul_balanced_channel_follows_an_instance_leaving_without_a_failed_call";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let consul = tokio::task::block_in_place(|| Consul::start(&peers, ConsulOptions::default()));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let service = Service::builder("balanced")
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_millis(500))
            .grace_period(Duration::from_secs(1))
            .consul(config(consul.url()))
            .build()
            .unwrap();
        instances.push(serve_greeter(service, "b", None).await);
    }
    let discovery = Discovery::new(Client::new(config(consul.url())).unwrap());
    let mut watch = discovery.watch("balanced").start();
    tokio::time::timeout(T, watch.wait_for(|set| set.len() == 2))
        .await
        .expect("both instances passing");
    let mut health = HealthClient::new(discovery.grpc_channel("balanced"));
    let ask = || HealthCheckRequest {
        service: String::new(),
    };
    until(T, "a first call answered", || {
        let mut health = health.clone();
        async move { health.check(ask()).await.is_ok() }
    })
    .await;

    // One instance leaves; calls go on until it has exited, and none fails.
    let leaving = instances.remove(0);
    leaving.instance.shutdown();
    // A call fails when it gets no answer. The leaving instance answers NOT_SERVING (its
    // health) until the watch has taken it out of the channel: answered, not failed.
    let (mut ok, mut not_serving, mut failed) = (0u32, 0u32, Vec::new());
    while !leaving.task.is_finished() {
        match health.check(ask()).await {
            Ok(answer) if answer.get_ref().status == ServingStatus::Serving as i32 => ok += 1,
            Ok(_) => not_serving += 1,
            Err(status) => failed.push(status.to_string()),
        }
    }
    leaving.task.await.unwrap().unwrap();
    // The channel keeps working on the other instance after the first has gone.
    for _ in 0..20 {
        match health.check(ask()).await {
            Ok(_) => ok += 1,
            Err(status) => failed.push(status.to_string()),
        }
    }
    eprintln!(
        "{ok} calls answered SERVING and {not_serving} NOT_SERVING while an instance left, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    assert!(ok > 20, "calls were made while the instance left: {ok}");
    let staying = instances.remove(0);
    staying.instance.shutdown();
    staying.task.await.unwrap().unwrap();
}

async fn connect(url: &str) -> GreeterClient {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    GreeterClient::new(channel)
}

/// A greeter `a` of the service `name` with these grace and drain bounds, served and
/// registered with a fresh agent of `kind` (kept alive by the returned value); `None` when
/// that agent cannot run here.
async fn registered_streamer(
    kind: AgentKind,
    test: &str,
    name: &str,
    grace: Duration,
    drain: Duration,
) -> Option<(Agent, Client, Served)> {
    let agent = Agent::start(kind, test, None).await?;
    let config = config(agent.url());
    let client = Client::new(config.clone()).unwrap();
    let service = Service::builder(name)
        .grace_period(grace)
        .drain_timeout(drain)
        .consul(config)
        .build()
        .unwrap();
    let served = serve_greeter(service, "a", None).await;
    let id = served.instance.id().to_owned();
    until(T, "registered", || async {
        listed(&client, &id).await == Some(true)
    })
    .await;
    Some((agent, client, served))
}

async fn a_stream_in_flight_at_shutdown_completes_after_deregistration(kind: AgentKind) {
    let test = "a_stream_in_flight_at_shutdown_completes_after_deregistration";
    let (grace, drain) = (Duration::from_millis(300), Duration::from_secs(10));
    let Some((_agent, client, served)) =
        registered_streamer(kind, test, "streamer", grace, drain).await
    else {
        return;
    };
    let (instance, url) = (served.instance.clone(), served.url());
    let id = instance.id().to_owned();

    // Ten replies 150 ms apart: 1.5 s, well past the 300 ms grace period.
    let mut greeter = connect(&url).await;
    let mut replies = greeter
        .say_hellos("drain", 10, Duration::from_millis(150))
        .await
        .unwrap();
    let first = replies.message().await.unwrap().expect("a first reply");
    assert_eq!(first.message, "hello drain (1 of 10) from a");
    instance.shutdown();
    let mut got = 1;
    let mut deregistered_meanwhile = false;
    while let Some(reply) = replies.message().await.expect("the stream ends cleanly") {
        got += 1;
        assert_eq!(reply.message, format!("hello drain ({got} of 10) from a"));
        deregistered_meanwhile |= listed(&client, &id).await == Some(false);
    }
    assert_eq!(got, 10, "every reply of the stream arrived");
    assert!(
        deregistered_meanwhile,
        "the instance left Consul while its stream was still answering"
    );
    served
        .returns_ok("serve returns once the stream is done")
        .await;
}

/// An endless server stream whose handler awaits `Instance::shutting_down` ends with a last
/// reply and status OK when shutdown begins: the client reads it to its end, with no error,
/// long before the drain's bound. While it streams, it is a call in flight.
async fn an_endless_stream_ends_cleanly_when_shutdown_begins(kind: AgentKind) {
    let test = "an_endless_stream_ends_cleanly_when_shutdown_begins";
    let (grace, drain) = (Duration::from_millis(100), Duration::from_secs(20));
    let Some((_agent, _client, served)) =
        registered_streamer(kind, test, "endless", grace, drain).await
    else {
        return;
    };
    let (instance, url) = (served.instance.clone(), served.url());
    let mut greeter = connect(&url).await;
    let mut replies = greeter
        .say_hellos("endless", 0, Duration::from_millis(20))
        .await
        .unwrap();
    let first = replies.message().await.unwrap().expect("a first reply");
    assert_eq!(first.message, "hello endless (1) from a");
    assert_eq!(instance.in_flight(), 1, "the stream is a call in flight");
    let asked = Instant::now();
    instance.shutdown();
    let mut last = first.message;
    while let Some(reply) = replies
        .message()
        .await
        .expect("the stream ends with status OK, not an error")
    {
        last = reply.message;
    }
    let ended = asked.elapsed();
    assert_eq!(last, "goodbye endless from a: shutting down");
    assert!(
        ended < Duration::from_secs(5),
        "ended {ended:?} after shutdown began, not at the drain's 20 s bound"
    );
    served
        .returns_ok("serve returns once the stream has ended")
        .await;
    assert_eq!(instance.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fabio_routes_unary_and_streaming_calls_by_the_grpc_route() {
    let test = "real_fabio_routes_unary_and_streaming_calls_by_the_grpc_route";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let (consul, fabio) = consul_and_fabio(&peers, "grpc", Vec::new());
    let service = Service::builder("greeter")
        .grace_period(Duration::from_millis(300))
        .consul(config(consul.url()))
        .build()
        .unwrap();
    let served = serve_greeter(service, "a", None).await;
    let (instance, port) = (served.instance.clone(), served.addr.port());
    until(
        T,
        "Fabio routes /helloworld.Greeter to the instance",
        || async { fabio.routes_to("/helloworld.Greeter", port) },
    )
    .await;

    let mut greeter = connect(&format!("http://{}", fabio.proxy_addr())).await;
    let reply = greeter.say_hello("Fabio").await.unwrap();
    assert_eq!(reply.message, "hello Fabio from a");
    let mut replies = greeter
        .say_hellos("Fabio", 3, Duration::from_millis(10))
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        got.push(reply.message);
    }
    assert_eq!(
        got,
        [
            "hello Fabio (1 of 3) from a",
            "hello Fabio (2 of 3) from a",
            "hello Fabio (3 of 3) from a"
        ]
    );
    instance.shutdown();
    served.returns_ok("serve returns after the shutdown").await;
}

/// Fabio reaches a gRPC server over TLS by its `proto=grpcs` route (the certificate unverified,
/// `tlsskipverify=true`, as the test CA is not Fabio's). Fabio v1.7.2 speaks TLS to such a
/// route only from a `grpcs` listener (one with a certificate source); from a plaintext
/// `grpc` listener it dials the instance in plaintext, which a TLS server cannot answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fabio_routes_to_a_grpc_server_over_tls() {
    let test = "real_fabio_routes_to_a_grpc_server_over_tls";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let pki = pki::pki();
    let certificate = format!(
        "-proxy.cs=cs=test;type=file;cert={};key={}",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let (consul, fabio) = consul_and_fabio(&peers, "grpcs;cs=test", vec![certificate]);
    let tls = grpc::ServerTls::from_pem(&pki.server.cert_pem, &pki.server.key_pem)
        .unwrap()
        .unverified();
    let served = serve_tls(consul.url(), "greeter", tls).await;
    let (instance, port) = (served.instance.clone(), served.addr.port());
    until(
        T,
        "Fabio routes /helloworld.Greeter to the TLS instance",
        || async { fabio.routes_to("/helloworld.Greeter", port) },
    )
    .await;
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", fabio.proxy_addr()))
            .unwrap()
            .tls_config(client_tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
    let reply = GreeterClient::new(channel)
        .say_hello("Fabio")
        .await
        .unwrap();
    assert_eq!(reply.message, "hello Fabio from tls");
    instance.shutdown();
    served.returns_ok("serve returns after the shutdown").await;
}

/// `examples/grpc.rs` as a user runs it, on the dev agent: served with the attribute, greeted
/// through the balanced channel, deregistered on SIGTERM with a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_agent_the_grpc_example_greets_itself_through_the_balanced_channel() {
    let (_agent, consul) = tokio::task::block_in_place(|| support::devagent(&[]));
    let (mut example, url) = tokio::task::block_in_place(|| support::example("grpc", &consul, &[]));
    let port = url.rsplit(':').next().unwrap().to_owned();
    for name in ["Ada", "Grace", "Barbara"] {
        let line = tokio::task::block_in_place(|| example.wait_line("hello ", T));
        assert_eq!(line, format!("{name} from 127.0.0.1:{port}"));
    }
    let registered = support::agent_instances(&consul, "greeter").await.unwrap();
    assert_eq!(registered.len(), 1);
    assert_eq!(
        registered[0]["Tags"],
        serde_json::json!(["urlprefix-/helloworld.Greeter proto=grpc"])
    );
    example.signal("TERM");
    let code = tokio::task::block_in_place(|| example.wait_exit(T));
    assert_eq!(code, Some(0));
    assert_eq!(
        support::agent_instances(&consul, "greeter").await,
        Some(Vec::new())
    );
}

/// Calls made by the load of a rolling restart: answered (by which instance) and failed.
#[derive(Default)]
struct Calls {
    answered_by: std::collections::BTreeMap<String, u64>,
    failed: Vec<String>,
}

/// Calls `client` until `stop`, counting the answers by the instance that gave them.
async fn call_until(
    mut client: GreeterClient,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Calls {
    let mut calls = Calls::default();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match client.say_hello("roll").await {
            Ok(reply) => {
                let by = reply
                    .message
                    .rsplit(" from ")
                    .next()
                    .unwrap_or("")
                    .to_owned();
                *calls.answered_by.entry(by).or_default() += 1;
            }
            Err(status) => calls.failed.push(status.to_string()),
        }
    }
    calls
}

/// `examples/grpc.rs` as processes, two at a time, each replaced in turn (a new one started and
/// routed, then SIGTERM to the oldest) under steady calls through real Fabio and through the
/// balanced channel: no call fails, and both paths reach the new processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fabio_rolling_restart_of_two_processes_fails_no_call() {
    let test = "real_fabio_rolling_restart_of_two_processes_fails_no_call";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let (consul, fabio) = consul_and_fabio(&peers, "grpc", Vec::new());
    let discovery = Discovery::new(Client::new(config(consul.url())).unwrap());
    let mut watch = discovery.watch("greeter").start();
    let env = [("DISCOVERABLE_GRACE_PERIOD", "500ms")];
    // Starts a process and waits until Fabio routes to it and the channel's watch has it.
    let start = |watch: &mut discoverable::discovery::Watch| {
        let (process, url) =
            tokio::task::block_in_place(|| support::example("grpc", &consul.url(), &env));
        let addr = url.trim_start_matches("http://").to_owned();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let mut watch = watch.clone();
        let fabio = &fabio;
        async move {
            until(T, "Fabio routes to the new process", || async {
                fabio.routes_to("/helloworld.Greeter", port)
            })
            .await;
            tokio::time::timeout(
                T,
                watch.wait_for(|set| set.endpoints().iter().any(|e| e.port == port)),
            )
            .await
            .expect("the watch sees the new process");
            (process, addr)
        }
    };
    let mut running = vec![start(&mut watch).await, start(&mut watch).await];
    let first: Vec<String> = running.iter().map(|(_, addr)| addr.clone()).collect();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let through_fabio = connect(&format!("http://{}", fabio.proxy_addr())).await;
    let through_channel = GreeterClient::new(discovery.grpc_channel("greeter"));
    let load: Vec<_> = [
        through_fabio.clone(),
        through_fabio,
        through_channel.clone(),
        through_channel,
    ]
    .into_iter()
    .map(|client| tokio::spawn(call_until(client, stop.clone())))
    .collect();

    let mut exits = Vec::new();
    for _ in 0..2 {
        running.push(start(&mut watch).await);
        let (mut old, _) = running.remove(0);
        old.signal("TERM");
        exits.push(tokio::task::block_in_place(|| old.wait_exit(T)));
    }
    // A few more calls once both replacements serve alone.
    let replacements: Vec<String> = running.iter().map(|(_, addr)| addr.clone()).collect();
    until(T, "the channel's watch holds only the replacements", || {
        let set = watch.current();
        let ports: Vec<u16> = replacements
            .iter()
            .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        async move { set.len() == 2 && set.endpoints().iter().all(|e| ports.contains(&e.port)) }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut results = Vec::new();
    for task in load {
        results.push(task.await.unwrap());
    }
    for (mut process, _) in running {
        process.signal("TERM");
        exits.push(tokio::task::block_in_place(|| process.wait_exit(T)));
    }

    assert_eq!(
        exits,
        [Some(0); 4],
        "every process exits cleanly on SIGTERM"
    );
    for (path, calls) in ["Fabio", "Fabio", "the channel", "the channel"]
        .iter()
        .zip(&results)
    {
        let answered: u64 = calls.answered_by.values().sum();
        eprintln!(
            "through {path}: {answered} answered ({:?}), {} failed",
            calls.answered_by,
            calls.failed.len()
        );
        assert!(
            calls.failed.is_empty(),
            "through {path}: failed calls: {:?}",
            calls.failed
        );
        assert!(
            replacements
                .iter()
                .any(|r| calls.answered_by.contains_key(r)),
            "through {path}: no call reached a replacement ({:?})",
            calls.answered_by
        );
        assert!(
            calls
                .answered_by
                .keys()
                .all(|by| first.contains(by) || replacements.contains(by)),
            "through {path}: answered by an unknown instance ({:?})",
            calls.answered_by
        );
    }
}

/// A greeter killed outright (no deregistration): the agent's gRPC check finds nothing at the
/// address and turns critical, in grpc-go's words on both agents.
async fn a_killed_grpc_process_turns_its_check_critical(kind: AgentKind) {
    let test = "a_killed_grpc_process_turns_its_check_critical";
    let Some(agent) = Agent::start(kind, test, None).await else {
        return;
    };
    let client = Client::new(config(agent.url())).unwrap();
    let (mut example, url) =
        tokio::task::block_in_place(|| support::example("grpc", &agent.url(), &[]));
    let addr = url.trim_start_matches("http://").to_owned();
    let id = until(T, "registered and passing", || async {
        let checks = client.agent_checks().await.ok()?;
        let check = checks.values().find(|c| c.service_name == "greeter")?;
        (check.status == CheckStatus::Passing).then(|| check.service_id.clone())
    })
    .await;
    example.signal("KILL");
    tokio::task::block_in_place(|| example.wait_exit(T));
    // The check's default interval is 10 s.
    let output = until(
        Duration::from_secs(40),
        "critical once the process is gone",
        || async {
            let check = client
                .agent_checks()
                .await
                .ok()?
                .remove(&format!("service:{id}"))?;
            (check.status == CheckStatus::Critical).then_some(check.output)
        },
    )
    .await;
    assert_eq!(
        output,
        format!(
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp {addr}: connect: connection refused\""
        )
    );
    assert_eq!(listed(&client, &id).await, Some(true), "still registered");
}

/// While the agent cannot be reached, the balanced channel keeps the instances it last heard
/// of, and calls go on.
async fn the_balanced_channel_keeps_its_instances_while_the_agent_is_down(kind: AgentKind) {
    let test = "the_balanced_channel_keeps_its_instances_while_the_agent_is_down";
    let Some(mut agent) = Agent::start(kind, test, None).await else {
        return;
    };
    let service = Service::builder("kept")
        .grace_period(Duration::from_millis(100))
        .deregister_timeout(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .consul(config(agent.url()))
        .build()
        .unwrap();
    let served = serve_greeter(service, "kept", None).await;
    let instance = served.instance.clone();
    let discovery = Discovery::new(Client::new(config(agent.url())).unwrap());
    let mut greeter = GreeterClient::new(discovery.grpc_channel("kept"));
    tokio::time::timeout(T, greeter.say_hello("before"))
        .await
        .expect("answered once the instance is passing")
        .unwrap();

    // A watch like the channel's own, to see when watches have lost the agent.
    let mut watch = discovery.watch("kept").start();
    tokio::time::timeout(T, watch.wait_for(|set| set.len() == 1))
        .await
        .unwrap();
    agent.go_down().await;
    tokio::time::timeout(T, watch.wait_for(|set| set.is_stale()))
        .await
        .expect("the watch notices the agent is gone");
    for i in 0..50 {
        let reply = greeter.say_hello("while down").await;
        assert_eq!(
            reply.map(|r| r.message).map_err(|s| s.to_string()),
            Ok("hello while down from kept".to_owned()),
            "call {i} while the agent is down"
        );
    }
    agent.come_back().await;
    instance.shutdown();
    served.returns_ok("serve returns after the shutdown").await;
}

discoverable_testkit::against_both_agents!(
    grpc_check_and_a_route_per_service,
    grpc_over_tls_is_checked_and_reached_over_tls,
    a_stream_in_flight_at_shutdown_completes_after_deregistration,
    an_endless_stream_ends_cleanly_when_shutdown_begins,
    a_killed_grpc_process_turns_its_check_critical,
    the_balanced_channel_keeps_its_instances_while_the_agent_is_down
);

/// One `Service` served twice runs two instances (as for HTTP); each server's gRPC health
/// answers for its own instance: the first set down leaves the second serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_agent_a_service_served_twice_answers_grpc_health_per_instance() {
    let agent = discoverable_devagent::DevAgent::start(Default::default())
        .await
        .unwrap();
    let service = Service::builder("twice")
        .grace_period(Duration::from_millis(100))
        .consul(config(agent.url()))
        .build()
        .unwrap();
    let mut urls = Vec::new();
    let mut served = Vec::new();
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let greeter = serve_greeter(service.clone(), name, None).await;
        urls.push(greeter.url());
        served.push(greeter.task);
        instances.push(greeter.instance);
    }
    assert_ne!(instances[0].id(), instances[1].id());
    let first = &instances[0];
    let serving = ServingStatus::Serving as i32;
    for url in &urls {
        until(T, "serving", || async {
            grpc_status(url, "").await.ok() == Some(serving)
        })
        .await;
    }
    first.set_health(Health::Down);
    assert_eq!(
        grpc_status(&urls[0], "").await.unwrap(),
        ServingStatus::NotServing as i32,
        "the first instance is down"
    );
    assert_eq!(
        grpc_status(&urls[1], "").await.unwrap(),
        serving,
        "the second instance has a health of its own"
    );
    first.shutdown();
    tokio::time::timeout(T, served.remove(0))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    served[0].abort();
}
