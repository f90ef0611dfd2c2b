//! The Consul client against both agents: every test runs as `dev_agent::<name>` against the
//! dev agent and as `real_consul::<name>` against a real `consul agent -dev` that the test
//! starts on loopback. Faults the dev agent switches on are made from outside for the real
//! one: the process killed (unreachable), frozen with SIGSTOP (hanging), restarted (state lost).
//!
//! Every wait is a deadline loop or a blocking query with a bound; loopback only.

mod consul {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use discoverable_runtime::Error;
    use discoverable_runtime::consul::{
        CheckDefinition, CheckStatus, Client, Config, HealthQuery, HealthState, QueryOptions,
        Registration, next_index,
    };
    use discoverable_testkit::{Agent, AgentKind, until};

    /// The agent under test and a client for it.
    struct Target {
        client: Client,
        agent: Agent,
    }

    impl Target {
        /// An agent of `kind` (`None`: the test skips, saying why).
        async fn start(kind: AgentKind, test: &str) -> Option<Target> {
            Target::start_acl(kind, test, None).await
        }

        /// With ACLs on (default deny) when `token` is given; the client carries no token.
        async fn start_acl(kind: AgentKind, test: &str, token: Option<&str>) -> Option<Target> {
            let agent = Agent::start(kind, test, token).await?;
            println!("{test}: against {kind:?} at {}", agent.url());
            let client = client_for(&agent.url(), None);
            Some(Target { client, agent })
        }
    }

    fn client_for(url: &str, token: Option<&str>) -> Client {
        let mut b = Config::builder()
            .address(url)
            .request_timeout(Duration::from_secs(5));
        if let Some(t) = token {
            b = b.token(t);
        }
        Client::new(b.build().expect("config")).expect("client")
    }

