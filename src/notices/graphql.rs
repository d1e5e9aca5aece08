//! GraphQL types and thin resolvers for announcements and incident reports.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    announcements::{self, AnnouncementKind},
    error::NoticeError,
    service::{self, Audience, ContentBlock, IncidentContent, IncidentRequest},
};
use crate::{
    accounts::Role,
    graphql::{
        errors::{ApiError, ApiResult},
        messages::Key,
        require_role, state,
    },
};

impl From<NoticeError> for ApiError {
    fn from(err: NoticeError) -> Self {
        match err {
            NoticeError::MissingBlock(block) => {
                let field = match block {
                    ContentBlock::Title => "title",
                    ContentBlock::WhatHappened => "whatHappened",
                    ContentBlock::PossibleImpact => "possibleImpact",
                    ContentBlock::MeasuresTaken => "measuresTaken",
                    ContentBlock::AdviceToUsers => "adviceToUsers",
                    ContentBlock::Remedies => "remedies",
                };
                ApiError::bad_input(field, Key::NoticeMissingBlock)
            }
            NoticeError::Invalid(errors) => {
                ApiError::all_of(errors.into_iter().map(ApiError::from))
                    .unwrap_or_else(|| ApiError::internal(&"an empty list of invalid fields"))
            }
            NoticeError::NoAccountsListed => {
                ApiError::bad_input("accountIds", Key::NoticeNoAccountsListed)
            }
            NoticeError::UnknownAccount => {
                ApiError::bad_input("accountIds", Key::NoticeUnknownAccount)
            }
            NoticeError::Internal(err) => err.into(),
        }
    }
}

/// What an announcement is about.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "AnnouncementKind")]
pub enum AnnouncementKindValue {
    /// A security incident.
    SecurityIncident,
    /// A change of the privacy policy.
    PolicyUpdate,
}

impl From<AnnouncementKind> for AnnouncementKindValue {
    fn from(kind: AnnouncementKind) -> Self {
        match kind {
            AnnouncementKind::SecurityIncident => Self::SecurityIncident,
            AnnouncementKind::PolicyUpdate => Self::PolicyUpdate,
        }
    }
}

/// A public notice.
#[derive(SimpleObject)]
pub struct Announcement {
    id: ID,
    kind: AnnouncementKindValue,
    title: String,
    body: String,
    published_at: DateTime<Utc>,
}

impl TryFrom<entity::announcement::Model> for Announcement {
    type Error = ApiError;

    fn try_from(row: entity::announcement::Model) -> ApiResult<Self> {
        let kind = AnnouncementKind::parse(&row.kind).ok_or_else(|| {
            ApiError::internal(&format!("announcement {} has an unknown kind", row.id))
        })?;
        Ok(Self {
            id: ID(row.id.to_string()),
            kind: kind.into(),
            title: row.title,
            body: row.body,
            published_at: row.published_at,
        })
    }
}

/// Who an incident concerns.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum IncidentAudience {
    /// Every active account.
    AllAccounts,
    /// The accounts in `accountIds`.
    ListedAccounts,
}

/// A security incident to report.
#[derive(InputObject)]
pub struct SecurityIncidentInput {
    title: String,
    what_happened: String,
    possible_impact: String,
    measures_taken: String,
    advice_to_users: String,
    remedies: String,
    audience: IncidentAudience,
    /// Required and non-empty with LISTED_ACCOUNTS; ignored with ALL_ACCOUNTS.
    account_ids: Option<Vec<ID>>,
    /// Also publish a public announcement, whatever the number of accounts.
    publish_announcement: bool,
}

