//! Test support of discoverable: the real peers the integration tests run against.
//!
//! - [`peers`]: builds Consul v1.14.11, Fabio and the seed's Go recipe from the workspace's
//!   `peers/` Go modules into `target/peers/`, once, under a lock, cached; skips (or, with
//!   `CI=true`, fails) where Go is missing.
//! - [`Consul`]: a real `consul agent` on loopback, every port picked at run time, optionally
//!   with ACLs (default deny, a management token); kill, restart with or without its state,
//!   freeze and thaw it.
//! - [`Fabio`]: a real Fabio in front of an agent (on loopback, or inside a network namespace
//!   with [`FabioOptions`]); its routing table.
//! - `Agent` (feature `devagent`): the dev agent or a real Consul behind one type, for tests
//!   that run against both.
//! - [`pki`]: test certificates made at run time (a CA, server and client certificates).
//! - [`browser`]: headless Chromium (screenshots, and ChromeDriver for WebDriver tests);
//!   skips (or, with `CI=true`, fails) where it is missing.
//! - [`FaultProxy`] (feature `proxy`, on by default): a loopback proxy in front of an agent
//!   that answers 500s, answers slowly or with garbage, or refuses connections on demand.
//!
//! Everything listens on 127.0.0.1 (or, for the cluster tests, on the addresses of network
//! namespaces the test made) and every child process is killed when its handle drops
//! (and, through a parent-death signal, when the test process dies).

#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

#[cfg(feature = "devagent")]
mod agent;
pub mod browser;
mod consul;
mod fabio;
pub mod http;
pub mod peers;
pub mod pki;
mod process;
#[cfg(feature = "proxy")]
pub mod proxy;
mod wait;

#[cfg(feature = "devagent")]
pub use agent::{Agent, AgentKind};
pub use consul::{Consul, ConsulOptions, Https};
pub use fabio::{Fabio, FabioOptions, Route};
pub use process::{Peer, free_port, wait_until};
#[cfg(feature = "proxy")]
pub use proxy::{FaultProxy, Garbage};
pub use wait::{Condition, until, until_blocking};

/// Runs each named `async fn name(kind: AgentKind)` of the calling module twice, as
/// `dev_agent::name` against the dev agent and `real_consul::name` against a real Consul
/// (so `cargo test real_consul` selects the second set). Needs tokio's `macros` feature.
///
/// The tests run on a multi-threaded runtime (two workers), which [`Agent::go_down`] and
/// [`Agent::come_back`] need. Names after `current_thread:` run on a current-thread runtime
/// instead, where every task runs on the test's thread (so a thread-local `tracing`
/// subscriber sees the whole test); those must not call `go_down` or `come_back` on a real
/// Consul.
///
/// ```ignore
/// async fn registers(kind: AgentKind) { /* ... */ }
/// async fn logs_once(kind: AgentKind) { /* ... */ }
/// discoverable_testkit::against_both_agents!(registers; current_thread: logs_once);
/// ```
#[cfg(feature = "devagent")]
#[macro_export]
macro_rules! against_both_agents {
    (@tests $kind:ident [$($multi:ident),*] [$($current:ident),*]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $multi() {
                super::$multi($crate::AgentKind::$kind).await
            }
        )*
        $(
            #[::tokio::test(flavor = "current_thread")]
            async fn $current() {
                super::$current($crate::AgentKind::$kind).await
            }
        )*
    };
    (@mods [$($multi:ident),*] [$($current:ident),*]) => {
        mod dev_agent {
            $crate::against_both_agents!(@tests Dev [$($multi),*] [$($current),*]);
        }
        mod real_consul {
            $crate::against_both_agents!(@tests RealConsul [$($multi),*] [$($current),*]);
        }
    };
    (current_thread: $($current:ident),* $(,)?) => {
        $crate::against_both_agents!(@mods [] [$($current),*]);
    };
    ($($multi:ident),+ ; current_thread: $($current:ident),* $(,)?) => {
        $crate::against_both_agents!(@mods [$($multi),+] [$($current),*]);
    };
    ($($multi:ident),* $(,)?) => {
        $crate::against_both_agents!(@mods [$($multi),*] []);
    };
}
