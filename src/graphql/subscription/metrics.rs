//! `testMetrics`: a run's live snapshots, one per interval, from its shared poller.

use std::{borrow::Cow, sync::Arc};

use async_graphql::{
    Context, ContextSelectionSet, ID, OutputType, Positioned, Result, ServerResult, SimpleObject,
    Subscription, Value, parser::types::Field, registry::Registry,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::graphql::fast::asked_for::{AskedFor, shared_rendering};
use crate::{
    domain::regression::RegressionVerdict,
    error::AppError,
    graphql::types::{parse_id, to_id},
    metrics::live::{IntervalFigures, LiveMetrics, LiveSnapshot},
};

#[derive(Default)]
pub struct MetricsSubscription;

#[Subscription]
impl MetricsSubscription {
    /// Live metrics of one run, one snapshot per interval (about 1 s) until the run ends; the last one carries final: true.
    #[tracing::instrument(skip(self, ctx), fields(test_id = %test_history_id.as_str()))]
    async fn test_metrics(
        &self,
        ctx: &Context<'_>,
        test_history_id: ID,
    ) -> Result<impl Stream<Item = Result<SharedSnapshot>> + use<>> {
        let test_id = parse_id(&test_history_id, "testHistoryId")?;
        let feed = ctx.data_unchecked::<LiveMetrics>().watch(test_id).await?;
        // `item` has no public accessor; async-graphql's own derives read it the same way.
        let asked = ctx.data_opt::<AskedFor>().map(|asked| asked.field_at(ctx.item.pos));
        // An interval InfluxDB could not answer is an error on that event only; the stream goes on.
        Ok(feed.into_stream().map(move |event| match event {
            Ok(snapshot) => Ok(SharedSnapshot { snapshot, asked: asked.clone() }),
            Err(error) => Err(AppError::from(error).into()),
        }))
    }
}

/// A snapshot on its way to one subscriber: rendered as a [`MetricSnapshot`] the first time
/// a subscription asks for it, and taken from the snapshot's renderings by every other
/// subscription that asked alike.
pub struct SharedSnapshot {
    snapshot: Arc<LiveSnapshot>,
    /// What this subscription asked for, when the transport said (see `alike`).
    asked: Option<Arc<str>>,
}

impl SharedSnapshot {
    async fn render(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        MetricSnapshot::from(self.snapshot.as_ref()).resolve(ctx, field).await
    }
}

impl OutputType for SharedSnapshot {
    fn type_name() -> Cow<'static, str> {
        MetricSnapshot::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        MetricSnapshot::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        // Every field of `MetricSnapshot` is plain data that cannot fail: a rendering holds
        // all a subscriber would have got, errors included (none).
        shared_rendering(ctx, self.asked.as_ref(), &self.snapshot.renderings, self.render(ctx, field)).await
    }
}

/// A run over its last interval.
#[derive(SimpleObject)]
pub struct MetricSnapshot {
    test_history_id: ID,
    /// The end of the interval described.
    time: DateTime<Utc>,
    /// Seconds from the start of the load to `time`.
    elapsed_seconds: f64,
    /// Requests per second over the interval.
    tps: f64,
    /// Milliseconds, over the interval.
    avg_response_time: f64,
    /// Milliseconds, over the interval.
    p95_response_time: f64,
    /// Percent (0–100) of the interval's requests that failed.
    error_rate: f64,
    /// Virtual users at the end of the interval, over every k6 instance.
    vus: f64,
    /// Requests since the run started.
    total_requests: i64,
    /// True on the last snapshot of a run that has ended; the subscription completes after it.
    #[graphql(name = "final")]
    is_final: bool,
    scenarios: Vec<ScenarioSnapshot>,
    /// How far behind the present the run's stored samples reach, in seconds, for the k6
    /// instance furthest behind (at most 60; 0 in the run's first 5 s and once it has ended).
    /// k6 pushes once a second, so about 1–2 s is normal.
    samples_lag_seconds: f64,
    /// True when the stored samples lag more than 5 s: InfluxDB (or k6's output to it) is
    /// behind, and this snapshot's figures may be missing requests that were made. The run's
    /// totals come from k6 itself and are not affected; see TestHistory.resultsComplete.
    samples_lagging: bool,
    /// The run's plan's baseline at the same elapsed time (null without a baseline), to draw
    /// both lines live.
    baseline: Option<BaselineSnapshot>,
    /// The run's p95 so far against the baseline's over the same elapsed span (Mann–Whitney U
    /// on one-second intervals; INCONCLUSIVE until both have enough intervals): a regression
    /// flagged before the run ends. Null without a baseline.
    baseline_verdict: Option<RegressionVerdict>,
    /// When the server published this snapshot to its subscribers (one instant for all of
    /// them); the time a client receives it minus this is the delivery delay.
    published_at: DateTime<Utc>,
}

/// A baseline's figures at a live run's elapsed time.
#[derive(SimpleObject)]
pub struct BaselineSnapshot {
    test_history_id: ID,
    /// Seconds from the start of the baseline's load to the start of the interval shown.
    elapsed_seconds: f64,
    tps: f64,
    p95_response_time: f64,
    error_rate: f64,
}

/// One scenario over the last interval.
#[derive(SimpleObject)]
pub struct ScenarioSnapshot {
    name: String,
    tps: f64,
    avg_response_time: f64,
    p95_response_time: f64,
    error_rate: f64,
    /// Requests of this scenario since the run started.
    total_requests: i64,
}

impl ScenarioSnapshot {
    fn new(name: &str, figures: &IntervalFigures) -> Self {
        Self {
            name: name.to_owned(),
            tps: figures.tps,
            avg_response_time: figures.avg_response_time,
            p95_response_time: figures.p95_response_time,
            error_rate: figures.error_rate,
            total_requests: figures.total_requests,
        }
    }
}

impl From<&LiveSnapshot> for MetricSnapshot {
    fn from(snapshot: &LiveSnapshot) -> Self {
        Self {
            test_history_id: to_id(snapshot.test_id),
            time: snapshot.time,
            elapsed_seconds: snapshot.elapsed_seconds,
            tps: snapshot.run.tps,
            avg_response_time: snapshot.run.avg_response_time,
            p95_response_time: snapshot.run.p95_response_time,
            error_rate: snapshot.run.error_rate,
            vus: snapshot.vus,
            total_requests: snapshot.run.total_requests,
            is_final: snapshot.is_final,
            samples_lag_seconds: snapshot.samples_lag_seconds,
            samples_lagging: snapshot.samples_lagging,
            published_at: snapshot.published_at,
            baseline: snapshot.baseline.as_ref().map(|b| BaselineSnapshot {
                test_history_id: to_id(b.test_id),
                elapsed_seconds: b.elapsed_seconds,
                tps: b.tps,
                p95_response_time: b.p95_response_time,
                error_rate: b.error_rate,
            }),
            baseline_verdict: snapshot.baseline_verdict,
            scenarios: snapshot
                .scenarios
                .iter()
                .map(|s| ScenarioSnapshot::new(&s.name, &s.figures))
                .collect(),
        }
    }
}
