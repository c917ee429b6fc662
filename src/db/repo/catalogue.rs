//! The API catalogue: specs and endpoints, filtered and paged.

use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query},
};

use super::Page;
use crate::{
    db::entities::{
        endpoint, endpoint_parameter, openapi_spec, request_body, scenario_history, tag, tag_endpoint,
    },
    domain::HttpMethod,
    error::{AppError, AppResult},
};

/// Which endpoints a list shows; every part is optional and they combine with AND.
#[derive(Debug, Default, Clone)]
pub struct EndpointFilter {
    pub project_id: Option<i64>,
    pub spec_id: Option<i64>,
    pub tag: Option<String>,
    pub method: Option<HttpMethod>,
    pub search: Option<String>,
}

/// Escapes LIKE wildcards so a search for `50%` finds the text `50%`.
fn like_contains(text: &str) -> LikeExpr {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

fn filtered(filter: &EndpointFilter) -> Select<endpoint::Entity> {
    let mut select = endpoint::Entity::find().filter(endpoint::Column::RemovedAt.is_null());
    if let Some(project_id) = filter.project_id {
        select = select.filter(endpoint::Column::ProjectId.eq(project_id));
    }
    if let Some(spec_id) = filter.spec_id {
        select = select.filter(endpoint::Column::SpecId.eq(spec_id));
    }
    if let Some(method) = filter.method {
        select = select.filter(endpoint::Column::Method.eq(method));
    }
    if let Some(tag_name) = &filter.tag {
        let tagged = Query::select()
            .column(tag_endpoint::Column::EndpointId)
            .from(tag_endpoint::Entity)
            .inner_join(
                tag::Entity,
                Expr::col((tag::Entity, tag::Column::Id))
                    .equals((tag_endpoint::Entity, tag_endpoint::Column::TagId)),
            )
            .and_where(Expr::col((tag::Entity, tag::Column::Name)).eq(tag_name.as_str()))
            .to_owned();
        select = select.filter(endpoint::Column::Id.in_subquery(tagged));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let any_column = [endpoint::Column::Path, endpoint::Column::Summary, endpoint::Column::OperationId]
            .into_iter()
            .fold(Condition::any(), |any, column| {
                any.add(
                    Expr::expr(Func::lower(Expr::col((endpoint::Entity, column))))
                        .like(like_contains(search)),
                )
            });
        select = select.filter(any_column);
    }
    select
}

/// One page of endpoints in id order, starting after `after_id`.
#[tracing::instrument(skip(db))]
pub async fn endpoints_page(
    db: &DatabaseConnection,
    filter: &EndpointFilter,
    first: u64,
    after_id: Option<i64>,
) -> AppResult<Page<endpoint::Model>> {
    let mut select = filtered(filter);
    if let Some(after_id) = after_id {
        select = select.filter(endpoint::Column::Id.gt(after_id));
    }
    let rows = select.order_by_asc(endpoint::Column::Id).limit(first + 1).all(db).await?;
    Ok(Page::from_probe(rows, first))
}

#[tracing::instrument(skip(db))]
pub async fn endpoints_count(db: &DatabaseConnection, filter: &EndpointFilter) -> AppResult<u64> {
    Ok(filtered(filter).count(db).await?)
}

#[tracing::instrument(skip(db))]
pub async fn specs(db: &DatabaseConnection, project_id: Option<i64>) -> AppResult<Vec<openapi_spec::Model>> {
    let mut select = openapi_spec::Entity::find();
    if let Some(project_id) = project_id {
        select = select.filter(openapi_spec::Column::ProjectId.eq(project_id));
    }
    Ok(select.order_by_asc(openapi_spec::Column::Id).all(db).await?)
}

/// Deletes a spec with its tags and endpoints (cascading foreign keys). Refused while runs
/// hold results for its endpoints: deleting it would delete those results too.
#[tracing::instrument(skip(db))]
pub async fn delete_spec(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let txn = crate::db::begin_write(db).await?;
    if openapi_spec::Entity::find_by_id(id).one(&txn).await?.is_none() {
        return Err(AppError::not_found("OpenApiSpec", id));
    }
    let endpoints_of_spec = Query::select()
        .column(endpoint::Column::Id)
        .from(endpoint::Entity)
        .and_where(endpoint::Column::SpecId.eq(id))
        .to_owned();
    let runs: Vec<i64> = scenario_history::Entity::find()
        .select_only()
        .column(scenario_history::Column::TestHistoryId)
        .distinct()
        .filter(scenario_history::Column::EndpointId.in_subquery(endpoints_of_spec))
        .into_tuple()
        .all(&txn)
        .await?;
    if !runs.is_empty() {
        let shown: Vec<String> = runs.iter().take(5).map(i64::to_string).collect();
        return Err(AppError::Conflict(format!(
            "spec {id} has results in {} test run(s) ({}{}); delete those runs first, or re-import a new version of the document instead",
            runs.len(),
            shown.join(", "),
            if runs.len() > 5 { ", …" } else { "" }
        )));
    }
    openapi_spec::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// An endpoint with what a script needs to call it.
#[derive(Clone, Debug)]
pub struct LaunchEndpoint {
    pub endpoint: endpoint::Model,
    pub base_url: String,
    pub parameters: Vec<endpoint_parameter::Model>,
    pub body: Option<request_body::Model>,
}

/// The endpoints a launch names, each with its spec's base URL, parameters and body.
#[tracing::instrument(skip(db))]
pub async fn launch_endpoints(db: &DatabaseConnection, ids: &[i64]) -> AppResult<Vec<LaunchEndpoint>> {
    let endpoints =
        endpoint::Entity::find().filter(endpoint::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    let spec_ids: Vec<i64> = endpoints.iter().map(|e| e.spec_id).collect();
    let specs = openapi_spec::Entity::find().filter(openapi_spec::Column::Id.is_in(spec_ids)).all(db).await?;
    let mut parameters = endpoint_parameter::Entity::find()
        .filter(endpoint_parameter::Column::EndpointId.is_in(ids.iter().copied()))
        .order_by_asc(endpoint_parameter::Column::Position)
        .all(db)
        .await?;
    let mut bodies = request_body::Entity::find()
        .filter(request_body::Column::EndpointId.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(endpoints
        .into_iter()
        .map(|endpoint| {
            let base_url = specs
                .iter()
                .find(|s| s.id == endpoint.spec_id)
                .map(|s| s.base_url.clone())
                .unwrap_or_default();
            let (own, rest): (Vec<_>, Vec<_>) =
                parameters.drain(..).partition(|p| p.endpoint_id == endpoint.id);
            parameters = rest;
            let body =
                bodies.iter().position(|b| b.endpoint_id == endpoint.id).map(|i| bodies.swap_remove(i));
            LaunchEndpoint { endpoint, base_url, parameters: own, body }
        })
        .collect())
}

/// The base URLs of a project's imported specs.
pub async fn spec_base_urls(db: &DatabaseConnection, project_id: i64) -> AppResult<Vec<String>> {
    Ok(openapi_spec::Entity::find()
        .select_only()
        .column(openapi_spec::Column::BaseUrl)
        .filter(openapi_spec::Column::ProjectId.eq(project_id))
        .into_tuple::<String>()
        .all(db)
        .await?)
}
