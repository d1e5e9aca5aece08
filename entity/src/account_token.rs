//! Single-use tokens mailed to a person: email verification, email change,
//! password reset. Only the SHA-256 of a token is stored.

use sea_orm::entity::prelude::*;

/// One row of `account_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_tokens")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account the token acts on.
    pub account_id: Uuid,
    /// `VERIFY_EMAIL`, `CHANGE_EMAIL` or `RESET_PASSWORD`.
    pub purpose: String,
    /// SHA-256 of the token (unique).
    #[sea_orm(unique)]
    pub token_hash: Vec<u8>,
    /// For `CHANGE_EMAIL`: the encrypted new address.
    pub new_email_ct: Option<Vec<u8>>,
    /// For `CHANGE_EMAIL`: blind index of the new address.
    pub new_email_bidx: Option<Vec<u8>>,
    /// When it was issued.
    pub created_at: DateTimeUtc,
    /// After this it is refused.
    pub expires_at: DateTimeUtc,
    /// Set when used or voided; a token works once.
    pub used_at: Option<DateTimeUtc>,
}

/// Tokens belong to accounts.
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
