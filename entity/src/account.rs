//! A person's account. Username, email and guardian email are stored only
//! encrypted, with blind indexes for lookup and uniqueness.

use sea_orm::entity::prelude::*;

/// One row of `accounts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    /// Random id; the only identifier that may appear in logs.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Encrypted username as the person typed it.
    pub username_ct: Vec<u8>,
    /// Blind index of the username's normal form (unique).
    #[sea_orm(unique)]
    pub username_bidx: Vec<u8>,
    /// Encrypted email address.
    pub email_ct: Vec<u8>,
    /// Blind index of the normalised email (unique).
    #[sea_orm(unique)]
    pub email_bidx: Vec<u8>,
    /// Whether the address was proven by a link.
    pub email_verified: bool,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `USER`, `SUPPORT` or `ADMIN`.
    pub role: String,
    /// Language for mail, e.g. `zh-CN` or `en`.
    pub language: String,
    /// `ADULT`, `SELF_SUPPORTING_16_PLUS` or `MINOR`.
    pub age_declaration: String,
    /// `NOT_NEEDED`, `PENDING`, `GRANTED` or `REFUSED`.
    pub guardian_consent: String,
    /// Encrypted guardian address, for minors.
    pub guardian_email_ct: Option<Vec<u8>>,
    /// The policy version the person last accepted.
    pub accepted_policy_version: Option<String>,
    /// `ACTIVE` or `DELETION_SCHEDULED`.
    pub status: String,
    /// When the account was created.
    pub created_at: DateTimeUtc,
    /// When the row last changed.
    pub updated_at: DateTimeUtc,
}

/// Accounts have no declared relations; services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
