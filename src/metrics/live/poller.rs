//! The poller of one run: what it remembers between intervals, and how one snapshot is
//! asked for and put together.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};

use super::{
    FLUSH_LAG, Feed, IntervalFigures, LAG_GRACE, LAG_LIMIT_SECONDS, LAG_LOOKBACK, LiveError, LiveSnapshot,
    RUN_MARGIN, Registry, Renderings, ScenarioFigures, VUS_LOOKBACK,
    baseline::BaselineSeries,
    internal,
    interval::{HalfOpen, IntervalAnswer, IntervalQuery},
};
use crate::{
    db::{entities::test_history, repo},
    error::AppError,
};

/// How often a live run's plan is asked which run is its baseline.
const BASELINE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a poller remembers between intervals.
struct Follower {
    test_id: i64,
    interval: chrono::Duration,
    /// (k6 key, display name); read once, when the first interval needs it.
    scenarios: Option<Vec<(String, String)>>,
    /// Requests up to this instant are in `totals`.
    counted_until: Option<DateTime<Utc>>,
    totals: HashMap<String, i64>,
    /// The time of the latest snapshot published.
    last_time: Option<DateTime<Utc>>,
    /// The plan's baseline, and when the plan was last asked which run it is (it may change,
    /// or be cleared or deleted, while the run is live).
    baseline: Option<BaselineSeries>,
    baseline_checked: Option<tokio::time::Instant>,
    /// The run's p95 of each live interval with requests so far.
    p95_so_far: Vec<f64>,
}

