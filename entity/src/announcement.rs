//! A public announcement: a security-incident notice or a policy-update
//! notice. Announcements are public by design and hold no personal data.

use sea_orm::entity::prelude::*;

/// One row of `announcements`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "announcements")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `SECURITY_INCIDENT` or `POLICY_UPDATE`.
    pub kind: String,
    /// Public headline.
    pub title: String,
    /// Public text.
    pub body: String,
    /// When it was published.
    pub published_at: DateTimeUtc,
}

/// Announcements have no declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
