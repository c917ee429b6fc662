//! Writes an imported document into the catalogue, in one transaction.
//!
//! A document whose base URL matches a spec of the project updates that spec in place:
//! endpoints are matched by (method, path), so those that stay keep their ids and history,
//! new ones are added, and vanished ones are removed — softly when past runs point at them,
//! so those results stay readable.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set,
};

use super::project;
use crate::{
    db::entities::{
        endpoint, endpoint_parameter, openapi_spec, request_body, scenario_history, tag, tag_endpoint,
    },
    domain::{
        HttpMethod,
        spec::{ParsedEndpoint, ParsedSpec},
    },
    error::AppResult,
};

/// Rows per multi-row INSERT: well under SQLite's bound-parameter limit for our widest table.
const CHUNK: usize = 500;
/// Request bodies per INSERT: each may carry a large schema.
const BODY_CHUNK: usize = 25;

/// What an import changed.
#[derive(Debug)]
pub struct ImportOutcome {
    pub spec: openapi_spec::Model,
    pub created: bool,
    pub added: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Stores `parsed` under the project, creating its spec or updating the one with the same base URL.
#[tracing::instrument(skip(db, parsed), fields(endpoints = parsed.endpoints.len()))]
pub async fn import_spec(
    db: &DatabaseConnection,
    project_id: i64,
    parsed: &ParsedSpec,
    source_url: Option<String>,
) -> AppResult<ImportOutcome> {
    let txn = crate::db::begin_write(db).await?;
    project::lock(&txn, project_id).await?;
    let (spec, created) = upsert_spec(&txn, project_id, parsed, source_url).await?;
    let tag_ids = sync_tags(&txn, spec.id, parsed).await?;
    let sync = sync_endpoints(&txn, &spec, &parsed.endpoints).await?;
    replace_details(&txn, &sync.endpoint_ids, &parsed.endpoints, &tag_ids).await?;
    txn.commit().await?;
    Ok(ImportOutcome { spec, created, added: sync.added, removed: sync.removed, unchanged: sync.unchanged })
}

async fn upsert_spec(
    txn: &DatabaseTransaction,
    project_id: i64,
    parsed: &ParsedSpec,
    source_url: Option<String>,
) -> AppResult<(openapi_spec::Model, bool)> {
    let now = Utc::now();
    let existing = openapi_spec::Entity::find()
        .filter(openapi_spec::Column::ProjectId.eq(project_id))
        .filter(openapi_spec::Column::BaseUrl.eq(parsed.base_url.as_str()))
        .one(txn)
        .await?;
    let created = existing.is_none();
    let mut spec = match existing {
        Some(row) => row.into(),
        None => openapi_spec::ActiveModel {
            project_id: Set(project_id),
            base_url: Set(parsed.base_url.clone()),
            created_at: Set(now),
            ..Default::default()
        },
    };
    spec.title = Set(parsed.title.clone());
    spec.version = Set(parsed.version.clone());
    spec.spec_format = Set(parsed.format.clone());
    spec.source_url = Set(source_url);
    spec.imported_at = Set(now);
    // Cached copies of the catalogue are keyed by this: every import is a new revision.
    spec.revision = Set(match &spec.revision {
        sea_orm::ActiveValue::Unchanged(revision) | sea_orm::ActiveValue::Set(revision) => revision + 1,
        sea_orm::ActiveValue::NotSet => 1,
    });
    let spec = if created { spec.insert(txn).await? } else { spec.update(txn).await? };
    Ok((spec, created))
}

/// Makes the spec's tags exactly the document's, in its order; returns name → id.
async fn sync_tags(
    txn: &DatabaseTransaction,
    spec_id: i64,
    parsed: &ParsedSpec,
) -> AppResult<HashMap<String, i64>> {
    let existing: HashMap<String, tag::Model> = tag::Entity::find()
        .filter(tag::Column::SpecId.eq(spec_id))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    let wanted: HashSet<&str> = parsed.tags.iter().map(|t| t.name.as_str()).collect();
    let stale: Vec<i64> =
        existing.values().filter(|t| !wanted.contains(t.name.as_str())).map(|t| t.id).collect();
    if !stale.is_empty() {
        tag::Entity::delete_many().filter(tag::Column::Id.is_in(stale)).exec(txn).await?;
    }
    let mut ids = HashMap::new();
    for (position, parsed_tag) in parsed.tags.iter().enumerate() {
        let row = match existing.get(&parsed_tag.name) {
            Some(row) if row.description == parsed_tag.description && row.position == position as i32 => {
                row.clone()
            }
            Some(row) => {
                let mut active: tag::ActiveModel = row.clone().into();
                active.description = Set(parsed_tag.description.clone());
                active.position = Set(position as i32);
                active.update(txn).await?
            }
            None => {
                tag::ActiveModel {
                    spec_id: Set(spec_id),
                    name: Set(parsed_tag.name.clone()),
                    description: Set(parsed_tag.description.clone()),
                    position: Set(position as i32),
                    ..Default::default()
                }
                .insert(txn)
                .await?
            }
        };
        ids.insert(row.name, row.id);
    }
    Ok(ids)
}

struct EndpointSync {
    /// The row id of each parsed endpoint, in the document's order.
    endpoint_ids: Vec<i64>,
    added: usize,
    removed: usize,
    unchanged: usize,
}

fn endpoint_fields(model: &mut endpoint::ActiveModel, parsed: &ParsedEndpoint) {
    model.operation_id = Set(parsed.operation_id.clone());
    model.summary = Set(parsed.summary.clone());
    model.description = Set(parsed.description.clone());
    model.deprecated = Set(parsed.deprecated);
    model.removed_at = Set(None);
}

async fn sync_endpoints(
    txn: &DatabaseTransaction,
    spec: &openapi_spec::Model,
    parsed: &[ParsedEndpoint],
) -> AppResult<EndpointSync> {
    let existing: HashMap<(HttpMethod, String), endpoint::Model> = endpoint::Entity::find()
        .filter(endpoint::Column::SpecId.eq(spec.id))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| ((row.method, row.path.clone()), row))
        .collect();

