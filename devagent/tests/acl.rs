//! ACLs: token sources and precedence, denied writes, unknown tokens, filtered lists, the
//! default-policy header.

mod common;

use common::{Env, start, start_with};
use discoverable_devagent::Config;
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "mgmt-secret";

const DENIED_WRITE: &str = "Permission denied: token with AccessorID \
'00000000-0000-0000-0000-000000000002' lacks permission 'service:write' on \"web\"";

async fn acl_env() -> Env {
    start_with(Config {
        acl_token: Some(TOKEN.into()),
        ..Config::default()
    })
    .await
}

fn body() -> Value {
    json!({"Name": "web", "Check": {"TTL": "30s", "Status": "passing"}})
}

async fn register_with(
    env: &Env,
    apply: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    path: &str,
) -> (u16, String) {
    let req = env
        .http
        .put(format!("{}{path}", env.url))
        .body(serde_json::to_vec(&body()).unwrap());
    let resp = apply(req).send().await.unwrap();
    assert_eq!(resp.headers()["x-consul-default-acl-policy"], "deny");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn acls_off_allow_everything_and_say_so() {
    let env = start().await;
    let resp = env
        .http
        .put(format!("{}/v1/agent/service/register", env.url))
        .header("X-Consul-Token", "whatever")
        .body(serde_json::to_vec(&body()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-consul-default-acl-policy"], "allow");
    assert!(env.json("/v1/agent/self").await.is_object());
}

#[tokio::test]
async fn writes_need_the_token_from_any_of_consuls_sources() {
    let env = acl_env().await;
    let path = "/v1/agent/service/register";
    assert_eq!(
        register_with(&env, |r| r, path).await,
        (403, DENIED_WRITE.to_owned())
    );
    assert_eq!(
        register_with(&env, |r| r.header("X-Consul-Token", "anonymous"), path).await,
        (403, DENIED_WRITE.to_owned())
    );
    assert_eq!(
        register_with(&env, |r| r.header("X-Consul-Token", "wrong"), path).await,
        (403, "ACL not found".to_owned())
    );
    assert_eq!(
        register_with(&env, |r| r.header("X-Consul-Token", TOKEN), path).await,
        (200, String::new())
    );
    assert_eq!(
        register_with(&env, |r| r.bearer_auth(TOKEN), path).await,
        (200, String::new())
    );
    let with_query = format!("{path}?token={TOKEN}");
    assert_eq!(
        register_with(&env, |r| r, &with_query).await,
        (200, String::new())
    );
    // ?token= wins over the header.
    assert_eq!(
        register_with(&env, |r| r.header("X-Consul-Token", "wrong"), &with_query).await,
        (200, String::new())
    );
    // Validation comes before the permission check, as in Consul.
    let resp = env
        .put("/v1/agent/service/register", &json!({"Port": 1}))
        .await;
    assert_eq!(resp.status(), 400);

    // Deregister, TTL updates and KV writes are guarded too.
    let resp = env
        .send(Method::PUT, "/v1/agent/service/deregister/web", None)
        .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap()),
        (403, DENIED_WRITE.to_owned())
    );
    let resp = env
        .send(Method::PUT, "/v1/agent/check/pass/service:web", None)
        .await;
    assert_eq!(resp.status(), 403);
    let resp = env.put_raw("/v1/kv/fabio/config", "x").await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("lacks permission 'key:write' on \"fabio/config\"")
    );
}

#[tokio::test]
async fn lists_are_filtered_not_refused() {
    let env = acl_env().await;
    register_with(
        &env,
        |r| r.header("X-Consul-Token", TOKEN),
        "/v1/agent/service/register",
    )
    .await;
    for (path, empty) in [
        ("/v1/agent/services", json!({})),
        ("/v1/agent/checks", json!({})),
        ("/v1/catalog/services", json!({})),
        ("/v1/catalog/service/web", json!([])),
        ("/v1/health/service/web", json!([])),
        ("/v1/health/state/any", json!([])),
    ] {
        // Without a token: empty, and no header revealing that something was hidden.
        let resp = env.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()
                .get("x-consul-results-filtered-by-acls")
                .is_none(),
            "{path}"
        );
        assert_eq!(resp.json::<Value>().await.unwrap(), empty, "{path}");
        // Naming the anonymous token: empty, and the header says results were filtered.
        let resp = env
            .http
            .get(format!("{}{path}", env.url))
            .header("X-Consul-Token", "anonymous")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-consul-results-filtered-by-acls"],
            "true",
            "{path}"
        );
        // With the management token: everything.
        let resp = env
            .http
            .get(format!("{}{path}", env.url))
            .header("X-Consul-Token", TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers()
                .get("x-consul-results-filtered-by-acls")
                .is_none(),
            "{path}"
        );
        assert_ne!(resp.json::<Value>().await.unwrap(), empty, "{path}");
        // An unknown token is refused outright.
        let resp = env
            .http
            .get(format!("{}{path}", env.url))
            .header("X-Consul-Token", "nope")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (resp.status().as_u16(), resp.text().await.unwrap().as_str()),
            (403, "ACL not found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn agent_self_and_single_reads_are_refused_without_the_token() {
    let env = acl_env().await;
    let resp = env.get("/v1/agent/self").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        "Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' \
lacks permission 'agent:read' on \"devagent\""
    );
    let resp = env
        .http
        .get(format!("{}/v1/agent/self", env.url))
        .header("X-Consul-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The raft configuration needs operator:read, a permission on no named resource.
    let resp = env.get("/v1/operator/raft/configuration").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        "Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' \
lacks permission 'operator:read'"
    );
    let resp = env.get("/v1/kv/fabio/config").await;
    assert_eq!(resp.status(), 403);
    // Status endpoints need no token.
    assert_eq!(env.get("/v1/status/leader").await.status(), 200);
}