/// The poller of one run: one snapshot per interval until the final one, or until nobody
/// listens.
pub(super) async fn follow_run(registry: Arc<Registry>, test_id: i64, feed: Feed) {
    tracing::debug!(test_id, "live poller started");
    let mut ticker = tokio::time::interval(registry.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut follower = Follower {
        test_id,
        interval: chrono::Duration::from_std(registry.interval).unwrap_or(chrono::Duration::seconds(1)),
        scenarios: None,
        counted_until: None,
        totals: HashMap::new(),
        last_time: None,
        baseline: None,
        baseline_checked: None,
        p95_so_far: Vec::new(),
    };
    loop {
        ticker.tick().await;
        if registry.retire(test_id, &feed, false) {
            tracing::debug!(test_id, "live poller stopped: nobody listens");
            return;
        }
        let run = match repo::runs::get(&registry.db, test_id).await {
            Ok(run) => run,
            Err(AppError::NotFound { .. }) => {
                registry.retire(test_id, &feed, true);
                return;
            }
            Err(err) => {
                feed.send_replace(Some(Err(internal(test_id, err))));
                continue;
            }
        };
        let event = follower.snapshot(&registry, &run).await.map(|mut snapshot| {
            snapshot.published_at = Utc::now();
            Arc::new(snapshot)
        });
        let is_final = matches!(&event, Ok(snapshot) if snapshot.is_final);
        feed.send_replace(Some(event));
        if is_final {
            registry.retire(test_id, &feed, true);
            tracing::debug!(test_id, "live poller stopped: the run has ended");
            return;
        }
    }
}

impl Follower {
    async fn snapshot(
        &mut self,
        registry: &Registry,
        run: &test_history::Model,
    ) -> Result<LiveSnapshot, LiveError> {
        if self.scenarios.is_none() {
            self.scenarios = Some(registry.scenarios(self.test_id).await?);
        }
        let ended = !run.status.is_active();
        let lag = chrono::Duration::from_std(FLUSH_LAG).expect("a small lag");
        let Some(started_at) = run.started_at else {
            // k6 has not begun (or never did): there are no samples to ask for.
            let time = if ended { run.completed_at.unwrap_or(run.updated_at) } else { Utc::now() - lag };
            return Ok(self.assemble(time, 0.0, &IntervalAnswer::default(), ended));
        };
        let first_sample = started_at - RUN_MARGIN;
        let (end, counting) = if ended {
            // Every request of the run, counted afresh: what the run's summary counts too.
            let end = run.completed_at.unwrap_or(run.updated_at);
            (end, Some(HalfOpen { start: first_sample, end: end + RUN_MARGIN }))
        } else {
            let end = Utc::now() - lag;
            let since = self.counted_until.unwrap_or(first_sample);
            (end, (since < end).then_some(HalfOpen { start: since, end }))
        };
        let now = end + lag;
        // Lag is judged while the run is live and past its first seconds.
        let judged = !ended && now - started_at > LAG_GRACE;
        let query = IntervalQuery {
            test_id: self.test_id,
            rates: HalfOpen { start: end - self.interval, end },
            counting,
            vus: HalfOpen { start: end - self.interval - VUS_LOOKBACK, end },
            newest: judged.then_some(HalfOpen { start: now - LAG_LOOKBACK, end: now + RUN_MARGIN }),
        };
        let answer = registry.ask(&query).await?;
        if ended {
            self.totals.clear();
        }
        if let Some(counting) = counting {
            for (key, counted) in &answer.counted {
                *self.totals.entry(key.clone()).or_default() += counted;
            }
            self.counted_until = Some(counting.end);
        }
        let elapsed = ((end - started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        let mut snapshot = self.assemble(end, elapsed, &answer, ended);
        self.follow_baseline(registry, run).await;
        let seconds = self.interval.num_milliseconds() as f64 / 1000.0;
        // Full intervals only (the first covers k6's start), as the end-of-run verdict has them.
        if !ended && snapshot.run.tps > 0.0 && elapsed >= seconds {
            self.p95_so_far.push(snapshot.run.p95_response_time);
        }
        if let Some(baseline) = &self.baseline {
            // The baseline's interval holding the middle of this snapshot's interval.
            snapshot.baseline = baseline.at(elapsed - seconds / 2.0);
            snapshot.baseline_verdict =
                Some(baseline.verdict(&self.p95_so_far, elapsed, &registry.regression));
        }
        if judged {
            let instances = u32::try_from(run.parallelism).unwrap_or(1).max(1);
            let since = (now - started_at).min(LAG_LOOKBACK);
            snapshot.samples_lag_seconds = samples_lag(&answer, instances, now, since);
            snapshot.samples_lagging = snapshot.samples_lag_seconds > LAG_LIMIT_SECONDS;
        }
        // A live snapshot may describe an interval reaching past the run's end (the end is
        // recorded a moment after k6 stops); the final one never goes back in time.
        if let Some(last) = self.last_time.filter(|last| *last > snapshot.time) {
            snapshot.time = last;
        }
        self.last_time = Some(snapshot.time);
        Ok(snapshot)
    }

    /// Keeps the baseline in step with the plan: asked every [`BASELINE_CHECK_EVERY`], loaded
    /// again when another run became the baseline, dropped when it was cleared or deleted.
    async fn follow_baseline(&mut self, registry: &Registry, run: &test_history::Model) {
        let now = tokio::time::Instant::now();
        if self.baseline_checked.is_some_and(|checked| now - checked < BASELINE_CHECK_EVERY) {
            return;
        }
        self.baseline_checked = Some(now);
        let current = BaselineSeries::current_id(registry, run).await;
        if current != self.baseline.as_ref().map(|baseline| baseline.test_id) {
            self.baseline = match current {
                Some(id) => BaselineSeries::load(registry, id).await,
                None => None,
            };
        }
    }

    fn assemble(
        &self,
        time: DateTime<Utc>,
        elapsed_seconds: f64,
        answer: &IntervalAnswer,
        is_final: bool,
    ) -> LiveSnapshot {
        let seconds = self.interval.num_milliseconds() as f64 / 1000.0;
        let percent = |failed: f64, checked: f64| if checked > 0.0 { failed / checked * 100.0 } else { 0.0 };
        let scenarios: Vec<ScenarioFigures> = self
            .scenarios
            .iter()
            .flatten()
            .map(|(key, name)| {
                let samples = answer.scenarios.get(key).copied().unwrap_or_default();
                let figures = IntervalFigures {
                    tps: samples.requests / seconds,
                    avg_response_time: samples.avg_response_time,
                    p95_response_time: samples.p95_response_time,
                    error_rate: percent(samples.failed, samples.checked),
                    total_requests: self.totals.get(key).copied().unwrap_or(0),
                };
                ScenarioFigures { name: name.clone(), figures }
            })
            .collect();
        let all = answer.scenarios.values();
        let (requests, failed, checked) =
            all.fold((0.0, 0.0, 0.0), |(r, f, c), s| (r + s.requests, f + s.failed, c + s.checked));
        let run = IntervalFigures {
            tps: requests / seconds,
            avg_response_time: answer.run_avg_response_time,
            p95_response_time: answer.run_p95_response_time,
            error_rate: percent(failed, checked),
            total_requests: self.totals.values().sum(),
        };
        LiveSnapshot {
            test_id: self.test_id,
            time,
            elapsed_seconds,
            run,
            vus: answer.vus,
            scenarios,
            is_final,
            samples_lag_seconds: 0.0,
            samples_lagging: false,
            baseline: None,
            baseline_verdict: None,
            // Set again when it is published.
            published_at: time,
            renderings: Renderings::default(),
        }
    }
}

/// Seconds between `now` and the newest stored sample of the instance furthest behind; an
/// instance with nothing stored in the window is `since` behind (the window, or the run's age
/// when shorter). Never negative: k6's clock may run a little ahead of ours.
fn samples_lag(answer: &IntervalAnswer, instances: u32, now: DateTime<Utc>, since: chrono::Duration) -> f64 {
    let missing = since.num_milliseconds() as f64 / 1000.0;
    (0..instances)
        .map(|index| match answer.newest.get(&index.to_string()) {
            Some(at) => ((now.timestamp_millis() - at) as f64 / 1000.0).max(0.0),
            None => missing,
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn the_instance_furthest_behind_sets_the_lag() {
        let now = DateTime::from_timestamp_millis(1_700_000_100_000).unwrap();
        let mut answer = IntervalAnswer::default();
        answer.newest.insert("0".into(), 1_700_000_098_500);
        answer.newest.insert("1".into(), 1_700_000_091_000);
        let since = chrono::Duration::seconds(60);
        assert_eq!(samples_lag(&answer, 2, now, since), 9.0);
        assert_eq!(samples_lag(&answer, 1, now, since), 1.5, "only the run's instances count");
        assert_eq!(
            samples_lag(&answer, 3, now, since),
            60.0,
            "an instance with nothing stored lags the whole window"
        );
        answer.newest.insert("0".into(), 1_700_000_100_400);
        assert_eq!(samples_lag(&answer, 1, now, since), 0.0, "a clock ahead of ours is no lag");
    }
}
