//! Task handles that end their task when dropped, so nothing a request or an instance started
//! outlives it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A task handle that aborts the task when dropped (a no-op once it finished). Awaiting it
/// gives the task's result.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}
