//! GraphQL types and resolvers for the policy.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::policy::{PolicyDocument, PurposeDefinition};
use crate::{
    graphql::{
        active_viewer,
        errors::{ApiError, ApiResult, ErrorCode},
        request_language, state,
    },
    mail::Language,
};

/// A purpose of processing.
#[derive(SimpleObject)]
pub struct Purpose {
    code: String,
    title: String,
    description: String,
    required: bool,
    sensitive: bool,
    data_categories: Vec<String>,
}

impl Purpose {
    fn localized(purpose: &PurposeDefinition, language: Language) -> Self {
        Self {
            code: purpose.code.clone(),
            title: purpose.title.get(language).to_owned(),
            description: purpose.description.get(language).to_owned(),
            required: purpose.required,
            sensitive: purpose.sensitive,
            data_categories: purpose.data_categories.clone(),
        }
    }
}

/// A published version of the privacy policy, in the caller's language.
#[derive(SimpleObject)]
pub struct PolicyVersion {
    version: String,
    published_at: DateTime<Utc>,
    major: bool,
    summary_of_changes: String,
    text: String,
    purposes: Vec<Purpose>,
    /// The language of the texts (`zh-CN` or `en`).
    language: String,
}

impl PolicyVersion {
    fn localized(policy: &PolicyDocument, language: Language) -> Self {
        Self {
            version: policy.version.clone(),
            published_at: policy.published_at,
            major: policy.major,
            summary_of_changes: policy.summary_of_changes.get(language).to_owned(),
            text: policy.text.get(language).to_owned(),
            purposes: policy
                .purposes
                .iter()
                .map(|p| Purpose::localized(p, language))
                .collect(),
            language: language.as_tag().to_owned(),
        }
    }
}

/// Policy queries.
#[derive(Default)]
pub struct ConsentQuery;

#[Object]
impl ConsentQuery {
    /// The current privacy policy. Texts follow `language` when given,
    /// else the request's `Accept-Language` (default zh-CN).
    async fn policy(
        &self,
        ctx: &Context<'_>,
        language: Option<String>,
    ) -> ApiResult<PolicyVersion> {
        let language = language
            .as_deref()
            .map(Language::from_tag)
            .unwrap_or_else(|| request_language(ctx));
        let state = state(ctx)?;
        Ok(PolicyVersion::localized(state.policy(), language))
    }
}

/// The current state of one purpose for the caller.
#[derive(SimpleObject)]
pub struct ConsentState {
    purpose: String,
    granted: bool,
    policy_version: String,
    updated_at: DateTime<Utc>,
}

impl From<super::service::ConsentState> for ConsentState {
    fn from(state: super::service::ConsentState) -> Self {
        Self {
            purpose: state.purpose,
            granted: state.granted,
            policy_version: state.policy_version,
            updated_at: state.updated_at,
        }
    }
}

/// One decision in the caller's consent ledger.
#[derive(SimpleObject)]
pub struct ConsentEvent {
    id: ID,
    purpose: String,
    granted: bool,
    policy_version: String,
    at: DateTime<Utc>,
    /// Where the decision was made: SIGNUP, SETTINGS, POLICY_UPDATE, ...
    source: String,
}

impl From<super::service::ConsentError> for ApiError {
    fn from(err: super::service::ConsentError) -> Self {
        use super::service::ConsentError;
        match err {
            ConsentError::UnknownPurpose(_) => {
                ApiError::bad_input("purpose", "There is no such purpose in the current policy.")
            }
            ConsentError::RequiredPurpose => ApiError::new(
                ErrorCode::RequiredPurpose,
                "This purpose is needed to run your account and cannot be withdrawn. To stop all processing, delete your account.",
            )
            .with_field("purpose")
            .with_extension("alternative", "requestAccountDeletion"),
            ConsentError::Database(err) => ApiError::internal(&err),
        }
    }
}

/// Consent queries of the signed-in person.
#[derive(Default)]
pub struct ConsentLedgerQuery;

#[Object]
impl ConsentLedgerQuery {
    /// Every consent decision the caller made, oldest first.
    async fn my_consent_history(&self, ctx: &Context<'_>) -> ApiResult<Vec<ConsentEvent>> {
        let viewer = active_viewer(ctx)?;
        let events = super::service::history(state(ctx)?.db(), viewer.account_id).await?;
        Ok(events
            .into_iter()
            .map(|e| ConsentEvent {
                id: ID(e.id.to_string()),
                purpose: e.purpose,
                granted: e.granted,
                policy_version: e.policy_version,
                at: e.created_at,
                source: e.source,
            })
            .collect())
    }
}

/// Consent mutations.
#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Grants or withdraws one purpose: the same single call either way.
    async fn record_consent(
        &self,
        ctx: &Context<'_>,
        purpose: String,
        granted: bool,
    ) -> ApiResult<ConsentState> {
        let viewer = active_viewer(ctx)?;
        let state = state(ctx)?;
        let recorded = super::service::record(
            state.db(),
            viewer.account_id,
            state.policy(),
            &purpose,
            granted,
            state.clock().now(),
        )
        .await?;
        tracing::info!(account_id = %viewer.account_id, purpose = %recorded.purpose, granted, "consent recorded");
        Ok(recorded.into())
    }
}
