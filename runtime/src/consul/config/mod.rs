//! Where and how to reach Consul: the address, the ACL token, TLS, namespace, partition,
//! HTTP basic auth and the bound of a request.
//!
//! [`Config::from_env`] reads Consul's own environment variables with the meaning Consul's CLI
//! and Go `api` package give them (`api/api.go`), so a deployment configured for `consul`
//! works unchanged. [`Config::builder`] sets the same things from code.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::Error;

mod address;
mod env;
mod tls;
mod token;

#[cfg(test)]
mod tests;

use address::parse_address;
pub(crate) use env::parse_go_bool;
#[cfg(feature = "tls")]
use env::{ENV_CLIENT_CERT, ENV_CLIENT_KEY};
use tls::parse_server_name;
pub(crate) use tls::{CaCerts, ClientIdentity};
#[cfg(feature = "tls")]
use tls::{load_ca_dir, load_ca_file, load_identity};
pub use token::Token;
use token::resolve_token;

/// The address used when none is set: Consul's default HTTP address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";

/// The bound of a request that does not block, when none is set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach Consul. Build it with [`Config::from_env`], [`Config::from_lookup`] or
/// [`Config::builder`]; hand it to [`Client::new`](super::Client::new).
///
/// Certificate and token files are read when the `Config` is built, once. `Debug` never shows
/// the token, the basic-auth password or key material.
///
/// HTTPS (an `https://` address, `CONSUL_HTTP_SSL=true`) and the certificate settings need the
/// `tls` feature. Without it, a setting that asks for TLS fails the build of the `Config` with
/// an [`Error::Config`] naming the setting and the feature; it never falls back to plain HTTP.
///
/// ```
/// use std::time::Duration;
/// use discoverable::consul::Config;
///
/// let config = Config::builder()
///     .address("consul.example:8500")
///     .token("b1gs3cr3t")
///     .request_timeout(Duration::from_secs(3))
///     .build()?;
/// assert_eq!(config.address(), "http://consul.example:8500");
/// assert!(!format!("{config:?}").contains("b1gs3cr3t"));
/// # Ok::<(), discoverable::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    /// `address()`: `http(s)://host:port[/prefix]` or `unix:///path`.
    display: String,
    /// Base of request URLs: scheme, host, port and path prefix. `localhost` for a socket.
    url: Url,
    unix_socket: Option<PathBuf>,
    token: Option<Token>,
    token_origin: &'static str,
    ca: Option<CaCerts>,
    identity: Option<ClientIdentity>,
    tls_server_name: Option<String>,
    insecure_skip_verify: bool,
    namespace: Option<String>,
    partition: Option<String>,
    basic_auth: Option<(String, Token)>,
    request_timeout: Duration,
    address_origin: &'static str,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.display)
            .field("token", &self.token)
            .field("ca", &self.ca.as_ref().map(|c| &c.source))
            .field("client_cert", &self.identity.as_ref().map(|i| &i.cert_path))
            .field("tls_server_name", &self.tls_server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("namespace", &self.namespace)
            .field("partition", &self.partition)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, pass)| (user, pass)),
            )
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for Config {
    /// `http://127.0.0.1:8500`, no token, no TLS settings, 10s bound.
    fn default() -> Config {
        // The default address always parses.
        Config::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }
}

impl Config {
    /// Reads Consul's environment variables (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`,
    /// `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_SSL`, `CONSUL_HTTP_SSL_VERIFY`, `CONSUL_CACERT`,
    /// `CONSUL_CAPATH`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`,
    /// `CONSUL_HTTP_AUTH`, `CONSUL_NAMESPACE`, `CONSUL_PARTITION`). See
    /// [`Config::from_lookup`] for the rules.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a value cannot be used (or is not UTF-8).
    pub fn from_env() -> Result<Config, Error> {
        Config::builder().apply_env()?.build()
    }

