//! The `devagent` program: prints its address line, serves, never logs the token, and exits 0 on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cr3t-management-token";

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_devagent"))
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devagent starts")
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("devagent did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn prints_its_address_serves_and_exits_on_sigterm() {
    let mut child = spawn(&[
        "--addr",
        "127.0.0.1:0",
        "--acl-token",
        TOKEN,
        "--node",
        "n1",
    ]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("devagent listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    // Then the page, which needs no token (the data it shows does).
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, format!("devagent page: {url}/ui/\n"));

    let http = reqwest::Client::new();
    let page = http.get(format!("{url}/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let leader: String = http
        .get(format!("{url}/v1/status/leader"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leader, "127.0.0.1:8300");
    // The token in every place a client may put it, accepted and refused alike.
    let me: serde_json::Value = http
        .get(format!("{url}/v1/agent/self?token={TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["Config"]["NodeName"], "n1");
    let resp = http
        .put(format!("{url}/v1/agent/service/register"))
        .header("X-Consul-Token", TOKEN)
        .body(r#"{"Name":"web","Check":{"TTL":"10s"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{url}/v1/health/service/web"))
        .bearer_auth(format!("{TOKEN}-wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Legacy ACL endpoints carried the token in the path.
    let resp = http
        .get(format!("{url}/v1/acl/info/{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");

    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("devagent started"), "logs: {logs}");
    assert!(
        !logs.contains(TOKEN),
        "the token must never be logged:\n{logs}"
    );
}

#[test]
fn help_says_it_is_not_consul() {
    let out = Command::new(env!("CARGO_BIN_EXE_devagent"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("NOT Consul"));
    assert!(text.contains("--addr"));
    assert!(text.contains("/_devagent/fault/unavailable"));
    assert!(text.contains("devagent page: http://ADDR/ui/"));
}

#[test]
fn bad_arguments_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_devagent"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
