//! Where and how to reach Consul: the address, the ACL token, TLS, namespace, partition,
//! HTTP basic auth and the bound of a request.
//!
//! [`Config::from_env`] reads Consul's own environment variables with the meaning Consul's CLI
//! and Go `api` package give them (`api/api.go`), so a deployment configured for `consul`
//! works unchanged. [`Config::builder`] sets the same things from code.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderValue;

use crate::Error;

/// The address used when none is set: Consul's default HTTP address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";

/// The bound of a request that does not block, when none is set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `CONSUL_HTTP_ADDR`: `host:port`, or a URL with scheme `http`, `https` or `unix`.
pub const ENV_HTTP_ADDR: &str = "CONSUL_HTTP_ADDR";
/// `CONSUL_HTTP_TOKEN`: the ACL token.
pub const ENV_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// `CONSUL_HTTP_TOKEN_FILE`: a file holding the ACL token; wins over `CONSUL_HTTP_TOKEN`.
pub const ENV_HTTP_TOKEN_FILE: &str = "CONSUL_HTTP_TOKEN_FILE";
/// `CONSUL_HTTP_AUTH`: HTTP basic auth as `user[:password]`.
pub const ENV_HTTP_AUTH: &str = "CONSUL_HTTP_AUTH";
/// `CONSUL_HTTP_SSL`: use HTTPS (a Go boolean).
pub const ENV_HTTP_SSL: &str = "CONSUL_HTTP_SSL";
/// `CONSUL_HTTP_SSL_VERIFY`: verify the server's certificate (a Go boolean, default true).
pub const ENV_HTTP_SSL_VERIFY: &str = "CONSUL_HTTP_SSL_VERIFY";
/// `CONSUL_CACERT`: a PEM file of CA certificates to trust.
pub const ENV_CACERT: &str = "CONSUL_CACERT";
/// `CONSUL_CAPATH`: a directory of PEM files of CA certificates to trust.
pub const ENV_CAPATH: &str = "CONSUL_CAPATH";
/// `CONSUL_CLIENT_CERT`: the PEM client certificate, for agents that verify clients.
pub const ENV_CLIENT_CERT: &str = "CONSUL_CLIENT_CERT";
/// `CONSUL_CLIENT_KEY`: the PEM private key of the client certificate.
pub const ENV_CLIENT_KEY: &str = "CONSUL_CLIENT_KEY";
/// `CONSUL_TLS_SERVER_NAME`: the name to expect in the server's certificate (and send as SNI).
pub const ENV_TLS_SERVER_NAME: &str = "CONSUL_TLS_SERVER_NAME";
/// `CONSUL_NAMESPACE`: the namespace (Consul Enterprise), sent as `?ns=`.
pub const ENV_NAMESPACE: &str = "CONSUL_NAMESPACE";
/// `CONSUL_PARTITION`: the admin partition (Consul Enterprise), sent as `?partition=`.
pub const ENV_PARTITION: &str = "CONSUL_PARTITION";

/// Every environment variable [`Config::from_env`] reads.
pub const ENV_VARS: [&str; 13] = [
    ENV_HTTP_ADDR,
    ENV_HTTP_TOKEN,
    ENV_HTTP_TOKEN_FILE,
    ENV_HTTP_AUTH,
    ENV_HTTP_SSL,
    ENV_HTTP_SSL_VERIFY,
    ENV_CACERT,
    ENV_CAPATH,
    ENV_CLIENT_CERT,
    ENV_CLIENT_KEY,
    ENV_TLS_SERVER_NAME,
    ENV_NAMESPACE,
    ENV_PARTITION,
];

const REDACTED: &str = "<redacted>";

/// A secret (an ACL token, a basic-auth password). `Debug` and `Display` print
/// `<redacted>`; only [`Token::secret`] gives the value.
///
/// ```
/// use discoverable_runtime::consul::Token;
///
/// let token = Token::new("b1gs3cr3t");
/// assert_eq!(format!("{token:?} {token}"), "<redacted> <redacted>");
/// assert_eq!(token.secret(), "b1gs3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Token {
    fn from(s: String) -> Token {
        Token(s)
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Token {
        Token(s.to_owned())
    }
}

/// How to reach Consul. Build it with [`Config::from_env`], [`Config::from_lookup`] or
/// [`Config::builder`]; hand it to [`Client::new`](super::Client::new).
///
/// Certificate and token files are read when the `Config` is built, once. `Debug` never shows
/// the token, the basic-auth password or key material.
///
/// ```
/// use std::time::Duration;
/// use discoverable_runtime::consul::Config;
///
/// let config = Config::builder()
///     .address("https://consul.example:8501")
///     .token("b1gs3cr3t")
///     .request_timeout(Duration::from_secs(3))
///     .build()?;
/// assert_eq!(config.address(), "https://consul.example:8501");
/// assert!(!format!("{config:?}").contains("b1gs3cr3t"));
/// # Ok::<(), discoverable_runtime::Error>(())
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

