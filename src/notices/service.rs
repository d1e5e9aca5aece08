//! Announcements and the security-incident fan-out.
//!
//! The fan-out reads affected accounts a page at a time (keyset order by
//! id), seals each page's mails on a blocking thread (decrypting each
//! address and encrypting each mail is the CPU cost) and writes each page in
//! its own short transaction with one multi-row INSERT. Sealing page N+1
//! overlaps writing page N. Short transactions keep the single SQLite
//! connection and PostgreSQL's locks free for other requests while a large
//! fan-out runs; if the process dies mid-way, the pages already written are
//! still sent (people were told), and the missing audit entry and announcement
//! show the report has to be made again.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{account, announcement};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

pub use super::content::{ContentBlock, IncidentContent};
use super::templates;
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

/// The audit action of an incident report.
pub const AUDIT_ACTION: &str = "incident.report";

/// What an announcement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnouncementKind {
    /// A security incident (see `reportSecurityIncident`).
    SecurityIncident,
    /// A change of the privacy policy.
    PolicyUpdate,
}

impl AnnouncementKind {
    /// The value stored in `announcements.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityIncident => "SECURITY_INCIDENT",
            Self::PolicyUpdate => "POLICY_UPDATE",
        }
    }

    /// The kind stored as `value`, if it is one.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "SECURITY_INCIDENT" => Some(Self::SecurityIncident),
            "POLICY_UPDATE" => Some(Self::PolicyUpdate),
            _ => None,
        }
    }
}

/// Publishes a public announcement on `conn` (pass the open transaction of
/// the change it announces, so both commit or neither does).
pub async fn publish_announcement<C: ConnectionTrait>(
    conn: &C,
    kind: AnnouncementKind,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<announcement::Model, DbErr> {
    announcement::ActiveModel {
        id: Set(Uuid::new_v4()),
        kind: Set(kind.as_str().to_owned()),
        title: Set(title.to_owned()),
        body: Set(body.to_owned()),
        published_at: Set(now),
    }
    .insert(conn)
    .await
}

/// Every announcement, newest first.
pub async fn announcements<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<announcement::Model>, DbErr> {
    announcement::Entity::find()
        .order_by_desc(announcement::Column::PublishedAt)
        .order_by_desc(announcement::Column::Id)
        .all(conn)
        .await
}

impl IncidentContent {
    /// Trims every block; empty ones are refused, all of them, in the order
    /// a reader meets them.
    pub fn checked(self) -> Result<Self, NoticeError> {
        let trimmed = Self {
            title: self.title.trim().to_owned(),
            what_happened: self.what_happened.trim().to_owned(),
            possible_impact: self.possible_impact.trim().to_owned(),
            measures_taken: self.measures_taken.trim().to_owned(),
            advice_to_users: self.advice_to_users.trim().to_owned(),
            remedies: self.remedies.trim().to_owned(),
        };
        let mut missing: Vec<NoticeError> = [
            ContentBlock::Title,
            ContentBlock::WhatHappened,
            ContentBlock::PossibleImpact,
            ContentBlock::MeasuresTaken,
            ContentBlock::AdviceToUsers,
            ContentBlock::Remedies,
        ]
        .into_iter()
        .filter(|block| trimmed.block(*block).is_empty())
        .map(NoticeError::MissingBlock)
        .collect();
        match missing.len() {
            0 => Ok(trimmed),
            1 => Err(missing.remove(0)),
            _ => Err(NoticeError::Invalid(missing)),
        }
    }
}

/// Who an incident concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every ACTIVE account.
    AllAccounts,
    /// These accounts (those among them still ACTIVE are mailed).
    Listed(Vec<Uuid>),
}

/// An incident report as staff file it.
#[derive(Debug, Clone)]
pub struct IncidentRequest {
    /// The notice text.
    pub content: IncidentContent,
    /// Who is told by mail.
    pub audience: Audience,
    /// Publish a public announcement whatever the numbers.
    pub publish_announcement: bool,
}

/// What a report did.
#[derive(Debug, Clone)]
pub struct IncidentOutcome {
    /// The public announcement, when one was published.
    pub announcement: Option<announcement::Model>,
    /// ACTIVE accounts the incident concerns.
    pub affected: u64,
    /// Notices queued in the outbox.
    pub notified: u64,
    /// Affected accounts whose notice could not be queued.
    pub failed: u64,
}

/// What can go wrong with a notice.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// A content block is empty.
    #[error("the {0:?} block is empty")]
    MissingBlock(ContentBlock),
    /// Several blocks are empty: every one of them, in reading order.
    #[error("{} blocks are empty", .0.len())]
    Invalid(Vec<NoticeError>),
    /// LISTED_ACCOUNTS with no accounts.
    #[error("no accounts listed")]
    NoAccountsListed,
    /// A listed account does not exist.
    #[error("a listed account does not exist")]
    UnknownAccount,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(NoticeError);

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

