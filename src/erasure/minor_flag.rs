//! Staff flags on accounts found to belong to a minor without verifiable
//! guardian consent, and an admin lifting a mistaken one.
//!
//! Rules:
//! - SUPPORT or ADMIN may flag any USER account, whatever age it declared
//!   (a minor may have declared an adult age); a staff account (SUPPORT or
//!   ADMIN) never, so one agent cannot erase a colleague or the last admin.
//!   That refusal is `BAD_USER_INPUT` on `accountId`: the request is wrong
//!   whoever makes it.
//! - A flag needs a reason, kept as an audit note beside the trail (the
//!   chain holds its hash; the purge erases it with the account).
//! - A flag stops processing at once (sessions end, sign-in is refused, the
//!   session cache forgets the account) and schedules erasure after the
//!   normal working-day window, not at once: a mistake can still be undone.
//!   It takes over an open deletion request (the person's cancel link stops
//!   working; the earlier of the two dates stands). An account already
//!   being erased for a guardian's refusal or silence stays as it is.
//! - Until the purge, an ADMIN may lift the flag, with a reason: the
//!   request is cancelled and the account is active again (its sessions
//!   stay ended). The lift is claimed by a conditional update, so it cannot
//!   cancel a request the purge has just completed.
//! - The account's address and the guardian's, if any, are told of the
//!   flag (what happens, when, how to contest it) and of a lift, through
//!   the outbox in the account's language.
//! - Both are audit-logged (`minor.flag`, `minor.lift`) in their
//!   transaction.

use chrono::{DateTime, Utc};
use entity::{account, deletion_request};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};
use uuid::Uuid;

use super::{
    service::{
        ErasureError, ErasureReason, local_time, open_request, purge_deadline, stop_processing,
    },
    store::{self, RequestStatus},
    templates,
};
use crate::{
    accounts::{
        AccountStatus, Role,
        service::{AccountRecord, open_guardian_in, open_in},
    },
    audit::service::{self as audit, AuditRecord},
    mail::{
        RenderedMail,
        outbox::{self, OutgoingMail},
    },
    state::AppState,
};

/// The audit action of a flag.
pub const FLAG_ACTION: &str = "minor.flag";
/// The audit action of a lift.
pub const LIFT_ACTION: &str = "minor.lift";
/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Stores a flag's or a lift's reason as an audit note about the account
/// (sealed under its data key, erased with it) and answers the detail
/// fragment the chain holds instead of the text.
async fn reason_note<C: sea_orm::ConnectionTrait>(
    state: &AppState,
    txn: &C,
    account_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<String, ErasureError> {
    use crate::audit::notes::{self, NoteSubject};
    notes::seal(state, txn, NoteSubject::Account(account_id), reason, now)
        .await
        .map_err(ErasureError::from)
}

/// A reason with its blanks trimmed, refused when missing, blank or long.
fn checked_reason(reason: Option<&str>) -> Result<String, ErasureError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ErasureError::Invalid("reason"));
    }
    Ok(reason.to_owned())
}

/// The USER account `account_id`: `NotFound` if there is none,
/// `StaffAccount` if it belongs to staff.
async fn user_account<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<account::Model, ErasureError> {
    let row = account::Entity::find_by_id(account_id)
        .one(conn)
        .await?
        .ok_or(ErasureError::NotFound)?;
    // Anything but a plain USER is treated as staff.
    if row.role != Role::User.as_str() {
        return Err(ErasureError::StaffAccount);
    }
    Ok(row)
}

/// Staff flag `account_id` as a minor without verifiable guardian
/// consent: processing stops and erasure is scheduled after the window
/// (see the module's rules).
pub async fn flag(
    state: &AppState,
    staff_id: Uuid,
    account_id: Uuid,
    reason: Option<&str>,
) -> Result<deletion_request::Model, ErasureError> {
    let reason = checked_reason(reason)?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = user_account(&txn, account_id).await?;
    let request = match open_request(&txn, account_id).await? {
        Some(open)
            if RequestStatus::Scheduled.is(&open.status)
                && open.reason != ErasureReason::PersonRequest.as_str() =>
        {
            // Already flagged, or erased for the guardian: nothing to add.
            open
        }
        open => {
            stop_processing(&txn, account_id, now).await?;
            schedule_flagged(&txn, open, account_id, purge_deadline(state, now), now).await?
        }
    };
    let purge_after = request.purge_after.unwrap_or(now);
    // The reason is staff free text about the person: kept beside the
    // chain under their data key, erased with them.
    let note = reason_note(state, &txn, account_id, &reason, now).await?;
    audit::append(
        &txn,
        AuditRecord {
            actor_id: Some(staff_id),
            action: FLAG_ACTION,
            subject_id: Some(account_id),
            detail: format!(
                "request={} purge_after={} {note}",
                request.id,
                purge_after.to_rfc3339()
            ),
        },
        now,
    )
    .await?;
    let (person, recipients) = recipients(state, &txn, &row).await?;
    let content = templates::minor_flagged(
        person.language,
        &person.username,
        &local_time(state, purge_after),
    );
    tell(
        state,
        &txn,
        row.id,
        &recipients,
        "minor_flagged",
        content,
        now,
    )
    .await?;
    txn.commit().await?;
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, staff_id = %staff_id, request_id = %request.id, purge_after = %purge_after, "minor flagged");
    Ok(request)
}

