//! The board: a page of runs with the scenarios, stages and endpoints its query selects,
//! loaded for the whole page (one statement per relation, whatever the page size) and
//! answered from memory (see [`super::eager`]) instead of field by field.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    Context, ContextSelectionSet, InputType, Lookahead, Positioned, Result, Value, parser::types::Field,
};

use super::{
    eager::{
        EagerList, EagerObject, LoadedFields, WithLoaded, resolve_list_now, resolve_now, with_sub_selection,
    },
    plain::{PlainValue, is_field},
    read_cache::{RunTree, ScenariosStamp, run_trees},
};
use crate::{
    access::Principal,
    db::{
        cache::StampedCache,
        entities::{HasMetrics, stage_history, test_history},
    },
    domain::{MetricSummary, summary_metrics},
    graphql::{
        loaders::{ScenarioWithEndpoint, ScenariosOfRun, StagesOf},
        types::{
            catalogue::Endpoint,
            history::{ScenarioHistory, Stage, TestHistory, sees_secrets, visible_request, visible_script},
            integrity::{RunIntegrity, RunTotals},
            loader,
        },
    },
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
/// by run, so they load side by side and batch with sibling pages) — or neither, for the runs
/// whose scenarios and stages the read cache holds under the run's current `updated_at`.
pub async fn board_runs(ctx: &Context<'_>, rows: Vec<test_history::Model>) -> Result<EagerList<BoardRun>> {
    let run = ctx.look_ahead();
    let scenario = run.field("scenarios");
    let with_scenarios = scenario.exists() || run.field("verdict").exists();
    let endpoint = scenario.field("endpoint");
    let with_endpoint = endpoint.exists();
    let with_stages = scenario.field("stages").exists();
    let (mut scenarios, stages) = match run_trees(ctx) {
        // The cache holds only what never changes of an endpoint.
        Some(cache) if with_scenarios && (!with_endpoint || endpoint_identity_only(&endpoint)) => {
            let trees = cached_trees(ctx, cache, &rows).await?;
            let scenarios = trees
                .iter()
                .map(|(run_id, tree)| {
                    let scenarios = tree.scenarios.iter().map(|(scenario, endpoint)| {
                        (scenario.clone(), with_endpoint.then(|| endpoint.clone()).flatten())
                    });
                    (*run_id, scenarios.collect())
                })
                .collect();
            let stages =
                with_stages.then(|| trees.values().flat_map(|tree| tree.stages.iter().cloned()).collect());
            (Some(scenarios), stages)
        }
        _ => {
            let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
            load_relations(ctx, &ids, with_scenarios, with_endpoint, with_stages).await?
        }
    };
    let mut stages_of_scenario = stages.map(|stages: Vec<stage_history::Model>| {
        let mut grouped: HashMap<i64, Vec<Stage>> = HashMap::new();
        for stage in stages {
            grouped.entry(stage.scenario_history_id).or_default().push(Stage::from(stage));
        }
        grouped
    });
    let runs: Vec<BoardRun> = rows
        .into_iter()
        .map(|row| {
            let scenarios = scenarios.as_mut().map(|all| {
                let scenarios = all.remove(&row.id).unwrap_or_default();
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

/// Scenarios by run id, and stages.
type Relations = (Option<HashMap<i64, Vec<ScenarioWithEndpoint>>>, Option<Vec<stage_history::Model>>);

/// The relations the selection asks for, read for the whole page.
async fn load_relations(
    ctx: &Context<'_>,
    ids: &[i64],
    with_scenarios: bool,
    with_endpoint: bool,
    with_stages: bool,
) -> Result<Relations> {
    let loader = loader(ctx);
    let (scenarios, stages) = futures_util::future::try_join(
        async {
            if with_scenarios {
                let keys = ids.iter().map(|&run_id| ScenariosOfRun { run_id, with_endpoint });
                loader.load_many(keys).await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if with_stages {
                loader.load_many(ids.iter().map(|&id| StagesOf::Run(id))).await.map(Some)
            } else {
                Ok(None)
            }
        },
    )
    .await?;
    let scenarios =
        scenarios.map(|all| all.into_iter().map(|(key, scenarios)| (key.run_id, scenarios)).collect());
    Ok((scenarios, stages.map(|all| all.into_values().flatten().collect())))
}

/// The page's runs' scenarios (with endpoints) and stages: from the cache where it holds them
/// under the run's stamp, the others read in two statements and filed.
async fn cached_trees(
    ctx: &Context<'_>,
    cache: &StampedCache<i64, ScenariosStamp, RunTree>,
    rows: &[test_history::Model],
) -> Result<HashMap<i64, Arc<RunTree>>> {
    let mut trees = HashMap::with_capacity(rows.len());
    let mut missing = Vec::new();
    for row in rows {
        match cache.get(&row.id, &ScenariosStamp::from(row)) {
            Some(tree) => {
                trees.insert(row.id, tree);
            }
            None => missing.push(row),
        }
    }
    if missing.is_empty() {
        return Ok(trees);
    }
    let ids: Vec<i64> = missing.iter().map(|row| row.id).collect();
    let (Some(mut scenarios), Some(stages)) = load_relations(ctx, &ids, true, true, true).await? else {
        unreachable!("both relations were asked for");
    };
    let mut stages_of_run: HashMap<i64, Vec<stage_history::Model>> = HashMap::new();
    let run_of_scenario: HashMap<i64, i64> =
        scenarios.values().flatten().map(|(scenario, _)| (scenario.id, scenario.test_history_id)).collect();
    for stage in stages {
        if let Some(run_id) = run_of_scenario.get(&stage.scenario_history_id) {
            stages_of_run.entry(*run_id).or_default().push(stage);
        }
    }
    for (row, id) in missing.into_iter().zip(ids) {
        let tree = Arc::new(RunTree {
            scenarios: scenarios.remove(&id).unwrap_or_default(),
            stages: stages_of_run.remove(&id).unwrap_or_default(),
        });
        cache.put(id, ScenariosStamp::from(row), tree.clone(), tree.rows());
        trees.insert(id, tree);
    }
    Ok(trees)
}

/// Whether an endpoint selection reads only what an endpoint id never changes: its id,
/// method and path (a re-import rewrites the rest).
fn endpoint_identity_only(endpoint: &Lookahead<'_>) -> bool {
    endpoint.selection_fields().iter().all(|field| {
        field
            .selection_set()
            .all(|selected| matches!(selected.name(), "id" | "method" | "path" | "__typename"))
    })
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

/// A nullable object field under `field`'s sub-selection.
fn object_value<T: EagerObject>(
    object: Option<T>,
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
) -> Option<Value> {
    match object {
        None => Some(Value::Null),
        Some(object) => with_sub_selection(ctx, field, |ctx| resolve_now(&object, ctx)),
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
        let name = field.node.name.node.as_str();
        if let Some(value) = run.plain_field_now(name) {
            return Some(value);
        }
        Some(match name {
            "k6Script" => {
                value(&visible_script(&row.k6_script, sees_secrets(ctx.data_opt::<Principal>())).into_owned())
            }
            "summary" => summary_value(row.metrics(), ctx, field)?,
            "totals" => object_value(RunTotals::of(row), ctx, field)?,
            "integrity" => object_value(RunIntegrity::of_run(row), ctx, field)?,
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
        let name = field.node.name.node.as_str();
        if let Some(value) = scenario.plain_field_now(name) {
            return Some(value);
        }
        Some(match name {
            // A JSON scalar answers as the JSON itself (its input form would be a string).
            "request" => match visible_request(row, sees_secrets(ctx.data_opt::<Principal>())) {
                Some(request) => Value::from_json(request.0).ok()?,
                None => Value::Null,
            },
            "summary" => summary_value(row.metrics(), ctx, field)?,
            "totals" => object_value(RunTotals::of(row), ctx, field)?,
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

macro_rules! eager_metric_summary {
    ([] $($name:ident $column:ident $type:ty,)*) => {
        impl EagerObject for MetricSummary {
            fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
                let name = field.node.name.node.as_str();
                $(
                    if is_field(name, stringify!($name)) {
                        return Some(self.$name.now());
                    }
                )*
                None
            }
        }
    };
}
summary_metrics!(eager_metric_summary);
