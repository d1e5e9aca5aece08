//! GraphQL types and thin resolvers for accounts and sessions.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{
    GuardianConsent, Role,
    password::WeakPassword,
    service::{self, AccountError, AccountRecord, AgeDeclaration as StoredAge, SignupRequest},
    sessions::{self, SessionInfo},
    username::UsernameShapeError,
};
use crate::{
    consent::{consent_state::ConsentState, service as consent},
    graphql::{
        EndedSession, active_viewer,
        errors::{ApiError, ApiResult, ErrorCode},
        messages::{Key, Message},
        parse_id, request_language, state, viewer,
    },
    mail::Language,
    settings::{Environment, Settings},
};

/// Name of the session cookie set by `login`.
pub const SESSION_COOKIE: &str = "custos_session";

/// The cookie's attributes: every `Set-Cookie` of it carries the same ones,
/// or a browser would keep the one it was meant to replace.
///
/// Secure outside development, and whenever the binary serves TLS.
fn cookie_attributes(settings: &Settings) -> &'static str {
    if settings.env == Environment::Development && settings.http.tls.is_none() {
        "Path=/; HttpOnly; SameSite=Lax"
    } else {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    }
}

/// The `Set-Cookie` value that carries a session token for `max_age` seconds.
pub fn session_cookie(settings: &Settings, token: &str, max_age: i64) -> String {
    let attributes = cookie_attributes(settings);
    format!("{SESSION_COOKIE}={token}; {attributes}; Max-Age={max_age}")
}

/// The `Set-Cookie` value that removes the session cookie (the page cannot:
/// it is HttpOnly).
pub fn cleared_session_cookie(settings: &Settings) -> String {
    let attributes = cookie_attributes(settings);
    format!("{SESSION_COOKIE}=; {attributes}; Max-Age=0")
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::UsernameShape(shape) => ApiError::bad_input(
                "username",
                match shape {
                    UsernameShapeError::Length => Message::new(Key::UsernameLength)
                        .arg("min", super::username::MIN_USERNAME_CHARS)
                        .arg("max", super::username::MAX_USERNAME_CHARS),
                    UsernameShapeError::Characters => Key::UsernameCharacters.into(),
                },
            ),
            AccountError::UsernameNotAllowed => {
                ApiError::new(ErrorCode::UsernameNotAllowed, Key::UsernameNotAllowed)
                    .with_field("username")
            }
            AccountError::Email(_) => ApiError::bad_input("email", Key::EmailInvalid),
            AccountError::GuardianEmail(reason) => ApiError::bad_input(
                "guardianEmail",
                match reason {
                    "required" => Key::GuardianEmailRequired,
                    "same as the account's" => Key::GuardianEmailSame,
                    _ => Key::GuardianEmailInvalid,
                },
            ),
            AccountError::WeakPassword(reason) => {
                let message = match &reason {
                    WeakPassword::TooShort => Message::new(Key::PasswordTooShort)
                        .arg("min", super::password::MIN_PASSWORD_CHARS),
                    WeakPassword::TooLong => Message::new(Key::PasswordTooLong)
                        .arg("max", super::password::MAX_PASSWORD_CHARS),
                    WeakPassword::SameAsIdentity => Key::PasswordSameAsIdentity.into(),
                    _ => Key::PasswordCommon.into(),
                };
                ApiError::new(ErrorCode::WeakPassword, message)
                    .with_field("password")
                    .with_extension("reason", WeakPasswordReason::from(&reason).as_str())
            }
            AccountError::UsernameTaken => {
                ApiError::new(ErrorCode::UsernameTaken, Key::UsernameTaken).with_field("username")
            }
            AccountError::PolicyVersionMismatch => {
                ApiError::new(ErrorCode::PolicyVersionMismatch, Key::PolicyChanged)
                    .with_field("acceptPolicyVersion")
            }
            AccountError::UnknownPurpose => {
                ApiError::bad_input("grantPurposes", Key::GrantedPurposeUnknown)
            }
            AccountError::InvalidToken => ApiError::new(ErrorCode::InvalidToken, Key::TokenInvalid),
            AccountError::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, Key::InvalidCredentials)
            }
            AccountError::RateLimited {
                retry_after_seconds,
            } => crate::ratelimit::rate_limited(retry_after_seconds),
            AccountError::SameEmail => ApiError::bad_input("newEmail", Key::EmailUnchanged),
            AccountError::Invalid(errors) => {
                ApiError::all_of(errors.into_iter().map(ApiError::from))
                    .unwrap_or_else(|| ApiError::internal(&"an empty list of invalid fields"))
            }
            AccountError::DeletionScheduled { purge_after } => {
                let error =
                    ApiError::new(ErrorCode::AccountDeletionScheduled, Key::DeletionScheduled);
                match purge_after {
                    // The same form as every DateTime field.
                    Some(at) => error.with_extension("purgeAfter", at.to_rfc3339()),
                    None => error,
                }
            }
            AccountError::NotFound => ApiError::not_found(),
            AccountError::Internal(err) => err.into(),
        }
    }
}

