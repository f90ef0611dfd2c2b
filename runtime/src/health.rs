//! Health states, user health indicators, and the report the health route answers with.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::task::AbortOnDrop;

/// The health of an instance or of one indicator, mapped onto Consul's check states.
///
/// | state      | health route | Consul check | Fabio routes it |
/// |------------|--------------|--------------|-----------------|
/// | `Up`       | 200          | passing      | yes             |
/// | `Degraded` | 429          | warning      | no (by default) |
/// | `Down`     | 503          | critical     | no              |
///
/// A degraded instance stays registered but leaves Fabio's routing table, because Fabio routes
/// only passing instances unless `registry.consul.service.status` says otherwise.
///
/// ```
/// use discoverable::Health;
/// assert_eq!(Health::from(true), Health::Up);
/// assert_eq!(Health::Up.max(Health::Degraded), Health::Degraded);
/// assert_eq!(Health::Down.status_code(), http::StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Serving normally.
    Up,
    /// Serving, but should not get new traffic.
    Degraded,
    /// Not serving.
    Down,
}

impl Health {
    /// The HTTP status the health route answers with, as Consul's HTTP check reads it:
    /// 200, 429 or 503.
    pub const fn status_code(self) -> http::StatusCode {
        match self {
            Health::Up => http::StatusCode::OK,
            Health::Degraded => http::StatusCode::TOO_MANY_REQUESTS,
            Health::Down => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The lower-case name used in the health route's JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    pub(crate) const fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) const fn from_u8(v: u8) -> Option<Health> {
        match v {
            0 => Some(Health::Up),
            1 => Some(Health::Degraded),
            2 => Some(Health::Down),
            _ => None,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<bool> for Health {
    fn from(up: bool) -> Self {
        if up { Health::Up } else { Health::Down }
    }
}

type BoxHealthFuture = Pin<Box<dyn Future<Output = Health> + Send>>;

/// A named user health indicator: an async function the health route calls.
#[derive(Clone)]
pub(crate) struct Indicator {
    pub(crate) name: Arc<str>,
    run: Arc<dyn Fn() -> BoxHealthFuture + Send + Sync>,
}

impl fmt::Debug for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Indicator")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Indicator {
    pub(crate) fn new<F, Fut, H>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = H> + Send + 'static,
        H: Into<Health>,
    {
        let name: String = name.into();
        Indicator {
            name: name.into(),
            run: Arc::new(move || {
                let fut = f();
                Box::pin(async move { fut.await.into() })
            }),
        }
    }

    /// Runs the indicator, cut at `timeout`: a hung or panicking indicator counts as down.
    /// The indicator's task ends with the run: a hung one is aborted at the timeout (or when
    /// the run is dropped), so no task outlives its health request.
    async fn run(&self, timeout: Duration) -> Health {
        let fut = (self.run)();
        let mut task = AbortOnDrop(tokio::spawn(fut));
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(health)) => health,
            Ok(Err(_panicked)) => Health::Down,
            Err(_elapsed) => Health::Down,
        }
    }
}

/// What the health route reports: the overall state and each indicator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The overall state: the worst of the instance's own state and every indicator.
    pub status: Health,
    /// Each indicator by name, in the order they were added.
    pub checks: Vec<(String, Health)>,
}

impl HealthReport {
    /// Runs every indicator concurrently, each cut at `timeout`, and folds in `base`.
    pub(crate) async fn collect(base: Health, indicators: &[Indicator], timeout: Duration) -> Self {
        let mut set = tokio::task::JoinSet::new();
        for (i, indicator) in indicators.iter().enumerate() {
            let indicator = indicator.clone();
            set.spawn(async move { (i, indicator.run(timeout).await) });
        }
        let mut states = vec![Health::Down; indicators.len()];
        while let Some(done) = set.join_next().await {
            if let Ok((i, health)) = done {
                states[i] = health;
            }
        }
        let checks: Vec<(String, Health)> = indicators
            .iter()
            .zip(states)
            .map(|(ind, h)| (ind.name.to_string(), h))
            .collect();
        let status = checks.iter().map(|(_, h)| *h).fold(base, Health::max);
        HealthReport { status, checks }
    }

    /// The JSON body: `{"status":"up","checks":{"db":"up"}}`. Names and states only.
    pub fn to_json(&self) -> String {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|(name, h)| (name.clone(), serde_json::Value::from(h.as_str())))
            .collect();
        serde_json::json!({ "status": self.status.as_str(), "checks": checks }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn worst_state_wins_and_hung_indicators_count_as_down() {
        let indicators = vec![
            Indicator::new("db", || async { true }),
            Indicator::new("cache", || async { Health::Degraded }),
            Indicator::new("hangs", std::future::pending::<Health>),
        ];
        let report =
            HealthReport::collect(Health::Up, &indicators, Duration::from_millis(50)).await;
        assert_eq!(report.status, Health::Down);
        assert_eq!(
            report.checks,
            vec![
                ("db".into(), Health::Up),
                ("cache".into(), Health::Degraded),
                ("hangs".into(), Health::Down)
            ]
        );
        assert_eq!(
            report.to_json(),
            r#"{"checks":{"cache":"degraded","db":"up","hangs":"down"},"status":"down"}"#
        );
    }

    #[tokio::test]
    async fn a_hung_indicator_is_aborted_at_its_timeout() {
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let indicators = vec![Indicator::new("hangs", move || {
            let guard = Dropped(flag.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Health>().await
            }
        })];
        let report =
            HealthReport::collect(Health::Up, &indicators, Duration::from_millis(20)).await;
        assert_eq!(report.status, Health::Down);
        // The hung future is dropped with its task, not left running.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hung indicator's task outlived its health request"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn panicking_indicator_counts_as_down() {
        let indicators = vec![Indicator::new("boom", || async {
            panic!("indicator failed");
            #[allow(unreachable_code)]
            true
        })];
        let report = HealthReport::collect(Health::Up, &indicators, Duration::from_secs(1)).await;
        assert_eq!(report.status, Health::Down);
    }

    #[tokio::test]
    async fn no_indicators_reports_base() {
        let report = HealthReport::collect(Health::Degraded, &[], Duration::from_secs(1)).await;
        assert_eq!(report.status, Health::Degraded);
        assert_eq!(report.to_json(), r#"{"checks":{},"status":"degraded"}"#);
    }
}
