//! The one backoff policy of every Consul retry loop: exponential from `min`, capped at `max`,
//! with jitter so many instances do not retry in step.

use std::time::Duration;

use backon::BackoffBuilder;

/// An endless iterator of delays.
pub(crate) fn backoff(min: Duration, max: Duration) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
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
        // Jitter adds up to one `min`-scaled step on top; never more than twice the cap.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        assert!(delays[0] < Duration::from_millis(250), "{delays:?}");
        assert!(delays[19] >= Duration::from_secs(2), "{delays:?}");
    }
}
