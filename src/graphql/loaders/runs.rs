//! Runs and what hangs below them: a project's runs, a run's scenarios and their stages, an
//! endpoint's recent scenarios.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use super::{DbLoader, LoadResult, ScenarioWithEndpoint, db_error, per_key};
use crate::db::{
    entities::{scenario_history, stage_history, test_history},
    repo::{
        Page,
        run_rows::{
            StageParent, recent_scenarios_of_endpoints, run_pages_of_projects, scenarios_of_runs, stages_of,
        },
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
        // Parents asking for the same page shape share one statement.
        let mut shapes: HashMap<(u64, Option<i64>), Vec<i64>> = HashMap::new();
        for key in keys {
            shapes.entry((key.first, key.before)).or_default().push(key.project_id);
        }
        let mut pages = HashMap::new();
        for ((first, before), project_ids) in shapes {
            let found =
                run_pages_of_projects(&self.db, &project_ids, first, before).await.map_err(db_error)?;
            pages.extend(
                found
                    .into_iter()
                    .map(|(project_id, page)| (RunsOfProject { project_id, first, before }, page)),
            );
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
        let mut by_last: HashMap<u64, Vec<i64>> = HashMap::new();
        for key in keys {
            by_last.entry(key.last).or_default().push(key.endpoint_id);
        }
        let mut results = HashMap::new();
        for (last, endpoint_ids) in by_last {
            let mut scenarios =
                recent_scenarios_of_endpoints(&self.db, &endpoint_ids, last).await.map_err(db_error)?;
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
            let ids: Vec<i64> = shape.iter().map(|k| k.run_id).collect();
            let found = scenarios_of_runs(&self.db, &ids, with_endpoint).await.map_err(db_error)?;
            scenarios.extend(per_key(&shape, |key| key.run_id, found));
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

impl Loader<StagesOf> for DbLoader {
    type Value = Vec<stage_history::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[StagesOf]) -> LoadResult<StagesOf, Self::Value> {
        let mut stages = HashMap::with_capacity(keys.len());
        // One statement per kind of parent asked for.
        for parent in [StageParent::Run, StageParent::Scenario] {
            let of_run = parent == StageParent::Run;
            let shape: Vec<StagesOf> =
                keys.iter().filter(|key| matches!(key, StagesOf::Run(_)) == of_run).copied().collect();
            if shape.is_empty() {
                continue;
            }
            let ids: Vec<i64> =
                shape.iter().map(|(StagesOf::Run(id) | StagesOf::Scenario(id))| *id).collect();
            let found = stages_of(&self.db, parent, &ids).await.map_err(db_error)?;
            stages.extend(per_key(&shape, |(StagesOf::Run(id) | StagesOf::Scenario(id))| *id, found));
        }
        Ok(stages)
    }
}
