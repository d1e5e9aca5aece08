//! Failed sign-ins counted per login name, shared by every server instance.
//! The subject is a blind index of the login name as typed (normalised), so
//! known and unknown names are throttled alike and no name is stored.

use sea_orm::entity::prelude::*;

/// One row of `login_throttle`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_throttle")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Blind index of the normalised login name (unique).
    #[sea_orm(unique)]
    pub subject_bidx: Vec<u8>,
    /// Attempts counted in the current window.
    pub failures: i32,
    /// When the current one-hour window began.
    pub window_started_at: DateTimeUtc,
    /// Attempts are refused until then.
    pub locked_until: Option<DateTimeUtc>,
    /// Last change; old rows are pruned.
    pub updated_at: DateTimeUtc,
}

/// No relations: a row may name no account at all.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
