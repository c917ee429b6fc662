//! Runs and what hangs below them: a project's runs, a run's scenarios and their stages, an
//! endpoint's recent scenarios.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{DbLoader, EndpointRow, LoadResult, db_error, first_rows_per_parent, grouped, tuples};
use crate::db::{
    entities::{endpoint, scenario_history, stage_history, test_history},
    repo::{
        Page,
        history::{Cells, summary_table_by_index},
    },
};

/// One page of a project's runs, newest first: `first` rows after the run `before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunsOfProject {
    pub project_id: i64,
    pub first: u64,
    pub before: Option<i64>,
}

impl Loader<RunsOfProject> for DbLoader {
    type Value = Page<test_history::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RunsOfProject]) -> LoadResult<RunsOfProject, Self::Value> {
        use test_history::Column as C;
        // Parents asking for the same page shape share one statement.
        let mut shapes: HashMap<(u64, Option<i64>), Vec<i64>> = HashMap::new();
        for key in keys {
            shapes.entry((key.first, key.before)).or_default().push(key.project_id);
        }
        let mut pages = HashMap::new();
        for ((first, before), project_ids) in shapes {
            let mut inner =
                test_history::Entity::find().filter(C::ProjectId.is_in(project_ids.iter().copied()));
            if let Some(before) = before {
                inner = inner.filter(C::Id.lt(before));
            }
            let ranking = ("project_id", "id DESC");
            let newest_first = |row: &test_history::Model| std::cmp::Reverse(row.id);
            let mut runs = first_rows_per_parent(
                &self.db,
                inner,
                ranking,
                first + 1,
                |row| row.project_id,
                newest_first,
            )
            .await?;
            for project_id in project_ids {
                let rows = runs.remove(&project_id).unwrap_or_default();
                pages.insert(RunsOfProject { project_id, first, before }, Page::from_probe(rows, first));
            }
        }
        Ok(pages)
    }
}

/// The latest `last` scenario results (with a summary) against an endpoint, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecentScenariosOfEndpoint {
    pub endpoint_id: i64,
    pub last: u64,
}

impl Loader<RecentScenariosOfEndpoint> for DbLoader {
    type Value = Vec<scenario_history::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[RecentScenariosOfEndpoint],
    ) -> LoadResult<RecentScenariosOfEndpoint, Self::Value> {
        use scenario_history::Column as C;
        let mut by_last: HashMap<u64, Vec<i64>> = HashMap::new();
        for key in keys {
            by_last.entry(key.last).or_default().push(key.endpoint_id);
        }
        let mut results = HashMap::new();
        for (last, endpoint_ids) in by_last {
            let inner = scenario_history::Entity::find()
                .filter(C::EndpointId.is_in(endpoint_ids.iter().copied()))
                .filter(C::TotalRequests.is_not_null());
            let ranking = ("endpoint_id", "test_history_id DESC, id DESC");
            let newest_first =
                |row: &scenario_history::Model| std::cmp::Reverse((row.test_history_id, row.id));
            let mut scenarios =
                first_rows_per_parent(&self.db, inner, ranking, last, |row| row.endpoint_id, newest_first)
                    .await?;
            for endpoint_id in endpoint_ids {
                let rows = scenarios.remove(&endpoint_id).unwrap_or_default();
                results.insert(RecentScenariosOfEndpoint { endpoint_id, last }, rows);
            }
        }
        Ok(results)
    }
}

/// A run's scenarios, in launch order; with the columns of each scenario's endpoint (joined in
/// the same statement) when `with_endpoint`, as a board page asks when it shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScenariosOfRun {
    pub run_id: i64,
    pub with_endpoint: bool,
}

impl ScenariosOfRun {
    /// A run's scenarios without their endpoints, as a run's own fields read them.
    pub fn rows(run_id: i64) -> Self {
        Self { run_id, with_endpoint: false }
    }
}

/// A scenario row with its endpoint's, when joined.
pub type ScenarioWithEndpoint = (scenario_history::Model, Option<EndpointRow>);

summary_table_by_index!(SCENARIO_COLUMNS, decode_scenario, scenario_history:
    Id id, TestHistoryId test_history_id, EndpointId endpoint_id, Position position, Name name,
    ScenarioTag scenario_tag, Executor executor, ThinkTime think_time, MaxVusLimit max_vus_limit,
    ResponseTimeTarget response_time_target, ErrorRateTarget error_rate_target, Request request);

/// A `scenario_history` row selected as [`SCENARIO_COLUMNS`], after the endpoint's columns
/// when the statement joins them (`WITH_ENDPOINT`).
struct ScenarioByIndex<const WITH_ENDPOINT: bool>(ScenarioWithEndpoint);

