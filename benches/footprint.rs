//! What every service that uses `discoverable` pays at build time and in its binary: five
//! scratch crates generated under `target/footprint/`, each its own workspace with its own
//! target directory (`target/footprint/<variant>/target`), sharing the machine's registry
//! cache:
//!
//! - `plain-axum`: `cool_app` on axum 0.8 (default features) and tokio (`macros`,
//!   `rt-multi-thread`, `net`): one route, `TcpListener::bind` (`BIND_ADDR`, by default
//!   `127.0.0.1:0`), `axum::serve`;
//! - `discoverable-axum`: the same app and dependencies with
//!   `#[discoverable::discoverable(name = "cool_app", prefix = "/oops")]` above
//!   `#[tokio::main]`, depending on this workspace's `discoverable` (default features);
//! - `plain-tonic`: a `helloworld.Greeter` with one unary method (messages declared by hand
//!   with prost's derive, no `protoc`) served by `tonic::transport::Server` (tonic 0.14 with
//!   its default features, prost, tonic-prost, the same tokio);
//! - `discoverable-tonic`: the same greeter and dependencies served by `discoverable::serve`
//!   under the attribute with `grpc`, depending on `discoverable` with the `grpc` feature;
//! - `foundation-axum`, the reference: `cool_app` again, beside code that uses what the
//!   runtime is built on, each crate with the features the runtime turns on (reqwest with
//!   `json` and `query` and no TLS, serde with `derive`, serde_json, uuid, tracing,
//!   thiserror, tokio's `signal`): one JSON lookup over HTTP, an ID, a log line, an error
//!   type. What it adds to `plain-axum` is what any service pays for those crates; what
//!   `discoverable-axum` adds beyond it is this project's own part.
//!
//! The plain crates pin the versions of axum, tokio, tonic, prost and tonic-prost that this
//! workspace's `Cargo.lock` resolves, and every scratch crate starts from a copy of that lock
//! file, so the crates they share resolve to the same versions. Each is fetched first
//! (`cargo fetch`, not timed); everything after that runs `--offline`, and the bench opens no
//! connection of its own.
//!
//! Figures, `discoverable-*` against `plain-*` (`grpc_*` for the tonic pair):
//!
//! - crates: the distinct packages `cargo tree -e normal,build` lists, the scratch crate
//!   itself excluded (`*_path_crates_count`: how many of them are this workspace's);
//! - crates whose build compiles C: those that build-depend on `cc` or `cmake` (read from
//!   `cargo tree -e normal,build -i cc` and `-i cmake`), or are a known C-building sys crate;
//!   `aws-lc-rs` counts through `aws-lc-sys`, not by itself;
//! - clean build time, debug and release: the whole `cargo build` process on a fresh target
//!   directory, the two crates of a pair interleaved, `FOOTPRINT_RUNS` times (default 3), the
//!   median in seconds and the ratio of the medians; cargo's default number of jobs;
//! - release binary size after `strip` (of a copy), in KiB.
//!
//! Progress goes to stderr; the table to stdout and `target/bench-results/footprint.json`.
//! On a 2-core AMD EPYC shared with other builds, `FOOTPRINT_RUNS=1` took 6 minutes once the
//! bench itself was compiled (10 clean builds), so the default of 3 takes about 20. A crate in the tree that
//! compiles C (aws-lc-sys, say) adds minutes to each `discoverable-*` build.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::{Report, median};

/// Clean builds of each crate and profile when `FOOTPRINT_RUNS` is not set.
const DEFAULT_RUNS: usize = 3;

/// Sys crates whose build compiles C, counted when present even if their build dependency
/// on `cc` or `cmake` were hidden behind another crate.
const C_BUILDING: &[&str] = &[
    "aws-lc-sys",
    "aws-lc-fips-sys",
    "ring",
    "openssl-sys",
    "libz-sys",
    "zstd-sys",
    "bzip2-sys",
    "lzma-sys",
    "libsqlite3-sys",
    "libgit2-sys",
];

const TOKIO_FEATURES: &str = r#"features = ["macros", "rt-multi-thread", "net"]"#;

/// `cool_app`; `{attribute}` is replaced by the attribute line or nothing.
const AXUM_APP: &str = r#"use axum::{Router, routing::get};

{attribute}#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/", get(|| async { "home page" }));
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
"#;

/// `cool_app` beside one use of each crate the runtime is built on.
const FOUNDATION_APP: &str = r#"use axum::{Router, routing::get};

