//! The consent ledger: one append-only row per decision. The current state
//! of a purpose is the newest event for it.

use sea_orm::entity::prelude::*;

/// One row of `consent_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_events")]
pub struct Model {
    /// Order of decisions, also among decisions made in the same instant.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Random public id.
    #[sea_orm(unique)]
    pub id: Uuid,
    /// Whose decision.
    pub account_id: Uuid,
    /// The purpose code.
    pub purpose: String,
    /// SHA-256 of the purpose definition the person saw.
    pub purpose_hash: Vec<u8>,
    /// The policy version the decision was made against.
    pub policy_version: String,
    /// SHA-256 of the policy text shown.
    pub policy_text_hash: Vec<u8>,
    /// Granted (true) or withdrawn (false).
    pub granted: bool,
    /// `SIGNUP`, `SETTINGS`, `POLICY_UPDATE`, …
    pub source: String,
    /// When the decision was made.
    pub created_at: DateTimeUtc,
}

/// Events belong to accounts.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The deciding account.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::AccountId",
        to = "super::account::Column::Id",
        on_delete = "Cascade"
    )]
    Account,
}

impl Related<super::account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
