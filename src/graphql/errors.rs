//! The contract's error codes and the one error type every resolver returns.
//!
//! Every failure reaches the client as a GraphQL error whose
//! `extensions.code` is an [`ErrorCode`] and whose `extensions.messageKey`
//! names its message in the catalog ([`super::messages`]). Internal causes
//! are logged here, inside the request's span (which carries the request
//! id), and never shown: the client sees a short message and, for
//! `INTERNAL`, the request id (added by the HTTP layer, which knows it).
//!
//! An [`ApiError`] is put into words by the HTTP layer, in the request's
//! language: it travels to it as the `source` of the GraphQL error, with
//! any further field errors of the same input ([`ApiError::also`]), which
//! the HTTP layer turns into errors of their own.

use std::sync::Arc;

use async_graphql::Enum;

use super::messages::{Key, Message};
use crate::mail::Language;

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
    /// The document does not parse.
    GraphqlParseFailed,
    /// The document does not validate against the schema (a developer's error, not the person's).
    GraphqlValidationFailed,
    /// The HTTP request is not a GraphQL request this endpoint takes (wrong
    /// media type, method, body or size): the client's error, not the person's.
    BadRequest,
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
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::BadRequest => "BAD_REQUEST",
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
    /// What a person is told, as a catalog key and its arguments, with
    /// nobody's personal data in it.
    pub message: Message,
    /// For `BAD_USER_INPUT` and its kin: the input field at fault.
    pub field: Option<&'static str>,
    /// Further extensions, e.g. `retryAfterSeconds` or `purpose`.
    pub extra: Vec<(&'static str, async_graphql::Value)>,
    /// The other invalid fields of the same input, each answered as an
    /// error of its own after this one, so a form learns all of them at
    /// once while a client that reads only the first error sees what it
    /// always saw.
    pub also: Vec<ApiError>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<Message>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            extra: Vec::new(),
            also: Vec::new(),
        }
    }

    /// A `BAD_USER_INPUT` naming the field at fault.
    pub fn bad_input(field: &'static str, message: impl Into<Message>) -> Self {
        Self::new(ErrorCode::BadUserInput, message).with_field(field)
    }

    /// The first of `errors`, carrying the others (see [`ApiError::also`]);
    /// `None` when there are none.
    pub fn all_of(errors: impl IntoIterator<Item = ApiError>) -> Option<Self> {
        let mut errors = errors.into_iter();
        let mut first = errors.next()?;
        first.also.extend(errors);
        Some(first)
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
        Self::new(ErrorCode::Unauthenticated, Key::Unauthenticated)
    }

    /// `FORBIDDEN`.
    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, Key::Forbidden)
    }

    /// `NOT_FOUND`.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, Key::NotFound)
    }

    /// `INTERNAL`, logging the cause (never shown) in the request's span.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, Key::Internal)
    }

    /// The extensions of this error alone (not of [`ApiError::also`]):
    /// `code`, `messageKey`, `field` and the extra ones.
    pub fn extensions(&self) -> async_graphql::ErrorExtensionValues {
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", self.code.as_str());
        ext.set("messageKey", self.message.key().as_str());
        if let Some(field) = self.field {
            ext.set("field", field);
        }
        for (name, value) in &self.extra {
            ext.set(*name, value.clone());
        }
        ext
    }

    /// The GraphQL errors this error answers, in `language`: itself, then
    /// each of [`ApiError::also`], all at `template`'s path and locations.
    pub fn server_errors(
        &self,
        template: &async_graphql::ServerError,
        language: Language,
    ) -> Vec<async_graphql::ServerError> {
        std::iter::once(self)
            .chain(self.also.iter())
            .map(|error| {
                let mut server =
                    async_graphql::ServerError::new(error.message.render(language), None);
                server.locations = template.locations.clone();
                server.path = template.path.clone();
                server.extensions = Some(error.extensions());
                server
            })
            .collect()
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        // Worded in the default language until the HTTP layer, which knows
        // the request's, words it again from the source.
        async_graphql::Error {
            message: err.message.render(Language::default()),
            extensions: Some(err.extensions()),
            source: Some(Arc::new(err)),
        }
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    /// A full password-hashing queue is the caller's to retry in a moment;
    /// anything else is ours.
    fn from(err: crate::crypto::CryptoError) -> Self {
        match err {
            crate::crypto::CryptoError::Busy => rate_limited(1),
            other => Self::internal(&other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(&err)
    }
}

impl From<crate::error::Internal> for ApiError {
    /// Every domain's internal failures, answered alike: the cause (not
    /// the domain's wrapping of it) is logged.
    fn from(err: crate::error::Internal) -> Self {
        use crate::error::Internal;
        match err {
            Internal::Crypto(err) => err.into(),
            other => Self::internal(other.cause()),
        }
    }
}

/// The result type of resolvers.
pub type ApiResult<T> = Result<T, ApiError>;

/// `RATE_LIMITED` with `extensions.retryAfterSeconds`.
pub fn rate_limited(retry_after_seconds: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        Message::new(Key::RateLimited).arg("seconds", retry_after_seconds.max(1)),
    )
    .with_extension(
        "retryAfterSeconds",
        async_graphql::Value::Number(retry_after_seconds.into()),
    )
}

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
        let account = ApiError::from(crate::accounts::service::AccountError::from(
            CryptoError::Busy,
        ));
        assert_eq!(account.code, ErrorCode::RateLimited);
        let recovery = ApiError::from(crate::recovery::service::RecoveryError::from(
            CryptoError::Busy,
        ));
        assert_eq!(recovery.code, ErrorCode::RateLimited);
    }
}
