//! Relations read for many parents in one statement, as the API's loaders batch them: rows by
//! id, a parent's children, a parent's count. The catalogue's relations are in
//! [`super::catalogue_rows`], those of runs in [`super::run_rows`].
//!
//! Every function takes the parents' ids and answers by id; a parent without rows has no
//! entry (or a count of 0), the caller reads a miss as an empty list.

use std::{collections::HashMap, hash::Hash};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement},
};

use crate::db::entities::{endpoint, openapi_spec, project, tag, test_history};

/// `rows` grouped under the key each belongs to, in the order they come.
pub(crate) fn group<K: Hash + Eq, V>(rows: impl IntoIterator<Item = (K, V)>) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = HashMap::new();
    for (key, row) in rows {
        grouped.entry(key).or_default().push(row);
    }
    grouped
}

/// Rows of `select` whose `parent` column is in `ids`, grouped by that column.
async fn children<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    parent: E::Column,
    ids: &[i64],
    parent_of: impl Fn(&E::Model) -> i64,
) -> Result<HashMap<i64, Vec<E::Model>>, DbErr> {
    let rows = select.filter(parent.is_in(ids.iter().copied())).all(db).await?;
    Ok(group(rows.into_iter().map(|row| (parent_of(&row), row))))
}

/// How many rows of `select` each parent of `ids` has (none: no entry): `parent` is the
/// column that names the parent, `counted` one every row has.
async fn counts<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    (parent, counted): (E::Column, E::Column),
    ids: &[i64],
) -> Result<HashMap<i64, i64>, DbErr> {
    let select = select
        .select_only()
        .column(parent)
        .column_as(counted.count(), "count")
        .filter(parent.is_in(ids.iter().copied()))
        .group_by(parent);
    let counts: Vec<(i64, i64)> = select.into_tuple().all(db).await?;
    Ok(counts.into_iter().collect())
}

/// Rows by primary key.
async fn by_id<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id_column: E::Column,
    ids: &[i64],
    id_of: impl Fn(&E::Model) -> i64,
) -> Result<HashMap<i64, E::Model>, DbErr> {
    let rows = E::find().filter(id_column.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|row| (id_of(&row), row)).collect())
}

macro_rules! rows_by_id {
    ($($name:ident => $entity:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($entity), "` rows by id.")]
        pub async fn $name(
            db: &impl ConnectionTrait,
            ids: &[i64],
        ) -> Result<HashMap<i64, $entity::Model>, DbErr> {
            by_id::<$entity::Entity>(db, $entity::Column::Id, ids, |row| row.id).await
        }
    )*};
}

rows_by_id!(
    projects_by_id => project,
    specs_by_id => openapi_spec,
    endpoints_by_id => endpoint,
    runs_by_id => test_history,
);

/// The projects' specs, in import order.
pub async fn specs_of_projects(
    db: &impl ConnectionTrait,
    project_ids: &[i64],
) -> Result<HashMap<i64, Vec<openapi_spec::Model>>, DbErr> {
    let select = openapi_spec::Entity::find().order_by_asc(openapi_spec::Column::Id);
    children(db, select, openapi_spec::Column::ProjectId, project_ids, |row| row.project_id).await
}

/// The specs' tags, in document order.
pub async fn tags_of_specs(
    db: &impl ConnectionTrait,
    spec_ids: &[i64],
) -> Result<HashMap<i64, Vec<tag::Model>>, DbErr> {
    let select = tag::Entity::find().order_by_asc(tag::Column::Position).order_by_asc(tag::Column::Id);
    children(db, select, tag::Column::SpecId, spec_ids, |row| row.spec_id).await
}

/// How many current endpoints (not those a re-import removed) each project has.
pub async fn endpoint_counts_of_projects(
    db: &impl ConnectionTrait,
    project_ids: &[i64],
) -> Result<HashMap<i64, i64>, DbErr> {
    let select = endpoint::Entity::find().filter(endpoint::Column::RemovedAt.is_null());
    counts(db, select, (endpoint::Column::ProjectId, endpoint::Column::Id), project_ids).await
}

/// How many runs each project has.
pub async fn run_counts_of_projects(
    db: &impl ConnectionTrait,
    project_ids: &[i64],
) -> Result<HashMap<i64, i64>, DbErr> {
    let select = test_history::Entity::find();
    counts(db, select, (test_history::Column::ProjectId, test_history::Column::Id), project_ids).await
}

/// The first `limit` rows of `inner` per parent (`partition`), ranked by `order` (SQL), each
/// parent's listed by `sort_key`. One statement for any number of parents, on SQLite and
/// PostgreSQL alike; a parent without rows has no entry.
pub(super) async fn first_rows_per_parent<E, O>(
    db: &impl ConnectionTrait,
    inner: Select<E>,
    (partition, order): (&str, &str),
    limit: u64,
    parent_of: impl Fn(&E::Model) -> i64,
    sort_key: impl Fn(&E::Model) -> O,
) -> Result<HashMap<i64, Vec<E::Model>>, DbErr>
where
    E: EntityTrait,
    O: Ord,
{
    let statement = top_n_per_parent(QueryTrait::into_query(inner), partition, order, limit);
    let statement = db.get_database_backend().build(&statement);
    let rows = E::Model::find_by_statement(statement).all(db).await?;
    let mut grouped = group(rows.into_iter().map(|row| (parent_of(&row), row)));
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
