//! The contract's error codes and the one error type every resolver returns.
//!
//! Every failure reaches the client as a GraphQL error whose
//! `extensions.code` is an [`ErrorCode`]. Internal causes are logged here,
//! inside the request's span (which carries the request id), and never shown:
//! the client sees a short message and, for `INTERNAL`, the request id (added
//! by the HTTP layer, which knows it).

use async_graphql::{Enum, ErrorExtensions};

/// The error codes of the public contract.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid session.
    Unauthenticated,
    /// Signed in, but without the role or ownership needed.
    Forbidden,
    /// Nothing there, or nothing the caller may see.
    NotFound,
    /// Input failed validation; `extensions.field` names the field.
    BadUserInput,
    /// The username breaks the username policy.
    UsernameNotAllowed,
    /// Another account has that username.
    UsernameTaken,
    /// The password breaks the password policy; `extensions.reason` is a
    /// `WeakPasswordReason`.
    WeakPassword,
    /// Sign-in failed.
    InvalidCredentials,
    /// The token is unknown, used or expired.
    InvalidToken,
    /// Too many attempts; `extensions.retryAfterSeconds` says when to retry.
    RateLimited,
    /// The action mails the address, which is not verified yet.
    EmailNotVerified,
    /// The feature needs a purpose the person has not granted.
    ConsentRequired,
    /// A required purpose cannot be withdrawn (delete the account instead).
    RequiredPurpose,
    /// The accepted policy version is not the current one.
    PolicyVersionMismatch,
    /// A guardian has not consented yet.
    GuardianConsentPending,
    /// The account is scheduled for deletion; at sign-in,
    /// `extensions.purgeAfter` says when it is erased.
    AccountDeletionScheduled,
    /// An automatic persisted query's hash is unknown: send the full text with it.
    PersistedQueryNotFound,
    /// Something failed on our side; `extensions.requestId` identifies it.
    Internal,
}

impl ErrorCode {
    /// The wire name, as in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::UsernameNotAllowed => "USERNAME_NOT_ALLOWED",
            Self::UsernameTaken => "USERNAME_TAKEN",
            Self::WeakPassword => "WEAK_PASSWORD",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::RateLimited => "RATE_LIMITED",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::ConsentRequired => "CONSENT_REQUIRED",
            Self::RequiredPurpose => "REQUIRED_PURPOSE",
            Self::PolicyVersionMismatch => "POLICY_VERSION_MISMATCH",
            Self::GuardianConsentPending => "GUARDIAN_CONSENT_PENDING",
            Self::AccountDeletionScheduled => "ACCOUNT_DELETION_SCHEDULED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error on its way to the client. It has no `Display` on purpose: that
/// would let async-graphql's blanket conversion drop the extensions.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The contract code.
    pub code: ErrorCode,
    /// A short human message with nobody's personal data in it.
    pub message: String,
    /// For `BAD_USER_INPUT` and its kin: the input field at fault.
    pub field: Option<&'static str>,
    /// Further extensions, e.g. `retryAfterSeconds` or `purpose`.
    pub extra: Vec<(&'static str, async_graphql::Value)>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            extra: Vec::new(),
        }
    }

    /// A `BAD_USER_INPUT` naming the field at fault.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message).with_field(field)
    }

    /// Names the input field at fault.
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Adds an extension value.
    pub fn with_extension(
        mut self,
        name: &'static str,
        value: impl Into<async_graphql::Value>,
    ) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// `UNAUTHENTICATED`.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "Please sign in first.")
    }

    /// `FORBIDDEN`.
    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "You are not allowed to do that.")
    }

    /// `NOT_FOUND`.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "Not found.")
    }

    /// `INTERNAL`, logging the cause (never shown) in the request's span.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "Something went wrong on our side. Quote the request id if you contact support.",
        )
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        async_graphql::Error::new(err.message).extend_with(|_, ext| {
            ext.set("code", err.code.as_str());
            if let Some(field) = err.field {
                ext.set("field", field);
            }
            for (name, value) in err.extra {
                ext.set(name, value);
            }
        })
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    /// A full password-hashing queue is the caller's to retry in a moment;
    /// anything else is ours.
    fn from(err: crate::crypto::CryptoError) -> Self {
        match err {
            crate::crypto::CryptoError::Busy => crate::ratelimit::rate_limited(1),
            other => Self::internal(&other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(&err)
    }
}

/// The result type of resolvers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::CryptoError;

    #[test]
    fn a_full_hashing_queue_is_rate_limited_and_other_crypto_failures_internal() {
        let busy = ApiError::from(CryptoError::Busy);
        assert_eq!(busy.code, ErrorCode::RateLimited);
        assert!(
            busy.extra
                .iter()
                .any(|(name, value)| *name == "retryAfterSeconds"
                    && *value == async_graphql::Value::from(1)),
            "{busy:?}"
        );
        assert_eq!(ApiError::from(CryptoError::Hash).code, ErrorCode::Internal);
        // Through the domains that hash.
        let account = ApiError::from(crate::accounts::service::AccountError::Crypto(
            CryptoError::Busy,
        ));
        assert_eq!(account.code, ErrorCode::RateLimited);
        let recovery = ApiError::from(crate::recovery::service::RecoveryError::Crypto(
            CryptoError::Busy,
        ));
        assert_eq!(recovery.code, ErrorCode::RateLimited);
    }
}
