//! Storage of deletion requests: the queries and writes over
//! `deletion_requests`, and the states a request goes through. The rules
//! (who may ask, grace windows, mail) stay in [`super::service`],
//! [`super::purge`] and [`super::minor_flag`].

use chrono::{DateTime, Utc};
use entity::deletion_request;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, Set, sea_query::Expr,
};
use uuid::Uuid;

crate::db::stored_enum! {
    /// Where a deletion request stands; stored in `deletion_requests.status`
    /// as [`RequestStatus::as_str`].
    RequestStatus {
        /// Waiting for the link in the mail.
        AwaitingConfirmation => "AWAITING_CONFIRMATION",
        /// Confirmed: processing stopped, purge due at `purge_after`.
        Scheduled => "SCHEDULED",
        /// Cancelled before the purge.
        Cancelled => "CANCELLED",
        /// Erased.
        Completed => "COMPLETED",
    }
}

impl RequestStatus {
    /// The states of a request still open: awaiting or scheduled.
    pub const OPEN: [RequestStatus; 2] = [Self::AwaitingConfirmation, Self::Scheduled];
}

/// The open (awaiting or scheduled) request of an account, if any.
pub async fn open_request<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Option<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .filter(deletion_request::Column::Status.is_in(RequestStatus::OPEN))
        .order_by_desc(deletion_request::Column::RequestedAt)
        .one(conn)
        .await
}

/// The newest request of an account, whatever its state.
pub async fn latest_request<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Option<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .order_by_desc(deletion_request::Column::RequestedAt)
        .one(conn)
        .await
}

/// Every request of an account, oldest first.
pub async fn of_account<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Vec<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .order_by_asc(deletion_request::Column::RequestedAt)
        .all(conn)
        .await
}

/// The request `id`, if it exists.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find_by_id(id).one(conn).await
}

/// How many requests of an account were made (or renewed) after `since`.
pub async fn requested_since<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .filter(deletion_request::Column::RequestedAt.gt(since))
        .count(conn)
        .await
}

/// How many requests are scheduled, due or not.
pub async fn scheduled_count<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::Status.eq(RequestStatus::Scheduled))
        .count(conn)
        .await
}

/// The links of a request awaiting confirmation: the hashes of its two
/// tokens and when the confirmation link expires.
pub struct Links {
    /// Hash of the confirmation token.
    pub confirm_hash: Vec<u8>,
    /// Hash of the cancellation token.
    pub cancel_hash: Vec<u8>,
    /// When the confirmation link stops working.
    pub confirm_expires_at: DateTime<Utc>,
}

/// Gives an open request fresh links, as asked for again at `now`.
pub async fn renew_links<C: ConnectionTrait>(
    conn: &C,
    open: deletion_request::Model,
    links: Links,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = open.into_active_model();
    update.confirm_token_hash = Set(Some(links.confirm_hash));
    update.confirm_expires_at = Set(Some(links.confirm_expires_at));
    update.cancel_token_hash = Set(Some(links.cancel_hash));
    update.requested_at = Set(now);
    update.update(conn).await?;
    Ok(())
}

/// Writes a new request of `account_id`, awaiting confirmation through
/// `links`, and returns its id.
pub async fn insert_awaiting<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    reason: &'static str,
    links: Links,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::new_v4();
    deletion_request::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        status: Set(RequestStatus::AwaitingConfirmation.into()),
        reason: Set(reason.to_owned()),
        confirm_token_hash: Set(Some(links.confirm_hash)),
        confirm_expires_at: Set(Some(links.confirm_expires_at)),
        cancel_token_hash: Set(Some(links.cancel_hash)),
        requested_at: Set(now),
        confirmed_at: Set(None),
        purge_after: Set(None),
        claimed_until: Set(None),
        cancelled_at: Set(None),
        completed_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(id)
}

/// The request whose confirmation token hashes to `hash`.
pub async fn by_confirm_token<C: ConnectionTrait>(
    conn: &C,
    hash: Vec<u8>,
) -> Result<Option<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::ConfirmTokenHash.eq(hash))
        .one(conn)
        .await
}

/// The request whose cancellation token hashes to `hash`.
pub async fn by_cancel_token<C: ConnectionTrait>(
    conn: &C,
    hash: Vec<u8>,
) -> Result<Option<deletion_request::Model>, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::CancelTokenHash.eq(hash))
        .one(conn)
        .await
}

