//! Project, OpenApiSpec, Tag, Endpoint, Parameter, RequestBody.

use std::sync::{Arc, OnceLock};

use async_graphql::{
    Context, ContextSelectionSet, ID, Json, Name, Object, Positioned, Result, SimpleObject, Value,
    parser::types::Field,
};
use chrono::{DateTime, Utc};

use super::{
    connection::{RUN_CURSOR, RunTotal, TestHistoryConnection, run_connection},
    decode_cursor,
    history::{ScenarioHistory, TrendPoint},
    loader, page_size, to_id,
};
use crate::{
    db::entities::{endpoint, openapi_spec, project, tag},
    domain::{HttpMethod, ParameterLocation},
    error::AppError,
    graphql::{
        fast::{
            self,
            eager::{
                Eager, EagerList, EagerObject, ListAnswer, enum_value, resolve_list_now, resolve_now,
                with_sub_selection,
            },
            plain::graphql_object,
        },
        loaders::{
            BodyOfEndpoint, EndpointCountOfProject, EndpointRow, EndpointsOfSpec, EndpointsOfTag,
            ParametersOfEndpoint, ProjectById, RecentScenariosOfEndpoint, RunsOfProject, SpecById,
            SpecCatalogue, SpecsOfProject, TagsOfEndpoint, TagsOfSpec,
        },
    },
};

/// A loaded parent that must exist (foreign keys guarantee it); a miss is an internal error.
pub(crate) fn required<T>(value: Option<T>, what: &str, id: i64) -> Result<T> {
    value.ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("{what} {id} vanished while resolving")).into())
}

/// Project `id`, through the request's loader: one that a row being resolved names.
pub(crate) async fn project_by_id(ctx: &Context<'_>, id: i64) -> Result<Project> {
    let project = loader(ctx).load_one(ProjectById(id)).await?;
    Ok(Project(required(project, "project", id)?))
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
        Ok(run_connection(page, before.is_some(), RunTotal::Project(self.0.clone())))
    }
    /// This project's live test plans, newest first.
    async fn test_plans(&self, ctx: &Context<'_>) -> Result<Vec<super::plan::TestPlan>> {
        let plans = crate::db::repo::plans::list(super::db(ctx), Some(self.0.id)).await?;
        Ok(plans.into_iter().map(super::plan::TestPlan).collect())
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
        project_by_id(ctx, self.0.project_id).await
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
        if let Some(tags) = fast::catalogue::tags(ctx, &self.0).await? {
            return Ok(tags);
        }
        let tags = loader(ctx).load_one(TagsOfSpec(self.0.id)).await?.unwrap_or_default();
        Ok(tags.into_iter().map(Tag::from).collect())
    }
    async fn endpoints(&self, ctx: &Context<'_>) -> Result<ListAnswer<Endpoint>> {
        if let Some(endpoints) =
            fast::catalogue::endpoints(ctx, fast::catalogue::Parent::Spec(&self.0)).await?
        {
            return Ok(endpoints);
        }
        let endpoints = loader(ctx).load_one(EndpointsOfSpec(self.0.id)).await?.unwrap_or_default();
        Ok(ListAnswer::Items(Endpoint::list(ctx, endpoints).await?))
    }
}

/// An OpenAPI tag; `default` holds the operations that have none. Listed under a spec whose
/// catalogue was read whole, it carries that catalogue for its endpoints.
pub struct Tag(pub tag::Model, pub(crate) Option<Arc<SpecCatalogue>>);

impl From<tag::Model> for Tag {
    fn from(row: tag::Model) -> Self {
        Self(row, None)
    }
}

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
    async fn endpoints(&self, ctx: &Context<'_>) -> Result<ListAnswer<Endpoint>> {
        let parent = fast::catalogue::Parent::Tag(&self.0, self.1.as_ref());
        if let Some(endpoints) = fast::catalogue::endpoints(ctx, parent).await? {
            return Ok(endpoints);
        }
        let endpoints = loader(ctx).load_one(EndpointsOfTag(self.0.id)).await?.unwrap_or_default();
        Ok(ListAnswer::Items(Endpoint::list(ctx, endpoints).await?))
    }
}

/// One operation: a method on a path, with the relations a list resolver already loaded for
/// the whole level (see [`Endpoint::list`]).
pub struct Endpoint {
    pub(crate) row: Arc<EndpointRow>,
    pub(crate) parameters: Option<Arc<[Parameter]>>,
    /// `Some` when the body was prefetched: `Some(None)` for an endpoint without one.
    pub(crate) body: Option<Option<RequestBody>>,
}

