//! The one loop every index-based blocking query of the runtime runs in: the instance watch
//! and the catalog watch.
//!
//! It owns what each of them would otherwise get wrong on its own: the index of the next read
//! and Consul's rules for it ([`next_index`]: a first read without an index, an index that
//! went backwards read afresh), a fresh read after any failure (the agent may have restarted
//! without its state, and a read blocking on the old, higher index would be held for its whole
//! wait), and backoff with jitter between failed reads. What a read returns, and what its
//! caller keeps of it (the last good value, marked stale while reads fail), is the caller's.

use std::future::Future;
use std::time::Duration;

use crate::consul::{Indexed, QueryOptions, next_index};
use crate::error::Error;

/// What one read brought.
pub(crate) enum Step<T> {
    /// Consul answered, with this value at this index.
    Fresh { value: T, index: u64 },
    /// The read failed. The next one, after the backoff, reads afresh without an index.
    Failed(Error),
}

/// How a blocking query is repeated: its wait, and the backoff between failed reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blocking {
    pub(crate) wait: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
}

impl Blocking {
    /// Reads with `read` again and again, each read blocking on the index of the last answer,
    /// and hands every outcome to `on`, until `closed` resolves. `base` holds the query's own
    /// options (datacenter, filter, ...); the loop sets its index and wait.
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
        tokio::pin!(closed);
        let new_backoff = || crate::retry::backoff(self.retry_min, self.retry_max);
        let mut backoff = new_backoff();
        let mut index = 0u64;
        loop {
            let options = QueryOptions {
                // Index 0 is a plain read, never a wait.
                index: (index > 0).then_some(index),
                wait: Some(self.wait),
                ..base.clone()
            };
            let answer = tokio::select! {
                () = &mut closed => return,
                answer = read(options) => answer,
            };
            match answer {
                Ok(found) => {
                    backoff = new_backoff();
                    index = next_index(index, found.index);
                    on(Step::Fresh {
                        value: found.value,
                        index: found.index,
                    });
                }
                Err(e) => {
                    on(Step::Failed(e));
                    index = 0;
                    let delay = backoff.next().unwrap_or(self.retry_max);
                    tokio::select! {
                        () = &mut closed => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
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