/// Why a password was refused: `extensions.reason` of a `WEAK_PASSWORD`
/// error, for forms that say more than the message.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WeakPasswordReason {
    /// Fewer than 8 characters.
    TooShort,
    /// More than 128 characters.
    TooLong,
    /// The same as the username or email.
    SameAsIdentity,
    /// One of the most common passwords.
    Common,
}

impl WeakPasswordReason {
    /// The wire name, as in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "TOO_SHORT",
            Self::TooLong => "TOO_LONG",
            Self::SameAsIdentity => "SAME_AS_IDENTITY",
            Self::Common => "COMMON",
        }
    }
}

impl From<&WeakPassword> for WeakPasswordReason {
    fn from(reason: &WeakPassword) -> Self {
        match reason {
            WeakPassword::TooShort => Self::TooShort,
            WeakPassword::TooLong => Self::TooLong,
            WeakPassword::SameAsIdentity => Self::SameAsIdentity,
            WeakPassword::Common => Self::Common,
        }
    }
}

/// Roles.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "Role")]
pub enum RoleValue {
    /// A person using the platform.
    User,
    /// Support staff.
    Support,
    /// Administrator.
    Admin,
}

impl From<Role> for RoleValue {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Support => Self::Support,
            Role::Admin => Self::Admin,
        }
    }
}

/// What the person declared about their age at signup.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "AgeDeclaration")]
pub enum AgeDeclarationValue {
    /// 18 or older.
    Adult,
    /// 16 or 17 and living mainly on their own income: treated as an adult.
    #[graphql(name = "SELF_SUPPORTING_16_PLUS")]
    SelfSupporting16Plus,
    /// Under 18: a guardian must consent before the account is usable.
    Minor,
}

/// Where guardian consent stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GuardianConsent")]
pub enum GuardianConsentValue {
    /// Not a minor.
    NotNeeded,
    /// Waiting for the guardian.
    Pending,
    /// The guardian agreed.
    Granted,
    /// The guardian refused.
    Refused,
}

impl GuardianConsentValue {
    fn from_state(state: GuardianConsent) -> Self {
        match state {
            GuardianConsent::Pending => Self::Pending,
            GuardianConsent::Granted => Self::Granted,
            GuardianConsent::Refused => Self::Refused,
            GuardianConsent::NotNeeded => Self::NotNeeded,
        }
    }
}

// The plain fields come from the account row; the consent states, the
// policy check and the deletion request are read only when asked for.
/// A person's account.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Account {
    id: ID,
    username: String,
    email: String,
    email_verified: bool,
    role: RoleValue,
    created_at: DateTime<Utc>,
    guardian_consent: GuardianConsentValue,
    accepted_policy_version: Option<String>,
    /// Language of the mail Custos sends, and of messages to requests that
    /// name none in `Accept-Language` (`zh-CN` or `en`).
    language: String,
    #[graphql(skip)]
    account_id: uuid::Uuid,
}

impl From<AccountRecord> for Account {
    fn from(record: AccountRecord) -> Self {
        Self {
            id: ID(record.id.to_string()),
            username: record.username,
            email: record.email,
            email_verified: record.email_verified,
            role: record.role.into(),
            created_at: record.created_at,
            guardian_consent: GuardianConsentValue::from_state(record.guardian_consent),
            accepted_policy_version: record.accepted_policy_version,
            language: record.language.as_tag().to_owned(),
            account_id: record.id,
        }
    }
}

#[ComplexObject]
impl Account {
    /// True when a newer policy version than the accepted one awaits acceptance.
    async fn needs_policy_acceptance(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let state = state(ctx)?;
        Ok(state
            .policy()
            .needs_acceptance(state.db(), self.accepted_policy_version.as_deref())
            .await?)
    }

