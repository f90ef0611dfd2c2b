//! Compile-time behaviour of `#[discoverable::discoverable]`, in a crate of its own so that the
//! cases build against only what a service using the attribute depends on (`discoverable`,
//! `tokio`, `axum`). The library is empty; the cases are its tests.
