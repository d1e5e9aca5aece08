//! Account rules and their transactions. Personal fields are encrypted and
//! blind-indexed here, at the storage boundary, and nowhere else: callers
//! get [`AccountRecord`]s with plaintext, the database only ciphertext.

use chrono::{DateTime, Utc};
use entity::{account, account_token};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{
    Role,
    email::{Email, InvalidEmail},
    password::{self, WeakPassword},
    username::{Username, UsernameShapeError},
};
use crate::{
    consent::service::{self as consent, ConsentSource},
    crypto::{
        CryptoError,
        fields::{AccountKey, FieldContext},
        tokens,
    },
    mail::{
        Language,
        outbox::{self, OutgoingMail},
        templates,
    },
    ratelimit::{
        RetryAfter,
        login::{self as throttle, Admission},
        password_check,
    },
    state::AppState,
};

/// Blind-index field name for usernames.
pub const USERNAME_INDEX: &str = "username";
/// Blind-index field name for email addresses.
pub const EMAIL_INDEX: &str = "email";

/// Most verification or reset mails sent to one account in an hour; more
/// requests are answered the same way but send nothing.
pub const MAX_MAILS_PER_HOUR: u64 = 3;

/// Stored account states.
pub mod status {
    /// In use.
    pub const ACTIVE: &str = "ACTIVE";
    /// Deletion confirmed: processing has stopped until the purge.
    pub const DELETION_SCHEDULED: &str = "DELETION_SCHEDULED";
}

/// Stored token purposes.
pub mod token_purpose {
    /// Proves the signup address.
    pub const VERIFY_EMAIL: &str = "VERIFY_EMAIL";
    /// Proves a new address before it replaces the old one.
    pub const CHANGE_EMAIL: &str = "CHANGE_EMAIL";
    /// Lets a guardian consent for a minor.
    pub const GUARDIAN_CONSENT: &str = "GUARDIAN_CONSENT";
    /// Lets the holder of the bound address choose a new password.
    pub const RESET_PASSWORD: &str = "RESET_PASSWORD";
}

/// What the person declared about their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeDeclaration {
    /// 18 or older.
    Adult,
    /// 16 or 17 and self-supporting: treated as an adult.
    SelfSupporting16Plus,
    /// Under 18: a guardian must consent.
    Minor,
}

impl AgeDeclaration {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adult => "ADULT",
            Self::SelfSupporting16Plus => "SELF_SUPPORTING_16_PLUS",
            Self::Minor => "MINOR",
        }
    }
}

/// Where guardian consent stands.
pub mod guardian {
    /// Not a minor.
    pub const NOT_NEEDED: &str = "NOT_NEEDED";
    /// Waiting for the guardian.
    pub const PENDING: &str = "PENDING";
    /// The guardian agreed.
    pub const GRANTED: &str = "GRANTED";
    /// The guardian refused.
    pub const REFUSED: &str = "REFUSED";
}

