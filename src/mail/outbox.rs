//! The outbox: mail is queued in the database with the change that causes it
//! and sent later, with retries, by [`OutboxSender`].
//!
//! Rules:
//! - [`enqueue`] runs on the caller's connection, normally its open
//!   transaction: if the change rolls back, so does the mail; if it commits,
//!   the mail will be sent even if the process dies a moment later.
//! - Recipient, subject and bodies are encrypted, bound to table `outbox`,
//!   their column and the row id; the recipient also gets the `email` blind
//!   index so erasure can find mail to an address. Only the sender decrypts,
//!   one row at a time, right before handing it to the transport.
//! - Sending claims rows first (`claimed_until`, five minutes), in a short
//!   transaction that uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
//!   instances never send one row at the same time. The claim itself is a
//!   conditional update, so it also holds where SKIP LOCKED does not exist;
//!   on SQLite one process owns the jobs anyway. A crashed sender's claim
//!   simply runs out and the row is taken again.
//! - Nothing is sent inside a transaction: a slow relay must not hold locks.
//! - A transient failure retries after [`backoff`] (30 s doubling, at most an
//!   hour); a permanent one, or the last allowed attempt, marks the row
//!   `FAILED`. Mail is never deleted here.
//! - A database outage is not a failed attempt: the sender waits it out,
//!   well inside its claim, both to record what it sent and to read an
//!   account's key kept in that database, then goes on with its batch.
//! - The Message-ID is `<{row id}@custos>`, so if a crash after a successful
//!   send causes a second send, the copies are recognisably the same mail.
//! - Logs carry outbox ids, kinds and failure classes; never an address, a
//!   subject or a body.

use std::{fmt, sync::Arc, time::SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use entity::outbox;
use lettre::{
    Address, Message,
    message::{Mailbox, MultiPart, SinglePart},
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Expr, LockBehavior, LockType},
};
use uuid::Uuid;

use super::{
    MailError, RenderedMail,
    templates::DraftBody,
    transport::{MailTransport, SendFailure},
};
use crate::{
    clock::Clock,
    crypto::{
        AccountKey, BlindIndex, CryptoError, FieldCipher, FieldContext,
        fields::is_under_account_key, normalise_email,
    },
    keystore::KeyStore,
};

/// `outbox.status` of mail waiting to be sent (or retried).
pub const STATUS_PENDING: &str = "PENDING";
/// `outbox.status` of mail the relay accepted.
pub const STATUS_SENT: &str = "SENT";
/// `outbox.status` of mail given up on.
pub const STATUS_FAILED: &str = "FAILED";

/// Kinds of mail whose row is deleted once it is sent or given up: the
/// final notice to an erased person must leave no copy of the address.
pub const FORGOTTEN_AFTER_DELIVERY: &[&str] = &["erasure_receipt"];

/// The table name bound into every ciphertext of this module.
const TABLE: &str = "outbox";
const COLUMN_RECIPIENT: &str = "recipient";
const COLUMN_SUBJECT: &str = "subject";
const COLUMN_BODY_TEXT: &str = "body_text";
const COLUMN_BODY_HTML: &str = "body_html";
/// `body_format` of a row whose bodies are stored as sent.
pub const BODY_RENDERED: &str = "rendered";
/// `body_format` of a row that stores the mail's draft in `body_text_ct`.
pub const BODY_DRAFT: &str = "draft";
/// The blind-index field shared with account emails, so one lookup finds an
/// address's account and its mail.
pub const BLIND_INDEX_FIELD: &str = "email";

/// How long a claim keeps other senders away; far longer than one send
/// should take, short enough that a crashed sender delays mail only a little.
const CLAIM_DURATION: TimeDelta = TimeDelta::minutes(5);
/// How long a sender keeps retrying the write that records a sent mail;
/// shorter than [`CLAIM_DURATION`] by a margin.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(4 * 60);
/// The first retry delay; each further failure doubles it.
const FIRST_RETRY_SECONDS: i64 = 30;
/// The longest retry delay, so mail moves within the hour after an outage.
const MAX_RETRY_SECONDS: i64 = 60 * 60;
/// `outbox.last_error` holds at most this many characters.
const LAST_ERROR_MAX_CHARS: usize = 200;

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

/// How domain code queues a mail: [`enqueue`] with the state's keys, on
/// `conn` (the transaction of the change that causes it), then a wake-up
/// of this instance's outbox job, which sends it once that commits instead
/// of at the next scheduler tick.
pub async fn queue<C: ConnectionTrait>(
    state: &crate::state::AppState,
    conn: &C,
    mail: OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    // Mail for an account is personal data of that account: under its key.
    let key = match mail.account_id {
        Some(account) => Some(state.write_key(conn, account).await?),
        None => None,
    };
    queue_under(state, conn, key.as_deref(), mail, now).await
}

