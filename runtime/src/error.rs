//! The one error type of the runtime.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong in discoverable's runtime.
///
/// Messages say what happened and what to do about it. None of them ever contains the
/// ACL token. The `Debug` form is the message too, so a `main` that returns the error (as
/// `Result<(), Box<dyn std::error::Error>>`) prints one sentence; match on the variants for
/// the details.
///
/// # Sources
///
/// A message already holds the words of what failed underneath, so printing the message is
/// enough. Where the failure underneath cannot show the token, it is also kept as the
/// [`source`](std::error::Error::source) ([`Error::Unreachable`], [`Error::Instance`],
/// [`Error::Io`]): reqwest's and hyper's errors name the URL and the transport's failure but
/// never a request header, and the token travels only in the `X-Consul-Token` header.
///
/// The others carry only a message, flattened from what failed on purpose:
///
/// - [`Error::Decode`]: serde_json's errors quote the answer they could not decode, and an
///   answer may echo the token (a misbehaving proxy, say); the message is that text with the
///   token and the basic-auth password scrubbed out, which a source would bring back.
/// - [`Error::PermissionDenied`], [`Error::NotFound`], [`Error::Status`]: Consul's own text,
///   scrubbed the same way; nothing failed underneath.
/// - [`Error::Unreachable`] loses its source, keeping the scrubbed message only, when the
///   transport's text itself held a secret (a server echoing it into a protocol error).
/// - [`Error::Config`]: what was wrong with a setting; a file that cannot be read or a
///   certificate that cannot be used is named in the message.
///
/// ```
/// let error = discoverable::Service::builder("bad name!").build().unwrap_err();
/// assert_eq!(format!("{error:?}"), error.to_string());
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting (from the environment or the builder) has a value that cannot be used.
    #[error("invalid setting {setting}: {message}")]
    Config {
        /// The environment variable or builder setting, e.g. `CONSUL_HTTP_ADDR`.
        setting: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The service description breaks one of Consul's or Fabio's rules.
    #[error("invalid service: {0}")]
    InvalidService(#[from] discoverable_rules::RuleError),
    /// Consul could not be reached (connection refused, DNS, TLS handshake, ...).
    #[error(
        "cannot reach Consul at {addr}: {message}; check that a Consul agent runs there, or set CONSUL_HTTP_ADDR"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What the transport said, with the secrets scrubbed, and what to set when TLS was
        /// the cause.
        message: String,
        /// The transport's error; `None` when its text held a secret.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Consul did not answer within the bound.
    #[error(
        "Consul at {addr} did not answer within {after:?}; check that the agent runs and is not overloaded, or allow more time with consul::ConfigBuilder::request_timeout (default {default:?})",
        default = crate::consul::DEFAULT_REQUEST_TIMEOUT
    )]
    Timeout {
        /// The address tried.
        addr: String,
        /// The bound that passed.
        after: Duration,
    },
    /// Consul refused the request for lack of permission (HTTP 403).
    #[error(
        "Consul denied the request (403 {message}); set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE to a token with the needed policy (service:write for registration, service:read for discovery)"
    )]
    PermissionDenied {
        /// Consul's own text.
        message: String,
    },
    /// Consul does not know the thing asked for (HTTP 404).
    #[error("not found in Consul: {message}")]
    NotFound {
        /// Consul's own text.
        message: String,
    },
    /// Consul turned the connection away (HTTP 429): this process holds as many HTTP
    /// connections to the agent as Consul allows one client IP (`limits.http_max_conns_per_client`,
    /// 200 by default), and each blocking query holds one for its whole wait.
    #[error(
        "Consul turned the connection away: this process holds as many HTTP connections as Consul allows one client IP (limits.http_max_conns_per_client, 200 by default; each blocking query holds one for its wait); watch fewer services per process, follow many with Discovery::services (one query for all), or raise the agent's limit ({message})"
    )]
    TooManyConnections {
        /// Consul's own text.
        message: String,
    },
    /// Consul answered with another error status.
    #[error("Consul answered {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Consul's own text.
        message: String,
    },
    /// Consul's answer could not be decoded.
    #[error("could not decode Consul's answer to {what}: {message}")]
    Decode {
        /// The request whose answer was bad.
        what: String,
        /// What was wrong with it.
        message: String,
    },
    /// An I/O error of the server (bind, accept, local address).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No instance of the service is available (none registered, or none passing).
    #[error("no healthy instance of service `{service}` is registered in Consul")]
    NoInstance {
        /// The service asked for.
        service: String,
    },
    /// The service's instances are not known: Consul has not answered the watch yet.
    #[error(
        "the instances of service `{service}` are not known: Consul has not answered the watch ({why})"
    )]
    InstancesUnknown {
        /// The service asked for.
        service: String,
        /// Why, and what to do: still waiting, Consul unreachable, or the query refused.
        why: String,
    },
    /// A request to one instance of a service failed (the instance, not Consul).
    #[error("request to instance `{instance}` of service `{service}` at {addr} failed: {message}")]
    Instance {
        /// The service.
        service: String,
        /// The instance's ID.
        instance: String,
        /// Its address, `host:port`.
        addr: String,
        /// What the transport said.
        message: String,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
