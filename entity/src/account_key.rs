//! An account's data key, wrapped by the keyring. It may live in a separate
//! key store; no foreign key ties it to the account for that reason.

use sea_orm::entity::prelude::*;

/// One row of `account_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_keys")]
pub struct Model {
    /// The account's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The 32-byte key encrypted under the keyring (context: this table,
    /// column `wrapped_key`, the account id), so `keys rotate` re-wraps it.
    pub wrapped_key_ct: Vec<u8>,
    /// When the key was made.
    pub created_at: DateTimeUtc,
}

/// No relations: the row may sit in another database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