#[derive(Debug, thiserror::Error)]
#[error("lookup failed: {0}")]
struct Failed(#[from] reqwest::Error);

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "ID")]
    id: String,
}

async fn lookup(url: &str) -> Result<Vec<Entry>, Failed> {
    let client = reqwest::Client::new();
    let entries = client.get(url).query(&[("passing", "1")]).send().await?.json().await?;
    Ok(entries)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let id = uuid::Uuid::from_u128(std::process::id().into());
    tracing::info!(%id, "starting");
    if let Ok(url) = std::env::var("LOOKUP_URL") {
        match lookup(&url).await {
            Ok(entries) => println!("{}", entries.len() + entries.iter().map(|e| e.id.len()).sum::<usize>()),
            Err(e) => eprintln!("{e}"),
        }
        let _ = serde_json::to_string(&serde_json::json!({ "id": id.to_string() }));
    }
    let app = Router::new().route("/", get(|| async { "home page" }));
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
"#;

/// `helloworld.Greeter` with `SayHello`, as `tonic-prost-build` would generate it.
const GREETER: &str = r#"use std::convert::Infallible;

use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::server::NamedService;
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

#[derive(Clone)]
pub struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "helloworld.Greeter";
}

impl Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match request.uri().path() {
            "/helloworld.Greeter/SayHello" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(SayHello, request).await)
            }),
            _ => Box::pin(async { Ok(tonic::Status::unimplemented("no such method").into_http()) }),
        }
    }
}

struct SayHello;

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<tonic::Response<HelloReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let message = format!("hello {}", request.get_ref().name);
        Box::pin(async move { Ok(tonic::Response::new(HelloReply { message })) })
    }
}
"#;

const PLAIN_TONIC_MAIN: &str = r#"
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tonic::transport::Server::builder()
        .add_service(Greeter)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
"#;

const DISCOVERABLE_TONIC_MAIN: &str = r#"
#[discoverable::discoverable(name = "greeter", grpc)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    discoverable::serve(listener, discoverable::grpc::Routes::new(Greeter)).await
}
"#;

/// One scratch crate: its package and binary name, and its directory.
struct Variant {
    name: &'static str,
    dir: PathBuf,
}

impl Variant {
    fn target(&self) -> PathBuf {
        self.dir.join("target")
    }

