//! A real Fabio process for the tests.

use std::net::SocketAddr;
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

/// A real Fabio on 127.0.0.1 reading one Consul agent; killed when dropped.
#[derive(Debug)]
pub struct Fabio {
    peer: Peer,
    proxy: SocketAddr,
    ui: SocketAddr,
    dir: std::path::PathBuf,
}

impl Fabio {
    /// Starts Fabio in front of the agent at `consul` (`host:port`), with `token` if given,
    /// and waits until its UI answers. Its own registration in Consul is off.
    pub fn start(peers: &Peers, consul: SocketAddr, token: Option<&str>) -> Fabio {
        let dir = scratch_dir("fabio");
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ui: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(&peers.fabio);
        cmd.arg("-registry.consul.addr")
            .arg(consul.to_string())
            .arg("-proxy.addr")
            .arg(proxy.to_string())
            .arg("-ui.addr")
            .arg(ui.to_string())
            .arg("-registry.consul.register.enabled=false");
        if let Some(token) = token {
            cmd.arg("-registry.consul.token").arg(token);
        }
        cmd.env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN");
        let mut peer = Peer::spawn("fabio", cmd, &dir.join("fabio.log"));
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
        Fabio {
            peer,
            proxy,
            ui,
            dir,
        }
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
