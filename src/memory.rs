//! Gives the memory of closed websockets back to the system.
//!
//! glibc's malloc keeps what a program frees in its arenas (one per thread that allocated,
//! up to eight per core) for later use, and returns it only from the top of an arena. After
//! a crowd of dashboard connections closes, their buffers and protocol state are free but
//! scattered between live allocations, so the process stays as large as it was at its peak.
//! `malloc_trim(0)` walks every arena and returns each whole free page.
//!
//! The trim leaves every page that still holds a chunk in use, and a chunk in a thread's
//! tcache (up to seven per size class up to 1,032 bytes, kept until the thread exits) is in
//! use as far as the arena knows. The tokio workers that served the crowd keep, in theirs,
//! the first small chunks the crowd freed, scattered over the tens of megabytes it used.
//! Measured with the live bench (`cargo bench --bench live`), heaptrack, `malloc_info` and
//! glibc's debug symbols, once 1,000 subscribers had left: nothing the code had allocated
//! for them was still live, but each worker's cache held about 430 chunks (230 KB) on
//! 330–360 different pages, and the workers' arenas kept 1.7–2.3 MB resident (0.2 MB
//! before the crowd).
//!
//! So a wave of closes ends in three steps: a trim (which also merges the arenas' fast
//! bins), then each worker, the next time it parks, swaps its cached chunks for freshly
//! carved ones ([`ArenaTrimmer::on_worker_park`]: the fresh ones lie close together, on
//! 110–160 pages; the old ones go back to the arena), then a second trim that returns the
//! pages the old ones kept. The server then stayed about 3.5 MB above its baseline instead of
//! 5 MB; once joining a watched run stopped reading the run from SQLite (1,000 reads on the
//! SQLite connections' threads, whose caches no hook reaches), 1.2–1.5 MB, against 1.0 MB
//! that a lone subscriber's run leaves too (the run's end).
//!
//! The tcache can only be sized from the environment when the process starts
//! (`GLIBC_TUNABLES=glibc.malloc.tcache_count=0` left about 2 MB), which would slow every
//! allocation for the sake of the rare crowd; fewer arenas (`MALLOC_ARENA_MAX=1`) left more
//! behind, not less (11 MB).
//!
//! The walks hold each arena's lock, so they run once after the closing has stopped for
//! [`QUIET`], on a blocking thread, not once per closed connection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;

/// How long no connection may have closed before the arenas are trimmed.
pub const QUIET: Duration = Duration::from_secs(1);
/// How long the workers get to park (and swap their cached chunks) between the two trims.
const WORKERS_PARK: Duration = Duration::from_millis(100);

/// Waves of closes so far; a worker swaps its cached chunks once per wave.
static WAVE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last wave this thread swapped its cached chunks for.
    static SWAPPED_FOR: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

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

    /// For the runtime's `on_thread_park`: once per wave of closes, this worker's cached
    /// chunks are swapped for fresh ones, so that the second trim can return the pages the
    /// old ones kept. Otherwise it costs an atomic load. (A runtime without it, as in the
    /// tests, still gets both trims.)
    pub fn on_worker_park() {
        let wave = WAVE.load(Ordering::Relaxed);
        if SWAPPED_FOR.get() != wave {
            SWAPPED_FOR.set(wave);
            swap_thread_cache();
        }
    }
}

async fn trim_after_each_wave(closed: Arc<Notify>) {
    loop {
        closed.notified().await;
        while tokio::time::timeout(QUIET, closed.notified()).await.is_ok() {}
        let released = tokio::task::spawn_blocking(release_free_memory).await.unwrap_or(false);
        WAVE.fetch_add(1, Ordering::Relaxed);
        // An idle worker sleeps until there is work: each of these tasks wakes one, which
        // parks again when it is done. The worker running this task parks while it sleeps.
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        for _ in 0..workers {
            tokio::spawn(async {});
        }
        tokio::time::sleep(WORKERS_PARK).await;
        let released_again = tokio::task::spawn_blocking(release_free_memory).await.unwrap_or(false);
        tracing::debug!(released, released_again, "allocator arenas trimmed after connections closed");
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

/// Empties this thread's tcache by taking its chunks, refills it with chunks carved afresh
/// from the arena (after a trim, from the merged free space, close together), and frees the
/// old ones, which the full cache no longer takes, to the arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn swap_thread_cache() {
    /// glibc's defaults: 64 classes, 16 bytes apart, of up to 7 chunks.
    const CLASSES: usize = 64;
    const PER_CLASS: usize = 7;
    for class in 0..CLASSES {
        // The request that fills a chunk of this class exactly (chunks are 32, 48, … 1,040
        // bytes, 8 of which are the header).
        let request = 24 + 16 * class;
        // SAFETY: plain malloc and free of the chunks allocated here; a null is freed as a no-op.
        unsafe {
            let old: [*mut libc::c_void; PER_CLASS] = std::array::from_fn(|_| libc::malloc(request));
            let fresh: [*mut libc::c_void; PER_CLASS] = std::array::from_fn(|_| libc::malloc(request));
            for chunk in fresh.into_iter().chain(old) {
                libc::free(chunk);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn swap_thread_cache() {}
