//! The outbox queue: the `outbox` table and everything written to or read
//! from it. Mail is queued here with the change that causes it; the sender
//! ([`super::sender`]) claims rows, opens them, and records what became of
//! each through the functions of this module.
//!
//! Rules:
//! - [`enqueue`] runs on the caller's connection, normally its open
//!   transaction: if the change rolls back, so does the mail; if it commits,
//!   the mail will be sent even if the process dies a moment later.
//! - Recipient, subject and bodies are encrypted, bound to table `outbox`,
//!   their column and the row id; the recipient also gets the `email` blind
//!   index so erasure can find mail to an address. Only the sender opens a
//!   row ([`open`]), one at a time, right before handing it to the
//!   transport.
//! - Rows are claimed ([`claim`]) for [`CLAIM_DURATION`] in one statement
//!   that uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several instances
//!   never send one row at the same time. The claim itself is a conditional
//!   update, so it also holds where SKIP LOCKED does not exist; on SQLite one
//!   process owns the jobs anyway. A crashed sender's claim simply runs out
//!   and the row is taken again.
//! - Mail is never deleted here, except the kinds in
//!   [`FORGOTTEN_AFTER_DELIVERY`] once they are final.

use std::{fmt, future::Future, sync::Arc};

use chrono::{DateTime, TimeDelta, Utc};
use entity::outbox;
use lettre::Address;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Expr, LockBehavior, LockType},
};
use uuid::Uuid;

use super::{MailError, RenderedMail, templates::DraftBody};
use crate::crypto::{
    AccountKey, BlindIndex, CryptoError, FieldCipher, SealedField, Sealer, normalise_email,
};
use crate::db::Writes;

crate::db::stored_enum! {
    /// Where an outbox row stands (`outbox.status`).
    OutboxStatus {
        /// Waiting to be sent (or retried).
        Pending => "PENDING",
        /// The relay accepted it.
        Sent => "SENT",
        /// Given up on.
        Failed => "FAILED",
    }
}

/// Kinds of mail whose row is deleted once it is sent or given up: the
/// final notice to an erased person must leave no copy of the address.
pub const FORGOTTEN_AFTER_DELIVERY: &[&str] = &["erasure_receipt"];

/// `outbox.recipient_ct`.
const RECIPIENT: SealedField = SealedField::new("outbox", "recipient");
/// `outbox.subject_ct`.
const SUBJECT: SealedField = SealedField::new("outbox", "subject");
/// `outbox.body_text_ct`: the plain text, or the draft.
const BODY_TEXT: SealedField = SealedField::new("outbox", "body_text");
/// `outbox.body_html_ct`.
const BODY_HTML: SealedField = SealedField::new("outbox", "body_html");
/// `body_format` of a row whose bodies are stored as sent.
pub const BODY_RENDERED: &str = "rendered";
/// `body_format` of a row that stores the mail's draft in `body_text_ct`.
pub const BODY_DRAFT: &str = "draft";
/// The blind-index field shared with account emails, so one lookup finds an
/// address's account and its mail.
pub const BLIND_INDEX_FIELD: &str = "email";

/// How long a claim keeps other senders away; far longer than one send
/// should take, short enough that a crashed sender delays mail only a little.
pub const CLAIM_DURATION: TimeDelta = TimeDelta::minutes(5);
/// `outbox.last_error` holds at most this many characters.
const LAST_ERROR_MAX_CHARS: usize = 200;

/// What queueing a mail needs from the running service: the keys that seal
/// it, and a way to wake this instance's sender. The service state provides
/// it; the queue sees nothing else of it.
pub trait MailQueue {
    /// The cipher that seals outbox fields.
    fn field_cipher(&self) -> &FieldCipher;

    /// The blind index written beside the recipient (the active key).
    fn recipient_index(&self) -> &BlindIndex;

    /// The data key of `account`, made with `conn` (the transaction that
    /// queues the mail) when the account has none yet.
    fn account_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        account: Uuid,
    ) -> impl Future<Output = Result<Arc<AccountKey>, CryptoError>> + Send;

    /// Tells this instance's sender that mail was queued, so it goes out
    /// now instead of at the next scheduler tick.
    fn wake_sender(&self);
}

/// A mail to queue: who it is for, what it is, and its rendered content.
pub struct OutgoingMail {
    /// The account the mail concerns, if any, so export and erasure find it.
    pub account_id: Option<Uuid>,
    /// What kind of mail this is, e.g. `verify_email`; stored and logged in
    /// clear, so never personal.
    pub kind: &'static str,
    /// The recipient's address, as the person gave it.
    pub to: String,
    /// Subject and bodies.
    pub content: RenderedMail,
}