    /// The current state of every purpose of the current policy.
    async fn consents(&self, ctx: &Context<'_>) -> ApiResult<Vec<ConsentState>> {
        let state = state(ctx)?;
        let db = state.db();
        let current = state.policy().current(db).await?;
        Ok(
            consent::current_states(db, self.account_id, &current.document)
                .await?
                .into_iter()
                .map(ConsentState::from)
                .collect(),
        )
    }

    /// The open deletion request, or else the latest one.
    async fn deletion_request(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<crate::erasure::graphql::DeletionRequest>> {
        crate::erasure::graphql::for_account(ctx, self.account_id).await
    }
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct Session {
    id: ID,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    current: bool,
}

impl From<SessionInfo> for Session {
    fn from(info: SessionInfo) -> Self {
        Self {
            id: ID(info.id.to_string()),
            created_at: info.created_at,
            last_seen_at: info.last_seen_at,
            expires_at: info.expires_at,
            user_agent: info.user_agent,
            current: info.current,
        }
    }
}

/// Signup input.
#[derive(InputObject)]
pub struct SignupInput {
    username: String,
    email: String,
    password: String,
    /// Must equal the current policy version.
    accept_policy_version: String,
    /// Codes of optional purposes granted at signup; required purposes are implied.
    grant_purposes: Option<Vec<String>>,
    age: AgeDeclarationValue,
    /// Required when age is MINOR.
    guardian_email: Option<String>,
}

/// Signup answer.
#[derive(SimpleObject)]
pub struct SignupPayload {
    /// True whenever the input is valid. A verification email goes to the address; if the address already has an account, its owner is told instead and nothing else is revealed.
    accepted: bool,
}

/// Login input.
#[derive(InputObject)]
pub struct LoginInput {
    /// Username or email.
    login: String,
    password: String,
}

/// A new session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for API clients; browsers also receive it as an HttpOnly cookie.
    token: String,
    expires_at: DateTime<Utc>,
    account: Account,
}

/// Whether a username can be taken, with the same code signup would give.
#[derive(SimpleObject)]
pub struct UsernameCheck {
    allowed: bool,
    /// USERNAME_TAKEN, USERNAME_NOT_ALLOWED or BAD_USER_INPUT when not allowed.
    code: Option<ErrorCode>,
    /// Why, in the request's language.
    message: Option<String>,
    /// The catalog key of `message` (as `extensions.messageKey` of errors).
    message_key: Option<String>,
}

/// What staff see of an account they looked up: enough to act on it, no more.
#[derive(SimpleObject)]
pub struct StaffAccount {
    id: ID,
    username: String,
    email_masked: String,
    role: RoleValue,
}

/// Account queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// Null when not signed in.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        let Ok(viewer) = viewer(ctx) else {
            return Ok(None);
        };
        // The row was read with the session; no second read.
        let record = service::open(state(ctx)?, &viewer.account)
            .await
            .map_err(AccountError::from)?;
        Ok(Some(Account::from(record)))
    }

    /// Public: whether a username can be taken, for sign-up and rename
    /// forms. Answers what `signup` would for that name (shape, policy,
    /// taken), worded in the request's language; rate-limited like sign-up.
    async fn username_check(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> ApiResult<UsernameCheck> {
        crate::ratelimit::check(ctx, crate::ratelimit::Action::UsernameCheck).await?;
        match super::lookup::check_username_free(state(ctx)?, &username).await {
            Ok(()) => Ok(UsernameCheck {
                allowed: true,
                code: None,
                message: None,
                message_key: None,
            }),
            Err(
                err @ (AccountError::UsernameShape(_)
                | AccountError::UsernameNotAllowed
                | AccountError::UsernameTaken),
            ) => {
                let refusal = ApiError::from(err);
                Ok(UsernameCheck {
                    allowed: false,
                    code: Some(refusal.code),
                    message: Some(refusal.message.render(request_language(ctx))),
                    message_key: Some(refusal.message.key().as_str().to_owned()),
                })
            }
            Err(other) => Err(other.into()),
        }
    }

    /// SUPPORT or ADMIN: the account with this exact username or email,
    /// audit-logged (`account.find`); null when none has it. A value that
    /// is neither a username nor an address is BAD_USER_INPUT on `login`.
    async fn find_account(
        &self,
        ctx: &Context<'_>,
        login: String,
    ) -> ApiResult<Option<StaffAccount>> {
        let staff = crate::graphql::require_role(ctx, &[Role::Support, Role::Admin])?;
        let found = super::lookup::find_for_staff(state(ctx)?, staff.account_id, &login)
            .await
            .map_err(|err| match err {
                AccountError::Email(_) | AccountError::UsernameShape(_) => {
                    ApiError::bad_input("login", Key::LoginShape)
                }
                other => other.into(),
            })?;
        Ok(found.map(|view| StaffAccount {
            id: ID(view.id.to_string()),
            username: view.username,
            email_masked: view.email_masked,
            role: view.role.into(),
        }))
    }

    /// The caller's live sessions, newest first.
    async fn my_sessions(&self, ctx: &Context<'_>) -> ApiResult<Vec<Session>> {
        let viewer = active_viewer(ctx)?;
        let sessions = sessions::list(state(ctx)?, viewer).await?;
        Ok(sessions.into_iter().map(Session::from).collect())
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutation;

fn secret(value: String) -> SecretString {
    SecretString::from(value)
}

#[Object]
impl AccountMutation {
    /// Opens an account.
    async fn signup(&self, ctx: &Context<'_>, input: SignupInput) -> ApiResult<SignupPayload> {
        crate::ratelimit::check(ctx, crate::ratelimit::Action::Signup).await?;
        let state = state(ctx)?;
        service::signup(
            state,
            SignupRequest {
                username: input.username,
                email: input.email,
                password: secret(input.password),
                accept_policy_version: input.accept_policy_version,
                grant_purposes: input.grant_purposes.unwrap_or_default(),
                age: match input.age {
                    AgeDeclarationValue::Adult => StoredAge::Adult,
                    AgeDeclarationValue::SelfSupporting16Plus => StoredAge::SelfSupporting16Plus,
                    AgeDeclarationValue::Minor => StoredAge::Minor,
                },
                guardian_email: input.guardian_email,
                language: request_language(ctx),
            },
        )
        .await?;
        Ok(SignupPayload { accepted: true })
    }

    /// Uses the token of a `/verify-email` link.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> ApiResult<bool> {
        service::verify_email(state(ctx)?, &token).await?;
        Ok(true)
    }

    /// Sends a new verification link (at most 3 an hour; the answer is always true).
    async fn resend_verification_email(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let viewer = active_viewer(ctx)?;
        service::resend_verification(state(ctx)?, viewer.account_id).await?;
        Ok(true)
    }

    /// Signs in by username or email.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> ApiResult<AuthPayload> {
        crate::ratelimit::check(ctx, crate::ratelimit::Action::Login).await?;
        let state = state(ctx)?;
        let user_agent = ctx
            .data_opt::<crate::graphql::UserAgent>()
            .map(|ua| ua.0.as_str());
        let client = ctx.data_opt::<crate::ratelimit::ClientIp>().map(|ip| ip.0);
        let signed_in = sessions::login(
            state,
            &input.login,
            &secret(input.password),
            user_agent,
            client,
        )
        .await?;
        let token = signed_in.token.expose_secret().to_owned();
        let max_age = (signed_in.expires_at - state.clock().now())
            .num_seconds()
            .max(0);
        ctx.append_http_header(
            "set-cookie",
            session_cookie(state.settings(), &token, max_age),
        );
        Ok(AuthPayload {
            token,
            expires_at: signed_in.expires_at,
            account: Account::from(signed_in.account),
        })
    }

    /// Ends the current session and removes the session cookie. With a
    /// session that had already ended (expired, revoked, unknown) it
    /// answers true as well: the cookie is removed all the same and nobody
    /// is signed in afterwards, which is what the page asked for. Without
    /// any session it is UNAUTHENTICATED: the page sent no credentials.
    async fn logout(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let state = state(ctx)?;
        let Ok(viewer) = viewer(ctx) else {
            // The HTTP layer removes the dead session's cookie.
            return match ctx.data_opt::<EndedSession>() {
                Some(_) => Ok(true),
                None => Err(ApiError::unauthenticated()),
            };
        };
        sessions::revoke(state, viewer.account_id, viewer.session_id).await?;
        ctx.append_http_header("set-cookie", cleared_session_cookie(state.settings()));
        Ok(true)
    }

    /// Ends one of the caller's sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let viewer = active_viewer(ctx)?;
        let session_id = parse_id(&id, "id")?;
        sessions::revoke(state(ctx)?, viewer.account_id, session_id).await?;
        Ok(true)
    }

    /// Ends every session of the caller but the current one; returns how many ended.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let viewer = viewer(ctx)?;
        let ended =
            sessions::revoke_others(state(ctx)?, viewer.account_id, viewer.session_id).await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// The language of the account's mail and messages (zh-CN or en).
    async fn set_language(&self, ctx: &Context<'_>, language: String) -> ApiResult<Account> {
        let viewer = viewer(ctx)?;
        // Exactly the two tags: a look-alike such as `fr` or `zh-TW` is
        // refused rather than quietly mapped to something else.
        let language = match language.as_str() {
            "zh-CN" => Language::ZhCn,
            "en" => Language::En,
            _ => {
                return Err(ApiError::bad_input("language", Key::UnsupportedLanguage));
            }
        };
        let record = service::set_language(state(ctx)?, viewer.account_id, language).await?;
        Ok(Account::from(record))
    }

    /// Changes the password; other sessions end, pending reset and
    /// email-change links die, and a notice is mailed. Password checks are
    /// throttled per account and per client (RATE_LIMITED), one a request.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> ApiResult<bool> {
        let viewer = active_viewer(ctx)?;
        crate::ratelimit::check(ctx, crate::ratelimit::Action::PasswordCheck).await?;
        service::change_password(
            state(ctx)?,
            viewer.account_id,
            viewer.session_id,
            &secret(current_password),
            &secret(new_password),
        )
        .await
        .map_err(|err| match err {
            AccountError::InvalidCredentials => ApiError::from(err).with_field("currentPassword"),
            AccountError::WeakPassword(_) => {
                let mut api = ApiError::from(err);
                api.field = Some("newPassword");
                api
            }
            other => other.into(),
        })?;
        Ok(true)
    }

    /// Changes the username.
    async fn change_username(&self, ctx: &Context<'_>, username: String) -> ApiResult<Account> {
        let viewer = active_viewer(ctx)?;
        let record = service::change_username(state(ctx)?, viewer.account_id, &username).await?;
        Ok(Account::from(record))
    }

    /// Starts an email change: a notice to the old address, and a link to the
    /// new one (or, if it already has an account, a notice there instead;
    /// the answer is the same). Password checks are throttled per account
    /// and per client (RATE_LIMITED), one a request.
    async fn change_email(
        &self,
        ctx: &Context<'_>,
        new_email: String,
        password: String,
    ) -> ApiResult<bool> {
        let viewer = active_viewer(ctx)?;
        crate::ratelimit::check(ctx, crate::ratelimit::Action::PasswordCheck).await?;
        service::change_email(
            state(ctx)?,
            viewer.account_id,
            &new_email,
            &secret(password),
        )
        .await
        .map_err(|err| match err {
            AccountError::Email(_) => ApiError::bad_input("newEmail", Key::EmailInvalid),
            other => other.into(),
        })?;
        Ok(true)
    }
}

