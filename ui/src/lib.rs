//! Compile errors of `#[discoverable::discoverable]`, in a crate of its own so that the cases
//! are checked against only what a service using the attribute depends on (`discoverable`,
//! `tokio`, `axum`). The library is empty; the cases are its tests.
