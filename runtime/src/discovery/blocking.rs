//! The one loop every blocking query of the runtime runs in: the instance watch, the catalog
//! watch, and the registrar's watch on the instance's own registration.
//!
//! It owns what each of them would otherwise get wrong on its own: where the next read waits
//! from (a [`Cursor`]: Consul's index, with [`next_index`]'s rules: a first read without one,
//! an index that went backwards read afresh; or the agent's content hash), a fresh read after
//! any failure (the agent may have restarted without its state, and a read blocking on the
//! old position would be held for its whole wait), backoff with jitter between failed reads,
//! and telling an answer that came back at once without moving from one that waited. What a
//! read returns, what its caller keeps of it (the last good value, marked stale while reads
//! fail) and when to stop, is the caller's.

use std::future::Future;
use std::time::Duration;

use crate::consul::{Indexed, QueryOptions, next_index};
use crate::error::Error;

/// Where a blocking read waits from: what changed since it.
pub(crate) trait Cursor: Clone + PartialEq {
    /// Where the next read waits from, after one that waited from `previous` (`None`: a
    /// fresh read) was answered at `answered`.
    fn after(previous: Option<&Self>, answered: Option<Self>) -> Option<Self>;
}

/// Consul's `X-Consul-Index`, for `?index=`.
impl Cursor for u64 {
    fn after(previous: Option<&u64>, answered: Option<u64>) -> Option<u64> {
        let next = next_index(previous.copied().unwrap_or(0), answered.unwrap_or(0));
        // Index 0 is a plain read, never a wait.
        (next > 0).then_some(next)
    }
}

/// The agent's `X-Consul-ContentHash`, for `?hash=`: an answer without one is read afresh.
impl Cursor for String {
    fn after(_: Option<&String>, answered: Option<String>) -> Option<String> {
        answered
    }
}

/// What one read brought.
pub(crate) enum Step<T, C = u64> {
    /// Consul answered, with this value at this position.
    Fresh {
        value: T,
        at: Option<C>,
        /// The read waited from a position and came back at once, still there: it did not
        /// block. Reading again at once would spin as fast as Consul answers.
        at_once_unchanged: bool,
    },
    /// The read failed.
    Failed(Error),
}

/// What the loop does after a step.
pub(crate) enum Then<R> {
    /// Go on: after an answer, wait from it at once; after a failure, read afresh after the
    /// backoff.
    Go,
    /// The answer was of no use (it did not block, or cannot be blocked on): read again from
    /// the same position after the backoff.
    BackOff,
    /// Stop, with this.
    Stop(R),
}

/// How a blocking query is repeated: its wait, and the backoff between failed reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blocking {
    pub(crate) wait: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
}

impl Blocking {
    /// Reads with `read` again and again, each read waiting from where the last answer was,
    /// and hands every step to `on`, until `on` stops the loop (its value is returned) or
    /// `closed` resolves (`None`). `read` gets the position to wait from, and returns the
    /// value and the position it answered at.
    pub(crate) async fn run_at<C, T, R, Rd, F>(
        self,
        mut read: Rd,
        closed: impl Future<Output = ()>,
        mut on: impl FnMut(Step<T, C>) -> Then<R>,
    ) -> Option<R>
    where
        C: Cursor,
        Rd: FnMut(Option<C>) -> F,
        F: Future<Output = Result<(T, Option<C>), Error>>,
    {
        tokio::pin!(closed);
        let new_backoff = || crate::retry::backoff(self.retry_min, self.retry_max);
        let mut backoff = new_backoff();
        let mut cursor: Option<C> = None;
        loop {
            let asked = tokio::time::Instant::now();
            let answer = tokio::select! {
                () = &mut closed => return None,
                answer = read(cursor.clone()) => answer,
            };
            let pause = match answer {
                Ok((value, at)) => {
                    let at_once_unchanged =
                        cursor.is_some() && at == cursor && asked.elapsed() < self.wait / 2;
                    let step = Step::Fresh {
                        value,
                        at: at.clone(),
                        at_once_unchanged,
                    };
                    match on(step) {
                        Then::Stop(r) => return Some(r),
                        Then::Go => {
                            backoff = new_backoff();
                            cursor = C::after(cursor.as_ref(), at);
                            continue;
                        }
                        Then::BackOff => backoff.next().unwrap_or(self.retry_max),
                    }
                }
                Err(e) => match on(Step::Failed(e)) {
                    Then::Stop(r) => return Some(r),
                    Then::Go | Then::BackOff => {
                        cursor = None;
                        backoff.next().unwrap_or(self.retry_max)
                    }
                },
            };
            tokio::select! {
                () = &mut closed => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// [`run_at`](Self::run_at) for a query on Consul's index: `base` holds the query's own
    /// options (datacenter, filter, ...); the loop sets its index and wait. Runs until
    /// `closed` resolves.
    pub(crate) async fn run<T, R, F>(
        self,
        base: QueryOptions,
        mut read: R,
        closed: impl Future<Output = ()>,
        mut on: impl FnMut(Step<T>),
    ) where
        R: FnMut(QueryOptions) -> F,
        F: Future<Output = Result<Indexed<T>, Error>>,
    {
        let read = |index: Option<u64>| {
            let answer = read(QueryOptions {
                index,
                wait: Some(self.wait),
                ..base.clone()
            });
            async move { answer.await.map(|found| (found.value, Some(found.index))) }
        };
        self.run_at(read, closed, |step| {
            on(step);
            Then::<()>::Go
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs the loop over scripted answers (an index, or `None` for a failure) until they
    /// run out; returns the index each read asked for.
    async fn asked(script: &[Option<u64>]) -> Vec<Option<u64>> {
        let answers: Arc<Mutex<VecDeque<Option<u64>>>> =
            Arc::new(Mutex::new(script.iter().copied().collect()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done_tx = Mutex::new(Some(done_tx));
        let blocking = Blocking {
            wait: Duration::from_secs(60),
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(2),
        };
        let read = |options: QueryOptions| {
            seen.lock().unwrap().push(options.index);
            let next = answers.lock().unwrap().pop_front();
            if next.is_none() {
                done_tx.lock().unwrap().take().map(|tx| tx.send(()));
            }
            async move {
                match next {
                    Some(Some(index)) => Ok(Indexed {
                        value: (),
                        index,
                        known_leader: true,
                        last_contact: Duration::ZERO,
                    }),
                    Some(None) => Err(Error::Timeout {
                        addr: "127.0.0.1:8500".into(),
                        after: Duration::from_secs(1),
                    }),
                    None => std::future::pending().await,
                }
            }
        };
        blocking
            .run(
                QueryOptions::default(),
                read,
                async {
                    let _ = done_rx.await;
                },
                |_| {},
            )
            .await;
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn blocks_on_the_last_index_and_reads_afresh_after_a_failure_or_a_reset() {
        assert_eq!(
            asked(&[Some(5), Some(9), None, Some(3), Some(2), Some(0)]).await,
            [
                None,    // first read: no index
                Some(5), // blocks on the answer's index
                Some(9), // fails: the agent may have restarted ...
                None,    // ... so read afresh
                Some(3), // went backwards: read afresh
                None,    // Consul's 0: block on 1, not busy-loop
                Some(1),
            ]
        );
    }
}