/// What can go wrong with an account operation.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The username has the wrong shape.
    #[error("username: {0}")]
    UsernameShape(#[from] UsernameShapeError),
    /// The username breaks the username policy.
    #[error("username not allowed")]
    UsernameNotAllowed,
    /// The email address is malformed.
    #[error("email: {0}")]
    Email(#[from] InvalidEmail),
    /// The guardian's address is missing or malformed.
    #[error("guardian email")]
    GuardianEmail(&'static str),
    /// The password breaks the policy.
    #[error("password: {0}")]
    WeakPassword(#[from] WeakPassword),
    /// Another account has the username.
    #[error("username taken")]
    UsernameTaken,
    /// The accepted policy version is not the current one.
    #[error("policy version mismatch")]
    PolicyVersionMismatch,
    /// A purpose in the input is not an optional purpose of the policy.
    #[error("unknown purpose")]
    UnknownPurpose,
    /// The token is unknown, used or expired.
    #[error("invalid token")]
    InvalidToken,
    /// Wrong login or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many sign-in attempts for the login name, or password checks
    /// for the account; retry later.
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds to wait.
        retry_after_seconds: u64,
    },
    /// The new email equals the current one.
    #[error("same email")]
    SameEmail,
    /// Several fields of one input are invalid: every one of them, the
    /// first being the one that would have been reported alone.
    #[error("{} invalid fields", .0.len())]
    Invalid(Vec<AccountError>),
    /// The account is scheduled for deletion, to be erased after `purge_after`.
    #[error("deletion scheduled")]
    DeletionScheduled {
        /// When the purge may erase it (unknown only if its request is gone).
        purge_after: Option<DateTime<Utc>>,
    },
    /// The account no longer exists.
    #[error("account not found")]
    NotFound,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::internal_causes!(AccountError);

/// A decrypted account, as services and resolvers see it.
#[derive(Clone)]
pub struct AccountRecord {
    /// Random id.
    pub id: Uuid,
    /// The username as shown.
    pub username: String,
    /// The bound address.
    pub email: String,
    /// Whether the address is proven.
    pub email_verified: bool,
    /// Role.
    pub role: Role,
    /// Mail language.
    pub language: Language,
    /// Stored age declaration.
    pub age_declaration: String,
    /// Stored guardian consent state.
    pub guardian_consent: String,
    /// The policy version last accepted.
    pub accepted_policy_version: Option<String>,
    /// `ACTIVE` or `DELETION_SCHEDULED`.
    pub status: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn context<'a>(table: &'a str, column: &'a str, row_id: Uuid) -> FieldContext<'a> {
    FieldContext {
        table,
        column,
        row_id,
    }
}

/// Encrypts one account field under the account's data key (see
/// [`AppState::write_key`]), bound to its row.
pub fn seal(
    state: &AppState,
    key: &AccountKey,
    column: &str,
    id: Uuid,
    value: &str,
) -> Result<Vec<u8>, CryptoError> {
    state
        .cipher()
        .encrypt_str_under(Some(key), &context("accounts", column, id), value)
}

/// The encrypted fields of an account row.
fn sealed_fields(row: &account::Model) -> [&[u8]; 2] {
    [&row.username_ct, &row.email_ct]
}

/// Whether `err` says an account's data key is gone (destroyed by an
/// erasure, and the row since brought back by a restore): such an account
/// can never be read again, and every path treats it as no account.
pub fn is_unreadable(err: &CryptoError) -> bool {
    matches!(
        err,
        CryptoError::AccountKeyDestroyed | CryptoError::AccountKeyNeeded
    )
}

/// Notes `err` for `account` when it says the account is unreadable
/// (see [`is_unreadable`]) and answers `None` then; any other error stays.
pub fn absent_if_unreadable<T>(
    state: &AppState,
    account: Uuid,
    opened: Result<T, CryptoError>,
) -> Result<Option<T>, CryptoError> {
    match opened {
        Ok(value) => Ok(Some(value)),
        Err(err) if is_unreadable(&err) => {
            state.account_unreadable(account);
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Decrypts an account row outside any open transaction; `None` when its
/// data key is gone and the account counts as absent.
pub async fn open_readable(
    state: &AppState,
    row: &account::Model,
) -> Result<Option<AccountRecord>, CryptoError> {
    absent_if_unreadable(state, row.id, open(state, row).await)
}

/// Decrypts an account row, reading its key with `conn`; `None` when its
/// data key is gone and the account counts as absent.
pub async fn open_readable_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account::Model,
) -> Result<Option<AccountRecord>, CryptoError> {
    absent_if_unreadable(state, row.id, open_in(state, conn, row).await)
}

/// Whether the account's data can still be read (its key is there, or
/// its fields predate per-account keys); `false` is noted for `/metrics`.
pub async fn is_readable(state: &AppState, row: &account::Model) -> Result<bool, CryptoError> {
    let key = state.read_key(row.id, &sealed_fields(row)).await;
    Ok(absent_if_unreadable(state, row.id, key)?.is_some())
}

/// Like [`is_readable`], reading the key with `conn` (which may hold an
/// open transaction).
pub async fn is_readable_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account::Model,
) -> Result<bool, CryptoError> {
    let key = state.read_key_in(conn, row.id, &sealed_fields(row)).await;
    Ok(absent_if_unreadable(state, row.id, key)?.is_some())
}

/// Whether the row's fields are under the account's own data key (rows
/// written before per-account keys are under the keyring until
/// `custos keys rotate`).
pub fn needs_account_key(row: &account::Model) -> bool {
    sealed_fields(row)
        .iter()
        .any(|value| crate::crypto::fields::is_under_account_key(value))
}

/// Decrypts an account row, outside any open transaction.
pub async fn open(state: &AppState, row: &account::Model) -> Result<AccountRecord, CryptoError> {
    let key = state.read_key(row.id, &sealed_fields(row)).await?;
    open_with(state, row, key.as_deref())
}

/// Decrypts an account row, reading its key with `conn` (which may hold an
/// open transaction).
pub async fn open_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account::Model,
) -> Result<AccountRecord, CryptoError> {
    let key = state.read_key_in(conn, row.id, &sealed_fields(row)).await?;
    open_with(state, row, key.as_deref())
}

/// Decrypts the account's guardian address, if it has one, reading its
/// key with `conn` (which may hold an open transaction).
pub async fn open_guardian_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account::Model,
) -> Result<Option<String>, CryptoError> {
    let Some(sealed) = &row.guardian_email_ct else {
        return Ok(None);
    };
    let key = state
        .read_key_in(conn, row.id, &[sealed.as_slice()])
        .await?;
    guardian_email(state, row, key.as_deref())
}

/// Decrypts the account's guardian address, if it has one; `key` is the
/// account's data key (needed when the value is under it).
pub fn guardian_email(
    state: &AppState,
    row: &account::Model,
    key: Option<&AccountKey>,
) -> Result<Option<String>, CryptoError> {
    row.guardian_email_ct
        .as_ref()
        .map(|ct| {
            state.cipher().decrypt_str_under(
                key,
                &context("accounts", "guardian_email", row.id),
                ct,
            )
        })
        .transpose()
}

/// Decrypts an account row with its data key, already fetched (`None`
/// for rows still under the keyring).
pub fn open_with(
    state: &AppState,
    row: &account::Model,
    key: Option<&AccountKey>,
) -> Result<AccountRecord, CryptoError> {
    let cipher = state.cipher();
    Ok(AccountRecord {
        id: row.id,
        username: cipher.decrypt_str_under(
            key,
            &context("accounts", "username", row.id),
            &row.username_ct,
        )?,
        email: cipher.decrypt_str_under(
            key,
            &context("accounts", "email", row.id),
            &row.email_ct,
        )?,
        email_verified: row.email_verified,
        role: Role::from_stored(&row.role),
        language: Language::from_tag(&row.language),
        age_declaration: row.age_declaration.clone(),
        guardian_consent: row.guardian_consent.clone(),
        accepted_policy_version: row.accepted_policy_version.clone(),
        status: row.status.clone(),
        created_at: row.created_at,
    })
}

/// Loads and decrypts an account by id.
pub async fn find<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    id: Uuid,
) -> Result<AccountRecord, AccountError> {
    let row = account::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(AccountError::NotFound)?;
    open_readable_in(state, conn, &row)
        .await?
        .ok_or(AccountError::NotFound)
}

/// The username's blind index under the active key: what is stored.
fn username_index(state: &AppState, username: &Username) -> Vec<u8> {
    state
        .blind()
        .active()
        .compute(USERNAME_INDEX, username.canonical())
}

/// Every index a stored row may hold for the username (both keys while a
/// blind-index rotation is under way): what is searched, and what
/// uniqueness is checked against, since the unique constraint alone cannot
/// see that an index under the other key names the same person.
pub fn username_lookup(state: &AppState, username: &Username) -> Vec<Vec<u8>> {
    state.blind().lookup(USERNAME_INDEX, username.canonical())
}

/// `UsernameTaken` when an account holds the name under either blind-index
/// key. Checked before inserting, not only from the unique violation: a row
/// indexed under the previous key does not collide with the active key's
/// index of the same name.
pub(crate) async fn ensure_username_free<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    username: &Username,
) -> Result<(), AccountError> {
    let taken = account::Entity::find()
        .filter(account::Column::UsernameBidx.is_in(username_lookup(state, username)))
        .one(conn)
        .await?
        .is_some();
    if taken {
        return Err(AccountError::UsernameTaken);
    }
    Ok(())
}

/// The address's blind index under the active key: what is stored.
fn email_index(state: &AppState, email: &Email) -> Vec<u8> {
    state
        .blind()
        .active()
        .compute(EMAIL_INDEX, &email.normalised())
}

/// Every index a stored row may hold for the address; see [`username_lookup`].
pub fn email_lookup(state: &AppState, email: &Email) -> Vec<Vec<u8>> {
    state.blind().lookup(EMAIL_INDEX, &email.normalised())
}

/// Checks a username against the shape rules and the username policy.
/// Reserved names are allowed only when `allow_reserved` (operator-created
/// staff accounts).
pub fn check_username(
    state: &AppState,
    raw: &str,
    allow_reserved: bool,
) -> Result<Username, AccountError> {
    let username = Username::parse(raw)?;
    let policy = state.username_policy();
    let verdict = if allow_reserved {
        policy.check_offensive_only(&username)
    } else {
        policy.check(&username)
    };
    verdict.map_err(|_| AccountError::UsernameNotAllowed)?;
    Ok(username)
}

/// Stores a new single-use token and returns its secret form.
async fn issue_token<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: &str,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
    new_email: Option<(Vec<u8>, Vec<u8>, Uuid)>,
) -> Result<SecretString, AccountError> {
    let issued = tokens::issue()?;
    let (id, new_email_ct, new_email_bidx) = match new_email {
        Some((ct, bidx, id)) => (id, Some(ct), Some(bidx)),
        None => (Uuid::new_v4(), None, None),
    };
    account_token::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        purpose: Set(purpose.to_owned()),
        token_hash: Set(issued.hash),
        new_email_ct: Set(new_email_ct),
        new_email_bidx: Set(new_email_bidx),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(issued.token)
}

