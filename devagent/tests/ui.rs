//! The agent's page, `GET /ui/`: its files (content types, the `/ui` redirect, 404s, served
//! without a token when ACLs are on).

mod common;

use common::{Env, start, start_with};
use discoverable_devagent::Config;
use reqwest::Method;
use serde_json::json;

const TOKEN: &str = "ui-management-token";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_page_files_are_served_with_their_types_and_policy() {
    let env = start().await;
    for (path, content_type, holds) in [
        ("/ui/", "text/html; charset=utf-8", "<script src=\"app.js\""),
        ("/ui/index.html", "text/html; charset=utf-8", "<h1>devagent"),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "X-Consul-Token",
        ),
        ("/ui/style.css", "text/css; charset=utf-8", ".badge"),
        ("/ui/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = env.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        // The page's files are not Consul's API: none of its headers.
        assert!(h.get("x-consul-default-acl-policy").is_none(), "{path}");
        assert!(resp.text().await.unwrap().contains(holds), "{path}");
    }
    let resp = env.send(Method::HEAD, "/ui/app.js", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(resp.text().await.unwrap(), "");
    let root = env.get("/").await.text().await.unwrap();
    assert!(root.contains("/ui/"), "{root}");
}

#[tokio::test]
async fn ui_redirects_to_its_slash_and_knows_only_its_files() {
    let env = start().await;
    let http = no_redirects();
    let resp = http.get(format!("{}/ui", env.url)).send().await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/ui/");
    let resp = http
        .get(format!("{}/ui?x=1", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    for path in ["/ui/nope.js", "/ui/app.js/", "/ui/v1/catalog/services"] {
        let resp = env.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.text().await.unwrap(), "404 page not found\n", "{path}");
    }
    let resp = env.send(Method::PUT, "/ui/", Some(&json!({}))).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    // Paths that only look alike are the API's, as before.
    assert_eq!(env.get("/uix").await.status(), 404);
    assert!(
        env.get("/uix")
            .await
            .text()
            .await
            .unwrap()
            .contains("ensure the path starts with '/v1/'")
    );
}

#[tokio::test]
async fn the_page_needs_no_token_but_its_data_does() {
    let env = acl_env().await;
    for path in ["/ui/", "/ui/app.js", "/ui/style.css", "/ui/icon.svg"] {
        assert_eq!(env.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(env.get("/v1/agent/self").await.status(), 403);
}

async fn acl_env() -> Env {
    start_with(Config {
        acl_token: Some(TOKEN.into()),
        ..Config::default()
    })
    .await
}
