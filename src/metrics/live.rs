//! Live metrics: ONE poller per watched run, whatever the number of subscribers.
//!
//! The first subscriber to a run starts a task that reads InfluxDB once per interval and
//! publishes each [`LiveSnapshot`] on a `watch` channel; later subscribers join that
//! channel. A `watch` holds only the latest value, so a subscriber that reads slowly skips
//! snapshots instead of queueing them: memory stays constant per subscriber and the poller
//! never waits for anyone.
//!
//! Each snapshot covers the last interval of samples that k6 has surely flushed
//! ([`FLUSH_LAG`] ago). Once the run has ended, the poller publishes a last snapshot marked
//! final (the run's last interval, with every request of the run counted) and stops; so
//! does it when nobody listens any more. A run that already ended gets that same final
//! snapshot at once.
//!
//! When InfluxDB (or the database) fails, subscribers get an error event for that interval
//! and the poller carries on: the stream resumes by itself once InfluxDB answers again.

mod baseline;
mod interval;
mod poller;
mod renderings;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures_util::{Stream, stream};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::watch;

use crate::{
    db::{entities::scenario_history, repo},
    error::{AppError, AppResult},
    metrics::influx::{InfluxClient, InfluxError},
};
pub use baseline::BaselineFigures;
use interval::{IntervalAnswer, IntervalQuery};
pub use renderings::Renderings;

/// The default time between two snapshots.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// k6 pushes its samples to InfluxDB once a second, stamped with the time they were taken:
/// the last second is still on its way, so snapshots describe the interval ending this long ago.
pub const FLUSH_LAG: Duration = Duration::from_secs(2);
/// Samples are stamped when k6 takes them; allow for clock steps and the last flush
/// (the lifecycle's summaries use the same margin).
const RUN_MARGIN: chrono::Duration = chrono::Duration::seconds(2);
/// Where the latest `vus` sample of each instance is looked for, beyond the interval itself.
const VUS_LOOKBACK: chrono::Duration = chrono::Duration::seconds(2);
/// How far back the newest stored sample of each instance is looked for: a lag longer than
/// this is reported as this long (the query stays cheap however long the run).
const LAG_LOOKBACK: chrono::Duration = chrono::Duration::seconds(60);
/// A run's first seconds, while its k6 instances start and make their first push, are not
/// judged for lag.
const LAG_GRACE: chrono::Duration = chrono::Duration::seconds(5);
/// k6 samples every second and pushes once a second, so stored samples normally reach to
/// within about two seconds of the present; more than this, and the snapshot says they lag.
pub const LAG_LIMIT_SECONDS: f64 = 5.0;

/// Figures over one interval, of the whole run or of one scenario.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalFigures {
    /// Requests per second.
    pub tps: f64,
    /// Milliseconds.
    pub avg_response_time: f64,
    /// Milliseconds (nearest-rank percentile).
    pub p95_response_time: f64,
    /// Percent of the interval's requests that failed (0–100).
    pub error_rate: f64,
    /// Since the run started, not only in the interval.
    pub total_requests: i64,
}

/// One scenario's figures, under the name the user gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioFigures {
    pub name: String,
    pub figures: IntervalFigures,
}

/// The state of a run over its last interval.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSnapshot {
    pub test_id: i64,
    /// The end of the interval described.
    pub time: DateTime<Utc>,
    /// Seconds from the start of the load to `time` (0 while k6 is starting).
    pub elapsed_seconds: f64,
    pub run: IntervalFigures,
    /// Virtual users at the end of the interval, over every k6 instance.
    pub vus: f64,
    /// Every scenario of the run, in launch order.
    pub scenarios: Vec<ScenarioFigures>,
    /// The last snapshot of a run that has ended.
    pub is_final: bool,
    /// How far behind the present the stored samples of the slowest k6 instance reach, in
    /// seconds (at most [`LAG_LOOKBACK`]); 0 when not judged (the run's first seconds, or ended).
    pub samples_lag_seconds: f64,
    /// Stored samples lag more than [`LAG_LIMIT_SECONDS`]: InfluxDB (or k6's output) is behind,
    /// so this snapshot's figures may be missing requests that were made.
    pub samples_lagging: bool,
    /// The plan's baseline at the same elapsed time, when the run's plan has a baseline.
    pub baseline: Option<BaselineFigures>,
    /// The run's p95 so far against the baseline's over the same span.
    pub baseline_verdict: Option<crate::domain::regression::RegressionVerdict>,
    /// When the poller handed this snapshot to its subscribers: a subscriber's receipt time
    /// minus this is the delivery delay.
    pub published_at: DateTime<Utc>,
    /// What the transports made of this snapshot, shared by the subscribers that asked alike.
    pub renderings: Renderings,
}

/// Why an interval has no snapshot.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LiveError {
    /// InfluxDB did not answer (or answered nonsense).
    #[error("live metrics are unavailable for now: {0}")]
    Upstream(String),
    /// The metadata database failed; the cause is logged, not shown.
    #[error("live metrics failed: {0}")]
    Internal(String),
}

impl From<LiveError> for AppError {
    fn from(error: LiveError) -> Self {
        match error {
            LiveError::Upstream(_) => AppError::UpstreamUnavailable(error.to_string()),
            LiveError::Internal(cause) => AppError::Unexpected(anyhow::anyhow!(cause)),
        }
    }
}

/// What subscribers receive each interval.
pub type LiveEvent = Result<Arc<LiveSnapshot>, LiveError>;

type Feed = Arc<watch::Sender<Option<LiveEvent>>>;

/// The pollers of every watched run; cheap to clone.
#[derive(Clone)]
pub struct LiveMetrics {
    shared: Arc<Registry>,
}

