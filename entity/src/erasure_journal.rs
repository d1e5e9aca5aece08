//! One erased account in the erasure journal (a database apart from the
//! main one; see `custos::erasure::journal`).

use sea_orm::entity::prelude::*;

/// One row of `erasure_journal`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erasure_journal")]
pub struct Model {
    /// The erased account's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    /// When the purge erased it.
    pub erased_at: DateTimeUtc,
}

/// No relations: the journal lives in a database of its own.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
