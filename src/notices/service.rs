//! Security-incident reports.
//!
//! A report is checked, its affected accounts counted, and then opened in
//! one transaction: the fan-out's row (see [`super::store`]), the public
//! announcement when it is already decided, and the audit entry
//! `incident.report.start`. The fan-out itself runs on a task of its own
//! (see [`super::fanout`]); the report waits for it up to
//! `CUSTOS_INCIDENT_WAIT_SECONDS` and otherwise answers with the progress so
//! far, which [`incident_progress`] reads again later.

use chrono::{DateTime, Utc};
use entity::{account, announcement, incident_fanout};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

pub use super::content::{ContentBlock, IncidentContent};
use super::{
    error::NoticeError,
    fanout::{self, DriveEnd, FANOUT_CHUNK, incident_record},
    store::{self, FanoutStatus, NewFanout, StoredAudience},
};
use crate::{accounts::AccountStatus, audit::service::append, state::AppState};

/// The audit action of an incident report as it is filed, before its
/// fan-out runs.
pub const AUDIT_ACTION_STARTED: &str = "incident.report.start";

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

/// What a report has done so far.
#[derive(Debug, Clone)]
pub struct IncidentProgress {
    /// The report's id (its fan-out's).
    pub id: Uuid,
    /// The public announcement, when one was published.
    pub announcement: Option<announcement::Model>,
    /// ACTIVE accounts the incident concerned when it was reported.
    pub affected: u64,
    /// Notices queued in the outbox so far.
    pub notified: u64,
    /// Affected accounts whose notice could not be queued so far.
    pub failed: u64,
    /// Whether every affected account has been handled.
    pub complete: bool,
    /// When the incident was reported.
    pub reported_at: DateTime<Utc>,
    /// When the last affected account was handled.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Who a report mails, checked: the stored audience, the listed ids
/// (sorted, without repeats) and the ACTIVE accounts covered.
struct ResolvedAudience {
    audience: StoredAudience,
    listed: Option<Vec<Uuid>>,
    affected: u64,
}

/// Checks the audience and counts the ACTIVE accounts it covers.
async fn resolve_audience(
    state: &AppState,
    audience: Audience,
) -> Result<ResolvedAudience, NoticeError> {
    let active = || account::Column::Status.eq(AccountStatus::Active);
    match audience {
        Audience::AllAccounts => Ok(ResolvedAudience {
            audience: StoredAudience::AllAccounts,
            listed: None,
            affected: account::Entity::find()
                .filter(active())
                .count(state.db())
                .await?,
        }),
        Audience::Listed(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                return Err(NoticeError::NoAccountsListed);
            }
            let mut affected = 0;
            for chunk in ids.chunks(FANOUT_CHUNK as usize) {
                let listed = || account::Column::Id.is_in(chunk.iter().copied());
                let known = account::Entity::find()
                    .filter(listed())
                    .count(state.db())
                    .await?;
                if known != chunk.len() as u64 {
                    return Err(NoticeError::UnknownAccount);
                }
                affected += account::Entity::find()
                    .filter(listed())
                    .filter(active())
                    .count(state.db())
                    .await?;
            }
            Ok(ResolvedAudience {
                audience: StoredAudience::ListedAccounts,
                listed: Some(ids),
                affected,
            })
        }
    }
}

/// Opens a report in one transaction: the announcement when it is already
/// decided (asked for, or more accounts than the threshold), the fan-out
/// leased to `owner`, and the `incident.report.start` audit entry.
async fn open_report(
    state: &AppState,
    actor_id: Uuid,
    content: &IncidentContent,
    resolved: &ResolvedAudience,
    publish: bool,
    owner: Uuid,
) -> Result<incident_fanout::Model, NoticeError> {
    let now = state.clock().now();
    let announce =
        publish || resolved.affected > state.settings().notices.incident_announce_threshold;
    let txn = state.db().begin().await?;
    let announcement = if announce {
        Some(fanout::announce_incident(&txn, content, now).await?)
    } else {
        None
    };
    let row = store::insert(
        &txn,
        NewFanout {
            id: Uuid::new_v4(),
            actor_id,
            audience: resolved.audience,
            listed_ids: resolved.listed.as_deref(),
            content,
            publish_announcement: publish,
            affected: resolved.affected,
            announcement_id: announcement.as_ref().map(|a| a.id),
            owner,
        },
        now,
    )
    .await?;
    let detail = format!(
        "audience={} affected={} fanout={} announcement={}",
        row.audience,
        row.affected,
        row.id,
        fanout::announcement_field(row.announcement_id)
    );
    append(
        &txn,
        incident_record(actor_id, AUDIT_ACTION_STARTED, detail),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Reports a security incident: opens the report (see the module
/// documentation), starts its fan-out, which mails every affected ACTIVE
/// account its notice in its own language through the outbox, and waits
/// for it up to `CUSTOS_INCIDENT_WAIT_SECONDS`. A fan-out that stops on an
/// error within the wait answers that error (the job runner resumes it);
/// one still running answers its progress so far.
pub async fn report_incident(
    state: &AppState,
    actor_id: Uuid,
    request: IncidentRequest,
) -> Result<IncidentProgress, NoticeError> {
    let content = request.content.checked()?;
    let resolved = resolve_audience(state, request.audience).await?;
    let owner = Uuid::new_v4();
    let opened = open_report(
        state,
        actor_id,
        &content,
        &resolved,
        request.publish_announcement,
        owner,
    )
    .await?;
    tracing::info!(
        actor_id = %actor_id,
        fanout_id = %opened.id,
        affected = resolved.affected,
        "security incident reported"
    );
    let driving = fanout::spawn_drive(state, opened.id, owner);
    let wait = state.settings().notices.incident_wait;
    if wait.is_zero() {
        return progress_of(state, opened).await;
    }
    let latest = match tokio::time::timeout(wait, driving).await {
        Ok(Ok(Ok(DriveEnd::Done(closed)))) => *closed,
        Ok(Ok(Err(stopped))) => return Err(stopped),
        // Still running, or taken over: answer what is known.
        Ok(Ok(Ok(DriveEnd::Lost))) | Err(_) => {
            store::find(state.db(), opened.id).await?.unwrap_or(opened)
        }
        // Its task died: the job runner resumes it when the lease runs out.
        Ok(Err(died)) => {
            tracing::error!(error = %died, "an incident fan-out's task died");
            store::find(state.db(), opened.id).await?.unwrap_or(opened)
        }
    };
    progress_of(state, latest).await
}

/// The progress of report `id`, if there is one.
pub async fn incident_progress(
    state: &AppState,
    id: Uuid,
) -> Result<Option<IncidentProgress>, NoticeError> {
    match store::find(state.db(), id).await? {
        Some(row) => progress_of(state, row).await.map(Some),
        None => Ok(None),
    }
}

/// What fan-out `row` tells of its report, with its announcement.
async fn progress_of(
    state: &AppState,
    row: incident_fanout::Model,
) -> Result<IncidentProgress, NoticeError> {
    let announcement = match row.announcement_id {
        Some(id) => announcement::Entity::find_by_id(id).one(state.db()).await?,
        None => None,
    };
    Ok(IncidentProgress {
        id: row.id,
        announcement,
        affected: store::count(row.affected),
        notified: store::count(row.notified),
        failed: store::count(row.failed),
        complete: FanoutStatus::Done.is(&row.status),
        reported_at: row.created_at,
        completed_at: row.finished_at,
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
}
