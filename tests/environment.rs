//! Malformed settings in the environment stop the real `cool_app` process at start-up: exit
//! code 2, one sentence on stderr that names the variable, and nothing registered. The
//! builder's unit tests check each parse; this checks what an operator sees.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use discoverable_testkit::until;
use support::{agent_instances, binary, devagent};

const T: Duration = Duration::from_secs(20);

/// What a finished `cool_app` run left behind.
struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `cool_app` (see [`command`]) until it exits (bounded).
fn run_cool_app(consul: &str, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = command(consul, env);
    cmd.stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = Killed(cmd.spawn().expect("spawn cool_app"));
    let mut stderr = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < T,
            "cool_app with {env:?} still running after {T:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        code: status.code(),
        took: started.elapsed(),
        stderr: reader.join().unwrap(),
    }
}

/// `cool_app` on 127.0.0.1:0 against `consul` with `env` on top of an environment without the
/// test's own CONSUL_* and DISCOVERABLE_* variables.
fn command(consul: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary("example", "cool_app"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CONSUL_") || key.starts_with("DISCOVERABLE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("BIND_ADDR", "127.0.0.1:0")
        .env("CONSUL_HTTP_ADDR", consul)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_settings_stop_start_up_naming_the_variable() {
    let (_agent, consul) = devagent(&[]);
    let missing_token_file = format!(
        "/nonexistent/discoverable-environment-test-{}/token",
        std::process::id()
    );
    let cases: &[(&str, &str)] = &[
        ("DISCOVERABLE_ADVERTISE_ADDR", "not an address!"),
        ("DISCOVERABLE_ADVERTISE_PORT", "70000"),
        ("DISCOVERABLE_FAIL_FAST", "maybe"),
        ("DISCOVERABLE_GRACE_PERIOD", "soon"),
        ("DISCOVERABLE_DRAIN_TIMEOUT", "10 parsecs"),
        ("CONSUL_HTTP_ADDR", "http://[::1"),
        ("CONSUL_HTTP_ADDR", "localhost:notaport"),
        ("CONSUL_HTTP_ADDR", "ftp://127.0.0.1:8500"),
        ("CONSUL_HTTP_SSL", "perhaps"),
        ("CONSUL_HTTP_TOKEN_FILE", &missing_token_file),
    ];
    for &(key, value) in cases {
        let (agent, k, v) = (consul.clone(), key.to_owned(), value.to_owned());
        let outcome = tokio::task::spawn_blocking(move || run_cool_app(&agent, &[(&k, &v)]))
            .await
            .unwrap();
        eprintln!(
            "{key}={value:?}: exit {:?} after {:?}",
            outcome.code, outcome.took
        );
        assert_eq!(
            outcome.code,
            Some(2),
            "{key}={value:?}: expected exit code 2, as for a bad flag; stderr:\n{}",
            outcome.stderr
        );
        assert!(
            outcome
                .stderr
                .lines()
                .any(|line| line.starts_with(&format!("error: invalid setting {key}: "))),
            "{key}={value:?}: no line on stderr says which variable is wrong:\n{}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("Custom {") && !outcome.stderr.contains("kind:"),
            "{key}={value:?}: the error is printed as a sentence, not a Debug structure:\n{}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("panicked"),
            "{key}={value:?}: a panic is not an error message:\n{}",
            outcome.stderr
        );
        assert_eq!(
            agent_instances(&consul, "cool_app").await,
            Some(Vec::new()),
            "{key}={value:?}: nothing registered"
        );
    }
}

/// The control: the same variables with good values, and the same agent, do register; so the
/// failures above come from the values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_variables_with_good_values_start_and_register() {
    let (_agent, consul) = devagent(&[]);
    let token_file = std::env::temp_dir().join(format!(
        "discoverable-environment-test-{}.token",
        std::process::id()
    ));
    std::fs::write(&token_file, "an-unused-token\n").unwrap();
    let mut cmd = command(
        &consul,
        &[
            ("DISCOVERABLE_ADVERTISE_ADDR", "127.0.0.1"),
            ("DISCOVERABLE_ADVERTISE_PORT", "8080"),
            ("DISCOVERABLE_FAIL_FAST", "true"),
            ("DISCOVERABLE_GRACE_PERIOD", "100ms"),
            ("DISCOVERABLE_DRAIN_TIMEOUT", "2s"),
            ("CONSUL_HTTP_SSL", "false"),
            ("CONSUL_HTTP_TOKEN_FILE", token_file.to_str().unwrap()),
        ],
    );
    cmd.stderr(Stdio::null());
    let mut app = Killed(cmd.spawn().expect("spawn cool_app"));
    let services = until(T, "cool_app registered", || async {
        agent_instances(&consul, "cool_app")
            .await
            .filter(|s| s.len() == 1)
    })
    .await;
    assert_eq!(
        services[0]["Port"], 8080,
        "DISCOVERABLE_ADVERTISE_PORT applied"
    );
    let _ = std::fs::remove_file(&token_file);
    let term = Command::new("kill")
        .args(["-TERM", &app.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(status) = app.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "cool_app did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(agent_instances(&consul, "cool_app").await, Some(Vec::new()));
}

/// A child killed when dropped (a failed assertion must not leave it running).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fail_fast` with no agent to register with stops start-up as a bad setting does: one line
/// on stderr that says why, exit code 2, no `Debug` structure of the error `main` returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_without_an_agent_stops_with_one_line_and_exit_code_2() {
    // A loopback port nothing listens on.
    let nobody = format!("127.0.0.1:{}", discoverable_testkit::free_port());
    let outcome = tokio::task::spawn_blocking(move || {
        run_cool_app(&nobody, &[("DISCOVERABLE_FAIL_FAST", "true")])
    })
    .await
    .unwrap();
    eprintln!("exit {:?} after {:?}", outcome.code, outcome.took);
    assert_eq!(
        outcome.code,
        Some(2),
        "expected exit code 2, as for a bad setting; stderr:\n{}",
        outcome.stderr
    );
    let errors: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one line says why:\n{}", outcome.stderr);
    assert!(
        errors[0]
            .starts_with("error: registration failed and fail_fast is set: cannot reach Consul"),
        "{}",
        errors[0]
    );
    assert!(
        !outcome.stderr.contains("Custom {") && !outcome.stderr.contains("ERROR"),
        "the failure is said once, as a sentence:\n{}",
        outcome.stderr
    );
}
