//! The README's least-privilege ACL policy, held against a real Consul with ACLs on (default
//! deny): a token with exactly that policy registers, keeps a TTL check alive, deregisters
//! and (with the read rules) discovers; a token without it gets the documented error.
//! The dev agent's all-or-nothing ACL model has no policies, so these run on Consul only.

use discoverable_testkit::until;

use std::future::IntoFuture;
use std::time::Duration;

use axum::{Router, routing::get};
use discoverable_runtime::consul::{self, CheckStatus, Client, HealthQuery, Registration};
use discoverable_runtime::{Discovery, Error, Service};
use discoverable_testkit::{Consul, ConsulOptions, peers};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(15);
const MANAGEMENT: &str = "5d1c3f0e-8a7b-4c2d-9e6f-0a1b2c3d4e5f";

/// The policy as the README prints it (comments and all).
const README_POLICY: &str = r#"
service "cool_app" { policy = "write" }   # register, deregister, TTL updates
service_prefix ""  { policy = "read" }    # only if it also uses Discovery
node_prefix ""     { policy = "read" }
"#;

fn client(consul: &Consul, token: Option<&str>) -> Client {
    let mut b = consul::Config::builder()
        .address(consul.url())
        .request_timeout(Duration::from_secs(5));
    if let Some(t) = token {
        b = b.token(t);
    }
    Client::new(b.build().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_readme_policy_registers_heartbeats_deregisters_and_discovers() {
    let test = "real_consul_readme_policy_registers_heartbeats_deregisters_and_discovers";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let consul =
        tokio::task::block_in_place(|| Consul::start(&peers, ConsulOptions::with_acl(MANAGEMENT)));
    let secret = consul.create_token("cool-app", README_POLICY);
    let admin = client(&consul, Some(MANAGEMENT));

    // A TTL check: the heartbeat's updates need the policy too.
    let service = Service::builder("cool_app")
        .prefix("/oops")
        .ttl(Duration::from_secs(3))
        .grace_period(Duration::from_millis(100))
        .consul(
            consul::Config::builder()
                .address(consul.url())
                .token(secret.as_str())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let instance = service.new_instance();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Router::new().route("/", get(|| async { "home page" }));
    let served =
        tokio::spawn(discoverable_runtime::serve(instance.clone(), listener, app).into_future());

    let id = instance.id().to_owned();
    until(T, "registered with the policy's token", || async {
        admin
            .agent_services()
            .await
            .is_ok_and(|s| s.contains_key(&id))
    })
    .await;
    // Two TTLs pass: passing all along means every heartbeat was allowed.
    let check = format!("service:{id}");
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(7) {
        let checks = admin.agent_checks().await.unwrap();
        assert_eq!(
            checks[&check].status,
            CheckStatus::Passing,
            "{:?}",
            checks[&check]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The read rules let the same token discover it.
    let discovery = Discovery::new(client(&consul, Some(&secret)));
    let mut watch = discovery.watch("cool_app").start();
    let set = tokio::time::timeout(T, watch.wait_for(|s| s.len() == 1))
        .await
        .expect("discovered with the policy's token");
    assert_eq!(set.endpoints()[0].id, id);

    instance.shutdown();
    tokio::time::timeout(T, served)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(
        !admin.agent_services().await.unwrap().contains_key(&id),
        "deregistered with the policy's token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_consul_without_the_policy_registration_gets_the_documented_error() {
    let test = "real_consul_without_the_policy_registration_gets_the_documented_error";
    let Some(peers) = peers::require(test) else {
        return;
    };
    let consul =
        tokio::task::block_in_place(|| Consul::start(&peers, ConsulOptions::with_acl(MANAGEMENT)));
    // Read rules only: enough to discover, not to register.
    let reader = consul.create_token(
        "reader",
        r#"service_prefix "" { policy = "read" }
           node_prefix "" { policy = "read" }"#,
    );
    let mut registration = Registration::new("cool_app-1", "cool_app");
    registration.address = "127.0.0.1".into();
    registration.port = 9;
    for (who, token) in [
        ("no token", None),
        ("a read-only token", Some(reader.as_str())),
    ] {
        match client(&consul, token).register(&registration).await {
            Err(e @ Error::PermissionDenied { .. }) => {
                let text = e.to_string();
                assert!(text.contains("403"), "{who}: {text}");
                assert!(text.contains("Permission denied"), "{who}: {text}");
                assert!(text.contains("CONSUL_HTTP_TOKEN"), "{who}: {text}");
                assert!(!text.contains(&reader), "{who}: the token leaked: {text}");
            }
            other => panic!("{who}: expected PermissionDenied, got {other:?}"),
        }
    }
    // The read-only token still discovers what others registered.
    client(&consul, Some(MANAGEMENT))
        .register(&registration)
        .await
        .unwrap();
    let seen = client(&consul, Some(&reader))
        .health_service("cool_app", &HealthQuery::default())
        .await
        .unwrap();
    assert_eq!(seen.value.len(), 1);
}