/// The new address of the account's email change in flight (an unused,
/// unexpired `CHANGE_EMAIL` link), newest first, with when it was asked
/// for and until when the link works.
pub async fn pending_new_emails(
    state: &AppState,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>, AccountError> {
    let rows = account_token::Entity::find()
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(account_token::Column::Purpose.eq(token_purpose::CHANGE_EMAIL))
        .filter(account_token::Column::UsedAt.is_null())
        .filter(account_token::Column::ExpiresAt.gt(now))
        .order_by_desc(account_token::Column::CreatedAt)
        .all(state.db())
        .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(ct) = &row.new_email_ct else {
            continue;
        };
        let key = state.read_key(account_id, &[ct]).await?;
        let email = state.cipher().decrypt_str_under(
            key.as_deref(),
            &context("account_tokens", "new_email", row.id),
            ct,
        )?;
        pending.push((email, row.created_at, row.expires_at));
    }
    Ok(pending)
}

/// Voids every unused token of `purpose` for the account. A voided token
/// also ends now, so a used token that has not expired is one that was
/// used, never one that was voided (see [`verify_email`]).
pub async fn void_tokens<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    account_token::Entity::update_many()
        .col_expr(
            account_token::Column::UsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            account_token::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(account_token::Column::Purpose.eq(purpose))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks the single-use token `token_id` used, if it is not yet: whether
/// this call did. Two uses at once both read it unused; the conditional
/// update lets only one of them through (on PostgreSQL the second waits
/// for the first's row lock and then finds `used_at` set), so a caller
/// that gets `false` must do nothing and answer as for a used token.
pub async fn claim_token<C: ConnectionTrait>(
    conn: &C,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let claimed = account_token::Entity::update_many()
        .col_expr(
            account_token::Column::UsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(account_token::Column::Id.eq(token_id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// How many tokens of `purpose` were issued to the account in the last hour.
pub async fn tokens_issued_last_hour<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    account_token::Entity::find()
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(account_token::Column::Purpose.eq(purpose))
        .filter(account_token::Column::CreatedAt.gt(now - chrono::Duration::hours(1)))
        .count(conn)
        .await
}

/// What a person gives at signup.
pub struct SignupRequest {
    /// Username as typed.
    pub username: String,
    /// Email as typed.
    pub email: String,
    /// Password as typed.
    pub password: SecretString,
    /// Must be the current policy version.
    pub accept_policy_version: String,
    /// Optional purposes granted at signup.
    pub grant_purposes: Vec<String>,
    /// Age declaration.
    pub age: AgeDeclaration,
    /// Guardian address, required for minors.
    pub guardian_email: Option<String>,
    /// Language for mail (from `Accept-Language`).
    pub language: Language,
}

/// What a valid sign-up input yields: the username, the address, the
/// optional purposes granted, the guardian's address and the policy.
type CheckedSignup = (
    Username,
    Email,
    Vec<crate::consent::policy::PurposeDefinition>,
    Option<Email>,
    crate::consent::policy::PolicyDocument,
);

/// Checks every field of a sign-up input and reports every invalid one
/// (in field order, as [`AccountError::Invalid`] when there are several).
/// When other fields are invalid, a well-formed username is also looked up
/// and a taken one reported last: a form learns everything in one answer,
/// and a valid input still reaches the taken check only after the hash.
async fn check_signup(
    state: &AppState,
    request: &SignupRequest,
) -> Result<CheckedSignup, AccountError> {
    let mut faults = Vec::new();
    let username = check_username(state, &request.username, false)
        .map_err(|err| faults.push(err))
        .ok();
    let email = Email::parse(&request.email)
        .map_err(|err| faults.push(err.into()))
        .ok();
    let identities = [
        username
            .as_ref()
            .map_or(request.username.as_str(), Username::as_str),
        email.as_ref().map_or(request.email.as_str(), Email::as_str),
    ];
    if let Err(weak) = password::check(&request.password, &identities) {
        faults.push(weak.into());
    }
    let policy = state.policy().current(state.db()).await?.document.clone();
    if request.accept_policy_version != policy.version {
        faults.push(AccountError::PolicyVersionMismatch);
    }
    let mut granted: Vec<crate::consent::policy::PurposeDefinition> = Vec::new();
    for code in &request.grant_purposes {
        match policy.purpose(code) {
            Some(purpose) if !purpose.required => {
                if !granted.iter().any(|p| p.code == *code) {
                    granted.push(purpose.clone());
                }
            }
            // Required purposes come with the account anyway.
            Some(_) => {}
            None => {
                faults.push(AccountError::UnknownPurpose);
                break;
            }
        }
    }
    let guardian_email = match (request.age, request.guardian_email.as_deref()) {
        (AgeDeclaration::Minor, None) => {
            faults.push(AccountError::GuardianEmail("required"));
            None
        }
        (AgeDeclaration::Minor, Some(raw)) => match Email::parse(raw) {
            Err(_) => {
                faults.push(AccountError::GuardianEmail("invalid"));
                None
            }
            Ok(guardian)
                if email
                    .as_ref()
                    .is_some_and(|own| own.normalised() == guardian.normalised()) =>
            {
                faults.push(AccountError::GuardianEmail("same as the account's"));
                None
            }
            Ok(guardian) => Some(guardian),
        },
        // A guardian address given by an adult is not needed: not stored.
        (_, _) => None,
    };
    match (username, email) {
        (Some(username), Some(email)) if faults.is_empty() => {
            Ok((username, email, granted, guardian_email, policy))
        }
        (username, _) => {
            if let Some(username) = username
                && let Err(taken) = ensure_username_free(state, state.db(), &username).await
            {
                faults.push(taken);
            }
            Err(if faults.len() == 1 {
                faults.remove(0)
            } else {
                AccountError::Invalid(faults)
            })
        }
    }
}

/// Signs a person up. Answers `Ok(())` for any valid input, including an
/// address that already has an account (whose owner is told by mail
/// instead), so the answer reveals nothing about which addresses exist.
pub async fn signup(state: &AppState, request: SignupRequest) -> Result<(), AccountError> {
    let (username, email, granted, guardian_email, policy) = check_signup(state, &request).await?;
    let policy = &policy;

    // Hash before looking anything up, so both answers cost the same.
    let password_hash = state.passwords().hash(&request.password).await?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;

    // One read finds both a holder of the name and an owner of the
    // address (under either blind-index key); the name is checked first.
    let username_indexes = username_lookup(state, &username);
    let email_indexes = email_lookup(state, &email);
    let holders = account::Entity::find()
        .filter(
            Condition::any()
                .add(account::Column::UsernameBidx.is_in(username_indexes.clone()))
                .add(account::Column::EmailBidx.is_in(email_indexes.clone())),
        )
        .all(&txn)
        .await?;
    if holders
        .iter()
        .any(|holder| username_indexes.contains(&holder.username_bidx))
    {
        return Err(AccountError::UsernameTaken);
    }
    if let Some(owner) = holders
        .into_iter()
        .find(|holder| email_indexes.contains(&holder.email_bidx))
    {
        // Tell the owner instead of the caller; a scheduled deletion means
        // processing has stopped, so nothing is sent then.
        if owner.status == status::ACTIVE {
            let owner_language = Language::from_tag(&owner.language);
            outbox::queue(
                state,
                &txn,
                OutgoingMail::to_account(
                    owner.id,
                    "signup_attempt_on_existing_account",
                    email.as_str(),
                    templates::signup_attempt_on_existing_account(owner_language),
                ),
                state.clock().now(),
            )
            .await?;
        }
        txn.commit().await?;
        tracing::info!(account_id = %owner.id, "signup attempted with a registered address");
        return Ok(());
    }

    let id = Uuid::new_v4();
    let guardian_consent = if guardian_email.is_some() {
        guardian::PENDING
    } else {
        guardian::NOT_NEEDED
    };
    let key = state.new_account_key(&txn, id).await?;
    let row = account::ActiveModel {
        id: Set(id),
        username_ct: Set(seal(state, &key, "username", id, username.as_str())?),
        username_bidx: Set(username_index(state, &username)),
        email_ct: Set(seal(state, &key, "email", id, email.as_str())?),
        email_bidx: Set(email_index(state, &email)),
        email_verified: Set(false),
        password_hash: Set(password_hash),
        role: Set(Role::User.as_str().to_owned()),
        language: Set(request.language.as_tag().to_owned()),
        age_declaration: Set(request.age.as_str().to_owned()),
        guardian_consent: Set(guardian_consent.to_owned()),
        guardian_email_ct: Set(match &guardian_email {
            Some(g) => Some(seal(state, &key, "guardian_email", id, g.as_str())?),
            None => None,
        }),
        accepted_policy_version: Set(Some(policy.version.clone())),
        status: Set(status::ACTIVE.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    if let Err(err) = row.insert(&txn).await {
        return Err(if crate::db::is_unique_violation(&err) {
            // A concurrent signup took the name (or the address) first.
            AccountError::UsernameTaken
        } else {
            err.into()
        });
    }

    for purpose in policy.purposes.iter().filter(|p| p.required) {
        consent::append(&txn, id, policy, purpose, true, ConsentSource::Signup, now).await?;
    }
    for purpose in &granted {
        consent::append(&txn, id, policy, purpose, true, ConsentSource::Signup, now).await?;
    }

    let settings = state.settings();
    let ttl = settings.accounts.verification_token_ttl;
    let token = issue_token(&txn, id, token_purpose::VERIFY_EMAIL, ttl, now, None).await?;
    let link = templates::action_link(
        &settings.http.public_url,
        "/verify-email",
        token.expose_secret(),
    );
    outbox::queue_under(
        state,
        &txn,
        Some(&key),
        OutgoingMail::to_account(
            id,
            "verify_email",
            email.as_str(),
            templates::verify_email(
                request.language,
                username.as_str(),
                &link,
                u32::try_from(ttl.num_hours()).unwrap_or(u32::MAX),
            ),
        ),
        state.clock().now(),
    )
    .await?;

    if let Some(guardian) = &guardian_email {
        let days = settings.accounts.guardian_consent_days;
        let token = issue_token(
            &txn,
            id,
            token_purpose::GUARDIAN_CONSENT,
            chrono::Duration::days(i64::from(days)),
            now,
            None,
        )
        .await?;
        let link = templates::action_link(
            &settings.http.public_url,
            "/guardian-consent",
            token.expose_secret(),
        );
        outbox::queue_under(
            state,
            &txn,
            Some(&key),
            OutgoingMail::to_account(
                id,
                "guardian_consent_request",
                guardian.as_str(),
                templates::guardian_consent_request(
                    request.language,
                    username.as_str(),
                    &link,
                    days,
                ),
            ),
            state.clock().now(),
        )
        .await?;
    }

    match txn.commit().await {
        Ok(()) => state.keys().committed(id, &key),
        Err(err) if crate::db::is_unique_violation(&err) => {
            return Err(AccountError::UsernameTaken);
        }
        Err(err) => return Err(err.into()),
    }
    tracing::info!(account_id = %id, "account created");
    Ok(())
}

/// Uses a token from a `/verify-email` link: proves the signup address, or
/// moves the account to a new address that the link proved.
///
/// The link that verified the account's current address answers `Ok`
/// again until it expires, and changes nothing the second time: pages
/// call this twice (React's StrictMode does). A voided link, or one whose
/// address a later link replaced, has ended (see [`void_tokens`] and
/// [`end_address_links`]), so it is `InvalidToken`.
pub async fn verify_email(state: &AppState, token: &str) -> Result<(), AccountError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(tokens::hash_token(token.trim())))
        .filter(
            account_token::Column::Purpose
                .is_in([token_purpose::VERIFY_EMAIL, token_purpose::CHANGE_EMAIL]),
        )
        .one(&txn)
        .await?
        .filter(|t| t.expires_at > now)
        .ok_or(AccountError::InvalidToken)?;
    let active = |a: &account::Model| a.status == status::ACTIVE;
    let account = account::Entity::find_by_id(row.account_id)
        .one(&txn)
        .await?
        .filter(active)
        .ok_or(AccountError::InvalidToken)?;
    // A restored link of an account whose data key is gone proves nothing
    // (and must not make the account a new key).
    if !is_readable_in(state, &txn, &account).await? {
        return Err(AccountError::InvalidToken);
    }

    // Claimed only while unused: of two uses at once, one acts.
    let claimed = account_token::Entity::update_many()
        .col_expr(
            account_token::Column::UsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(account_token::Column::Id.eq(row.id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        // Used, and not ended since: this link verified the current
        // address. Read again, as a use at the same moment may just have
        // committed.
        let verified = account::Entity::find_by_id(row.account_id)
            .one(&txn)
            .await?
            .filter(active)
            .is_some_and(|a| a.email_verified);
        return if verified {
            tracing::info!(account_id = %account.id, purpose = %row.purpose, "email verification link used again");
            Ok(())
        } else {
            Err(AccountError::InvalidToken)
        };
    }

    let mut update = account.clone().into_active_model();
    if row.purpose == token_purpose::CHANGE_EMAIL {
        let (Some(new_ct), Some(_)) = (row.new_email_ct.as_ref(), row.new_email_bidx.as_ref())
        else {
            return Err(AccountError::InvalidToken);
        };
        let token_key = state.read_key_in(&txn, account.id, &[new_ct]).await?;
        let new_email = state.cipher().decrypt_str_under(
            token_key.as_deref(),
            &context("account_tokens", "new_email", row.id),
            new_ct,
        )?;
        // The token's own index may be under the previous blind-index key:
        // recompute from the address, so the account stores the active one.
        let new_email = Email::parse(&new_email).map_err(|_| AccountError::InvalidToken)?;
        let taken = account::Entity::find()
            .filter(account::Column::EmailBidx.is_in(email_lookup(state, &new_email)))
            .filter(account::Column::Id.ne(account.id))
            .one(&txn)
            .await?
            .is_some();
        if taken {
            // Someone signed up with the address since the link was sent.
            return Err(AccountError::InvalidToken);
        }
        let key = state.write_key(&txn, account.id).await?;
        update.email_ct = Set(seal(state, &key, "email", account.id, new_email.as_str())?);
        update.email_bidx = Set(email_index(state, &new_email));
        void_tokens(&txn, account.id, token_purpose::CHANGE_EMAIL, now).await?;
        void_tokens(&txn, account.id, token_purpose::VERIFY_EMAIL, now).await?;
        end_address_links(&txn, account.id, row.id, now).await?;
        // Reset links went to the old address, which no longer speaks for
        // the account.
        void_tokens(&txn, account.id, token_purpose::RESET_PASSWORD, now).await?;
    }
    update.email_verified = Set(true);
    update.updated_at = Set(now);
    update.update(&txn).await?;
    txn.commit().await?;
    tracing::info!(account_id = %account.id, purpose = %row.purpose, "email verified");
    Ok(())
}

/// Ends every verification and email-change link of the account but
/// `keep`, used or not: the address they proved is no longer the
/// account's, so none of them may answer that it is verified.
async fn end_address_links<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    keep: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    account_token::Entity::update_many()
        .col_expr(
            account_token::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(
            account_token::Column::Purpose
                .is_in([token_purpose::VERIFY_EMAIL, token_purpose::CHANGE_EMAIL]),
        )
        .filter(account_token::Column::Id.ne(keep))
        .filter(account_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    Ok(())
}

/// Sends a new verification link and voids the old ones; at most
/// [`MAX_MAILS_PER_HOUR`] an hour, silently.
pub async fn resend_verification(state: &AppState, account_id: Uuid) -> Result<(), AccountError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let account = find(state, &txn, account_id).await?;
    if account.email_verified {
        return Ok(());
    }
    if tokens_issued_last_hour(&txn, account_id, token_purpose::VERIFY_EMAIL, now).await?
        >= MAX_MAILS_PER_HOUR
    {
        tracing::info!(account_id = %account_id, "verification mail limit reached");
        return Ok(());
    }
    void_tokens(&txn, account_id, token_purpose::VERIFY_EMAIL, now).await?;
    let settings = state.settings();
    let ttl = settings.accounts.verification_token_ttl;
    let token = issue_token(
        &txn,
        account_id,
        token_purpose::VERIFY_EMAIL,
        ttl,
        now,
        None,
    )
    .await?;
    let link = templates::action_link(
        &settings.http.public_url,
        "/verify-email",
        token.expose_secret(),
    );
    outbox::queue(
        state,
        &txn,
        OutgoingMail::to_account(
            account_id,
            "verify_email",
            &account.email,
            templates::verify_email(
                account.language,
                &account.username,
                &link,
                u32::try_from(ttl.num_hours()).unwrap_or(u32::MAX),
            ),
        ),
        state.clock().now(),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Changes the username (policy and uniqueness applied).
pub async fn change_username(
    state: &AppState,
    account_id: Uuid,
    raw: &str,
) -> Result<AccountRecord, AccountError> {
    let username = check_username(state, raw, false)?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = account::Entity::find_by_id(account_id)
        .one(&txn)
        .await?
        .ok_or(AccountError::NotFound)?;
    let taken = account::Entity::find()
        .filter(account::Column::UsernameBidx.is_in(username_lookup(state, &username)))
        .filter(account::Column::Id.ne(account_id))
        .one(&txn)
        .await?
        .is_some();
    if taken {
        return Err(AccountError::UsernameTaken);
    }
    let key = state.write_key(&txn, account_id).await?;
    let mut update = row.into_active_model();
    update.username_ct = Set(seal(
        state,
        &key,
        "username",
        account_id,
        username.as_str(),
    )?);
    update.username_bidx = Set(username_index(state, &username));
    update.updated_at = Set(now);
    let updated = match update.update(&txn).await {
        Ok(updated) => updated,
        Err(err) if crate::db::is_unique_violation(&err) => {
            return Err(AccountError::UsernameTaken);
        }
        Err(err) => return Err(err.into()),
    };
    txn.commit().await?;
    tracing::info!(account_id = %account_id, "username changed");
    Ok(open(state, &updated).await?)
}

/// Checks the signed-in person's current password before a sensitive
/// change, under the per-account throttle
/// ([`crate::ratelimit::password_check`]): the check is counted first; a
/// wait answers `RateLimited`, even for the right password; a wrong one is
/// `InvalidCredentials`; the right one clears the count.
async fn check_current_password(
    state: &AppState,
    row: &account::Model,
    password: &SecretString,
) -> Result<(), AccountError> {
    let subject = password_check::subject(state.blind().active(), row.id);
    // The sign-in's schedule from one network: five free, then waits.
    let admission = throttle::begin_attempt(
        state.db(),
        &subject,
        throttle::PER_NETWORK,
        state.clock().now(),
    )
    .await?;
    if let Admission::Refused { retry_after } = admission {
        tracing::info!(target: "security", account_id = %row.id, event = "password_check_throttled", "password check refused");
        let wait = RetryAfter(retry_after.to_std().unwrap_or_default());
        return Err(AccountError::RateLimited {
            retry_after_seconds: wait.seconds(),
        });
    }
    if !state
        .passwords()
        .verify(password, Some(&row.password_hash))
        .await?
    {
        tracing::info!(target: "security", account_id = %row.id, event = "password_check_failed", "wrong current password");
        return Err(AccountError::InvalidCredentials);
    }
    throttle::clear(state.db(), &[subject]).await?;
    Ok(())
}

/// Kind of the notice an email change sends to the old address; every
/// request that passes the password check sends one, so the hourly cap
/// counts these.
const EMAIL_CHANGE_NOTICE: &str = "email_change_notice";

/// Starts an email change: the password is asked again, a notice goes to
/// the current address and a link to the new one. The change applies only
/// when the link is used. An address that already has an account gets a
/// notice instead of a link; the answer and the mail to the current
/// address are the same either way, so the caller learns nothing about
/// which addresses are registered. At most [`MAX_MAILS_PER_HOUR`]
/// requests an hour mail anything, whatever their target; more are
/// answered the same and send nothing.
pub async fn change_email(
    state: &AppState,
    account_id: Uuid,
    new_email: &str,
    password: &SecretString,
) -> Result<(), AccountError> {
    let new_email = Email::parse(new_email)?;
    let row = account::Entity::find_by_id(account_id)
        .one(state.db())
        .await?
        .ok_or(AccountError::NotFound)?;
    check_current_password(state, &row, password).await?;
    let new_lookup = email_lookup(state, &new_email);
    // The stored index may still be under the previous key.
    if new_lookup.contains(&row.email_bidx) {
        return Err(AccountError::SameEmail);
    }
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let mut select = account::Entity::find_by_id(account_id);
    if txn.get_database_backend() == DbBackend::Postgres {
        // Concurrent requests of one account queue here, so the cap is exact.
        select = select.lock_exclusive();
    }
    let row = select.one(&txn).await?.ok_or(AccountError::NotFound)?;
    if outbox::queued_since(
        &txn,
        account_id,
        EMAIL_CHANGE_NOTICE,
        now - chrono::Duration::hours(1),
    )
    .await?
        >= MAX_MAILS_PER_HOUR
    {
        tracing::info!(account_id = %account_id, "email change mail limit reached");
        return Ok(());
    }
    let account = open_in(state, &txn, &row).await?;
    // Only the newest request can complete.
    void_tokens(&txn, account_id, token_purpose::CHANGE_EMAIL, now).await?;
    let owner = account::Entity::find()
        .filter(account::Column::EmailBidx.is_in(new_lookup))
        .one(&txn)
        .await?;
    match owner {
        Some(owner) => tell_owner_of_new_address(state, &txn, &owner, &new_email).await?,
        None => send_email_change_link(state, &txn, &account, &new_email).await?,
    }
    outbox::queue(
        state,
        &txn,
        OutgoingMail::to_account(
            account_id,
            EMAIL_CHANGE_NOTICE,
            &account.email,
            templates::email_change_notice(account.language, &account.username),
        ),
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(account_id = %account_id, "email change requested");
    Ok(())
}

/// Mails the new address a link that moves the account there.
async fn send_email_change_link<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    account: &AccountRecord,
    new_email: &Email,
) -> Result<(), AccountError> {
    let now = state.clock().now();
    let token_id = Uuid::new_v4();
    let key = state.write_key(txn, account.id).await?;
    let new_ct = state.cipher().encrypt_str_under(
        Some(&key),
        &context("account_tokens", "new_email", token_id),
        new_email.as_str(),
    )?;
    let token = issue_token(
        txn,
        account.id,
        token_purpose::CHANGE_EMAIL,
        state.settings().accounts.verification_token_ttl,
        now,
        Some((new_ct, email_index(state, new_email), token_id)),
    )
    .await?;
    let link = templates::action_link(
        &state.settings().http.public_url,
        "/verify-email",
        token.expose_secret(),
    );
    outbox::queue(
        state,
        txn,
        OutgoingMail::to_account(
            account.id,
            "email_change_verify",
            new_email.as_str(),
            templates::email_change_verify(account.language, &account.username, &link),
        ),
        now,
    )
    .await?;
    Ok(())
}

/// Tells the owner of the new address that someone tried to move an
/// account there, in place of the link. An account whose deletion is
/// scheduled gets nothing: its processing has stopped.
async fn tell_owner_of_new_address<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    owner: &account::Model,
    new_email: &Email,
) -> Result<(), AccountError> {
    if owner.status != status::ACTIVE {
        return Ok(());
    }
    outbox::queue(
        state,
        txn,
        OutgoingMail::to_account(
            owner.id,
            "email_change_to_registered_address",
            new_email.as_str(),
            templates::email_change_to_registered_address(Language::from_tag(&owner.language)),
        ),
        state.clock().now(),
    )
    .await?;
    Ok(())
}

/// Changes the password: the current one is asked (under the per-account
/// throttle), every other session ends, every pending reset and
/// email-change link dies (whoever knew the old password may have started
/// moving the account to their own address), and a notice is mailed; all
/// in one transaction.
pub async fn change_password(
    state: &AppState,
    account_id: Uuid,
    current_session: Uuid,
    current: &SecretString,
    new: &SecretString,
) -> Result<(), AccountError> {
    let row = account::Entity::find_by_id(account_id)
        .one(state.db())
        .await?
        .ok_or(AccountError::NotFound)?;
    check_current_password(state, &row, current).await?;
    let account = open(state, &row).await?;
    password::check(new, &[account.username.as_str(), account.email.as_str()])?;
    let hash = state.passwords().hash(new).await?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let mut update = row.into_active_model();
    update.password_hash = Set(hash);
    update.updated_at = Set(now);
    update.update(&txn).await?;
    super::sessions::revoke_all_except(&txn, account_id, Some(current_session), now).await?;
    void_tokens(&txn, account_id, token_purpose::RESET_PASSWORD, now).await?;
    void_tokens(&txn, account_id, token_purpose::CHANGE_EMAIL, now).await?;
    outbox::queue(
        state,
        &txn,
        OutgoingMail::to_account(
            account_id,
            "password_changed",
            &account.email,
            templates::password_changed(account.language, &account.username),
        ),
        state.clock().now(),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(account_id = %account_id, "password changed");
    Ok(())
}

/// Sets the language of the account's mail and messages.
pub async fn set_language(
    state: &AppState,
    account_id: Uuid,
    language: Language,
) -> Result<AccountRecord, AccountError> {
    let row = account::Entity::find_by_id(account_id)
        .one(state.db())
        .await?
        .ok_or(AccountError::NotFound)?;
    let mut update = row.into_active_model();
    update.language = Set(language.as_tag().to_owned());
    update.updated_at = Set(state.clock().now());
    let updated = update.update(state.db()).await?;
    // The session cache holds the account row; a request after this one
    // must see the new language.
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, language = language.as_tag(), "language set");
    Ok(open(state, &updated).await?)
}

/// Creates a verified ADMIN account (`custos create-admin`). Reserved names
/// are allowed here: the operator is the one person who may use them.
pub async fn create_admin(
    state: &AppState,
    username: &str,
    email: &str,
    password: SecretString,
) -> Result<Uuid, AccountError> {
    let username = check_username(state, username, true)?;
    let email = Email::parse(email)?;
    password::check(&password, &[username.as_str(), email.as_str()])?;
    let password_hash = state.passwords().hash(&password).await?;
    let now = state.clock().now();
    let id = Uuid::new_v4();
    let current_policy = state.policy().current(state.db()).await?;
    let policy = &current_policy.document;
    let txn = state.db().begin().await?;
    ensure_username_free(state, &txn, &username).await?;
    if account::Entity::find()
        .filter(account::Column::EmailBidx.is_in(email_lookup(state, &email)))
        .one(&txn)
        .await?
        .is_some()
    {
        // The address belongs to someone: the operator sees this, not the public.
        return Err(AccountError::Email(InvalidEmail));
    }
    let key = state.new_account_key(&txn, id).await?;
    let row = account::ActiveModel {
        id: Set(id),
        username_ct: Set(seal(state, &key, "username", id, username.as_str())?),
        username_bidx: Set(username_index(state, &username)),
        email_ct: Set(seal(state, &key, "email", id, email.as_str())?),
        email_bidx: Set(email_index(state, &email)),
        email_verified: Set(true),
        password_hash: Set(password_hash),
        role: Set(Role::Admin.as_str().to_owned()),
        language: Set(Language::default().as_tag().to_owned()),
        age_declaration: Set(AgeDeclaration::Adult.as_str().to_owned()),
        guardian_consent: Set(guardian::NOT_NEEDED.to_owned()),
        guardian_email_ct: Set(None),
        accepted_policy_version: Set(Some(policy.version.clone())),
        status: Set(status::ACTIVE.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    if let Err(err) = row.insert(&txn).await {
        if !crate::db::is_unique_violation(&err) {
            return Err(err.into());
        }
        let taken = account::Entity::find()
            .filter(account::Column::UsernameBidx.is_in(username_lookup(state, &username)))
            .one(&txn)
            .await?;
        return Err(if taken.is_some() {
            AccountError::UsernameTaken
        } else {
            // The address belongs to someone: the operator sees this, not the public.
            AccountError::Email(InvalidEmail)
        });
    }
    for purpose in policy.purposes.iter().filter(|p| p.required) {
        consent::append(&txn, id, policy, purpose, true, ConsentSource::Signup, now).await?;
    }
    txn.commit().await?;
    tracing::info!(account_id = %id, "admin account created");
    Ok(id)
}