/// CA certificates to trust instead of the system's.
#[derive(Clone)]
pub(crate) struct CaCerts {
    pub(crate) origin: &'static str,
    pub(crate) source: PathBuf,
    /// PEM contents, one entry per file.
    pub(crate) pems: Vec<Vec<u8>>,
}

/// A client certificate and its key, PEM.
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    pub(crate) origin: &'static str,
    pub(crate) cert_path: PathBuf,
    /// Certificate chain followed by the private key.
    pub(crate) pem: Vec<u8>,
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
    /// use discoverable_runtime::consul::Config;
    ///
    /// let config = Config::from_lookup(|name| match name {
    ///     "CONSUL_HTTP_ADDR" => Some("consul.service:8501".into()),
    ///     "CONSUL_HTTP_SSL" => Some("true".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.address(), "https://consul.service:8501");
    /// # Ok::<(), discoverable_runtime::Error>(())
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
/// use discoverable_runtime::consul::Config;
///
/// // Settings from code, then whatever the environment sets on top.
/// let config = Config::builder()
///     .address("127.0.0.1:18500")
///     .apply_lookup(|_| None)?
///     .build()?;
/// assert_eq!(config.address(), "http://127.0.0.1:18500");
/// # Ok::<(), discoverable_runtime::Error>(())
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
    /// the system's, as `CONSUL_CAPATH`. A [`ca_file`](Self::ca_file) wins.
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

    /// Applies Consul's environment variables on top of what is set, as
    /// [`ConfigBuilder::apply_lookup`] with the process environment.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a value is not UTF-8 or not a boolean where
    /// one is expected.
    pub fn apply_env(self) -> Result<Self, Error> {
        for name in ENV_VARS {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(name) {
                return Err(config_error(
                    name,
                    "the value is not valid UTF-8; expected text",
                ));
            }
        }
        self.apply_lookup(|name| std::env::var(name).ok())
    }

    /// Applies the variables `lookup` gives on top of what is set: each variable that is set
    /// (non-empty) replaces the corresponding setting. Setting either of `CONSUL_CACERT` /
    /// `CONSUL_CAPATH` replaces both CA settings, either of `CONSUL_CLIENT_CERT` /
    /// `CONSUL_CLIENT_KEY` both client-certificate settings, and `CONSUL_HTTP_TOKEN` alone
    /// replaces a token file set in code. See [`Config::from_lookup`] for the meaning of each.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a boolean does not parse. Other values are
    /// checked by [`build`](Self::build).
    pub fn apply_lookup(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());

        if let Some(v) = get(ENV_HTTP_ADDR) {
            self.address = set(v, ENV_HTTP_ADDR);
        }
        let token = get(ENV_HTTP_TOKEN);
        let token_file = get(ENV_HTTP_TOKEN_FILE);
        if let Some(v) = &token {
            self.token = set(Token::new(v.clone()), ENV_HTTP_TOKEN);
            if token_file.is_none() {
                self.token_file = None;
            }
        }
        if let Some(v) = token_file {
            self.token_file = set(PathBuf::from(v), ENV_HTTP_TOKEN_FILE);
        }
        if let Some(v) = get(ENV_HTTP_AUTH) {
            let (user, pass) = match v.split_once(':') {
                Some((u, p)) => (u.to_owned(), p.to_owned()),
                None => (v, String::new()),
            };
            self.basic_auth = set((user, Token::new(pass)), ENV_HTTP_AUTH);
        }
        if let Some(v) = get(ENV_HTTP_SSL) {
            self.https = set(parse_go_bool(ENV_HTTP_SSL, &v)?, ENV_HTTP_SSL);
        }
        if let Some(v) = get(ENV_HTTP_SSL_VERIFY) {
            let verify = parse_go_bool(ENV_HTTP_SSL_VERIFY, &v)?;
            self.insecure_skip_verify = set(!verify, ENV_HTTP_SSL_VERIFY);
        }
        let (ca_file, ca_path) = (get(ENV_CACERT), get(ENV_CAPATH));
        if ca_file.is_some() || ca_path.is_some() {
            self.ca_file = ca_file.and_then(|v| set(PathBuf::from(v), ENV_CACERT));
            self.ca_path = ca_path.and_then(|v| set(PathBuf::from(v), ENV_CAPATH));
        }
        let (cert, key) = (get(ENV_CLIENT_CERT), get(ENV_CLIENT_KEY));
        if cert.is_some() || key.is_some() {
            self.client_cert = cert.and_then(|v| set(PathBuf::from(v), ENV_CLIENT_CERT));
            self.client_key = key.and_then(|v| set(PathBuf::from(v), ENV_CLIENT_KEY));
        }
        if let Some(v) = get(ENV_TLS_SERVER_NAME) {
            self.tls_server_name = set(v, ENV_TLS_SERVER_NAME);
        }
        if let Some(v) = get(ENV_NAMESPACE) {
            self.namespace = set(v, ENV_NAMESPACE);
        }
        if let Some(v) = get(ENV_PARTITION) {
            self.partition = set(v, ENV_PARTITION);
        }
        Ok(self)
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

        let ca = match (self.ca_file, self.ca_path) {
            (Some(file), _) => Some(load_ca_file(&file.value, file.origin)?),
            (None, Some(dir)) => Some(load_ca_dir(&dir.value, dir.origin)?),
            (None, None) => None,
        };

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
fn missing_partner(present_origin: &'static str, env_name: &'static str) -> &'static str {
    if present_origin.starts_with("CONSUL_") {
        env_name
    } else {
        present_origin
    }
}

