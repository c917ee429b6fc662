//! analyzeOpenApi, deleteOpenApiSpec.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use url::Url;

use crate::{
    access::{Role, RoleGuard},
    db::repo,
    error::AppError,
    graphql::{
        AppState,
        types::{catalogue::OpenApiSpec, db, parse_id, to_id},
    },
    openapi::{fetch_document, parse_document_within},
};

#[derive(Default)]
pub struct CatalogueMutation;

/// Where the document comes from, and an optional base URL override.
#[derive(InputObject)]
pub struct AnalyzeOpenApiInput {
    project_id: ID,
    /// Exactly one of url and document.
    url: Option<String>,
    document: Option<String>,
    /// Overrides the base URL that the document declares.
    base_url: Option<String>,
}

/// What an import did.
#[derive(SimpleObject)]
pub struct AnalyzeOpenApiResult {
    spec: OpenApiSpec,
    /// False when an existing spec of the project (same base URL) was updated in place.
    created: bool,
    added_endpoints: i32,
    removed_endpoints: i32,
    unchanged_endpoints: i32,
    warnings: Vec<String>,
}

/// The document's text and, when it was fetched, the URL it came from.
async fn document_text(
    state: &AppState,
    input: &AnalyzeOpenApiInput,
) -> Result<(String, Option<Url>), AppError> {
    let limits = &state.settings.import.fetch_limits;
    match (input.url.as_deref().map(str::trim), &input.document) {
        (Some(url), None) if !url.is_empty() => {
            let policy = &state.settings.import.policy;
            let fetched = fetch_document(&state.document_client, url, limits, policy)
                .await
                .map_err(|err| AppError::bad_input("input.url", err.to_string()))?;
            Ok((fetched.text, Some(fetched.final_url)))
        }
        (None, Some(document)) => {
            if document.len() > limits.max_bytes {
                return Err(AppError::bad_input(
                    "input.document",
                    format!("the document is larger than {} MB", limits.max_bytes / (1024 * 1024)),
                ));
            }
            Ok((document.clone(), None))
        }
        _ => Err(AppError::bad_input("input", "give exactly one of `url` and `document`")),
    }
}

/// Imports take turns (see `analyze_open_api`).
static IMPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

#[Object]
impl CatalogueMutation {
    /// Reads an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML) from a URL or inline text and stores its endpoints.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    #[tracing::instrument(skip(self, ctx, input), fields(project_id = %input.project_id.as_str()))]
    async fn analyze_open_api(
        &self,
        ctx: &Context<'_>,
        input: AnalyzeOpenApiInput,
    ) -> Result<AnalyzeOpenApiResult> {
        let state = ctx.data_unchecked::<AppState>();
        let project_id = parse_id(&input.project_id, "input.projectId")?;
        let (text, source_url) = document_text(state, &input).await?;
        let override_url = input.base_url.clone().filter(|b| !b.trim().is_empty());
        let document_url = source_url.clone();
        // Large documents take a few hundred milliseconds to walk: keep that off the async workers.
        // The limits bound its time and memory, and a refusal comes before anything is written.
        let limits = state.settings.import.parse_limits.clone();
        // One document is parsed and stored at a time: each may take hundreds of megabytes
        // within its limits, and concurrent imports must not add them up.
        let _turn = IMPORTS.acquire().await.map_err(|err| AppError::Unexpected(anyhow::anyhow!("{err}")))?;
        let parsed = tokio::task::spawn_blocking(move || {
            parse_document_within(&text, document_url.as_ref(), override_url.as_deref(), &limits)
        })
        .await
        .map_err(|err| AppError::Unexpected(anyhow::anyhow!("the import task failed: {err}")))?;
        let field = if input.document.is_some() { "input.document" } else { "input.url" };
        let parsed = parsed.map_err(|err| AppError::bad_input(field, err.to_string()))?;

        let outcome =
            repo::import::import_spec(db(ctx), project_id, &parsed, source_url.map(|u| u.to_string()))
                .await?;
        Ok(AnalyzeOpenApiResult {
            spec: OpenApiSpec(outcome.spec),
            created: outcome.created,
            added_endpoints: outcome.added as i32,
            removed_endpoints: outcome.removed as i32,
            unchanged_endpoints: outcome.unchanged as i32,
            warnings: parsed.warnings,
        })
    }

    /// Removes the spec with its tags and endpoints. Refused (CONFLICT) while test runs hold results
    /// for its endpoints, so no recorded result is lost by accident.
    /// Needs the ADMIN role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_open_api_spec(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::catalogue::delete_spec(db(ctx), id).await?;
        Ok(to_id(id))
    }
}
