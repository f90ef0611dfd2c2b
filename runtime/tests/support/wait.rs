//! Waiting on a condition with a deadline, never a bare sleep.

use std::time::Duration;

use tokio::time::Instant;

/// Polls `f` until it returns true; panics with `what` once `within` has passed.
pub async fn until<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