/// Parses a boolean as Go's `strconv.ParseBool` does (`1 t T TRUE true True` and
/// `0 f F FALSE false False`), the way Consul reads `CONSUL_HTTP_SSL`.
///
/// ```
/// use discoverable_runtime::consul::parse_go_bool;
///
/// assert_eq!(parse_go_bool("CONSUL_HTTP_SSL", "T").ok(), Some(true));
/// assert!(parse_go_bool("CONSUL_HTTP_SSL", "yes").is_err());
/// ```
///
/// # Errors
///
/// [`Error::Config`] naming `setting` for any other value.
pub fn parse_go_bool(setting: &'static str, value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(config_error(
            setting,
            format!(
                "`{other}` is not a boolean; expected one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False"
            ),
        )),
    }
}

struct Endpoint {
    display: String,
    url: Url,
    unix_socket: Option<PathBuf>,
}

const ADDRESS_EXPECTED: &str = "expected host:port, or a URL such as http://127.0.0.1:8500, https://consul.example:8501 or unix:///run/consul/http.sock";

/// `CONSUL_HTTP_ADDR` as Consul's `api.NewClient` reads it: split at `://`; `http` keeps the
/// scheme chosen by `CONSUL_HTTP_SSL`, `https` forces HTTPS, `unix` dials a socket; a path
/// after `host:port` is a prefix for every request (Consul behind a reverse proxy).
fn parse_address(raw: &str, https: bool, origin: &'static str) -> Result<Endpoint, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(config_error(
            origin,
            format!("the address is empty; {ADDRESS_EXPECTED}"),
        ));
    }
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, raw),
    };
    if scheme.is_none() && raw.contains('/') {
        // `http//x` or `http:/x`: a URL with a broken scheme, not a host.
        return Err(config_error(
            origin,
            format!("`{raw}` has a path but no `scheme://`; {ADDRESS_EXPECTED}"),
        ));
    }
    let scheme = match scheme.as_deref() {
        None | Some("http") => {
            if https {
                "https"
            } else {
                "http"
            }
        }
        Some("https") => "https",
        Some("unix") => return parse_unix_address(rest, https, origin),
        Some(other) => {
            return Err(config_error(
                origin,
                format!("unknown scheme `{other}`; expected http, https or unix"),
            ));
        }
    };
    let url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| {
        config_error(
            origin,
            format!("`{raw}` is not a valid address ({e}); {ADDRESS_EXPECTED}"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Do not echo the value: it may hold a password.
        return Err(config_error(
            origin,
            format!(
                "the address holds user information; expected it without, and basic auth in {ENV_HTTP_AUTH}"
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config_error(
            origin,
            format!("`{raw}` has no host; {ADDRESS_EXPECTED}"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            origin,
            format!("`{raw}` has a query or fragment; {ADDRESS_EXPECTED}"),
        ));
    }
    let display = url.as_str().trim_end_matches('/').to_owned();
    Ok(Endpoint {
        display,
        url,
        unix_socket: None,
    })
}

#[cfg(unix)]
fn parse_unix_address(path: &str, https: bool, origin: &'static str) -> Result<Endpoint, Error> {
    if path.is_empty() {
        return Err(config_error(
            origin,
            "the unix address has no socket path; expected e.g. unix:///run/consul/http.sock",
        ));
    }
    let url = Url::parse(if https {
        "https://localhost/"
    } else {
        "http://localhost/"
    })
    .map_err(|e| config_error(origin, e.to_string()))?;
    Ok(Endpoint {
        display: format!("unix://{path}"),
        url,
        unix_socket: Some(PathBuf::from(path)),
    })
}

#[cfg(not(unix))]
fn parse_unix_address(_path: &str, _https: bool, origin: &'static str) -> Result<Endpoint, Error> {
    Err(config_error(
        origin,
        "unix sockets are not supported on this platform; expected an http:// or https:// address",
    ))
}

fn resolve_token(
    token: Option<Set<Token>>,
    token_file: Option<Set<PathBuf>>,
) -> Result<(Option<Token>, &'static str), Error> {
    if let Some(file) = token_file {
        let data = std::fs::read(&file.value).map_err(|e| {
            config_error(
                file.origin,
                format!(
                    "cannot read the token file {}: {e}; expected a readable file holding the ACL token",
                    file.value.display()
                ),
            )
        })?;
        let text = String::from_utf8(data).map_err(|_| {
            config_error(
                file.origin,
                format!(
                    "the token file {} is not UTF-8; expected a file holding the ACL token",
                    file.value.display()
                ),
            )
        })?;
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            let t = Token::new(trimmed);
            check_token(&t, file.origin)?;
            return Ok((Some(t), file.origin));
        }
    }
    match token {
        Some(s) if !s.value.secret().is_empty() => {
            check_token(&s.value, s.origin)?;
            Ok((Some(s.value), s.origin))
        }
        _ => Ok((None, "token")),
    }
}

/// The token goes into a header, so it must be visible ASCII. The message never shows it.
fn check_token(token: &Token, origin: &'static str) -> Result<(), Error> {
    let ok = HeaderValue::from_str(token.secret()).is_ok()
        && token.secret().bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(config_error(
            origin,
            "the token contains spaces, control or non-ASCII characters; expected an ACL token such as a UUID",
        ))
    }
}

fn read_file(path: &Path, origin: &'static str, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        config_error(
            origin,
            format!(
                "cannot read {} ({e}); expected a readable {what}",
                path.display()
            ),
        )
    })
}

