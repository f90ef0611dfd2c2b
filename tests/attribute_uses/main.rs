//! Uses of `#[discoverable]` that must compile, one module each: what the attribute accepts
//! and the serve calls it finds. They build as this one test binary, so a use that no longer
//! compiles fails `cargo test`; each module's test names its attributed functions, and the two
//! programs with `#[tokio::main]` (`several_services`, `tokio_main_below`) run their `main`,
//! which returns once the runtime is up.
//!
//! None of them needs a crate root of its own: `#[discoverable]` above `#[tokio::main]` on a
//! `main` works the same in a module. The compile errors, which need rustc's own output, are
//! in `ui/` (`cargo test -p discoverable-ui-tests`).

mod all_arguments;
mod checks;
mod connect_info;
mod crate_path;
mod discoverable_serve;
mod grpc;
mod health_nested;
mod hygiene;
mod into_make_service;
mod method;
mod minimal;
mod nested;
mod serve_imported;
mod several_services;
mod tokio_main_below;
mod ttl;
mod with_graceful_shutdown;
