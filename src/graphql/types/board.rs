//! The board: a page of runs with the scenarios, stages and endpoints its query selects,
//! loaded for the whole page (one statement per relation, whatever the page size) and
//! answered from memory (see [`super::eager`]) instead of field by field.

use std::collections::HashMap;

use async_graphql::{
    Context, ContextSelectionSet, InputType, Positioned, Result, Value, parser::types::Field,
};

use super::{
    catalogue::Endpoint,
    eager::{
        EagerList, EagerObject, LoadedFields, WithLoaded, resolve_list_now, resolve_now, with_sub_selection,
    },
    history::{ScenarioHistory, Stage, TestHistory},
    loader,
};
use crate::{
    db::entities::{HasMetrics, test_history},
    domain::MetricSummary,
    graphql::loaders::{ScenariosOfRun, StagesOfRun},
};

/// A run of a page, with what the page loaded for it.
pub type BoardRun = WithLoaded<TestHistory, RunRelations>;

/// A scenario of a board run, with what the page loaded for it.
pub type BoardScenario = WithLoaded<ScenarioHistory, ScenarioRelations>;

/// A run's scenarios, when the query selects them or the run's verdict.
pub struct RunRelations {
    scenarios: Option<Vec<BoardScenario>>,
}

/// A scenario's stages and endpoint, when the query selects them.
pub struct ScenarioRelations {
    stages: Option<Vec<Stage>>,
    endpoint: Option<Endpoint>,
}