struct Registry {
    db: DatabaseConnection,
    influx: InfluxClient,
    interval: Duration,
    /// One entry per run with a poller; subscribing and retiring both hold this lock, so a
    /// poller never stops while someone is joining it.
    feeds: Mutex<HashMap<i64, Feed>>,
    influx_queries: AtomicU64,
    /// How a live run is judged against its baseline.
    regression: crate::metrics::regression::Settings,
}

impl LiveMetrics {
    /// Pollers that read `influx` once per `interval`, and runs from `db`.
    pub fn new(db: DatabaseConnection, influx: InfluxClient, interval: Duration) -> Self {
        Self::judging(db, influx, interval, crate::metrics::regression::Settings::default())
    }

    /// [`LiveMetrics::new`], judging runs against their baselines with `regression`.
    pub fn judging(
        db: DatabaseConnection,
        influx: InfluxClient,
        interval: Duration,
        regression: crate::metrics::regression::Settings,
    ) -> Self {
        let registry = Registry {
            db,
            influx,
            interval,
            feeds: Mutex::default(),
            influx_queries: AtomicU64::new(0),
            regression,
        };
        Self { shared: Arc::new(registry) }
    }

    /// Subscribes to run `test_id`, starting its poller if it has none.
    /// `NOT_FOUND` when there is no such run. A run with a poller exists (its poller ends
    /// the feed if it is deleted), so a crowd joining a watched run costs no query each.
    #[tracing::instrument(skip(self))]
    pub async fn watch(&self, test_id: i64) -> AppResult<LiveFeed> {
        if let Some(feed) = self.shared.feeds.lock().expect("live registry lock").get(&test_id) {
            return Ok(LiveFeed { receiver: feed.subscribe() });
        }
        repo::runs::get(&self.shared.db, test_id).await?;
        let mut feeds = self.shared.feeds.lock().expect("live registry lock");
        let feed = feeds.entry(test_id).or_insert_with(|| {
            let feed: Feed = Arc::new(watch::channel(None).0);
            tokio::spawn(poller::follow_run(self.shared.clone(), test_id, feed.clone()));
            feed
        });
        Ok(LiveFeed { receiver: feed.subscribe() })
    }

    /// Runs with a poller now.
    pub fn active_pollers(&self) -> usize {
        self.shared.feeds.lock().expect("live registry lock").len()
    }

    /// InfluxDB queries the pollers have sent so far (one per snapshot, whatever the
    /// number of subscribers).
    pub fn influx_queries(&self) -> u64 {
        self.shared.influx_queries.load(Ordering::Relaxed)
    }
}

/// One subscriber's view of a run's snapshots.
pub struct LiveFeed {
    receiver: watch::Receiver<Option<LiveEvent>>,
}

impl LiveFeed {
    /// The latest snapshot (if the poller has one yet), then every newer one this subscriber
    /// is ready for in time, ending after the final snapshot.
    pub fn into_stream(self) -> impl Stream<Item = LiveEvent> + Send + 'static {
        // `None` once the final snapshot is delivered: nothing comes after it.
        stream::unfold(Some((self.receiver, true)), |state| async move {
            let (mut receiver, mut first) = state?;
            loop {
                // The first look takes what the poller already has; later ones wait for news.
                if !first && receiver.changed().await.is_err() {
                    // The poller is gone without a final snapshot (the run was deleted).
                    return None;
                }
                first = false;
                let Some(event) = receiver.borrow_and_update().clone() else { continue };
                let is_final = matches!(&event, Ok(snapshot) if snapshot.is_final);
                return Some((event, (!is_final).then_some((receiver, false))));
            }
        })
    }
}

impl Registry {
    /// Removes the run's feed if it is still `feed` and, unless `ended`, nobody listens.
    fn retire(&self, test_id: i64, feed: &Feed, ended: bool) -> bool {
        let mut feeds = self.feeds.lock().expect("live registry lock");
        if !ended && feed.receiver_count() > 0 {
            return false;
        }
        if feeds.get(&test_id).is_some_and(|current| Arc::ptr_eq(current, feed)) {
            feeds.remove(&test_id);
        }
        true
    }

    /// The run's scenarios as (k6 key, display name), in launch order.
    #[tracing::instrument(skip(self))]
    async fn scenarios(&self, test_id: i64) -> Result<Vec<(String, String)>, LiveError> {
        let rows = scenario_history::Entity::find()
            .filter(scenario_history::Column::TestHistoryId.eq(test_id))
            .order_by_asc(scenario_history::Column::Position)
            .all(&self.db)
            .await
            .map_err(|err| internal(test_id, err))?;
        Ok(rows.into_iter().map(|row| (row.scenario_tag, row.name)).collect())
    }

    #[tracing::instrument(skip(self, query), fields(test_id = query.test_id))]
    async fn ask(&self, query: &IntervalQuery) -> Result<IntervalAnswer, LiveError> {
        self.influx_queries.fetch_add(1, Ordering::Relaxed);
        match self.influx.query(&query.influxql()).await {
            Ok(series) => Ok(IntervalAnswer::read(&series)),
            // k6 creates its database with its first write: until then there is nothing.
            // (Asked several statements at once, InfluxDB says only "not executed" then.)
            Err(InfluxError::Query(message))
                if message.contains("database not found") || message == "not executed" =>
            {
                Ok(IntervalAnswer::default())
            }
            Err(err) => Err(LiveError::Upstream(err.to_string())),
        }
    }
}

fn internal(test_id: i64, cause: impl std::fmt::Debug) -> LiveError {
    tracing::error!(test_id, error = ?cause, "live metrics could not read the database");
    LiveError::Internal(format!("{cause:?}"))
}