impl OutgoingMail {
    /// A mail about the account `account_id`, to `to` (its address, or its
    /// guardian's).
    pub fn to_account(
        account_id: Uuid,
        kind: &'static str,
        to: &str,
        content: RenderedMail,
    ) -> Self {
        Self {
            account_id: Some(account_id),
            kind,
            to: to.to_owned(),
            content,
        }
    }
}

impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("account_id", &self.account_id)
            .field("kind", &self.kind)
            .field("to", &"<redacted>")
            .field("content", &"<redacted>")
            .finish()
    }
}

/// Queues a mail on `conn` (pass the open transaction of the change that
/// causes the mail) and returns the outbox row id. `now` is when it becomes
/// due; nothing is sent here.
///
/// Refuses an address lettre cannot send to with [`MailError::Address`], so
/// the caller can still roll back instead of queueing undeliverable mail.
/// `key` is the data key of the account the mail is for (`None` for mail
/// to people without an account, which the keyring encrypts).
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    cipher: &FieldCipher,
    key: Option<&AccountKey>,
    blind: &BlindIndex,
    mail: OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    let sealed = seal(cipher, key, blind, &mail, now)?;
    let id = sealed.id;
    outbox::Entity::insert(sealed.row)
        .exec_without_returning(conn)
        .await?;
    tracing::debug!(outbox_id = %id, kind = mail.kind, "mail queued");
    Ok(id)
}

/// How domain code queues a mail: [`enqueue`] with the service's keys, on
/// `conn` (the transaction of the change that causes it), then a wake-up
/// of this instance's sender, which sends it once that commits instead
/// of at the next scheduler tick.
pub async fn queue<Q: MailQueue + ?Sized, C: ConnectionTrait>(
    keys: &Q,
    conn: &C,
    mail: OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    // Mail for an account is personal data of that account: under its key.
    let key = match mail.account_id {
        Some(account) => Some(keys.account_key(conn, account).await?),
        None => None,
    };
    queue_under(keys, conn, key.as_deref(), mail, now).await
}

/// [`queue`] for a caller that holds the key already (`key` must be the
/// data key of `mail.account_id`; `None` only for mail to no account).
pub async fn queue_under<Q: MailQueue + ?Sized, C: ConnectionTrait>(
    keys: &Q,
    conn: &C,
    key: Option<&AccountKey>,
    mail: OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    let id = enqueue(
        conn,
        keys.field_cipher(),
        key,
        keys.recipient_index(),
        mail,
        now,
    )
    .await?;
    keys.wake_sender();
    Ok(id)
}

/// [`queue_under`] as one of `writes`, for mail caused by writes still to
/// run (a new account's verification link). Its caller wakes the sender
/// ([`MailQueue::wake_sender`]) once they have run.
pub fn queue_in<Q: MailQueue + ?Sized>(
    keys: &Q,
    writes: &mut Writes,
    key: Option<&AccountKey>,
    mail: &OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    let sealed = seal(keys.field_cipher(), key, keys.recipient_index(), mail, now)?;
    writes.push(outbox::Entity::insert(sealed.row).into_query());
    tracing::debug!(outbox_id = %sealed.id, kind = mail.kind, "mail to queue");
    Ok(sealed.id)
}

/// A mail encrypted for the outbox but not yet written. Sealing is the
/// CPU-bound half of [`enqueue`]; fan-outs to many people seal each mail
/// and write them in chunks with [`enqueue_sealed`], one statement each.
pub struct SealedMail {
    /// The outbox row id the mail will have.
    pub id: Uuid,
    row: outbox::ActiveModel,
}

