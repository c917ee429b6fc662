//! Gives the memory of closed websockets back to the system.
//!
//! glibc's malloc keeps what a program frees in its arenas (one per thread that allocated,
//! up to eight per core) for later use, and returns it only from the top of an arena. After
//! a crowd of dashboard connections closes, their buffers and protocol state are free but
//! scattered between live allocations, so the process stays as large as it was at its peak.
//! `malloc_trim(0)` walks every arena and returns each whole free page.
//!
//! The walk holds each arena's lock, so it runs once after the closing has stopped for
//! [`QUIET`], on a blocking thread, not once per closed connection.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

/// How long no connection may have closed before the arenas are trimmed.
pub const QUIET: Duration = Duration::from_secs(1);

/// Hands freed memory back after connections close; cheap to clone.
#[derive(Clone)]
pub struct ArenaTrimmer {
    closed: Arc<Notify>,
}

impl ArenaTrimmer {
    /// Starts the task that trims after each wave of closes; needs a tokio runtime.
    pub fn start() -> Self {
        let closed = Arc::new(Notify::new());
        tokio::spawn(trim_after_each_wave(closed.clone()));
        Self { closed }
    }

    /// A connection has closed and freed its memory.
    pub fn connection_closed(&self) {
        // Stores a permit when the task is busy, so no close goes unnoticed.
        self.closed.notify_one();
    }
}

async fn trim_after_each_wave(closed: Arc<Notify>) {
    loop {
        closed.notified().await;
        while tokio::time::timeout(QUIET, closed.notified()).await.is_ok() {}
        let released = tokio::task::spawn_blocking(release_free_memory).await.unwrap_or(false);
        tracing::debug!(released, "allocator arenas trimmed after connections closed");
    }
}

/// True when the allocator gave memory back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() -> bool {
    // SAFETY: malloc_trim only takes the allocator's own locks; any thread may call it.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators manage their own returns.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}
