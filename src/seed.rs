//! Deterministic fixture data written straight to the database, for tests and benchmarks:
//! datasets too large to create through the API, and runs without a real k6 behind them.

use crate::{
    db::entities::{
        endpoint, endpoint_parameter, openapi_spec, request_body, scenario_history, set_metric_columns,
        stage_history, tag, tag_endpoint, test_history,
    },
    db::repo::project,
    domain::{Executor, HttpMethod, MetricSummary, ParameterLocation, RunnerKind, TestStatus},
};
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde_json::json;

impl Figures {
    /// A full summary around these figures: one minute of load, the rest derived.
    pub fn summary(self) -> MetricSummary {
        let total = (self.avg_tps * 60.0) as i64;
        MetricSummary {
            total_requests: total,
            failed_requests: (total as f64 * self.error_rate / 100.0) as i64,
            test_duration: 60.0,
            max_tps: self.avg_tps * 1.2,
            min_tps: self.avg_tps * 0.8,
            avg_tps: self.avg_tps,
            max_response_time: self.p95 * 2.0,
            min_response_time: 1.0,
            avg_response_time: self.p95 / 2.0,
            p50_response_time: self.p95 / 2.5,
            p95_response_time: self.p95,
            p99_response_time: self.p95 * 1.5,
            max_error_rate: self.error_rate * 2.0,
            min_error_rate: 0.0,
            avg_error_rate: self.error_rate,
            max_vus: 20.0,
            min_vus: 0.0,
            avg_vus: 12.0,
        }
    }
}

/// Ids of a seeded spec.
pub struct SeededSpec {
    pub spec_id: i64,
    pub endpoint_ids: Vec<i64>,
}

