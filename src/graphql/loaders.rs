//! Relation loaders, created per request: every relation is fetched in one statement per
//! nesting level, however many parents ask for it (see [`super::batch`]).
//!
//! One `DbLoader` serves every key type; each newtype key says which relation to load. Here:
//! the loader, the statements every relation shares, and the plain loaders its macros write
//! (rows by id, a parent's children, a parent's count); the other relations by what they hold:
//! the catalogue ([`catalogue`]), runs and their scenarios and stages ([`runs`]), endpoint
//! lists that SQLite writes as JSON (`super::fast::endpoints_json`).

mod catalogue;
mod runs;

use std::{collections::HashMap, hash::Hash};

use async_graphql::dataloader::Loader;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, TryGetableMany,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement},
};

pub use catalogue::{
    BodyOfEndpoint, CatalogueOfSpec, EndpointRow, EndpointsOfSpec, EndpointsOfTag, ParametersOfEndpoint,
    SpecCatalogue, TagsOfEndpoint,
};
pub use runs::{RecentScenariosOfEndpoint, RunsOfProject, ScenarioWithEndpoint, ScenariosOfRun, StagesOf};

use super::batch::Batcher;
use crate::{
    db::entities::{endpoint, openapi_spec, project, tag, test_history},
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

/// Rows of `select` whose `parent` column is in `keys`, grouped by that column under `wrap(key)`.
async fn children<E, K>(
    db: &DatabaseConnection,
    select: Select<E>,
    parent: E::Column,
    keys: &[K],
    key_id: impl Fn(&K) -> i64,
    parent_of: impl Fn(&E::Model) -> i64,
) -> LoadResult<K, Vec<E::Model>>
where
    E: EntityTrait,
    K: Hash + Eq + Clone,
{
    let ids: Vec<i64> = keys.iter().map(&key_id).collect();
    let rows = select.filter(parent.is_in(ids)).all(db).await.map_err(db_error)?;
    let mut grouped: HashMap<i64, Vec<E::Model>> = HashMap::new();
    for row in rows {
        grouped.entry(parent_of(&row)).or_default().push(row);
    }
    // Every key gets an entry, so a parent without children reads as an empty list, not a miss.
    Ok(keys.iter().map(|key| (key.clone(), grouped.remove(&key_id(key)).unwrap_or_default())).collect())
}

/// `rows` under the key each belongs to. Every key of `keys` gets an entry, so a parent without
/// rows reads as an empty list, not a miss.
fn grouped<K: Hash + Eq + Clone, V>(
    keys: &[K],
    rows: impl IntoIterator<Item = (K, V)>,
) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = keys.iter().map(|key| (key.clone(), Vec::new())).collect();
    for (key, row) in rows {
        grouped.entry(key).or_default().push(row);
    }
    grouped
}

/// How many rows of `select` each key's parent has (0 for none): `parent` is the column that
/// names the parent, `counted` one every row has.
async fn counts<E, K>(
    db: &DatabaseConnection,
    select: Select<E>,
    (parent, counted): (E::Column, E::Column),
    keys: &[K],
    key_id: impl Fn(&K) -> i64,
) -> LoadResult<K, i64>
where
    E: EntityTrait,
    K: Hash + Eq + Clone,
{
    let ids: Vec<i64> = keys.iter().map(&key_id).collect();
    let select = select
        .select_only()
        .column(parent)
        .column_as(counted.count(), "count")
        .filter(parent.is_in(ids))
        .group_by(parent);
    let counts: Vec<(i64, i64)> = tuples(db, select).await?;
    let counts: HashMap<i64, i64> = counts.into_iter().collect();
    Ok(keys.iter().map(|key| (key.clone(), counts.get(&key_id(key)).copied().unwrap_or(0))).collect())
}

/// Every row of `select`, decoded by index as the tuple `T`.
async fn tuples<E: EntityTrait, T: TryGetableMany>(
    db: &DatabaseConnection,
    select: Select<E>,
) -> Result<Vec<T>, async_graphql::Error> {
    select.into_tuple().all(db).await.map_err(db_error)
}

