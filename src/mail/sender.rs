//! The outbox sender: the body of the outbox job. It claims due rows from
//! the queue ([`super::queue`]), sends each through the transport, and
//! records the outcome.
//!
//! Rules:
//! - Nothing is sent inside a transaction: a slow relay must not hold locks.
//! - A transient failure retries after [`backoff`] (30 s doubling, at most an
//!   hour); a permanent one, or the last allowed attempt, marks the row
//!   `FAILED`. Mail is never deleted here, except the kinds the queue
//!   forgets once they are final.
//! - A database outage is not a failed attempt: the sender waits it out,
//!   well inside its claim, both to record what it sent and to read an
//!   account's key kept in that database, then goes on with its batch.
//! - The Message-ID is `<{row id}@custos>`, so if a crash after a successful
//!   send causes a second send, the copies are recognisably the same mail.
//! - Logs carry outbox ids, kinds and failure classes; never an address, a
//!   subject or a body.

use std::{fmt, sync::Arc, time::SystemTime};

use chrono::TimeDelta;
use entity::outbox;
use lettre::{
    Address, Message,
    message::{Mailbox, MultiPart, SinglePart},
};
use sea_orm::{DatabaseConnection, DbErr};
use uuid::Uuid;

use super::{
    MailError,
    queue::{self, AfterFailure, OpenedMail},
    transport::{MailTransport, SendFailure},
};
use crate::{
    clock::Clock,
    crypto::{
        AccountKey, CryptoError, FieldCipher, fields::is_under_account_key, keystore::KeyStore,
    },
};

/// How long a sender keeps retrying the write that records a sent mail;
/// shorter than [`queue::CLAIM_DURATION`] by a margin.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(4 * 60);
/// The first retry delay; each further failure doubles it.
const FIRST_RETRY_SECONDS: i64 = 30;
/// The longest retry delay, so mail moves within the hour after an outage.
const MAX_RETRY_SECONDS: i64 = 60 * 60;

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
    pub(in crate::mail) batch: u64,
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
        let claimed = queue::claim(&self.db, self.clock.now(), self.batch).await?;
        let mut report = SendReport::default();
        for row in claimed {
            let outcome = self.attempt(&row).await;
            self.record(&row, outcome, &mut report).await?;
        }
        Ok(report)
    }

    /// Opens one claimed row and hands it to the transport.
    async fn attempt(&self, row: &outbox::Model) -> Outcome {
        let message = match self.account_key(row).await {
            Ok(key) => self.build_message(row, key.as_deref()),
            Err(failure) => Err(failure),
        };
        match message {
            Ok(message) => match self.transport.send(message).await {
                Ok(()) => Outcome::Sent,
                Err(failure) => Outcome::Failed(failure),
            },
            Err(failure) => Outcome::Failed(failure),
        }
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
        let OpenedMail { to, subject, body } =
            queue::open(&self.cipher, key, row).map_err(|e| decrypt_failure(row.id, &e))?;
        let to: Address = to
            .parse()
            .map_err(|_| SendFailure::permanent("invalid address"))?;
        let (text, html) = body
            .into_parts(subject.clone())
            .ok_or_else(|| SendFailure::permanent("draft unreadable"))?;

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
    /// or given up (see [`queue::FORGOTTEN_AFTER_DELIVERY`]).
    async fn forget_if_final(&self, row: &outbox::Model) -> Result<(), DbErr> {
        if queue::forgotten_when_final(&row.kind) {
            // A SENT row is never sent again, so nothing else would delete
            // it: keep trying through an outage.
            self.persist(|| queue::forget(&self.db, row.id)).await?;
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
        match outcome {
            Outcome::Sent => self.record_sent(row, report).await,
            Outcome::Failed(failure) => self.record_failure(row, &failure, report).await,
        }
    }

    /// Marks a row the relay accepted. Retried through a database outage:
    /// a mail that left but stays PENDING would go out again.
    async fn record_sent(&self, row: &outbox::Model, report: &mut SendReport) -> Result<(), DbErr> {
        let now = self.clock.now();
        let attempts = row.attempts.saturating_add(1);
        let written = self
            .persist(|| queue::mark_sent(&self.db, row.id, attempts, now))
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
        self.forget_if_final(row).await
    }

    /// Records a failed attempt: the row waits for a retry, or is given up
    /// after a permanent failure or the last allowed attempt.
    async fn record_failure(
        &self,
        row: &outbox::Model,
        failure: &SendFailure,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let attempts = row.attempts.saturating_add(1);
        let exhausted = i64::from(attempts) >= i64::from(self.max_attempts);
        if failure.permanent || exhausted {
            queue::mark_failed(
                &self.db,
                row.id,
                attempts,
                &failure.class,
                AfterFailure::GiveUp,
            )
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
            return self.forget_if_final(row).await;
        }
        let retry_at = self.clock.now() + backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
        let then = AfterFailure::RetryAt(retry_at);
        queue::mark_failed(&self.db, row.id, attempts, &failure.class, then).await?;
        report.retried += 1;
        tracing::warn!(
            outbox_id = %row.id,
            kind = %row.kind,
            attempts,
            class = %failure.class,
            %retry_at,
            "mail send failed; will retry"
        );
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
