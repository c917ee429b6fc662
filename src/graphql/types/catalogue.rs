//! Project, OpenApiSpec, Tag, Endpoint, Parameter, RequestBody.

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    connection::{RUN_CURSOR, RunTotal, TestHistoryConnection},
    decode_cursor,
    history::{ScenarioHistory, TrendPoint},
    loader, page_size, to_id,
};
use crate::{
    db::entities::{endpoint, endpoint_parameter, openapi_spec, project, request_body, tag},
    domain::{HttpMethod, ParameterLocation},
    error::AppError,
    graphql::loaders::{
        BodyOfEndpoint, EndpointCountOfProject, EndpointsOfSpec, EndpointsOfTag, ParametersOfEndpoint,
        ProjectById, RecentScenariosOfEndpoint, RunsOfProject, SpecById, SpecsOfProject, TagsOfEndpoint,
        TagsOfSpec,
    },
};

/// A loaded parent that must exist (foreign keys guarantee it); a miss is an internal error.
pub(crate) fn required<T>(value: Option<T>, what: &str, id: i64) -> Result<T> {
    value.ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("{what} {id} vanished while resolving")).into())
}

/// A team's group of APIs.
pub struct Project(pub project::Model);

#[Object]
impl Project {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn specs(&self, ctx: &Context<'_>) -> Result<Vec<OpenApiSpec>> {
        let specs = loader(ctx).load_one(SpecsOfProject(self.0.id)).await?.unwrap_or_default();
        Ok(specs.into_iter().map(OpenApiSpec).collect())
    }
    async fn endpoint_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(loader(ctx).load_one(EndpointCountOfProject(self.0.id)).await?.unwrap_or(0))
    }
    /// This project's runs, newest first.
    async fn test_histories(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<TestHistoryConnection> {
        let first = page_size(first, 20)?;
        let before = after.as_deref().map(|c| decode_cursor(RUN_CURSOR, c)).transpose()?;
        let key = RunsOfProject { project_id: self.0.id, first, before };
        let page = loader(ctx)
            .load_one(key)
            .await?
            .unwrap_or_else(|| crate::db::repo::Page::from_probe(Vec::new(), 0));
        Ok(TestHistoryConnection::new(page, before.is_some(), RunTotal::Project(self.0.id)))
    }
}

/// One imported OpenAPI or Swagger document.
pub struct OpenApiSpec(pub openapi_spec::Model);

#[Object]
impl OpenApiSpec {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn project(&self, ctx: &Context<'_>) -> Result<Project> {
        let project = loader(ctx).load_one(ProjectById(self.0.project_id)).await?;
        Ok(Project(required(project, "project", self.0.project_id)?))
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn version(&self) -> Option<&str> {
        self.0.version.as_deref()
    }
    /// Base URL that generated requests go to (servers[0] / host+basePath, or the override).
    async fn base_url(&self) -> &str {
        &self.0.base_url
    }
    /// Document format as read, e.g. "swagger 2.0", "openapi 3.0.3", "openapi 3.1.0".
    async fn spec_format(&self) -> &str {
        &self.0.spec_format
    }
    async fn source_url(&self) -> Option<&str> {
        self.0.source_url.as_deref()
    }
    async fn imported_at(&self) -> DateTime<Utc> {
        self.0.imported_at
    }
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let tags = loader(ctx).load_one(TagsOfSpec(self.0.id)).await?.unwrap_or_default();
        Ok(tags.into_iter().map(Tag).collect())
    }
    async fn endpoints(&self, ctx: &Context<'_>) -> Result<Vec<Endpoint>> {
        let endpoints = loader(ctx).load_one(EndpointsOfSpec(self.0.id)).await?.unwrap_or_default();
        Ok(endpoints.into_iter().map(Endpoint).collect())
    }
}

/// An OpenAPI tag; `default` holds the operations that have none.
pub struct Tag(pub tag::Model);

#[Object]
impl Tag {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn spec(&self, ctx: &Context<'_>) -> Result<OpenApiSpec> {
        let spec = loader(ctx).load_one(SpecById(self.0.spec_id)).await?;
        Ok(OpenApiSpec(required(spec, "spec", self.0.spec_id)?))
    }
    async fn endpoints(&self, ctx: &Context<'_>) -> Result<Vec<Endpoint>> {
        let endpoints = loader(ctx).load_one(EndpointsOfTag(self.0.id)).await?.unwrap_or_default();
        Ok(endpoints.into_iter().map(Endpoint).collect())
    }
}

