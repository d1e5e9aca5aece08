//! The security-incident fan-out, driven as a job that outlives the request
//! that starts it.
//!
//! A driver reads the affected accounts a page at a time (keyset order by
//! id after the fan-out's cursor; ACTIVE only; for a listed audience, only
//! the listed ids), seals each page's mails on a blocking thread
//! (decrypting each address and encrypting each mail is the CPU cost) and
//! writes each page in one short transaction: the guarded advance of the
//! cursor and counters, then one multi-row INSERT into the outbox. Sealing
//! page N+1 overlaps writing page N, so at most two pages are in memory.
//!
//! The guard (see [`super::store::advance`]) makes a page commit only if
//! this driver still holds the lease and the cursor is where it read it:
//! two drivers, or a driver and the job runner resuming after a crash,
//! never queue the same page twice. A driver that stops on an error
//! records how far it got in the audit log and keeps its lease until it
//! runs out; the job runner then resumes the fan-out from its cursor
//! ([`resume_expired`]).

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{account, incident_fanout};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    announcements::{AnnouncementKind, publish_announcement},
    content::IncidentContent,
    error::NoticeError,
    store::{self, FanoutStatus, PageStep, StoredAudience},
    templates,
};
use crate::{
    accounts::{
        AccountStatus,
        service::{needs_account_key, open_with},
    },
    audit::service::{AuditRecord, append, append_alone},
    crypto::AccountKey,
    mail::{
        Language, MailError, RenderedMail,
        outbox::{self, OutgoingMail, SealedMail},
    },
    state::AppState,
};

/// Accounts mailed per transaction and per INSERT statement.
pub const FANOUT_CHUNK: u64 = 1_000;

/// The outbox `kind` of incident notices.
pub const MAIL_KIND: &str = "security_incident";

/// The audit action of an incident report's end, with its final counts
/// (or of a fan-out that stopped on an error, with `stopped=true`).
pub const AUDIT_ACTION: &str = "incident.report";

/// The audit entry of an incident report.
pub(super) fn incident_record(actor_id: Uuid, action: &'static str, detail: String) -> AuditRecord {
    AuditRecord {
        actor_id: Some(actor_id),
        action,
        subject_id: None,
        detail,
    }
}

/// Publishes the public announcement of an incident on `conn` (the open
/// transaction of the report, or of the fan-out's close).
pub(super) async fn announce_incident<C: ConnectionTrait>(
    conn: &C,
    content: &IncidentContent,
    now: DateTime<Utc>,
) -> Result<entity::announcement::Model, DbErr> {
    publish_announcement(
        conn,
        AnnouncementKind::SecurityIncident,
        &content.title,
        &templates::incident_announcement_body(content),
        now,
    )
    .await
}

/// An announcement's id as audit entries name it: `none` when there is none.
pub(super) fn announcement_field(id: Option<Uuid>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| id.to_string())
}

/// Running fan-outs the job runner resumes per tick, at most.
const RESUMED_PER_TICK: u64 = 16;

/// How a driver ended without an error.
#[derive(Debug)]
pub enum DriveEnd {
    /// Every affected account was handled; the fan-out, closed.
    Done(Box<incident_fanout::Model>),
    /// Another driver holds the fan-out, or it is done already: this one
    /// stopped without queueing anything further.
    Lost,
}

/// Starts driving fan-out `id` as `owner` (who must hold its lease) on a
/// task of its own, so a dropped request does not stop it.
pub fn spawn_drive(
    state: &AppState,
    id: Uuid,
    owner: Uuid,
) -> JoinHandle<Result<DriveEnd, NoticeError>> {
    let state = state.clone();
    let span = tracing::info_span!("incident_fanout", fanout_id = %id);
    tokio::spawn(async move { drive(&state, id, owner).await }.instrument(span))
}

/// Takes over every running fan-out whose lease ran out (its driver died
/// or stopped on an error) and drives each on a task of its own; how many
/// it took over. What the job runner does each tick.
pub async fn resume_expired(state: &AppState) -> Result<u64, NoticeError> {
    let now = state.clock().now();
    let mut resumed = 0;
    for id in store::expired(state.db(), now, RESUMED_PER_TICK).await? {
        let owner = Uuid::new_v4();
        if store::claim(state.db(), id, owner, now).await? {
            tracing::info!(fanout_id = %id, "resuming an incident fan-out");
            // The task reports its own end; the runner does not wait for it.
            drop(spawn_drive(state, id, owner));
            resumed += 1;
        }
    }
    Ok(resumed)
}

