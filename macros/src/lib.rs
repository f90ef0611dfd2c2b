//! The `#[discoverable]` attribute. Use it through the `discoverable` crate, which re-exports
//! it next to the runtime the generated code calls; the examples below are compiled against
//! it (a dev-dependency of this crate).
//!
//! The attribute runs in three steps, one file each (as thiserror-impl and serde_derive do):
//! `args` parses the arguments, `validate` applies the shared metadata rules of
//! `discoverable_rules`, `expand` generates the code (with `body` rewriting the serve calls).
//! Errors from every step are collected and reported together.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

use proc_macro::TokenStream;

mod args;
mod body;
mod errors;
mod expand;
#[cfg(test)]
mod proptests;
mod validate;

/// Makes the axum (or, with `grpc`, tonic) service that an async function serves
/// discoverable through HashiCorp Consul: a health route, registration once the listener is
/// bound, deregistration and a graceful drain on SIGTERM or Ctrl-C.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// #[discoverable::discoverable(name = "cool_app", prefix = "/oops")]
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let app = Router::new().route("/", get(|| async { "home page" }));
///     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
///     axum::serve(listener, app).await
/// }
/// ```
///
/// # Where it goes
///
/// On the `async fn` whose body serves the app: `main`, or any other async fn (a program with
/// several services gives each its own function and attribute). With `#[tokio::main]`, put
/// `#[discoverable]` **above** it: attributes expand from the top, and `#[tokio::main]` turns
/// the `async fn` into a plain `fn`, which `#[discoverable]` refuses. Attributes below
/// `#[discoverable]` are kept on the function.
///
/// # What it generates
///
/// At the top of the body, the service description:
///
/// ```
/// # fn demo() {
/// let service = || match ::discoverable::Service::builder("cool_app").prefix("/oops").build() {
///     Ok(service) => service,
///     Err(error) => {
///         eprintln!("error: {error}");
///         std::process::exit(2)
///     }
/// };
/// # let _ = service;
/// # }
/// ```
///
/// (a closure in a local that your code cannot name; it captures nothing, so it is `Copy` and
/// every spawned task or `async move` block gets its own). In `main`, the rest of the body
/// runs as an `async move` block whose outcome passes through
/// `::discoverable::__private::exit_on_start_failure` before `main` returns it. Then every
/// serve call in the body becomes
/// `::discoverable::__private::serve(service(), listener, app)`. Which calls those are, in two
/// sentences: every call of `serve` with two arguments, written `axum::serve`,
/// `discoverable::serve` (with or without a leading `::`) or by a name the body imports with
/// `use axum::serve;`, anywhere in the body except inside nested items (`fn`, `impl`, `mod`),
/// including inside closures, async blocks and the arguments of macros such as
/// `tokio::select!`. A `serve` imported outside the function cannot be seen, so calling it is
/// an error pointing at the call: write `axum::serve(listener, app)` there.
///
/// Each serve call builds the service when it is made, so it reads the environment then
/// (after a `dotenvy::dotenv()` at the top of `main`, say), and serves an instance of its own,
/// with its own ID. It returns the same kind of future as `axum::serve`, so
/// `.with_graceful_shutdown(signal).await`, `into_make_service_with_connect_info` and the rest
/// keep working. That call serves the app with the health route added, registers with Consul
/// once the listener is bound, and deregisters on SIGTERM / Ctrl-C before the server drains.
///
/// Start-up that cannot go on ends the process with one line on stderr and exit code 2, as a
/// command-line parser does with a bad flag: a `DISCOVERABLE_*` or `CONSUL_*` variable whose
/// value cannot be used (`error: invalid setting <VARIABLE>: ...`, when the serve call is
/// made), and, in `main`, `fail_fast` with no agent to register with (`error: registration
/// failed and fail_fast is set: ...`, instead of the `Debug` form of the error `main` would
/// return).
///
/// A body without a serve call is an error, and so is `discoverable::serve(service, listener,
/// app)`: the attribute already describes the service. Serving is over TCP only (Consul's check
/// and the routers reach the instance at an address and port): a `tokio::net::UnixListener` is
/// refused with an error at the listener. A route the body adds on the health path,
/// `.route("/health", ..)`, is an error too: the health route is answered before the app, so
/// that route would never be reached (choose another path, or move the health route with
/// `health = "/other"`); a route added where the attribute cannot see it, outside the
/// function, is shadowed without a word.
///
/// # Arguments
///
/// Every argument is checked at compile time by the same rules `Service::builder` applies at
/// run time (crate `discoverable_rules`); an error points at the offending token and says what
/// is allowed, and all errors are reported at once.
///
/// | Argument | Meaning | Default |
/// |---|---|---|
/// | `name = "cool_app"` | **Required.** The service name clients look up: 1 to 63 letters, digits, `-` and `_`. Consul accepts `_`, but DNS lookups (`cool_app.service.consul`) cannot find such a name; use `-` if you need DNS. | — |
/// | `prefix = "/oops"` | The route Fabio gives the service, as the tag `urlprefix-/oops`: a path starting with `/`, or a host and path (`example.com/api`, `*.example.com:8080/api`), no whitespace. | no route tag |
/// | `strip = true` | Adds Fabio's `strip=` option, so the service sees paths without the prefix. Needs `prefix`. | `false` |
/// | `tags = ["primary", "v2"]` | More Consul tags, non-empty strings. | none |
/// | `meta(version = "1.2.0", "build-id" = "abc")` | Consul service metadata. Keys are identifiers (`r#type` for a keyword) or strings (for keys with `-`): at most 128 of letters, digits, `-`, `_`, not starting with `consul-`, each given once; values at most 512 characters; at most 64 pairs. | none |
/// | `health = "/health"` | Path of the health route the runtime adds and Consul's HTTP check calls. Starts with `/`. | `"/health"` |
/// | `interval = "10s"` | Time between Consul's HTTP checks; at least `"1s"`. | `"10s"`: the common default of Consul's examples and Spring Cloud Consul. Routing does not wait for the first check, because the runtime probes its health route itself and registers the check as passing, so the interval only bounds how soon Consul notices a hung process. |
/// | `timeout = "5s"` | How long one check may take; shorter than the interval. | `"5s"`: half the interval, so a slow answer fails before the next check is due. |
/// | `deregister_after = "1m"` | How long a check may stay critical before Consul removes the instance (`DeregisterCriticalServiceAfter`, the backstop for a crash); at least `"1m"`. | `"1m"`: Consul's minimum, so a crashed instance leaves the catalog as soon as Consul allows. |
/// | `ttl = "15s"` | Use a TTL check, kept alive by the runtime, instead of the HTTP check. Excludes `health`, `interval` and `timeout`. | HTTP check |
/// | `checks = [db::ready, cache_ready]` | Health indicators: paths of async fns (any `Fn() -> impl Future` that is `Send + Sync + 'static`) whose output is `bool` or `discoverable::Health`; each is named after its last path segment and feeds the health route's answer (up 200, degraded 429, down 503). | none |
/// | `fail_fast = true` | Make `serve` fail when the service cannot be registered, instead of serving while registration retries in the background. | `false` |
/// | `grpc` | The function serves tonic services: its serve call takes `discoverable::grpc::Routes` and runs `discoverable::grpc::serve` (a `GRPC` check, the standard gRPC health service, one Fabio route per service). Excludes `health`, `strip` and `ttl`. Needs the `grpc` feature. | HTTP |
/// | `crate = "::my_discoverable"` | Path of the `discoverable` crate, for a renamed or re-exported dependency. | `"::discoverable"` |
///
/// Durations are strings such as `"500ms"`, `"10s"`, `"1m30s"`, parsed at compile time; zero is
/// refused. Deployment settings (how to reach Consul, the advertised address, ...) come from the
/// environment at run time, not from the attribute.
///
/// A fuller example:
///
/// ```no_run
/// async fn database_ready() -> bool { true }
///
/// #[discoverable::discoverable(
///     name = "orders",
///     prefix = "/orders",
///     strip = true,
///     tags = ["v2"],
///     meta(version = "2.1.0", "build-id" = "4f2a"),
///     interval = "5s",
///     timeout = "2s",
///     checks = [database_ready],
/// )]
/// async fn serve_orders(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
///     axum::serve(listener, app)
///         .with_graceful_shutdown(async { /* your own shutdown signal */ })
///         .await
/// }
/// ```
///
/// # Seeing the expansion
///
/// Set `DISCOVERABLE_MACROS_DEBUG` (to anything) while compiling to print the generated code
/// to stderr, e.g. `DISCOVERABLE_MACROS_DEBUG=1 cargo check`. Cargo does not rerun a macro for
/// a changed environment alone; touch the file or run `cargo clean -p <your crate>` first.
#[proc_macro_attribute]
pub fn discoverable(args: TokenStream, item: TokenStream) -> TokenStream {
    let output = attribute(args.into(), item.into());
    if std::env::var_os("DISCOVERABLE_MACROS_DEBUG").is_some() {
        eprintln!("#[discoverable] expands to:\n{output}\n");
    }
    output.into()
}

/// Parse, validate, expand. On errors the function is still emitted (with what was valid, or
/// unchanged when it is not an `async fn`) next to them, so the rest of the user's diagnostics
/// and their IDE keep working (tokio-macros `token_stream_with_error`).
fn attribute(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut errors = errors::Errors::default();
    let args = args::parse(args, &mut errors);
    let service = validate::validate(args, &mut errors);
    let mut output = expand::expand(item, &service, &mut errors);
    output.extend(errors.to_compile_error());
    output
}
