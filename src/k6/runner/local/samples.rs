//! A local k6 instance's samples, from its CSV file into InfluxDB.
//!
//! Each local instance writes every sample to a file of its own (`--out csv=…`); the server
//! follows the file and writes the samples it keeps to InfluxDB as line protocol
//! ([`lines`]). Why not k6's InfluxDB output, as the Kubernetes runner's pods use:
//! - **Nothing is dropped.** k6's InfluxDB output drops a batch InfluxDB refuses or does not
//!   answer in time. The file keeps every sample until InfluxDB took it: a stalled or
//!   restarting InfluxDB, or a restarted server (which follows the file again from where the
//!   space it gave back ends), delays samples instead of losing them.
//! - **Same-nanosecond samples are kept apart** ([`lines::Points`]).
//! - **Less work per request on the machine that also makes the requests.** k6 writes a CSV
//!   record for less than it spends on a line of its InfluxDB output, and InfluxDB stores
//!   only what the server reads (`INFLUXDB_SAMPLES=all` stores all): on two shared cores this
//!   records a third more requests per second (the `ingest` bench).
//!
//! The file does not grow without bound: the part InfluxDB has taken is given back to the
//! file system as it goes (a hole punched into it; the first block, with the header, stays).
//! It is removed once the instance ended and all of it was written. While InfluxDB does not
//! answer, writes are tried again for as long as it takes (the run's results wait, as they do
//! for an InfluxDB that is down); a server that stops meanwhile leaves the file, and the next one
//! on this machine writes the rest when it starts.

pub mod lines;

use std::{
    io::{Read, Seek, SeekFrom},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::Duration,
};

use lines::{Columns, Kept, Points, record_end};
use tokio::{sync::watch, task::JoinHandle};

use crate::metrics::influx::{InfluxClient, InfluxError};

/// Most bytes read from the file for one write to InfluxDB.
const CHUNK: usize = 4 << 20;
/// How long to wait for more samples when the file has none.
const POLL: Duration = Duration::from_millis(200);
/// A write InfluxDB could not take is tried again after this, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A write not answered within this is tried again (a stalled InfluxDB); InfluxDB keeps one
/// point per series and nanosecond, so a write that did land is harmless to repeat.
const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// The file system's block: holes are punched in whole blocks, after the first.
const BLOCK: u64 = 4096;

/// Where a local run's samples go.
#[derive(Clone)]
pub struct SampleSink {
    pub influx: InfluxClient,
    pub kept: Kept,
}

impl SampleSink {
    /// The sink k6's `--out influxdb=` address names (`http://host:port/database`).
    pub fn from_output_address(address: &str, kept: Kept) -> Self {
        let (base, database) = address.rsplit_once('/').unwrap_or((address, "k6"));
        let http = crate::tls::client_builder().no_proxy().build().expect("a plain HTTP client builds");
        Self { influx: InfluxClient::new(http, base, database), kept }
    }
}

/// The samples file of instance `index` of run `test_id`.
pub fn samples_path(work_dir: &Path, test_id: i64, index: u32) -> PathBuf {
    work_dir.join(format!("samples-{test_id}-{index}.csv"))
}

/// The environment that has k6 write its samples as the follower reads them.
pub fn environment() -> [(&'static str, &'static str); 2] {
    [("K6_CSV_TIME_FORMAT", "unix_nano"), ("K6_CSV_SAVE_INTERVAL", "1s")]
}

/// What shipping one instance's samples came to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shipped {
    pub points: u64,
    /// Same-nanosecond samples moved on by a nanosecond.
    pub moved: u64,
    /// Records that were not samples.
    pub skipped: u64,
    /// Why the rest was given up, if it was (the file could not be read).
    pub gave_up: Option<String>,
}

/// One instance's samples being shipped; [`Shipping::finish`] once the instance ended.
pub struct Shipping {
    ended: watch::Sender<bool>,
    /// Whether InfluxDB is not taking its samples at the moment.
    failing: watch::Receiver<bool>,
    task: JoinHandle<Shipped>,
}

/// Runs whose samples are still being written after their k6 ended (InfluxDB did not take
/// them then): their results must wait.
pub type ShippingRuns = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>;

impl Shipping {
    /// Follows the samples file of instance `index` of run `test_id` in `work_dir` from its
    /// start, or — `resume` — from where the space already given back ends.
    pub fn start(work_dir: &Path, test_id: i64, index: u32, sink: SampleSink, resume: bool) -> Self {
        let path = samples_path(work_dir, test_id, index);
        let (ended, ended_rx) = watch::channel(false);
        let (failing_tx, failing) = watch::channel(false);
        let follower = Follower { path, sink, test_id, index, resume, failing: failing_tx };
        let task = tokio::spawn(follower.run(ended_rx));
        Self { ended, failing, task }
    }