    /// Reads the same variables as [`Config::from_env`] through `lookup`, for tests and for
    /// sources other than the process environment.
    ///
    /// The rules, as Consul's CLI applies them:
    ///
    /// - An empty value is the same as an unset one.
    /// - `CONSUL_HTTP_ADDR`: `host:port` (default `127.0.0.1:8500`), or a URL
    ///   `http://host:port[/path-prefix]`, `https://...` or `unix:///path/to/socket`.
    /// - `CONSUL_HTTP_SSL=true` makes a `host:port` or `http://` address use HTTPS (it never
    ///   turns an `https://` address back to HTTP).
    /// - `CONSUL_HTTP_TOKEN_FILE` is read once, trimmed, and wins over `CONSUL_HTTP_TOKEN` when
    ///   it holds a token (Consul's `api.NewClient`); an empty file falls back to
    ///   `CONSUL_HTTP_TOKEN`.
    /// - Booleans as Go's `strconv.ParseBool`: `1 t T TRUE true True 0 f F FALSE false False`.
    /// - `CONSUL_CACERT` wins over `CONSUL_CAPATH` (as `go-rootcerts`); either replaces the
    ///   system's roots. `CONSUL_CAPATH` is walked recursively and every file must hold PEM
    ///   certificates.
    /// - `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY` go together.
    /// - `CONSUL_TLS_SERVER_NAME` may carry a port, which is dropped.
    /// - `CONSUL_HTTP_AUTH` is `user` or `user:password`.
    ///
    /// Unlike Consul's CLI, which logs a warning and carries on, an unparsable boolean is an
    /// error (an unparsable `CONSUL_HTTP_SSL_VERIFY` would otherwise turn verification off).
    ///
    /// ```
    /// use discoverable::consul::Config;
    ///
    /// let config = Config::from_lookup(|name| match name {
    ///     "CONSUL_HTTP_ADDR" => Some("consul.service:8500".into()),
    ///     "CONSUL_HTTP_TOKEN" => Some("b1gs3cr3t".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.address(), "http://consul.service:8500");
    /// # Ok::<(), discoverable::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a value cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        Config::builder().apply_lookup(lookup)?.build()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The address as a base URL, `http://127.0.0.1:8500`, `https://host:8501/prefix` or
    /// `unix:///path/to/socket`. Never contains the token.
    pub fn address(&self) -> &str {
        &self.display
    }

    /// The ACL token, if any.
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// Whether requests use HTTPS.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The Unix socket requests go through, for a `unix://` address.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The name expected in the server's certificate instead of the address's host.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }

    /// Whether the server's certificate goes unverified.
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify
    }

    /// The path of the CA file or directory trusted instead of the system's roots.
    pub fn ca_source(&self) -> Option<&Path> {
        self.ca.as_ref().map(|c| c.source.as_path())
    }

    /// The path of the client certificate, if one is presented.
    pub fn client_cert(&self) -> Option<&Path> {
        self.identity.as_ref().map(|i| i.cert_path.as_path())
    }

    /// The namespace sent as `?ns=`.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The admin partition sent as `?partition=`.
    pub fn partition(&self) -> Option<&str> {
        self.partition.as_deref()
    }

    /// The basic-auth user name, if basic auth is on.
    pub fn basic_auth_user(&self) -> Option<&str> {
        self.basic_auth.as_ref().map(|(user, _)| user.as_str())
    }

    /// The bound of a request that does not block. A blocking read is bounded by its wait,
    /// plus Consul's jitter (wait/16), plus this.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn ca(&self) -> Option<&CaCerts> {
        self.ca.as_ref()
    }

    pub(crate) fn identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }

    pub(crate) fn basic_auth(&self) -> Option<(&str, &Token)> {
        self.basic_auth.as_ref().map(|(u, p)| (u.as_str(), p))
    }

    pub(crate) fn address_origin(&self) -> &'static str {
        self.address_origin
    }

    pub(crate) fn token_origin(&self) -> &'static str {
        self.token_origin
    }

    /// The secrets that must never appear in an error text.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.token {
            out.push(t.secret().to_owned());
        }
        if let Some((_, p)) = &self.basic_auth {
            out.push(p.secret().to_owned());
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// A value set on the builder, with the name of the setting it came from (a builder method
/// or an environment variable) for error messages.
#[derive(Debug, Clone)]
struct Set<T> {
    value: T,
    origin: &'static str,
}

fn set<T>(value: T, origin: &'static str) -> Option<Set<T>> {
    Some(Set { value, origin })
}

/// Builds a [`Config`]; setters take and return the builder. Files are read by
/// [`ConfigBuilder::build`].
///
/// ```
/// use discoverable::consul::Config;
///
/// // Settings from code, then whatever the environment sets on top.
/// let config = Config::builder()
///     .address("127.0.0.1:18500")
///     .apply_lookup(|_| None)?
///     .build()?;
/// assert_eq!(config.address(), "http://127.0.0.1:18500");
/// # Ok::<(), discoverable::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    address: Option<Set<String>>,
    token: Option<Set<Token>>,
    token_file: Option<Set<PathBuf>>,
    https: Option<Set<bool>>,
    ca_file: Option<Set<PathBuf>>,
    ca_path: Option<Set<PathBuf>>,
    client_cert: Option<Set<PathBuf>>,
    client_key: Option<Set<PathBuf>>,
    tls_server_name: Option<Set<String>>,
    insecure_skip_verify: Option<Set<bool>>,
    namespace: Option<Set<String>>,
    partition: Option<Set<String>>,
    basic_auth: Option<Set<(String, Token)>>,
    request_timeout: Option<Set<Duration>>,
}