/// Turns the open request (or a new one) into a flagged one, due at
/// `deadline` or at the open request's own earlier date.
async fn schedule_flagged<C: ConnectionTrait>(
    conn: &C,
    open: Option<deletion_request::Model>,
    account_id: Uuid,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<deletion_request::Model, sea_orm::DbErr> {
    let purge_after = match &open {
        Some(open) => match open.purge_after {
            Some(earlier) if RequestStatus::Scheduled.is(&open.status) => earlier.min(deadline),
            _ => deadline,
        },
        None => deadline,
    };
    let reason = ErasureReason::MinorFlagged.as_str();
    store::schedule(conn, open, account_id, reason, purge_after, now).await
}

/// An ADMIN lifts a mistaken flag before the purge: the request is
/// cancelled and the account active again (see the module's rules).
pub async fn lift(
    state: &AppState,
    admin_id: Uuid,
    account_id: Uuid,
    reason: Option<&str>,
) -> Result<deletion_request::Model, ErasureError> {
    let reason = checked_reason(reason)?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = account::Entity::find_by_id(account_id)
        .one(&txn)
        .await?
        .ok_or(ErasureError::NotFound)?;
    let request = open_request(&txn, account_id)
        .await?
        .filter(|open| {
            RequestStatus::Scheduled.is(&open.status)
                && open.reason == ErasureReason::MinorFlagged.as_str()
        })
        .ok_or(ErasureError::NotFlagged)?;
    // Claimed by a conditional update: a purge that completed the request
    // meanwhile leaves nothing to lift.
    if !store::cancel_scheduled(&txn, request.id, now).await? {
        return Err(ErasureError::NotFlagged);
    }
    let mut restored = row.clone().into_active_model();
    restored.status = Set(AccountStatus::Active.into());
    restored.updated_at = Set(now);
    restored.update(&txn).await?;
    let note = reason_note(state, &txn, account_id, &reason, now).await?;
    audit::append(
        &txn,
        AuditRecord {
            actor_id: Some(admin_id),
            action: LIFT_ACTION,
            subject_id: Some(account_id),
            detail: format!("request={} {note}", request.id),
        },
        now,
    )
    .await?;
    let (person, recipients) = recipients(state, &txn, &row).await?;
    let content = templates::minor_flag_lifted(person.language, &person.username);
    tell(
        state,
        &txn,
        row.id,
        &recipients,
        "minor_flag_lifted",
        content,
        now,
    )
    .await?;
    let lifted = store::find(&txn, request.id)
        .await?
        .ok_or(ErasureError::NotFlagged)?;
    txn.commit().await?;
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, admin_id = %admin_id, request_id = %request.id, "minor flag lifted");
    Ok(lifted)
}

/// The account decrypted, and who is told about it: its address, then
/// its guardian's if it has one.
async fn recipients<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account::Model,
) -> Result<(AccountRecord, Vec<String>), ErasureError> {
    let person = open_in(state, conn, row).await?;
    let guardian = open_guardian_in(state, conn, row).await?;
    let recipients = std::iter::once(person.email.clone())
        .chain(guardian)
        .collect();
    Ok((person, recipients))
}

/// Queues `content` to each of `recipients`, as mail about the account
/// (under its key, found and erased with it).
async fn tell<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    account_id: Uuid,
    recipients: &[String],
    kind: &'static str,
    content: RenderedMail,
    now: DateTime<Utc>,
) -> Result<(), ErasureError> {
    for to in recipients {
        outbox::queue(
            state,
            conn,
            OutgoingMail::to_account(account_id, kind, to, content.clone()),
            now,
        )
        .await?;
    }
    Ok(())
}
