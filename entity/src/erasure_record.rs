//! The erasure certificate: proof that an account was erased and when,
//! with per-table counts and no personal data.

use sea_orm::entity::prelude::*;

/// One row of `erasure_records`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erasure_records")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The deletion request it completes.
    #[sea_orm(unique)]
    pub request_id: Uuid,
    /// Why the account was erased.
    pub reason: String,
    /// When deletion was requested.
    pub requested_at: DateTimeUtc,
    /// When ownership was confirmed (or erasure decided).
    pub confirmed_at: Option<DateTimeUtc>,
    /// The deadline the purge had to meet.
    pub deadline: Option<DateTimeUtc>,
    /// When the erasure committed.
    pub completed_at: DateTimeUtc,
    /// Rows erased per table, as JSON (`{"sessions": 2, …}`).
    pub table_counts: String,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
