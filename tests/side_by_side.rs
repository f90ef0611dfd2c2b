//! The seed's situation as real processes: `/v1` to the monolith, `/v2` to v2, through a
//! prefix router that reads the `urlprefix-` tags from the agent: the dev agent's process
//! (`dev_agent::`) or a real Consul (`real_consul::`).

mod support;

use std::process::Command;
use std::time::Duration;

use discoverable_testkit::AgentKind;
use discoverable_testkit::until;
use support::{agent_instances, agent_process};

const T: Duration = Duration::from_secs(20);

async fn routes_by_prefix_and_leaves_consul_on_sigterm(kind: AgentKind) {
    let Some((_agent, consul)) =
        agent_process(kind, "routes_by_prefix_and_leaves_consul_on_sigterm", &[])
    else {
        return;
    };
    let mut cmd = Command::new(support::binary("example", "side_by_side"));
    cmd.env("CONSUL_HTTP_ADDR", &consul)
        .env("MONOLITH_ADDR", "127.0.0.1:0")
        .env("V2_ADDR", "127.0.0.1:0")
        .env("ROUTER_ADDR", "127.0.0.1:0");
    let mut app = support::spawn("side_by_side", cmd);
    let mut router = None;
    for _ in 0..3 {
        let line = app.wait_line("", T);
        if let Some(url) = line.strip_prefix("router listening on ") {
            router = Some(url.to_owned());
        }
    }
    let router = router.expect("the router printed its address");

    let get = |path: &'static str| {
        let router = router.clone();
        async move {
            let r = reqwest::get(format!("{router}{path}")).await.ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        }
    };
    let v1 = until(T, "/v1 routed", || get("/v1/users")).await;
    assert_eq!(v1, "monolith: /v1/users\n");
    let v2 = until(T, "/v2 routed", || get("/v2/hello")).await;
    assert_eq!(v2, "hello from v2\n");
    let other = reqwest::get(format!("{router}/v3/x")).await.unwrap();
    assert_eq!(other.status(), 404);

    app.signal("TERM");
    until(T, "both deregistered", || async {
        let m = agent_instances(&consul, "monolith").await?;
        let v = agent_instances(&consul, "v2").await?;
        (m.is_empty() && v.is_empty()).then_some(())
    })
    .await;
    assert_eq!(app.wait_exit(T), Some(0));
}

discoverable_testkit::against_both_agents!(routes_by_prefix_and_leaves_consul_on_sigterm);