/// [`queue`] for a caller that holds the key already (`key` must be the
/// data key of `mail.account_id`; `None` only for mail to no account).
pub async fn queue_under<C: ConnectionTrait>(
    state: &crate::state::AppState,
    conn: &C,
    key: Option<&AccountKey>,
    mail: OutgoingMail,
    now: DateTime<Utc>,
) -> Result<Uuid, MailError> {
    let id = enqueue(conn, state.cipher(), key, state.blind().active(), mail, now).await?;
    state.mail_queued();
    Ok(id)
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
    let seal = |column: &'static str, value: &str| {
        cipher.encrypt_str_under(
            key,
            &FieldContext {
                table: TABLE,
                column,
                row_id: id,
            },
            value,
        )
    };
    // A mail written from a draft is stored as the draft: a third of the
    // bytes of its two renderings; the sender renders it again.
    let (body_format, body_text_ct, body_html_ct) = match &mail.content.draft {
        Some(draft) => {
            let stored = draft
                .to_json()
                .map_err(|_| MailError::Message("draft encoding"))?;
            (BODY_DRAFT, seal(COLUMN_BODY_TEXT, &stored)?, None)
        }
        None => {
            let html = match mail.content.html.as_deref() {
                Some(html) => Some(seal(COLUMN_BODY_HTML, html)?),
                None => None,
            };
            (
                BODY_RENDERED,
                seal(COLUMN_BODY_TEXT, &mail.content.text)?,
                html,
            )
        }
    };
    let row = outbox::ActiveModel {
        id: Set(id),
        account_id: Set(mail.account_id),
        kind: Set(mail.kind.to_owned()),
        recipient_ct: Set(seal(COLUMN_RECIPIENT, to)?),
        recipient_bidx: Set(blind.compute(BLIND_INDEX_FIELD, &normalise_email(to))),
        subject_ct: Set(seal(COLUMN_SUBJECT, &mail.content.subject)?),
        body_text_ct: Set(body_text_ct),
        body_html_ct: Set(body_html_ct),
        body_format: Set(body_format.to_owned()),
        status: Set(STATUS_PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    };
    Ok(SealedMail { id, row })
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
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(STATUS_PENDING))
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

/// The wait before the next attempt, given how many attempts have failed so
/// far: 30 s after the first, doubling each time, never more than an hour.
pub fn backoff(failed_attempts: u32) -> TimeDelta {
    // 30 s << 7 is already past the cap; bounding the shift keeps it exact.
    let doublings = failed_attempts.saturating_sub(1).min(7);
    let seconds = (FIRST_RETRY_SECONDS << doublings).min(MAX_RETRY_SECONDS);
    TimeDelta::seconds(seconds)
}

/// What one [`OutboxSender::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Mails the transport accepted.
    pub sent: u64,
    /// Mails that failed transiently and wait for another attempt.
    pub retried: u64,
    /// Mails given up on: a permanent failure or the last allowed attempt.
    pub failed: u64,
}

/// Sends due outbox mail: the body of the outbox job.
#[derive(Clone)]
pub struct OutboxSender {
    db: DatabaseConnection,
    cipher: Arc<FieldCipher>,
    keys: Arc<KeyStore>,
    transport: MailTransport,
    from: Mailbox,
    clock: Clock,
    batch: u64,
    max_attempts: u32,
}

impl fmt::Debug for OutboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxSender")
            .field("transport", &self.transport)
            .field("batch", &self.batch)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, before it is written back.
enum Outcome {
    Sent,
    Failed(SendFailure),
}

