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
//!
//! What it cannot give back: the chunks each thread keeps in its tcache (up to seven per
//! size class) are in use as far as the trim knows, so their pages stay, and they keep
//! their free neighbours from merging into whole pages. After 1,000 websockets left, the
//! live bench (`cargo bench --bench live`) saw the server stay about 5 MB above its
//! baseline; with `GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, about 2 MB. The tcache is
//! set only from the environment when the process starts, never by `mallopt`; fewer arenas
//! (`MALLOC_ARENA_MAX=1`) left more behind, not less (11 MB).

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
