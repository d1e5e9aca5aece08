//! Deletion requests: proof of ownership by the bound address, the grace
//! window in working days, cancellation, and erasure decided by others
//! (a guardian's refusal or silence; staff flags are in `minor_flag`).

use chrono::{DateTime, Utc};
use entity::{account, deletion_request};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
    TransactionTrait,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

pub use super::store::{RequestStatus, latest_request, open_request};
use super::{
    calendar::WorkingCalendar,
    store::{self, Links},
    templates,
};
use crate::{
    accounts::{
        AccountStatus,
        email::Email,
        service::{AccountError, EMAIL_INDEX, USERNAME_INDEX, is_readable_in, open_readable_in},
        sessions_store::revoke_all_except,
        username::Username,
    },
    crypto::tokens,
    mail::{
        outbox::{self, OutgoingMail},
        templates::action_link,
    },
    state::AppState,
};

/// Why an account is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureReason {
    /// The person asked and confirmed.
    PersonRequest,
    /// A minor's guardian refused consent.
    GuardianRefused,
    /// A minor's guardian never answered.
    GuardianTimeout,
    /// Staff found a minor without verifiable guardian consent.
    MinorFlagged,
    /// The address was never verified before the link and its grace ran out.
    UnverifiedSignup,
}

impl ErasureReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersonRequest => "PERSON_REQUEST",
            Self::GuardianRefused => "GUARDIAN_REFUSED",
            Self::GuardianTimeout => "GUARDIAN_TIMEOUT",
            Self::MinorFlagged => "MINOR_FLAGGED",
            Self::UnverifiedSignup => "UNVERIFIED_SIGNUP",
        }
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The token is unknown, used or expired.
    #[error("invalid token")]
    InvalidToken,
    /// The account does not exist.
    #[error("account not found")]
    NotFound,
    /// Input has the wrong shape.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
    /// Staff accounts are never flagged.
    #[error("staff account")]
    StaffAccount,
    /// The account has no minor flag to lift.
    #[error("not flagged")]
    NotFlagged,
    /// Account decryption failed.
    #[error("account: {0}")]
    Account(#[from] AccountError),
}

crate::error::internal_causes!(ErasureError);

/// The working-day calendar from settings.
pub fn calendar(state: &AppState) -> WorkingCalendar {
    let settings = state.settings();
    WorkingCalendar::new(
        settings.erasure.timezone,
        &settings.erasure.calendar.holidays,
        &settings.erasure.calendar.workdays,
    )
}

/// The deadline for a confirmation at `confirmed_at`.
pub fn purge_deadline(state: &AppState, confirmed_at: DateTime<Utc>) -> DateTime<Utc> {
    calendar(state).add_working_days(confirmed_at, state.settings().erasure.grace_working_days)
}

