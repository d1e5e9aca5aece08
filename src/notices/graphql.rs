//! GraphQL types and thin resolvers for announcements and incident reports.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::service::{self, Audience, ContentBlock, IncidentContent, IncidentRequest, NoticeError};
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

impl From<service::AnnouncementKind> for AnnouncementKindValue {
    fn from(kind: service::AnnouncementKind) -> Self {
        match kind {
            service::AnnouncementKind::SecurityIncident => Self::SecurityIncident,
            service::AnnouncementKind::PolicyUpdate => Self::PolicyUpdate,
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
        let kind = service::AnnouncementKind::parse(&row.kind).ok_or_else(|| {
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

/// What a report did.
#[derive(SimpleObject)]
pub struct IncidentReport {
    /// The public announcement, when one was published.
    announcement: Option<Announcement>,
    /// How many notification emails were queued.
    notified: i32,
}

/// Announcement queries.
#[derive(Default)]
pub struct NoticeQuery;

#[Object]
impl NoticeQuery {
    /// Public announcements (security incidents, policy updates), newest
    /// first. Open to anonymous callers.
    async fn announcements(&self, ctx: &Context<'_>) -> ApiResult<Vec<Announcement>> {
        service::announcements(state(ctx)?.db())
            .await?
            .into_iter()
            .map(Announcement::try_from)
            .collect()
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
    /// when a notice could not be queued.
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
        let outcome = service::report_incident(
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
        Ok(IncidentReport {
            announcement: outcome
                .announcement
                .map(Announcement::try_from)
                .transpose()?,
            notified: i32::try_from(outcome.notified).unwrap_or(i32::MAX),
        })
    }
}