    let now = Utc::now();
    let (mut added, mut unchanged) = (0, 0);
    let mut ids_by_key: HashMap<(HttpMethod, String), i64> = HashMap::new();
    let mut new_rows = Vec::new();
    for endpoint in parsed {
        match existing.get(&(endpoint.method, endpoint.path.clone())) {
            Some(row) => {
                if row.removed_at.is_some() {
                    added += 1
                } else {
                    unchanged += 1
                }
                let unchanged_row = row.removed_at.is_none()
                    && row.operation_id == endpoint.operation_id
                    && row.summary == endpoint.summary
                    && row.description == endpoint.description
                    && row.deprecated == endpoint.deprecated;
                if !unchanged_row {
                    let mut active: endpoint::ActiveModel = row.clone().into();
                    endpoint_fields(&mut active, endpoint);
                    active.update(txn).await?;
                }
                ids_by_key.insert((endpoint.method, endpoint.path.clone()), row.id);
            }
            None => {
                added += 1;
                let mut active = endpoint::ActiveModel {
                    project_id: Set(spec.project_id),
                    spec_id: Set(spec.id),
                    method: Set(endpoint.method),
                    path: Set(endpoint.path.clone()),
                    created_at: Set(now),
                    ..Default::default()
                };
                endpoint_fields(&mut active, endpoint);
                new_rows.push(active);
            }
        }
    }
    for chunk in new_rows.chunks(CHUNK) {
        for row in endpoint::Entity::insert_many(chunk.to_vec()).exec_with_returning(txn).await? {
            ids_by_key.insert((row.method, row.path), row.id);
        }
    }

    let wanted: HashSet<(HttpMethod, &str)> = parsed.iter().map(|e| (e.method, e.path.as_str())).collect();
    let vanished: Vec<i64> = existing
        .values()
        .filter(|row| row.removed_at.is_none() && !wanted.contains(&(row.method, row.path.as_str())))
        .map(|row| row.id)
        .collect();
    let removed = vanished.len();
    remove_endpoints(txn, vanished).await?;

    let endpoint_ids = parsed.iter().map(|e| ids_by_key[&(e.method, e.path.clone())]).collect();
    Ok(EndpointSync { endpoint_ids, added, removed, unchanged })
}

