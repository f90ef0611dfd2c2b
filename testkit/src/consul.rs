//! A real Consul agent process for the tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{self, Answer};
use crate::peers::Peers;
use crate::process::{Peer, free_port, scratch_dir, tail, wait_until};

/// How to run a [`Consul`] agent. `Default`: one `-dev` server on 127.0.0.1, no ACLs.
#[derive(Debug, Clone)]
pub struct ConsulOptions {
    /// Turn ACLs on (default policy deny) with this initial management token, which is also
    /// the agent's own token.
    pub acl_management_token: Option<String>,
    /// A real server with a data directory (`-server -bootstrap-expect`) instead of `-dev`,
    /// so a restart can keep or lose the state.
    pub persistent: bool,
    /// Servers to expect before electing a leader (with `persistent`); 1 by default.
    pub bootstrap_expect: usize,
    /// Run as a client agent (no `-server`); implies a data directory.
    pub client_only: bool,
    /// Addresses to join (`-retry-join`).
    pub retry_join: Vec<String>,
    /// The address the agent binds and advertises for its cluster traffic.
    pub bind: IpAddr,
    /// The address its HTTP API listens on.
    pub client: IpAddr,
    /// The network namespace to run in (`ip netns exec`), for the cluster tests' hosts.
    pub netns: Option<String>,
    /// The node name; `node-<pid>-<n>` by default.
    pub node: Option<String>,
    /// Fixed serf LAN port (all agents of a cluster across namespaces may share one);
    /// picked at run time when `None`.
    pub serf_lan_port: Option<u16>,
    /// More HCL appended to the generated configuration.
    pub extra_hcl: String,
    /// Wait for a leader (and the agent's own node in the catalog) before `start` returns.
    pub wait_ready: bool,
    /// Also serve the HTTP API over HTTPS (on [`Consul::https_addr`]) with these files;
    /// plain HTTP stays on for the readiness probes.
    pub https: Option<Https>,
}

/// The HTTPS listener of a [`Consul`]: PEM files and whether clients must show a certificate.
#[derive(Debug, Clone)]
pub struct Https {
    /// The CA that signed `cert_file`, and that client certificates must chain to.
    pub ca_file: PathBuf,
    /// The agent's certificate.
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// Require a client certificate signed by `ca_file`.
    pub verify_incoming: bool,
}

impl Default for ConsulOptions {
    fn default() -> Self {
        ConsulOptions {
            acl_management_token: None,
            persistent: false,
            bootstrap_expect: 1,
            client_only: false,
            retry_join: Vec::new(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
            node: None,
            serf_lan_port: None,
            extra_hcl: String::new(),
            wait_ready: true,
            https: None,
        }
    }
}

impl ConsulOptions {
    /// ACLs on, default deny, with `token` as the initial management token.
    pub fn with_acl(token: &str) -> Self {
        ConsulOptions {
            acl_management_token: Some(token.to_owned()),
            ..ConsulOptions::default()
        }
    }
}

/// A real `consul agent`, killed (and its scratch directory removed) when dropped.
#[derive(Debug)]
pub struct Consul {
    peer: Option<Peer>,
    binary: PathBuf,
    options: ConsulOptions,
    dir: PathBuf,
    node: String,
    http: SocketAddr,
    https: Option<SocketAddr>,
    serf_lan: u16,
}

const READY_WITHIN: Duration = Duration::from_secs(60);
/// How often a start that lost a port to another process is tried.
const LAUNCH_ATTEMPTS: u32 = 5;

/// A port free for both TCP and UDP on 127.0.0.1 (serf gossips over both on one port).
fn free_tcp_and_udp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first line of `text` that contains `needle`.
fn first_line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or(text)
        .trim()
}