/// An instant as people read it in the operator's time zone, for mail.
pub fn local_time(state: &AppState, at: DateTime<Utc>) -> String {
    at.with_timezone(&state.settings().erasure.timezone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Asks for deletion: when username and email name the same account (by
/// blind index), a confirmation link goes to the bound address. The answer
/// is the same either way, and so is its timing: it comes no sooner than
/// [`crate::timing::ANSWER_FLOOR`] after the call, as a password reset's
/// does. A second request while one is open sends a fresh link (at most 3
/// an hour) instead of a duplicate request.
pub async fn request_deletion(
    state: &AppState,
    username: &str,
    email: &str,
) -> Result<(), ErasureError> {
    crate::timing::with_answer_floor(
        "request_account_deletion",
        send_deletion_confirmation(state, username, email),
    )
    .await
}

/// The work behind [`request_deletion`], without the answer floor.
async fn send_deletion_confirmation(
    state: &AppState,
    username: &str,
    email: &str,
) -> Result<(), ErasureError> {
    let (Ok(username), Ok(email)) = (Username::parse(username), Email::parse(email)) else {
        return Ok(());
    };
    // Every key in use, and each name on its own: while a blind-index
    // rotation runs, one of the two may be re-indexed and the other not yet.
    let username_bidx = state.blind().lookup(USERNAME_INDEX, username.canonical());
    let email_bidx = state.blind().lookup(EMAIL_INDEX, &email.normalised());
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let Some(row) = account::Entity::find()
        .filter(account::Column::UsernameBidx.is_in(username_bidx))
        .filter(account::Column::EmailBidx.is_in(email_bidx))
        .filter(account::Column::Status.eq(AccountStatus::Active))
        .one(&txn)
        .await?
    else {
        return Ok(());
    };
    // An account whose data key is gone is answered as no account.
    let Some(person) = open_readable_in(state, &txn, &row).await? else {
        return Ok(());
    };
    let recent = store::requested_since(&txn, row.id, now - chrono::Duration::hours(1)).await?;
    let existing = open_request(&txn, row.id).await?;
    if existing
        .as_ref()
        .is_some_and(|r| RequestStatus::Scheduled.is(&r.status))
    {
        return Ok(());
    }
    let confirm = tokens::issue()?;
    let cancel = tokens::issue()?;
    let ttl = state.settings().accounts.verification_token_ttl;
    let links = Links {
        confirm_hash: confirm.hash,
        cancel_hash: cancel.hash,
        confirm_expires_at: now + ttl,
    };
    let request_id = match existing {
        Some(open) => {
            if recent >= crate::accounts::service::MAX_MAILS_PER_HOUR {
                return Ok(());
            }
            let id = open.id;
            store::renew_links(&txn, open, links, now).await?;
            id
        }
        None => {
            let reason = ErasureReason::PersonRequest.as_str();
            store::insert_awaiting(&txn, row.id, reason, links, now).await?
        }
    };
    let public_url = &state.settings().http.public_url;
    outbox::queue(
        state,
        &txn,
        OutgoingMail {
            account_id: Some(row.id),
            kind: "deletion_confirm",
            to: person.email.clone(),
            content: templates::confirm_request(
                person.language,
                &person.username,
                &action_link(
                    public_url,
                    "/confirm-deletion",
                    confirm.token.expose_secret(),
                ),
                &action_link(public_url, "/cancel-deletion", cancel.token.expose_secret()),
                state.settings().erasure.grace_working_days,
                ttl.num_hours(),
            ),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(account_id = %row.id, request_id = %request_id, "deletion requested");
    Ok(())
}

/// Stops processing at once: the account is marked, every session ends.
pub(crate) async fn stop_processing<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<account::Model>, sea_orm::DbErr> {
    let Some(row) = account::Entity::find_by_id(account_id).one(conn).await? else {
        return Ok(None);
    };
    let mut update = row.clone().into_active_model();
    update.status = Set(AccountStatus::DeletionScheduled.into());
    update.updated_at = Set(now);
    update.update(conn).await?;
    revoke_all_except(conn, account_id, None, now).await?;
    Ok(Some(row))
}

/// Uses a `/confirm-deletion` token: the request is scheduled, processing
/// stops, and a notice with the date and a fresh cancel link is mailed.
pub async fn confirm(
    state: &AppState,
    token: &str,
) -> Result<deletion_request::Model, ErasureError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let request = store::by_confirm_token(&txn, tokens::hash_token(token.trim()))
        .await?
        .filter(|r| {
            RequestStatus::AwaitingConfirmation.is(&r.status)
                && r.confirm_expires_at.is_some_and(|at| at > now)
        })
        .ok_or(ErasureError::InvalidToken)?;
    let purge_after = purge_deadline(state, now);
    let cancel = tokens::issue()?;
    // Claimed by a conditional update: of two uses at once, or a use and
    // a cancel, only the first to write goes on (on PostgreSQL the other
    // waits for its row lock, then finds the request changed).
    let confirm_hash = tokens::hash_token(token.trim());
    let claimed = store::claim_confirmation(
        &txn,
        request.id,
        confirm_hash,
        cancel.hash,
        now,
        purge_after,
    )
    .await?;
    if !claimed {
        return Err(ErasureError::InvalidToken);
    }
    let Some(row) = stop_processing(&txn, request.account_id, now).await? else {
        return Err(ErasureError::InvalidToken);
    };
    // A restored link of an account whose data key is gone confirms
    // nothing (the transaction rolls back).
    let Some(person) = open_readable_in(state, &txn, &row).await? else {
        return Err(ErasureError::InvalidToken);
    };
    let scheduled = store::find(&txn, request.id)
        .await?
        .ok_or(ErasureError::InvalidToken)?;
    outbox::queue(
        state,
        &txn,
        OutgoingMail {
            account_id: Some(row.id),
            kind: "deletion_scheduled",
            to: person.email.clone(),
            content: templates::scheduled(
                person.language,
                &person.username,
                &local_time(state, purge_after),
                &action_link(
                    &state.settings().http.public_url,
                    "/cancel-deletion",
                    cancel.token.expose_secret(),
                ),
            ),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    // Every session of the account has ended.
    state.session_cache().forget_account(row.id);
    tracing::info!(account_id = %row.id, request_id = %scheduled.id, purge_after = %purge_after, "deletion confirmed");
    Ok(scheduled)
}

/// Uses a `/cancel-deletion` token: until the purge has run, the request
/// is cancelled and the account restored (sessions stay ended).
pub async fn cancel(
    state: &AppState,
    token: &str,
) -> Result<deletion_request::Model, ErasureError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let request = store::by_cancel_token(&txn, tokens::hash_token(token.trim()))
        .await?
        .filter(|r| {
            r.reason == ErasureReason::PersonRequest.as_str()
                && RequestStatus::OPEN.iter().any(|open| open.is(&r.status))
        })
        .ok_or(ErasureError::InvalidToken)?;
    // Claimed by a conditional update (see `confirm`): a confirmation or a
    // purge that changed the request meanwhile leaves nothing to cancel.
    let reason = ErasureReason::PersonRequest.as_str();
    let cancel_hash = tokens::hash_token(token.trim());
    if !store::claim_cancellation(&txn, request.id, reason, cancel_hash, now).await? {
        return Err(ErasureError::InvalidToken);
    }
    if let Some(row) = account::Entity::find_by_id(request.account_id)
        .one(&txn)
        .await?
    {
        // A restored link of an account whose data key is gone cancels
        // nothing.
        if !is_readable_in(state, &txn, &row).await? {
            return Err(ErasureError::InvalidToken);
        }
        let mut update = row.into_active_model();
        update.status = Set(AccountStatus::Active.into());
        update.updated_at = Set(now);
        update.update(&txn).await?;
    }
    let cancelled = store::find(&txn, request.id)
        .await?
        .ok_or(ErasureError::InvalidToken)?;
    txn.commit().await?;
    // The account may be active again.
    state.session_cache().forget_account(cancelled.account_id);
    tracing::info!(account_id = %cancelled.account_id, request_id = %cancelled.id, "deletion cancelled");
    Ok(cancelled)
}

/// Schedules erasure at once, without a grace window or a way to cancel
/// (a guardian refused or never answered).
/// Idempotent: an open request is turned into an immediate one.
pub async fn schedule_immediately<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    reason: ErasureReason,
    now: DateTime<Utc>,
) -> Result<deletion_request::Model, ErasureError> {
    if stop_processing(conn, account_id, now).await?.is_none() {
        return Err(ErasureError::NotFound);
    }
    let open = open_request(conn, account_id).await?;
    let request = store::schedule(conn, open, account_id, reason.as_str(), now, now).await?;
    tracing::info!(account_id = %account_id, request_id = %request.id, reason = reason.as_str(), "erasure scheduled at once");
    Ok(request)
}
