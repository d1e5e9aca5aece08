//! A signed-in session. Only the SHA-256 of its token is stored.

use sea_orm::entity::prelude::*;

/// One row of `sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// Random id, shown to the person so they can revoke it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account signed in.
    pub account_id: Uuid,
    /// SHA-256 of the bearer token (unique).
    #[sea_orm(unique)]
    pub token_hash: Vec<u8>,
    /// Encrypted user agent, shown in `mySessions`.
    pub user_agent_ct: Option<Vec<u8>>,
    /// When the session began.
    pub created_at: DateTimeUtc,
    /// Last use, updated at most once a minute.
    pub last_seen_at: DateTimeUtc,
    /// The absolute end of the session.
    pub expires_at: DateTimeUtc,
    /// Set when the session was ended (logout, revoke, password change).
    pub revoked_at: Option<DateTimeUtc>,
}

/// Sessions belong to accounts.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The owning account.
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
