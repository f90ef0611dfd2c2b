//! The `devagent` command: a Consul-compatible agent for development and tests.
//!
//! Prints `devagent listening on http://ADDR` once ready, logs to stderr (`RUST_LOG`), and stops
//! cleanly on SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use discoverable_devagent::{Config, DevAgent};

const HELP: &str = "\
devagent: a Consul-compatible agent for development and tests.

This is a development tool, NOT Consul. It implements the part of Consul's HTTP API
that service registration and discovery use (agent, health, catalog, KV, status), with
Consul's paths, JSON, status codes, error texts, blocking queries and check behaviour,
for tests, examples and demos on machines without Consul. In production, talk to a
real Consul cluster.

USAGE:
    devagent [OPTIONS]

OPTIONS:
    --addr <ADDR>          Address to listen on [default: 127.0.0.1:8500]; port 0 picks a free port
    --node <NAME>          Node name [default: devagent]
    --datacenter <DC>      Datacenter [default: dc1]
    --acl-token <TOKEN>    Turn ACLs on (default policy deny) with TOKEN as the management token
    --reap-interval <D>    How often long-critical services are reaped [default: 30s]
    --deregister-critical-min <D>
                           Least DeregisterCriticalServiceAfter honoured [default: 1m]
    --deregister-critical-cap <D>
                           NOT CONSUL BEHAVIOUR, for tests: treat every
                           DeregisterCriticalServiceAfter as at most D [default: none]
    -h, --help             Print this help

When ready it prints one line, `devagent listening on http://ADDR`, to stdout.
Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more. Durations are Go
durations (500ms, 2s, 1m30s); shorten the reaper's for quick tests of crash clean-up.

FAULT SWITCHES (paths Consul does not use):
    PUT /_devagent/fault/unavailable?for=2s   stop listening for that long, then listen again
    PUT /_devagent/fault/delay?d=300ms        delay every API answer (d=0: off)
    PUT /_devagent/fault/fail?n=3             the next n API requests answer 500
    PUT /_devagent/fault/restart              forget all state, as an agent restarted without data
";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 8500)),
        ..Config::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => {
                let raw = value()?;
                config.addr = raw.parse().map_err(|_| {
                    format!("--addr: {raw:?} is not an address like 127.0.0.1:8500")
                })?;
            }
            "--node" => config.node = value()?,
            "--datacenter" => config.datacenter = value()?,
            "--acl-token" => config.acl_token = Some(value()?),
            "--reap-interval" => config.reap_interval = duration(&flag, &value()?)?,
            "--deregister-critical-min" => {
                config.deregister_critical_min = duration(&flag, &value()?)?;
            }
            "--deregister-critical-cap" => {
                config.deregister_critical_cap = Some(duration(&flag, &value()?)?);
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(Some(config))
}

/// A positive Go duration such as `500ms` or `1m30s`.
fn duration(flag: &str, raw: &str) -> Result<Duration, String> {
    discoverable_devagent::__private::go_duration(raw)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag}: {raw:?} is not a positive duration like 500ms or 1m30s"))
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("devagent: {e}");
            return ExitCode::from(2);
        }
    };
    let agent = match DevAgent::start(config).await {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("devagent: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "devagent listening on {}", agent.url());
    let _ = out.flush();
    drop(out);

    stop_signal().await;
    agent.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Config>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let c = parse(&[
            "--addr",
            "127.0.0.1:0",
            "--node=n1",
            "--datacenter",
            "dc2",
            "--acl-token",
            "t",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!((c.node.as_str(), c.datacenter.as_str()), ("n1", "dc2"));
        assert_eq!(c.acl_token.as_deref(), Some("t"));
        assert_eq!(parse(&[]).unwrap().unwrap().addr.port(), 8500);
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--addr"]).is_err());
        assert!(parse(&["--addr", "nope"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        let c = parse(&["--reap-interval", "500ms", "--deregister-critical-min=1.5s"])
            .unwrap()
            .unwrap();
        assert_eq!(c.reap_interval, Duration::from_millis(500));
        assert_eq!(c.deregister_critical_min, Duration::from_millis(1500));
        assert!(parse(&["--reap-interval", "0s"]).is_err());
        assert!(parse(&["--reap-interval", "5"]).is_err());
        assert_eq!(
            parse(&["--reap-interval", "1m30s"])
                .unwrap()
                .unwrap()
                .reap_interval,
            Duration::from_secs(90)
        );
    }
}