impl ConfigBuilder {
    /// The agent's address: `host:port`, or a URL with scheme `http`, `https` or `unix`
    /// (`unix:///run/consul/http.sock`), as `CONSUL_HTTP_ADDR`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = set(address.into(), "address");
        self
    }

    /// The ACL token, sent as `X-Consul-Token`.
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = set(token.into(), "token");
        self
    }

    /// A file holding the ACL token, read once by `build`; wins over [`token`](Self::token)
    /// when it holds one, as `CONSUL_HTTP_TOKEN_FILE`.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = set(path.into(), "token_file");
        self
    }

    /// Use HTTPS for a `host:port` or `http://` address, as `CONSUL_HTTP_SSL`.
    pub fn https(mut self, on: bool) -> Self {
        self.https = set(on, "https");
        self
    }

    /// Trust the CA certificates of this PEM file instead of the system's, as
    /// `CONSUL_CACERT`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = set(path.into(), "ca_file");
        self
    }

    /// Trust the CA certificates of the PEM files in this directory (recursively) instead of
    /// the system's, as `CONSUL_CAPATH`. A [`ca_file`](Self::ca_file) wins. HTTPS needs the
    /// `tls` feature; the directory is read when the configuration is built.
    ///
    /// ```
    /// use discoverable::consul::Config;
    ///
    /// let builder = Config::builder()
    ///     .address("https://consul.internal:8501")
    ///     .ca_path("/etc/consul.d/ca");
    /// # let _ = builder;
    /// ```
    pub fn ca_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.ca_path = set(dir.into(), "ca_path");
        self
    }

    /// Present this client certificate (PEM) with its private key (PEM), as
    /// `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY`.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = set(cert.into(), "client_cert");
        self.client_key = set(key.into(), "client_cert");
        self
    }

    /// Expect this name in the server's certificate, and send it as SNI, while connecting to
    /// the address's host, as `CONSUL_TLS_SERVER_NAME`. A `:port` suffix is dropped.
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls_server_name = set(name.into(), "tls_server_name");
        self
    }

    /// Do not verify the server's certificate (`CONSUL_HTTP_SSL_VERIFY=false`). Only for
    /// development; the client logs a warning.
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = set(skip, "insecure_skip_verify");
        self
    }

    /// The namespace (Consul Enterprise), as `CONSUL_NAMESPACE`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = set(namespace.into(), "namespace");
        self
    }

    /// The admin partition (Consul Enterprise), as `CONSUL_PARTITION`.
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = set(partition.into(), "partition");
        self
    }

    /// HTTP basic auth, as `CONSUL_HTTP_AUTH=user:password`.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<Token>) -> Self {
        self.basic_auth = set((user.into(), password.into()), "basic_auth");
        self
    }

    /// The bound of a request that does not block (default 10s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = set(timeout, "request_timeout");
        self
    }

    /// Checks the settings, reads the token and certificate files, and builds the
    /// [`Config`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the setting (builder method or environment variable) whose
    /// value cannot be used, saying what is wrong and what is expected.
    pub fn build(self) -> Result<Config, Error> {
        let https = self.https.as_ref().is_some_and(|s| s.value);
        let (address, address_origin) = match &self.address {
            Some(s) => (s.value.as_str(), s.origin),
            None => (DEFAULT_ADDRESS, "address"),
        };
        let endpoint = parse_address(address, https, address_origin)?;

        let (token, token_origin) = resolve_token(self.token, self.token_file)?;

        #[cfg(not(feature = "tls"))]
        {
            let https_origin = self
                .https
                .as_ref()
                .filter(|s| s.value)
                .map_or(address_origin, |s| s.origin);
            let asks = [
                (endpoint.url.scheme() == "https").then_some(https_origin),
                self.ca_file.as_ref().map(|s| s.origin),
                self.ca_path.as_ref().map(|s| s.origin),
                self.client_cert.as_ref().map(|s| s.origin),
                self.client_key.as_ref().map(|s| s.origin),
            ];
            if let Some(setting) = asks.into_iter().flatten().next() {
                return Err(tls::refuse_without_tls(setting));
            }
        }
        #[cfg(not(feature = "tls"))]
        let (ca, identity): (Option<CaCerts>, Option<ClientIdentity>) = (None, None);

        #[cfg(feature = "tls")]
        let ca = match (self.ca_file, self.ca_path) {
            (Some(file), _) => Some(load_ca_file(&file.value, file.origin)?),
            (None, Some(dir)) => Some(load_ca_dir(&dir.value, dir.origin)?),
            (None, None) => None,
        };

        #[cfg(feature = "tls")]
        let identity = match (self.client_cert, self.client_key) {
            (Some(cert), Some(key)) => Some(load_identity(&cert, &key)?),
            (Some(cert), None) => {
                return Err(config_error(
                    missing_partner(cert.origin, ENV_CLIENT_KEY),
                    format!(
                        "a client certificate is set but no key; expected both {ENV_CLIENT_CERT} and {ENV_CLIENT_KEY}"
                    ),
                ));
            }
            (None, Some(key)) => {
                return Err(config_error(
                    missing_partner(key.origin, ENV_CLIENT_CERT),
                    format!(
                        "a client key is set but no certificate; expected both {ENV_CLIENT_CERT} and {ENV_CLIENT_KEY}"
                    ),
                ));
            }
            (None, None) => None,
        };

        let tls_server_name = match self.tls_server_name {
            Some(s) => parse_server_name(&s.value, s.origin, &endpoint)?,
            None => None,
        };

        let namespace = self.namespace.map(|s| s.value).filter(|v| !v.is_empty());
        let partition = self.partition.map(|s| s.value).filter(|v| !v.is_empty());

        let basic_auth = match self.basic_auth {
            Some(s) => {
                let (user, pass) = s.value;
                if user.contains(':') {
                    return Err(config_error(
                        s.origin,
                        "the user name contains `:`; expected user or user:password",
                    ));
                }
                Some((user, pass))
            }
            None => None,
        };

        let request_timeout = match self.request_timeout {
            Some(s) if s.value.is_zero() => {
                return Err(config_error(
                    s.origin,
                    "the bound is zero; expected a duration greater than zero, e.g. 10s",
                ));
            }
            Some(s) => s.value,
            None => DEFAULT_REQUEST_TIMEOUT,
        };

        Ok(Config {
            display: endpoint.display,
            url: endpoint.url,
            unix_socket: endpoint.unix_socket,
            token,
            token_origin,
            ca,
            identity,
            tls_server_name,
            insecure_skip_verify: self.insecure_skip_verify.is_some_and(|s| s.value),
            namespace,
            partition,
            basic_auth,
            request_timeout,
            address_origin,
        })
    }
}

fn config_error(setting: &'static str, message: impl Into<String>) -> Error {
    Error::Config {
        setting,
        message: message.into(),
    }
}

/// Name the setting that is missing: the environment variable when the other half came
/// from the environment, the builder method otherwise.
#[cfg(feature = "tls")]
fn missing_partner(present_origin: &'static str, env_name: &'static str) -> &'static str {
    if present_origin.starts_with("CONSUL_") {
        env_name
    } else {
        present_origin
    }
}
