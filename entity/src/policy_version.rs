//! Published versions of the privacy policy. The newest row is the current
//! policy; rows are never changed once published.

use sea_orm::entity::prelude::*;

/// One row of `policy_versions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_versions")]
pub struct Model {
    /// Publication order (1, 2, 3, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// Version label (unique).
    #[sea_orm(unique)]
    pub version: String,
    /// When it took effect.
    pub published_at: DateTimeUtc,
    /// Major versions are mailed to everybody and need acceptance.
    pub major: bool,
    /// The whole document (texts per language, purposes) as JSON.
    pub document: String,
    /// The admin who published it (none for the shipped versions).
    pub published_by: Option<Uuid>,
    /// The kinds of major change it makes, comma-separated (`SERVICE_MODEL`,
    /// `OWNERSHIP`, `RECIPIENTS`, `RIGHTS`, `CONTACT`); empty when minor.
    pub change_kinds: String,
}

/// Policy versions have no declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
