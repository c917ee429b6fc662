//! Projects, specs and endpoints.

use async_graphql::{Context, ID, InputObject, Object, Result};

use crate::{
    db::repo::{self, catalogue::EndpointFilter as EndpointFilterRow},
    domain::HttpMethod,
    graphql::{
        loaders::{EndpointById, ProjectById, SpecById},
        types::{
            catalogue::{Endpoint, OpenApiSpec, Project},
            connection::{ENDPOINT_CURSOR, EndpointConnection, endpoint_connection},
            db, decode_cursor, loader, page_size, parse_id,
        },
    },
};

#[derive(Default)]
pub struct CatalogueQuery;

/// Which endpoints to list.
#[derive(InputObject, Default)]
pub struct EndpointFilter {
    project_id: Option<ID>,
    spec_id: Option<ID>,
    tag: Option<String>,
    method: Option<HttpMethod>,
    /// Case-insensitive match on path, summary or operationId.
    search: Option<String>,
}

impl EndpointFilter {
    fn into_row(self) -> Result<EndpointFilterRow> {
        Ok(EndpointFilterRow {
            project_id: self.project_id.as_ref().map(|id| parse_id(id, "filter.projectId")).transpose()?,
            spec_id: self.spec_id.as_ref().map(|id| parse_id(id, "filter.specId")).transpose()?,
            tag: self.tag,
            method: self.method,
            search: self.search,
        })
    }
}

#[Object]
impl CatalogueQuery {
    /// Every project, newest first (the main board).
    async fn projects(&self, ctx: &Context<'_>) -> Result<Vec<Project>> {
        Ok(repo::project::list(db(ctx)).await?.into_iter().map(Project).collect())
    }

    async fn project(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Project>> {
        let id = parse_id(&id, "id")?;
        Ok(loader(ctx).load_one(ProjectById(id)).await?.map(Project))
    }

    async fn open_api_specs(&self, ctx: &Context<'_>, project_id: Option<ID>) -> Result<Vec<OpenApiSpec>> {
        let project_id = project_id.as_ref().map(|id| parse_id(id, "projectId")).transpose()?;
        Ok(repo::catalogue::specs(db(ctx), project_id).await?.into_iter().map(OpenApiSpec).collect())
    }

    async fn open_api_spec(&self, ctx: &Context<'_>, id: ID) -> Result<Option<OpenApiSpec>> {
        let id = parse_id(&id, "id")?;
        Ok(loader(ctx).load_one(SpecById(id)).await?.map(OpenApiSpec))
    }

    /// Endpoints, filtered and paged (Relay cursor connection).
    async fn endpoints(
        &self,
        ctx: &Context<'_>,
        filter: Option<EndpointFilter>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<EndpointConnection> {
        let filter = filter.unwrap_or_default().into_row()?;
        let first = page_size(first, 50)?;
        let after_id = after.as_deref().map(|c| decode_cursor(ENDPOINT_CURSOR, c)).transpose()?;
        let page = repo::catalogue::endpoints_page(db(ctx), &filter, first, after_id).await?;
        Ok(endpoint_connection(page, after_id.is_some(), filter))
    }

    async fn endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Endpoint>> {
        let id = parse_id(&id, "id")?;
        Ok(loader(ctx).load_one(EndpointById(id)).await?.map(Endpoint::from))
    }
}
