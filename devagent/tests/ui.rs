//! The agent's page, `GET /ui/`: its files (content types, the `/ui` redirect, 404s, served
//! without a token when ACLs are on), and the page itself in a real headless Chromium driven
//! over WebDriver at 360 px wide: services, instances, checks and KV keys appear, change and go
//! without a reload; with ACLs on, only a token form until a good token is typed.
//!
//! Every wait is on a condition with a deadline (the DOM polled every 20 ms), never a fixed sleep.
//! The browser tests skip where Chromium or ChromeDriver is missing (and fail under `CI=true`).

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Env, start, start_with};
use discoverable_devagent::Config;
use discoverable_testkit::browser::Browser;
use discoverable_testkit::until;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "ui-management-token";
/// The narrowest phone the page is made for.
const WIDTH: u32 = 360;
/// WebDriver's key codes.
const TAB: char = '\u{E004}';
const ENTER: char = '\u{E007}';
/// How often the page is looked at while a test waits for it.
const POLL: Duration = Duration::from_millis(20);
/// How long the page may take to show what the agent already has.
const SHOWN_WITHIN: Duration = Duration::from_secs(10);

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

/// A WebDriver session on the agent's page.
struct Page {
    client: Client,
}

/// Opens `{agent}/ui/` in a new browser at [`WIDTH`] x `height` and runs `body` on it, then
/// closes the session and stops ChromeDriver, whether `body` finished or panicked: a failed
/// assertion leaves no browser behind. `false` (the test skips) where the browser is missing.
async fn on_page<F, Fut>(test: &str, env: &Arc<Env>, height: u32, body: F) -> bool
where
    F: FnOnce(Arc<Env>, Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(browser) = Browser::require_driver(test) else {
        return false;
    };
    let driver = tokio::task::block_in_place(|| browser.driver()).expect("chromedriver");
    let Value::Object(capabilities) = driver.capabilities(WIDTH, height) else {
        panic!("capabilities are an object");
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(driver.url())
        .await
        .expect("a WebDriver session");
    let page = Page {
        client: client.clone(),
    };
    let (url, browsing) = (format!("{}/ui/", env.url), client.clone());
    let run = body(env.clone(), page);
    let outcome = tokio::spawn(async move {
        browsing.goto(&url).await.expect("the page opens");
        run.await;
    })
    .await;
    let closed = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    closed.expect("session closed");
    true
}

impl Page {
    /// Runs `script` (a function body) in the page and returns what it returns.
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something other than `null` or `false`, and returns that.
    async fn wait_for(&self, within: Duration, what: &str, script: &str) -> Value {
        until(within, what, || async {
            let value = self.js(script).await;
            (!value.is_null() && value != Value::Bool(false)).then_some(value)
        })
        .await
    }

    /// The text of the first element matching `selector` once its text holds every one of
    /// `parts` (polled every [`POLL`]); on a timeout, the panic says what it showed instead.
    async fn text_with(&self, within: Duration, selector: &str, parts: &[&str]) -> String {
        let script = format!(
            "const e = document.querySelector({sel}); const t = e ? e.textContent : null; \
             return [t, t !== null && {parts}.every(p => t.includes(p))];",
            sel = json!(selector),
            parts = json!(parts),
        );
        let deadline = Instant::now() + within;
        loop {
            let seen = self.js(&script).await;
            if seen[1] == true {
                return seen[0].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {selector} to show {parts:?}; it shows {}",
                seen[0]
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn gone(&self, within: Duration, selector: &str) {
        let script = format!(
            "return document.querySelector({}) === null;",
            json!(selector)
        );
        self.wait_for(within, &format!("{selector} gone"), &script)
            .await;
    }

    async fn press(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("key press");
    }

    /// Types `text` into the focused element, as a keyboard does.
    async fn type_text(&self, text: &str) {
        let focused = self
            .client
            .active_element()
            .await
            .expect("a focused element");
        focused.send_keys(text).await.expect("keys typed");
    }
}

/// `target/` of the workspace (the parent of cargo's per-package scratch dir `target/tmp`).
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf()
}

async fn put_ok(env: &Env, path: &str, body: Option<&Value>) {
    let resp = env.send(Method::PUT, path, body).await;
    let status = resp.status();
    assert!(
        status.is_success(),
        "PUT {path}: {status} {}",
        resp.text().await.unwrap()
    );
}

fn instance(id: &str, name: &str, port: u16, tags: &[&str], meta: Value) -> Value {
    json!({
        "ID": id, "Name": name, "Address": "127.0.0.1", "Port": port, "Tags": tags, "Meta": meta,
        "Check": {"CheckID": format!("{id}-ttl"), "Name": format!("{name} heartbeat"),
                  "TTL": "60s", "Status": "passing"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_the_agent_live() {
    let started = Instant::now();
    let env = Arc::new(start().await);
    let test = "the_page_follows_the_agent_live";
    if !on_page(test, &env, 1200, follows_the_agent).await {
        return;
    }
    // The browser gone, so are its queries.
    until(SHOWN_WITHIN, "no blocking query left", || async {
        env.agent.blocking_queries() == 0
    })
    .await;
    println!("the test ran {:?}", started.elapsed());
}

async fn follows_the_agent(env: Arc<Env>, page: Page) {
    // The agent's own service, then the page parked in the agent: catalog, KV and that
    // service's health, each a blocking query waiting for a change.
    page.text_with(SHOWN_WITHIN, "[data-instance=\"consul\"]", &["passing"])
        .await;
    until(SHOWN_WITHIN, "the page's blocking queries", || async {
        env.agent.blocking_queries() >= 3
    })
    .await;
    let width = page.js("return window.innerWidth;").await;
    assert!(width.as_u64().unwrap() <= u64::from(WIDTH), "{width}");

    // a. A registration shows without a reload, with all it registered: woken by the
    // page's blocking query (parked above), not by a reload, which would lose this mark.
    page.js("window.stillTheSamePage = true; return true;")
        .await;
    let resp = env
        .put(
            "/v1/agent/service/register",
            &instance(
                "web-1",
                "web",
                8080,
                &["v1", "primary"],
                json!({"version": "1.2.3"}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let answered = Instant::now();
    let text = page
        .text_with(
            SHOWN_WITHIN,
            "[data-instance=\"web-1\"]",
            &["web-1", "127.0.0.1", "8080"],
        )
        .await;
    let latency = answered.elapsed();
    println!("registration shown {latency:?} after the agent's answer");
    assert_eq!(
        page.js("return window.stillTheSamePage === true;").await,
        true,
        "the page was not reloaded"
    );
    for part in [
        "v1",
        "primary",
        "version",
        "1.2.3",
        "passing",
        "web heartbeat",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    page.text_with(
        SHOWN_WITHIN,
        "[data-service=\"web\"] summary",
        &["web", "1 instance"],
    )
    .await;

    // b. A TTL check marked warning, then failed, with its note.
    put_ok(
        &env,
        "/v1/agent/check/warn/web-1-ttl?note=slow%20answers",
        None,
    )
    .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-check=\"web-1-ttl\"]",
        &["warning", "slow answers"],
    )
    .await;
    env.register(instance(
        "api-1",
        "api",
        9090,
        &["grpc"],
        json!({"zone": "a"}),
    ))
    .await;
    env.register(instance(
        "api-2",
        "api",
        9091,
        &["grpc"],
        json!({"zone": "b"}),
    ))
    .await;
    put_ok(
        &env,
        "/v1/agent/check/fail/web-1-ttl?note=database%20unreachable",
        None,
    )
    .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-instance=\"web-1\"] h4 .badge",
        &["critical", "✕"],
    )
    .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-check=\"web-1-ttl\"] .output",
        &["database unreachable"],
    )
    .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-service=\"web\"] summary .badge",
        &["critical"],
    )
    .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-service=\"api\"] summary",
        &["2 instances", "passing"],
    )
    .await;

    // c. A KV key.
    let resp = env
        .put_raw("/v1/kv/fabio/config", "route add web /web")
        .await;
    assert_eq!(resp.status(), 200);
    page.text_with(
        SHOWN_WITHIN,
        "#kv [data-key=\"fabio/config\"]",
        &["fabio/config"],
    )
    .await;

    // Readable at 360 px: nothing wider than the window.
    let overflow = page
        .js("const d = document.documentElement; return [d.scrollWidth, d.clientWidth];")
        .await;
    assert!(overflow[0].as_u64() <= overflow[1].as_u64(), "{overflow}");
    screenshot(&page).await;

    // More services than get a blocking query each: one query on every check stands for them.
    env.register(instance("worker-1", "worker", 7070, &[], json!({})))
        .await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-instance=\"worker-1\"]",
        &["7070", "passing"],
    )
    .await;
    put_ok(&env, "/v1/agent/check/pass/web-1-ttl?note=recovered", None).await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-check=\"web-1-ttl\"]",
        &["passing", "recovered"],
    )
    .await;

    // d. Deregistration: an instance goes, then a service with its last instance.
    put_ok(&env, "/v1/agent/service/deregister/api-2", None).await;
    page.gone(SHOWN_WITHIN, "[data-instance=\"api-2\"]").await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-service=\"api\"] summary",
        &["1 instance"],
    )
    .await;
    put_ok(&env, "/v1/agent/service/deregister/web-1", None).await;
    page.gone(SHOWN_WITHIN, "[data-service=\"web\"]").await;
    put_ok(&env, "/v1/agent/service/deregister/worker-1", None).await;
    page.gone(SHOWN_WITHIN, "[data-service=\"worker\"]").await;
    env.send(Method::DELETE, "/v1/kv/fabio/config", None).await;
    page.gone(SHOWN_WITHIN, "[data-key=\"fabio/config\"]").await;
    page.text_with(SHOWN_WITHIN, "[data-instance=\"api-1\"]", &["9090"])
        .await;

    // A hidden tab holds no query open, and catches up once shown.
    page.js(&visibility("hidden")).await;
    until(SHOWN_WITHIN, "the hidden page's queries gone", || async {
        env.agent.blocking_queries() == 0
    })
    .await;
    page.text_with(SHOWN_WITHIN, "#connection", &["Paused"])
        .await;
    env.register(instance("batch-1", "batch", 6060, &[], json!({})))
        .await;
    page.js(&visibility("visible")).await;
    page.text_with(SHOWN_WITHIN, "[data-instance=\"batch-1\"]", &["6060"])
        .await;

    // An agent that lost its state answers with a lower index: the page starts over from it.
    put_ok(&env, "/_devagent/fault/restart", None).await;
    page.gone(SHOWN_WITHIN, "[data-service=\"api\"]").await;
    page.gone(SHOWN_WITHIN, "[data-service=\"batch\"]").await;
    env.register(instance("fresh-1", "fresh", 5050, &[], json!({})))
        .await;
    page.text_with(SHOWN_WITHIN, "[data-instance=\"fresh-1\"]", &["5050"])
        .await;

    // An agent that went away: the page says so, tries again after a pause, and follows again.
    env.agent.faults().set_unavailable(true).await;
    page.text_with(
        SHOWN_WITHIN,
        "#connection",
        &["Lost the agent", "trying again in"],
    )
    .await;
    env.agent.faults().set_unavailable(false).await;
    page.text_with(Duration::from_secs(15), "#connection", &["Live"])
        .await;
    env.register(instance("back-1", "back", 4040, &[], json!({})))
        .await;
    page.text_with(SHOWN_WITHIN, "[data-instance=\"back-1\"]", &["4040"])
        .await;

    // f. Everything the page loaded came from the agent.
    let loaded = page
        .js("return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];")
        .await;
    let loaded: Vec<&str> = loaded
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(loaded.len() > 3, "{loaded:?}");
    let origin = format!("{}/", env.url);
    for url in &loaded {
        assert!(url.starts_with(&origin), "{url} is not the agent's");
    }
    for file in ["ui/app.js", "ui/style.css", "v1/catalog/services"] {
        assert!(
            loaded.iter().any(|u| u.contains(file)),
            "{file} in {loaded:?}"
        );
    }

    // g. The keyboard reaches a service's summary, and Enter folds and unfolds it.
    let mut focused = String::new();
    for _ in 0..10 {
        page.press(TAB).await;
        focused = page
            .js("return document.activeElement.tagName;")
            .await
            .as_str()
            .unwrap()
            .to_owned();
        if focused == "SUMMARY" {
            break;
        }
    }
    assert_eq!(focused, "SUMMARY");
    page.press(ENTER).await;
    page.wait_for(
        SHOWN_WITHIN,
        "the focused service folded",
        "return !document.activeElement.parentElement.open;",
    )
    .await;
    page.press(ENTER).await;
    page.wait_for(
        SHOWN_WITHIN,
        "the focused service unfolded",
        "return document.activeElement.parentElement.open;",
    )
    .await;
}

/// A script that makes the page's tab look `hidden` or `visible`, as when the user switches tabs.
fn visibility(state: &str) -> String {
    format!(
        "Object.defineProperty(document, 'visibilityState', {{value: '{state}', configurable: true}}); \
         document.dispatchEvent(new Event('visibilitychange')); return true;"
    )
}

/// A Chrome DevTools Protocol command, through ChromeDriver's endpoint for them.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (Method::POST, Some(body.to_string()))
    }
}

/// Saves the whole page, as tall as it is, to `target/devagent-ui.png`.
async fn screenshot(page: &Page) {
    let height = page
        .js("return document.documentElement.scrollHeight;")
        .await;
    let shot = page
        .client
        .issue_cmd(Cdp {
            cmd: "Page.captureScreenshot",
            params: json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
            }),
        })
        .await
        .expect("screenshot");
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("PNG data"))
        .expect("base64");
    let path = target_dir().join("devagent-ui.png");
    std::fs::write(&path, png).expect("screenshot written");
    println!("screenshot: {} ({WIDTH} x {height} px)", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acls_the_page_shows_only_a_token_form_until_a_good_token() {
    let env = Arc::new(acl_env().await);
    let with_token = |path: &str| {
        env.http
            .put(format!("{}{path}", env.url))
            .header("X-Consul-Token", TOKEN)
    };
    let body = instance("billing-1", "billing", 7000, &["internal"], json!({}));
    let resp = with_token("/v1/agent/service/register")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = with_token("/v1/kv/billing/rate")
        .body("7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let test = "with_acls_the_page_shows_only_a_token_form_until_a_good_token";
    on_page(test, &env, 800, asks_for_a_token).await;
}

async fn asks_for_a_token(env: Arc<Env>, page: Page) {
    let with_token = |path: &str| {
        env.http
            .put(format!("{}{path}", env.url))
            .header("X-Consul-Token", TOKEN)
    };
    page.text_with(SHOWN_WITHIN, "#login:not([hidden])", &["enter a token"])
        .await;
    let source = page.client.source().await.unwrap();
    for secret in ["billing", "7000", "internal"] {
        assert!(
            !source.contains(secret),
            "{secret} in the page before a token"
        );
    }

    // The keyboard: Tab reaches the token field; a wrong token is refused in the agent's words.
    page.press(TAB).await;
    page.wait_for(
        SHOWN_WITHIN,
        "the token field focused",
        "return document.activeElement.id === 'token';",
    )
    .await;
    page.type_text(&format!("wrong-token{ENTER}")).await;
    page.text_with(
        SHOWN_WITHIN,
        "#login-error:not([hidden])",
        &["ACL not found"],
    )
    .await;
    let source = page.client.source().await.unwrap();
    assert!(
        !source.contains("billing"),
        "billing shown for a wrong token"
    );

    page.wait_for(
        SHOWN_WITHIN,
        "the token field focused again",
        "return document.activeElement.id === 'token';",
    )
    .await;
    page.type_text(&format!("{TOKEN}{ENTER}")).await;
    page.text_with(
        SHOWN_WITHIN,
        "[data-instance=\"billing-1\"]",
        &["7000", "internal", "passing"],
    )
    .await;
    page.text_with(SHOWN_WITHIN, "#kv", &["billing/rate"]).await;
    page.wait_for(
        SHOWN_WITHIN,
        "the form hidden, the token in session storage",
        "return document.getElementById('login').hidden \
           && sessionStorage.getItem('devagent-token') !== null;",
    )
    .await;

    // A change made with the token shows too: the page's queries carry it.
    let resp = with_token("/v1/agent/service/deregister/billing-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    page.gone(SHOWN_WITHIN, "[data-service=\"billing\"]").await;

    // Forgetting the token takes the data off the page and brings the form back.
    page.js("document.getElementById('forget').focus(); return true;")
        .await;
    page.press(ENTER).await;
    page.text_with(SHOWN_WITHIN, "#login:not([hidden])", &["enter a token"])
        .await;
    let source = page.client.source().await.unwrap();
    assert!(
        !source.contains("billing/rate"),
        "a key shown without a token"
    );
    let stored = page
        .js("return sessionStorage.getItem('devagent-token');")
        .await;
    assert!(stored.is_null(), "{stored}");
}