/// What a security-incident report has done so far. `notified` and
/// `failed` grow while the fan-out runs; `complete` turns true when every
/// affected account has been handled.
#[derive(SimpleObject)]
pub struct IncidentReport {
    /// The report's id: follow its progress with `incidentReport(id:)`.
    id: ID,
    /// The public announcement, when one was published.
    announcement: Option<Announcement>,
    /// How many notification emails were queued.
    notified: i32,
    /// Active accounts the incident concerned when it was reported.
    affected: i32,
    /// Affected accounts whose notice could not be queued (an address that
    /// no longer decrypts); any makes the incident public.
    failed: i32,
    /// Whether every affected account has been handled.
    complete: bool,
    /// When the incident was reported.
    reported_at: DateTime<Utc>,
    /// When the last affected account was handled.
    completed_at: Option<DateTime<Utc>>,
}

/// A count as the API's `Int`.
fn as_api_int(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

impl TryFrom<service::IncidentProgress> for IncidentReport {
    type Error = ApiError;

    fn try_from(progress: service::IncidentProgress) -> ApiResult<Self> {
        Ok(Self {
            id: ID(progress.id.to_string()),
            announcement: progress
                .announcement
                .map(Announcement::try_from)
                .transpose()?,
            notified: as_api_int(progress.notified),
            affected: as_api_int(progress.affected),
            failed: as_api_int(progress.failed),
            complete: progress.complete,
            reported_at: progress.reported_at,
            completed_at: progress.completed_at,
        })
    }
}

/// Announcement queries.
#[derive(Default)]
pub struct NoticeQuery;

#[Object]
impl NoticeQuery {
    /// Public announcements (security incidents, policy updates), newest
    /// first. Open to anonymous callers.
    async fn announcements(&self, ctx: &Context<'_>) -> ApiResult<Vec<Announcement>> {
        announcements::announcements(state(ctx)?.db())
            .await?
            .into_iter()
            .map(Announcement::try_from)
            .collect()
    }

    /// ADMIN. A security-incident report and the progress of its fan-out;
    /// null for an id that names no report.
    async fn incident_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<IncidentReport>> {
        require_role(ctx, &[Role::Admin])?;
        let Ok(id) = uuid::Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        service::incident_progress(state(ctx)?, id)
            .await?
            .map(IncidentReport::try_from)
            .transpose()
    }
}

/// Incident mutations.
#[derive(Default)]
pub struct NoticeMutation;

#[Object]
impl NoticeMutation {
    /// ADMIN. Mails every affected active account a notice in its language
    /// with all five blocks; also publishes an announcement when asked, when
    /// more accounts are affected than CUSTOS_INCIDENT_ANNOUNCE_THRESHOLD, or
    /// when a notice could not be queued. Waits for the mailing up to
    /// CUSTOS_INCIDENT_WAIT_SECONDS; a larger one goes on after the answer
    /// (`complete: false`) and `incidentReport(id:)` follows it.
    async fn report_security_incident(
        &self,
        ctx: &Context<'_>,
        input: SecurityIncidentInput,
    ) -> ApiResult<IncidentReport> {
        let viewer = require_role(ctx, &[Role::Admin])?;
        let audience = match input.audience {
            IncidentAudience::AllAccounts => Audience::AllAccounts,
            IncidentAudience::ListedAccounts => {
                let ids = input.account_ids.unwrap_or_default();
                let mut parsed = Vec::with_capacity(ids.len());
                for id in &ids {
                    // A malformed id names no account: the same answer as an unknown one.
                    parsed.push(
                        uuid::Uuid::parse_str(id.as_str())
                            .map_err(|_| ApiError::from(NoticeError::UnknownAccount))?,
                    );
                }
                Audience::Listed(parsed)
            }
        };
        let progress = service::report_incident(
            state(ctx)?,
            viewer.account_id,
            IncidentRequest {
                content: IncidentContent {
                    title: input.title,
                    what_happened: input.what_happened,
                    possible_impact: input.possible_impact,
                    measures_taken: input.measures_taken,
                    advice_to_users: input.advice_to_users,
                    remedies: input.remedies,
                },
                audience,
                publish_announcement: input.publish_announcement,
            },
        )
        .await?;
        progress.try_into()
    }
}
