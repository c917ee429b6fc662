//! A run's rows through its life: recorded at launch, marked running, finished with its results.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set,
    sea_query::Expr,
};

use crate::{
    db::entities::{HasMetrics, scenario_history, set_metric_columns, stage_history, test_history},
    domain::{
        Executor, MetricSummary, RunnerKind, TestStatus,
        counts::{K6Counts, RunCounts},
        integrity::Integrity,
    },
    error::{AppError, AppResult},
};

pub use super::plans::PlanLink;

mod ownership;
pub use ownership::{
    cancel_requests, ended_with_k6_processes, owned_by_others, release_leases, renew_leases, request_cancel,
    set_k6_processes, take_over,
};

/// A run to record at launch, as plain rows: what the lifecycle validated.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub project_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub target_tps: Option<f64>,
    pub runner: RunnerKind,
    pub parallelism: i32,
    pub scenarios: Vec<NewScenario>,
    /// The instance that runs it, and its lease's first expiry.
    pub owner_instance: String,
    pub lease_expires_at: DateTime<Utc>,
    /// The saved plan it runs (or is saved as).
    pub plan: PlanLink,
}

/// One scenario of a [`NewRun`], with its stages as (k6 duration, target).
#[derive(Clone, Debug)]
pub struct NewScenario {
    pub endpoint_id: i64,
    /// The name the user gave it.
    pub name: String,
    /// Its k6 key (the `scenario` tag of its samples).
    pub key: String,
    pub executor: Executor,
    pub think_time: f64,
    pub max_vus: Option<i32>,
    pub response_time_target: Option<f64>,
    pub error_rate_target: Option<f64>,
    /// What the history keeps of the request sent.
    pub request: Option<serde_json::Value>,
    pub stages: Vec<(String, i32)>,
}

