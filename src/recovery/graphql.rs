//! Thin resolvers for password recovery.

use async_graphql::{Context, Object};
use secrecy::SecretString;

use super::service::{self, RecoveryError};
use crate::{
    accounts::service::AccountError,
    graphql::{
        errors::{ApiError, ApiResult, ErrorCode},
        messages::Key,
        state,
    },
    ratelimit::{self, Action},
};

impl From<RecoveryError> for ApiError {
    fn from(err: RecoveryError) -> Self {
        match err {
            RecoveryError::Email(_) => ApiError::bad_input("email", Key::EmailInvalid),
            RecoveryError::InvalidToken => {
                ApiError::new(ErrorCode::InvalidToken, Key::ResetTokenInvalid)
            }
            RecoveryError::WeakPassword(reason) => {
                // Same message and reason codes as everywhere else a
                // password is chosen; only the field differs.
                let mut api = ApiError::from(AccountError::WeakPassword(reason));
                api.field = Some("newPassword");
                api
            }
            RecoveryError::Internal(err) => err.into(),
        }
    }
}

/// Recovery mutations.
#[derive(Default)]
pub struct RecoveryMutation;

#[Object]
impl RecoveryMutation {
    /// Always true: says nothing about whether the address has an account.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> ApiResult<bool> {
        ratelimit::check(ctx, Action::RequestPasswordReset).await?;
        service::request_password_reset(state(ctx)?, &email).await?;
        Ok(true)
    }

    /// Sets a new password with the token of a `/reset-password` link. Every
    /// session of the account ends; sign in again with the new password.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> ApiResult<bool> {
        ratelimit::check(ctx, Action::ResetPassword).await?;
        let client = ctx.data_opt::<ratelimit::ClientIp>().map(|ip| ip.0);
        let password = SecretString::from(new_password);
        service::reset_password(state(ctx)?, &token, &password, client).await?;
        Ok(true)
    }
}
