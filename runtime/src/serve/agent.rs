//! What the running instances of one service share: one client of their agent, and one
//! blocking read on their registrations.
//!
//! A blocking read holds a connection for its whole wait, and Consul allows each client
//! address 200 connections by default (`limits.http_max_conns_per_client`). One read per
//! instance would cap a process at about 200 instances, and each held read costs memory in
//! the process. So one instance at a time, the *holder*, blocks on its own registration's
//! hash; the others read theirs without blocking, when the holder's read failed or found
//! its registration gone (what an agent that restarted, or went away, does to all of them),
//! and at least every [`POLL`] (what an operator removing one instance does to that one).
//! When the holder stops, another instance takes over its read.
//!
//! A process with one instance of a service behaves, and reads, as if it had the read to
//! itself.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::consul::{AgentService, Client, Config};
use crate::error::Error;

/// How long one blocking read on a registration waits for a change.
pub(crate) const WATCH_WAIT: Duration = Duration::from_secs(60);
/// How long an instance that does not hold the read goes without reading its registration:
/// as long as the holder's read waits.
const POLL: Duration = WATCH_WAIT;

/// Where a service's instances find what they share while any of them runs: a [`Link`]
/// lives as long as one of them holds it, so a service served again later (on another
/// runtime, say) starts afresh.
#[derive(Default)]
pub(crate) struct Slot {
    current: Mutex<Weak<Link>>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Slot {
    /// The link the service's running instances share, made for `config` when none runs.
    pub(crate) fn link(&self, config: &Config) -> Result<Arc<Link>, Error> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = current.upgrade() {
            return Ok(link);
        }
        let link = Arc::new(Link {
            client: Client::new(config.clone())?,
            holder: Mutex::new(None),
            nudges: watch::Sender::new(0),
            reads: AtomicU64::new(0),
        });
        *current = Arc::downgrade(&link);
        Ok(link)
    }
}

/// One client of the agent, and who holds the blocking read.
pub(crate) struct Link {
    pub(crate) client: Client,
    /// The ID of the instance whose read blocks, if any.
    holder: Mutex<Option<String>>,
    /// Counts the holder's calls to the others to read.
    nudges: watch::Sender<u64>,
    /// Counts the reads that did not block, to tell each from the last (see [`Held`]).
    reads: AtomicU64,
}

/// Where an instance's next read of its registration stands: the agent's content hash, and
/// which read that did not block saw it (`0` for a blocking one). Two reads that did not
/// block never compare equal, so one that answers at once with the hash of the last is not
/// taken for a read that failed to block.
#[derive(Clone, PartialEq)]
pub(crate) struct Held {
    hash: String,
    read: u64,
}

impl crate::discovery::blocking::Cursor for Held {
    fn after(_: Option<&Held>, answered: Option<Held>) -> Option<Held> {
        answered
    }
}

/// How an instance reads its registration next.
enum Next {
    /// Block on this hash: the instance holds the read.
    Block(String),
    /// Read without blocking, now.
    Now,
}

impl Link {
    /// How the instance `id` reads its registration from now on: it gives the blocking read
    /// up, if it holds it, when the reader is dropped.
    pub(crate) fn reader<'a>(&'a self, id: &'a str) -> Reader<'a> {
        Reader {
            link: self,
            id,
            nudged: Nudged::default(),
        }
    }

    /// Whether `id` holds the blocking read, taking it when nobody does.
    fn hold(&self, id: &str) -> bool {
        let mut holder = self.holder.lock().unwrap_or_else(PoisonError::into_inner);
        match holder.as_deref() {
            Some(held) => held == id,
            None => {
                *holder = Some(id.to_owned());
                true
            }
        }
    }

    /// `id` stops reading: if it held the read, another instance takes it over, and all read
    /// now.
    fn release(&self, id: &str) {
        let mut holder = self.holder.lock().unwrap_or_else(PoisonError::into_inner);
        if holder.as_deref() == Some(id) {
            *holder = None;
            drop(holder);
            self.nudge();
        }
    }

    /// Calls every instance that does not hold the read to read now.
    fn nudge(&self) {
        self.nudges.send_modify(|n| *n += 1);
    }

    /// What an instance whose last read stands at `at` does next (`None`: the last failed, or
    /// none was made: read now). One that does not hold the read waits until the holder
    /// calls, or [`POLL`] passed, first.
    async fn next(&self, id: &str, at: Option<Held>, nudged: &Nudged) -> Next {
        let Some(at) = at else {
            nudged.seen.store(*self.nudges.borrow(), Ordering::Relaxed);
            return Next::Now;
        };
        if self.hold(id) {
            return Next::Block(at.hash);
        }
        let mut calls = self.nudges.subscribe();
        let since = nudged.seen.load(Ordering::Relaxed);
        // Spread over a fifth of the period, so instances started together read apart.
        let poll = POLL.mul_f64(0.8 + 0.2 * crate::random::unit());
        let _ = tokio::time::timeout(poll, calls.wait_for(|n| *n != since)).await;
        nudged.seen.store(*calls.borrow(), Ordering::Relaxed);
        // The holder may have gone meanwhile: take its read over.
        if self.hold(id) {
            Next::Block(at.hash)
        } else {
            Next::Now
        }
    }

