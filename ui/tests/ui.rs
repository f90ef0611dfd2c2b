//! Compile errors of `#[discoverable]`, as rustc reports them: one file per failure mode under
//! `ui/fail`, with the expected diagnostics beside it. Refresh the expectations with
//! `TRYBUILD=overwrite cargo test -p discoverable-ui-tests`, then read the diff.
//!
//! Uses the attribute accepts are ordinary code in the `discoverable` crate's
//! `tests/attribute_uses`. With only compile-fail cases here, trybuild checks the cases
//! (`cargo check`) instead of building and linking every dependency.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