/// Reads the affected accounts one page at a time.
enum Pages {
    /// Keyset pages of every ACTIVE account, by id.
    All { after: Option<Uuid>, done: bool },
    /// The listed ids, a chunk at a time.
    Listed {
        chunks: std::vec::IntoIter<Vec<Uuid>>,
    },
}

impl Pages {
    async fn next<C: ConnectionTrait>(
        &mut self,
        conn: &C,
    ) -> Result<Option<Vec<account::Model>>, DbErr> {
        match self {
            Self::All { after, done } => {
                if *done {
                    return Ok(None);
                }
                let mut query = account::Entity::find()
                    .filter(account::Column::Status.eq(AccountStatus::Active))
                    .order_by_asc(account::Column::Id)
                    .limit(FANOUT_CHUNK);
                if let Some(after) = after {
                    query = query.filter(account::Column::Id.gt(*after));
                }
                let page = query.all(conn).await?;
                *done = (page.len() as u64) < FANOUT_CHUNK;
                *after = page.last().map(|row| row.id);
                Ok((!page.is_empty()).then_some(page))
            }
            Self::Listed { chunks } => {
                let Some(ids) = chunks.next() else {
                    return Ok(None);
                };
                account::Entity::find()
                    .filter(account::Column::Id.is_in(ids))
                    .filter(account::Column::Status.eq(AccountStatus::Active))
                    .all(conn)
                    .await
                    .map(Some)
            }
        }
    }
}

/// Checks the audience and counts the ACTIVE accounts it covers.
async fn resolve_audience(
    state: &AppState,
    audience: Audience,
) -> Result<(Pages, u64), NoticeError> {
    match audience {
        Audience::AllAccounts => {
            let affected = account::Entity::find()
                .filter(account::Column::Status.eq(AccountStatus::Active))
                .count(state.db())
                .await?;
            Ok((
                Pages::All {
                    after: None,
                    done: false,
                },
                affected,
            ))
        }
        Audience::Listed(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                return Err(NoticeError::NoAccountsListed);
            }
            let chunks: Vec<Vec<Uuid>> = ids
                .chunks(FANOUT_CHUNK as usize)
                .map(<[Uuid]>::to_vec)
                .collect();
            let mut affected = 0;
            for chunk in &chunks {
                let known = account::Entity::find()
                    .filter(account::Column::Id.is_in(chunk.iter().copied()))
                    .count(state.db())
                    .await?;
                if known != chunk.len() as u64 {
                    return Err(NoticeError::UnknownAccount);
                }
                affected += account::Entity::find()
                    .filter(account::Column::Id.is_in(chunk.iter().copied()))
                    .filter(account::Column::Status.eq(AccountStatus::Active))
                    .count(state.db())
                    .await?;
            }
            Ok((
                Pages::Listed {
                    chunks: chunks.into_iter(),
                },
                affected,
            ))
        }
    }
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