impl Consul {
    /// Starts an agent with `options` and (unless told not to) waits until it is ready.
    /// Panics, with the end of its log, if it does not start.
    ///
    /// Its ports are picked free and released before the agent binds them, so another
    /// process may take one first: an agent that exits saying an address is in use is started
    /// again on newly picked ports (when it is waited for).
    pub fn start(peers: &Peers, options: ConsulOptions) -> Consul {
        let dir = scratch_dir("consul");
        let node = options.node.clone().unwrap_or_else(|| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            name.replace("discoverable-consul", "node")
        });
        let mut consul = Consul {
            peer: None,
            binary: peers.consul.clone(),
            http: SocketAddr::new(options.client, 0),
            https: None,
            serf_lan: 0,
            options,
            dir,
            node,
        };
        for attempt in 1.. {
            consul.pick_ports();
            match consul.launch() {
                Ok(()) => break,
                Err(why) if attempt < LAUNCH_ATTEMPTS => {
                    eprintln!(
                        "testkit: consul {}: {why}; picking other ports",
                        consul.node
                    );
                }
                Err(why) => panic!("consul {} did not start: {why}", consul.node),
            }
        }
        consul
    }

    /// Picks the agent's ports (TCP and UDP free, as serf needs both) and writes its
    /// configuration.
    fn pick_ports(&mut self) {
        let options = &self.options;
        // Each port picked is released before the next is picked, so the kernel may hand the
        // same one out twice: pick again until they differ (Consul refuses two roles on one).
        let mut taken: Vec<u16> = options.serf_lan_port.into_iter().collect();
        let mut distinct = |pick: fn() -> u16| loop {
            let port = pick();
            if !taken.contains(&port) {
                taken.push(port);
                return port;
            }
        };
        let http = SocketAddr::new(options.client, distinct(free_port));
        let serf_lan = match options.serf_lan_port {
            Some(port) => port,
            None => distinct(free_tcp_and_udp_port),
        };
        let https = options
            .https
            .as_ref()
            .map(|_| SocketAddr::new(options.client, distinct(free_port)));
        let (serf_wan, server) = (distinct(free_tcp_and_udp_port), distinct(free_port));
        let ports = format!(
            "ports {{\n  http = {}\n  dns = -1\n  grpc = -1\n  grpc_tls = -1\n  https = {}\n  \
             serf_lan = {serf_lan}\n  serf_wan = {}\n  server = {}\n}}\n",
            http.port(),
            https.map_or(-1, |a| i32::from(a.port())),
            serf_wan,
            server,
        );
        let node = &self.node;
        let mut hcl = format!(
            "node_name = \"{node}\"\n{ports}\
             # Loopback only: no update check or anonymous signature to the vendor.\n\
             disable_update_check = true\ndisable_anonymous_signature = true\n\
             performance {{ raft_multiplier = 1 }}\n"
        );
        if let Some(token) = &options.acl_management_token {
            hcl.push_str(&format!(
                "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  \
                 enable_token_persistence = true\n  tokens {{\n    \
                 initial_management = \"{token}\"\n    agent = \"{token}\"\n  }}\n}}\n"
            ));
        }
        if let Some(t) = &options.https {
            hcl.push_str(&format!(
                "tls {{\n  defaults {{\n    ca_file = {:?}\n    cert_file = {:?}\n    \
                 key_file = {:?}\n  }}\n  https {{ verify_incoming = {} }}\n}}\n",
                t.ca_file.display().to_string(),
                t.cert_file.display().to_string(),
                t.key_file.display().to_string(),
                t.verify_incoming
            ));
        }
        hcl.push_str(&options.extra_hcl);
        std::fs::write(self.dir.join("consul.hcl"), hcl).expect("write consul.hcl");
        (self.http, self.https, self.serf_lan) = (http, https, serf_lan);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the agent on its configured ports and, when told to, waits until it is ready.
    /// `Err`: it exited because one of its addresses was in use.
    fn launch(&mut self) -> Result<(), String> {
        let o = &self.options;
        let mut cmd = match &o.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("agent");
        if o.persistent || o.client_only {
            std::fs::create_dir_all(self.data_dir()).expect("data dir");
            cmd.arg("-data-dir").arg(self.data_dir());
            if !o.client_only {
                cmd.arg("-server")
                    .arg(format!("-bootstrap-expect={}", o.bootstrap_expect));
            }
        } else {
            cmd.arg("-dev");
        }
        for join in &o.retry_join {
            cmd.arg(format!("-retry-join={join}"));
        }
        cmd.arg(format!("-bind={}", o.bind))
            .arg(format!("-client={}", o.client))
            .arg("-config-file")
            .arg(self.dir.join("consul.hcl"));
        // The test's own Consul settings must not reach the agent's CLI.
        for var in [
            "CONSUL_HTTP_ADDR",
            "CONSUL_HTTP_TOKEN",
            "CONSUL_HTTP_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        self.peer = Some(Peer::spawn(
            &format!("consul {}", self.node),
            cmd,
            &self.dir.join("consul.log"),
        ));
        if !self.options.wait_ready {
            return Ok(());
        }
        match self.try_wait_ready(READY_WITHIN) {
            Err(why) if why.contains("address already in use") => {
                self.kill();
                Err(format!(
                    "a port was taken before it bound it ({})",
                    first_line_with(&why, "address already in use")
                ))
            }
            Err(why) => panic!(
                "consul {} not ready: {why}\nits log ends:\n{}",
                self.node,
                self.log_tail(40)
            ),
            Ok(()) => Ok(()),
        }
    }

    /// Waits until the agent has a leader and its own node is in the catalog (so ACLs are
    /// bootstrapped and registrations are seen by health queries at once). Panics, with the
    /// end of its log, if it is not ready `within`.
    pub fn wait_ready(&mut self, within: Duration) {
        if let Err(why) = self.try_wait_ready(within) {
            panic!(
                "consul {} not ready: {why}\nits log ends:\n{}",
                self.node,
                self.log_tail(40)
            );
        }
    }

    fn try_wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let started = Instant::now();
        let node_path = format!("/v1/catalog/node/{}", self.node);
        // An agent that exited ends the wait at once (`Ok(Err(..))`), with its log's end.
        let result = wait_until(within, || {
            if let Some(Err(exited)) = self.peer.as_mut().map(Peer::check_alive) {
                return Ok(Err(exited));
            }
            let leader = self.get("/v1/status/leader")?;
            if leader.status != 200 || leader.body.trim() == "\"\"" {
                return Err(format!("no leader yet: {} {}", leader.status, leader.body));
            }
            let node = self.get(&node_path)?;
            match node.json() {
                Ok(v) if node.status == 200 && v.get("Node").is_some_and(|n| !n.is_null()) => {
                    Ok(Ok(()))
                }
                _ => Err(format!(
                    "node not in the catalog yet: {} {}",
                    node.status, node.body
                )),
            }
        });
        result??;
        eprintln!(
            "testkit: consul {} ready at {} in {:.1?}",
            self.node,
            self.url(),
            started.elapsed()
        );
        Ok(())
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The HTTPS listener's address, when [`ConsulOptions::https`] asked for one.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// The HTTP API's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// How many HTTP reads are parked in the agent, blocking until a change: the handler
    /// goroutines of Consul's HTTP API in its goroutine dump (`/debug/pprof/goroutine`, on in
    /// `-dev`). Requests being answered right now count too, so read it while only the
    /// blocking reads are in flight.
    pub fn blocking_queries(&self) -> Result<usize, String> {
        let dump = self.get("/debug/pprof/goroutine?debug=1")?;
        if dump.status != 200 {
            return Err(format!("goroutine dump: {} {}", dump.status, dump.body));
        }
        Ok(parked_http_handlers(&dump.body))
    }

    /// The agent's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The serf LAN address others join (`bind:port`).
    pub fn serf_lan_addr(&self) -> String {
        SocketAddr::new(self.options.bind, self.serf_lan).to_string()
    }

    /// The management token, when ACLs are on.
    pub fn token(&self) -> Option<&str> {
        self.options.acl_management_token.as_deref()
    }

    /// The process ID (0 while killed).
    pub fn pid(&self) -> i32 {
        self.peer.as_ref().map_or(0, Peer::pid)
    }

    /// `GET path` with the management token.
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        http::get(self.http, path, self.token())
    }

    /// `PUT path` with a JSON body and the management token.
    pub fn put(&self, path: &str, body: &Value) -> Result<Answer, String> {
        http::put(self.http, path, body, self.token())
    }

    /// How many instances of service `name` the agent holds (`/v1/agent/services`).
    pub fn registered(&self, name: &str) -> usize {
        let services = self
            .get("/v1/agent/services")
            .and_then(|a| a.json())
            .unwrap_or_else(|e| panic!("consul {}: agent services: {e}", self.node));
        services.as_object().map_or(0, |all| {
            all.values().filter(|s| s["Service"] == name).count()
        })
    }

    /// Creates a policy of `rules` (HCL) and a token holding only it; returns its secret.
    pub fn create_token(&self, name: &str, rules: &str) -> String {
        let policy = self
            .put("/v1/acl/policy", &json!({ "Name": name, "Rules": rules }))
            .expect("create policy");
        assert_eq!(policy.status, 200, "create policy {name}: {}", policy.body);
        let token = self
            .put(
                "/v1/acl/token",
                &json!({ "Description": name, "Policies": [{ "Name": name }] }),
            )
            .expect("create token");
        assert_eq!(token.status, 200, "create token {name}: {}", token.body);
        token.json().expect("token JSON")["SecretID"]
            .as_str()
            .expect("SecretID")
            .to_owned()
    }

    /// Kills the agent (SIGKILL); nothing answers on its port until [`Consul::restart`].
    pub fn kill(&mut self) {
        if let Some(mut peer) = self.peer.take() {
            peer.kill();
        }
    }

    /// Kills the agent if it runs and starts it again on the same ports; `keep_state: false`
    /// removes its data directory first (a `-dev` agent never keeps state).
    pub fn restart(&mut self, keep_state: bool) {
        self.kill();
        if !keep_state {
            let _ = std::fs::remove_dir_all(self.data_dir());
        }
        // The same ports again: clients know them. Another process may hold one of them for a
        // moment (another test's port probe, an outgoing connection's local port).
        for attempt in 1.. {
            match self.launch() {
                Ok(()) => return,
                Err(why) if attempt < LAUNCH_ATTEMPTS => {
                    eprintln!("testkit: consul {}: {why}; trying again", self.node);
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(why) => panic!("consul {} did not start again: {why}", self.node),
            }
        }
    }

    /// Freezes the agent (SIGSTOP): connections are accepted by the kernel, never answered.
    /// Returns once every thread of the agent has stopped (a stop takes effect a moment after
    /// the signal, and a busy machine stretches that moment: an agent still running then
    /// answers a request made right after `freeze`).
    pub fn freeze(&self) {
        if let Some(peer) = &self.peer {
            peer.signal(libc::SIGSTOP);
            let pid = peer.pid();
            let stopped = || {
                let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                    return true; // gone
                };
                tasks.flatten().all(|task| {
                    let stat =
                        std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                    // The state follows the command's closing parenthesis: `T` stopped.
                    stat.rsplit_once(')')
                        .is_none_or(|(_, rest)| rest.trim_start().starts_with(['T', 't', 'Z', 'X']))
                })
            };
            let _ = wait_until(std::time::Duration::from_secs(5), || {
                if stopped() {
                    Ok(())
                } else {
                    Err("still running".to_owned())
                }
            });
        }
    }

    /// Thaws a frozen agent (SIGCONT).
    pub fn thaw(&self) {
        if let Some(peer) = &self.peer {
            peer.signal(libc::SIGCONT);
        }
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        // Also after a kill: the log file outlives the process.
        tail(&self.dir.join("consul.log"), lines)
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "testkit: consul {} log kept in {}",
                self.node,
                self.dir.display()
            );
        }
    }
}

