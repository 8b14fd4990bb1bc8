//! Turns Nagle's algorithm off (`TCP_NODELAY`) on every accepted admission connection, before
//! anything else touches it.
//!
//! A TLS server writes in small pieces: the session tickets after the handshake, then the
//! response's records. With Nagle on, a small write waits until the previous one is
//! acknowledged, and a client that delays its ACK (up to 40 ms on Linux) holds the answer back
//! that long: the first request on a new connection took 42–46 ms now and then. Go's servers (the
//! API server, Gatekeeper) set `TCP_NODELAY` on every connection; axum-server's acceptors do not
//! unless asked, and its own `NoDelayAcceptor` cannot wrap another acceptor.

use axum_server::accept::Accept;
use tokio::net::TcpStream;

/// Sets `TCP_NODELAY` on the stream, then hands it to the acceptor it wraps.
#[derive(Debug, Clone, Copy)]
pub struct NoDelay<A>(pub A);

impl<A, S> Accept<TcpStream, S> for NoDelay<A>
where
    A: Accept<TcpStream, S>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = A::Future;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // A socket that refuses the option still serves, only slower: not worth dropping it.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
        self.0.accept(stream, service)
    }
}

#[cfg(test)]
mod tests {
    use axum_server::accept::DefaultAcceptor;

    use super::*;

    #[tokio::test]
    async fn accepted_streams_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let ((accepted, _), _client) =
            tokio::join!(async { listener.accept().await.unwrap() }, client);
        assert!(!accepted.nodelay().unwrap(), "Nagle starts on");
        let (stream, ()) = NoDelay(DefaultAcceptor).accept(accepted, ()).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }
}
