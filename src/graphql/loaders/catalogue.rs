//! The catalogue's relations: a spec's tags and endpoints, a tag's endpoints, an endpoint's
//! tags, parameters and body, and a spec's whole [`SpecCatalogue`] for the read cache.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Json, dataloader::Loader};

use super::{DbLoader, EndpointRow, LoadResult, MAX_BATCH, TagsOfSpec, db_error, per_key};
use crate::{
    db::{
        entities::tag,
        repo::catalogue_rows::{
            BodyRow, ParameterRow, bodies_of_endpoints, endpoints_of_specs, endpoints_of_tags,
            parameters_of_endpoints, tag_links_of_specs, tags_of_endpoints,
        },
    },
    graphql::types::catalogue::{Parameter, RequestBody},
};

/// A spec's current endpoints (not those a re-import removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsOfSpec(pub i64);

impl Loader<EndpointsOfSpec> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfSpec]) -> LoadResult<EndpointsOfSpec, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let found = endpoints_of_specs(&self.db, &ids).await.map_err(db_error)?;
        Ok(per_key(keys, |key| key.0, found))
    }
}

/// An endpoint's parameters, in document order; shared, since one endpoint can appear under
/// several tags of the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParametersOfEndpoint(pub i64);

impl Loader<ParametersOfEndpoint> for DbLoader {
    type Value = Arc<[Parameter]>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ParametersOfEndpoint]) -> LoadResult<ParametersOfEndpoint, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let mut found = parameters_of_endpoints(&self.db, &ids, parameter).await.map_err(db_error)?;
        // Every key gets an entry: an endpoint without parameters has an empty list.
        Ok(keys.iter().map(|key| (*key, found.remove(&key.0).unwrap_or_default().into())).collect())
    }
}

/// A parameter as the API shows it.
fn parameter(row: ParameterRow) -> Parameter {
    let ParameterRow { name, location, required, schema_type, description, example } = row;
    Parameter { name, location, required, schema_type, description, example: example.map(Json) }
}

/// An endpoint's request body, if it takes one; its schema (a JSON text that can be large)
/// is read only when `with_schema` says the query asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyOfEndpoint {
    pub endpoint_id: i64,
    pub with_schema: bool,
}

impl Loader<BodyOfEndpoint> for DbLoader {
    type Value = RequestBody;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[BodyOfEndpoint]) -> LoadResult<BodyOfEndpoint, Self::Value> {
        let mut bodies = HashMap::with_capacity(keys.len());
        // One statement per shape; a query asks all its bodies with the same shape.
        for with_schema in [false, true] {
            let ids: Vec<i64> =
                keys.iter().filter(|k| k.with_schema == with_schema).map(|k| k.endpoint_id).collect();
            if ids.is_empty() {
                continue;
            }
            let rows = bodies_of_endpoints(&self.db, &ids, with_schema).await.map_err(db_error)?;
            bodies.extend(rows.into_iter().map(|(endpoint_id, row)| {
                let BodyRow { content_type, required, example, schema } = row;
                let key = BodyOfEndpoint { endpoint_id, with_schema };
                let body = RequestBody {
                    content_type,
                    required,
                    schema,
                    schema_loaded: with_schema,
                    example: example.map(Json),
                };
                (key, body)
            }));
        }
        Ok(bodies)
    }
}

/// The endpoints carrying a tag (many-to-many through `tag_endpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsOfTag(pub i64);

impl Loader<EndpointsOfTag> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfTag]) -> LoadResult<EndpointsOfTag, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let found = endpoints_of_tags(&self.db, &ids).await.map_err(db_error)?;
        Ok(per_key(keys, |key| key.0, found))
    }
}

/// Everything below one spec that the catalogue shows (tags, current endpoints, which
/// endpoints carry which tag, parameters, bodies without their schemas), read together so
/// it can be kept in the read cache under the spec's revision (see [`crate::db::cache`]).
pub struct SpecCatalogue {
    pub tags: Vec<tag::Model>,
    /// Current endpoints (not those a re-import removed), by id.
    pub endpoints: Vec<Arc<EndpointRow>>,
    /// Each tag's current endpoints, by id.
    pub endpoints_of_tag: HashMap<i64, Vec<Arc<EndpointRow>>>,
    /// Every current endpoint has an entry, empty when it takes no parameter.
    pub parameters: HashMap<i64, Arc<[Parameter]>>,
    /// Bodies, with `schema_loaded: false`.
    pub bodies: HashMap<i64, RequestBody>,
}

