//! How a Kubernetes pod's k6 writes its samples to InfluxDB (k6 v1's built-in `influxdb`
//! output), set explicitly and together with the InfluxDB the project starts
//! (`scripts/influxdb.conf.template`, `k8s/influxdb.yaml`), so that no sample is refused.
//! Local instances write a file instead, which the server ships (`k6::runner::local::samples`:
//! nothing dropped while InfluxDB stalls, and a third more requests per second on two shared
//! cores); the system tags and the garbage collector's target below apply to both
//! ([`k6_environment`]).
//!
//! What k6 v1.1's InfluxDB v1 output does (its `output/influxdb` package):
//! - every push interval it takes all samples buffered since the last push and POSTs them as
//!   ONE `/write` request. It never splits a batch over HTTP (`K6_INFLUXDB_PAYLOAD_SIZE` only
//!   applies to UDP), and a refused or failed write is logged ("Couldn't write stats") and its
//!   samples are dropped. So InfluxDB must accept a body of any size k6 can produce:
//!   InfluxDB 1.x's `[http] max-body-size` (25 MB by default) is set to 0 (no limit) in the
//!   configurations the project ships. k6 writes ~13 samples of ~250 bytes per request, so at
//!   ~7,500 requests/s one second of samples is over 25 MB: the default limit lost 13 % of
//!   the samples (issue 19); the `ingest` bench checks that none are lost now.
//! - at most `K6_INFLUXDB_CONCURRENT_WRITES` writes are in flight; when they are all busy, the
//!   next push waits (its samples keep buffering, nothing is dropped).
//! - a tag listed in `K6_INFLUXDB_TAGS_AS_FIELDS` is written as a field instead. InfluxDB keeps
//!   ONE point per measurement + tag set + timestamp: two samples that agree on all three
//!   collapse into one, whatever their fields. Fields therefore cost nothing in series but do
//!   not tell samples apart; tags tell them apart but each distinct combination is a series
//!   (InfluxDB 1.x refuses writes past `max-series-per-database`, 1,000,000 by default).
//!
//! The choice, and why:
//! - `vu` and `iter` stay fields: as tags they would multiply a run's series by its VUs and
//!   its iterations (unbounded). `url` stays a field too: a URL with ids in its path would
//!   create a series per id; the request's `name` tag (the URL template the script sets) keeps
//!   requests of one endpoint together, bounded by the endpoints a test has.
//! - `testid` (`--tag testid=<run id>`) and `instance_id` (`--tag instance_id=<index>`) are tags
//!   on every sample: the first scopes every query and every clean-up to one run, the second
//!   keeps the instances of a split run apart — without it, two instances' samples with the
//!   same tags and nanosecond would collapse.
//! - precision `ns`: samples keep k6's own timestamps (Go's clock, nanoseconds). Within one
//!   instance, two samples of the same endpoint and status collapse only when they are stamped
//!   the very same nanosecond, which at the rates one k6 reaches is rare (see the `ingest`
//!   bench, which counts stored samples against k6's own counts).
//! - a series count per run of about measurements (~15) × instances × endpoints × statuses ×
//!   scenarios, all with one `testid`: deleting a run drops them (`metrics::hygiene`).
//! - k6's system tags are cut to those someone reads (`K6_SYSTEM_TAGS`): `scenario` (every
//!   query of the server), `name`, `method`, `status`, `expected_response` and `error_code`
//!   (what a person slicing a run's samples asks by). Left out: `url` (as long as the request
//!   line, written into every sample), `proto`, `subproto`, `tls_version`, `group`, `check`,
//!   `error` (a free-text message) and `service`. Each one costs k6 a string per sample and
//!   InfluxDB a longer series key to parse; cut, the same two cores record a higher rate with
//!   nothing lost (the `ingest` bench).
//! - k6's Go garbage collector runs at `GOGC=400` (a collection when the heap has grown by
//!   4× what survived the last one, instead of 1×). With the output on, k6 allocates a point,
//!   its tags and fields for every sample; at the default the collector took about a sixth of
//!   k6's CPU, and on the shared cores that was a sixth fewer requests. 400 gave the `ingest`
//!   bench ~15 % more requests recorded; 800 gave no more. The cost is memory: k6's heap
//!   between collections grows up to 5× its live size (a few hundred MB at 50 VUs). k6 alone,
//!   with no output, gains nothing from it (it allocates little).
//! - push interval 1 s (k6's default, set explicitly) with 8 concurrent writes: a batch per
//!   second keeps the number of writes InfluxDB handles small; 8 writes in flight let a slow
//!   write (InfluxDB compacting) overlap with the next ones instead of holding the buffer back.

/// The push interval, as k6 reads it.
pub const PUSH_INTERVAL: &str = "1s";
/// Writes in flight at most.
pub const CONCURRENT_WRITES: &str = "8";
/// Timestamps as k6 takes them.
pub const PRECISION: &str = "ns";
/// Tags written as fields: they would be unbounded as tags (see the module documentation).
/// Strings, as k6 writes them by default: a field's type is fixed per shard, and a batch with
/// `vu` as an integer where earlier runs wrote a string would be refused whole.
pub const TAGS_AS_FIELDS: &str = "vu,iter,url";

/// The system tags k6 puts on samples (see the module documentation).
pub const SYSTEM_TAGS: &str = "scenario,name,method,status,expected_response,error_code";

/// k6's garbage-collection target (see the module documentation).
pub const GO_GC: &str = "400";

/// What every k6 instance gets, whatever its output: the system tags it puts on samples and
/// its garbage collector's target.
pub fn k6_environment() -> [(&'static str, &'static str); 2] {
    [("GOGC", GO_GC), ("K6_SYSTEM_TAGS", SYSTEM_TAGS)]
}

/// The environment of a k6 instance writing to InfluxDB itself (the Kubernetes runner's pods;
/// local instances write a file the server ships, `k6::runner::local::samples`).
pub fn environment() -> [(&'static str, &'static str); 6] {
    [
        ("GOGC", GO_GC),
        ("K6_SYSTEM_TAGS", SYSTEM_TAGS),
        ("K6_INFLUXDB_PUSH_INTERVAL", PUSH_INTERVAL),
        ("K6_INFLUXDB_CONCURRENT_WRITES", CONCURRENT_WRITES),
        ("K6_INFLUXDB_PRECISION", PRECISION),
        ("K6_INFLUXDB_TAGS_AS_FIELDS", TAGS_AS_FIELDS),
    ]
}

/// The tags every sample of run `test_id` written by instance `index` carries, as k6's
/// `--tag` arguments.
pub fn tag_arguments(test_id: i64, index: u32) -> [String; 4] {
    ["--tag".to_owned(), format!("testid={test_id}"), "--tag".to_owned(), format!("instance_id={index}")]
}
