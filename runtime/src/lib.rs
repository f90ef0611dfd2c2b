//! Runtime of discoverable: the Consul client, the service description, `DiscoveryLayer`,
//! the `serve` lifecycle and discovery. Use it through the `discoverable` crate.

#![warn(missing_docs, rust_2018_idioms)]
#![deny(unsafe_code)]

pub mod consul;
pub mod discovery;
mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
mod health;
mod instance;
pub mod layer;
mod log;
mod random;
mod retry;
mod serve;
mod service;
mod settings;
mod task;

pub use discovery::Discovery;
pub use error::Error;
pub use health::{Health, HealthReport};
pub use instance::{InFlight, Instance};
pub use layer::DiscoveryLayer;
pub use serve::{Serve, ServeListener, serve};
pub use service::{Service, ServiceBuilder};
pub use settings::{
    DEFAULT_DEREGISTER_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_GRACE_PERIOD, DEFAULT_RETRY_MAX,
    DEFAULT_RETRY_MIN,
};

/// The modules of optional features, for the `discoverable` crate to re-export whenever this
/// crate is built with them (`grpc`), whichever crate of the build turned the feature on.
#[doc(hidden)]
pub mod optional {
    #[cfg(feature = "grpc")]
    pub use crate::grpc;
}

/// Items the `#[discoverable]` attribute's expansion calls. Not public API: no stability
/// promise; may change in any release.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "grpc")]
    pub use crate::grpc::serve as serve_grpc;
    pub use crate::serve::{exit_on_start_failure, serve};

    /// Without the `grpc` feature, `#[discoverable(grpc)]` calls this, whose bound no type
    /// meets, so the compiler says at the serve call that the feature is needed.
    #[cfg(not(feature = "grpc"))]
    pub fn serve_grpc<S, L, R: GrpcFeature>(
        _: S,
        _: L,
        routes: R,
    ) -> std::future::Ready<std::io::Result<()>> {
        routes.off()
    }

    /// Met by no type: see [`serve_grpc`].
    #[cfg(not(feature = "grpc"))]
    #[diagnostic::on_unimplemented(
        message = "`#[discoverable(grpc)]` needs the `grpc` feature of discoverable",
        label = "served here",
        note = "turn it on in Cargo.toml: `discoverable = {{ version = \"...\", features = [\"grpc\"] }}`"
    )]
    pub trait GrpcFeature {
        /// Never called: no type implements this trait.
        fn off(self) -> std::future::Ready<std::io::Result<()>>;
    }
}