    /// `cargo <args>` in this crate, with its own target directory.
    fn cargo(&self, args: &[&str]) -> Command {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(args)
            .arg("--manifest-path")
            .arg(self.dir.join("Cargo.toml"))
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", self.target())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cargo <args>` and returns its stdout; panics with its stderr when it fails.
    fn cargo_stdout(&self, args: &[&str]) -> String {
        let out = output(
            self.cargo(args),
            &format!("{}: cargo {}", self.name, args.join(" ")),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `Cargo.toml`, `src/main.rs` and a copy of the workspace's lock file.
    fn write(&self, dependencies: &str, main: &str, lock: &str) {
        std::fs::create_dir_all(self.dir.join("src")).expect("create the scratch crate");
        let manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\n{dependencies}\n\
             # A workspace of its own, apart from the one it is generated in.\n[workspace]\n",
            self.name
        );
        std::fs::write(self.dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
        std::fs::write(self.dir.join("src/main.rs"), main).expect("write src/main.rs");
        std::fs::write(self.dir.join("Cargo.lock"), lock).expect("write Cargo.lock");
    }

    /// A clean build: a fresh target directory, the whole `cargo build` timed, in seconds.
    fn clean_build(&self, release: bool) -> f64 {
        let profile = if release { "release" } else { "debug" };
        match std::fs::remove_dir_all(self.target()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("remove {}: {e}", self.target().display())
            }
            _ => {}
        }
        let mut args = vec!["build", "--offline"];
        if release {
            args.push("--release");
        }
        let mut cmd = self.cargo(&args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let out = cmd.output().expect("run cargo build");
        let seconds = start.elapsed().as_secs_f64();
        if !out.status.success() {
            panic!(
                "{}: cargo build ({profile}) failed:\n{}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let binary = self.target().join(profile).join(self.name);
        assert!(binary.is_file(), "no {} after the build", binary.display());
        eprintln!("footprint: {} {profile}: {seconds:.1} s", self.name);
        seconds
    }

    /// The release binary's size after `strip`, in KiB (a stripped copy beside the crate).
    fn stripped_kib(&self) -> f64 {
        let binary = self.target().join("release").join(self.name);
        let copy = self.dir.join(format!("{}.stripped", self.name));
        std::fs::copy(&binary, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", binary.display()));
        let mut strip = Command::new("strip");
        strip.arg(&copy);
        output(strip, &format!("strip {}", copy.display()));
        let bytes = std::fs::metadata(&copy).expect("stripped binary").len();
        bytes as f64 / 1024.0
    }
}

/// Runs `cmd`, panicking with its stderr when it fails to start or exits unsuccessfully.
fn output(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What `cargo tree` says about one scratch crate.
struct Tree {
    /// `name vX.Y.Z` of every package but the crate itself.
    crates: BTreeSet<String>,
    /// Those that are this workspace's path crates.
    path_crates: BTreeSet<String>,
    /// Those whose build compiles C.
    c_building: BTreeSet<String>,
}

impl Tree {
    fn read(variant: &Variant, workspace: &Path) -> Tree {
        let listing = variant.cargo_stdout(&[
            "tree",
            "--offline",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ]);
        let local = format!("({}", workspace.display());
        let mut crates = BTreeSet::new();
        let mut path_crates = BTreeSet::new();
        for line in listing
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('['))
        {
            let Some(id) = package_id(line) else { continue };
            if id.split(' ').next() == Some(variant.name) {
                continue;
            }
            if line.contains(&local) {
                path_crates.insert(id.clone());
            }
            crates.insert(id);
        }
        let mut c_building: BTreeSet<String> = crates
            .iter()
            .filter(|id| C_BUILDING.contains(&id.split(' ').next().unwrap_or("")))
            .cloned()
            .collect();
        for compiler in ["cc", "cmake"] {
            for id in crates
                .iter()
                .filter(|id| id.split(' ').next() == Some(compiler))
            {
                // `cc v1.2.3` as the package spec `cc@1.2.3`.
                let spec = id.replacen(" v", "@", 1);
                let inverted = variant.cargo_stdout(&[
                    "tree",
                    "--offline",
                    "-e",
                    "normal,build",
                    "--charset",
                    "ascii",
                    "--depth",
                    "1",
                    "-i",
                    &spec,
                ]);
                c_building.extend(build_dependents(&inverted));
            }
        }
        Tree {
            crates,
            path_crates,
            c_building,
        }
    }
}

/// `name vX.Y.Z` from a line of `cargo tree --prefix none`.
fn package_id(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let version = words.next().filter(|v| v.starts_with('v'))?;
    Some(format!("{name} {version}"))
}

/// The packages an inverted `cargo tree --depth 1 --charset ascii` lists under its top-level
/// `[build-dependencies]` heading: those that build-depend on the inverted package.
fn build_dependents(inverted: &str) -> Vec<String> {
    let mut in_build = false;
    let mut found = Vec::new();
    for line in inverted.lines().skip(1) {
        if line.starts_with('[') {
            in_build = line == "[build-dependencies]";
        } else if let Some(rest) = line.strip_prefix("|-- ").or(line.strip_prefix("`-- ")) {
            if in_build {
                found.extend(package_id(rest));
            }
        }
    }
    found
}

/// The version of registry package `name` that `lock` resolves within `series` (`"0.8."`).
fn locked(lock: &str, name: &str, series: &str) -> String {
    let mut versions: Vec<Vec<u64>> = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .trim_start()
                    .strip_prefix('=')
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
        };
        if field("name").as_deref() == Some(name)
            && field("source").is_some_and(|s| s.starts_with("registry+"))
        {
            let version = field("version").unwrap_or_default();
            if version.starts_with(series) {
                versions.push(version.split('.').filter_map(|n| n.parse().ok()).collect());
            }
        }
    }
    let newest = versions
        .into_iter()
        .max()
        .unwrap_or_else(|| panic!("Cargo.lock resolves no {name} {series}x"));
    newest
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The figures of one pair: the plain crate and the same with `discoverable`, and the
/// reference built beside them when there is one.
struct Pair {
    plain: Variant,
    discoverable: Variant,
    plain_tree: Tree,
    discoverable_tree: Tree,
    debug_s: [Vec<f64>; 2],
    release_s: [Vec<f64>; 2],
    reference: Option<Reference>,
}

/// The `foundation-axum` crate and its figures.
struct Reference {
    variant: Variant,
    tree: Tree,
    debug_s: Vec<f64>,
    release_s: Vec<f64>,
}

impl Pair {
    fn with_reference(mut self, variant: Variant, workspace: &Path) -> Pair {
        eprintln!("footprint: {}: cargo fetch and tree", variant.name);
        variant.cargo_stdout(&["fetch", "--quiet"]);
        let tree = Tree::read(&variant, workspace);
        self.reference = Some(Reference {
            variant,
            tree,
            debug_s: Vec::new(),
            release_s: Vec::new(),
        });
        self
    }

    fn new(plain: Variant, discoverable: Variant, workspace: &Path) -> Pair {
        for variant in [&plain, &discoverable] {
            eprintln!("footprint: {}: cargo fetch", variant.name);
            variant.cargo_stdout(&["fetch", "--quiet"]);
        }
        eprintln!(
            "footprint: {} / {}: cargo tree",
            plain.name, discoverable.name
        );
        let plain_tree = Tree::read(&plain, workspace);
        let discoverable_tree = Tree::read(&discoverable, workspace);
        Pair {
            plain,
            discoverable,
            plain_tree,
            discoverable_tree,
            debug_s: [Vec::new(), Vec::new()],
            release_s: [Vec::new(), Vec::new()],
            reference: None,
        }
    }

    /// One clean debug build of each (the reference last), then one clean release build of
    /// each.
    fn build_round(&mut self) {
        for (i, variant) in [&self.plain, &self.discoverable].into_iter().enumerate() {
            self.debug_s[i].push(variant.clean_build(false));
        }
        if let Some(reference) = &mut self.reference {
            reference.debug_s.push(reference.variant.clean_build(false));
        }
        for (i, variant) in [&self.plain, &self.discoverable].into_iter().enumerate() {
            self.release_s[i].push(variant.clean_build(true));
        }
        if let Some(reference) = &mut self.reference {
            reference
                .release_s
                .push(reference.variant.clean_build(true));
        }
    }

    /// The reference's figures against the plain crate, and the `discoverable` crate's
    /// beyond the reference.
    fn report_reference(&self, report: &mut Report) {
        let Some(reference) = &self.reference else {
            return;
        };
        let name = reference.variant.name.replace('-', "_");
        let count = reference.tree.crates.len() as f64;
        let plain_count = self.plain_tree.crates.len() as f64;
        let ours_count = self.discoverable_tree.crates.len() as f64;
        report.add(&format!("{name}_crates_count"), count, "", "");
        report.add(
            "foundation_crates_added_count",
            count - plain_count,
            "",
            "what the crates the runtime is built on add to plain-axum",
        );
        report.add(
            "crates_added_beyond_foundation_count",
            ours_count - count,
            "",
            "discoverable-axum over foundation-axum",
        );
        let debug = median(&reference.debug_s);
        let release = median(&reference.release_s);
        report.add(&format!("{name}_clean_debug_s"), debug, "", "median");
        report.add(&format!("{name}_clean_release_s"), release, "", "median");
        report.add(
            "foundation_clean_debug_build_ratio",
            debug / median(&self.debug_s[0]),
            "",
            "foundation-axum over plain-axum",
        );
        report.add(
            "foundation_clean_release_build_ratio",
            release / median(&self.release_s[0]),
            "",
            "foundation-axum over plain-axum",
        );
        let kib = reference.variant.stripped_kib();
        report.add(&format!("{name}_release_kib"), kib, "", "stripped");
        report.add(
            "foundation_release_binary_added_kib",
            kib - self.plain.stripped_kib(),
            "",
            "foundation-axum over plain-axum",
        );
        report.add(
            "release_binary_added_beyond_foundation_kib",
            self.discoverable.stripped_kib() - kib,
            "",
            "discoverable-axum over foundation-axum",
        );
        let only_ours: Vec<String> = self
            .discoverable_tree
            .crates
            .difference(&reference.tree.crates)
            .filter(|id| !self.plain_tree.crates.contains(*id))
            .cloned()
            .collect();
        report.label("crates_beyond_foundation", only_ours.join(", "));
    }

    /// Adds the pair's figures; `prefix` is `""` or `"grpc_"`, `stem` names the crates' stack
    /// (`axum`, `tonic`), `crates_target` bounds the crates added.
    fn report(&self, report: &mut Report, prefix: &str, stem: &str, crates_target: usize) {
        let plain = self.plain.name.replace('-', "_");
        let ours = format!("discoverable_{stem}");
        let versus = format!("{} over {}", self.discoverable.name, self.plain.name);

        let plain_count = self.plain_tree.crates.len() as f64;
        let ours_count = self.discoverable_tree.crates.len() as f64;
        report.add(&format!("{plain}_crates_count"), plain_count, "", "");
        report.add(&format!("{ours}_crates_count"), ours_count, "", "");
        report.add(
            &format!("{ours}_path_crates_count"),
            self.discoverable_tree.path_crates.len() as f64,
            "",
            "of which this workspace's",
        );
        let added = ours_count - plain_count;
        report.add(
            &format!("{prefix}crates_added_count"),
            added,
            &format!("<= {crates_target}"),
            &verdict(added <= crates_target as f64, &versus),
        );
        let c_count = self.discoverable_tree.c_building.len() as f64;
        if prefix.is_empty() {
            report.add(
                "c_build_crates_count",
                c_count,
                "0",
                &verdict(c_count == 0.0, self.discoverable.name),
            );
        } else {
            report.add(
                &format!("{prefix}c_build_crates_count"),
                c_count,
                "",
                self.discoverable.name,
            );
        }

        let (plain_debug, ours_debug) = (median(&self.debug_s[0]), median(&self.debug_s[1]));
        report.add(&format!("{plain}_clean_debug_s"), plain_debug, "", "median");
        report.add(&format!("{ours}_clean_debug_s"), ours_debug, "", "median");
        let debug_ratio = ours_debug / plain_debug;
        if prefix.is_empty() {
            report.add(
                "clean_debug_build_ratio",
                debug_ratio,
                "<= 1.5",
                &verdict(debug_ratio <= 1.5, &versus),
            );
        } else {
            report.add(
                &format!("{prefix}clean_debug_build_ratio"),
                debug_ratio,
                "",
                &versus,
            );
        }
        let (plain_release, ours_release) =
            (median(&self.release_s[0]), median(&self.release_s[1]));
        report.add(
            &format!("{plain}_clean_release_s"),
            plain_release,
            "",
            "median",
        );
        report.add(
            &format!("{ours}_clean_release_s"),
            ours_release,
            "",
            "median",
        );
        report.add(
            &format!("{prefix}clean_release_build_ratio"),
            ours_release / plain_release,
            "",
            &versus,
        );

        let plain_kib = self.plain.stripped_kib();
        let ours_kib = self.discoverable.stripped_kib();
        report.add(&format!("{plain}_release_kib"), plain_kib, "", "stripped");
        report.add(&format!("{ours}_release_kib"), ours_kib, "", "stripped");
        let added_kib = ours_kib - plain_kib;
        if prefix.is_empty() {
            report.add(
                "release_binary_added_kib",
                added_kib,
                "<= 1536",
                &verdict(added_kib <= 1536.0, &versus),
            );
        } else {
            report.add(
                &format!("{prefix}release_binary_added_kib"),
                added_kib,
                "",
                &versus,
            );
        }

        let list = |set: &BTreeSet<String>| {
            if set.is_empty() {
                "none".to_owned()
            } else {
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        report.label(
            &format!("{prefix}c_build_crates"),
            list(&self.discoverable_tree.c_building),
        );
        report.label(
            &format!("{plain}_c_build_crates"),
            list(&self.plain_tree.c_building),
        );
        report.label(
            &format!("{ours}_path_crates"),
            list(&self.discoverable_tree.path_crates),
        );
        if self.debug_s[0].len() > 1 {
            let seconds = |s: &[f64]| {
                s.iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            for (profile, samples) in [("debug", &self.debug_s), ("release", &self.release_s)] {
                report.note(format!(
                    "{profile} builds, s: {} {}; {} {}",
                    self.plain.name,
                    seconds(&samples[0]),
                    self.discoverable.name,
                    seconds(&samples[1])
                ));
            }
        }
    }
}

/// `met` or `missed`, then what the figure compares.
fn verdict(met: bool, what: &str) -> String {
    format!("{}; {what}", if met { "met" } else { "missed" })
}

fn main() {
    let started = Instant::now();
    common::print_machine();
    let runs = match std::env::var("FOOTPRINT_RUNS") {
        Ok(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("FOOTPRINT_RUNS={n:?}: expected a positive number")),
        Err(_) => DEFAULT_RUNS,
    };
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("read Cargo.lock");
    let axum = locked(&lock, "axum", "0.8.");
    let tokio = locked(&lock, "tokio", "1.");
    let tonic = locked(&lock, "tonic", "0.14.");
    let tonic_prost = locked(&lock, "tonic-prost", "0.14.");
    let prost = locked(&lock, "prost", "0.14.");
    let discoverable = format!("discoverable = {{ path = {:?} }}", workspace.display());
    let discoverable_grpc = format!(
        "discoverable = {{ path = {:?}, features = [\"grpc\"] }}",
        workspace.display()
    );
    let axum_deps =
        format!("axum = \"={axum}\"\ntokio = {{ version = \"={tokio}\", {TOKIO_FEATURES} }}\n");
    let tonic_deps = format!(
        "tonic = \"={tonic}\"\ntonic-prost = \"={tonic_prost}\"\nprost = \"={prost}\"\n\
         tokio = {{ version = \"={tokio}\", {TOKIO_FEATURES} }}\n"
    );

    let foundation_deps = format!(
        "axum = \"={axum}\"\n\
         tokio = {{ version = \"={tokio}\", features = [\"macros\", \"rt-multi-thread\", \"net\", \"signal\"] }}\n\
         reqwest = {{ version = \"={}\", default-features = false, features = [\"json\", \"query\"] }}\n\
         serde = {{ version = \"={}\", features = [\"derive\"] }}\n\
         serde_json = \"={}\"\n\
         uuid = {{ version = \"={}\", default-features = false, features = [\"std\"] }}\n\
         tracing = {{ version = \"={}\", default-features = false, features = [\"std\"] }}\n\
         thiserror = \"={}\"\n",
        locked(&lock, "reqwest", "0.13."),
        locked(&lock, "serde", "1."),
        locked(&lock, "serde_json", "1."),
        locked(&lock, "uuid", "1."),
        locked(&lock, "tracing", "0.1."),
        locked(&lock, "thiserror", "2."),
    );

    let base = common::target_dir().join("footprint");
    let variant = |name| Variant {
        name,
        dir: base.join(name),
    };
    let (plain_axum, discoverable_axum) = (variant("plain-axum"), variant("discoverable-axum"));
    let (plain_tonic, discoverable_tonic) = (variant("plain-tonic"), variant("discoverable-tonic"));
    plain_axum.write(&axum_deps, &AXUM_APP.replace("{attribute}", ""), &lock);
    discoverable_axum.write(
        &format!("{discoverable}\n{axum_deps}"),
        &AXUM_APP.replace(
            "{attribute}",
            "#[discoverable::discoverable(name = \"cool_app\", prefix = \"/oops\")]\n",
        ),
        &lock,
    );
    plain_tonic.write(&tonic_deps, &format!("{GREETER}{PLAIN_TONIC_MAIN}"), &lock);
    discoverable_tonic.write(
        &format!("{discoverable_grpc}\n{tonic_deps}"),
        &format!("{GREETER}{DISCOVERABLE_TONIC_MAIN}"),
        &lock,
    );
    let foundation_axum = variant("foundation-axum");
    foundation_axum.write(&foundation_deps, FOUNDATION_APP, &lock);
    eprintln!("footprint: scratch crates in {}", base.display());

    let mut axum_pair = Pair::new(plain_axum, discoverable_axum, &workspace)
        .with_reference(foundation_axum, &workspace);
    let mut tonic_pair = Pair::new(plain_tonic, discoverable_tonic, &workspace);
    for run in 1..=runs {
        eprintln!("footprint: clean builds, run {run} of {runs}");
        axum_pair.build_round();
        tonic_pair.build_round();
    }

    let mut report = Report::new("footprint");
    axum_pair.report(&mut report, "", "axum", 45);
    axum_pair.report_reference(&mut report);
    tonic_pair.report(&mut report, "grpc_", "tonic", 30);
    report.add(
        "runs_count",
        runs as f64,
        "",
        "clean builds of each crate and profile",
    );
    report.label(
        "measured_against",
        format!(
            "axum {axum} + tokio {tokio} (plain-axum); tonic {tonic} + prost {prost} + \
             tonic-prost {tonic_prost} + tokio {tokio} (plain-tonic)"
        ),
    );
    report.note(format!(
        "crates as `cargo tree -e normal,build` lists them for the host; build times are whole \
         `cargo build` processes on a fresh target directory, median of {runs}, default jobs"
    ));
    report.note(format!(
        "the whole run took {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    ));
    report.finish();
}