    /// The instance ended: writes what is left of its file (k6 flushed it as it exited) and
    /// removes the file.
    pub async fn finish(self) -> Shipped {
        let _ = self.ended.send(true);
        self.task.await.unwrap_or_else(|err| Shipped { gave_up: Some(err.to_string()), ..Shipped::default() })
    }
}

/// Writes what is left of every file (their instances ended), at once.
pub async fn finish_all(shipping: Vec<Shipping>) -> Vec<Shipped> {
    futures_util::future::join_all(shipping.into_iter().map(Shipping::finish)).await
}

/// The instances of run `test_id` ended: waits until what is left of their samples is written,
/// unless InfluxDB is not taking them — then they go on being written in the background
/// (while `test_id` is in `shipping_runs`), and the run may end now.
pub async fn settle(shipping: Vec<Shipping>, test_id: i64, shipping_runs: &ShippingRuns) {
    if shipping.is_empty() {
        return;
    }
    let failing: Vec<_> = shipping.iter().map(|shipping| shipping.failing.clone()).collect();
    let mut all = tokio::spawn(finish_all(shipping));
    let stalled = async {
        while !failing.iter().any(|failing| *failing.borrow()) {
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        _ = &mut all => {}
        () = stalled => {
            tracing::warn!(test_id, "InfluxDB is not taking the run's last samples; they are written once it does");
            shipping_runs.lock().expect("shipping lock").insert(test_id);
            let shipping_runs = shipping_runs.clone();
            tokio::spawn(async move {
                let _ = all.await;
                shipping_runs.lock().expect("shipping lock").remove(&test_id);
            });
        }
    }
}

struct Follower {
    path: PathBuf,
    sink: SampleSink,
    test_id: i64,
    index: u32,
    resume: bool,
    failing: watch::Sender<bool>,
}

/// The file as read so far; moved into a blocking task for each read.
struct Reader {
    file: std::fs::File,
    /// Read but not yet a complete record.
    pending: Vec<u8>,
    points: Option<Points>,
    /// Where in the file `pending` starts.
    offset: u64,
    /// Up to where the file's space was given back.
    punched: u64,
    /// Whether an earlier follower may have given space back (the server restarted).
    resuming: bool,
    /// Whether the bytes read next are the rest of a record (after space given back).
    in_record: bool,
    kept: Kept,
    test_id: i64,
    index: u32,
}

impl Follower {
    #[tracing::instrument(skip_all, fields(test_id = self.test_id, instance = self.index))]
    async fn run(self, mut ended: watch::Receiver<bool>) -> Shipped {
        let mut shipped = Shipped::default();
        // k6 creates the file as it starts; one that never started has none.
        let file = loop {
            // Open for writing too: the space of what was shipped is given back through it.
            match std::fs::OpenOptions::new().read(true).write(true).open(&self.path) {
                Ok(file) => break file,
                Err(_) if *ended.borrow() => return shipped,
                Err(_) => {
                    pause(&mut ended, POLL).await;
                }
            }
        };
        let mut reader = Some(Reader {
            file,
            pending: Vec::new(),
            points: None,
            offset: 0,
            punched: 0,
            resuming: self.resume,
            in_record: false,
            kept: self.sink.kept,
            test_id: self.test_id,
            index: self.index,
        });
        loop {
            let was_ended = *ended.borrow();
            let Some(mut taken) = reader.take() else { break };
            let read = tokio::task::spawn_blocking(move || {
                let body = taken.next_batch();
                (taken, body)
            })
            .await;
            let Ok((taken, body)) = read else {
                shipped.gave_up = Some("reading k6's samples failed".into());
                break;
            };
            let mut taken = taken;
            let body = match body {
                Ok(Some(body)) => body,
                // Nothing new: once the instance ended, it wrote all it will.
                Ok(None) => {
                    reader = Some(taken);
                    if was_ended {
                        break;
                    }
                    pause(&mut ended, POLL).await;
                    continue;
                }
                Err(err) => {
                    tracing::error!(%err, "k6's samples file cannot be read; its samples are not stored");
                    shipped.gave_up = Some(err.to_string());
                    break;
                }
            };
            if !body.is_empty() {
                self.write(&body, &mut ended).await;
            }
            taken.give_back();
            reader = Some(taken);
        }
        if let Some(points) = reader.as_ref().and_then(|reader| reader.points.as_ref()) {
            (shipped.points, shipped.moved, shipped.skipped) = (points.written, points.moved, points.skipped);
        }
        if shipped.moved > 0 || shipped.skipped > 0 {
            tracing::info!(
                moved = shipped.moved,
                skipped = shipped.skipped,
                "samples shipped with adjustments"
            );
        }
        if *ended.borrow() {
            let _ = std::fs::remove_file(&self.path);
        }
        shipped
    }

    /// Writes one batch, trying again for as long as InfluxDB is unreachable or busy (the file
    /// keeps the samples meanwhile; the run's results wait); a batch InfluxDB refuses as such
    /// (a 4xx) is not tried again.
    async fn write(&self, body: &[u8], ended: &mut watch::Receiver<bool>) {
        let mut delay = RETRY_FIRST;
        let mut failures = 0u32;
        loop {
            let written = self.sink.influx.write_lines(body.to_vec(), WRITE_LIMIT).await;
            self.failing.send_replace(matches!(&written, Err(err) if !err.is_refusal()));
            match written {
                Ok(()) => return,
                Err(InfluxError::Refused(message)) if message.contains("database not found") => {
                    // Created by k6's own InfluxDB output; here by the first write that needs it.
                    if let Err(err) = self.sink.influx.create_database().await {
                        tracing::warn!(%err, "could not create InfluxDB's database for samples");
                        pause(ended, delay).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
                Err(err) if err.is_refusal() => {
                    tracing::error!(%err, "InfluxDB refused a batch of samples; it is skipped");
                    return;
                }
                Err(err) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(%err, failures, "InfluxDB did not take a batch of samples; trying again");
                    }
                    pause(ended, delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Waits `delay`, or less if the instance ends meanwhile.
async fn pause(ended: &mut watch::Receiver<bool>, delay: Duration) {
    if *ended.borrow() || ended.has_changed().is_err() {
        tokio::time::sleep(delay).await;
    } else {
        let _ = tokio::time::timeout(delay, ended.changed()).await;
    }
}

/// Why a samples file cannot be followed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("reading k6's samples file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Header(#[from] lines::HeaderError),
}

impl Reader {
    /// The points of the complete records read since the last call (perhaps none); None when
    /// the file had nothing new.
    fn next_batch(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let read = (&mut self.file).take(CHUNK as u64).read_to_end(&mut self.pending)?;
        if read == 0 {
            return Ok(None);
        }
        let mut at = 0;
        if self.points.is_none() {
            let Some(end) = record_end(&self.pending) else { return Ok(Some(Vec::new())) };
            let columns = Columns::from_header(self.pending[..end].strip_suffix(b"\n").unwrap_or(&[]))?;
            self.points = Some(Points::new(columns, self.kept, self.test_id, self.index));
            at = end;
            if self.resuming
                && let Some(data) = data_after_hole(&self.file)
            {
                // An earlier follower gave the space up to `data` back: what follows it is the
                // rest of a record it wrote, then records it may have written (written again:
                // InfluxDB keeps one point per series and nanosecond), then new ones.
                self.file.seek(SeekFrom::Start(data))?;
                self.pending.clear();
                self.offset = data;
                self.punched = data;
                self.in_record = true;
                return Ok(Some(Vec::new()));
            }
        }
        if self.in_record {
            let Some(offset) = memchr::memchr(b'\n', &self.pending[at..]) else {
                self.consume(self.pending.len());
                return Ok(Some(Vec::new()));
            };
            at += offset + 1;
            self.in_record = false;
        }
        let points = self.points.as_mut().expect("the header was read");
        let mut body = Vec::with_capacity(self.pending.len() / 2);
        while let Some(end) = record_end(&self.pending[at..]) {
            points.push(&self.pending[at..at + end], &mut body);
            at += end;
        }
        self.consume(at);
        Ok(Some(body))
    }

    fn consume(&mut self, used: usize) {
        self.pending.drain(..used);
        self.offset += used as u64;
    }

    /// Gives the space of what was written back to the file system, in whole blocks, keeping
    /// the first block (the header) and at least a byte of the last record written (so a
    /// follower resuming after a restart finds where records start again).
    fn give_back(&mut self) {
        let upto = self.offset.saturating_sub(1) / BLOCK * BLOCK;
        let from = self.punched.max(BLOCK);
        if upto <= from {
            return;
        }
        // SAFETY: fallocate(2) on a file descriptor this reader owns; KEEP_SIZE leaves the
        // file's length (and k6's appends) alone, the range reads as zeros afterwards.
        let done = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                from as libc::off_t,
                (upto - from) as libc::off_t,
            )
        };
        // Not supported by some file systems: the file then keeps its size until it is removed.
        self.punched = if done == 0 { upto } else { u64::MAX };
    }
}

/// Where the data after the space given back (from the second block on) starts; None when
/// none was given back.
fn data_after_hole(file: &std::fs::File) -> Option<u64> {
    // SAFETY: lseek(2) on a file descriptor `file` owns; the reader seeks where it reads next.
    let data = unsafe { libc::lseek(file.as_raw_fd(), BLOCK as libc::off_t, libc::SEEK_DATA) };
    u64::try_from(data).ok().filter(|&data| data > BLOCK)
}

#[cfg(test)]
mod tests {
    use std::{io::Write, os::unix::fs::MetadataExt};

    use super::*;
    use crate::metrics::test_influxd::InfluxServer;

    const HEADER: &str = "metric_name,timestamp,metric_value,error_code,expected_response,method,name,scenario,status,extra_tags,metadata\n";

    /// `count` requests' records, each with a sample the server does not store; every fifth
    /// request finishes the same nanosecond as the one before.
    fn records(from: u64, count: u64) -> String {
        let mut text = String::new();
        for request in from..from + count {
            let stamp = 1_700_000_000_000_000_000 + (request - request % 5 / 4) * 1_000;
            // Every third request's name holds what line protocol and CSV escape: it must be stored all the same.
            let name = if request % 3 == 0 { "\"GET /x,y \"\"q\"\"\nz=w \\\"" } else { "GET /a" };
            text.push_str(&format!("http_reqs,{stamp},1.000000,,true,GET,{name},s_0,200,testid=1,vu=3\n"));
            text.push_str(&format!(
                "http_req_blocked,{stamp},0.010000,,true,GET,GET /a,s_0,200,testid=1,vu=3\n"
            ));
        }
        text
    }

    async fn stored(influx: &InfluxServer, test_id: i64) -> u64 {
        // Before the first write, InfluxDB has no database yet.
        let series = influx
            .client("k6")
            .query(&format!(r#"SELECT count("value") FROM "http_reqs" WHERE "testid" = '{test_id}'"#))
            .await
            .unwrap_or_default();
        series.first().and_then(|s| s.first_f64("count")).unwrap_or(0.0) as u64
    }

    async fn wait_for(influx: &InfluxServer, test_id: i64, count: u64) {
        for _ in 0..200 {
            if stored(influx, test_id).await >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} samples never stored");
    }

    #[tokio::test]
    async fn a_file_followed_across_a_restart_stores_every_request_once_and_gives_its_space_back() {
        let influx = InfluxServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let path = samples_path(dir.path(), 7, 0);
        let sink = SampleSink { influx: influx.client("k6"), kept: Kept::Read };
        let mut file = std::fs::File::create(&path).unwrap();
        write!(file, "{HEADER}{}", records(0, 20_000)).unwrap();
        file.flush().unwrap();

        // The first server ships what there is, then dies (its task stops mid-way).
        let first = Shipping::start(dir.path(), 7, 0, sink.clone(), false);
        wait_for(&influx, 7, 20_000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.task.abort();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.blocks() * 512 < meta.size() / 2, "the space of what was shipped is given back");

        // k6 goes on writing; the next server resumes after the space given back, and the
        // instance ends.
        write!(file, "{}", records(20_000, 10_000)).unwrap();
        file.flush().unwrap();
        let second = Shipping::start(dir.path(), 7, 0, sink, true);
        let shipped = second.finish().await;
        assert_eq!(shipped.gave_up, None);
        assert_eq!(
            shipped.skipped, 0,
            "resumed where records start, not in the zeros of the space given back"
        );
        assert!(
            shipped.points >= 10_000 && shipped.points < 10_500,
            "re-shipped at most a block: {shipped:?}"
        );
        assert_eq!(stored(&influx, 7).await, 30_000, "every request once, the same-nanosecond ones too");
        assert!(!path.exists(), "the file is removed once shipped");
    }

    #[tokio::test]
    async fn an_instance_that_never_wrote_a_file_ships_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = SampleSink::from_output_address("http://127.0.0.1:9/k6", Kept::Read);
        let shipped = Shipping::start(dir.path(), 1, 0, sink, false).finish().await;
        assert_eq!(shipped, Shipped::default());
    }
}