/// Drives fan-out `id` as `owner` from its cursor to the end, then closes
/// it: the announcement if a notice failed and none was published, status
/// done, and the `incident.report` audit entry with the final counts.
pub async fn drive(state: &AppState, id: Uuid, owner: Uuid) -> Result<DriveEnd, NoticeError> {
    let Some(row) = store::find(state.db(), id).await? else {
        return Ok(DriveEnd::Lost);
    };
    if !FanoutStatus::Running.is(&row.status) || row.lease_owner != Some(owner) {
        return Ok(DriveEnd::Lost);
    }
    let mut pages = Pages::resume(&row).inspect_err(|err| {
        tracing::error!(error = %err, "an incident fan-out cannot be resumed");
    })?;
    let content = content_of(&row);
    let driver = Driver {
        state,
        id,
        owner,
        renderings: Arc::new(Renderings {
            zh_cn: templates::incident_notice(Language::ZhCn, &content),
            en: templates::incident_notice(Language::En, &content),
        }),
    };
    let mut progress = Progress {
        cursor: row.last_account_id,
        notified: store::count(row.notified),
        failed: store::count(row.failed),
    };
    match driver.run(&mut pages, &mut progress).await {
        Ok(true) => driver.close(&row, &content, progress).await,
        Ok(false) => {
            tracing::info!("another driver holds the incident fan-out");
            Ok(DriveEnd::Lost)
        }
        Err(stopped) => {
            driver.record_stop(&row, progress, &stopped).await;
            Err(stopped)
        }
    }
}

/// The notice text a fan-out stores.
fn content_of(row: &incident_fanout::Model) -> IncidentContent {
    IncidentContent {
        title: row.title.clone(),
        what_happened: row.what_happened.clone(),
        possible_impact: row.possible_impact.clone(),
        measures_taken: row.measures_taken.clone(),
        advice_to_users: row.advice_to_users.clone(),
        remedies: row.remedies.clone(),
    }
}

/// The notice in each language, rendered once for every recipient.
struct Renderings {
    zh_cn: RenderedMail,
    en: RenderedMail,
}

impl Renderings {
    fn for_language(&self, lang: Language) -> &RenderedMail {
        match lang {
            Language::ZhCn => &self.zh_cn,
            Language::En => &self.en,
        }
    }
}

/// How far a driver got: the committed cursor and counts.
#[derive(Debug, Clone, Copy)]
struct Progress {
    cursor: Option<Uuid>,
    notified: u64,
    failed: u64,
}

/// The affected accounts, read one page at a time after a cursor.
enum Pages {
    /// Every ACTIVE account, by id.
    All { after: Option<Uuid>, done: bool },
    /// The listed ids (sorted), a chunk at a time from `next`.
    Listed { ids: Vec<Uuid>, next: usize },
}

/// One page read: its accounts and the cursor after it.
struct Page {
    rows: Vec<account::Model>,
    last: Option<Uuid>,
}

impl Pages {
    /// The pages after the fan-out's cursor.
    fn resume(row: &incident_fanout::Model) -> Result<Self, NoticeError> {
        let unreadable = |what: &str| {
            NoticeError::from(DbErr::Custom(format!(
                "incident fan-out {} has {what}",
                row.id
            )))
        };
        match StoredAudience::parse(&row.audience) {
            Some(StoredAudience::AllAccounts) => Ok(Self::All {
                after: row.last_account_id,
                done: false,
            }),
            Some(StoredAudience::ListedAccounts) => {
                let ids = store::listed_ids(row).ok_or_else(|| unreadable("no list of ids"))?;
                let next = match row.last_account_id {
                    Some(cursor) => ids.partition_point(|id| *id <= cursor),
                    None => 0,
                };
                Ok(Self::Listed { ids, next })
            }
            None => Err(unreadable("an unknown audience")),
        }
    }

