//! The one probe of the instance's own health route before registration.
//!
//! A plain HTTP/1.1 request over a fresh TCP connection: no client to build, no TLS set-up,
//! so the probe costs a loopback round trip and the instance is registered (as passing)
//! right after it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::consul::CheckStatus;

/// `GET <path>` on `addr`; the answer's status mapped as Consul's HTTP check maps it (2xx
/// passing, 429 warning, anything else or no answer within `timeout` critical).
pub(crate) async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> CheckStatus {
    match tokio::time::timeout(timeout, status_code(addr, path)).await {
        Ok(Ok(code)) => {
            tracing::debug!(%addr, path, code, "probed own health route");
            match code {
                200..=299 => CheckStatus::Passing,
                429 => CheckStatus::Warning,
                _ => CheckStatus::Critical,
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(%addr, path, error = %e, "own health route did not answer; registering as critical");
            CheckStatus::Critical
        }
        Err(_) => {
            tracing::warn!(%addr, path, ?timeout, "own health route timed out; registering as critical");
            CheckStatus::Critical
        }
    }
}

async fn status_code(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: discoverable-probe\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // "HTTP/1.1 200 OK": the code is the second word of the first line.
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < 12 {
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    std::str::from_utf8(&head[..len])
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, http::StatusCode, routing::get};

    async fn server(code: StatusCode) -> SocketAddr {
        let app = Router::new().route("/health", get(move || async move { code }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn maps_codes_as_consul_does() {
        let t = Duration::from_secs(5);
        assert_eq!(
            probe(server(StatusCode::OK).await, "/health", t).await,
            CheckStatus::Passing
        );
        assert_eq!(
            probe(server(StatusCode::TOO_MANY_REQUESTS).await, "/health", t).await,
            CheckStatus::Warning
        );
        assert_eq!(
            probe(server(StatusCode::SERVICE_UNAVAILABLE).await, "/health", t).await,
            CheckStatus::Critical
        );
        assert_eq!(
            probe(server(StatusCode::OK).await, "/missing", t).await,
            CheckStatus::Critical
        );
    }

    #[tokio::test]
    async fn no_answer_is_critical() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            probe(closed, "/health", Duration::from_secs(5)).await,
            CheckStatus::Critical
        );
        // Accepts but never answers: cut at the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        assert_eq!(
            probe(addr, "/health", Duration::from_millis(100)).await,
            CheckStatus::Critical
        );
        drop(silent);
    }
}