/// Records a launch (PENDING) with its scenarios, stages and the exact script, in one
/// transaction. The script carries the run's id, which exists only once the row does:
/// `script` makes it from that id.
#[tracing::instrument(skip_all, fields(project_id = launch.project_id))]
pub async fn record_launch(
    db: &DatabaseConnection,
    launch: &NewRun,
    script: impl FnOnce(i64) -> String,
) -> AppResult<test_history::Model> {
    let txn = crate::db::begin_write(db).await?;
    let plan = match &launch.plan {
        PlanLink::None => None,
        PlanLink::Version { plan_id, version, exclusive } => {
            // The hold makes the check below atomic with the record: of two exclusive launches
            // racing, the second sees the first's run.
            super::plans::hold_live(&txn, *plan_id).await?;
            if *exclusive && let Some(active) = super::plans::active_run(&txn, *plan_id).await? {
                return Err(AppError::Conflict(format!(
                    "run {active} of test plan {plan_id} is still active"
                )));
            }
            Some((*plan_id, *version))
        }
        PlanLink::Save { title, definition } => {
            Some((super::plans::insert(&txn, launch.project_id, title, definition).await?.id, 1))
        }
    };
    let now = Utc::now();
    let run = test_history::ActiveModel {
        project_id: Set(launch.project_id),
        title: Set(launch.title.clone()),
        description: Set(launch.description.clone()),
        target_tps: Set(launch.target_tps),
        status: Set(TestStatus::Pending),
        runner: Set(launch.runner),
        parallelism: Set(launch.parallelism),
        job_name: Set(String::new()),
        k6_script_file_name: Set(String::new()),
        k6_script: Set(String::new()),
        tested_at: Set(now),
        is_completed: Set(false),
        results_complete: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        owner_instance: Set(Some(launch.owner_instance.clone())),
        lease_expires_at: Set(Some(launch.lease_expires_at)),
        plan_id: Set(plan.map(|(id, _)| id)),
        plan_version: Set(plan.map(|(_, version)| version)),
        ..Default::default()
    }
    .insert(&txn)
    .await?;

    let mut named: test_history::ActiveModel = run.clone().into();
    named.job_name = Set(format!("k6-{}", run.id));
    named.k6_script_file_name = Set(format!("test-{}.js", run.id));
    named.k6_script = Set(script(run.id));
    let run = named.update(&txn).await?;

    for (position, scenario) in launch.scenarios.iter().enumerate() {
        let row = scenario_history::ActiveModel {
            test_history_id: Set(run.id),
            endpoint_id: Set(scenario.endpoint_id),
            position: Set(position as i32),
            name: Set(scenario.name.clone()),
            scenario_tag: Set(scenario.key.clone()),
            executor: Set(scenario.executor),
            think_time: Set(scenario.think_time),
            max_vus_limit: Set(scenario.max_vus),
            response_time_target: Set(scenario.response_time_target),
            error_rate_target: Set(scenario.error_rate_target),
            request: Set(scenario.request.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let stages: Vec<_> = scenario
            .stages
            .iter()
            .enumerate()
            .map(|(i, (duration, target))| stage_history::ActiveModel {
                scenario_history_id: Set(row.id),
                position: Set(i as i32),
                duration: Set(duration.clone()),
                target: Set(*target),
                ..Default::default()
            })
            .collect();
        stage_history::Entity::insert_many(stages).exec_without_returning(&txn).await?;
    }
    super::project::runs_changed(&txn, launch.project_id).await?;
    txn.commit().await?;
    Ok(run)
}

pub async fn get(db: &DatabaseConnection, id: i64) -> AppResult<test_history::Model> {
    test_history::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("TestHistory", id))
}

/// PENDING → RUNNING; false when the run was no longer pending.
pub async fn mark_running(db: &DatabaseConnection, id: i64, at: DateTime<Utc>) -> AppResult<bool> {
    let updated = test_history::Entity::update_many()
        .col_expr(test_history::Column::Status, Expr::value(TestStatus::Running))
        .col_expr(test_history::Column::StartedAt, Expr::value(at))
        .col_expr(test_history::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(test_history::Column::Id.eq(id))
        .filter(test_history::Column::Status.eq(TestStatus::Pending))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// How a run ended, with whatever could be measured.
#[derive(Debug)]
pub struct RunEnding {
    pub status: TestStatus,
    pub completed_at: DateTime<Utc>,
    pub failure_reason: Option<String>,
    /// Run-wide summary; None when it could not be read.
    pub summary: Option<MetricSummary>,
    /// Per scenario key.
    pub scenario_summaries: Vec<(String, MetricSummary)>,
    /// k6's own counts (run, per scenario key); None when an instance wrote none.
    pub counts: Option<RunCounts>,
    /// Reported against stored samples; None when k6 never ran.
    pub integrity: Option<Integrity>,
    /// Verdicts against the plan's baseline (JSON), when there is one to judge against.
    pub regression: Option<String>,
}

/// Stores the end of a run and its results in one transaction — if the run is still PENDING
/// or RUNNING. The update is conditional on that status, so of two ends racing (k6's own end
/// and a cancel, or two instances), exactly one is recorded: the other gets `Ok(None)` and
/// must publish nothing.
pub async fn finish(
    db: &DatabaseConnection,
    id: i64,
    ending: RunEnding,
) -> AppResult<Option<test_history::Model>> {
    finish_with(db, id, ending, async |_, _| Ok(())).await
}

/// [`finish`], with `also` writing what else the end causes (the notifications it sends) in the
/// same transaction, given the run as recorded: both are committed, or neither.
#[tracing::instrument(skip(db, ending, also), fields(status = ?ending.status))]
pub async fn finish_with(
    db: &DatabaseConnection,
    id: i64,
    ending: RunEnding,
    also: impl AsyncFnOnce(&DatabaseTransaction, &test_history::Model) -> AppResult<()>,
) -> AppResult<Option<test_history::Model>> {
    let txn = crate::db::begin_write(db).await?;
    // Write before reading: on SQLite a transaction that reads first and then writes cannot wait
    // for another writer (two runs ending together), it fails at once with "database is locked".
    let claimed = test_history::Entity::update_many()
        .col_expr(test_history::Column::Status, Expr::value(ending.status))
        .col_expr(test_history::Column::IsCompleted, Expr::value(true))
        .filter(test_history::Column::Id.eq(id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        txn.rollback().await?;
        return match test_history::Entity::find_by_id(id).one(db).await? {
            Some(_) => Ok(None),
            None => Err(AppError::not_found("TestHistory", id)),
        };
    }
    let mut active = test_history::ActiveModel { id: sea_orm::Unchanged(id), ..Default::default() };
    active.status = Set(ending.status);
    active.completed_at = Set(Some(ending.completed_at));
    active.is_completed = Set(true);
    active.failure_reason = Set(ending.failure_reason);
    active.updated_at = Set(Utc::now());
    if let Some(summary) = &ending.summary {
        set_metric_columns!(active, summary);
    }
    if let Some((counts, _)) = &ending.counts {
        set_count_columns!(active, counts);
    }
    if let Some(integrity) = &ending.integrity {
        set_integrity(&mut active, integrity);
    }
    if ending.regression.is_some() {
        active.regression = Set(ending.regression);
    }
    let run = active.update(&txn).await.map_err(|err| match err {
        sea_orm::DbErr::RecordNotUpdated => AppError::not_found("TestHistory", id),
        other => other.into(),
    })?;
    let scenario_counts = ending.counts.as_ref().map_or(&[][..], |(_, scenarios)| scenarios.as_slice());
    store_scenario_results(&txn, id, &ending.scenario_summaries, scenario_counts).await?;
    also(&txn, &run).await?;
    txn.commit().await?;
    Ok(Some(run))
}

/// How a failure reason starts when a run ended without its results.
pub const METRICS_UNREADABLE: &str = "metrics could not be read from InfluxDB";

/// Whether the run ended without its results because InfluxDB could not be read; they are
/// filled in once it answers, however long that takes.
pub fn results_pending(run: &test_history::Model) -> bool {
    run.is_completed
        && run.total_requests.is_none()
        && run.started_at.is_some()
        && run.failure_reason.as_deref().is_some_and(|reason| reason.contains(METRICS_UNREADABLE))
}

/// Finished runs whose results could not be read when they ended ([`results_pending`]).
pub async fn runs_missing_results(db: &DatabaseConnection) -> AppResult<Vec<test_history::Model>> {
    Ok(test_history::Entity::find()
        .filter(test_history::Column::IsCompleted.eq(true))
        .filter(test_history::Column::TotalRequests.is_null())
        .filter(test_history::Column::StartedAt.is_not_null())
        .filter(test_history::Column::FailureReason.contains(METRICS_UNREADABLE))
        .all(db)
        .await?)
}

/// Fills in the results of a run that ended while its metrics could not be read.
pub async fn store_late_summary(
    db: &DatabaseConnection,
    id: i64,
    summary: &MetricSummary,
    scenario_summaries: &[(String, MetricSummary)],
) -> AppResult<()> {
    store_late_results(db, id, summary, scenario_summaries, None).await
}

/// [`store_late_summary`], with the run's integrity now that InfluxDB answers.
pub async fn store_late_results(
    db: &DatabaseConnection,
    id: i64,
    summary: &MetricSummary,
    scenario_summaries: &[(String, MetricSummary)],
    integrity: Option<&Integrity>,
) -> AppResult<()> {
    store_late_results_with(db, id, summary, scenario_summaries, integrity, None, async |_, _| Ok(())).await
}

/// [`store_late_results`], with `also` writing what the results cause (a verdict's
/// notification) in the same transaction, given the run as stored.
pub async fn store_late_results_with(
    db: &DatabaseConnection,
    id: i64,
    summary: &MetricSummary,
    scenario_summaries: &[(String, MetricSummary)],
    integrity: Option<&Integrity>,
    regression: Option<String>,
    also: impl AsyncFnOnce(&DatabaseTransaction, &test_history::Model) -> AppResult<()>,
) -> AppResult<()> {
    let run = test_history::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("TestHistory", id))?;
    // The note about the failed read is no longer true; any other reason stays.
    let reason = run.failure_reason.as_deref().and_then(|r| {
        let kept =
            r.split("; ").filter(|part| !part.starts_with(METRICS_UNREADABLE)).collect::<Vec<_>>().join("; ");
        (!kept.is_empty()).then_some(kept)
    });
    let txn = crate::db::begin_write(db).await?;
    let mut active = test_history::ActiveModel { id: sea_orm::Unchanged(run.id), ..Default::default() };
    set_metric_columns!(active, summary);
    if let Some(integrity) = integrity {
        set_integrity(&mut active, integrity);
    }
    active.failure_reason = Set(reason);
    active.updated_at = Set(Utc::now());
    if regression.is_some() {
        active.regression = Set(regression);
    }
    let stored = active.update(&txn).await?;
    store_scenario_results(&txn, id, scenario_summaries, &[]).await?;
    also(&txn, &stored).await?;
    txn.commit().await?;
    Ok(())
}

async fn store_scenario_results(
    txn: &sea_orm::DatabaseTransaction,
    id: i64,
    summaries: &[(String, MetricSummary)],
    counts: &[(String, K6Counts)],
) -> AppResult<()> {
    let scenarios = scenario_history::Entity::find()
        .filter(scenario_history::Column::TestHistoryId.eq(id))
        .all(txn)
        .await?;
    for scenario in scenarios {
        let summary = summaries.iter().find(|(key, _)| *key == scenario.scenario_tag);
        let counted = counts.iter().find(|(key, _)| *key == scenario.scenario_tag);
        if summary.is_none() && counted.is_none() {
            continue;
        }
        let mut active: scenario_history::ActiveModel = scenario.into();
        if let Some((_, summary)) = summary {
            set_metric_columns!(active, summary);
        }
        if let Some((_, counts)) = counted {
            set_count_columns!(active, counts);
        }
        active.update(txn).await?;
    }
    Ok(())
}

/// Writes k6's counts into the `k6_*` columns of a run's or a scenario's active model.
macro_rules! set_count_columns {
    ($model:expr, $counts:expr) => {{
        let model = &mut $model;
        let counts: &K6Counts = $counts;
        model.k6_requests = Set(Some(counts.requests));
        model.k6_failed_requests = Set(Some(counts.failed_requests));
        model.k6_iterations = Set(Some(counts.iterations));
        model.k6_data_sent = Set(Some(counts.data_sent));
        model.k6_data_received = Set(Some(counts.data_received));
    }};
}
use set_count_columns;

fn set_integrity(active: &mut test_history::ActiveModel, integrity: &Integrity) {
    active.instance_samples =
        Set(Some(serde_json::to_value(&integrity.instances).expect("instance figures serialise")));
    active.results_complete = Set(integrity.complete());
}

/// The run's stored integrity; None before its end was recorded with one.
pub fn integrity_of(run: &test_history::Model) -> Option<Integrity> {
    let instances = serde_json::from_value(run.instance_samples.clone()?)
        .inspect_err(|err| tracing::warn!(test_id = run.id, %err, "unreadable instance_samples"))
        .ok()?;
    Some(Integrity { instances })
}

/// k6's stored counts of run `run` and its scenarios.
pub async fn k6_counts(db: &DatabaseConnection, run: &test_history::Model) -> AppResult<Option<RunCounts>> {
    let Some(totals) = run.k6_counts() else {
        return Ok(None);
    };
    let scenarios = scenario_history::Entity::find()
        .filter(scenario_history::Column::TestHistoryId.eq(run.id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|s| Some((s.k6_counts()?, s)))
        .map(|(counts, s)| (s.scenario_tag, counts))
        .collect();
    Ok(Some((totals, scenarios)))
}

/// The k6 scenario keys of a run, in order.
pub async fn scenario_tags(db: &DatabaseConnection, id: i64) -> AppResult<Vec<String>> {
    use sea_orm::{QueryOrder, QuerySelect};
    Ok(scenario_history::Entity::find()
        .select_only()
        .column(scenario_history::Column::ScenarioTag)
        .filter(scenario_history::Column::TestHistoryId.eq(id))
        .order_by_asc(scenario_history::Column::Position)
        .into_tuple()
        .all(db)
        .await?)
}

/// A run's scenarios in launch order, each with its stages in order.
pub async fn scenarios_with_stages(
    db: &DatabaseConnection,
    id: i64,
) -> AppResult<Vec<(scenario_history::Model, Vec<stage_history::Model>)>> {
    use sea_orm::QueryOrder;
    let scenarios = scenario_history::Entity::find()
        .filter(scenario_history::Column::TestHistoryId.eq(id))
        .order_by_asc(scenario_history::Column::Position)
        .all(db)
        .await?;
    let mut stages = stage_history::Entity::find()
        .filter(stage_history::Column::ScenarioHistoryId.is_in(scenarios.iter().map(|s| s.id)))
        .order_by_asc(stage_history::Column::Position)
        .all(db)
        .await?;
    Ok(scenarios
        .into_iter()
        .map(|scenario| {
            let (own, rest) = stages.drain(..).partition(|stage| stage.scenario_history_id == scenario.id);
            stages = rest;
            (scenario, own)
        })
        .collect())
}