/// Deletes endpoints no run ever used; marks the others removed so their results keep an endpoint.
async fn remove_endpoints(txn: &DatabaseTransaction, ids: Vec<i64>) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let used: HashSet<i64> = scenario_history::Entity::find()
        .select_only()
        .column(scenario_history::Column::EndpointId)
        .filter(scenario_history::Column::EndpointId.is_in(ids.iter().copied()))
        .into_tuple::<i64>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let (keep, drop): (Vec<i64>, Vec<i64>) = ids.into_iter().partition(|id| used.contains(id));
    if !drop.is_empty() {
        endpoint::Entity::delete_many().filter(endpoint::Column::Id.is_in(drop)).exec(txn).await?;
    }
    if !keep.is_empty() {
        endpoint::Entity::update_many()
            .col_expr(endpoint::Column::RemovedAt, sea_orm::sea_query::Expr::value(Utc::now()))
            .filter(endpoint::Column::Id.is_in(keep.iter().copied()))
            .exec(txn)
            .await?;
        tag_endpoint::Entity::delete_many()
            .filter(tag_endpoint::Column::EndpointId.is_in(keep))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Replaces the parameters, bodies and tag links of the imported endpoints with the document's.
async fn replace_details(
    txn: &DatabaseTransaction,
    endpoint_ids: &[i64],
    parsed: &[ParsedEndpoint],
    tag_ids: &HashMap<String, i64>,
) -> AppResult<()> {
    for ids in endpoint_ids.chunks(CHUNK) {
        let ids = ids.to_vec();
        endpoint_parameter::Entity::delete_many()
            .filter(endpoint_parameter::Column::EndpointId.is_in(ids.clone()))
            .exec(txn)
            .await?;
        request_body::Entity::delete_many()
            .filter(request_body::Column::EndpointId.is_in(ids.clone()))
            .exec(txn)
            .await?;
        tag_endpoint::Entity::delete_many()
            .filter(tag_endpoint::Column::EndpointId.is_in(ids))
            .exec(txn)
            .await?;
    }

    // Rows are built chunk by chunk: a large document's bodies hold megabytes of schema, and
    // building every row up front would hold them all in memory a second time.
    let rows: Vec<(&ParsedEndpoint, i64)> = parsed.iter().zip(endpoint_ids.iter().copied()).collect();
    for chunk in rows.chunks(BODY_CHUNK) {
        let bodies: Vec<_> = chunk
            .iter()
            .filter_map(|(endpoint, endpoint_id)| {
                let body = endpoint.request_body.as_ref()?;
                Some(request_body::ActiveModel {
                    endpoint_id: Set(*endpoint_id),
                    content_type: Set(body.content_type.clone()),
                    required: Set(body.required),
                    schema: Set(body.schema.as_ref().map(|schema| schema.as_str().to_owned())),
                    example: Set(body.example.clone()),
                    ..Default::default()
                })
            })
            .collect();
        if !bodies.is_empty() {
            request_body::Entity::insert_many(bodies).exec_without_returning(txn).await?;
        }
    }
    // Parameters and tag links are small: built at once, written in chunks.
    let parameters: Vec<_> = rows
        .iter()
        .flat_map(|(endpoint, endpoint_id)| {
            endpoint.parameters.iter().enumerate().map(move |(position, parameter)| {
                endpoint_parameter::ActiveModel {
                    endpoint_id: Set(*endpoint_id),
                    position: Set(position as i32),
                    name: Set(parameter.name.clone()),
                    location: Set(parameter.location),
                    required: Set(parameter.required),
                    schema_type: Set(parameter.schema_type.clone()),
                    description: Set(parameter.description.clone()),
                    example: Set(parameter.example.clone()),
                    ..Default::default()
                }
            })
        })
        .collect();
    for chunk in parameters.chunks(CHUNK) {
        endpoint_parameter::Entity::insert_many(chunk.iter().cloned()).exec_without_returning(txn).await?;
    }
    let links: Vec<_> = rows
        .iter()
        .flat_map(|(endpoint, endpoint_id)| {
            let distinct: HashSet<&String> = endpoint.tags.iter().collect();
            distinct
                .into_iter()
                .filter_map(|name| tag_ids.get(name))
                .map(|&tag_id| tag_endpoint::ActiveModel {
                    tag_id: Set(tag_id),
                    endpoint_id: Set(*endpoint_id),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        tag_endpoint::Entity::insert_many(chunk.iter().cloned()).exec_without_returning(txn).await?;
    }
    Ok(())
}