/// Rows by primary key.
async fn by_id<E>(
    db: &DatabaseConnection,
    id_column: E::Column,
    keys: &[i64],
    id_of: impl Fn(&E::Model) -> i64,
) -> LoadResult<i64, E::Model>
where
    E: EntityTrait,
{
    let rows = E::find().filter(id_column.is_in(keys.iter().copied())).all(db).await.map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (id_of(&row), row)).collect())
}

/// The first `limit` rows of `inner` per parent (`partition`), ranked by `order` (SQL), each
/// parent's listed by `sort_key`. One statement for any number of parents, on SQLite and
/// PostgreSQL alike; a parent without rows has no entry.
async fn first_rows_per_parent<E, O>(
    db: &DatabaseConnection,
    inner: Select<E>,
    (partition, order): (&str, &str),
    limit: u64,
    parent_of: impl Fn(&E::Model) -> i64,
    sort_key: impl Fn(&E::Model) -> O,
) -> Result<HashMap<i64, Vec<E::Model>>, async_graphql::Error>
where
    E: EntityTrait,
    O: Ord,
{
    let statement = top_n_per_parent(QueryTrait::into_query(inner), partition, order, limit);
    let statement = db.get_database_backend().build(&statement);
    let rows = E::Model::find_by_statement(statement).all(db).await.map_err(db_error)?;
    let mut grouped: HashMap<i64, Vec<E::Model>> = HashMap::new();
    for row in rows {
        grouped.entry(parent_of(&row)).or_default().push(row);
    }
    for rows in grouped.values_mut() {
        rows.sort_by_key(&sort_key);
    }
    Ok(grouped)
}

/// Wraps `inner` so that only the first `limit` rows per `partition` (in `order`) remain.
fn top_n_per_parent(inner: SelectStatement, partition: &str, order: &str, limit: u64) -> SelectStatement {
    let mut ranked = inner;
    ranked.expr_as(
        Expr::cust(format!("ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order})")),
        Alias::new("rank_in_parent"),
    );
    Query::select()
        .column(Asterisk)
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rank_in_parent")).lte(limit))
        .to_owned()
}

macro_rules! by_id_loader {
    ($key:ident, $entity:ident) => {
        #[doc = concat!("A `", stringify!($entity), "` row by id.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = $entity::Model;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = by_id::<$entity::Entity>(&self.db, $entity::Column::Id, &ids, |m| m.id).await?;
                Ok(rows.into_iter().map(|(id, row)| ($key(id), row)).collect())
            }
        }
    };
}

by_id_loader!(ProjectById, project);
by_id_loader!(SpecById, openapi_spec);
by_id_loader!(EndpointById, endpoint);
by_id_loader!(TestHistoryById, test_history);

macro_rules! children_loader {
    ($(#[$doc:meta])* $key:ident => $entity:ident by $column:ident ($field:ident), $select:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = Vec<$entity::Model>;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                children(&self.db, $select, $entity::Column::$column, keys, |k| k.0, |m| m.$field).await
            }
        }
    };
}

children_loader!(
    /// A project's specs, in import order.
    SpecsOfProject => openapi_spec by ProjectId(project_id),
    openapi_spec::Entity::find().order_by_asc(openapi_spec::Column::Id)
);
children_loader!(
    /// A spec's tags, in document order.
    TagsOfSpec => tag by SpecId(spec_id),
    tag::Entity::find().order_by_asc(tag::Column::Position).order_by_asc(tag::Column::Id)
);

macro_rules! count_loader {
    ($(#[$doc:meta])* $key:ident => $entity:ident by $parent:ident, $select:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = i64;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, i64> {
                let columns = ($entity::Column::$parent, $entity::Column::Id);
                counts(&self.db, $select, columns, keys, |key| key.0).await
            }
        }
    };
}

count_loader!(
    /// How many current endpoints a project has.
    EndpointCountOfProject => endpoint by ProjectId,
    endpoint::Entity::find().filter(endpoint::Column::RemovedAt.is_null())
);
count_loader!(
    /// How many runs a project has.
    RunCountOfProject => test_history by ProjectId,
    test_history::Entity::find()
);
