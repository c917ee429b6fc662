//! deleteOpenApiSpec.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    db::repo,
    graphql::types::{db, parse_id, to_id},
};

#[derive(Default)]
pub struct CatalogueMutation;

#[Object]
impl CatalogueMutation {
    /// Removes the spec with its tags and endpoints.
    async fn delete_open_api_spec(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::catalogue::delete_spec(db(ctx), id).await?;
        Ok(to_id(id))
    }
}