    async fn next<C: ConnectionTrait>(&mut self, conn: &C) -> Result<Option<Page>, DbErr> {
        let active = account::Column::Status.eq(AccountStatus::Active);
        match self {
            Self::All { after, done } => {
                if *done {
                    return Ok(None);
                }
                let mut query = account::Entity::find()
                    .filter(active)
                    .order_by_asc(account::Column::Id)
                    .limit(FANOUT_CHUNK);
                if let Some(after) = after {
                    query = query.filter(account::Column::Id.gt(*after));
                }
                let rows = query.all(conn).await?;
                *done = (rows.len() as u64) < FANOUT_CHUNK;
                let Some(last) = rows.last().map(|row| row.id) else {
                    return Ok(None);
                };
                *after = Some(last);
                Ok(Some(Page {
                    rows,
                    last: Some(last),
                }))
            }
            Self::Listed { ids, next } => {
                let chunk = ids.iter().skip(*next).take(FANOUT_CHUNK as usize);
                let chunk: Vec<Uuid> = chunk.copied().collect();
                let Some(last) = chunk.last().copied() else {
                    return Ok(None);
                };
                *next += chunk.len();
                // A page may hold nobody (none of its ids ACTIVE): the
                // cursor still moves past it.
                let rows = account::Entity::find()
                    .filter(account::Column::Id.is_in(chunk))
                    .filter(active)
                    .all(conn)
                    .await?;
                Ok(Some(Page {
                    rows,
                    last: Some(last),
                }))
            }
        }
    }
}

/// A page sealed and ready to write.
struct SealedPage {
    mails: Vec<SealedMail>,
    failed: u64,
    last: Option<Uuid>,
}

/// Decrypts each account's address and seals its notice. An account whose
/// address cannot be read or mailed is counted as failed (and logged by id),
/// not fatal: everybody else is still told, and the failure makes the
/// report publish an announcement.
fn seal_page(
    state: &AppState,
    renderings: &Renderings,
    rows: Vec<account::Model>,
    keys: &HashMap<Uuid, Arc<AccountKey>>,
    now: DateTime<Utc>,
) -> (Vec<SealedMail>, u64) {
    let mut sealed = Vec::with_capacity(rows.len());
    let mut failed = 0;
    for row in rows {
        let key = keys.get(&row.id).map(|key| &**key);
        // An account whose data key is gone is nobody to tell.
        if key.is_none() && needs_account_key(&row) {
            state.account_unreadable(row.id);
            continue;
        }
        let attempt = open_with(state, &row, key)
            .map_err(MailError::from)
            .and_then(|record| {
                outbox::seal(
                    state.cipher(),
                    key,
                    state.blind().active(),
                    &OutgoingMail {
                        account_id: Some(row.id),
                        kind: MAIL_KIND,
                        to: record.email,
                        content: renderings.for_language(record.language).clone(),
                    },
                    now,
                )
            });
        match attempt {
            Ok(mail) => sealed.push(mail),
            Err(err) => {
                failed += 1;
                tracing::warn!(account_id = %row.id, error = %err, "incident notice not queued");
            }
        }
    }
    (sealed, failed)
}

/// One driver of one fan-out.
struct Driver<'a> {
    state: &'a AppState,
    id: Uuid,
    owner: Uuid,
    renderings: Arc<Renderings>,
}

