//! Compile errors of `#[discoverable]`, as rustc reports them: one file per failure mode under
//! `ui/fail`, with the expected diagnostics beside it. Refresh the expectations with
//! `TRYBUILD=overwrite cargo test -p discoverable-ui-tests`, then read the diff.
//!
//! Uses the attribute accepts are ordinary code in the `discoverable` crate's
//! `tests/attribute_uses`. With only compile-fail cases here, trybuild checks the cases
//! (`cargo check`) instead of building and linking every dependency.

/// The flags trybuild gives rustc for the cases (its `rustflags.rs`), `--diagnostic-width`
/// included.
const CASE_RUSTFLAGS: [&str; 6] = [
    "--cfg",
    "trybuild",
    "--verbose",
    "-A",
    "dead_code",
    "--diagnostic-width=140",
];

#[test]
fn ui() {
    // trybuild checks the dependencies with its flags, then the cases with
    // `--diagnostic-width=140` added. Cargo keys every build on its flags, so the whole graph,
    // aws-lc-sys's C library among it, would be built a second time for the cases alone.
    // CARGO_ENCODED_RUSTFLAGS takes precedence over the flags trybuild passes as
    // configuration, and gives both steps the same ones.
    let flags = CASE_RUSTFLAGS.join("\x1f");
    // SAFETY: this is the only test in this binary and no other thread reads the environment.
    unsafe { std::env::set_var("CARGO_ENCODED_RUSTFLAGS", flags) };
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