impl From<Arc<EndpointRow>> for Endpoint {
    fn from(row: Arc<EndpointRow>) -> Self {
        Self { row, parameters: None, body: None }
    }
}

impl From<EndpointRow> for Endpoint {
    fn from(row: EndpointRow) -> Self {
        Arc::new(row).into()
    }
}

impl From<endpoint::Model> for Endpoint {
    fn from(row: endpoint::Model) -> Self {
        EndpointRow::from(row).into()
    }
}

/// Whether a request-body selection asks for the body's (possibly large) schema.
pub(crate) fn wants_schema(body: &async_graphql::Lookahead<'_>) -> bool {
    body.field("schema").exists()
}

impl Endpoint {
    /// Endpoints for a list field: the parameters and request bodies the query selects are
    /// loaded here for the whole list (one statement per relation and level, batched with the
    /// sibling lists), so the endpoints, their parameters and bodies answer from memory.
    pub async fn list<R: Into<Arc<EndpointRow>>>(
        ctx: &Context<'_>,
        rows: Vec<R>,
    ) -> Result<EagerList<Endpoint>> {
        let rows: Vec<Arc<EndpointRow>> = rows.into_iter().map(Into::into).collect();
        let look_ahead = ctx.look_ahead();
        let parameters = look_ahead.field("parameters").exists();
        let body = look_ahead.field("requestBody");
        let with_schema = wants_schema(&body);
        let loader = loader(ctx);
        let (parameters, bodies) = futures_util::future::try_join(
            async {
                if parameters {
                    loader.load_many(rows.iter().map(|row| ParametersOfEndpoint(row.id))).await.map(Some)
                } else {
                    Ok(None)
                }
            },
            async {
                if body.exists() {
                    let keys = rows.iter().map(|row| BodyOfEndpoint { endpoint_id: row.id, with_schema });
                    loader.load_many(keys).await.map(Some)
                } else {
                    Ok(None)
                }
            },
        )
        .await?;
        let endpoints: Vec<Endpoint> = rows
            .into_iter()
            .map(|row| Endpoint {
                parameters: parameters.as_ref().map(|all| {
                    all.get(&ParametersOfEndpoint(row.id)).cloned().unwrap_or_else(|| Arc::new([]))
                }),
                body: bodies
                    .as_ref()
                    .map(|all| all.get(&BodyOfEndpoint { endpoint_id: row.id, with_schema }).cloned()),
                row,
            })
            .collect();
        Ok(endpoints.into())
    }
}

// The plain fields carry the SQL that `fast::endpoints_json` has SQLite write them with.
graphql_object! {
    impl Endpoint as this {
        plain id: ID = to_id(this.row.id), sql "CAST(e.id AS TEXT)";
        plain method: HttpMethod = this.row.method, sql "e.method";
        plain path: String = this.row.path.clone(), sql "e.path";
        plain operation_id: Option<String> = this.row.operation_id.clone(), sql "e.operation_id";
        plain summary: Option<String> = this.row.summary.clone(), sql "e.summary";
        plain description: Option<String> = this.row.description.clone(), sql "e.description";
        plain deprecated: bool = this.row.deprecated, sql "e.deprecated";
    async fn spec(&self, ctx: &Context<'_>) -> Result<OpenApiSpec> {
        let spec = loader(ctx).load_one(SpecById(self.row.spec_id)).await?;
        Ok(OpenApiSpec(required(spec, "spec", self.row.spec_id)?))
    }
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let tags = loader(ctx).load_one(TagsOfEndpoint(self.row.id)).await?.unwrap_or_default();
        Ok(tags.into_iter().map(Tag::from).collect())
    }
    async fn parameters(&self, ctx: &Context<'_>) -> Result<EagerList<Parameter>> {
        if let Some(parameters) = &self.parameters {
            return Ok(EagerList(parameters.clone()));
        }
        let parameters = loader(ctx).load_one(ParametersOfEndpoint(self.row.id)).await?;
        Ok(EagerList(parameters.unwrap_or_else(|| Arc::new([]))))
    }
    async fn request_body(&self, ctx: &Context<'_>) -> Result<Option<Eager<RequestBody>>> {
        if let Some(body) = &self.body {
            return Ok(body.clone().map(Eager));
        }
        let key = BodyOfEndpoint { endpoint_id: self.row.id, with_schema: wants_schema(&ctx.look_ahead()) };
        Ok(loader(ctx).load_one(key).await?.map(Eager))
    }
    /// The most recent scenario runs against this endpoint, newest first.
    async fn recent_scenarios(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] last: Option<i32>,
    ) -> Result<Vec<ScenarioHistory>> {
        let last = history_window(last, 10)?;
        let key = RecentScenariosOfEndpoint { endpoint_id: self.row.id, last };
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
        let key = RecentScenariosOfEndpoint { endpoint_id: self.row.id, last };
        let rows = loader(ctx).load_one(key).await?.unwrap_or_default();
        Ok(rows.into_iter().rev().map(TrendPoint::from).collect())
    }
    }
}