/// One operation: a method on a path.
pub struct Endpoint(pub endpoint::Model);

#[Object]
impl Endpoint {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn method(&self) -> HttpMethod {
        self.0.method
    }
    async fn path(&self) -> &str {
        &self.0.path
    }
    async fn operation_id(&self) -> Option<&str> {
        self.0.operation_id.as_deref()
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn deprecated(&self) -> bool {
        self.0.deprecated
    }
    async fn spec(&self, ctx: &Context<'_>) -> Result<OpenApiSpec> {
        let spec = loader(ctx).load_one(SpecById(self.0.spec_id)).await?;
        Ok(OpenApiSpec(required(spec, "spec", self.0.spec_id)?))
    }
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let tags = loader(ctx).load_one(TagsOfEndpoint(self.0.id)).await?.unwrap_or_default();
        Ok(tags.into_iter().map(Tag).collect())
    }
    async fn parameters(&self, ctx: &Context<'_>) -> Result<Vec<Parameter>> {
        let parameters = loader(ctx).load_one(ParametersOfEndpoint(self.0.id)).await?.unwrap_or_default();
        Ok(parameters.into_iter().map(Parameter::from).collect())
    }
    async fn request_body(&self, ctx: &Context<'_>) -> Result<Option<RequestBody>> {
        Ok(loader(ctx).load_one(BodyOfEndpoint(self.0.id)).await?.map(RequestBody::from))
    }
    /// The most recent scenario runs against this endpoint, newest first.
    async fn recent_scenarios(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] last: Option<i32>,
    ) -> Result<Vec<ScenarioHistory>> {
        let last = history_window(last, 10)?;
        let key = RecentScenariosOfEndpoint { endpoint_id: self.0.id, last };
        let rows = loader(ctx).load_one(key).await?.unwrap_or_default();
        Ok(rows.into_iter().map(ScenarioHistory).collect())
    }
    /// p95 / avg / TPS / error rate of this endpoint across finished runs, oldest first.
    async fn trend(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] last: Option<i32>,
    ) -> Result<Vec<TrendPoint>> {
        let last = history_window(last, 30)?;
        let key = RecentScenariosOfEndpoint { endpoint_id: self.0.id, last };
        let rows = loader(ctx).load_one(key).await?.unwrap_or_default();
        Ok(rows.into_iter().rev().map(TrendPoint).collect())
    }
}

fn history_window(last: Option<i32>, default: i32) -> Result<u64, AppError> {
    page_size(last, default).map_err(|_| {
        AppError::bad_input("last", format!("`last` must be between 0 and {}", super::MAX_PAGE_SIZE))
    })
}

/// A parameter of an endpoint.
#[derive(SimpleObject)]
pub struct Parameter {
    name: String,
    location: ParameterLocation,
    required: bool,
    schema_type: Option<String>,
    description: Option<String>,
    /// A value the generated script uses: the document's example/default, or one made from the schema.
    example: Option<Json<serde_json::Value>>,
}

impl From<endpoint_parameter::Model> for Parameter {
    fn from(row: endpoint_parameter::Model) -> Self {
        Self {
            name: row.name,
            location: row.location,
            required: row.required,
            schema_type: row.schema_type,
            description: row.description,
            example: row.example.map(Json),
        }
    }
}

/// The body an endpoint takes.
pub struct RequestBody(request_body::Model);

impl From<request_body::Model> for RequestBody {
    fn from(row: request_body::Model) -> Self {
        Self(row)
    }
}

#[Object]
impl RequestBody {
    async fn content_type(&self) -> &str {
        &self.0.content_type
    }
    async fn required(&self) -> bool {
        self.0.required
    }
    async fn schema(&self) -> Option<Json<serde_json::Value>> {
        self.0.schema.as_deref().and_then(|text| serde_json::from_str(text).ok()).map(Json)
    }
    async fn example(&self) -> Option<Json<serde_json::Value>> {
        self.0.example.clone().map(Json)
    }
}
