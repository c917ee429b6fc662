//! The fast paths of a catalogue: a spec's tags and a spec's or tag's endpoints, from the
//! spec's whole catalogue in the read cache, or as JSON text SQLite writes.

use std::sync::Arc;

use async_graphql::{Context, Result};
use sea_orm::DbBackend;

use super::{
    eager::{EagerList, ListAnswer, raw_json_allowed},
    endpoints_json::{EndpointParent, EndpointsJson, endpoint_json_object},
    read_cache::catalogue_of,
};
use crate::{
    db::entities::{openapi_spec, tag},
    graphql::{
        loaders::{EndpointRow, SpecCatalogue},
        types::{
            catalogue::{Endpoint, Tag, wants_schema},
            db, loader,
        },
    },
};

/// Whose endpoints a list field lists.
pub enum Parent<'a> {
    Spec(&'a openapi_spec::Model),
    /// A tag, with its spec's catalogue when the tag was listed from it ([`tags`]).
    Tag(&'a tag::Model, Option<&'a Arc<SpecCatalogue>>),
}

/// A spec's tags, each carrying the spec's whole catalogue, when their endpoints are asked
/// for and the catalogue is (or can be filed) in the read cache.
pub async fn tags(ctx: &Context<'_>, spec: &openapi_spec::Model) -> Result<Option<Vec<Tag>>> {
    if !ctx.look_ahead().field("endpoints").exists() {
        return Ok(None);
    }
    let Some(catalogue) = catalogue_of(ctx, spec).await? else {
        return Ok(None);
    };
    Ok(Some(catalogue.tags.iter().map(|tag| Tag(tag.clone(), Some(catalogue.clone()))).collect()))
}

/// The answer of a list field of `parent`'s endpoints from the spec's catalogue, or as JSON
/// that SQLite writes; `None` when neither applies (the resolver then loads the list the
/// general way).
pub async fn endpoints(ctx: &Context<'_>, parent: Parent<'_>) -> Result<Option<ListAnswer<Endpoint>>> {
    let json_parent = match parent {
        Parent::Spec(spec) => {
            if let Some(catalogue) = catalogue_of(ctx, spec).await? {
                let endpoints = from_catalogue(ctx, &catalogue, &catalogue.endpoints).await?;
                return Ok(Some(ListAnswer::Items(endpoints)));
            }
            EndpointParent::Spec(spec.id)
        }
        Parent::Tag(tag, Some(catalogue)) => {
            let rows = catalogue.endpoints_of_tag.get(&tag.id).map_or(&[][..], Vec::as_slice);
            return Ok(Some(ListAnswer::Items(from_catalogue(ctx, catalogue, rows).await?)));
        }
        Parent::Tag(tag, None) => EndpointParent::Tag(tag.id),
    };
    Ok(json_list(ctx, json_parent).await?.map(ListAnswer::Json))
}

/// The answer of a list field of `parent`'s endpoints as JSON that SQLite writes, when
/// the answer is written by the HTTP handler, the database is SQLite and the selection is
/// one [`endpoint_json_object`] can write (otherwise `None`: resolve with [`Endpoint::list`]).
/// One statement per level, like the loaders it replaces; no endpoint, parameter or body
/// row crosses into Rust. Not on PostgreSQL: there `json_build_object` / `json_agg` took
/// longer than sending the rows (44 against 19 ms of SQL for the 2,000-endpoint catalogue
/// of `benches/server.rs`), and the answer got slower.
async fn json_list(ctx: &Context<'_>, parent: EndpointParent) -> Result<Option<String>> {
    if !super::on(ctx) || !raw_json_allowed(ctx) || db(ctx).get_database_backend() != DbBackend::Sqlite {
        return Ok(None);
    }
    let Some(object) = endpoint_json_object(&ctx.item.node.selection_set.node) else {
        return Ok(None);
    };
    let key = EndpointsJson { parent, object: object.into() };
    Ok(Some(loader(ctx).load_one(key).await?.unwrap_or_else(|| "[]".to_owned())))
}

/// Endpoints for a list field from a spec's whole catalogue: parameters and bodies come
/// with it, except a body schema, which the catalogue does not hold (then the usual
/// loaders read the relations, see [`Endpoint::list`]).
async fn from_catalogue(
    ctx: &Context<'_>,
    catalogue: &SpecCatalogue,
    rows: &[Arc<EndpointRow>],
) -> Result<EagerList<Endpoint>> {
    if wants_schema(&ctx.look_ahead().field("requestBody")) {
        return Endpoint::list(ctx, rows.to_vec()).await;
    }
    let endpoints: Vec<Endpoint> = rows
        .iter()
        .map(|row| Endpoint {
            parameters: Some(catalogue.parameters.get(&row.id).cloned().unwrap_or_else(|| Arc::new([]))),
            body: Some(catalogue.bodies.get(&row.id).cloned()),
            row: row.clone(),
        })
        .collect();
    Ok(endpoints.into())
}
