//! Runtime of discoverable: the Consul client, the service description, `DiscoveryLayer`,
//! the `serve` lifecycle and discovery. Use it through the `discoverable` crate.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

pub mod consul;
mod error;

pub use error::Error;