impl fmt::Debug for SealedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedMail")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The bodies of a sealed row: `body_format`, `body_text_ct`, `body_html_ct`.
type SealedBodies = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// Encrypts a mail into an outbox row due at `now`, without writing it.
/// Refuses an address lettre cannot send to with [`MailError::Address`].
pub fn seal(
    cipher: &FieldCipher,
    key: Option<&AccountKey>,
    blind: &BlindIndex,
    mail: &OutgoingMail,
    now: DateTime<Utc>,
) -> Result<SealedMail, MailError> {
    let to = mail.to.trim();
    to.parse::<Address>().map_err(|_| MailError::Address)?;

    let id = Uuid::new_v4();
    let sealer = Sealer::with_active_index(cipher, blind).under(key);
    let seal = |field: SealedField, value: &str| sealer.seal(field.at(id), value);
    let (body_format, body_text_ct, body_html_ct) = seal_bodies(&mail.content, seal)?;
    let row = outbox::ActiveModel {
        id: Set(id),
        account_id: Set(mail.account_id),
        kind: Set(mail.kind.to_owned()),
        recipient_ct: Set(seal(RECIPIENT, to)?),
        recipient_bidx: Set(sealer.index(BLIND_INDEX_FIELD, &normalise_email(to))),
        subject_ct: Set(seal(SUBJECT, &mail.content.subject)?),
        body_text_ct: Set(body_text_ct),
        body_html_ct: Set(body_html_ct),
        body_format: Set(body_format.to_owned()),
        status: Set(OutboxStatus::Pending.into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    };
    Ok(SealedMail { id, row })
}

/// Seals the bodies of `content` with `seal`. A mail written from a draft
/// is stored as the draft: a third of the bytes of its two renderings; the
/// sender renders it again.
fn seal_bodies(
    content: &RenderedMail,
    seal: impl Fn(SealedField, &str) -> Result<Vec<u8>, CryptoError>,
) -> Result<SealedBodies, MailError> {
    if let Some(draft) = &content.draft {
        let stored = draft
            .to_json()
            .map_err(|_| MailError::Message("draft encoding"))?;
        return Ok((BODY_DRAFT, seal(BODY_TEXT, &stored)?, None));
    }
    let html = match content.html.as_deref() {
        Some(html) => Some(seal(BODY_HTML, html)?),
        None => None,
    };
    Ok((BODY_RENDERED, seal(BODY_TEXT, &content.text)?, html))
}

/// Writes sealed mails on `conn` in one multi-row INSERT (pass the open
/// transaction of the change that causes them) and returns how many were
/// queued. Keep chunks to about a thousand rows: every row binds fifteen
/// parameters, and SQLite and PostgreSQL cap a statement at 32,766 and
/// 65,535 of them.
pub async fn enqueue_sealed<C: ConnectionTrait>(
    conn: &C,
    mails: Vec<SealedMail>,
) -> Result<u64, MailError> {
    let count = mails.len() as u64;
    if count == 0 {
        return Ok(0);
    }
    outbox::Entity::insert_many(mails.into_iter().map(|m| m.row))
        .exec_without_returning(conn)
        .await?;
    tracing::debug!(count, "mails queued");
    Ok(count)
}

/// How many mails wait to be sent (pending, due or not), for metrics and
/// tests.
pub async fn pending_count<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    count_with_status(db, OutboxStatus::Pending).await
}

/// How many mails were given up on, for metrics.
pub async fn failed_count<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    count_with_status(db, OutboxStatus::Failed).await
}

async fn count_with_status<C: ConnectionTrait>(db: &C, status: OutboxStatus) -> Result<u64, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(status))
        .count(db)
        .await
}

/// How many mails of `kind` about the account were queued since `since`,
/// whatever became of them: a cap on requests that always mail counts its
/// requests with this (rows are kept after sending; `idx_outbox_account`
/// finds them).
pub async fn queued_since<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    kind: &str,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::AccountId.eq(account_id))
        .filter(outbox::Column::Kind.eq(kind))
        .filter(outbox::Column::CreatedAt.gt(since))
        .count(conn)
        .await
}

/// Takes up to `batch` due, unclaimed rows, oldest due first, for
/// [`CLAIM_DURATION`] from `now`, in one statement that commits the claim
/// before anything is sent: `UPDATE … WHERE id IN (the due ids) RETURNING`
/// the rows.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    let claimable = || {
        Condition::all()
            .add(outbox::Column::Status.eq(OutboxStatus::Pending))
            .add(outbox::Column::NextAttemptAt.lte(now))
            .add(
                Condition::any()
                    .add(outbox::Column::ClaimedUntil.is_null())
                    .add(outbox::Column::ClaimedUntil.lt(now)),
            )
    };
    let mut due = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(claimable())
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::CreatedAt)
        .limit(batch);
    if db.get_database_backend() == DbBackend::Postgres {
        // Rows another instance is claiming right now are skipped, not
        // waited for and not taken twice.
        due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let until: Option<DateTime<Utc>> = Some(now + CLAIM_DURATION);
    let mut claimed = outbox::Entity::update_many()
        .col_expr(outbox::Column::ClaimedUntil, Expr::value(until))
        .filter(outbox::Column::Id.in_subquery(due.into_query()))
        // Checked again on the row being updated: a row another sender
        // claimed since the subquery read it is left alone (SQLite has
        // no row locks; PostgreSQL re-reads the row it waited for).
        .filter(claimable())
        .exec_with_returning(db)
        .await?;
    // RETURNING keeps no order.
    claimed.sort_by_key(|row| (row.next_attempt_at, row.created_at));
    Ok(claimed)
}

/// An outbox row decrypted for sending.
pub struct OpenedMail {
    /// The recipient's address, as stored.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The bodies, as stored.
    pub body: OpenedBody,
}