impl OutboxSender {
    /// A sender that claims up to `batch` due mails per run, sends them from
    /// `from` through `transport`, and gives a mail up after `max_attempts`
    /// attempts (at least one is always made).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: DatabaseConnection,
        cipher: Arc<FieldCipher>,
        keys: Arc<KeyStore>,
        transport: MailTransport,
        from: Mailbox,
        clock: Clock,
        batch: u64,
        max_attempts: u32,
    ) -> Self {
        Self {
            db,
            cipher,
            keys,
            transport,
            from,
            clock,
            batch,
            max_attempts,
        }
    }

    /// Claims due mail, sends each outside any transaction, and records the
    /// outcome of each. An error means the database failed; mails already
    /// claimed but not yet recorded are taken again when their claim runs
    /// out.
    #[tracing::instrument(name = "outbox_run", skip_all)]
    pub async fn run_once(&self) -> Result<SendReport, MailError> {
        let claimed = self.claim().await?;
        let mut report = SendReport::default();
        for row in claimed {
            let outcome = match self.account_key(&row).await {
                Ok(key) => self.build_message(&row, key.as_deref()),
                Err(failure) => Err(failure),
            };
            let outcome = match outcome {
                Ok(message) => match self.transport.send(message).await {
                    Ok(()) => Outcome::Sent,
                    Err(failure) => Outcome::Failed(failure),
                },
                Err(failure) => Outcome::Failed(failure),
            };
            self.record(&row, outcome, &mut report).await?;
        }
        Ok(report)
    }

    /// Takes up to `batch` due, unclaimed rows for this sender, oldest due
    /// first, in one statement that commits the claim before anything is
    /// sent: `UPDATE … WHERE id IN (the due ids) RETURNING` the rows.
    async fn claim(&self) -> Result<Vec<outbox::Model>, DbErr> {
        let now = self.clock.now();
        let claimable = || {
            Condition::all()
                .add(outbox::Column::Status.eq(STATUS_PENDING))
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
            .limit(self.batch);
        if self.db.get_database_backend() == DbBackend::Postgres {
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
            .exec_with_returning(&self.db)
            .await?;
        // RETURNING keeps no order.
        claimed.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at).cmp(&(b.next_attempt_at, b.created_at))
        });
        Ok(claimed)
    }

    /// The data key of the account a row is for, when the row is under it.
    /// Keys kept in the main database are read with the patience of the
    /// outbox's own writes: when they do not answer, the database is down,
    /// and the row waits for it rather than being pushed back by a failed
    /// attempt. A separate key store that does not answer is a transient
    /// failure (other mail goes on); a key that is gone (the account was
    /// erased) a permanent one.
    async fn account_key(
        &self,
        row: &outbox::Model,
    ) -> Result<Option<Arc<AccountKey>>, SendFailure> {
        let Some(owner) = row.account_id else {
            return Ok(None);
        };
        if !is_under_account_key(&row.recipient_ct) {
            return Ok(None);
        }
        let in_main_database = self.keys.separate_db().is_none();
        let read = self
            .patiently(
                "key read",
                || self.keys.cached(&self.cipher, &self.db, owner),
                |err| in_main_database && matches!(err, CryptoError::KeyStore(_)),
            )
            .await;
        match read {
            Ok(Some(key)) => Ok(Some(key)),
            Ok(None) => {
                // The account's data key is gone (it was erased, and a
                // restore brought this row back): nobody to send to, and
                // nothing wrong with Custos.
                tracing::warn!(outbox_id = %row.id, account_id = %owner, "mail of an account whose data key is gone; given up");
                Err(SendFailure::permanent("account data key destroyed"))
            }
            Err(CryptoError::KeyStore(err)) => {
                tracing::warn!(outbox_id = %row.id, error = %err, "key store unavailable");
                Err(SendFailure::transient("key store"))
            }
            Err(err) => Err(decrypt_failure(row.id, &err)),
        }
    }

    /// Decrypts one row and assembles the message. Failures are classified
    /// like transport failures, so they count as attempts too.
    fn build_message(
        &self,
        row: &outbox::Model,
        key: Option<&AccountKey>,
    ) -> Result<Message, SendFailure> {
        let open = |column: &'static str, stored: &[u8]| {
            self.cipher
                .decrypt_str_under(
                    key,
                    &FieldContext {
                        table: TABLE,
                        column,
                        row_id: row.id,
                    },
                    stored,
                )
                .map_err(|e| decrypt_failure(row.id, &e))
        };
        let to: Address = open(COLUMN_RECIPIENT, &row.recipient_ct)?
            .parse()
            .map_err(|_| SendFailure::permanent("invalid address"))?;
        let subject = open(COLUMN_SUBJECT, &row.subject_ct)?;
        let (text, html) = if row.body_format == BODY_DRAFT {
            let stored = open(COLUMN_BODY_TEXT, &row.body_text_ct)?;
            let rendered = DraftBody::from_json(&stored)
                .map_err(|_| SendFailure::permanent("draft unreadable"))?
                .render(subject.clone());
            (rendered.text, rendered.html)
        } else {
            let text = open(COLUMN_BODY_TEXT, &row.body_text_ct)?;
            let html = match &row.body_html_ct {
                Some(stored) => Some(open(COLUMN_BODY_HTML, stored)?),
                None => None,
            };
            (text, html)
        };

        let builder = Message::builder()
            .message_id(Some(format!("<{}@custos>", row.id)))
            .date(SystemTime::from(self.clock.now()))
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(subject);
        let built = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            None => builder.singlepart(SinglePart::plain(text)),
        };
        built.map_err(|_| SendFailure::permanent("message build"))
    }

    /// Deletes the row of a mail that must leave no trace once delivered
    /// or given up (see [`FORGOTTEN_AFTER_DELIVERY`]).
    async fn forget_if_final(&self, row: &outbox::Model) -> Result<(), DbErr> {
        if FORGOTTEN_AFTER_DELIVERY.contains(&row.kind.as_str()) {
            // A SENT row is never sent again, so nothing else would delete
            // it: keep trying through an outage.
            self.persist(|| outbox::Entity::delete_by_id(row.id).exec(&self.db))
                .await?;
            tracing::info!(outbox_id = %row.id, kind = %row.kind, "mail row forgotten");
        }
        Ok(())
    }

    /// Runs one write, retrying with back-off while the database fails,
    /// for at most [`RECORD_PATIENCE`] (well inside the claim, so no other
    /// sender takes the row meanwhile). Once the database answers again
    /// the run goes on with the rest of its claimed batch.
    async fn persist<T, F, Fut>(&self, write: F) -> Result<T, DbErr>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, DbErr>>,
    {
        self.patiently("write", write, |_| true).await
    }

    /// Runs `op`, retrying with back-off while it fails with an error
    /// `outage` accepts, for at most [`RECORD_PATIENCE`]. Other errors,
    /// and the last one once patience runs out, are returned.
    async fn patiently<T, E, F, Fut>(
        &self,
        what: &'static str,
        op: F,
        outage: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match op().await {
                Ok(done) => return Ok(done),
                Err(err) if outage(&err) && started.elapsed() + pause < RECORD_PATIENCE => {
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis(), "outbox {what} failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Writes the outcome of one attempt back to its row and counts it.
    async fn record(
        &self,
        row: &outbox::Model,
        outcome: Outcome,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let now = self.clock.now();
        let attempts = row.attempts.saturating_add(1);
        let no_claim: Option<DateTime<Utc>> = None;
        match outcome {
            Outcome::Sent => {
                // Unconditional: the relay has it, whatever happened to the
                // claim meanwhile. Retried through a database outage: a
                // mail that left but stays PENDING would go out again.
                let written = self
                    .persist(|| {
                        outbox::Entity::update_many()
                            .col_expr(outbox::Column::Status, Expr::value(STATUS_SENT))
                            .col_expr(outbox::Column::Attempts, Expr::value(attempts))
                            .col_expr(outbox::Column::SentAt, Expr::value(Some(now)))
                            .col_expr(outbox::Column::ClaimedUntil, Expr::value(no_claim))
                            .col_expr(outbox::Column::LastError, Expr::value(None::<String>))
                            .filter(outbox::Column::Id.eq(row.id))
                            .exec(&self.db)
                    })
                    .await;
                if let Err(err) = written {
                    tracing::error!(
                        outbox_id = %row.id,
                        "mail sent but not recorded; it may be sent again when its claim runs out"
                    );
                    return Err(err);
                }
                report.sent += 1;
                tracing::info!(outbox_id = %row.id, kind = %row.kind, attempts, "mail sent");
                self.forget_if_final(row).await?;
            }
            Outcome::Failed(failure) => {
                let last_error: String = failure.class.chars().take(LAST_ERROR_MAX_CHARS).collect();
                let exhausted = i64::from(attempts) >= i64::from(self.max_attempts);
                let update = outbox::Entity::update_many()
                    .col_expr(outbox::Column::Attempts, Expr::value(attempts))
                    .col_expr(outbox::Column::ClaimedUntil, Expr::value(no_claim))
                    .col_expr(outbox::Column::LastError, Expr::value(Some(last_error)))
                    // Only while still pending: if our claim ran out and
                    // another sender delivered it, that stands.
                    .filter(outbox::Column::Id.eq(row.id))
                    .filter(outbox::Column::Status.eq(STATUS_PENDING));
                if failure.permanent || exhausted {
                    update
                        .col_expr(outbox::Column::Status, Expr::value(STATUS_FAILED))
                        .exec(&self.db)
                        .await?;
                    report.failed += 1;
                    tracing::error!(
                        outbox_id = %row.id,
                        kind = %row.kind,
                        attempts,
                        class = %failure.class,
                        permanent = failure.permanent,
                        "mail given up"
                    );
                    self.forget_if_final(row).await?;
                } else {
                    let retry_at = now + backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
                    update
                        .col_expr(outbox::Column::NextAttemptAt, Expr::value(retry_at))
                        .exec(&self.db)
                        .await?;
                    report.retried += 1;
                    tracing::warn!(
                        outbox_id = %row.id,
                        kind = %row.kind,
                        attempts,
                        class = %failure.class,
                        %retry_at,
                        "mail send failed; will retry"
                    );
                }
            }
        }
        Ok(())
    }
}

/// A key that is missing from the keyring may come back (the operator
/// restores it), so that waits; a ciphertext that does not authenticate
/// never will.
fn decrypt_failure(id: Uuid, error: &CryptoError) -> SendFailure {
    tracing::error!(outbox_id = %id, error = %error, "outbox row cannot be decrypted");
    match error {
        CryptoError::UnknownKeyId(_) => SendFailure::transient("unknown key id"),
        _ => SendFailure::permanent("undecryptable"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, Database, IntoActiveModel, TransactionTrait};

    use super::*;
    use crate::crypto::{EncryptionKey, Keyring};
    use crate::mail::test_smtp::TestSmtp;

    const TO: &str = "Alice.Example@Example.org";
    const SUBJECT: &str = "Secret subject 主题";

    struct Fixture {
        db: DatabaseConnection,
        cipher: Arc<FieldCipher>,
        blind: BlindIndex,
        clock: Clock,
    }

    async fn fixture() -> Fixture {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let keyring = Keyring::new(vec![EncryptionKey::new("t1", [1u8; 32]).unwrap()]).unwrap();
        let start = Utc
            .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .unwrap();
        Fixture {
            db,
            cipher: Arc::new(FieldCipher::new(keyring)),
            blind: BlindIndex::new([7u8; 32]),
            clock: Clock::manual(start),
        }
    }

    fn mail(html: bool) -> OutgoingMail {
        OutgoingMail {
            account_id: Some(Uuid::new_v4()),
            kind: "verify_email",
            to: TO.into(),
            content: RenderedMail {
                subject: SUBJECT.into(),
                text: "Your token is tok_PLAINTEXT_123".into(),
                html: html.then(|| "<p>Your token is tok_PLAINTEXT_123</p>".into()),
                draft: None,
            },
        }
    }

    impl Fixture {
        async fn enqueue(&self, mail: OutgoingMail) -> Uuid {
            enqueue(
                &self.db,
                &self.cipher,
                None,
                &self.blind,
                mail,
                self.clock.now(),
            )
            .await
            .unwrap()
        }

        /// Queues `mail(false)` for a new account whose key `keys` makes
        /// on `keys_db`, under that key.
        async fn enqueue_under_key(&self, keys: &KeyStore, keys_db: &DatabaseConnection) -> Uuid {
            let account = Uuid::new_v4();
            let key = keys
                .get_or_create(&self.cipher, keys_db, account, self.clock.now())
                .await
                .unwrap();
            let mut outgoing = mail(false);
            outgoing.account_id = Some(account);
            enqueue(
                &self.db,
                &self.cipher,
                Some(&key),
                &self.blind,
                outgoing,
                self.clock.now(),
            )
            .await
            .unwrap()
        }

        fn sender(&self, transport: MailTransport, max_attempts: u32) -> OutboxSender {
            OutboxSender::new(
                self.db.clone(),
                Arc::clone(&self.cipher),
                Arc::new(KeyStore::shared()),
                transport,
                "Custos <no-reply@custos.test>".parse().unwrap(),
                self.clock.clone(),
                50,
                max_attempts,
            )
        }

        async fn row(&self, id: Uuid) -> outbox::Model {
            outbox::Entity::find_by_id(id)
                .one(&self.db)
                .await
                .unwrap()
                .unwrap()
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        let haystack = String::from_utf8_lossy(haystack).to_lowercase();
        haystack.contains(&needle.to_lowercase())
    }

    #[tokio::test]
    async fn enqueue_stores_no_plaintext() {
        let f = fixture().await;
        let id = f.enqueue(mail(true)).await;
        let row = f.row(id).await;

        let mut stored = Vec::new();
        for column in [
            &row.recipient_ct,
            &row.recipient_bidx,
            &row.subject_ct,
            &row.body_text_ct,
            row.body_html_ct.as_ref().unwrap(),
        ] {
            stored.extend_from_slice(column);
        }
        stored.extend_from_slice(row.kind.as_bytes());
        for needle in [
            "alice",
            "example.org",
            "Secret subject",
            "主题",
            "tok_PLAINTEXT",
        ] {
            assert!(!contains(&stored, needle), "{needle:?} stored in clear");
        }

        assert_eq!(row.status, STATUS_PENDING);
        assert_eq!(row.attempts, 0);
        assert_eq!(row.next_attempt_at, f.clock.now());
        assert_eq!(
            row.recipient_bidx,
            f.blind.compute("email", "alice.example@example.org")
        );
        let ctx = FieldContext {
            table: "outbox",
            column: "recipient",
            row_id: id,
        };
        assert_eq!(f.cipher.decrypt_str(&ctx, &row.recipient_ct).unwrap(), TO);
        assert_eq!(pending_count(&f.db).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn enqueue_rolls_back_with_the_callers_transaction() {
        let f = fixture().await;
        let txn = f.db.begin().await.unwrap();
        enqueue(&txn, &f.cipher, None, &f.blind, mail(false), f.clock.now())
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn enqueue_refuses_an_invalid_address_without_naming_it() {
        let f = fixture().await;
        let mut bad = mail(false);
        bad.to = "not an address".into();
        let err = enqueue(&f.db, &f.cipher, None, &f.blind, bad, f.clock.now())
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Address));
        assert!(!err.to_string().contains("not an address"));
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn run_once_sends_and_marks_sent() {
        let f = fixture().await;
        let id = f.enqueue(mail(true)).await;
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);

        let report = sender.run_once().await.unwrap();
        assert_eq!(
            report,
            SendReport {
                sent: 1,
                retried: 0,
                failed: 0
            }
        );

        let sent = transport.stub_messages().await;
        assert_eq!(sent.len(), 1);
        let (envelope, raw) = &sent[0];
        assert_eq!(envelope.to().len(), 1);
        assert_eq!(envelope.to()[0].to_string(), TO);
        assert!(raw.contains(&format!("Message-ID: <{id}@custos>")), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");

        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_SENT);
        assert_eq!(row.sent_at, Some(f.clock.now()));
        assert_eq!(row.claimed_until, None);
        assert_eq!(row.attempts, 1);
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);

        // Sent mail is not sent again.
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_drafted_mail_is_stored_as_its_draft_and_sent_rendered() {
        let f = fixture().await;
        let content = crate::mail::templates::Draft::new(super::super::Language::En, SUBJECT)
            .para("Your token is tokPLAINTEXT123 <b>")
            .link(
                "Open it",
                "https://custos.test/verify-email?token=tokLINK456",
            )
            .render();
        let id = f
            .enqueue(OutgoingMail {
                account_id: None,
                kind: "verify_email",
                to: TO.into(),
                content,
            })
            .await;
        let row = f.row(id).await;
        assert_eq!(row.body_format, BODY_DRAFT);
        assert_eq!(row.body_html_ct, None, "no second rendering is stored");
        for needle in ["tokPLAINTEXT", "tokLINK", "Open it"] {
            assert!(
                !contains(&row.body_text_ct, needle),
                "{needle:?} stored in clear"
            );
        }

        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        let sent = transport.stub_messages().await;
        let (_, raw) = &sent[0];
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("tokPLAINTEXT123"), "{raw}");
        assert!(raw.contains("tokLINK456"), "{raw}");
        assert!(raw.contains("&lt;b&gt;"), "the HTML part is escaped: {raw}");
    }

    #[tokio::test]
    async fn an_unreadable_draft_is_given_up_without_sending() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // A draft row whose body is not a draft.
        outbox::Entity::update_many()
            .col_expr(outbox::Column::BodyFormat, Expr::value(BODY_DRAFT))
            .filter(outbox::Column::Id.eq(id))
            .exec(&f.db)
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap().failed, 1);
        assert!(transport.stub_messages().await.is_empty());
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_FAILED);
        assert_eq!(row.last_error.as_deref(), Some("draft unreadable"));
    }

    #[tokio::test]
    async fn a_database_failure_while_recording_a_sent_mail_is_waited_out_not_resent() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // The database refuses to mark mail SENT while `outage` has a row.
        for sql in [
            "CREATE TABLE outage (x INTEGER)",
            "INSERT INTO outage VALUES (1)",
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox \
             WHEN NEW.status = 'SENT' AND EXISTS (SELECT 1 FROM outage) \
             BEGIN SELECT RAISE(ABORT, 'database unavailable'); END",
        ] {
            f.db.execute_unprepared(sql).await.unwrap();
        }
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        let run = tokio::spawn(async move { sender.run_once().await });
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(!run.is_finished(), "the run waits for the database");
        assert_eq!(transport.stub_messages().await.len(), 1, "the mail left");
        f.db.execute_unprepared("DELETE FROM outage").await.unwrap();

        let report = run.await.unwrap().unwrap();
        assert_eq!(report.sent, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_SENT);
        assert_eq!(row.attempts, 1);
        // SENT is never claimed again: the mail went out exactly once.
        f.clock.advance(chrono::Duration::hours(1));
        let again = f.sender(transport.clone(), 5).run_once().await.unwrap();
        assert_eq!(again, SendReport::default());
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_key_read_waits_for_the_database_instead_of_failing_an_attempt() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let id = f.enqueue_under_key(&KeyStore::shared(), &f.db).await;
        // The keys cannot be read (as while the database is down); a fresh
        // sender has none cached.
        f.db.execute_unprepared("ALTER TABLE account_keys RENAME TO account_keys_away")
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        let run = tokio::spawn(async move { sender.run_once().await });
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(!run.is_finished(), "the run waits for the key");
        assert!(transport.stub_messages().await.is_empty());
        f.db.execute_unprepared("ALTER TABLE account_keys_away RENAME TO account_keys")
            .await
            .unwrap();

        let report = run.await.unwrap().unwrap();
        assert_eq!(report.sent, 1, "{report:?}");
        assert_eq!(report.retried, 0);
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_SENT);
        assert_eq!(row.attempts, 1, "the outage cost no attempt");
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_separate_key_store_that_does_not_answer_is_a_transient_failure() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let store = Database::connect("sqlite::memory:").await.unwrap();
        migration::KeyStoreMigrator::up(&store, None).await.unwrap();
        let id = f
            .enqueue_under_key(&KeyStore::separate(store.clone()), &store)
            .await;
        store
            .execute_unprepared("ALTER TABLE account_keys RENAME TO account_keys_away")
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = OutboxSender::new(
            f.db.clone(),
            Arc::clone(&f.cipher),
            Arc::new(KeyStore::separate(store.clone())),
            transport.clone(),
            "Custos <no-reply@custos.test>".parse().unwrap(),
            f.clock.clone(),
            50,
            5,
        );
        // The main database is fine: the run does not wait, the row is
        // pushed back and other mail would go on.
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1, "{report:?}");
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_PENDING);
        assert_eq!(row.last_error.as_deref(), Some("key store"));
        assert!(transport.stub_messages().await.is_empty());
    }

    #[tokio::test]
    async fn transient_failure_backs_off_then_retries() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let sender = f.sender(MailTransport::stub_failing(), 5);
        let start = f.clock.now();

        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_PENDING);
        assert_eq!(row.attempts, 1);
        assert_eq!(row.next_attempt_at, start + TimeDelta::seconds(30));
        assert_eq!(row.claimed_until, None);
        assert_eq!(row.last_error.as_deref(), Some("stub"));

        // Not due yet: nothing happens.
        f.clock.advance(TimeDelta::seconds(29));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());

        f.clock.advance(TimeDelta::seconds(1));
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.attempts, 2);
        assert_eq!(row.next_attempt_at, f.clock.now() + TimeDelta::seconds(60));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let sender = f.sender(MailTransport::stub_failing(), 3);

        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        f.clock.advance(backoff(2));
        let report = sender.run_once().await.unwrap();
        assert_eq!(
            report,
            SendReport {
                sent: 0,
                retried: 0,
                failed: 1
            }
        );
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_FAILED);
        assert_eq!(row.attempts, 3);

        f.clock.advance(TimeDelta::days(1));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
    }

    #[tokio::test]
    async fn a_row_claimed_by_another_sender_is_left_alone_until_the_claim_runs_out() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let mut row = f.row(id).await.into_active_model();
        row.claimed_until = Set(Some(f.clock.now() + TimeDelta::minutes(5)));
        row.update(&f.db).await.unwrap();

        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert!(transport.stub_messages().await.is_empty());

        // The other sender crashed: its claim runs out and the mail goes.
        f.clock
            .advance(TimeDelta::minutes(5) + TimeDelta::seconds(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(id).await.status, STATUS_SENT);
    }

    #[tokio::test]
    async fn claims_at_most_a_batch_oldest_first() {
        let f = fixture().await;
        let first = f.enqueue(mail(false)).await;
        f.clock.advance(TimeDelta::seconds(1));
        let second = f.enqueue(mail(false)).await;
        f.clock.advance(TimeDelta::seconds(1));
        let third = f.enqueue(mail(false)).await;

        let transport = MailTransport::stub();
        let mut sender = f.sender(transport.clone(), 5);
        sender.batch = 2;
        assert_eq!(sender.run_once().await.unwrap().sent, 2);
        assert_eq!(f.row(first).await.status, STATUS_SENT);
        assert_eq!(f.row(second).await.status, STATUS_SENT);
        assert_eq!(f.row(third).await.status, STATUS_PENDING);
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(transport.stub_messages().await.len(), 3);
    }

    #[tokio::test]
    async fn a_row_that_does_not_decrypt_is_given_up_without_sending() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // Moved ciphertext: the subject's bytes in the recipient column no
        // longer authenticate.
        let mut row = f.row(id).await.into_active_model();
        let subject = f.row(id).await.subject_ct;
        row.recipient_ct = Set(subject);
        row.update(&f.db).await.unwrap();

        let transport = MailTransport::stub();
        let report = f.sender(transport.clone(), 5).run_once().await.unwrap();
        assert_eq!(report.failed, 1);
        assert!(transport.stub_messages().await.is_empty());
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_FAILED);
        assert_eq!(row.last_error.as_deref(), Some("undecryptable"));
    }

    #[test]
    fn backoff_doubles_from_thirty_seconds_and_is_capped_at_an_hour() {
        assert_eq!(backoff(0), TimeDelta::seconds(30));
        assert_eq!(backoff(1), TimeDelta::seconds(30));
        assert_eq!(backoff(2), TimeDelta::seconds(60));
        assert_eq!(backoff(3), TimeDelta::seconds(120));
        assert_eq!(backoff(7), TimeDelta::seconds(1920));
        assert_eq!(backoff(8), TimeDelta::hours(1));
        assert_eq!(backoff(u32::MAX), TimeDelta::hours(1));
        let mut previous = TimeDelta::zero();
        for attempts in 0..200 {
            let delay = backoff(attempts);
            assert!(delay >= previous, "backoff({attempts}) shrank");
            assert!(delay <= TimeDelta::hours(1));
            previous = delay;
        }
    }

    #[test]
    fn outgoing_mail_debug_redacts_recipient_and_content() {
        let printed = format!("{:?}", mail(true));
        assert!(printed.contains("verify_email"));
        for needle in ["Alice", "Secret", "tok_"] {
            assert!(!printed.contains(needle), "{printed}");
        }
    }

    /// Two senders race over the same due mail; each mail must be sent once.
    async fn two_senders_send_each_mail_once(f: &Fixture) {
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(f.enqueue(mail(false)).await);
        }
        let (left, right) = (MailTransport::stub(), MailTransport::stub());
        let (a, b) = (f.sender(left.clone(), 5), f.sender(right.clone(), 5));
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        assert_eq!(ra.unwrap().sent + rb.unwrap().sent, 20);

        let mut seen: Vec<String> = Vec::new();
        for (_, raw) in left
            .stub_messages()
            .await
            .into_iter()
            .chain(right.stub_messages().await)
        {
            let id = ids
                .iter()
                .find(|id| raw.contains(&format!("<{id}@custos>")));
            seen.push(id.map(Uuid::to_string).unwrap_or_default());
        }
        seen.sort();
        let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        expected.sort();
        assert_eq!(seen, expected, "every mail exactly once");
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_on_sqlite_send_each_mail_once() {
        two_senders_send_each_mail_once(&fixture().await).await;
    }

    /// Runs on PostgreSQL when `CUSTOS_TEST_DATABASE_URL` names a server
    /// where tests may create databases; passes trivially otherwise.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_on_postgres_skip_locked_rows() {
        let Some(admin_url) = crate::db::test_postgres_url() else {
            return;
        };
        let name = format!("custos_mail_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };

        let mut f = fixture().await;
        f.db = Database::connect(&url).await.unwrap();
        migration::Migrator::up(&f.db, None).await.unwrap();
        two_senders_send_each_mail_once(&f).await;

        f.db.close().await.unwrap();
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn smtp_outage_delays_mail_and_loses_none() {
        let f = fixture().await;
        let smtp = TestSmtp::stopped();
        let transport = MailTransport::from_url(&smtp.url()).unwrap();
        let sender = f.sender(transport, 12);
        let id = f.enqueue(mail(true)).await;

        // The relay is down: the mail waits.
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_PENDING);
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_error.as_deref(), Some("connection"));
        assert!(smtp.messages().is_empty());

        // The relay is back, but the back-off is respected.
        smtp.restart();
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert!(smtp.messages().is_empty());

        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, STATUS_SENT);
        assert_eq!(row.attempts, 2);

        let captured = smtp.messages();
        assert_eq!(captured.len(), 1, "delivered exactly once");
        assert_eq!(captured[0].to, vec![TO.to_owned()]);
        assert_eq!(captured[0].from, "no-reply@custos.test");
        assert!(
            captured[0]
                .raw
                .contains(&format!("Message-ID: <{id}@custos>"))
        );

        f.clock.advance(TimeDelta::hours(2));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert_eq!(smtp.messages().len(), 1);

        // Down again mid-life (pooled connections are cut too), then back.
        smtp.stop();
        let second = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        smtp.restart();
        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(second).await.status, STATUS_SENT);
        assert_eq!(smtp.messages().len(), 2);
    }

    #[tokio::test]
    async fn smtp_5xx_is_permanent_and_4xx_is_retried() {
        let f = fixture().await;
        let smtp = TestSmtp::start();
        let sender = f.sender(MailTransport::from_url(&smtp.url()).unwrap(), 12);

        smtp.reject_recipients(Some(451));
        let soft = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        let row = f.row(soft).await;
        assert_eq!(row.status, STATUS_PENDING);
        assert_eq!(row.last_error.as_deref(), Some("smtp 451"));

        smtp.reject_recipients(Some(550));
        f.clock.advance(backoff(1));
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.failed, 1);
        let row = f.row(soft).await;
        assert_eq!(row.status, STATUS_FAILED);
        assert_eq!(row.last_error.as_deref(), Some("smtp 550"));
        assert!(!row.last_error.unwrap_or_default().contains("alice"));
        assert!(smtp.messages().is_empty());

        smtp.reject_recipients(None);
        let good = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(good).await.status, STATUS_SENT);
        assert_eq!(smtp.messages().len(), 1);
    }
}
