//! The texts of the client's errors: a transport failure in one line, with what to set when
//! TLS is the cause; Consul's answers cut to a bounded excerpt; and the ACL token and the
//! basic-auth password scrubbed from all of them, whatever the other side sent.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::StatusCode;

use crate::Error;

/// Longest error text kept from a response body, in characters.
pub(super) const MAX_MESSAGE_CHARS: usize = 512;
/// Secrets shorter than this are not scrubbed from error texts: replacing every occurrence of
/// one or two characters would garble the message without protecting anything.
const MIN_SCRUB_LEN: usize = 4;
/// The shortest beginning of a secret scrubbed at the end of a text that was cut short:
/// shorter beginnings are too likely to be ordinary text, and too short to be of use.
const MIN_PARTIAL_SCRUB_LEN: usize = 8;

const REDACTED: &str = "<redacted>";

/// The secrets that must never appear in an error text: the ACL token and the basic-auth
/// password.
pub(super) struct Secrets(Vec<String>);

impl Secrets {
    pub(super) fn new(secrets: Vec<String>) -> Secrets {
        Secrets(secrets)
    }

    /// `text` with every secret replaced by `<redacted>`, and a secret's beginning too where
    /// the text ends with one (an answer whose body or framing was cut by Consul or a proxy).
    pub(super) fn scrub(&self, mut text: String) -> String {
        for secret in &self.0 {
            if secret.len() < MIN_SCRUB_LEN {
                continue;
            }
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
            let partial = (MIN_PARTIAL_SCRUB_LEN..secret.len())
                .rev()
                .find(|&n| secret.is_char_boundary(n) && text.ends_with(&secret[..n]));
            if let Some(n) = partial {
                text.truncate(text.len() - n);
                text.push_str(REDACTED);
            }
        }
        text
    }

    /// `text` with the secrets scrubbed, *then* cut to `max` characters, so a cut can never
    /// leave part of a secret behind.
    pub(super) fn excerpt(&self, text: &str, max: usize) -> String {
        let mut text = self.scrub(text.to_owned());
        if let Some((cut, _)) = text.char_indices().nth(max) {
            text.truncate(cut);
            text.push_str("...");
        }
        text
    }
}

/// A body as error text: trimmed, at most [`MAX_MESSAGE_CHARS`] characters, secrets
/// scrubbed; the status's reason when the body is empty.
pub(super) fn body_message(status: StatusCode, body: &[u8], secrets: &Secrets) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned();
    }
    secrets.excerpt(text, MAX_MESSAGE_CHARS)
}

/// hyper's words for bytes that came on a connection before its request was sent.
const ANSWERED_UNASKED: &str = "received unexpected message from connection";

/// A request that failed before Consul answered: [`Error::Timeout`] when the bound passed,
/// otherwise [`Error::Unreachable`] with the transport's words (and what to set when TLS is
/// the cause).
///
/// The transport's error stays the source, unless its text holds a secret (a server or proxy
/// echoing it back into a protocol error): then only the scrubbed message is kept.
pub(super) fn transport_error<E>(
    e: E,
    timed_out: bool,
    addr: String,
    bound: Duration,
    https: bool,
    secrets: &Secrets,
) -> Error
where
    E: StdError + Send + Sync + 'static,
{
    if timed_out {
        return Error::Timeout { addr, after: bound };
    }
    let raw = chain(&e);
    if raw.contains(ANSWERED_UNASKED) {
        // Consul turns a connection over its per-client limit away with a 429 written as
        // soon as it accepts the connection; a request not yet sent then meets an answer it
        // did not ask for, and the 429 itself cannot be read.
        return Error::TooManyConnections {
            message: "the agent answered before the request was sent, as Consul does when it \
                      turns a connection away with 429"
                .to_owned(),
        };
    }
    let mut message = secrets.scrub(raw.clone());
    let clean = message == raw;
    if let Some(hint) = tls_hint(&e, https) {
        message.push_str("; TLS: ");
        message.push_str(hint);
    }
    let source: Option<Box<dyn StdError + Send + Sync>> =
        if clean { Some(Box::new(e)) } else { None };
    Error::Unreachable {
        addr,
        message,
        source,
    }
}

/// An error and its sources as one line, without repeating a source already in the text.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// `e` and every error behind it, including the ones inside an `io::Error`, which its
/// `source` skips (rustls's errors reach the client that way, through tokio-rustls).
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => current.source(),
            },
            None => current.source(),
        };
        Some(current)
    })
}

