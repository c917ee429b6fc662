//! Runs and what hangs below them, read for many parents in one statement: projects' pages of
//! runs, runs' scenarios and their stages, endpoints' recent scenarios.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{
    Page,
    catalogue_rows::EndpointRow,
    history::{Cells, summary_table_by_index},
    relations::{first_rows_per_parent, group},
};
use crate::db::entities::{endpoint, scenario_history, stage_history, test_history};

/// One page of each project's runs, newest first: `first` rows after the run `before`. Every
/// project of `project_ids` has a page, empty when it has no such run.
pub async fn run_pages_of_projects(
    db: &impl ConnectionTrait,
    project_ids: &[i64],
    first: u64,
    before: Option<i64>,
) -> Result<HashMap<i64, Page<test_history::Model>>, DbErr> {
    use test_history::Column as C;
    let mut inner = test_history::Entity::find().filter(C::ProjectId.is_in(project_ids.iter().copied()));
    if let Some(before) = before {
        inner = inner.filter(C::Id.lt(before));
    }
    let ranking = ("project_id", "id DESC");
    let newest_first = |row: &test_history::Model| std::cmp::Reverse(row.id);
    let mut runs =
        first_rows_per_parent(db, inner, ranking, first + 1, |row| row.project_id, newest_first).await?;
    Ok(project_ids
        .iter()
        .map(|&project_id| {
            let rows = runs.remove(&project_id).unwrap_or_default();
            (project_id, Page::from_probe(rows, first))
        })
        .collect())
}

/// The latest `last` scenario results (with a summary) against each endpoint, newest first.
pub async fn recent_scenarios_of_endpoints(
    db: &impl ConnectionTrait,
    endpoint_ids: &[i64],
    last: u64,
) -> Result<HashMap<i64, Vec<scenario_history::Model>>, DbErr> {
    use scenario_history::Column as C;
    let inner = scenario_history::Entity::find()
        .filter(C::EndpointId.is_in(endpoint_ids.iter().copied()))
        .filter(C::TotalRequests.is_not_null());
    let ranking = ("endpoint_id", "test_history_id DESC, id DESC");
    let newest_first = |row: &scenario_history::Model| std::cmp::Reverse((row.test_history_id, row.id));
    first_rows_per_parent(db, inner, ranking, last, |row| row.endpoint_id, newest_first).await
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
    fn from_query_result(row: &sea_orm::QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        let mut cells = Cells::from(row, 0);
        let endpoint = if WITH_ENDPOINT { Some(EndpointRow::decode(&mut cells)?) } else { None };
        let scenario = decode_scenario(&mut cells)?;
        Ok(Self((scenario, endpoint)))
    }
}

/// The scenarios of the runs `ids`, with their endpoints' columns when `WITH_ENDPOINT`.
async fn scenarios_of<const WITH_ENDPOINT: bool>(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<Vec<ScenarioByIndex<WITH_ENDPOINT>>, DbErr> {
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
        .filter(C::TestHistoryId.is_in(ids.iter().copied()))
        .order_by_asc(C::TestHistoryId)
        .order_by_asc(C::Position)
        .into_model()
        .all(db)
        .await
}

/// The runs' scenarios, in launch order; with the columns of each scenario's endpoint (joined
/// in the same statement) when `with_endpoint`.
pub async fn scenarios_of_runs(
    db: &impl ConnectionTrait,
    run_ids: &[i64],
    with_endpoint: bool,
) -> Result<HashMap<i64, Vec<ScenarioWithEndpoint>>, DbErr> {
    let rows: Vec<ScenarioWithEndpoint> = if with_endpoint {
        scenarios_of::<true>(db, run_ids).await?.into_iter().map(|row| row.0).collect()
    } else {
        scenarios_of::<false>(db, run_ids).await?.into_iter().map(|row| row.0).collect()
    };
    Ok(group(rows.into_iter().map(|row| (row.0.test_history_id, row))))
}

/// Whose stages [`stages_of`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageParent {
    /// All of a run's, joined through its scenarios.
    Run,
    /// One scenario's.
    Scenario,
}

/// The parent's id (the run's or the scenario's), then the stage's columns.
type StageTuple = (i64, i64, i64, i32, String, i32);

/// Stages in order, by scenario, under the id of their `parent` (one of `ids`).
pub async fn stages_of(
    db: &impl ConnectionTrait,
    parent: StageParent,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<stage_history::Model>>, DbErr> {
    use stage_history::Column as C;
    let select = stage_history::Entity::find().select_only();
    let select = match parent {
        StageParent::Run => {
            let to_scenario = stage_history::Entity::belongs_to(scenario_history::Entity)
                .from(C::ScenarioHistoryId)
                .to(scenario_history::Column::Id);
            select
                .column(scenario_history::Column::TestHistoryId)
                .join(JoinType::InnerJoin, to_scenario.into())
                .filter(scenario_history::Column::TestHistoryId.is_in(ids.iter().copied()))
        }
        StageParent::Scenario => {
            select.column(C::ScenarioHistoryId).filter(C::ScenarioHistoryId.is_in(ids.iter().copied()))
        }
    };
    let select = select
        .columns([C::Id, C::ScenarioHistoryId, C::Position, C::Duration, C::Target])
        .order_by_asc(C::ScenarioHistoryId)
        .order_by_asc(C::Position);
    let rows: Vec<StageTuple> = select.into_tuple().all(db).await?;
    Ok(group(rows.into_iter().map(|(parent, id, scenario_history_id, position, duration, target)| {
        (parent, stage_history::Model { id, scenario_history_id, position, duration, target })
    })))
}