impl fmt::Debug for OpenedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedMail").finish_non_exhaustive()
    }
}

/// The bodies of an opened row.
pub enum OpenedBody {
    /// Stored as sent: the plain text and, when there is one, the HTML.
    Rendered {
        /// The plain-text body.
        text: String,
        /// The HTML alternative.
        html: Option<String>,
    },
    /// The mail's draft, as JSON, to be rendered again.
    Draft(String),
}

impl OpenedBody {
    /// The plain-text and HTML bodies to send: a draft rendered under
    /// `subject`, or the stored bodies. `None` when a draft does not read.
    pub fn into_parts(self, subject: String) -> Option<(String, Option<String>)> {
        match self {
            OpenedBody::Rendered { text, html } => Some((text, html)),
            OpenedBody::Draft(stored) => {
                let rendered = DraftBody::from_json(&stored).ok()?.render(subject);
                Some((rendered.text, rendered.html))
            }
        }
    }
}

/// Decrypts one row; `key` is the data key of its account when the row is
/// under one.
pub fn open(
    cipher: &FieldCipher,
    key: Option<&AccountKey>,
    row: &outbox::Model,
) -> Result<OpenedMail, CryptoError> {
    let open = |field: SealedField, stored: &[u8]| {
        cipher.decrypt_str_under(key, &field.at(row.id), stored)
    };
    let to = open(RECIPIENT, &row.recipient_ct)?;
    let subject = open(SUBJECT, &row.subject_ct)?;
    let text = open(BODY_TEXT, &row.body_text_ct)?;
    let body = if row.body_format == BODY_DRAFT {
        OpenedBody::Draft(text)
    } else {
        let html = match &row.body_html_ct {
            Some(stored) => Some(open(BODY_HTML, stored)?),
            None => None,
        };
        OpenedBody::Rendered { text, html }
    };
    Ok(OpenedMail { to, subject, body })
}

/// Every mail about `account_id`, oldest first, for the account's data
/// export.
pub async fn of_account<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::AccountId.eq(account_id))
        .order_by_asc(outbox::Column::CreatedAt)
        .all(conn)
        .await
}

/// The subject of one row, for the account's data export.
pub fn open_subject(
    cipher: &FieldCipher,
    key: Option<&AccountKey>,
    row: &outbox::Model,
) -> Result<String, CryptoError> {
    cipher.decrypt_str_under(key, &SUBJECT.at(row.id), &row.subject_ct)
}

/// Records that the relay accepted row `id` at `now`, on its `attempts`-th
/// attempt. Unconditional: the relay has it, whatever happened to the
/// claim meanwhile.
pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    attempts: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Sent))
        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(outbox::Column::SentAt, Expr::value(Some(now)))
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(outbox::Column::LastError, Expr::value(None::<String>))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// What to do with a row whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again, not before this instant.
    RetryAt(DateTime<Utc>),
    /// Give it up: the row becomes [`OutboxStatus::Failed`].
    GiveUp,
}

/// Records a failed attempt of row `id` (its `attempts`-th), with the
/// failure's class (never personal; cut to 200 characters), and releases
/// the claim. Only while the row is still pending: if the claim ran out and
/// another sender delivered it, that stands.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    attempts: i32,
    class: &str,
    then: AfterFailure,
) -> Result<(), DbErr> {
    let last_error: String = class.chars().take(LAST_ERROR_MAX_CHARS).collect();
    let update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(outbox::Column::LastError, Expr::value(Some(last_error)))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending));
    let update = match then {
        AfterFailure::RetryAt(retry_at) => {
            update.col_expr(outbox::Column::NextAttemptAt, Expr::value(retry_at))
        }
        AfterFailure::GiveUp => {
            update.col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Failed))
        }
    };
    update.exec(db).await?;
    Ok(())
}

/// Whether a row of `kind` is deleted once it is final (see
/// [`FORGOTTEN_AFTER_DELIVERY`]).
pub fn forgotten_when_final(kind: &str) -> bool {
    FORGOTTEN_AFTER_DELIVERY.contains(&kind)
}

/// Deletes row `id`.
pub async fn forget<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), DbErr> {
    outbox::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_as_before() {
        for (status, stored) in [
            (OutboxStatus::Pending, "PENDING"),
            (OutboxStatus::Sent, "SENT"),
            (OutboxStatus::Failed, "FAILED"),
        ] {
            assert_eq!(status.as_str(), stored);
            assert_eq!(OutboxStatus::parse(stored), Some(status));
            assert_eq!(String::from(status), stored);
            assert_eq!(sea_orm::Value::from(status), sea_orm::Value::from(stored));
        }
        assert_eq!(OutboxStatus::parse("pending"), None);
    }
}
