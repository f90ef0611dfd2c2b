//! The real peers, built from the workspace's `peers/` Go modules into `target/peers/`.
//!
//! [`require`] builds them on first use: one build at a time (a lock file in
//! `target/peers/`, so parallel test binaries wait for each other), skipped when a stamp of
//! the Go sources and the Go version says the binaries are up to date. Go fetches the
//! modules from its module proxy; its caches make a rebuild after `cargo clean` quick.
//!
//! Where Go is missing, [`require`] prints why and returns `None`, and the test skips; with
//! `CI=true` it panics instead, so CI never passes without the real peers.
//!
//! `DISCOVERABLE_TEST_CONSUL=/path/to/consul` (and `DISCOVERABLE_TEST_FABIO`) run the suite
//! against another build instead of the one from `peers/`.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// Paths of the built peers.
#[derive(Debug, Clone)]
pub struct Peers {
    /// `consul` (v1.14.11).
    pub consul: PathBuf,
    /// `fabio`.
    pub fabio: PathBuf,
    /// The seed's Go recipe (`peers/seed`): registers before listening, never deregisters on
    /// SIGTERM.
    pub seed: PathBuf,
}

/// Consul's version, as the suite reports it.
pub const CONSUL_VERSION: &str = "v1.14.11";
/// Fabio's version, as the suite reports it.
pub const FABIO_VERSION: &str = "v1.7.2";

/// Whether this run must not skip (`CI=true`).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips the calling test with `why` (returns `None`), or panics with it under `CI=true`.
pub fn skip<T>(test: &str, why: &str) -> Option<T> {
    if strict() {
        panic!("{test}: {why} (CI=true: tests against the real peers must not skip)");
    }
    println!("{test}: skipped: {why}");
    None
}

/// The built peers, building them first if needed; `None` (after printing why) where Go is
/// missing. `test` names the caller in the message.
pub fn require(test: &str) -> Option<Peers> {
    static BUILT: OnceLock<Result<Peers, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(peers) => Some(peers.clone()),
        Err(why) if why.starts_with(NO_GO) => skip(test, why),
        Err(why) => panic!("{test}: building the real peers failed: {why}"),
    }
}

const NO_GO: &str = "Go is not installed";

/// Prints `line` on the process's stderr, past the test harness's output capture: a build of
/// several minutes must be visible while it runs, also in a passing test.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf()
}

fn out_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace().join(t)
            }
        })
        .unwrap_or_else(|| workspace().join("target"))
        .join("peers")
}

fn go(dir: &Path) -> Command {
    let mut cmd = Command::new("go");
    // Never download another toolchain; the go line of each module fits this machine's Go.
    // No VCS stamp: the binaries do not depend on the state of this checkout.
    let flags = std::env::var("GOFLAGS").unwrap_or_default();
    cmd.current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", format!("{flags} -buildvcs=false").trim());
    cmd
}

/// Binaries named by `DISCOVERABLE_TEST_CONSUL` / `DISCOVERABLE_TEST_FABIO` replace the built
/// ones, to run the suite against another Consul or Fabio.
fn overridden(mut peers: Peers) -> Result<Peers, String> {
    for (var, path) in [
        ("DISCOVERABLE_TEST_CONSUL", &mut peers.consul),
        ("DISCOVERABLE_TEST_FABIO", &mut peers.fabio),
    ] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(format!("{var}={}: no such file", p.display()));
            }
            say(&format!("testkit: {var}: using {}", p.display()));
            *path = p;
        }
    }
    Ok(peers)
}

fn build() -> Result<Peers, String> {
    build_from_source().and_then(overridden)
}

fn build_from_source() -> Result<Peers, String> {
    let version = match go(&workspace()).arg("version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => {
            return Err(format!(
                "{NO_GO} (or does not run): `go version` says {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(e) => {
            return Err(format!(
                "{NO_GO} (`go`: {e}); install Go 1.26 to run this test"
            ));
        }
    };
    let src = workspace().join("peers");
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let peers = Peers {
        consul: out.join("consul"),
        fabio: out.join("fabio"),
        seed: out.join("seed"),
    };
    let lock = File::create(out.join(".lock")).map_err(|e| format!("lock file: {e}"))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", out.display()))?;

    let stamp = stamp(&src, &version)?;
    let stamp_file = out.join("stamp");
    let fresh = std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
        && [&peers.consul, &peers.fabio, &peers.seed]
            .iter()
            .all(|p| p.exists());
    if !fresh {
        let steps: [(&str, &Path, &[&str], &Path); 3] = [
            (
                "Consul v1.14.11 (first build: a few minutes)",
                &src,
                &["github.com/hashicorp/consul"],
                &peers.consul,
            ),
            ("the seed's Go recipe", &src, &["./seed"], &peers.seed),
            (
                "Fabio",
                &src.join("fabio"),
                &["github.com/fabiolb/fabio"],
                &peers.fabio,
            ),
        ];
        for (what, dir, args, binary) in steps {
            say(&format!(
                "testkit: building {what} from {} into {}",
                dir.display(),
                binary.display()
            ));
            let started = Instant::now();
            let status = go(dir)
                .arg("build")
                .arg("-o")
                .arg(binary)
                .args(args)
                .status()
                .map_err(|e| format!("go build: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "`go build {}` in {} failed",
                    args.join(" "),
                    dir.display()
                ));
            }
            say(&format!(
                "testkit: built {what} in {:.1?}",
                started.elapsed()
            ));
        }
        std::fs::write(&stamp_file, &stamp).map_err(|e| format!("write stamp: {e}"))?;
    }
    Ok(peers)
}

/// A hash of everything the build reads from this workspace, and the Go version.
fn stamp(src: &Path, go_version: &str) -> Result<String, String> {
    let mut hasher = DefaultHasher::new();
    go_version.hash(&mut hasher);
    for file in [
        "go.mod",
        "go.sum",
        "seed/main.go",
        "fabio/go.mod",
        "fabio/go.sum",
    ] {
        let bytes = std::fs::read(src.join(file)).map_err(|e| format!("read peers/{file}: {e}"))?;
        file.hash(&mut hasher);
        bytes.hash(&mut hasher);
    }
    Ok(format!("{:016x}\n", hasher.finish()))
}
