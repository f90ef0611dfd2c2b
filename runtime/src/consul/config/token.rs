//! The ACL token: a secret that never shows, read from code, a variable or a file.

use std::fmt;
use std::path::PathBuf;

use reqwest::header::HeaderValue;

use super::{Set, config_error};
use crate::Error;

const REDACTED: &str = "<redacted>";

/// A secret (an ACL token, a basic-auth password). `Debug` and `Display` print
/// `<redacted>`; only [`Token::secret`] gives the value.
///
/// ```
/// use discoverable::consul::Token;
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

pub(super) fn resolve_token(
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