impl From<super::roles::RoleError> for ApiError {
    fn from(err: super::roles::RoleError) -> Self {
        use super::roles::RoleError;
        match err {
            RoleError::LastAdmin => ApiError::bad_input("role", Key::LastAdmin),
            RoleError::NotAdmin => ApiError::forbidden(),
            RoleError::NotFound => ApiError::not_found(),
            RoleError::Internal(err) => err.into(),
        }
    }
}

/// Staff role management.
#[derive(Default)]
pub struct RoleMutation;

#[Object]
impl RoleMutation {
    /// ADMIN. Gives an account a role; audit-logged as `role.set`. Demoting
    /// the last active ADMIN is refused with BAD_USER_INPUT on `role`; an
    /// unknown or malformed account id is NOT_FOUND.
    async fn set_role(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        role: RoleValue,
    ) -> ApiResult<Account> {
        let viewer = crate::graphql::require_role(ctx, &[Role::Admin])?;
        let account_id = parse_id(&account_id, "accountId")?;
        let role = match role {
            RoleValue::User => Role::User,
            RoleValue::Support => Role::Support,
            RoleValue::Admin => Role::Admin,
        };
        let record =
            super::roles::set_role(state(ctx)?, viewer.account_id, account_id, role).await?;
        Ok(Account::from(record))
    }
}
