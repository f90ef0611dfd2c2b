//! Consul's environment variables, read as Consul's CLI and Go `api` package read them.

use std::path::PathBuf;

use super::{ConfigBuilder, Token, config_error, set};
use crate::Error;

/// `CONSUL_HTTP_ADDR`: `host:port`, or a URL with scheme `http`, `https` or `unix`.
pub(crate) const ENV_HTTP_ADDR: &str = "CONSUL_HTTP_ADDR";
/// `CONSUL_HTTP_TOKEN`: the ACL token.
pub(crate) const ENV_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// `CONSUL_HTTP_TOKEN_FILE`: a file holding the ACL token; wins over `CONSUL_HTTP_TOKEN`.
pub(crate) const ENV_HTTP_TOKEN_FILE: &str = "CONSUL_HTTP_TOKEN_FILE";
/// `CONSUL_HTTP_AUTH`: HTTP basic auth as `user[:password]`.
pub(crate) const ENV_HTTP_AUTH: &str = "CONSUL_HTTP_AUTH";
/// `CONSUL_HTTP_SSL`: use HTTPS (a Go boolean).
pub(crate) const ENV_HTTP_SSL: &str = "CONSUL_HTTP_SSL";
/// `CONSUL_HTTP_SSL_VERIFY`: verify the server's certificate (a Go boolean, default true).
pub(crate) const ENV_HTTP_SSL_VERIFY: &str = "CONSUL_HTTP_SSL_VERIFY";
/// `CONSUL_CACERT`: a PEM file of CA certificates to trust.
pub(crate) const ENV_CACERT: &str = "CONSUL_CACERT";
/// `CONSUL_CAPATH`: a directory of PEM files of CA certificates to trust.
pub(crate) const ENV_CAPATH: &str = "CONSUL_CAPATH";
/// `CONSUL_CLIENT_CERT`: the PEM client certificate, for agents that verify clients.
pub(crate) const ENV_CLIENT_CERT: &str = "CONSUL_CLIENT_CERT";
/// `CONSUL_CLIENT_KEY`: the PEM private key of the client certificate.
pub(crate) const ENV_CLIENT_KEY: &str = "CONSUL_CLIENT_KEY";
/// `CONSUL_TLS_SERVER_NAME`: the name to expect in the server's certificate (and send as SNI).
pub(crate) const ENV_TLS_SERVER_NAME: &str = "CONSUL_TLS_SERVER_NAME";
/// `CONSUL_NAMESPACE`: the namespace (Consul Enterprise), sent as `?ns=`.
pub(crate) const ENV_NAMESPACE: &str = "CONSUL_NAMESPACE";
/// `CONSUL_PARTITION`: the admin partition (Consul Enterprise), sent as `?partition=`.
pub(crate) const ENV_PARTITION: &str = "CONSUL_PARTITION";

/// Every environment variable [`Config::from_env`](super::Config::from_env) reads.
pub(crate) const ENV_VARS: [&str; 13] = [
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

impl ConfigBuilder {
    /// Applies Consul's environment variables on top of what is set, as
    /// [`ConfigBuilder::apply_lookup`] with the process environment.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a value is not UTF-8 or not a boolean where
    /// one is expected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use discoverable::consul::Config;
    ///
    /// // The code's own defaults first; a deployment's CONSUL_* variables win over them.
    /// let builder = Config::builder()
    ///     .address("http://127.0.0.1:8500")
    ///     .request_timeout(Duration::from_secs(3))
    ///     .apply_env()?;
    /// # let _ = builder;
    /// # Ok::<(), discoverable::Error>(())
    /// ```
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
    /// replaces a token file set in code. See [`Config::from_lookup`](super::Config::from_lookup) for the meaning of each.
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
}

/// Parses a boolean as Go's `strconv.ParseBool` does (`1 t T TRUE true True` and
/// `0 f F FALSE false False`), the way Consul reads `CONSUL_HTTP_SSL`.
///
/// # Errors
///
/// [`Error::Config`] naming `setting` for any other value.
pub(crate) fn parse_go_bool(setting: &'static str, value: &str) -> Result<bool, Error> {
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
