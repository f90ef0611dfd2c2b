//! The lifecycle end to end: the example services as real processes, against the dev agent's
//! process (`dev_agent::<name>`) and a real Consul (`real_consul::<name>`).

mod support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use discoverable_testkit::AgentKind;
use discoverable_testkit::until;
use support::{agent_instances, agent_process, example, get_json};

const T: Duration = Duration::from_secs(20);

fn port_of(url: &str) -> u64 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

async fn registers_every_field_and_is_passing_at_once(kind: AgentKind) {
    let Some((_agent, consul)) =
        agent_process(kind, "registers_every_field_and_is_passing_at_once", &[])
    else {
        return;
    };
    let (_app, url) = example("cool_app", &consul, &[]);
    let services = until(T, "cool_app registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| !s.is_empty())
    })
    .await;
    // Registered means routable: the check was registered in the probed (passing) state.
    let passing = get_json(&format!("{consul}/v1/health/service/cool_app?passing"))
        .await
        .unwrap();
    assert_eq!(passing.as_array().unwrap().len(), 1, "{passing}");

    let s = &services[0];
    let id = s["ID"].as_str().unwrap();
    let uuid = id.strip_prefix("cool_app-").expect("ID is cool_app-<uuid>");
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid.matches('-').count(), 4);
    assert_eq!(uuid.as_bytes()[14], b'4', "uuid v4: {uuid}");
    assert_eq!(s["Address"], "127.0.0.1");
    assert_eq!(s["Port"].as_u64().unwrap(), port_of(&url));
    assert_eq!(s["Tags"], serde_json::json!(["urlprefix-/oops"]));
    assert_eq!(s["Meta"], serde_json::json!({"version": "1"}));

    let checks = get_json(&format!("{consul}/v1/agent/checks"))
        .await
        .unwrap();
    let check = &checks[format!("service:{id}")];
    assert_eq!(check["ServiceID"], id);
    assert_eq!(check["Type"], "http");
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["Interval"], "10s");
    assert_eq!(check["Timeout"], "5s");
    // The agent's own run of the check (its first within the 10 s interval) names the URL.
    let health_url = format!("{url}/health");
    until(T, "the agent to run the HTTP check", || async {
        let checks = get_json(&format!("{consul}/v1/agent/checks")).await?;
        let output = checks[format!("service:{id}")]["Output"]
            .as_str()?
            .to_owned();
        (output.contains(&health_url) && output.contains("200")).then_some(())
    })
    .await;

    // The health route and the app.
    let r = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"checks":{},"status":"up"}"#);
    let r = reqwest::get(format!("{url}/oops/anything")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "home page");
}

async fn sigterm_drains_after_deregistering(kind: AgentKind, signal: &str) {
    let Some((_agent, consul)) = agent_process(kind, "sigterm_drains_after_deregistering", &[])
    else {
        return;
    };
    let (mut app, url) = example(
        "cool_app",
        &consul,
        &[("DISCOVERABLE_GRACE_PERIOD", "500ms")],
    );
    until(T, "registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| !s.is_empty())
    })
    .await;

    // The request is written on an accepted connection before the signal.
    let mut conn = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let in_flight = tokio::spawn(async move {
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.map(|_| answer)
    });
    let signalled = Instant::now();
    app.signal(signal);

    until(T, "deregistered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| s.is_empty())
    })
    .await;
    // Gone from the agent while the process still accepts connections and answers 503 on health.
    let health = reqwest::get(format!("{url}/health"))
        .await
        .expect("still accepting after deregistration");
    assert_eq!(health.status(), 503);

    let answer = in_flight
        .await
        .unwrap()
        .expect("in-flight request completed");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("slow page"), "{answer}");
    assert_eq!(app.wait_exit(T), Some(0));
    eprintln!(
        "{signal}: exited {:?} after the signal",
        signalled.elapsed()
    );
}

async fn sigterm_deregisters_then_drains_and_exits_zero(kind: AgentKind) {
    sigterm_drains_after_deregistering(kind, "TERM").await;
}

async fn ctrl_c_deregisters_then_drains_and_exits_zero(kind: AgentKind) {
    sigterm_drains_after_deregistering(kind, "INT").await;
}

async fn two_instances_get_two_ids(kind: AgentKind) {
    let Some((_agent, consul)) = agent_process(kind, "two_instances_get_two_ids", &[]) else {
        return;
    };
    let (_a, url_a) = example("cool_app", &consul, &[]);
    let (_b, url_b) = example("cool_app", &consul, &[]);
    let services = until(T, "both registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| s.len() == 2)
    })
    .await;
    assert_ne!(services[0]["ID"], services[1]["ID"]);
    let mut ports: Vec<u64> = services
        .iter()
        .map(|s| s["Port"].as_u64().unwrap())
        .collect();
    ports.sort();
    let mut want = vec![port_of(&url_a), port_of(&url_b)];
    want.sort();
    assert_eq!(ports, want);
}

