//! Relation loaders, created per request: every relation is fetched in one statement per
//! nesting level, however many parents ask for it (see [`super::batch`]).
//!
//! One `DbLoader` serves every key type; each newtype key says which relation to load. The
//! statements are the repository's (`db::repo::relations`, `catalogue_rows`, `run_rows`,
//! `endpoints_json`): a loader only passes its keys' ids on and files the rows under its keys.
//! Here: the loader and the plain loaders its macros write (rows by id, a parent's children,
//! a parent's count); the other relations by what they hold:
//! the catalogue ([`catalogue`]), runs and their scenarios and stages ([`runs`]), endpoint
//! lists that SQLite writes as JSON (`super::fast::endpoints_json`).

mod catalogue;
mod runs;

use std::{collections::HashMap, hash::Hash};

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;

pub use catalogue::{
    BodyOfEndpoint, CatalogueOfSpec, EndpointsOfSpec, EndpointsOfTag, ParametersOfEndpoint, SpecCatalogue,
    TagsOfEndpoint,
};
pub use runs::{RecentScenariosOfEndpoint, RunsOfProject, ScenariosOfRun, StagesOf};

use super::batch::Batcher;
pub use crate::db::repo::{catalogue_rows::EndpointRow, run_rows::ScenarioWithEndpoint};
use crate::{
    db::{
        entities::{endpoint, openapi_spec, project, tag, test_history},
        repo::relations,
    },
    error::AppError,
};

/// The request-scoped loader: batching plus a per-request cache.
pub type AppLoader = Batcher<DbLoader>;

/// Big enough that the catalogue of a large project loads in one batch; below SQLite's
/// 32,766 bound parameters.
const MAX_BATCH: usize = 20_000;

/// Builds the loader for one request (or one websocket connection).
pub fn request_loader(db: DatabaseConnection) -> AppLoader {
    Batcher::new(DbLoader { db }, MAX_BATCH)
}

/// Loads rows by key from the metadata database.
pub struct DbLoader {
    pub(crate) db: DatabaseConnection,
}

pub(crate) type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

pub(crate) fn db_error(err: sea_orm::DbErr) -> async_graphql::Error {
    AppError::from(err).into()
}

/// What the repository found by id, under each key: every key of `keys` gets an entry, so a
/// parent without rows reads as `V::default()` (an empty list, a count of 0), not a miss.
fn per_key<K: Hash + Eq + Clone, V: Default>(
    keys: &[K],
    key_id: impl Fn(&K) -> i64,
    mut found: HashMap<i64, V>,
) -> HashMap<K, V> {
    keys.iter().map(|key| (key.clone(), found.remove(&key_id(key)).unwrap_or_default())).collect()
}

macro_rules! by_id_loader {
    ($key:ident, $entity:ident, $read:ident) => {
        #[doc = concat!("A `", stringify!($entity), "` row by id.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = $entity::Model;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = relations::$read(&self.db, &ids).await.map_err(db_error)?;
                Ok(rows.into_iter().map(|(id, row)| ($key(id), row)).collect())
            }
        }
    };
}

by_id_loader!(ProjectById, project, projects_by_id);
by_id_loader!(SpecById, openapi_spec, specs_by_id);
by_id_loader!(EndpointById, endpoint, endpoints_by_id);
by_id_loader!(TestHistoryById, test_history, runs_by_id);

/// A loader whose key is a parent's id and whose value is what `relations::$read` finds under
/// it (`V::default()` for none).
macro_rules! per_parent_loader {
    ($(#[$doc:meta])* $key:ident => $value:ty, $read:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = $value;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let found = relations::$read(&self.db, &ids).await.map_err(db_error)?;
                Ok(per_key(keys, |key| key.0, found))
            }
        }
    };
}

per_parent_loader!(
    /// A project's specs, in import order.
    SpecsOfProject => Vec<openapi_spec::Model>, specs_of_projects
);
per_parent_loader!(
    /// A spec's tags, in document order.
    TagsOfSpec => Vec<tag::Model>, tags_of_specs
);
per_parent_loader!(
    /// How many current endpoints a project has.
    EndpointCountOfProject => i64, endpoint_counts_of_projects
);
per_parent_loader!(
    /// How many runs a project has.
    RunCountOfProject => i64, run_counts_of_projects
);
