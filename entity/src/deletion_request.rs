//! A request to delete an account, from proof of ownership to the purge.
//! It holds only ids, times and token hashes, so it may outlive the account
//! as part of the erasure record.

use sea_orm::entity::prelude::*;

/// One row of `deletion_requests`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deletion_requests")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account to erase (a random id; meaningless once erased).
    pub account_id: Uuid,
    /// `AWAITING_CONFIRMATION`, `SCHEDULED`, `CANCELLED` or `COMPLETED`.
    pub status: String,
    /// Why: `PERSON_REQUEST`, `GUARDIAN_REFUSED`, `GUARDIAN_TIMEOUT`, `MINOR_FLAGGED`.
    pub reason: String,
    /// SHA-256 of the confirmation token, while one is outstanding.
    pub confirm_token_hash: Option<Vec<u8>>,
    /// When the confirmation token stops working.
    pub confirm_expires_at: Option<DateTimeUtc>,
    /// SHA-256 of the cancellation token, while cancelling is possible.
    pub cancel_token_hash: Option<Vec<u8>>,
    /// When the request was made.
    pub requested_at: DateTimeUtc,
    /// When ownership was confirmed (processing stops here).
    pub confirmed_at: Option<DateTimeUtc>,
    /// When the purge may run.
    pub purge_after: Option<DateTimeUtc>,
    /// Set while a purge runner works on it.
    pub claimed_until: Option<DateTimeUtc>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTimeUtc>,
    /// When the purge finished.
    pub completed_at: Option<DateTimeUtc>,
}

/// No declared relations: the request outlives the account.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
