//! Make an axum service discoverable through HashiCorp Consul with one attribute.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

pub use discoverable_macros::discoverable;
pub use discoverable_runtime::*;
