//! GraphQL types and resolvers for deletion requests and the data export.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    minor_flag,
    service::{self, ErasureError},
    store::RequestStatus,
};
use crate::{
    accounts::Role,
    graphql::{
        errors::{ApiError, ApiResult, ErrorCode},
        messages::Key,
        parse_id, require_role, state,
    },
};

impl From<ErasureError> for ApiError {
    fn from(err: ErasureError) -> Self {
        match err {
            ErasureError::InvalidToken => ApiError::new(ErrorCode::InvalidToken, Key::TokenInvalid),
            ErasureError::NotFound => ApiError::not_found(),
            ErasureError::Invalid(field) => ApiError::bad_input(field, Key::InvalidValue),
            ErasureError::Internal(err) => err.into(),
            ErasureError::StaffAccount => ApiError::bad_input("accountId", Key::StaffNotFlaggable),
            ErasureError::NotFlagged => ApiError::bad_input("accountId", Key::NoMinorFlag),
            ErasureError::Account(err) => err.into(),
        }
    }
}

impl From<super::export::ExportError> for ApiError {
    fn from(err: super::export::ExportError) -> Self {
        ApiError::internal(&err)
    }
}

/// Where a deletion request stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeletionStatus {
    /// Waiting for the emailed link.
    AwaitingConfirmation,
    /// Confirmed; erased after `purgeAfter`.
    Scheduled,
    /// Cancelled.
    Cancelled,
    /// Erased.
    Completed,
}

/// A request to delete an account.
#[derive(SimpleObject)]
pub struct DeletionRequest {
    id: ID,
    status: DeletionStatus,
    requested_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    /// When the purge may run: confirmation time plus the grace window in working days.
    purge_after: Option<DateTime<Utc>>,
}

impl From<entity::deletion_request::Model> for DeletionRequest {
    fn from(row: entity::deletion_request::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            status: match RequestStatus::parse(&row.status) {
                Some(RequestStatus::Scheduled) => DeletionStatus::Scheduled,
                Some(RequestStatus::Cancelled) => DeletionStatus::Cancelled,
                Some(RequestStatus::Completed) => DeletionStatus::Completed,
                _ => DeletionStatus::AwaitingConfirmation,
            },
            requested_at: row.requested_at,
            confirmed_at: row.confirmed_at,
            purge_after: row.purge_after,
        }
    }
}

/// Who asks for deletion: the username and the bound email.
#[derive(InputObject)]
pub struct RequestDeletionInput {
    username: String,
    email: String,
}

/// Export queries.
#[derive(Default)]
pub struct ErasureQuery;

#[Object]
impl ErasureQuery {
    /// Everything held about the signed-in person, as one JSON document.
    async fn my_data(&self, ctx: &Context<'_>) -> ApiResult<Json<serde_json::Value>> {
        let viewer = crate::graphql::viewer(ctx)?;
        Ok(Json(super::export::my_data(state(ctx)?, viewer).await?))
    }
}

/// Deletion mutations.
#[derive(Default)]
pub struct ErasureMutation;

#[Object]
impl ErasureMutation {
    /// Always true: a confirmation link goes to the bound email when username and email match one account.
    async fn request_account_deletion(
        &self,
        ctx: &Context<'_>,
        input: RequestDeletionInput,
    ) -> ApiResult<bool> {
        crate::ratelimit::check(ctx, crate::ratelimit::Action::RequestAccountDeletion).await?;
        service::request_deletion(state(ctx)?, &input.username, &input.email).await?;
        Ok(true)
    }

    /// Confirms deletion with the token of a `/confirm-deletion` link.
    async fn confirm_account_deletion(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<DeletionRequest> {
        Ok(service::confirm(state(ctx)?, &token).await?.into())
    }

    /// Cancels deletion with the token of a `/cancel-deletion` link, until the purge has run.
    async fn cancel_account_deletion(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<DeletionRequest> {
        Ok(service::cancel(state(ctx)?, &token).await?.into())
    }

    /// SUPPORT or ADMIN: an account found to belong to a minor without verifiable guardian consent stops being processed at once and is erased after the working-day window, unless an ADMIN lifts a mistaken flag. Never staff accounts.
    async fn flag_minor_without_guardian_consent(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(
            desc = "Why: kept in the audit trail. Required (nullable only so older calls still parse, and are refused)."
        )]
        reason: Option<String>,
    ) -> ApiResult<DeletionRequest> {
        let staff = require_role(ctx, &[Role::Support, Role::Admin])?;
        let account_id = parse_id(&account_id, "accountId")?;
        let state = state(ctx)?;
        let request =
            minor_flag::flag(state, staff.account_id, account_id, reason.as_deref()).await?;
        Ok(request.into())
    }

    /// ADMIN. Lifts a mistaken minor flag before the purge: the erasure is cancelled and the account active again; the account and its guardian are told.
    async fn lift_minor_flag(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(desc = "Why: kept in the audit trail.")] reason: String,
    ) -> ApiResult<DeletionRequest> {
        let admin = require_role(ctx, &[Role::Admin])?;
        let account_id = parse_id(&account_id, "accountId")?;
        let request =
            minor_flag::lift(state(ctx)?, admin.account_id, account_id, Some(&reason)).await?;
        Ok(request.into())
    }
}

/// The deletion request shown on `Account.deletionRequest`: the open one,
/// else the newest.
pub async fn for_account(
    ctx: &Context<'_>,
    account_id: uuid::Uuid,
) -> ApiResult<Option<DeletionRequest>> {
    let db = state(ctx)?.db();
    let request = match service::open_request(db, account_id).await? {
        Some(open) => Some(open),
        None => service::latest_request(db, account_id).await?,
    };
    Ok(request.map(DeletionRequest::from))
}