/// Goroutines in a `debug=1` goroutine dump (groups of identical stacks, each opening with
/// `<count> @ <pcs>`, the first after the dump's heading) that are inside one of the handlers of Consul's HTTP API
/// (`agent.(*HTTPHandlers).CatalogServices` and the like). The dump's own request is served
/// by the debug mux, outside those handlers.
fn parked_http_handlers(dump: &str) -> usize {
    dump.split("\n\n")
        .filter(|group| {
            group.lines().any(|line| {
                line.split_once("agent.(*HTTPHandlers).")
                    .is_some_and(|(_, method)| method.starts_with(|c: char| c.is_ascii_uppercase()))
            })
        })
        .filter_map(|group| {
            // The first group also holds the dump's heading line.
            let (count, _) = group.lines().find_map(|line| line.split_once(" @ "))?;
            count.trim().parse::<usize>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart on the same ports waits out another process holding one of them for a moment,
    /// instead of failing the test that restarted its agent.
    #[test]
    fn a_restart_waits_out_a_port_held_for_a_moment() {
        let Some(peers) = crate::peers::require("a_restart_waits_out_a_port_held_for_a_moment")
        else {
            return;
        };
        let mut consul = Consul::start(&peers, ConsulOptions::default());
        let http = consul.http_addr();
        consul.kill();
        let held = std::net::TcpListener::bind(http).expect("the killed agent's port is free");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            drop(held);
        });
        consul.restart(false);
        release.join().unwrap();
        assert_eq!(consul.http_addr(), http, "the same port again");
        assert_eq!(consul.get("/v1/status/leader").map(|a| a.status), Ok(200));
    }

    #[test]
    fn counts_the_goroutines_inside_http_handlers() {
        let dump = "goroutine profile: total 9\n\
            3 @ 0x1 0x2\n\
            #\t0x1\tgithub.com/hashicorp/consul/agent/blockingquery.Query+0x689\t/x.go:196\n\
            #\t0x2\tgithub.com/hashicorp/consul/agent.(*HTTPHandlers).CatalogServices+0x5e4\t/y.go:300\n\
            \n\
            1 @ 0x3\n\
            #\t0x3\tgithub.com/hashicorp/consul/agent.(*HTTPHandlers).AgentService+0x273\t/z.go:1\n\
            \n\
            5 @ 0x4\n\
            #\t0x4\tgithub.com/hashicorp/consul/agent.(*HTTPHandlers).handler.func3+0x31\t/w.go:1\n\
            #\t0x5\tnet/http.(*conn).serve+0x68f\t/v.go:1\n";
        assert_eq!(parked_http_handlers(dump), 4);
    }
}
