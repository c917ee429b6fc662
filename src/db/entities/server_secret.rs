//! `server_secret`: a secret the server made for itself, shared by its replicas.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "server_secret")]
pub struct Model {
    /// What the secret is for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Random bytes, in hex.
    pub value: String,
    pub created_at: DateTimeUtc,
}

/// Never prints the value.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecret").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
