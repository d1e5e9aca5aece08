//! An erased account whose key a separate key store has still to delete.

use sea_orm::entity::prelude::*;

/// One row of `pending_key_destruction`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_key_destruction")]
pub struct Model {
    /// The erased account's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// When the purge erased the account.
    pub queued_at: DateTimeUtc,
}

/// No relations: the account is gone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
