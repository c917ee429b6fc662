//! The bytes a websocket may send before it is let in.
//!
//! tungstenite's message and frame limits are fixed for a socket's life, and the limit after
//! `connection_init` ([`crate::config::ConnectionSettings::max_message_bytes`]) is too much to
//! read from a stranger. So the socket's reads are counted until its `connection_init` is
//! acknowledged: once they pass the budget, the next read fails and the socket is closed.
//! tungstenite's frame limit still refuses a larger frame from its header alone.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How many bytes a socket has read before its acknowledgement, shared by the socket's IO
/// and the loop that sees the acknowledgement.
#[derive(Clone, Debug)]
pub struct InboundBudget(Arc<State>);

#[derive(Debug)]
struct State {
    limit: usize,
    read: AtomicUsize,
    lifted: AtomicBool,
    exceeded: AtomicBool,
}

impl InboundBudget {
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(State {
            limit,
            read: AtomicUsize::new(0),
            lifted: AtomicBool::new(false),
            exceeded: AtomicBool::new(false),
        }))
    }

    /// From now on, reads are limited by tungstenite's message and frame limits only.
    pub fn lift(&self) {
        self.0.lifted.store(true, Ordering::Relaxed);
    }

    /// Whether a read failed because the budget was spent.
    pub fn exceeded(&self) -> bool {
        self.0.exceeded.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

/// A connection whose reads count against an [`InboundBudget`].
pub struct Metered<S> {
    inner: S,
    budget: InboundBudget,
}

impl<S> Metered<S> {
    pub fn new(inner: S, budget: InboundBudget) -> Self {
        Self { inner, budget }
    }
}

impl<S: AsyncRead + Unpin> Metered<S> {
    /// Reads and drops what the peer still sends, until it stops or `linger` has passed, so
    /// that closing does not reset the connection before the peer has read our close frame
    /// (a socket closed with unread input sends a reset, and the peer may lose what it had
    /// not read yet).
    pub async fn discard_for(&mut self, linger: Duration) {
        let mut sink = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + linger;
        while let Ok(Ok(read)) = tokio::time::timeout_at(deadline, self.inner.read(&mut sink)).await {
            if read == 0 {
                break;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let state = self.budget.0.clone();
        if state.lifted.load(Ordering::Relaxed) {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if state.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(Err(spent()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        // One read may pass the budget by at most a read buffer; its bytes are dropped with it.
        if state.read.fetch_add(read, Ordering::Relaxed) + read > state.limit {
            state.exceeded.store(true, Ordering::Relaxed);
            buf.set_filled(before);
            return Poll::Ready(Err(spent()));
        }
        Poll::Ready(Ok(()))
    }
}

fn spent() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the websocket sent too much before connection_init")
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn reads_past_the_budget_fail_until_it_is_lifted() {
        let (mut client, server) = tokio::io::duplex(64);
        let budget = InboundBudget::new(10);
        let mut metered = Metered::new(server, budget.clone());
        let mut buf = [0u8; 64];

        client.write_all(b"12345678").await.unwrap();
        assert_eq!(metered.read(&mut buf).await.unwrap(), 8);
        client.write_all(b"abc").await.unwrap();
        assert_eq!(metered.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(budget.exceeded());
        assert!(metered.read(&mut buf).await.is_err(), "a spent budget stays spent");

        let budget = InboundBudget::new(10);
        let (mut client, server) = tokio::io::duplex(64);
        let mut metered = Metered::new(server, budget.clone());
        budget.lift();
        client.write_all(&[7u8; 40]).await.unwrap();
        assert_eq!(metered.read(&mut buf).await.unwrap(), 40);
        assert!(!budget.exceeded());
    }
}