#[cfg(feature = "tls")]
const HINT_SERVER_NAME: &str = "the agent's certificate does not carry the host name dialled; set CONSUL_TLS_SERVER_NAME to a name it carries, or address the agent by that name";
#[cfg(feature = "tls")]
const HINT_CA: &str = "the agent's certificate is not trusted; set CONSUL_CACERT or CONSUL_CAPATH to the CA that signed it";
#[cfg(feature = "tls")]
const HINT_CLIENT_CERT: &str = "the agent refused the client certificate; set CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY to a certificate signed by a CA it trusts";
const HINT_CLOSED: &str = "the agent closed the connection without answering, as it does when it refuses the client certificate; if it verifies clients, set CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY to a certificate signed by a CA it trusts";

/// What to set when the TLS handshake failed, from rustls's error behind the transport's:
/// the transport's words alone ("invalid peer certificate: UnknownIssuer") do not say which
/// of Consul's variables fixes it.
fn tls_hint(e: &(dyn StdError + 'static), https: bool) -> Option<&'static str> {
    #[cfg(feature = "tls")]
    use rustls::{AlertDescription, CertificateError};

    let mut closed = false;
    for cause in causes(e) {
        #[cfg(feature = "tls")]
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => Some(HINT_SERVER_NAME),
                rustls::Error::InvalidCertificate(_) => Some(HINT_CA),
                rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired
                    | AlertDescription::UnknownCA
                    | AlertDescription::BadCertificate
                    | AlertDescription::CertificateUnknown,
                ) => Some(HINT_CLIENT_CERT),
                _ => None,
            };
        }
        if let Some(http) = cause.downcast_ref::<hyper::Error>() {
            closed |= http.is_canceled() || http.is_incomplete_message();
        }
    }
    // With TLS 1.3 the client's handshake ends before the agent checks the client
    // certificate; an agent that refuses it (Consul's `verify_incoming`) may close the
    // connection before the alert reaches the client. Over plain HTTP a closed connection
    // says nothing about TLS.
    (https && closed).then_some(HINT_CLOSED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[test]
    fn consul_secrets_are_scrubbed_whole_and_cut_short() {
        let secrets = Secrets::new(vec![
            "tok-9f8e7d6c-secret".to_owned(),
            "pw-9f8e7d6c-secret".to_owned(),
        ]);
        assert_eq!(
            secrets.scrub("echo tok-9f8e7d6c-secret and pw-9f8e7d6c-secret".into()),
            "echo <redacted> and <redacted>"
        );
        // Cut short inside the token, by the other side or by our own excerpt.
        assert_eq!(
            secrets.scrub("denied for tok-9f8e7d6c-sec".into()),
            "denied for <redacted>"
        );
        let long = format!("{}tok-9f8e7d6c-secret", "x".repeat(500));
        let cut = secrets.excerpt(&long, 510);
        assert!(!cut.contains("9f8e"), "{cut}");
        assert!(
            secrets
                .excerpt(" 7 tok-9f8e7d6c-secret", 12)
                .starts_with(" 7 <redacted")
        );
        assert_eq!(
            secrets.scrub("x tok-9f8".into()),
            "x tok-9f8",
            "too short to matter"
        );
        assert_eq!(secrets.scrub("x tok-9f8e".into()), "x <redacted>");
    }

    #[test]
    fn consul_body_messages() {
        let secrets = Secrets::new(vec!["tok-9f8e7d6c-secret".to_owned()]);
        assert_eq!(
            body_message(StatusCode::FORBIDDEN, b"  \n", &secrets),
            "Forbidden"
        );
        assert_eq!(
            body_message(
                StatusCode::FORBIDDEN,
                b" ACL not found: tok-9f8e7d6c-secret\n",
                &secrets
            ),
            "ACL not found: <redacted>"
        );
        let long = "y".repeat(MAX_MESSAGE_CHARS + 10);
        assert_eq!(
            body_message(StatusCode::INTERNAL_SERVER_ERROR, long.as_bytes(), &secrets).len(),
            MAX_MESSAGE_CHARS + 3
        );
    }

    /// A transport error with a cause, as hyper and reqwest wrap theirs.
    #[derive(Debug)]
    struct Wrapped(&'static str, Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    /// rustls's error as the client sees it: inside an `io::Error` inside the transport's.
    #[cfg(feature = "tls")]
    fn from_tls(e: rustls::Error) -> Wrapped {
        Wrapped(
            "client error (Connect)",
            Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        )
    }

    #[test]
    #[cfg(feature = "tls")]
    fn consul_tls_failures_name_the_variable_to_set() {
        let hint = |e: rustls::Error| tls_hint(&from_tls(e), true).unwrap_or_default();
        assert!(
            hint(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
            .contains("CONSUL_CACERT")
        );
        assert!(
            hint(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))
            .contains("CONSUL_CAPATH")
        );
        assert!(
            hint(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
            ))
            .contains("CONSUL_TLS_SERVER_NAME")
        );
        for alert in [
            rustls::AlertDescription::CertificateRequired,
            rustls::AlertDescription::UnknownCA,
            rustls::AlertDescription::BadCertificate,
            rustls::AlertDescription::CertificateUnknown,
        ] {
            assert!(
                hint(rustls::Error::AlertReceived(alert)).contains("CONSUL_CLIENT_CERT"),
                "{alert:?}"
            );
        }
        assert_eq!(
            tls_hint(
                &from_tls(rustls::Error::AlertReceived(
                    rustls::AlertDescription::HandshakeFailure
                )),
                true
            ),
            None
        );
        // The same words without rustls's error behind them say nothing.
        let refused = Wrapped(
            "tcp connect error",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(tls_hint(&refused, true), None);
        let text_only = Wrapped(
            "client error (Connect)",
            Box::new(std::io::Error::other(
                "invalid peer certificate: UnknownIssuer",
            )),
        );
        assert_eq!(tls_hint(&text_only, true), None);
    }

    #[test]
    fn consul_answering_before_the_request_is_named_too_many_connections() {
        // hyper's words when the 429 Consul writes on accepting a connection over its
        // per-client limit comes before the request was sent.
        let early = Wrapped(
            "client error (SendRequest)",
            Box::new(std::io::Error::other(
                "received unexpected message from connection",
            )),
        );
        let e = transport_error(
            early,
            false,
            "http://x".into(),
            Duration::ZERO,
            false,
            &Secrets::new(Vec::new()),
        );
        assert!(matches!(e, Error::TooManyConnections { .. }), "{e:?}");
        assert!(
            e.to_string().contains("limits.http_max_conns_per_client"),
            "{e}"
        );
    }

    #[test]
    fn consul_transport_errors_keep_their_source_unless_it_shows_a_secret() {
        let secrets = Secrets::new(vec!["tok-9f8e7d6c-secret".to_owned()]);
        let unreachable = |e: Wrapped| match transport_error(
            e,
            false,
            "http://x".into(),
            Duration::ZERO,
            false,
            &secrets,
        ) {
            Error::Unreachable {
                message, source, ..
            } => (message, source),
            other => panic!("expected Unreachable, got {other:?}"),
        };
        let (message, source) = unreachable(Wrapped(
            "connection error",
            Box::new(std::io::Error::other("reset by peer")),
        ));
        assert_eq!(message, "connection error: reset by peer");
        let source = source.expect("kept");
        assert_eq!(source.to_string(), "connection error");
        assert_eq!(source.source().unwrap().to_string(), "reset by peer");

        // A transport text that echoes the token: scrubbed, and no source to bring it back.
        let (message, source) = unreachable(Wrapped(
            "invalid header",
            Box::new(std::io::Error::other("tok-9f8e7d6c-secret")),
        ));
        assert_eq!(message, "invalid header: <redacted>");
        assert!(source.is_none());

        let timeout = transport_error(
            Wrapped("timed out", Box::new(std::io::Error::other("late"))),
            true,
            "http://x".into(),
            Duration::from_secs(3),
            false,
            &secrets,
        );
        assert!(
            matches!(timeout, Error::Timeout { after, .. } if after == Duration::from_secs(3)),
            "{timeout:?}"
        );
    }

    #[test]
    fn consul_causes_look_inside_io_errors() {
        // As a TLS failure reaches the client: inside an `io::Error` inside the transport's.
        #[derive(Debug)]
        struct Leaf;
        impl fmt::Display for Leaf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cannot decrypt")
            }
        }
        impl StdError for Leaf {}
        let e = Wrapped(
            "client error (Connect)",
            Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, Leaf)),
        );
        let found: Vec<String> = causes(&e).map(|c| c.to_string()).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[2].contains("cannot decrypt"), "{found:?}");
    }

    #[test]
    fn consul_error_chain_skips_repeats() {
        let inner = std::io::Error::other("refused");
        assert_eq!(chain(&inner), "refused");
        let e = Wrapped("connect failed", Box::new(std::io::Error::other("refused")));
        assert_eq!(chain(&e), "connect failed: refused");
        let e = Wrapped(
            "connect failed: refused",
            Box::new(std::io::Error::other("refused")),
        );
        assert_eq!(chain(&e), "connect failed: refused");
    }
}