/// Schedules request `id` for `purge_after`, voiding its confirmation link
/// and giving it the cancellation token `cancel_hash`: a conditional
/// update, so of two uses at once, or a use and a cancel, only the first to
/// write goes on (on PostgreSQL the other waits for its row lock, then
/// finds the request changed). `false` when the request was no longer
/// awaiting confirmation by the token hashing to `confirm_hash`.
pub async fn claim_confirmation<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    confirm_hash: Vec<u8>,
    cancel_hash: Vec<u8>,
    now: DateTime<Utc>,
    purge_after: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = deletion_request::Entity::update_many()
        .col_expr(
            deletion_request::Column::Status,
            Expr::value(RequestStatus::Scheduled),
        )
        .col_expr(
            deletion_request::Column::ConfirmTokenHash,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            deletion_request::Column::ConfirmExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            deletion_request::Column::CancelTokenHash,
            Expr::value(cancel_hash),
        )
        .col_expr(deletion_request::Column::ConfirmedAt, Expr::value(now))
        .col_expr(
            deletion_request::Column::PurgeAfter,
            Expr::value(purge_after),
        )
        .filter(deletion_request::Column::Id.eq(id))
        .filter(deletion_request::Column::Status.eq(RequestStatus::AwaitingConfirmation))
        .filter(deletion_request::Column::ConfirmTokenHash.eq(confirm_hash))
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Cancels open request `id` of `reason`, voiding its links, by a
/// conditional update (see [`claim_confirmation`]): `false` when a
/// confirmation or a purge changed it meanwhile, or its cancellation
/// token no longer hashes to `cancel_hash`.
pub async fn claim_cancellation<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    reason: &'static str,
    cancel_hash: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = deletion_request::Entity::update_many()
        .col_expr(
            deletion_request::Column::Status,
            Expr::value(RequestStatus::Cancelled),
        )
        .col_expr(
            deletion_request::Column::ConfirmTokenHash,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            deletion_request::Column::CancelTokenHash,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(deletion_request::Column::CancelledAt, Expr::value(now))
        .filter(deletion_request::Column::Id.eq(id))
        .filter(deletion_request::Column::Reason.eq(reason))
        .filter(deletion_request::Column::Status.is_in(RequestStatus::OPEN))
        .filter(deletion_request::Column::CancelTokenHash.eq(cancel_hash))
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Schedules erasure of `account_id` at `purge_after`, for `reason`,
/// confirmed at `now` and without links: turns its open request (if any)
/// into that, else writes one.
pub async fn schedule<C: ConnectionTrait>(
    conn: &C,
    open: Option<deletion_request::Model>,
    account_id: Uuid,
    reason: &'static str,
    purge_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<deletion_request::Model, DbErr> {
    if let Some(open) = open {
        let mut update = open.into_active_model();
        update.status = Set(RequestStatus::Scheduled.into());
        update.reason = Set(reason.to_owned());
        update.confirm_token_hash = Set(None);
        update.confirm_expires_at = Set(None);
        update.cancel_token_hash = Set(None);
        update.confirmed_at = Set(Some(now));
        update.purge_after = Set(Some(purge_after));
        return update.update(conn).await;
    }
    deletion_request::ActiveModel {
        id: Set(Uuid::new_v4()),
        account_id: Set(account_id),
        status: Set(RequestStatus::Scheduled.into()),
        reason: Set(reason.to_owned()),
        confirm_token_hash: Set(None),
        confirm_expires_at: Set(None),
        cancel_token_hash: Set(None),
        requested_at: Set(now),
        confirmed_at: Set(Some(now)),
        purge_after: Set(Some(purge_after)),
        claimed_until: Set(None),
        cancelled_at: Set(None),
        completed_at: Set(None),
    }
    .insert(conn)
    .await
}

/// Cancels scheduled request `id` at `now` by a conditional update:
/// `false` when a purge completed it meanwhile.
pub async fn cancel_scheduled<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = deletion_request::Entity::update_many()
        .col_expr(
            deletion_request::Column::Status,
            Expr::value(RequestStatus::Cancelled),
        )
        .col_expr(deletion_request::Column::CancelledAt, Expr::value(now))
        .filter(deletion_request::Column::Id.eq(id))
        .filter(deletion_request::Column::Status.eq(RequestStatus::Scheduled))
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Requests whose deadline has passed without an erasure.
pub async fn overdue_count<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::Status.eq(RequestStatus::Scheduled))
        .filter(deletion_request::Column::PurgeAfter.lte(now))
        .count(conn)
        .await
}

/// Marks the deletion requests `which` selects as completed at `now`,
/// their claim released and their links voided.
pub async fn complete<C: ConnectionTrait>(
    conn: &C,
    which: impl sea_orm::sea_query::IntoCondition,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    deletion_request::Entity::update_many()
        .col_expr(
            deletion_request::Column::Status,
            Expr::value(RequestStatus::Completed),
        )
        .col_expr(
            deletion_request::Column::CompletedAt,
            Expr::value(Some(now)),
        )
        .col_expr(
            deletion_request::Column::ClaimedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(
            deletion_request::Column::ConfirmTokenHash,
            Expr::value(None::<Vec<u8>>),
        )
        .col_expr(
            deletion_request::Column::CancelTokenHash,
            Expr::value(None::<Vec<u8>>),
        )
        .filter(which)
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_stored_as_before() {
        for (status, stored) in [
            (RequestStatus::AwaitingConfirmation, "AWAITING_CONFIRMATION"),
            (RequestStatus::Scheduled, "SCHEDULED"),
            (RequestStatus::Cancelled, "CANCELLED"),
            (RequestStatus::Completed, "COMPLETED"),
        ] {
            assert_eq!(status.as_str(), stored);
            assert_eq!(RequestStatus::parse(stored), Some(status));
            assert_eq!(String::from(status), stored);
            assert_eq!(sea_orm::Value::from(status), sea_orm::Value::from(stored));
        }
        assert_eq!(RequestStatus::parse("scheduled"), None);
    }
}
