//! createProject, updateProject, deleteProject.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use crate::{
    access::{Role, RoleGuard},
    db::repo::{self, project::ProjectFields},
    error::AppError,
    graphql::{
        AppState,
        types::{catalogue::Project, db, parse_id, to_id},
    },
};

const TITLE_MAX: usize = 200;
const SUMMARY_MAX: usize = 1_000;
const DESCRIPTION_MAX: usize = 20_000;

#[derive(Default)]
pub struct ProjectMutation;

#[derive(InputObject)]
pub struct CreateProjectInput {
    title: String,
    summary: Option<String>,
    description: Option<String>,
}

/// Fields left out stay as they are; `null` clears summary or description.
#[derive(InputObject)]
pub struct UpdateProjectInput {
    title: Option<String>,
    summary: MaybeUndefined<String>,
    description: MaybeUndefined<String>,
}

fn title(value: &str) -> Result<String, AppError> {
    let title = value.trim();
    if title.is_empty() {
        return Err(AppError::bad_input("input.title", "title must not be empty"));
    }
    if title.chars().count() > TITLE_MAX {
        return Err(AppError::bad_input(
            "input.title",
            format!("title must be at most {TITLE_MAX} characters"),
        ));
    }
    Ok(title.to_owned())
}

/// Optional text: blank means none; too long is refused.
fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, AppError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("{} must be at most {max} characters", &field["input.".len()..]),
        ));
    }
    Ok(Some(text.to_owned()))
}

fn maybe_text(
    field: &str,
    value: &MaybeUndefined<String>,
    max: usize,
) -> Result<Option<Option<String>>, AppError> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(text) => optional_text(field, Some(text), max).map(Some),
    }
}

#[Object]
impl ProjectMutation {
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn create_project(&self, ctx: &Context<'_>, input: CreateProjectInput) -> Result<Project> {
        let fields = ProjectFields {
            title: Some(title(&input.title)?),
            summary: Some(optional_text("input.summary", input.summary.as_deref(), SUMMARY_MAX)?),
            description: Some(optional_text(
                "input.description",
                input.description.as_deref(),
                DESCRIPTION_MAX,
            )?),
        };
        Ok(Project(repo::project::create(db(ctx), fields).await?))
    }

    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn update_project(&self, ctx: &Context<'_>, id: ID, input: UpdateProjectInput) -> Result<Project> {
        let id = parse_id(&id, "id")?;
        let fields = ProjectFields {
            title: input.title.as_deref().map(title).transpose()?,
            summary: maybe_text("input.summary", &input.summary, SUMMARY_MAX)?,
            description: maybe_text("input.description", &input.description, DESCRIPTION_MAX)?,
        };
        Ok(Project(repo::project::update(db(ctx), id, fields).await?))
    }

    /// Deletes the project with its specs, endpoints and history. Refused while one of its runs is active.
    /// Needs the ADMIN role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_project(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::project::delete(db(ctx), id).await?;
        // Its runs went with it: their samples in InfluxDB go too (later, if it is down).
        ctx.data_unchecked::<AppState>().lifecycle.forget_orphaned_samples().await;
        Ok(to_id(id))
    }
}