/// Seals a page on a blocking thread, so the other core encrypts while this
/// task waits on the database.
async fn seal_page_blocking(
    state: &AppState,
    renderings: &Arc<Renderings>,
    rows: Vec<account::Model>,
    now: DateTime<Utc>,
) -> (Vec<SealedMail>, u64) {
    let count = rows.len() as u64;
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
    let renderings = Arc::clone(renderings);
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

/// Writes one page of sealed notices in its own transaction.
async fn write_page(state: &AppState, mails: Vec<SealedMail>) -> Result<u64, NoticeError> {
    if mails.is_empty() {
        return Ok(0);
    }
    let txn = state.db().begin().await?;
    let queued = outbox::enqueue_sealed(&txn, mails).await?;
    txn.commit().await?;
    state.mail_queued();
    Ok(queued)
}

/// The audit entry of an incident report, finished or stopped.
fn incident_record(actor_id: Uuid, detail: String) -> AuditRecord {
    AuditRecord {
        actor_id: Some(actor_id),
        action: AUDIT_ACTION,
        subject_id: None,
        detail,
    }
}

/// What a fan-out did: notices queued, notices that could not be sealed,
/// and the error that stopped it early, if one did.
struct FanOut {
    notified: u64,
    failed: u64,
    stopped: Option<NoticeError>,
}

/// Seals and queues a notice for every account `pages` yields, writing
/// each page while the next one is read and sealed. An error reading the
/// first page is returned; a later one stops the fan-out with what was
/// queued so far.
async fn fan_out(
    state: &AppState,
    pages: &mut Pages,
    renderings: &Arc<Renderings>,
    now: DateTime<Utc>,
) -> Result<FanOut, NoticeError> {
    let mut notified = 0;
    let mut failed = 0;
    let mut next = match pages.next(state.db()).await? {
        Some(rows) => Some(seal_page_blocking(state, renderings, rows, now).await),
        None => None,
    };
    while let Some((sealed, page_failed)) = next.take() {
        failed += page_failed;
        // Write this page while the next one is read and sealed.
        let (written, upcoming) = tokio::join!(write_page(state, sealed), async {
            match pages.next(state.db()).await {
                Ok(Some(rows)) => Ok(Some(seal_page_blocking(state, renderings, rows, now).await)),
                Ok(None) => Ok(None),
                Err(err) => Err(err),
            }
        });
        let stopped = match (written, upcoming) {
            (Ok(written), Ok(upcoming)) => {
                notified += written;
                next = upcoming;
                continue;
            }
            (Ok(written), Err(err)) => {
                notified += written;
                NoticeError::from(err)
            }
            (Err(err), _) => err,
        };
        return Ok(FanOut {
            notified,
            failed,
            stopped: Some(stopped),
        });
    }
    Ok(FanOut {
        notified,
        failed,
        stopped: None,
    })
}

/// Reports a security incident: mails every affected ACTIVE account its
/// notice in its own language through the outbox, publishes an announcement
/// when asked, when more than the configured threshold of accounts are
/// affected or when some notice could not be queued, and writes the audit
/// entry `incident.report`.
pub async fn report_incident(
    state: &AppState,
    actor_id: Uuid,
    request: IncidentRequest,
) -> Result<IncidentOutcome, NoticeError> {
    let content = request.content.checked()?;
    let audience_name = match request.audience {
        Audience::AllAccounts => "ALL_ACCOUNTS",
        Audience::Listed(_) => "LISTED_ACCOUNTS",
    };
    let (mut pages, affected) = resolve_audience(state, request.audience).await?;
    let now = state.clock().now();
    let renderings = Arc::new(Renderings {
        zh_cn: templates::incident_notice(Language::ZhCn, &content),
        en: templates::incident_notice(Language::En, &content),
    });

    let FanOut {
        notified,
        failed,
        stopped,
    } = fan_out(state, &mut pages, &renderings, now).await?;
    if let Some(stopped) = stopped {
        // The pages already queued will be sent: say so in the audit log,
        // or an operator re-running the report cannot tell who has it.
        tracing::error!(notified, error = %stopped, "incident fan-out stopped");
        let detail = format!(
            "audience={audience_name} affected={affected} notified={notified} failed={failed} stopped=true"
        );
        if let Err(err) = append_alone(state.db(), incident_record(actor_id, detail), now).await {
            tracing::error!(error = %err, "the stopped incident fan-out could not be audited");
        }
        return Err(stopped);
    }

    let announce = request.publish_announcement
        || affected > state.settings().notices.incident_announce_threshold
        || failed > 0;
    let txn = state.db().begin().await?;
    let announcement = if announce {
        Some(
            publish_announcement(
                &txn,
                AnnouncementKind::SecurityIncident,
                &content.title,
                &templates::incident_announcement_body(&content),
                now,
            )
            .await?,
        )
    } else {
        None
    };
    let detail = format!(
        "audience={audience_name} affected={affected} notified={notified} failed={failed} announcement={}",
        announcement
            .as_ref()
            .map_or_else(|| "none".to_owned(), |a| a.id.to_string())
    );
    append(&txn, incident_record(actor_id, detail), now).await?;
    txn.commit().await?;
    tracing::info!(
        actor_id = %actor_id,
        affected,
        notified,
        failed,
        announced = announcement.is_some(),
        "security incident reported"
    );
    Ok(IncidentOutcome {
        announcement,
        affected,
        notified,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> IncidentContent {
        IncidentContent {
            title: " Title ".into(),
            what_happened: "a".into(),
            possible_impact: "b".into(),
            measures_taken: "c".into(),
            advice_to_users: "d".into(),
            remedies: "e".into(),
        }
    }

    #[test]
    fn blocks_are_trimmed_and_every_empty_one_is_named() {
        assert_eq!(
            content().checked().map(|c| c.title).ok(),
            Some("Title".into())
        );
        let mut blank = content();
        blank.possible_impact = " \n\t".into();
        blank.remedies = String::new();
        let Err(NoticeError::Invalid(missing)) = blank.checked() else {
            panic!("two blocks are empty");
        };
        assert!(matches!(
            missing.as_slice(),
            [
                NoticeError::MissingBlock(ContentBlock::PossibleImpact),
                NoticeError::MissingBlock(ContentBlock::Remedies)
            ]
        ));
        let mut one = content();
        one.title = " ".into();
        assert!(matches!(
            one.checked(),
            Err(NoticeError::MissingBlock(ContentBlock::Title))
        ));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            AnnouncementKind::SecurityIncident,
            AnnouncementKind::PolicyUpdate,
        ] {
            assert_eq!(AnnouncementKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AnnouncementKind::parse("OTHER"), None);
    }
}
