//! The admission request body: read whole, up to a limit, before the handler sees it; a body over
//! the limit is refused with a 413 that the client actually hears.
//!
//! Answering at the limit and dropping the rest loses the answer for a client that writes its
//! whole body before it reads. Over HTTP/1.1 (Python's `http.client`) the server closes with
//! unread data, the kernel resets the connection, and the client's write fails before it reads
//! anything. Over HTTP/2 (curl) the server resets the stream after its response
//! (`RST_STREAM NO_ERROR`, which the RFC allows), and curl reports a framing error with no
//! response. So the rest of an oversized body is read and thrown away, up to a second bound, and
//! the 413 follows the end of the body: the exchange ends cleanly and the connection stays usable.
//!
//! What is refused without reading: a body whose Content-Length is past the second bound (it
//! would not be read to its end anyway), and any oversized body whose client waits for
//! `100 Continue` (curl over HTTP/1.1 does): it hears the 413 instead and never sends the body.
//! Those answers, and one for a body that turns out longer than the second bound, close an
//! HTTP/1.x connection. How long a body may take is bounded by the request timeout around this
//! layer, how much is read by the second bound, and at most the limit is kept in memory.
//!
//! This layer only reads; it knows nothing of admission reviews.

use std::future::poll_fn;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::metrics::OversizedLabels;
use super::server::{MAX_BODY_BYTES, MAX_READ_BYTES};
use super::state::AppState;

/// How much of a request body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The largest body handed on.
    pub max: usize,
    /// The most read of an oversized body before giving up on reading it to its end.
    pub read_at_most: usize,
}

/// What became of the rest of a body over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// Read to its end and thrown away: the connection stays usable.
    Drained,
    /// Not read to its end (announced or found past [`BodyLimits::read_at_most`], or awaited
    /// behind `Expect: 100-continue`): an HTTP/1.x connection is closed after the answer.
    Unread,
}

impl Rest {
    fn label(self) -> &'static str {
        match self {
            Rest::Drained => "drained",
            Rest::Unread => "unread",
        }
    }
}

/// Why a body was not handed on.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Over [`BodyLimits::max`].
    #[error("request body over the limit ({})", .0.label())]
    TooLarge(Rest),
    /// Reading failed (the client went away or reset the stream) before the limit.
    #[error("failed to read the request body: {0}")]
    Failed(#[source] axum::Error),
}

