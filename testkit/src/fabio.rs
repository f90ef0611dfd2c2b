//! A real Fabio process for the tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use crate::http::{self, Answer};
use crate::peers::Peers;
use crate::process::{Peer, free_port, scratch_dir, wait_until};

/// One row of Fabio's routing table (`GET /api/routes` of its UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The Consul service name.
    pub service: String,
    /// The source, for example `/oops`.
    pub src: String,
    /// The destination, for example `http://127.0.0.1:40123/`.
    pub dst: String,
}

/// A real Fabio reading one Consul agent (on 127.0.0.1 unless told otherwise); killed when
/// dropped.
#[derive(Debug)]
pub struct Fabio {
    peer: Peer,
    proxy: SocketAddr,
    ui: SocketAddr,
    dir: std::path::PathBuf,
}

/// How to run a [`Fabio`]: [`Fabio::start_in`]. [`FabioOptions::new`]: on 127.0.0.1 in the
/// test's own namespace, waiting for the UI, like [`Fabio::start`].
#[derive(Debug, Clone)]
pub struct FabioOptions {
    /// The Consul agent's HTTP address (`host:port`) Fabio reads.
    pub consul: SocketAddr,
    /// The ACL token Fabio sends to Consul.
    pub token: Option<String>,
    /// The network namespace to run in (`ip netns exec`), for the cluster tests' hosts.
    pub netns: Option<String>,
    /// The address the proxy listens on (its port is picked at run time).
    pub proxy: IpAddr,
    /// The protocol of the proxy's listener, Fabio's `proto=` (`None`: HTTP; `grpc` routes
    /// the services registered with `proto=grpc`).
    pub proxy_proto: Option<String>,
    /// The address the UI and its API listen on (its port is picked at run time).
    pub ui: IpAddr,
    /// More command-line flags (for example `-log.access.target=stdout`).
    pub args: Vec<String>,
    /// Wait until the UI answers before `start_in` returns. A probe from the test's own
    /// namespace cannot reach a Fabio inside another one: turn it off with `netns` and probe
    /// from inside.
    pub wait_ready: bool,
}

impl FabioOptions {
    /// Fabio in front of the agent at `consul`, on 127.0.0.1, waiting for its UI.
    pub fn new(consul: SocketAddr) -> Self {
        FabioOptions {
            consul,
            token: None,
            netns: None,
            proxy: IpAddr::V4(Ipv4Addr::LOCALHOST),
            proxy_proto: None,
            ui: IpAddr::V4(Ipv4Addr::LOCALHOST),
            args: Vec::new(),
            wait_ready: true,
        }
    }
}

impl Fabio {
    /// Starts Fabio in front of the agent at `consul` (`host:port`), with `token` if given,
    /// and waits until its UI answers. Its own registration in Consul is off.
    pub fn start(peers: &Peers, consul: SocketAddr, token: Option<&str>) -> Fabio {
        Fabio::start_in(
            peers,
            FabioOptions {
                token: token.map(str::to_owned),
                ..FabioOptions::new(consul)
            },
        )
    }

    /// Starts Fabio with `options`. Its own registration in Consul is off. Panics, with the
    /// end of its log, if it does not start (when waiting for it).
    pub fn start_in(peers: &Peers, options: FabioOptions) -> Fabio {
        let dir = scratch_dir("fabio");
        let proxy = SocketAddr::new(options.proxy, free_port());
        let ui = SocketAddr::new(options.ui, free_port());
        let mut cmd = match &options.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&peers.fabio);
                c
            }
            None => Command::new(&peers.fabio),
        };
        cmd.arg("-registry.consul.addr")
            .arg(options.consul.to_string())
            .arg("-proxy.addr")
            .arg(match &options.proxy_proto {
                Some(proto) => format!("{proxy};proto={proto}"),
                None => proxy.to_string(),
            })
            .arg("-ui.addr")
            .arg(ui.to_string())
            .arg("-registry.consul.register.enabled=false")
            .args(&options.args);
        if let Some(token) = &options.token {
            cmd.arg("-registry.consul.token").arg(token);
        }
        cmd.env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN");
        let mut peer = Peer::spawn("fabio", cmd, &dir.join("fabio.log"));
        if options.wait_ready {
            let up = wait_until(Duration::from_secs(30), || {
                peer.check_alive()?;
                let a = http::get(ui, "/api/routes", None)?;
                if a.status == 200 {
                    Ok(())
                } else {
                    Err(format!("UI answered {}", a.status))
                }
            });
            if let Err(why) = up {
                panic!(
                    "fabio did not start: {why}\nits log ends:\n{}",
                    peer.log_tail(30)
                );
            }
        }
        Fabio {
            peer,
            proxy,
            ui,
            dir,
        }
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        self.peer.pid()
    }

    /// The UI's address (its API serves the routing table at `/api/routes`).
    pub fn ui_addr(&self) -> SocketAddr {
        self.ui
    }

    /// Everything Fabio printed so far (its log, and its access log when
    /// `-log.access.target=stdout`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fabio.log")).unwrap_or_default()
    }

    /// `Err` if Fabio has exited, with its status and the end of its log.
    pub fn check_alive(&mut self) -> Result<(), String> {
        self.peer.check_alive()
    }

    /// The proxy's address, where routed requests go.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
    }

    /// The routing table now.
    pub fn routes(&self) -> Result<Vec<Route>, String> {
        let a = http::get(self.ui, "/api/routes", None)?;
        let rows = a.json()?;
        let rows = rows.as_array().cloned().unwrap_or_default();
        Ok(rows
            .iter()
            .map(|r| Route {
                service: r["service"].as_str().unwrap_or_default().to_owned(),
                src: r["src"].as_str().unwrap_or_default().to_owned(),
                dst: r["dst"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// The destinations Fabio routes `src` to now.
    pub fn destinations(&self, src: &str) -> Vec<String> {
        let mut dst: Vec<String> = self
            .routes()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.src == src)
            .map(|r| r.dst)
            .collect();
        dst.sort();
        dst
    }

    /// Whether Fabio routes `src` to an instance on `port` now (`http://host:port/`, or
    /// `grpc://host:port` for a gRPC route).
    pub fn routes_to(&self, src: &str, port: u16) -> bool {
        let suffix = format!(":{port}");
        self.destinations(src)
            .iter()
            .any(|d| d.trim_end_matches('/').ends_with(&suffix))
    }

    /// Sends `GET path` through the proxy, one request after another with `pause` between,
    /// for `window`; returns how many were answered 200 and how many were not.
    pub fn answers_within(&self, path: &str, window: Duration, pause: Duration) -> (usize, usize) {
        let end = std::time::Instant::now() + window;
        let (mut ok, mut failed) = (0, 0);
        while std::time::Instant::now() < end {
            match self.get(path) {
                Ok(a) if a.status == 200 => ok += 1,
                _ => failed += 1,
            }
            std::thread::sleep(pause);
        }
        (ok, failed)
    }

    /// `GET path` through the proxy.
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        http::request(self.proxy, "GET", path, &[], b"", Duration::from_secs(5))
    }

    /// The last `lines` lines of Fabio's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.peer.log_tail(lines)
    }
}

impl Drop for Fabio {
    fn drop(&mut self) {
        self.peer.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