    /// The position a read that did not block answered at.
    fn read_at(&self, hash: Option<String>) -> Option<Held> {
        let read = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        hash.map(|hash| Held { hash, read })
    }
}

/// The last call of the holder an instance answered.
#[derive(Default)]
struct Nudged {
    seen: AtomicU64,
}

/// One instance's reads of its registration.
pub(crate) struct Reader<'a> {
    link: &'a Link,
    id: &'a str,
    nudged: Nudged,
}

impl Reader<'_> {
    /// Reads the registration, its last read standing at `at` (`None`: it failed, or none
    /// was made): the holder blocks on its hash; another instance reads once the holder
    /// calls, or [`POLL`] passed. Returns the registration (`None`: the agent does not hold
    /// it) and where the read answered.
    pub(crate) async fn read(
        &self,
        at: Option<Held>,
    ) -> Result<(Option<AgentService>, Option<Held>), Error> {
        let (link, id) = (self.link, self.id);
        match link.next(id, at, &self.nudged).await {
            Next::Block(hash) => {
                let found = link
                    .client
                    .agent_service(id, Some(&hash), Some(WATCH_WAIT))
                    .await;
                // What cut this read, or took this registration, may have done the same to
                // the others: they read now.
                if !matches!(found, Ok(ref found) if found.value.is_some()) {
                    link.nudge();
                }
                let found = found?;
                Ok((found.value, found.hash.map(|hash| Held { hash, read: 0 })))
            }
            Next::Now => {
                let found = link
                    .client
                    .agent_service(id, None, Some(WATCH_WAIT))
                    .await?;
                Ok((found.value, link.read_at(found.hash)))
            }
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.link.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Arc<Link> {
        Slot::default().link(&Config::default()).unwrap()
    }

    /// Where a blocking read that answered with `hash` stands.
    fn at(hash: &str) -> Option<Held> {
        Some(Held {
            hash: hash.to_owned(),
            read: 0,
        })
    }

    #[tokio::test]
    async fn the_first_instance_holds_the_read_and_the_others_wait_for_its_call() {
        let link = link();
        let (a, b) = (Nudged::default(), Nudged::default());
        assert!(matches!(link.next("a", None, &a).await, Next::Now));
        assert!(matches!(link.next("a", at("h"), &a).await, Next::Block(h) if h == "h"));
        assert!(matches!(link.next("b", None, &b).await, Next::Now));
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { matches!(link.next("b", at("g"), &b).await, Next::Now) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "b waits for a call or the poll");
        link.nudge();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("b reads once called")
                .unwrap()
        );
    }

    #[tokio::test]
    async fn when_the_holder_stops_a_waiting_instance_takes_its_read_over() {
        let link = link();
        assert!(link.hold("a"));
        let b = Nudged::default();
        let waiting = {
            let link = link.clone();
            tokio::spawn(async move { link.next("b", at("g"), &b).await })
        };
        tokio::task::yield_now().await;
        link.release("b");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "only the holder's release calls");
        link.release("a");
        let next = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("b reads once the holder stopped")
            .unwrap();
        assert!(matches!(next, Next::Block(h) if h == "g"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_that_is_not_called_reads_within_the_poll() {
        let link = link();
        assert!(link.hold("a"));
        let started = tokio::time::Instant::now();
        let next = link.next("b", at("g"), &Nudged::default()).await;
        assert!(matches!(next, Next::Now));
        let waited = started.elapsed();
        assert!(waited >= POLL.mul_f64(0.8) && waited <= POLL, "{waited:?}");
    }

    #[test]
    fn two_reads_that_did_not_block_never_stand_at_the_same_place() {
        let link = link();
        let (x, y) = (
            link.read_at(Some("h".into())),
            link.read_at(Some("h".into())),
        );
        assert!(x.is_some() && x != y);
        assert!(at("h") == at("h"), "blocking reads compare by hash");
        assert!(link.read_at(None).is_none());
    }

    #[test]
    fn a_service_served_again_after_all_its_instances_stopped_gets_a_new_link() {
        let slot = Slot::default();
        let first = slot.link(&Config::default()).unwrap();
        let again = slot.link(&Config::default()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "shared while one runs");
        let weak = Arc::downgrade(&first);
        drop((first, again));
        assert!(weak.upgrade().is_none());
        let later = slot.link(&Config::default()).unwrap();
        assert!(Arc::ptr_eq(&later, &slot.link(&Config::default()).unwrap()));
    }
}
