//! The server's read caches (see [`crate::db::cache`]): a spec's catalogue under its
//! revision, and a run's scenarios and stages under its `updated_at`. Shared by every request
//! of the schema; each request still reads the parent rows, so each answer is as current as
//! the database.

use std::sync::Arc;

use async_graphql::{Context, Result};
use chrono::{DateTime, Utc};

use crate::db::{
    cache::StampedCache,
    entities::{openapi_spec, project, stage_history, test_history},
};
use crate::graphql::{
    loaders::{CatalogueOfSpec, RunCountOfProject, ScenarioWithEndpoint, SpecCatalogue},
    types::loader,
};

/// What makes a spec's catalogue current: its revision, and its creation time, because SQLite
/// can give a deleted spec's id to the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecStamp {
    revision: i64,
    created_at: DateTime<Utc>,
}

impl From<&openapi_spec::Model> for SpecStamp {
    fn from(spec: &openapi_spec::Model) -> Self {
        Self { revision: spec.revision, created_at: spec.created_at }
    }
}

/// What makes a run's scenarios and stages current: every write to them also writes the
/// run's `updated_at` (`db::repo::runs`); with its creation time, for ids SQLite reuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenariosStamp {
    updated_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl From<&test_history::Model> for ScenariosStamp {
    fn from(run: &test_history::Model) -> Self {
        Self { updated_at: run.updated_at, created_at: run.created_at }
    }
}

/// A run's scenarios (each with its endpoint's row) and their stages, as the board shows them.
/// Of an endpoint only the id, spec, method and path may be read from here: those never
/// change for an endpoint id, while a re-import rewrites its summary and the rest.
pub struct RunTree {
    pub scenarios: Vec<ScenarioWithEndpoint>,
    pub stages: Vec<stage_history::Model>,
}

impl RunTree {
    pub fn rows(&self) -> usize {
        self.scenarios.len() + self.stages.len()
    }
}

/// What makes the count of a project's runs current: its `runs_revision`, bumped by every
/// launch and every deleted run (`db::repo::project::runs_changed`); with its creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCountStamp {
    runs_revision: i64,
    created_at: DateTime<Utc>,
}

impl From<&project::Model> for RunCountStamp {
    fn from(project: &project::Model) -> Self {
        Self { runs_revision: project.runs_revision, created_at: project.created_at }
    }
}

/// The read caches, as schema data.
pub struct ReadCaches {
    pub catalogue: StampedCache<i64, SpecStamp, SpecCatalogue>,
    pub runs: StampedCache<i64, ScenariosStamp, RunTree>,
    /// How many runs each project has: counting 10,000 index entries costs the database more
    /// than the rest of a board page.
    pub run_counts: StampedCache<i64, RunCountStamp, i64>,
}

impl ReadCaches {
    /// Caches holding at most `rows` rows' worth each (`READ_CACHE_ROWS`); 0 turns them off.
    pub fn new(rows: usize) -> Self {
        Self {
            catalogue: StampedCache::new(rows),
            runs: StampedCache::new(rows),
            run_counts: StampedCache::new(rows),
        }
    }

    /// Whether copies are kept at all.
    pub fn enabled(&self) -> bool {
        self.catalogue.enabled()
    }
}

/// Whether the read caches are on.
pub fn enabled(ctx: &Context<'_>) -> bool {
    caches(ctx).is_some_and(ReadCaches::enabled)
}

/// How many runs `project` has: from the cache under the project's runs revision, or counted
/// (batched with sibling projects) and filed.
pub async fn run_count(ctx: &Context<'_>, project: &project::Model) -> Result<i64> {
    let cache = caches(ctx).map(|caches| &caches.run_counts).filter(|counts| counts.enabled());
    let stamp = RunCountStamp::from(project);
    if let Some(count) = cache.and_then(|counts| counts.get(&project.id, &stamp)) {
        return Ok(*count);
    }
    let count = loader(ctx).load_one(RunCountOfProject(project.id)).await?.unwrap_or(0);
    if let Some(counts) = cache {
        counts.put(project.id, stamp, Arc::new(count), 1);
    }
    Ok(count)
}

fn caches<'a>(ctx: &Context<'a>) -> Option<&'a ReadCaches> {
    ctx.data_opt::<Arc<ReadCaches>>().map(Arc::as_ref)
}

/// The cache of runs' scenarios and stages, when it is on.
pub fn run_trees<'a>(ctx: &Context<'a>) -> Option<&'a StampedCache<i64, ScenariosStamp, RunTree>> {
    caches(ctx).map(|caches| &caches.runs).filter(|runs| runs.enabled())
}

/// `spec`'s catalogue from the cache, or read (batched with the sibling specs of the same
/// level) and filed; `None` when the cache is off.
pub async fn catalogue_of(
    ctx: &Context<'_>,
    spec: &openapi_spec::Model,
) -> Result<Option<Arc<SpecCatalogue>>> {
    let Some(caches) = caches(ctx).filter(|caches| caches.catalogue.enabled()) else {
        return Ok(None);
    };
    let stamp = SpecStamp::from(spec);
    if let Some(catalogue) = caches.catalogue.get(&spec.id, &stamp) {
        return Ok(Some(catalogue));
    }
    let Some(catalogue) = loader(ctx).load_one(CatalogueOfSpec(spec.id)).await? else {
        return Ok(None);
    };
    caches.catalogue.put(spec.id, stamp, catalogue.clone(), catalogue.rows());
    Ok(Some(catalogue))
}
