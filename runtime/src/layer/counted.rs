//! A streamed response counts as in flight until its body ends.
//!
//! A response whose body is in memory (a string, JSON, bytes: its length is known) is done
//! once the app returned it. One whose body streams (server-sent events, a file, a gRPC
//! stream) is not: its body keeps the request's count until it has sent its last frame or is
//! dropped (the client went away, or the drain's bound cut the connection). Only axum's
//! `Body` is wrapped, as `serve` and axum's `Router` answer with it; with any other body type
//! the count ends when the response's head is ready.

use std::any::Any;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http::Response;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::instance::InFlight;

/// Hands `in_flight` to the response's body when that body streams, so the count holds until
/// the body ends; otherwise the count ends with `in_flight` dropped here.
#[inline]
pub(crate) fn until_body_ends<B: 'static>(response: &mut Response<B>, in_flight: InFlight) {
    // The body is changed in place, the response not moved; telling axum's body from another
    // is a type comparison, no allocation.
    if let Some(body) = (response.body_mut() as &mut dyn Any).downcast_mut::<Body>() {
        if streams(body) {
            let inner = std::mem::take(body);
            *body = Body::new(Counted {
                body: inner,
                in_flight: Some(in_flight),
            });
        }
    }
}

/// Whether the body's length is unknown: it is produced as it is sent.
fn streams(body: &Body) -> bool {
    let hint = http_body::Body::size_hint(body);
    hint.exact().is_none() && !http_body::Body::is_end_stream(body)
}

pin_project! {
    /// A body that holds its request's in-flight count until its last frame.
    struct Counted {
        #[pin]
        body: Body,
        in_flight: Option<InFlight>,
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if frame.is_none() {
            // The last frame went out: the request is done, even if the connection lingers.
            this.in_flight.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
