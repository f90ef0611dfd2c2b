//! The one backoff policy of every Consul retry loop: exponential from `min`, capped at `max`,
//! with "equal jitter" (each delay drawn from its upper half) so many instances do not retry in
//! step, and no delay ever exceeds `max`.

use std::time::Duration;

/// An endless iterator of delays, each in `[d/2, d]` where `d` grows from `min` to `max`.
pub(crate) fn backoff(
    min: Duration,
    max: Duration,
) -> impl Iterator<Item = Duration> + Send + use<> {
    let ceilings = std::iter::successors(Some(min.min(max)), move |d| {
        Some(d.saturating_mul(2).min(max))
    });
    ceilings.map(|d| d.mul_f64(0.5 + crate::random::unit() / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_under_the_cap_with_jitter() {
        let delays: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(2))
            .take(20)
            .collect();
        assert_eq!(delays.len(), 20);
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(2)),
            "never above the cap: {delays:?}"
        );
        assert!(
            delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100),
            "{delays:?}"
        );
        assert!(
            delays[19] >= Duration::from_secs(1),
            "at the cap, in its upper half: {delays:?}"
        );
    }
}