impl Driver<'_> {
    /// Writes every page from `progress` on, writing each page while the
    /// next one is read and sealed. `Ok(true)`: no page is left;
    /// `Ok(false)`: another driver took over. `progress` holds what was
    /// committed, whatever the end.
    async fn run(&self, pages: &mut Pages, progress: &mut Progress) -> Result<bool, NoticeError> {
        let mut next = self.read_and_seal(pages).await?;
        while let Some(page) = next.take() {
            let step = PageStep {
                from: progress.cursor,
                to: page.last,
                notified: page.mails.len() as u64,
                failed: page.failed,
            };
            let (written, upcoming) =
                tokio::join!(self.write_page(step, page.mails), self.read_and_seal(pages));
            if !written? {
                return Ok(false);
            }
            progress.cursor = step.to;
            progress.notified += step.notified;
            progress.failed += step.failed;
            next = upcoming?;
        }
        Ok(true)
    }

    /// Reads the next page and seals it.
    async fn read_and_seal(&self, pages: &mut Pages) -> Result<Option<SealedPage>, NoticeError> {
        let Some(page) = pages.next(self.state.db()).await? else {
            return Ok(None);
        };
        let (mails, failed) = self.seal_blocking(page.rows).await;
        Ok(Some(SealedPage {
            mails,
            failed,
            last: page.last,
        }))
    }

    /// Seals a page on a blocking thread, so the other core encrypts while
    /// this task waits on the database.
    async fn seal_blocking(&self, rows: Vec<account::Model>) -> (Vec<SealedMail>, u64) {
        let state = self.state;
        let count = rows.len() as u64;
        if rows.is_empty() {
            return (Vec::new(), 0);
        }
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let keys = match state
            .keys()
            .find_many(state.cipher(), state.db(), &ids)
            .await
        {
            Ok(keys) => keys,
            Err(err) => {
                tracing::error!(error = %err, "account keys of a notice page unreadable");
                return (Vec::new(), count);
            }
        };
        let state = state.clone();
        let renderings = Arc::clone(&self.renderings);
        let now = state.clock().now();
        match tokio::task::spawn_blocking(move || seal_page(&state, &renderings, rows, &keys, now))
            .await
        {
            Ok(done) => done,
            Err(err) => {
                // The sealing thread died: none of the page was queued.
                tracing::error!(error = %err, "sealing incident notices failed");
                (Vec::new(), count)
            }
        }
    }

    /// Writes one page in one transaction: the guarded advance of the
    /// cursor and counts, then the page's mail. `false` (nothing written)
    /// when the guard found the lease or the cursor moved.
    async fn write_page(
        &self,
        step: PageStep,
        mails: Vec<SealedMail>,
    ) -> Result<bool, NoticeError> {
        let state = self.state;
        let txn = state.db().begin().await?;
        let written = async {
            // The advance first: on PostgreSQL it locks the fan-out's row,
            // so a racing driver waits here and then finds the cursor moved.
            if !store::advance(&txn, self.id, self.owner, step, state.clock().now()).await? {
                return Ok(false);
            }
            outbox::enqueue_sealed(&txn, mails).await?;
            Ok::<_, NoticeError>(true)
        }
        .await;
        match written {
            Ok(true) => txn.commit().await?,
            // Rolled back now, not when the pool next hands the connection
            // out: until then it would hold the fan-out's row lock, and the
            // driver taking over would wait on it.
            Ok(false) | Err(_) => txn.rollback().await?,
        }
        if written.as_ref().is_ok_and(|written| *written) && step.notified > 0 {
            state.mail_queued();
        }
        written
    }

    /// Closes the fan-out: publishes the announcement a failed notice calls
    /// for (when none was), marks it done and writes the final audit entry,
    /// in one transaction.
    async fn close(
        &self,
        row: &incident_fanout::Model,
        content: &IncidentContent,
        progress: Progress,
    ) -> Result<DriveEnd, NoticeError> {
        let state = self.state;
        let now = state.clock().now();
        let txn = state.db().begin().await?;
        let mut announcement_id = row.announcement_id;
        if announcement_id.is_none() && progress.failed > 0 {
            announcement_id = Some(announce_incident(&txn, content, now).await?.id);
        }
        if !store::finish(
            &txn,
            self.id,
            self.owner,
            progress.cursor,
            announcement_id,
            now,
        )
        .await?
        {
            txn.rollback().await?;
            return Ok(DriveEnd::Lost);
        }
        let detail = format!(
            "audience={} affected={} notified={} failed={} announcement={}",
            row.audience,
            row.affected,
            progress.notified,
            progress.failed,
            announcement_field(announcement_id)
        );
        append(
            &txn,
            incident_record(row.actor_id, AUDIT_ACTION, detail),
            now,
        )
        .await?;
        let closed = store::find(&txn, self.id).await?;
        txn.commit().await?;
        tracing::info!(
            actor_id = %row.actor_id,
            affected = row.affected,
            notified = progress.notified,
            failed = progress.failed,
            announced = announcement_id.is_some(),
            "security incident fan-out done"
        );
        closed
            .map(|closed| DriveEnd::Done(Box::new(closed)))
            .ok_or_else(|| DbErr::RecordNotFound(format!("incident fan-out {}", self.id)).into())
    }

    /// Says in the audit log how far a stopped driver got: the mail already
    /// queued will be sent, and the job runner resumes from there once the
    /// lease runs out.
    async fn record_stop(
        &self,
        row: &incident_fanout::Model,
        progress: Progress,
        stopped: &NoticeError,
    ) {
        tracing::error!(notified = progress.notified, error = %stopped, "incident fan-out stopped");
        let detail = format!(
            "audience={} affected={} notified={} failed={} stopped=true fanout={}",
            row.audience, row.affected, progress.notified, progress.failed, self.id
        );
        let record = incident_record(row.actor_id, AUDIT_ACTION, detail);
        if let Err(err) = append_alone(self.state.db(), record, self.state.clock().now()).await {
            tracing::error!(error = %err, "the stopped incident fan-out could not be audited");
        }
    }
}