fn count_pem_certs(pem: &[u8]) -> usize {
    reqwest::Certificate::from_pem_bundle(pem).map_or(0, |v| v.len())
}

fn load_ca_file(path: &Path, origin: &'static str) -> Result<CaCerts, Error> {
    let pem = read_file(path, origin, "PEM file of CA certificates")?;
    if count_pem_certs(&pem) == 0 {
        return Err(config_error(
            origin,
            format!(
                "{} holds no PEM certificate; expected a PEM file of CA certificates",
                path.display()
            ),
        ));
    }
    Ok(CaCerts {
        origin,
        source: path.to_owned(),
        pems: vec![pem],
    })
}

/// Every file under `dir` (recursively, in name order) must hold PEM certificates, as
/// `go-rootcerts`' `LoadCAPath` requires.
fn load_ca_dir(dir: &Path, origin: &'static str) -> Result<CaCerts, Error> {
    let mut files = Vec::new();
    collect_files(dir, origin, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(config_error(
            origin,
            format!(
                "{} holds no files; expected a directory of PEM CA certificates",
                dir.display()
            ),
        ));
    }
    let mut pems = Vec::with_capacity(files.len());
    for file in files {
        let pem = read_file(&file, origin, "PEM file of CA certificates")?;
        if count_pem_certs(&pem) == 0 {
            return Err(config_error(
                origin,
                format!(
                    "{} holds no PEM certificate; expected only PEM CA certificates in {}",
                    file.display(),
                    dir.display()
                ),
            ));
        }
        pems.push(pem);
    }
    Ok(CaCerts {
        origin,
        source: dir.to_owned(),
        pems,
    })
}