impl<const WITH_ENDPOINT: bool> FromQueryResult for ScenarioByIndex<WITH_ENDPOINT> {
    fn from_query_result(row: &sea_orm::QueryResult, _prefix: &str) -> Result<Self, sea_orm::DbErr> {
        let mut cells = Cells::from(row, 0);
        let endpoint = if WITH_ENDPOINT { Some(EndpointRow::decode(&mut cells)?) } else { None };
        let scenario = decode_scenario(&mut cells)?;
        Ok(Self((scenario, endpoint)))
    }
}

/// The scenarios of the runs `ids`, with their endpoints' columns when `WITH_ENDPOINT`.
async fn scenarios_of_runs<const WITH_ENDPOINT: bool>(
    db: &DatabaseConnection,
    ids: Vec<i64>,
) -> Result<Vec<ScenarioByIndex<WITH_ENDPOINT>>, async_graphql::Error> {
    use scenario_history::Column as C;
    let mut select = scenario_history::Entity::find().select_only();
    if WITH_ENDPOINT {
        let to_endpoint = scenario_history::Entity::belongs_to(endpoint::Entity)
            .from(C::EndpointId)
            .to(endpoint::Column::Id);
        select = EndpointRow::select(select).join(JoinType::InnerJoin, to_endpoint.into());
    }
    select
        .columns(SCENARIO_COLUMNS.iter().copied())
        .filter(C::TestHistoryId.is_in(ids))
        .order_by_asc(C::TestHistoryId)
        .order_by_asc(C::Position)
        .into_model()
        .all(db)
        .await
        .map_err(db_error)
}

impl Loader<ScenariosOfRun> for DbLoader {
    type Value = Vec<ScenarioWithEndpoint>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ScenariosOfRun]) -> LoadResult<ScenariosOfRun, Self::Value> {
        let mut scenarios = HashMap::with_capacity(keys.len());
        // One statement per shape; a query asks all its runs' scenarios with the same shape.
        for with_endpoint in [false, true] {
            let shape: Vec<ScenariosOfRun> =
                keys.iter().filter(|k| k.with_endpoint == with_endpoint).copied().collect();
            if shape.is_empty() {
                continue;
            }
            let ids = shape.iter().map(|k| k.run_id).collect();
            let rows: Vec<ScenarioWithEndpoint> = if with_endpoint {
                scenarios_of_runs::<true>(&self.db, ids).await?.into_iter().map(|row| row.0).collect()
            } else {
                scenarios_of_runs::<false>(&self.db, ids).await?.into_iter().map(|row| row.0).collect()
            };
            let rows = rows
                .into_iter()
                .map(|row| (ScenariosOfRun { run_id: row.0.test_history_id, with_endpoint }, row));
            scenarios.extend(grouped(&shape, rows));
        }
        Ok(scenarios)
    }
}

/// Stages in order, by scenario: all of a run's (joined through its scenarios, so a board page
/// loads them beside the scenarios rather than after), or one scenario's (a scenario resolved on
/// its own, such as an endpoint's recent one, whose run's other scenarios nobody asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StagesOf {
    Run(i64),
    Scenario(i64),
}

/// The parent's id (the run's or the scenario's), then the stage's columns.
type StageTuple = (i64, i64, i64, i32, String, i32);

impl Loader<StagesOf> for DbLoader {
    type Value = Vec<stage_history::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[StagesOf]) -> LoadResult<StagesOf, Self::Value> {
        use stage_history::Column as C;
        let mut stages = HashMap::with_capacity(keys.len());
        // One statement per kind of parent asked for.
        for of_run in [true, false] {
            let shape: Vec<StagesOf> =
                keys.iter().filter(|key| matches!(key, StagesOf::Run(_)) == of_run).copied().collect();
            let ids: Vec<i64> =
                shape.iter().map(|(StagesOf::Run(id) | StagesOf::Scenario(id))| *id).collect();
            if ids.is_empty() {
                continue;
            }
            let select = stage_history::Entity::find().select_only();
            let select = if of_run {
                let to_scenario = stage_history::Entity::belongs_to(scenario_history::Entity)
                    .from(C::ScenarioHistoryId)
                    .to(scenario_history::Column::Id);
                select
                    .column(scenario_history::Column::TestHistoryId)
                    .join(JoinType::InnerJoin, to_scenario.into())
                    .filter(scenario_history::Column::TestHistoryId.is_in(ids))
            } else {
                select.column(C::ScenarioHistoryId).filter(C::ScenarioHistoryId.is_in(ids))
            };
            let select = select
                .columns([C::Id, C::ScenarioHistoryId, C::Position, C::Duration, C::Target])
                .order_by_asc(C::ScenarioHistoryId)
                .order_by_asc(C::Position);
            let rows: Vec<StageTuple> = tuples(&self.db, select).await?;
            let rows =
                rows.into_iter().map(|(parent, id, scenario_history_id, position, duration, target)| {
                    let key = if of_run { StagesOf::Run(parent) } else { StagesOf::Scenario(parent) };
                    (key, stage_history::Model { id, scenario_history_id, position, duration, target })
                });
            stages.extend(grouped(&shape, rows));
        }
        Ok(stages)
    }
}
