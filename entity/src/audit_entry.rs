//! The audit trail: append-only, each entry chained to the previous one by
//! SHA-256, so an edit or a deletion breaks the chain. Entries hold ids,
//! never personal data.

use sea_orm::entity::prelude::*;

/// One row of `audit_log`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// Position in the chain (1, 2, 3, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// Public id of the entry.
    #[sea_orm(unique)]
    pub id: Uuid,
    /// When it happened.
    pub at: DateTimeUtc,
    /// Who did it (staff or the person), if anyone.
    pub actor_id: Option<Uuid>,
    /// What was done, e.g. `role.set`.
    pub action: String,
    /// Whose data or which account it concerned.
    pub subject_id: Option<Uuid>,
    /// Further facts, without personal data.
    pub detail: String,
    /// Hash of the previous entry (32 zero bytes for the first).
    pub prev_hash: Vec<u8>,
    /// Hash of this entry, over `prev_hash` and every field above.
    pub hash: Vec<u8>,
}

/// The audit log has no declared relations: entries outlive accounts.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
