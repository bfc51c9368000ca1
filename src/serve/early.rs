//! Early answers over HTTP/2 (issue 24): when graphsec answers before reading a request's body
//! (401, 400, 413), h2 ends the stream with `RST_STREAM(NO_ERROR)` after the response, as
//! RFC 9113 §8.1 allows. Common clients lose the response to it: curl 7.88 (Debian 12) reports
//! `(92) Stream error in the HTTP/2 framing layer` instead of the Graph error, in 2-97% of runs
//! depending on the body's size. So the serve loop keeps hold of a body the application dropped
//! unread ([`Tracked`]) and, before it sends the response, reads and discards a bounded amount
//! of it ([`drain`]): once the client has ended its half of the stream, the response closes the
//! stream and no reset follows. A body larger than the bound (or slower than the time bound)
//! still gets the reset: the bound keeps an early answer cheap, which is why it is early.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Most request-body bytes read and discarded after an early answer. 1 MiB is hyper's initial
/// HTTP/2 stream window, i.e. what a client may send without the server reading anyway, so
/// draining it costs no more than the client was already allowed to send (and about a
/// millisecond on a local network); it covers the bodies API clients send (a create, a
/// `$batch`, an action of 100 items are kilobytes).
const DRAIN_BYTES: usize = 1024 * 1024;
/// Most time spent reading it: a client that uploads slower than 1 MiB/s is not kept waiting
/// for its answer longer than this (it then gets the reset, as before).
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Where [`Tracked`] leaves a request body dropped before its end.
pub(super) type Slot = Arc<Mutex<Option<Incoming>>>;

/// A request body that, dropped before its end, moves the rest of the stream into its slot
/// instead of letting h2 reset it.
pub(super) struct Tracked {
    inner: Option<Incoming>,
    slot: Slot,
}

impl Tracked {
    pub(super) fn new(body: Incoming) -> (Tracked, Slot) {
        let slot = Slot::default();
        (
            Tracked {
                inner: Some(body),
                slot: slot.clone(),
            },
            slot,
        )
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !body.is_end_stream()
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(body);
        }
    }
}

/// Reads and discards what is left of `body`, within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
pub(super) async fn drain(mut body: Incoming) {
    let read = async {
        let mut left = DRAIN_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                if data.len() >= left {
                    return;
                }
                left -= data.len();
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
