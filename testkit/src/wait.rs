//! Waiting on a condition with a deadline, never a bare sleep: the one poll loop of the tests.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked.
const EVERY: Duration = Duration::from_millis(20);

/// What a probe of [`until`] or [`until_blocking`] returns: `true`, or `Some(value)`, once the
/// condition holds.
pub trait Condition {
    /// What the wait returns: `()` for a `bool`, `T` for an `Option<T>`.
    type Value;
    /// The value, once the condition holds.
    fn holds(self) -> Option<Self::Value>;
}

impl Condition for bool {
    type Value = ();
    fn holds(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn holds(self) -> Option<T> {
        self
    }
}

/// Polls `probe` until its condition holds and returns its value; panics naming `what` once
/// `within` has passed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// let mut n = 0;
/// let three = discoverable_testkit::until(Duration::from_secs(1), "the third try", || {
///     n += 1;
///     std::future::ready((n == 3).then_some(n))
/// })
/// .await;
/// assert_eq!(three, 3);
/// # });
/// ```
pub async fn until<F, Fut>(
    within: Duration,
    what: &str,
    mut probe: F,
) -> <Fut::Output as Condition>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Condition,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await.holds() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// [`until`] for a thread that is not in an async runtime.
pub fn until_blocking<C: Condition>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> C,
) -> C::Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().holds() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(EVERY);
    }
}
