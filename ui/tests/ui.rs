//! Compile-time behaviour of `#[discoverable]`: one file per failure mode under `ui/fail`
//! (with the expected diagnostics beside it), and programs that must compile and run under
//! `ui/pass`. Refresh the expectations with
//! `TRYBUILD=overwrite cargo test -p discoverable-ui-tests --test ui`, then read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