/// The middleware: reads the body whole within [`MAX_BODY_BYTES`] and hands the request on
/// with it, or answers the refusal.
pub async fn read_whole(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = BodyLimits {
        max: MAX_BODY_BYTES,
        read_at_most: MAX_READ_BYTES,
    };
    let (parts, body) = request.into_parts();
    match read(&parts.headers, body, limits).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(Refusal::TooLarge(rest)) => {
            state
                .metrics
                .oversized
                .get_or_create(&OversizedLabels {
                    body: rest.label().into(),
                })
                .inc();
            tracing::info!(
                limit = limits.max,
                rest = rest.label(),
                "refused a request body over the limit"
            );
            too_large(parts.version, rest, limits.max)
        }
        Err(e @ Refusal::Failed(_)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// Reads `body` within `limits`.
pub async fn read(
    headers: &HeaderMap,
    mut body: Body,
    limits: BodyLimits,
) -> Result<Bytes, Refusal> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced
        && length > limits.max as u64
        && (length > limits.read_at_most as u64 || expects_continue(headers))
    {
        return Err(Refusal::TooLarge(Rest::Unread));
    }
    // Most bodies arrive in one frame and are handed on without a copy.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut received = 0usize;
    loop {
        let data = match next_data(&mut body).await {
            None => break,
            Some(Err(e)) => return Err(Refusal::Failed(e)),
            Some(Ok(data)) => data,
        };
        received = received.saturating_add(data.len());
        if received > limits.max {
            // Nothing of an oversized body is kept while the rest is read.
            drop((first, joined, data));
            return Err(Refusal::TooLarge(
                discard(&mut body, received, limits).await,
            ));
        }
        if first.is_none() && joined.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(earlier) = first.take() {
            // One allocation for an announced body; never more than the limit on its word.
            let announced = announced.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
            joined.reserve(announced.min(limits.max).max(earlier.len() + data.len()));
            joined.extend_from_slice(&earlier);
        }
        joined.extend_from_slice(&data);
    }
    Ok(match first {
        Some(only) => only,
        None => Bytes::from(joined),
    })
}

/// Reads and throws away the rest of an oversized body, `received` bytes in.
async fn discard(body: &mut Body, mut received: usize, limits: BodyLimits) -> Rest {
    while received <= limits.read_at_most {
        match next_data(body).await {
            None => return Rest::Drained,
            Some(Ok(data)) => received = received.saturating_add(data.len()),
            Some(Err(_)) => return Rest::Unread,
        }
    }
    Rest::Unread
}

/// The next data frame's bytes; trailers are skipped.
async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await? {
            Err(e) => return Some(Err(e)),
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
        }
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The 413, in controller-runtime's words. An HTTP/1.x connection whose body was not read to its
/// end is closed: what the client still sends cannot be told from its next request. (HTTP/2
/// resets just the stream, and forbids the header.)
fn too_large(version: Version, rest: Rest, max: usize) -> Response {
    let mut response = (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request entity is too large; limit is {max} bytes\n"),
    )
        .into_response();
    if rest == Rest::Unread && matches!(version, Version::HTTP_10 | Version::HTTP_11) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max: 10,
        read_at_most: 30,
    };

    /// A body that arrives in `chunks`, with no Content-Length of its own (as a chunked or an
    /// HTTP/2 body may).
    struct Chunks(std::collections::VecDeque<&'static str>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            let next = self.0.pop_front();
            std::task::Poll::Ready(
                next.map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes())))),
            )
        }
    }

    fn streamed(chunks: &[&'static str]) -> Body {
        Body::new(Chunks(chunks.iter().copied().collect()))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    async fn outcome(h: &[(&'static str, &'static str)], chunks: &[&'static str]) -> String {
        match read(&headers(h), streamed(chunks), LIMITS).await {
            Ok(bytes) => format!("ok {}", String::from_utf8_lossy(&bytes)),
            Err(Refusal::TooLarge(rest)) => format!("413 {}", rest.label()),
            Err(e @ Refusal::Failed(_)) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_handed_on_whole() {
        assert_eq!(outcome(&[], &[]).await, "ok ");
        assert_eq!(outcome(&[], &["0123456789"]).await, "ok 0123456789");
        assert_eq!(outcome(&[], &["012", "345", "6789"]).await, "ok 0123456789");
    }

    #[tokio::test]
    async fn the_rest_of_an_oversized_body_is_read_up_to_the_bound() {
        assert_eq!(outcome(&[], &["0123456789", "x"]).await, "413 drained");
        let thirty = ["0123456789", "0123456789", "0123456789"];
        assert_eq!(outcome(&[], &thirty).await, "413 drained");
        let past = ["0123456789", "0123456789", "0123456789", "x", "never read"];
        assert_eq!(outcome(&[], &past).await, "413 unread");
    }

    #[tokio::test]
    async fn an_announced_length_refuses_only_what_would_not_be_drained() {
        let body = ["0123456789", "x"];
        assert_eq!(
            outcome(&[("content-length", "11")], &body).await,
            "413 drained"
        );
        assert_eq!(
            outcome(&[("content-length", "31")], &body).await,
            "413 unread"
        );
        let asks = [("content-length", "11"), ("expect", "100-Continue")];
        assert_eq!(outcome(&asks, &body).await, "413 unread");
        // Expect alone refuses nothing: a body within the limit is read as usual.
        let small = [("content-length", "3"), ("expect", "100-continue")];
        assert_eq!(outcome(&small, &["abc"]).await, "ok abc");
    }

    #[test]
    fn only_an_http1_answer_over_an_unread_body_closes_the_connection() {
        let close = |v, rest| {
            too_large(v, rest, 10)
                .headers()
                .get(header::CONNECTION)
                .cloned()
        };
        assert_eq!(
            close(Version::HTTP_11, Rest::Unread),
            Some(HeaderValue::from_static("close"))
        );
        assert_eq!(close(Version::HTTP_11, Rest::Drained), None);
        assert_eq!(close(Version::HTTP_2, Rest::Unread), None);
    }
}