/// A spec with `endpoints` endpoints spread over `tags` tags; every endpoint has a path and
/// a query parameter, and every POST a JSON body.
pub async fn spec(
    db: &DatabaseConnection,
    project_id: i64,
    base_url: &str,
    tags: usize,
    endpoints: usize,
) -> SeededSpec {
    let txn = db.begin().await.unwrap();
    let now = Utc::now();
    let spec = openapi_spec::ActiveModel {
        project_id: Set(project_id),
        title: Set(format!("API at {base_url}")),
        version: Set(Some("1.0.0".into())),
        base_url: Set(base_url.into()),
        spec_format: Set("openapi 3.0.3".into()),
        source_url: Set(None),
        imported_at: Set(now),
        created_at: Set(now),
        revision: Set(1),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();

    let mut tag_ids = Vec::new();
    for t in 0..tags {
        let tag = tag::ActiveModel {
            spec_id: Set(spec.id),
            name: Set(format!("tag-{t}")),
            description: Set(Some(format!("Operations of area {t}"))),
            position: Set(t as i32),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        tag_ids.push(tag.id);
    }

    let methods = [HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Delete];
    let mut endpoint_ids = Vec::new();
    for chunk_start in (0..endpoints).step_by(500) {
        let chunk: Vec<_> = (chunk_start..endpoints.min(chunk_start + 500))
            .map(|i| endpoint::ActiveModel {
                project_id: Set(project_id),
                spec_id: Set(spec.id),
                method: Set(methods[i % methods.len()]),
                path: Set(format!("/resources-{}/{{id}}", i / methods.len())),
                operation_id: Set(Some(format!("operation{i}"))),
                summary: Set(Some(format!("Operation number {i}"))),
                description: Set(None),
                deprecated: Set(i % 10 == 9),
                removed_at: Set(None),
                created_at: Set(now),
                ..Default::default()
            })
            .collect();
        endpoint::Entity::insert_many(chunk).exec(&txn).await.unwrap();
    }
    let rows = endpoint::Entity::find()
        .filter(endpoint::Column::SpecId.eq(spec.id))
        .order_by_asc(endpoint::Column::Id)
        .all(&txn)
        .await
        .unwrap();
    endpoint_ids.extend(rows.iter().map(|row| row.id));

    let mut params = Vec::new();
    let mut links = Vec::new();
    let mut bodies = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        params.push(param(row.id, 0, "id", ParameterLocation::Path, json!(i)));
        params.push(param(row.id, 1, "verbose", ParameterLocation::Query, json!(false)));
        if !tag_ids.is_empty() {
            links.push(tag_endpoint::ActiveModel {
                tag_id: Set(tag_ids[i % tag_ids.len()]),
                endpoint_id: Set(row.id),
            });
        }
        if row.method == HttpMethod::Post {
            bodies.push(request_body::ActiveModel {
                endpoint_id: Set(row.id),
                content_type: Set("application/json".into()),
                required: Set(true),
                schema: Set(Some(
                    r#"{"type": "object", "properties": {"name": {"type": "string"}}}"#.to_owned(),
                )),
                example: Set(Some(json!({"name": "example"}))),
                ..Default::default()
            });
        }
    }
    for chunk in params.chunks(500) {
        endpoint_parameter::Entity::insert_many(chunk.to_vec()).exec(&txn).await.unwrap();
    }
    for chunk in links.chunks(500) {
        tag_endpoint::Entity::insert_many(chunk.to_vec()).exec_without_returning(&txn).await.unwrap();
    }
    for chunk in bodies.chunks(500) {
        request_body::Entity::insert_many(chunk.to_vec()).exec(&txn).await.unwrap();
    }
    txn.commit().await.unwrap();
    SeededSpec { spec_id: spec.id, endpoint_ids }
}

fn param(
    endpoint_id: i64,
    position: i32,
    name: &str,
    location: ParameterLocation,
    example: serde_json::Value,
) -> endpoint_parameter::ActiveModel {
    endpoint_parameter::ActiveModel {
        endpoint_id: Set(endpoint_id),
        position: Set(position),
        name: Set(name.into()),
        location: Set(location),
        required: Set(location == ParameterLocation::Path),
        schema_type: Set(Some(
            if location == ParameterLocation::Path { "integer" } else { "boolean" }.into(),
        )),
        description: Set(None),
        example: Set(Some(example)),
        ..Default::default()
    }
}

/// A run, built up fluently: `Run::new(project).status(..).scenario(..).insert(db)`.
pub struct Run {
    project_id: i64,
    status: TestStatus,
    target_tps: Option<f64>,
    minutes_ago: i64,
    summary: Option<Figures>,
    scenarios: Vec<ScenarioSeed>,
}

/// The summary figures that matter to verdicts and trends; the rest is derived.
#[derive(Clone, Copy)]
pub struct Figures {
    pub p95: f64,
    pub error_rate: f64,
    pub avg_tps: f64,
}

pub struct ScenarioSeed {
    pub endpoint_id: i64,
    pub response_time_target: Option<f64>,
    pub error_rate_target: Option<f64>,
    pub summary: Option<Figures>,
}

impl Run {
    pub fn new(project_id: i64) -> Self {
        Self {
            project_id,
            status: TestStatus::Completed,
            target_tps: None,
            minutes_ago: 0,
            summary: None,
            scenarios: vec![],
        }
    }
    pub fn status(mut self, status: TestStatus) -> Self {
        self.status = status;
        self
    }
    pub fn target_tps(mut self, target: f64) -> Self {
        self.target_tps = Some(target);
        self
    }
    pub fn started_minutes_ago(mut self, minutes: i64) -> Self {
        self.minutes_ago = minutes;
        self
    }
    pub fn summary(mut self, figures: Figures) -> Self {
        self.summary = Some(figures);
        self
    }
    pub fn scenario(mut self, scenario: ScenarioSeed) -> Self {
        self.scenarios.push(scenario);
        self
    }

    /// Writes the run with its scenarios (three stages each) and returns its id.
    pub async fn insert(self, db: &DatabaseConnection) -> i64 {
        let txn = db.begin().await.unwrap();
        let started = Utc::now() - Duration::minutes(self.minutes_ago);
        let finished = !self.status.is_active();
        let mut run = test_history::ActiveModel {
            project_id: Set(self.project_id),
            title: Set("Checkout under load".into()),
            description: Set(None),
            target_tps: Set(self.target_tps),
            status: Set(self.status),
            runner: Set(RunnerKind::Local),
            parallelism: Set(1),
            job_name: Set("k6-seeded".into()),
            k6_script_file_name: Set("seeded.js".into()),
            k6_script: Set("export default function () {}".into()),
            tested_at: Set(started),
            started_at: Set(Some(started)),
            completed_at: Set(finished.then(|| started + Duration::seconds(60))),
            failure_reason: Set(None),
            is_completed: Set(finished),
            results_complete: Set(false),
            created_at: Set(started),
            updated_at: Set(started),
            ..Default::default()
        };
        if let Some(figures) = self.summary {
            set_metric_columns!(run, &figures.summary());
        }
        let run = run.insert(&txn).await.unwrap();
        for (position, seed) in self.scenarios.into_iter().enumerate() {
            let mut scenario = scenario_history::ActiveModel {
                test_history_id: Set(run.id),
                endpoint_id: Set(seed.endpoint_id),
                position: Set(position as i32),
                name: Set(format!("scenario {position}")),
                scenario_tag: Set(format!("scenario_{position}")),
                executor: Set(Executor::RampingVus),
                think_time: Set(1.0),
                max_vus_limit: Set(None),
                response_time_target: Set(seed.response_time_target),
                error_rate_target: Set(seed.error_rate_target),
                request: Set(None),
                ..Default::default()
            };
            if let Some(figures) = seed.summary {
                set_metric_columns!(scenario, &figures.summary());
            }
            let scenario = scenario.insert(&txn).await.unwrap();
            let stages: Vec<_> = [("10s", 5), ("30s", 20), ("10s", 0)]
                .iter()
                .enumerate()
                .map(|(i, (duration, target))| stage_history::ActiveModel {
                    scenario_history_id: Set(scenario.id),
                    position: Set(i as i32),
                    duration: Set((*duration).into()),
                    target: Set(*target),
                    ..Default::default()
                })
                .collect();
            stage_history::Entity::insert_many(stages).exec(&txn).await.unwrap();
        }
        project::runs_changed(&txn, self.project_id).await.unwrap();
        txn.commit().await.unwrap();
        run.id
    }
}

/// A large history in few statements: `runs` finished runs of a project, each with four
/// scenarios over `endpoint_ids` (round robin) and three stages, all with summaries.
/// For benchmarks of the main board; rows are written with multi-row inserts.
pub async fn board_history(db: &DatabaseConnection, project_id: i64, endpoint_ids: &[i64], runs: usize) {
    const SCENARIOS: usize = 4;
    const CHUNK: usize = 400;
    let figures = Figures { p95: 120.0, error_rate: 0.5, avg_tps: 80.0 };
    let summary = &figures.summary();
    let txn = db.begin().await.unwrap();
    let started = Utc::now() - Duration::days(30);
    for chunk_start in (0..runs).step_by(CHUNK) {
        let rows: Vec<_> = (chunk_start..runs.min(chunk_start + CHUNK))
            .map(|i| {
                let at = started + Duration::minutes(i as i64);
                let mut run = test_history::ActiveModel {
                    project_id: Set(project_id),
                    title: Set(format!("Nightly run {i}")),
                    status: Set(TestStatus::Completed),
                    runner: Set(RunnerKind::Local),
                    parallelism: Set(1),
                    job_name: Set(format!("k6-seeded-{i}")),
                    k6_script_file_name: Set(format!("seeded-{i}.js")),
                    k6_script: Set("export default function () {}".into()),
                    tested_at: Set(at),
                    started_at: Set(Some(at)),
                    completed_at: Set(Some(at + Duration::seconds(60))),
                    is_completed: Set(true),
                    results_complete: Set(false),
                    created_at: Set(at),
                    updated_at: Set(at),
                    ..Default::default()
                };
                set_metric_columns!(run, summary);
                run
            })
            .collect();
        let inserted = test_history::Entity::insert_many(rows).exec_with_returning(&txn).await.unwrap();
        let scenarios: Vec<_> = inserted
            .iter()
            .flat_map(|run| {
                (0..SCENARIOS).map(move |s| {
                    let mut scenario = scenario_history::ActiveModel {
                        test_history_id: Set(run.id),
                        endpoint_id: Set(endpoint_ids[(run.id as usize + s) % endpoint_ids.len()]),
                        position: Set(s as i32),
                        name: Set(format!("scenario {s}")),
                        scenario_tag: Set(format!("scenario_{s}")),
                        executor: Set(Executor::RampingVus),
                        think_time: Set(1.0),
                        response_time_target: Set(Some(200.0)),
                        error_rate_target: Set(Some(1.0)),
                        ..Default::default()
                    };
                    set_metric_columns!(scenario, summary);
                    scenario
                })
            })
            .collect();
        for scenario_chunk in scenarios.chunks(CHUNK) {
            let rows = scenario_history::Entity::insert_many(scenario_chunk.to_vec())
                .exec_with_returning(&txn)
                .await
                .unwrap();
            let stages: Vec<_> = rows
                .iter()
                .flat_map(|scenario| {
                    [("10s", 5), ("30s", 20), ("10s", 0)].into_iter().enumerate().map(
                        |(i, (duration, target))| stage_history::ActiveModel {
                            scenario_history_id: Set(scenario.id),
                            position: Set(i as i32),
                            duration: Set(duration.into()),
                            target: Set(target),
                            ..Default::default()
                        },
                    )
                })
                .collect();
            stage_history::Entity::insert_many(stages).exec_without_returning(&txn).await.unwrap();
        }
    }
    project::runs_changed(&txn, project_id).await.unwrap();
    txn.commit().await.unwrap();
}