impl EagerObject for Endpoint {
    fn field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        let name = field.node.name.node.as_str();
        if let Some(value) = self.plain_field_now(name) {
            return Some(value);
        }
        Some(match name {
            "parameters" => {
                let parameters = self.parameters.as_deref()?;
                with_sub_selection(ctx, field, |ctx| resolve_list_now(parameters, ctx))?
            }
            "requestBody" => match self.body.as_ref()? {
                None => Value::Null,
                Some(body) => with_sub_selection(ctx, field, |ctx| resolve_now(body, ctx))?,
            },
            // Relations that were not prefetched.
            _ => return None,
        })
    }
}

fn optional_string(value: &Option<String>) -> Value {
    value.as_ref().map_or(Value::Null, |text| Value::String(text.clone()))
}

pub(super) fn history_window(last: Option<i32>, default: i32) -> Result<u64, AppError> {
    page_size(last, default).map_err(|_| {
        AppError::bad_input("last", format!("`last` must be between 0 and {}", super::MAX_PAGE_SIZE))
    })
}

/// A parameter of an endpoint.
#[derive(Clone, SimpleObject)]
pub struct Parameter {
    pub(crate) name: String,
    pub(crate) location: ParameterLocation,
    pub(crate) required: bool,
    pub(crate) schema_type: Option<String>,
    pub(crate) description: Option<String>,
    /// A value the generated script uses: the document's example/default, or one made from the schema.
    pub(crate) example: Option<Json<serde_json::Value>>,
}

impl EagerObject for Parameter {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "name" => Value::String(self.name.clone()),
            "location" => {
                static NAMES: OnceLock<Vec<Name>> = OnceLock::new();
                enum_value(self.location, &NAMES)
            }
            "required" => Value::Boolean(self.required),
            "schemaType" => optional_string(&self.schema_type),
            "description" => optional_string(&self.description),
            "example" => json_value(&self.example),
            _ => return None,
        })
    }
}

/// A JSON column as the `JSON` scalar answers it (async-graphql's `Json<T>`).
fn json_value(value: &Option<Json<serde_json::Value>>) -> Value {
    value.as_ref().map_or(Value::Null, |json| async_graphql::to_value(&json.0).unwrap_or_default())
}

/// The body an endpoint takes.
#[derive(Clone)]
pub struct RequestBody {
    pub(crate) content_type: String,
    pub(crate) required: bool,
    /// JSON text, parsed only when shown; read from the database only when the query asks
    /// for it (`schema_loaded`).
    pub(crate) schema: Option<String>,
    pub(crate) schema_loaded: bool,
    pub(crate) example: Option<Json<serde_json::Value>>,
}

impl RequestBody {
    fn schema_value(&self) -> Option<serde_json::Value> {
        self.schema.as_deref().and_then(|text| serde_json::from_str(text).ok())
    }
}

#[Object]
impl RequestBody {
    async fn content_type(&self) -> &str {
        &self.content_type
    }
    async fn required(&self) -> bool {
        self.required
    }
    async fn schema(&self) -> Result<Option<Json<serde_json::Value>>> {
        if !self.schema_loaded {
            // The loaders read the schema whenever the selection (fragments included) names it.
            return Err(AppError::Unexpected(anyhow::anyhow!("request body schema was not loaded")).into());
        }
        Ok(self.schema_value().map(Json))
    }
    async fn example(&self) -> Option<Json<serde_json::Value>> {
        self.example.clone()
    }
}

impl EagerObject for RequestBody {
    fn field_now(&self, _ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        Some(match field.node.name.node.as_str() {
            "contentType" => Value::String(self.content_type.clone()),
            "required" => Value::Boolean(self.required),
            "schema" if self.schema_loaded => self
                .schema_value()
                .map_or(Value::Null, |schema| async_graphql::to_value(&schema).unwrap_or_default()),
            "example" => json_value(&self.example),
            _ => return None,
        })
    }
}