impl SpecCatalogue {
    /// How many rows it was read from: its weight in the read cache's budget.
    pub fn rows(&self) -> usize {
        let links: usize = self.endpoints_of_tag.values().map(Vec::len).sum();
        let parameters: usize = self.parameters.values().map(|p| p.len()).sum();
        self.tags.len() + self.endpoints.len() + links + parameters + self.bodies.len()
    }
}

/// A spec's [`SpecCatalogue`]: five statements for any number of specs (tags, endpoints,
/// tag links, parameters, bodies), where the per-level loaders take four per level asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CatalogueOfSpec(pub i64);

impl Loader<CatalogueOfSpec> for DbLoader {
    type Value = Arc<SpecCatalogue>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CatalogueOfSpec]) -> LoadResult<CatalogueOfSpec, Self::Value> {
        let spec_ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let tag_keys: Vec<TagsOfSpec> = spec_ids.iter().map(|&id| TagsOfSpec(id)).collect();
        let endpoint_keys: Vec<EndpointsOfSpec> = spec_ids.iter().map(|&id| EndpointsOfSpec(id)).collect();
        let links = tag_links_of_specs(&self.db, &spec_ids);
        let (mut tags, mut endpoints, links) = futures_util::future::try_join3(
            Loader::<TagsOfSpec>::load(self, &tag_keys),
            Loader::<EndpointsOfSpec>::load(self, &endpoint_keys),
            async { links.await.map_err(db_error) },
        )
        .await?;

        let all: Vec<i64> = endpoints.values().flatten().map(|row| row.id).collect();
        let mut parameters = HashMap::with_capacity(all.len());
        let mut bodies = HashMap::new();
        for ids in all.chunks(MAX_BATCH) {
            let parameter_keys: Vec<ParametersOfEndpoint> =
                ids.iter().map(|&id| ParametersOfEndpoint(id)).collect();
            let body_keys: Vec<BodyOfEndpoint> =
                ids.iter().map(|&endpoint_id| BodyOfEndpoint { endpoint_id, with_schema: false }).collect();
            let (some_parameters, some_bodies) = futures_util::future::try_join(
                Loader::<ParametersOfEndpoint>::load(self, &parameter_keys),
                Loader::<BodyOfEndpoint>::load(self, &body_keys),
            )
            .await?;
            parameters.extend(some_parameters.into_iter().map(|(key, value)| (key.0, value)));
            bodies.extend(some_bodies.into_iter().map(|(key, value)| (key.endpoint_id, value)));
        }

        let by_id: HashMap<i64, (i64, Arc<EndpointRow>)> = endpoints
            .iter()
            .flat_map(|(spec, rows)| rows.iter().map(move |row| (row.id, (spec.0, row.clone()))))
            .collect();
        let mut catalogues: HashMap<i64, SpecCatalogue> = spec_ids
            .iter()
            .map(|&spec_id| {
                let endpoints = endpoints.remove(&EndpointsOfSpec(spec_id)).unwrap_or_default();
                let catalogue = SpecCatalogue {
                    tags: tags.remove(&TagsOfSpec(spec_id)).unwrap_or_default(),
                    endpoints_of_tag: HashMap::new(),
                    parameters: endpoints
                        .iter()
                        .map(|row| (row.id, parameters.remove(&row.id).unwrap_or_else(|| Arc::new([]))))
                        .collect(),
                    bodies: endpoints
                        .iter()
                        .filter_map(|row| Some((row.id, bodies.remove(&row.id)?)))
                        .collect(),
                    endpoints,
                };
                (spec_id, catalogue)
            })
            .collect();
        // Links to removed endpoints are dropped by the import; `by_id` skips any left over.
        for (tag_id, endpoint_id) in links {
            if let Some((spec_id, row)) = by_id.get(&endpoint_id)
                && let Some(catalogue) = catalogues.get_mut(spec_id)
            {
                catalogue.endpoints_of_tag.entry(tag_id).or_default().push(row.clone());
            }
        }
        Ok(catalogues
            .into_iter()
            .map(|(spec_id, catalogue)| (CatalogueOfSpec(spec_id), Arc::new(catalogue)))
            .collect())
    }
}

/// The tags an endpoint carries, in document order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TagsOfEndpoint(pub i64);

impl Loader<TagsOfEndpoint> for DbLoader {
    type Value = Vec<tag::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TagsOfEndpoint]) -> LoadResult<TagsOfEndpoint, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let found = tags_of_endpoints(&self.db, &ids).await.map_err(db_error)?;
        Ok(per_key(keys, |key| key.0, found))
    }
}