async fn health_route_follows_the_instance_state(kind: AgentKind) {
    let Some((_agent, consul)) =
        agent_process(kind, "health_route_follows_the_instance_state", &[])
    else {
        return;
    };
    let (_app, url) = example("layer", &consul, &[]);
    until(T, "registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| !s.is_empty())
    })
    .await;
    let code = |path: &'static str| {
        let url = url.clone();
        async move {
            reqwest::get(format!("{url}{path}"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(code("/health").await, 200);
    assert_eq!(code("/admin/degrade").await, 200);
    assert_eq!(code("/health").await, 429);
    let r = reqwest::Client::new()
        .head(format!("{url}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = reqwest::Client::new()
        .post(format!("{url}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(code("/admin/restore").await, 200);
    assert_eq!(code("/health").await, 200);
}

async fn ttl_check_stays_passing_and_goes_critical_when_frozen(kind: AgentKind) {
    let Some((_agent, consul)) = agent_process(
        kind,
        "ttl_check_stays_passing_and_goes_critical_when_frozen",
        &[],
    ) else {
        return;
    };
    let (app, _url) = example("layer", &consul, &[("CHECK_TTL", "3s")]);
    let id = until(T, "registered", || async {
        let s = agent_instances(&consul, "cool_app").await?;
        Some(s.first()?["ID"].as_str()?.to_owned())
    })
    .await;
    let status = |consul: String, id: String| async move {
        let checks = get_json(&format!("{consul}/v1/agent/checks")).await?;
        Some(
            checks[format!("service:{id}")]["Status"]
                .as_str()?
                .to_owned(),
        )
    };
    // Passing for two full TTLs: the heartbeat keeps it alive.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            status(consul.clone(), id.clone()).await.as_deref(),
            Some("passing")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.signal("STOP");
    until(T, "TTL expired while frozen", || async {
        status(consul.clone(), id.clone())
            .await
            .filter(|s| s == "critical")
    })
    .await;
    app.signal("CONT");
    until(T, "passing again after thawing", || async {
        status(consul.clone(), id.clone())
            .await
            .filter(|s| s == "passing")
    })
    .await;
}

async fn a_killed_process_is_reaped_by_the_agent(kind: AgentKind) {
    // The dev agent's test switch shortens Consul's one-minute DeregisterCriticalServiceAfter
    // minimum, so the backstop for a crash can be watched in seconds. A real Consul honours
    // its minimum (1 min) and reaps every 30 s: up to about 90 s after the TTL expired.
    let Some((_agent, consul)) = agent_process(
        kind,
        "a_killed_process_is_reaped_by_the_agent",
        &[
            "--reap-interval",
            "200ms",
            "--deregister-critical-cap",
            "1s",
        ],
    ) else {
        return;
    };
    let reap_within = match kind {
        AgentKind::Dev => T,
        AgentKind::RealConsul => Duration::from_secs(120),
    };
    let (mut app, _url) = example("layer", &consul, &[("CHECK_TTL", "2s")]);
    until(T, "registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| !s.is_empty())
    })
    .await;
    app.signal("KILL");
    app.wait_exit(T);
    let killed = Instant::now();
    // Nothing deregistered it: the TTL expires (2 s), then the reaper removes it.
    assert_eq!(agent_instances(&consul, "cool_app").await.unwrap().len(), 1);
    until(reap_within, "reaped", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| s.is_empty())
    })
    .await;
    eprintln!("{kind:?}: reaped {:?} after SIGKILL", killed.elapsed());
    let least = match kind {
        AgentKind::Dev => Duration::from_secs(2),
        AgentKind::RealConsul => Duration::from_secs(60),
    };
    assert!(
        killed.elapsed() >= least,
        "reaped {:?} after the kill, before TTL plus the agent's minimum",
        killed.elapsed()
    );
}

async fn a_second_ctrl_c_exits_at_once(kind: AgentKind) {
    let Some((_agent, consul)) = agent_process(kind, "a_second_ctrl_c_exits_at_once", &[]) else {
        return;
    };
    // A grace period long enough that only the second signal can explain a quick exit.
    let (mut app, _url) = example("cool_app", &consul, &[("DISCOVERABLE_GRACE_PERIOD", "60s")]);
    until(T, "registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| !s.is_empty())
    })
    .await;
    app.signal("INT");
    until(T, "deregistered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| s.is_empty())
    })
    .await;
    let second = Instant::now();
    app.signal("INT");
    assert_eq!(
        app.wait_exit(T),
        Some(130),
        "exit code of the second Ctrl-C"
    );
    eprintln!(
        "{kind:?}: exited {:?} after the second Ctrl-C",
        second.elapsed()
    );
    assert!(second.elapsed() < Duration::from_secs(10));
}

discoverable_testkit::against_both_agents!(
    a_second_ctrl_c_exits_at_once,
    registers_every_field_and_is_passing_at_once,
    two_instances_get_two_ids,
    health_route_follows_the_instance_state,
    ttl_check_stays_passing_and_goes_critical_when_frozen,
    sigterm_deregisters_then_drains_and_exits_zero,
    ctrl_c_deregisters_then_drains_and_exits_zero,
    a_killed_process_is_reaped_by_the_agent,
);