fn collect_files(dir: &Path, origin: &'static str, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        config_error(
            origin,
            format!(
                "cannot read the directory {} ({e}); expected a directory of PEM CA certificates",
                dir.display()
            ),
        )
    })?;
    for entry in entries {
        let entry = entry
            .map_err(|e| config_error(origin, format!("cannot list {} ({e})", dir.display())))?;
        let path = entry.path();
        // Follow symlinks, as the usual hash-named links in CA directories are.
        if path.is_dir() {
            collect_files(&path, origin, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn load_identity(cert: &Set<PathBuf>, key: &Set<PathBuf>) -> Result<ClientIdentity, Error> {
    let cert_pem = read_file(&cert.value, cert.origin, "PEM client certificate")?;
    if count_pem_certs(&cert_pem) == 0 {
        return Err(config_error(
            cert.origin,
            format!(
                "{} holds no PEM certificate; expected the PEM client certificate",
                cert.value.display()
            ),
        ));
    }
    let key_pem = read_file(&key.value, key.origin, "PEM private key")?;
    let mut pem = cert_pem;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    if let Err(e) = reqwest::Identity::from_pem(&pem) {
        return Err(config_error(
            key.origin,
            format!(
                "{} is not a usable private key for {} ({e}); expected the PEM private key of the client certificate",
                key.value.display(),
                cert.value.display()
            ),
        ));
    }
    Ok(ClientIdentity {
        origin: cert.origin,
        cert_path: cert.value.clone(),
        pem,
    })
}

/// `CONSUL_TLS_SERVER_NAME` as Consul's `SetupTLSConfig` reads it: a `:port` is dropped.
fn parse_server_name(
    raw: &str,
    origin: &'static str,
    endpoint: &Endpoint,
) -> Result<Option<String>, Error> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => {
                return Err(config_error(
                    origin,
                    format!(
                        "`{raw}` is not a valid server name; expected a DNS name, e.g. server.dc1.consul"
                    ),
                ));
            }
        }
    } else {
        match raw.matches(':').count() {
            0 => raw,
            1 => raw.split(':').next().unwrap_or(""),
            // A bare IPv6 address.
            _ => raw,
        }
    };
    if host.is_empty() {
        return Ok(None);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        // Connecting elsewhere while verifying an IP is not expressible with this client;
        // the same IP as the address needs nothing.
        let same = endpoint
            .url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok())
            == Some(ip);
        if same {
            return Ok(None);
        }
        return Err(config_error(
            origin,
            format!(
                "`{raw}` is an IP address other than the address's host; expected a DNS name, or the IP of {ENV_HTTP_ADDR}"
            ),
        ));
    }
    let lowered = host.to_ascii_lowercase();
    let valid = Url::parse(&format!("https://{lowered}/"))
        .ok()
        .and_then(|u| u.domain().map(|d| d == lowered))
        .unwrap_or(false);
    if !valid {
        return Err(config_error(
            origin,
            format!(
                "`{raw}` is not a valid DNS name; expected the name in the server's certificate, e.g. server.dc1.consul"
            ),
        ));
    }
    Ok(Some(lowered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/consul/testdata")
            .join(name)
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn from(vars: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_lookup(lookup(vars))
    }

    fn err_of(vars: &[(&str, &str)]) -> (&'static str, String) {
        match from(vars) {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("expected a config error for {vars:?}, got {other:?}"),
        }
    }

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(contents: &[u8]) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("discoverable-consul-test-{}", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn consul_config_defaults() {
        let c = from(&[]).unwrap();
        assert_eq!(c.address(), "http://127.0.0.1:8500");
        assert!(c.token().is_none());
        assert!(!c.is_https());
        assert!(c.unix_socket().is_none());
        assert!(!c.insecure_skip_verify());
        assert_eq!(c.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert!(c.namespace().is_none() && c.partition().is_none());
        assert!(c.basic_auth_user().is_none());
        assert!(c.ca_source().is_none() && c.client_cert().is_none());
        assert_eq!(Config::default().address(), "http://127.0.0.1:8500");
    }

    #[test]
    fn consul_config_empty_values_are_unset() {
        let vars: Vec<(&str, &str)> = ENV_VARS.iter().map(|k| (*k, "")).collect();
        let c = from(&vars).unwrap();
        assert_eq!(c.address(), "http://127.0.0.1:8500");
        assert!(c.token().is_none());
    }

    #[test]
    fn consul_config_addresses() {
        let cases = [
            ("127.0.0.1:8500", "http://127.0.0.1:8500"),
            ("localhost:8500", "http://localhost:8500"),
            (
                "consul.service.consul:8500",
                "http://consul.service.consul:8500",
            ),
            ("[::1]:8500", "http://[::1]:8500"),
            ("http://10.0.0.1:8500", "http://10.0.0.1:8500"),
            ("http://10.0.0.1:8500/", "http://10.0.0.1:8500"),
            ("HTTP://10.0.0.1:8500", "http://10.0.0.1:8500"),
            ("https://consul.example:8501", "https://consul.example:8501"),
            ("https://consul.example", "https://consul.example"),
            ("http://gw.example/consul", "http://gw.example/consul"),
            ("http://gw.example:80/consul/", "http://gw.example/consul"),
        ];
        for (addr, want) in cases {
            let c = from(&[("CONSUL_HTTP_ADDR", addr)]).unwrap();
            assert_eq!(c.address(), want, "{addr}");
        }
        // Without a port the scheme's port applies, as in Consul's `api` (Go's URL rules):
        // 80 for http, 443 for https.
        let c = from(&[("CONSUL_HTTP_ADDR", "127.0.0.1")]).unwrap();
        assert_eq!(c.address(), "http://127.0.0.1");
    }

    #[test]
    fn consul_config_a_broken_scheme_is_refused() {
        for addr in ["http//x", "http:/x:8500", "127.0.0.1:8500/v1"] {
            match from(&[("CONSUL_HTTP_ADDR", addr)]) {
                Err(Error::Config { setting, message }) => {
                    assert_eq!(setting, "CONSUL_HTTP_ADDR");
                    assert!(message.contains("scheme"), "{addr}: {message}");
                }
                other => panic!("{addr}: expected a Config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn consul_config_ssl_switches_scheme_but_never_back() {
        let c = from(&[
            ("CONSUL_HTTP_ADDR", "10.0.0.1:8501"),
            ("CONSUL_HTTP_SSL", "true"),
        ])
        .unwrap();
        assert_eq!(c.address(), "https://10.0.0.1:8501");
        assert!(c.is_https());
        let c = from(&[
            ("CONSUL_HTTP_ADDR", "http://10.0.0.1:8501"),
            ("CONSUL_HTTP_SSL", "1"),
        ])
        .unwrap();
        assert_eq!(
            c.address(),
            "https://10.0.0.1:8501",
            "TLS asked for explicitly wins"
        );
        let c = from(&[
            ("CONSUL_HTTP_ADDR", "https://10.0.0.1:8501"),
            ("CONSUL_HTTP_SSL", "false"),
        ])
        .unwrap();
        assert_eq!(c.address(), "https://10.0.0.1:8501");
        let c = from(&[("CONSUL_HTTP_SSL", "T")]).unwrap();
        assert_eq!(c.address(), "https://127.0.0.1:8500");
    }

    #[test]
    fn consul_config_go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(parse_go_bool("X", t).unwrap(), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!parse_go_bool("X", f).unwrap(), "{f}");
        }
        for bad in ["yes", "on", "tRUE", "2", " true"] {
            assert!(parse_go_bool("X", bad).is_err(), "{bad}");
        }
        let (setting, message) = err_of(&[("CONSUL_HTTP_SSL", "yes")]);
        assert_eq!(setting, "CONSUL_HTTP_SSL");
        assert!(
            message.contains("`yes` is not a boolean; expected"),
            "{message}"
        );
        let (setting, _) = err_of(&[("CONSUL_HTTP_SSL_VERIFY", "nope")]);
        assert_eq!(setting, "CONSUL_HTTP_SSL_VERIFY");
    }

    #[test]
    fn consul_config_ssl_verify() {
        assert!(
            from(&[("CONSUL_HTTP_SSL_VERIFY", "false")])
                .unwrap()
                .insecure_skip_verify()
        );
        assert!(
            from(&[("CONSUL_HTTP_SSL_VERIFY", "0")])
                .unwrap()
                .insecure_skip_verify()
        );
        assert!(
            !from(&[("CONSUL_HTTP_SSL_VERIFY", "true")])
                .unwrap()
                .insecure_skip_verify()
        );
    }

    #[test]
    fn consul_config_bad_addresses() {
        for (addr, needle) in [
            (
                "ftp://10.0.0.1:21",
                "unknown scheme `ftp`; expected http, https or unix",
            ),
            ("10.0.0.1:notaport", "is not a valid address"),
            ("http://", "is not a valid address"),
            ("http://10.0.0.1:8500?x=1", "has a query or fragment"),
            ("http://10.0.0.1:8500#frag", "has a query or fragment"),
            ("unix://", "has no socket path"),
            ("   ", "the address is empty"),
        ] {
            let (setting, message) = err_of(&[("CONSUL_HTTP_ADDR", addr)]);
            assert_eq!(setting, "CONSUL_HTTP_ADDR");
            assert!(message.contains(needle), "{addr}: {message}");
            assert!(message.contains("expected"), "{addr}: {message}");
        }
        // User information is refused without echoing the password.
        let (_, message) = err_of(&[("CONSUL_HTTP_ADDR", "http://bob:hunter22@10.0.0.1:8500")]);
        assert!(!message.contains("hunter22"), "{message}");
        assert!(message.contains("CONSUL_HTTP_AUTH"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn consul_config_unix_socket() {
        let c = from(&[("CONSUL_HTTP_ADDR", "unix:///run/consul/http.sock")]).unwrap();
        assert_eq!(c.address(), "unix:///run/consul/http.sock");
        assert_eq!(c.unix_socket(), Some(Path::new("/run/consul/http.sock")));
        assert!(!c.is_https());
    }

    #[test]
    fn consul_config_token_and_token_file() {
        let c = from(&[("CONSUL_HTTP_TOKEN", "tok-env-1234")]).unwrap();
        assert_eq!(c.token().unwrap().secret(), "tok-env-1234");

        let file = TempFile::new(b"  tok-file-5678\n");
        let c = from(&[("CONSUL_HTTP_TOKEN_FILE", file.path())]).unwrap();
        assert_eq!(
            c.token().unwrap().secret(),
            "tok-file-5678",
            "read once and trimmed"
        );

        // Both: the file wins, as Consul's api.NewClient and the CLI's -token-file do.
        let c = from(&[
            ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
            ("CONSUL_HTTP_TOKEN_FILE", file.path()),
        ])
        .unwrap();
        assert_eq!(c.token().unwrap().secret(), "tok-file-5678");

        // An empty file falls back to the variable.
        let empty = TempFile::new(b" \n");
        let c = from(&[
            ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
            ("CONSUL_HTTP_TOKEN_FILE", empty.path()),
        ])
        .unwrap();
        assert_eq!(c.token().unwrap().secret(), "tok-env-1234");
        let c = from(&[("CONSUL_HTTP_TOKEN_FILE", empty.path())]).unwrap();
        assert!(c.token().is_none());

        let (setting, message) = err_of(&[
            ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
            ("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/discoverable/token"),
        ]);
        assert_eq!(setting, "CONSUL_HTTP_TOKEN_FILE");
        assert!(
            message.contains("/nonexistent/discoverable/token"),
            "{message}"
        );
        assert!(message.contains("expected a readable file"), "{message}");
        assert!(!message.contains("tok-env-1234"));

        let (setting, message) = err_of(&[("CONSUL_HTTP_TOKEN", "two words")]);
        assert_eq!(setting, "CONSUL_HTTP_TOKEN");
        assert!(!message.contains("two words"), "{message}");
    }

    #[test]
    fn consul_config_env_token_replaces_token_file_from_code() {
        let file = TempFile::new(b"tok-file-5678");
        let c = Config::builder()
            .token_file(file.path())
            .apply_lookup(lookup(&[("CONSUL_HTTP_TOKEN", "tok-env-1234")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.token().unwrap().secret(), "tok-env-1234");
        // Builder alone: the file wins over the token, as with the variables.
        let c = Config::builder()
            .token("tok-code")
            .token_file(file.path())
            .build()
            .unwrap();
        assert_eq!(c.token().unwrap().secret(), "tok-file-5678");
    }

    #[test]
    fn consul_config_basic_auth() {
        let c = from(&[("CONSUL_HTTP_AUTH", "alice:pa:ss")]).unwrap();
        let (user, pass) = c.basic_auth().unwrap();
        assert_eq!((user, pass.secret()), ("alice", "pa:ss"));
        let c = from(&[("CONSUL_HTTP_AUTH", "alice")]).unwrap();
        let (user, pass) = c.basic_auth().unwrap();
        assert_eq!((user, pass.secret()), ("alice", ""));
        assert_eq!(c.basic_auth_user(), Some("alice"));
        let (setting, _) = match Config::builder().basic_auth("a:b", "c").build() {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(setting, "basic_auth");
    }

    #[test]
    fn consul_config_namespace_partition() {
        let c = from(&[
            ("CONSUL_NAMESPACE", "team-a"),
            ("CONSUL_PARTITION", "part-1"),
        ])
        .unwrap();
        assert_eq!(c.namespace(), Some("team-a"));
        assert_eq!(c.partition(), Some("part-1"));
    }

    #[test]
    fn consul_config_tls_server_name() {
        for (raw, want) in [
            ("server.dc1.consul", Some("server.dc1.consul")),
            ("server.dc1.consul:8501", Some("server.dc1.consul")),
            ("Consul.Example", Some("consul.example")),
            ("127.0.0.1", None), // same IP as the address: nothing to override
            ("[::1]:8501", None),
        ] {
            let addr = if raw.contains("::1") {
                "[::1]:8500"
            } else {
                "127.0.0.1:8500"
            };
            let c = from(&[("CONSUL_HTTP_ADDR", addr), ("CONSUL_TLS_SERVER_NAME", raw)]).unwrap();
            assert_eq!(c.tls_server_name(), want, "{raw}");
        }
        let (setting, message) = err_of(&[("CONSUL_TLS_SERVER_NAME", "10.9.9.9")]);
        assert_eq!(setting, "CONSUL_TLS_SERVER_NAME");
        assert!(message.contains("expected a DNS name"), "{message}");
        let (setting, _) = err_of(&[("CONSUL_TLS_SERVER_NAME", "bad name!")]);
        assert_eq!(setting, "CONSUL_TLS_SERVER_NAME");
    }

    #[test]
    fn consul_config_ca_file_and_path() {
        let ca = testdata("ca.pem");
        let c = from(&[("CONSUL_CACERT", ca.to_str().unwrap())]).unwrap();
        assert_eq!(c.ca_source(), Some(ca.as_path()));
        assert_eq!(c.ca().unwrap().pems.len(), 1);

        let dir = testdata("capath");
        let c = from(&[("CONSUL_CAPATH", dir.to_str().unwrap())]).unwrap();
        assert_eq!(c.ca_source(), Some(dir.as_path()));
        assert!(!c.ca().unwrap().pems.is_empty());

        // CONSUL_CACERT wins over CONSUL_CAPATH, as in go-rootcerts.
        let c = from(&[
            ("CONSUL_CACERT", ca.to_str().unwrap()),
            ("CONSUL_CAPATH", dir.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(c.ca_source(), Some(ca.as_path()));

        let (setting, message) = err_of(&[("CONSUL_CACERT", "/nonexistent/ca.pem")]);
        assert_eq!(setting, "CONSUL_CACERT");
        assert!(
            message.contains("cannot read /nonexistent/ca.pem"),
            "{message}"
        );
        let not_pem = TempFile::new(b"hello");
        let (setting, message) = err_of(&[("CONSUL_CACERT", not_pem.path())]);
        assert_eq!(setting, "CONSUL_CACERT");
        assert!(message.contains("holds no PEM certificate"), "{message}");
        let (setting, _) = err_of(&[("CONSUL_CAPATH", "/nonexistent/dir")]);
        assert_eq!(setting, "CONSUL_CAPATH");
        let (setting, message) = err_of(&[("CONSUL_CAPATH", testdata("").to_str().unwrap())]);
        assert_eq!(
            setting, "CONSUL_CAPATH",
            "a directory with key files is refused"
        );
        assert!(message.contains("holds no PEM certificate"), "{message}");
    }

    #[test]
    fn consul_config_client_cert() {
        let cert = testdata("client.pem");
        let key = testdata("client-key.pem");
        let c = from(&[
            ("CONSUL_CLIENT_CERT", cert.to_str().unwrap()),
            ("CONSUL_CLIENT_KEY", key.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(c.client_cert(), Some(cert.as_path()));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));

        let (setting, message) = err_of(&[("CONSUL_CLIENT_CERT", cert.to_str().unwrap())]);
        assert_eq!(setting, "CONSUL_CLIENT_KEY");
        assert!(message.contains("expected both"), "{message}");
        let (setting, _) = err_of(&[("CONSUL_CLIENT_KEY", key.to_str().unwrap())]);
        assert_eq!(setting, "CONSUL_CLIENT_CERT");
        let (setting, message) = err_of(&[
            ("CONSUL_CLIENT_CERT", cert.to_str().unwrap()),
            ("CONSUL_CLIENT_KEY", cert.to_str().unwrap()),
        ]);
        assert_eq!(setting, "CONSUL_CLIENT_KEY");
        assert!(message.contains("not a usable private key"), "{message}");
        let (setting, _) = err_of(&[
            ("CONSUL_CLIENT_CERT", key.to_str().unwrap()),
            ("CONSUL_CLIENT_KEY", key.to_str().unwrap()),
        ]);
        assert_eq!(setting, "CONSUL_CLIENT_CERT");
    }

    #[test]
    fn consul_config_builder() {
        let ca = testdata("ca.pem");
        let c = Config::builder()
            .address("consul.example:8501")
            .https(true)
            .token("tok-builder-9999")
            .ca_file(&ca)
            .client_cert(testdata("client.pem"), testdata("client-key.pem"))
            .tls_server_name("server.dc1.consul")
            .insecure_skip_verify(true)
            .namespace("ns1")
            .partition("p1")
            .basic_auth("bob", "pw-secret-1")
            .request_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(c.address(), "https://consul.example:8501");
        assert_eq!(c.token().unwrap().secret(), "tok-builder-9999");
        assert_eq!(c.ca_source(), Some(ca.as_path()));
        assert_eq!(c.tls_server_name(), Some("server.dc1.consul"));
        assert!(c.insecure_skip_verify());
        assert_eq!(c.namespace(), Some("ns1"));
        assert_eq!(c.partition(), Some("p1"));
        assert_eq!(c.basic_auth_user(), Some("bob"));
        assert_eq!(c.request_timeout(), Duration::from_millis(300));

        let (setting, message) = match Config::builder().request_timeout(Duration::ZERO).build() {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(setting, "request_timeout");
        assert!(message.contains("expected a duration greater than zero"));
        let (setting, _) = match Config::builder().address("gopher://x:1").build() {
            Err(Error::Config { setting, message }) => (setting, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(setting, "address");
    }

    #[test]
    fn consul_config_env_overrides_builder() {
        let c = Config::builder()
            .address("10.0.0.1:8500")
            .namespace("from-code")
            .request_timeout(Duration::from_secs(2))
            .apply_lookup(lookup(&[
                ("CONSUL_HTTP_ADDR", "10.0.0.2:8500"),
                ("CONSUL_NAMESPACE", ""),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.address(), "http://10.0.0.2:8500");
        assert_eq!(c.namespace(), Some("from-code"), "empty means unset");
        assert_eq!(c.request_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn consul_config_never_shows_secrets() {
        let c = from(&[
            ("CONSUL_HTTP_TOKEN", "tok-0a1b2c3d-secret"),
            ("CONSUL_HTTP_AUTH", "bob:pw-0a1b2c3d-secret"),
        ])
        .unwrap();
        let shown = format!("{c:?} {:?}", Config::builder().token("tok-0a1b2c3d-secret"));
        assert!(!shown.contains("0a1b2c3d"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(c.token().unwrap().to_string(), "<redacted>");
        assert_eq!(
            c.secrets(),
            vec![
                "tok-0a1b2c3d-secret".to_owned(),
                "pw-0a1b2c3d-secret".to_owned()
            ]
        );
    }
}