    /// A name no other test (or earlier run against a real Consul) uses.
    fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// A service with a health route on loopback that answers 200.
    async fn health_server() -> SocketAddr {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    fn ttl_registration(name: &str, ttl: Duration) -> Registration {
        let mut reg = Registration::new(format!("{name}-1"), name);
        reg.address = "127.0.0.1".into();
        reg.port = 9;
        let mut check = CheckDefinition::ttl(ttl);
        check.check_id = Some(format!("{name}-ttl"));
        check.status = Some(CheckStatus::Passing);
        reg.checks.push(check);
        reg
    }

    fn all(passing: bool) -> HealthQuery {
        let mut query = HealthQuery::default();
        query.passing = passing;
        query
    }

    fn blocking(passing: bool, index: u64, wait: Duration) -> HealthQuery {
        let mut query = all(passing);
        query.options = QueryOptions::blocking(index, wait);
        query
    }

    async fn agent_self_describes_the_agent(kind: AgentKind) {
        let Some(t) = Target::start(kind, "agent_self_describes_the_agent").await else {
            return;
        };
        let me = t.client.agent_self().await.unwrap();
        assert!(!me.datacenter.is_empty(), "{me:?}");
        assert!(!me.node_name.is_empty(), "{me:?}");
        assert!(!me.version.is_empty(), "{me:?}");
    }

    async fn register_round_trips_every_field(kind: AgentKind) {
        let Some(t) = Target::start(kind, "register_round_trips_every_field").await else {
            return;
        };
        let c = &t.client;
        let health = health_server().await;
        let name = unique("roundtrip");
        let id = format!("{name}-1");
        let mut reg = Registration::new(&id, &name);
        reg.tags = vec!["urlprefix-/rt".into(), "v1".into()];
        reg.address = "127.0.0.1".into();
        reg.port = health.port();
        reg.meta = BTreeMap::from([
            ("version".into(), "1.2.3".into()),
            ("team".into(), "core".into()),
        ]);
        let mut http =
            CheckDefinition::http(format!("http://{health}/health"), Duration::from_secs(1));
        http.check_id = Some(format!("{id}-http"));
        http.name = Some("HTTP on /health".into());
        http.method = Some("GET".into());
        http.header = BTreeMap::from([("X-Probe".into(), vec!["consul".into()])]);
        http.tls_skip_verify = true;
        http.timeout = Some(Duration::from_millis(500));
        http.deregister_critical_service_after = Some(Duration::from_secs(90));
        http.status = Some(CheckStatus::Passing);
        http.notes = Some("the app's health route".into());
        let mut ttl = CheckDefinition::ttl(Duration::from_secs(30));
        ttl.check_id = Some(format!("{id}-ttl"));
        ttl.name = Some("heartbeat".into());
        ttl.status = Some(CheckStatus::Warning);
        ttl.notes = Some("kept alive by the app".into());
        reg.checks = vec![http, ttl];
        reg.replace_existing_checks = true;
        c.register(&reg).await.unwrap();

        // agent/service/:id
        let one = c.agent_service(&id, None, None).await.unwrap();
        let svc = one.value.expect("registered");
        assert!(one.hash.is_some(), "a content hash");
        assert_eq!(svc.id, id);
        assert_eq!(svc.service, name);
        assert_eq!(svc.tags, reg.tags);
        assert_eq!(svc.meta, reg.meta);
        assert_eq!(svc.port, health.port());
        assert_eq!(svc.address, "127.0.0.1");
        assert_eq!((svc.weights.passing, svc.weights.warning), (1, 1));
        assert!(!svc.enable_tag_override);

        // agent/services
        let services = c.agent_services().await.unwrap();
        let listed = &services[&id];
        assert_eq!(listed.service, name);
        assert_eq!(listed.tags, reg.tags);
        assert_eq!(listed.meta, reg.meta);
        assert_eq!(listed.port, health.port());

        // agent/checks
        let checks = c.agent_checks().await.unwrap();
        let http = &checks[&format!("{id}-http")];
        assert_eq!(http.name, "HTTP on /health");
        assert_eq!(http.notes, "the app's health route");
        assert_eq!(http.service_id, id);
        assert_eq!(http.service_name, name);
        assert_eq!(http.r#type, "http");
        // Consul 1.14 reports an HTTP check's interval and timeout beside it and leaves
        // `Definition` empty in this view.
        assert_eq!(http.interval, Some(Duration::from_secs(1)));
        assert_eq!(http.timeout, Some(Duration::from_millis(500)));
        let ttl = &checks[&format!("{id}-ttl")];
        assert_eq!(ttl.name, "heartbeat");
        assert_eq!(ttl.r#type, "ttl");
        assert_eq!(
            ttl.status,
            CheckStatus::Warning,
            "initial status as registered"
        );
        assert_eq!(ttl.notes, "kept alive by the app");

        // health/service: the entry with its node and checks.
        let entries = c.health_service(&name, &all(false)).await.unwrap();
        assert!(entries.index >= 1);
        assert_eq!(entries.value.len(), 1);
        let entry = &entries.value[0];
        assert_eq!(entry.service.id, id);
        assert_eq!(entry.service.tags, reg.tags);
        assert_eq!(entry.service.meta, reg.meta);
        assert_eq!(entry.address(), "127.0.0.1");
        assert!(!entry.node.node.is_empty());
        let ids: Vec<&str> = entry.checks.iter().map(|c| c.check_id.as_str()).collect();
        assert!(ids.contains(&format!("{id}-http").as_str()), "{ids:?}");
        assert!(ids.contains(&format!("{id}-ttl").as_str()), "{ids:?}");
        // A warning check keeps the instance out of the passing set.
        let passing = c.health_service(&name, &all(true)).await.unwrap();
        assert!(passing.value.is_empty(), "{:?}", passing.value);
        // With a tag filter.
        let mut query = all(false);
        query.tags = vec!["v1".into()];
        let tagged = c.health_service(&name, &query).await.unwrap();
        assert_eq!(tagged.value.len(), 1);
        query.tags = vec!["v2".into()];
        let untagged = c.health_service(&name, &query).await.unwrap();
        assert!(untagged.value.is_empty());

        // catalog/services
        let catalog = c.catalog_services(&QueryOptions::default()).await.unwrap();
        assert!(catalog.index >= 1);
        let mut tags = catalog.value[&name].clone();
        tags.sort();
        assert_eq!(tags, ["urlprefix-/rt", "v1"]);

        // health/state
        let warning = c
            .health_state(HealthState::Warning, &QueryOptions::default())
            .await
            .unwrap();
        assert!(
            warning
                .value
                .iter()
                .any(|c| c.check_id == format!("{id}-ttl")),
            "{:?}",
            warning.value
        );

        // Deregister: gone, and a second deregister is NotFound.
        c.deregister(&id).await.unwrap();
        assert_eq!(c.agent_service(&id, None, None).await.unwrap().value, None);
        assert!(!c.agent_services().await.unwrap().contains_key(&id));
        assert!(
            !c.agent_checks()
                .await
                .unwrap()
                .contains_key(&format!("{id}-ttl"))
        );
        match c.deregister(&id).await {
            Err(Error::NotFound { message }) => {
                assert!(message.contains("Unknown service"), "{message}")
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    async fn http_check_turns_passing_through_the_agent(kind: AgentKind) {
        let Some(t) = Target::start(kind, "http_check_turns_passing_through_the_agent").await
        else {
            return;
        };
        let health = health_server().await;
        let name = unique("httpcheck");
        let mut reg = Registration::new(format!("{name}-1"), &name);
        reg.address = "127.0.0.1".into();
        reg.port = health.port();
        let mut check =
            CheckDefinition::http(format!("http://{health}/health"), Duration::from_secs(1));
        check.timeout = Some(Duration::from_secs(1));
        reg.checks.push(check);
        t.client.register(&reg).await.unwrap();
        let entry = until(
            Duration::from_secs(10),
            "the HTTP check to pass",
            || async {
                let h = t.client.health_service(&name, &all(true)).await.unwrap();
                h.value.into_iter().next()
            },
        )
        .await;
        assert_eq!(entry.service.port, health.port());
        assert_eq!(entry.status(), CheckStatus::Passing);
        t.client.deregister(&reg.id).await.unwrap();
    }

    async fn register_errors_carry_consuls_reason(kind: AgentKind) {
        let Some(t) = Target::start(kind, "register_errors_carry_consuls_reason").await else {
            return;
        };
        match t.client.register(&Registration::default()).await {
            Err(Error::Status {
                status: 400,
                message,
            }) => assert!(message.contains("Missing service name"), "{message}"),
            other => panic!("expected 400, got {other:?}"),
        }
        let mut bad_check = Registration::new("", unique("badcheck"));
        let mut check = CheckDefinition::ttl(Duration::from_secs(1));
        check.interval = Some(Duration::from_secs(1));
        bad_check.checks.push(check);
        match t.client.register(&bad_check).await {
            Err(Error::Status {
                status: 400,
                message,
            }) => assert!(message.contains("Invalid check"), "{message}"),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    async fn blocking_health_service_waits_for_a_change(kind: AgentKind) {
        let Some(t) = Target::start(kind, "blocking_health_service_waits_for_a_change").await
        else {
            return;
        };
        let c = t.client.clone();
        let name = unique("blocking");
        let reg = ttl_registration(&name, Duration::from_secs(60));
        c.register(&reg).await.unwrap();
        let first = c.health_service(&name, &all(true)).await.unwrap();
        assert_eq!(first.value.len(), 1);
        let index = next_index(0, first.index);

        // Nothing changes: the read holds until its wait, then returns the same index.
        let wait = Duration::from_secs(1);
        let started = Instant::now();
        let same = c
            .health_service(&name, &blocking(true, index, wait))
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "returned before its wait: {took:?}"
        );
        assert!(took < wait * 3, "returned long after its wait: {took:?}");
        assert_eq!(same.index, first.index);
        assert_eq!(same.value.len(), 1);
        assert_eq!(next_index(index, same.index), index);

        // A change wakes it well before its wait, and not before the change.
        let watcher = {
            let c = c.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = c
                    .health_service(&name, &blocking(true, index, Duration::from_secs(20)))
                    .await;
                (r, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!watcher.is_finished(), "returned without a change");
        let changed_at = Instant::now();
        c.check_fail(&format!("{name}-ttl"), "going down")
            .await
            .unwrap();
        let (result, took) = tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("a change wakes the blocking read")
            .unwrap();
        let answer = result.unwrap();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(changed_at.elapsed() < Duration::from_secs(3));
        assert!(
            answer.index > first.index,
            "{} > {}",
            answer.index,
            first.index
        );
        assert!(
            answer.value.is_empty(),
            "the failing instance left the passing set"
        );
        c.deregister(&reg.id).await.unwrap();
    }

    async fn blocking_catalog_and_health_state_wake_on_registration(kind: AgentKind) {
        let Some(t) = Target::start(
            kind,
            "blocking_catalog_and_health_state_wake_on_registration",
        )
        .await
        else {
            return;
        };
        let c = t.client.clone();
        let first = c.catalog_services(&QueryOptions::default()).await.unwrap();
        let states = c
            .health_state(HealthState::Any, &QueryOptions::default())
            .await
            .unwrap();
        let name = unique("catalogwatch");
        let catalog_watch = {
            let c = c.clone();
            let index = next_index(0, first.index);
            tokio::spawn(async move {
                c.catalog_services(&QueryOptions::blocking(index, Duration::from_secs(20)))
                    .await
            })
        };
        let state_watch = {
            let c = c.clone();
            let index = next_index(0, states.index);
            tokio::spawn(async move {
                c.health_state(
                    HealthState::Any,
                    &QueryOptions::blocking(index, Duration::from_secs(20)),
                )
                .await
            })
        };
        // Both reads wait in the agent before the change they wait for.
        t.agent.parked(2).await;
        c.register(&ttl_registration(&name, Duration::from_secs(60)))
            .await
            .unwrap();
        let catalog = tokio::time::timeout(Duration::from_secs(5), catalog_watch)
            .await
            .expect("registration wakes the catalog read")
            .unwrap()
            .unwrap();
        assert!(catalog.index > first.index);
        assert!(catalog.value.contains_key(&name));
        let after = tokio::time::timeout(Duration::from_secs(5), state_watch)
            .await
            .expect("registration wakes the health state read")
            .unwrap()
            .unwrap();
        assert!(
            after
                .value
                .iter()
                .any(|c| c.check_id == format!("{name}-ttl"))
        );
        c.deregister(&format!("{name}-1")).await.unwrap();
    }

    async fn agent_service_hash_blocking(kind: AgentKind) {
        let Some(t) = Target::start(kind, "agent_service_hash_blocking").await else {
            return;
        };
        let c = t.client.clone();
        let name = unique("hashed");
        let mut reg = ttl_registration(&name, Duration::from_secs(60));
        c.register(&reg).await.unwrap();
        let first = c.agent_service(&reg.id, None, None).await.unwrap();
        let hash = first.hash.clone().expect("a content hash");

        // Unchanged: held until the wait, same hash.
        let started = Instant::now();
        let same = c
            .agent_service(&reg.id, Some(&hash), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(same.hash.as_deref(), Some(hash.as_str()));

        // Changed: a new hash, promptly.
        let watcher = {
            let c = c.clone();
            let id = reg.id.clone();
            let hash = hash.clone();
            tokio::spawn(async move {
                c.agent_service(&id, Some(&hash), Some(Duration::from_secs(20)))
                    .await
            })
        };
        // The read waits in the agent before the change it waits for.
        t.agent.parked(1).await;
        reg.tags = vec!["changed".into()];
        c.register(&reg).await.unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("a change wakes the hash-blocking read")
            .unwrap()
            .unwrap();
        assert_ne!(changed.hash.as_deref(), Some(hash.as_str()));
        assert_eq!(changed.value.unwrap().tags, ["changed"]);
        c.deregister(&reg.id).await.unwrap();
    }

    async fn ttl_pass_warn_fail_update_and_expiry(kind: AgentKind) {
        let Some(t) = Target::start(kind, "ttl_pass_warn_fail_update_and_expiry").await else {
            return;
        };
        let c = &t.client;
        let name = unique("ttl");
        let reg = ttl_registration(&name, Duration::from_secs(2));
        let check = format!("{name}-ttl");
        c.register(&reg).await.unwrap();

        let status_of = |c: Client, check: String| async move {
            let checks = c.agent_checks().await.unwrap();
            let hc = &checks[&check];
            (hc.status, hc.output.clone())
        };

        c.check_warn(&check, "slow disk").await.unwrap();
        assert_eq!(
            status_of(c.clone(), check.clone()).await,
            (CheckStatus::Warning, "slow disk".to_owned())
        );
        c.check_fail(&check, "down").await.unwrap();
        assert_eq!(
            status_of(c.clone(), check.clone()).await,
            (CheckStatus::Critical, "down".to_owned())
        );
        c.check_pass(&check, "all good").await.unwrap();
        assert_eq!(
            status_of(c.clone(), check.clone()).await,
            (CheckStatus::Passing, "all good".to_owned())
        );
        c.check_update(&check, CheckStatus::Warning, "via update")
            .await
            .unwrap();
        assert_eq!(
            status_of(c.clone(), check.clone()).await,
            (CheckStatus::Warning, "via update".to_owned())
        );
        c.check_update(&check, CheckStatus::Passing, "fine")
            .await
            .unwrap();
        let passing = c.health_service(&name, &all(true)).await.unwrap();
        assert_eq!(passing.value.len(), 1);

        // No update within the TTL: critical, "TTL expired".
        let (status, output) = until(Duration::from_secs(8), "the TTL to expire", || {
            let c = c.clone();
            let check = check.clone();
            async move {
                let s = status_of(c, check).await;
                (s.0 == CheckStatus::Critical).then_some(s)
            }
        })
        .await;
        assert_eq!(status, CheckStatus::Critical);
        assert!(output.starts_with("TTL expired"), "{output}");
        // The agent's own view changes first; a real agent syncs the status to the catalog
        // (which the health endpoints read) a moment later.
        until(
            Duration::from_secs(5),
            "the catalog to see the expiry",
            || {
                let c = c.clone();
                let check = check.clone();
                async move {
                    let critical = c
                        .health_state(HealthState::Critical, &QueryOptions::default())
                        .await
                        .unwrap();
                    critical
                        .value
                        .iter()
                        .any(|hc| hc.check_id == check)
                        .then_some(())
                }
            },
        )
        .await;
        let passing = c
            .health_state(HealthState::Passing, &QueryOptions::default())
            .await
            .unwrap();
        assert!(!passing.value.iter().any(|hc| hc.check_id == check));
        assert!(
            c.health_service(&name, &all(true))
                .await
                .unwrap()
                .value
                .is_empty()
        );

        // Unknown check ids.
        let unknown = unique("nocheck");
        match c.check_pass(&unknown, "x").await {
            Err(Error::NotFound { .. }) => {}
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(
            c.check_update(&unknown, CheckStatus::Passing, "")
                .await
                .is_err()
        );
        c.deregister(&reg.id).await.unwrap();
    }

    async fn index_reset_after_the_agent_loses_its_state(kind: AgentKind) {
        let Some(mut t) = Target::start(kind, "index_reset_after_the_agent_loses_its_state").await
        else {
            return;
        };
        let c = t.client.clone();
        let name = unique("reset");
        // Raise the index well above where a fresh agent starts.
        for i in 0..5 {
            c.register(&ttl_registration(
                &format!("{name}-filler{i}"),
                Duration::from_secs(60),
            ))
            .await
            .unwrap();
        }
        c.register(&ttl_registration(&name, Duration::from_secs(60)))
            .await
            .unwrap();
        let before = c.health_service(&name, &all(false)).await.unwrap();
        let index = next_index(0, before.index);

        // A blocking read in flight when the agent restarts returns at once, with a lower index.
        let watcher = {
            let c = c.clone();
            let name = name.clone();
            tokio::spawn(async move {
                c.health_service(&name, &blocking(false, index, Duration::from_secs(20)))
                    .await
            })
        };
        // The read waits in the agent when it restarts.
        t.agent.parked(1).await;
        t.agent.lose_state().await;
        // The dev agent answers the read in flight at once; a real agent that was killed
        // drops the connection, and the client's next read of the fresh agent sees the
        // lower index. Either way the next answer carries an index below the old one.
        let after = match tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the restart wakes the blocking read")
            .unwrap()
        {
            Ok(after) => after,
            Err(_) if kind == AgentKind::RealConsul => {
                c.health_service(&name, &all(false)).await.unwrap()
            }
            Err(e) => panic!("{e:?}"),
        };
        assert!(after.value.is_empty(), "the agent forgot the service");
        assert!(
            after.index < before.index,
            "{} < {}",
            after.index,
            before.index
        );
        // The rule: backwards means start over without blocking.
        let reset = next_index(index, after.index);
        assert_eq!(reset, 0);

        // Index 0 reads at once, even with a wait.
        c.register(&ttl_registration(&name, Duration::from_secs(60)))
            .await
            .unwrap();
        let started = Instant::now();
        let fresh = c
            .health_service(&name, &blocking(false, reset, Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(fresh.value.len(), 1, "registered again");
        let index = next_index(reset, fresh.index);
        assert!(index >= 1);

        // And the loop blocks again on the new index.
        let started = Instant::now();
        let same = c
            .health_service(&name, &blocking(false, index, Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(next_index(index, same.index), index);
    }

    async fn acl_on_token_works_and_no_token_is_denied(kind: AgentKind) {
        const SECRET: &str = "c0ffee00-0000-4000-8000-acl0tok3n000";
        let test = "acl_on_token_works_and_no_token_is_denied";
        let Some(t) = Target::start_acl(kind, test, Some(SECRET)).await else {
            return;
        };
        let url = t.agent.url();
        let with = client_for(&url, Some(SECRET));
        let without = client_for(&url, None);
        let wrong = client_for(&url, Some("00000000-0000-0000-0000-000000000000"));
        let name = unique("acl");
        let reg = ttl_registration(&name, Duration::from_secs(60));

        // With the token, everything works.
        with.agent_self().await.unwrap();
        with.register(&reg).await.unwrap();
        assert!(with.agent_services().await.unwrap().contains_key(&reg.id));
        assert_eq!(
            with.health_service(&name, &all(false))
                .await
                .unwrap()
                .value
                .len(),
            1
        );
        assert!(
            with.catalog_services(&QueryOptions::default())
                .await
                .unwrap()
                .value
                .contains_key(&name)
        );

        // Without: writes and agent:read are denied, lists are filtered.
        for (who, client) in [("no token", &without), ("wrong token", &wrong)] {
            match client.register(&reg).await {
                Err(ref e @ Error::PermissionDenied { ref message }) => {
                    assert!(
                        message.contains("Permission denied") || message.contains("ACL not found"),
                        "{who}: {message}"
                    );
                    assert!(!format!("{e} {e:?}").contains(SECRET));
                }
                other => panic!("{who}: expected PermissionDenied, got {other:?}"),
            }
            assert!(
                matches!(
                    client.agent_self().await,
                    Err(Error::PermissionDenied { .. })
                ),
                "{who}"
            );
            assert!(
                matches!(
                    client.deregister(&reg.id).await,
                    Err(Error::PermissionDenied { .. })
                ),
                "{who}"
            );
            assert!(
                matches!(
                    client.check_pass(&format!("{name}-ttl"), "").await,
                    Err(Error::PermissionDenied { .. })
                ),
                "{who}"
            );
            match client.agent_services().await {
                Ok(services) => assert!(!services.contains_key(&reg.id), "{who}"),
                Err(Error::PermissionDenied { .. }) => {}
                Err(e) => panic!("{who}: {e:?}"),
            }
            match client.health_service(&name, &all(false)).await {
                Ok(h) => assert!(h.value.is_empty(), "{who}"),
                Err(Error::PermissionDenied { .. }) => {}
                Err(e) => panic!("{who}: {e:?}"),
            }
        }
        // Still registered: the denied deregistrations did nothing.
        assert!(with.agent_services().await.unwrap().contains_key(&reg.id));
        with.deregister(&reg.id).await.unwrap();
        let shown = format!("{with:?}");
        assert!(!shown.contains(SECRET), "{shown}");
    }

    async fn acl_off_any_token_or_none_works(kind: AgentKind) {
        let Some(t) = Target::start(kind, "acl_off_any_token_or_none_works").await else {
            return;
        };
        let url = t.agent.url();
        let name = unique("aclOff");
        for client in [
            client_for(&url, None),
            client_for(&url, Some("whatever-token-1234")),
        ] {
            client.agent_self().await.unwrap();
            let reg = ttl_registration(&name, Duration::from_secs(60));
            client.register(&reg).await.unwrap();
            assert!(client.agent_services().await.unwrap().contains_key(&reg.id));
            client.deregister(&reg.id).await.unwrap();
        }
    }

    async fn faults_map_to_typed_errors(kind: AgentKind) {
        let Some(mut t) = Target::start(kind, "faults_map_to_typed_errors").await else {
            return;
        };
        let url = t.agent.url();
        let quick = Client::new(
            Config::builder()
                .address(url.as_str())
                .request_timeout(Duration::from_millis(300))
                .build()
                .unwrap(),
        )
        .unwrap();

        // 5xx: the dev agent's switch; against a real Consul the proxy tests of
        // `resilience.rs` cover it.
        if let Some(agent) = t.agent.dev() {
            agent.faults().fail_next(2);
            for _ in 0..2 {
                match quick.agent_self().await {
                    Err(Error::Status { status: 500, .. }) => {}
                    other => panic!("expected 500, got {other:?}"),
                }
            }
            quick.agent_self().await.unwrap();
        }

        // Hanging: the dev agent's delay, or a real agent frozen with SIGSTOP.
        t.agent.hang();
        let started = Instant::now();
        match quick.agent_services().await {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(300)),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(1500));
        t.agent.unhang();
        quick.agent_services().await.unwrap();

        // Not listening: the dev agent's switch, or a real agent killed.
        t.agent.go_down().await;
        match quick.agent_self().await {
            Err(Error::Unreachable { addr, .. }) => assert_eq!(addr, url),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        t.agent.come_back().await;
        until(
            Duration::from_secs(5),
            "the agent to listen again",
            || async { quick.agent_self().await.ok() },
        )
        .await;
    }

    /// An agent that allows one client IP two connections (Consul's
    /// `limits.http_max_conns_per_client`, 200 by default), for the 429 test.
    async fn agent_limited_to_two(kind: AgentKind, test: &str) -> Option<Agent> {
        match kind {
            AgentKind::Dev => {
                let config = discoverable_devagent::Config {
                    http_max_conns_per_client: 2,
                    ..discoverable_devagent::Config::default()
                };
                let agent = discoverable_devagent::DevAgent::start(config)
                    .await
                    .unwrap();
                Some(Agent::Dev(agent))
            }
            AgentKind::RealConsul => {
                let peers = discoverable_testkit::peers::require(test)?;
                let options = discoverable_testkit::ConsulOptions {
                    extra_hcl: "limits {\n  http_max_conns_per_client = 2\n}\n".into(),
                    ..discoverable_testkit::ConsulOptions::default()
                };
                let consul = tokio::task::spawn_blocking(move || {
                    discoverable_testkit::Consul::start(&peers, options)
                })
                .await
                .unwrap();
                Some(Agent::Real(Box::new(consul)))
            }
        }
    }

    /// A connection over the agent's per-client limit is answered 429, named for what it is
    /// (not a lost agent, not a refused query), and once a connection is free again calls
    /// work.
    async fn too_many_connections_are_named_for_what_they_are(kind: AgentKind) {
        let test = "too_many_connections_are_named_for_what_they_are";
        let Some(agent) = agent_limited_to_two(kind, test).await else {
            return;
        };
        // Two connections from this IP, open and idle (a blocking read holds one the same
        // way). The agent accepts connections in the order they came, so both count before
        // the client's.
        let addr = agent.url().trim_start_matches("http://").to_owned();
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        }
        let client = client_for(&agent.url(), None);
        // Each call opens a connection the agent turns away. The 429 comes as soon as the
        // connection is accepted; when it also closes the connection before the client has
        // handed it the request, all the client sees is a connection that was not ready, and
        // the next call tries again.
        let refused = until(Duration::from_secs(10), "a call turned away", || async {
            match client.agent_self().await {
                Err(e @ Error::TooManyConnections { .. }) => Some(e),
                Ok(_) => panic!("a call over the limit was answered"),
                Err(_) => None,
            }
        })
        .await;
        let shown = refused.to_string();
        // Consul writes its 429 as soon as it accepts the connection: read as an answer when
        // the request went out first, else met as bytes nobody asked for. Named the same.
        assert!(
            shown.contains("limits.http_max_conns_per_client")
                && (shown.contains("Your IP is issuing too many concurrent connections")
                    || shown.contains("the agent answered before the request was sent")),
            "{shown}"
        );
        // The connections close: calls work again.
        drop(held);
        until(Duration::from_secs(10), "calls work again", || async {
            client.agent_self().await.is_ok()
        })
        .await;
        drop(agent);
    }

    discoverable_testkit::against_both_agents!(
        agent_self_describes_the_agent,
        register_round_trips_every_field,
        http_check_turns_passing_through_the_agent,
        register_errors_carry_consuls_reason,
        blocking_health_service_waits_for_a_change,
        blocking_catalog_and_health_state_wake_on_registration,
        agent_service_hash_blocking,
        ttl_pass_warn_fail_update_and_expiry,
        index_reset_after_the_agent_loses_its_state,
        acl_on_token_works_and_no_token_is_denied,
        acl_off_any_token_or_none_works,
        faults_map_to_typed_errors,
        too_many_connections_are_named_for_what_they_are,
    );
}