/// The runs of a page for a list field (`ctx`), with the relations its selection asks for:
/// the scenarios with their endpoints in one statement, their stages in another (both keyed
/// by run, so they load side by side and batch with sibling pages).
pub async fn board_runs(ctx: &Context<'_>, rows: Vec<test_history::Model>) -> Result<EagerList<BoardRun>> {
    let run = ctx.look_ahead();
    let scenario = run.field("scenarios");
    let with_scenarios = scenario.exists() || run.field("verdict").exists();
    let with_endpoint = scenario.field("endpoint").exists();
    let with_stages = scenario.field("stages").exists();
    let loader = loader(ctx);
    let (scenarios, stages) = futures_util::future::try_join(
        async {
            if with_scenarios {
                let keys = rows.iter().map(|row| ScenariosOfRun { run_id: row.id, with_endpoint });
                loader.load_many(keys).await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if with_stages {
                loader.load_many(rows.iter().map(|row| StagesOfRun(row.id))).await.map(Some)
            } else {
                Ok(None)
            }
        },
    )
    .await?;
    let mut stages_of_scenario = stages.map(|stages| {
        let mut grouped: HashMap<i64, Vec<Stage>> = HashMap::new();
        for stage in stages.into_values().flatten() {
            grouped.entry(stage.scenario_history_id).or_default().push(Stage::from(stage));
        }
        grouped
    });
    let mut scenarios = scenarios;
    let runs: Vec<BoardRun> = rows
        .into_iter()
        .map(|row| {
            let scenarios = scenarios.as_mut().map(|all| {
                let key = ScenariosOfRun { run_id: row.id, with_endpoint };
                let scenarios = all.remove(&key).unwrap_or_default();
                scenarios
                    .into_iter()
                    .map(|(scenario, endpoint)| WithLoaded {
                        loaded: ScenarioRelations {
                            stages: stages_of_scenario
                                .as_mut()
                                .map(|stages| stages.remove(&scenario.id).unwrap_or_default()),
                            endpoint: endpoint.map(Endpoint::from),
                        },
                        object: ScenarioHistory(scenario),
                    })
                    .collect()
            });
            WithLoaded { object: TestHistory(row), loaded: RunRelations { scenarios } }
        })
        .collect();
    Ok(runs.into())
}

/// A value as async-graphql answers it for a field of type `T`.
fn value<T: InputType>(value: &T) -> Value {
    value.to_value()
}

/// A run's or a scenario's summary under `field`'s sub-selection.
fn summary_value(
    summary: Option<MetricSummary>,
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
) -> Option<Value> {
    match summary {
        None => Some(Value::Null),
        Some(summary) => with_sub_selection(ctx, field, |ctx| resolve_now(&summary, ctx)),
    }
}

impl LoadedFields<TestHistory> for RunRelations {
    fn field_now(
        &self,
        run: &TestHistory,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> Option<Value> {
        let row = &run.0;
        Some(match field.node.name.node.as_str() {
            "id" => Value::String(row.id.to_string()),
            "title" => value(&row.title),
            "description" => value(&row.description),
            "targetTps" => value(&row.target_tps),
            "status" => value(&row.status),
            "runner" => value(&row.runner),
            "parallelism" => value(&row.parallelism),
            "jobName" => value(&row.job_name),
            "k6ScriptFileName" => value(&row.k6_script_file_name),
            "k6Script" => value(&row.k6_script),
            "testedAt" => value(&row.tested_at),
            "startedAt" => value(&row.started_at),
            "completedAt" => value(&row.completed_at),
            "failureReason" => value(&row.failure_reason),
            "isCompleted" => value(&row.is_completed),
            "summary" => summary_value(row.metrics(), ctx, field)?,
            "verdict" => {
                let scenarios = self.scenarios.as_deref()?;
                value(&run.verdict_with(scenarios.iter().map(|scenario| &scenario.object.0)))
            }
            "scenarios" => {
                let scenarios = self.scenarios.as_deref()?;
                with_sub_selection(ctx, field, |ctx| resolve_list_now(scenarios, ctx))?
            }
            // `project`, `timeseries`: not loaded with the page.
            _ => return None,
        })
    }
}

impl LoadedFields<ScenarioHistory> for ScenarioRelations {
    fn field_now(
        &self,
        scenario: &ScenarioHistory,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> Option<Value> {
        let row = &scenario.0;
        Some(match field.node.name.node.as_str() {
            "id" => Value::String(row.id.to_string()),
            "name" => value(&row.name),
            "scenarioTag" => value(&row.scenario_tag),
            "executor" => value(&row.executor),
            "thinkTime" => value(&row.think_time),
            "responseTimeTarget" => value(&row.response_time_target),
            "errorRateTarget" => value(&row.error_rate_target),
            "summary" => summary_value(row.metrics(), ctx, field)?,
            "verdict" => value(&ScenarioHistory::verdict_of(row)),
            "stages" => {
                let stages = self.stages.as_deref()?;
                with_sub_selection(ctx, field, |ctx| resolve_list_now(stages, ctx))?
            }
            "endpoint" => {
                let endpoint = self.endpoint.as_ref()?;
                with_sub_selection(ctx, field, |ctx| resolve_now(endpoint, ctx))?
            }
            // `testHistory`: not loaded with the page.
            _ => return None,
        })
    }
}

impl EagerObject for Stage {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "id" => value(&self.id),
            "duration" => value(&self.duration),
            "target" => value(&self.target),
            _ => return None,
        })
    }
}

impl EagerObject for MetricSummary {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "totalRequests" => value(&self.total_requests),
            "failedRequests" => value(&self.failed_requests),
            "testDuration" => value(&self.test_duration),
            "maxTps" => value(&self.max_tps),
            "minTps" => value(&self.min_tps),
            "avgTps" => value(&self.avg_tps),
            "maxResponseTime" => value(&self.max_response_time),
            "minResponseTime" => value(&self.min_response_time),
            "avgResponseTime" => value(&self.avg_response_time),
            "p50ResponseTime" => value(&self.p50_response_time),
            "p95ResponseTime" => value(&self.p95_response_time),
            "p99ResponseTime" => value(&self.p99_response_time),
            "maxErrorRate" => value(&self.max_error_rate),
            "minErrorRate" => value(&self.min_error_rate),
            "avgErrorRate" => value(&self.avg_error_rate),
            "maxVus" => value(&self.max_vus),
            "minVus" => value(&self.min_vus),
            "avgVus" => value(&self.avg_vus),
            _ => return None,
        })
    }
}
