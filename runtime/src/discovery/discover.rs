//! A [`Watch`] as a `tower::discover::Discover`, for `tower::balance::p2c::Balance`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tower::discover::Change;

use super::watch::{Endpoint, Watch, WatchStream};

/// Turns instance sets into `Change::Insert` / `Change::Remove`, making one service per
/// instance with `make`. An instance whose address or port changed is removed and inserted
/// again. While Consul is unreachable nothing is removed (the last good set stays).
///
/// ```no_run
/// # async fn run(discovery: discoverable::Discovery) {
/// use tower::balance::p2c::Balance;
///
/// let discover = discovery.watch("cool_app").start().discover(|endpoint| {
///     // Any tower Service that also implements `tower::load::Load`.
///     # let svc: tower::load::Constant<tower::util::BoxCloneService<(), (), std::convert::Infallible>, u32> = unimplemented!();
///     svc
/// });
/// let balancer = Balance::new(discover);
/// # let _ = balancer;
/// # }
/// ```
pub struct DiscoverEndpoints<F, S> {
    stream: WatchStream,
    make: F,
    current: HashMap<String, Endpoint>,
    pending: VecDeque<Change<String, S>>,
}

impl<F, S> fmt::Debug for DiscoverEndpoints<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverEndpoints")
            .field("current", &self.current.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// This watch as a `tower::discover::Discover` of one service per instance.
    pub fn discover<F, S>(self, make: F) -> DiscoverEndpoints<F, S>
    where
        F: FnMut(&Endpoint) -> S,
    {
        DiscoverEndpoints {
            stream: self.into_stream(),
            make,
            current: HashMap::new(),
            pending: VecDeque::new(),
        }
    }
}

impl<F, S> Unpin for DiscoverEndpoints<F, S> {}

impl<F, S> Stream for DiscoverEndpoints<F, S>
where
    F: FnMut(&Endpoint) -> S,
{
    type Item = Result<Change<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(change) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            let Some(set) = std::task::ready!(Pin::new(&mut this.stream).poll_next(cx)) else {
                return Poll::Ready(None);
            };
            if set.is_stale() || !set.is_known() {
                continue;
            }
            let next: HashMap<&str, &Endpoint> =
                set.endpoints().iter().map(|e| (e.id.as_str(), e)).collect();
            let removed: Vec<String> = this
                .current
                .iter()
                .filter(|(id, old)| {
                    next.get(id.as_str())
                        .is_none_or(|new| new.address != old.address || new.port != old.port)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in removed {
                this.current.remove(&id);
                this.pending.push_back(Change::Remove(id));
            }
            for (id, endpoint) in next {
                if !this.current.contains_key(id) {
                    this.current.insert(id.to_owned(), endpoint.clone());
                    this.pending
                        .push_back(Change::Insert(id.to_owned(), (this.make)(endpoint)));
                }
            }
        }
    }
}
