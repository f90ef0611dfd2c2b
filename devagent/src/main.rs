//! The `devagent` command: a Consul-compatible agent for development and tests.
//!
//! Prints `devagent listening on http://ADDR` once ready, then `devagent page:
//! http://ADDR/ui/` (its web page), logs to stderr (`RUST_LOG`), and stops cleanly on SIGTERM or
//! Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use discoverable_devagent::{Config, DevAgent, TlsConfig};

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
    --http-max-conns-per-client <N>
                           Connections one client IP may hold open; one more gets 429
                           [default: 200, Consul's; 0: no limit]
    --tls-cert <FILE>      Serve HTTPS with this PEM certificate chain (needs --tls-key);
                           for tests of clients' TLS settings
    --tls-key <FILE>       The PEM private key of --tls-cert
    --tls-client-ca <FILE> Require client certificates signed by these PEM CA
                           certificates (mutual TLS; needs --tls-cert)
    -h, --help             Print this help

When ready it prints `devagent listening on http://ADDR` (https:// with --tls-cert)
to stdout, then `devagent page: http://ADDR/ui/`: a web page of its services,
instances, checks and KV keys, updated live (with ACLs on, it asks for a token).
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
    let (mut tls_cert, mut tls_key, mut tls_client_ca) = (None, None, None);
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
            "--http-max-conns-per-client" => {
                let raw = value()?;
                config.http_max_conns_per_client = raw.parse().map_err(|_| {
                    format!("--http-max-conns-per-client: {raw:?} is not a number of connections")
                })?;
            }
            "--tls-cert" => tls_cert = Some(value()?),
            "--tls-key" => tls_key = Some(value()?),
            "--tls-client-ca" => tls_client_ca = Some(value()?),
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    config.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsConfig::from_files(&cert, &key, tls_client_ca.as_ref())
                .map_err(|e| format!("--tls-cert/--tls-key/--tls-client-ca: {e}"))?,
        ),
        (None, None) if tls_client_ca.is_some() => {
            return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
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
            eprintln!("devagent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "devagent listening on {}", agent.url());
    let _ = writeln!(out, "devagent page: {}/ui/", agent.url());
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

    #[test]
    fn parses_tls_flags() {
        let dir = std::env::temp_dir().join(format!("devagent-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (cert, key, ca) = (file("c.pem", "C"), file("k.pem", "K"), file("ca.pem", "A"));
        let c = parse(&["--tls-cert", &cert, "--tls-key", &key])
            .unwrap()
            .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(
            (&tls.cert_pem[..], &tls.key_pem[..]),
            (&b"C"[..], &b"K"[..])
        );
        assert!(tls.client_ca_pem.is_none());
        let c = parse(&[
            &format!("--tls-cert={cert}"),
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.tls.unwrap().client_ca_pem.as_deref(), Some(&b"A"[..]));
        assert!(
            parse(&["--tls-cert", &cert])
                .unwrap_err()
                .contains("go together")
        );
        assert!(parse(&["--tls-client-ca", &ca]).is_err());
        let missing = dir.join("missing.pem");
        let e = parse(&["--tls-cert", missing.to_str().unwrap(), "--tls-key", &key]).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
