//! Account rules: the steps of each use case (sign up, verify an address,
//! change a name, an address, a password or the language, create an
//! admin). Storage, sealing and blind indexes are in [`super::store`] and
//! [`super::token_store`]; this module decides what to store and when.
//!
//! Each use case that changes an account row or ends sessions forgets the
//! account in this instance's session cache once its change has committed
//! (the cache holds both rows); other instances learn of it from the
//! database's notification ([`super::session_cache`]).

use chrono::{DateTime, Utc};
use entity::{account, account_token};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{
    Role,
    email::{Email, InvalidEmail},
    password::{self, WeakPassword},
    sessions_store,
    states::TokenPurpose,
    store::{self, NewAccount, SealedEmail},
    token_store::{self, SealedNewEmail},
    username::{Username, UsernameShapeError},
};
use crate::{
    consent::{
        policy::{PolicyDocument, PurposeDefinition},
        service::{self as consent, ConsentSource},
    },
    crypto::{AccountKey, tokens},
    db::Writes,
    mail::{
        Language,
        outbox::{self, MailQueue, OutgoingMail},
        templates,
    },
    ratelimit::{
        RetryAfter,
        login::{self as throttle, Admission},
        password_check,
    },
    state::AppState,
};

pub use super::states::AgeDeclaration;
pub use super::store::{
    AccountRecord, EMAIL_INDEX, USERNAME_INDEX, absent_if_unreadable, email_lookup, guardian_email,
    is_readable, is_readable_in, is_unreadable, needs_account_key, open, open_guardian_in, open_in,
    open_readable, open_readable_in, open_with, seal, username_lookup,
};

/// Most verification or reset mails sent to one account in an hour; more
/// requests are answered the same way but send nothing.
pub const MAX_MAILS_PER_HOUR: u64 = 3;

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

crate::error::internal_causes!(AccountError);

/// Loads and decrypts an account by id; an account whose data key is gone
/// is `NotFound`.
pub async fn find<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    id: Uuid,
) -> Result<AccountRecord, AccountError> {
    let row = store::find_row(conn, id)
        .await?
        .ok_or(AccountError::NotFound)?;
    open_readable_in(state, conn, &row)
        .await?
        .ok_or(AccountError::NotFound)
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
    let holder = store::username_holder(conn, username_lookup(state, username), None).await?;
    if holder.is_some() {
        return Err(AccountError::UsernameTaken);
    }
    Ok(())
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

/// Issues a single-use token of `purpose` for the account, valid for
/// `ttl`, and returns its secret form (only its hash is stored).
async fn issue_token<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: TokenPurpose,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
    new_email: Option<SealedNewEmail>,
) -> Result<SecretString, AccountError> {
    let issued = tokens::issue()?;
    let row = token_store::new_token(account_id, purpose, &issued, ttl, now, new_email);
    token_store::insert(conn, row).await?;
    Ok(issued.token)
}

/// [`issue_token`] for a new account, as one of the `writes` that create
/// it.
fn issue_token_in(
    writes: &mut Writes,
    account_id: Uuid,
    purpose: TokenPurpose,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<SecretString, AccountError> {
    let issued = tokens::issue()?;
    let row = token_store::new_token(account_id, purpose, &issued, ttl, now, None);
    token_store::insert_in(writes, row);
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
    let rows = token_store::pending_email_changes(state.db(), account_id, now).await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(email) = token_store::open_new_email(state, &row).await? {
            pending.push((email, row.created_at, row.expires_at));
        }
    }
    Ok(pending)
}

/// Voids every unused token of `purpose` for the account; see
/// [`token_store::void`].
pub async fn void_tokens<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    token_store::void(conn, account_id, purpose, now).await
}

pub use super::token_store::claim as claim_token;

/// How many tokens of `purpose` were issued to the account in the last
/// hour.
pub async fn tokens_issued_last_hour<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    token_store::issued_last_hour(conn, account_id, purpose, now).await
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

/// A valid sign-up input: the username, the address, the optional
/// purposes granted, the guardian's address and the policy accepted.
struct CheckedSignup {
    username: Username,
    email: Email,
    granted: Vec<PurposeDefinition>,
    guardian_email: Option<Email>,
    policy: PolicyDocument,
}

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
    let granted = granted_purposes(&policy, &request.grant_purposes, &mut faults);
    let guardian_email = check_guardian(request, email.as_ref(), &mut faults);
    match (username, email) {
        (Some(username), Some(email)) if faults.is_empty() => Ok(CheckedSignup {
            username,
            email,
            granted,
            guardian_email,
            policy,
        }),
        (username, _) => Err(signup_faults(state, username, faults).await),
    }
}

/// The optional purposes of `policy` among `codes`, each once; an unknown
/// code is a fault (and ends the reading).
fn granted_purposes(
    policy: &PolicyDocument,
    codes: &[String],
    faults: &mut Vec<AccountError>,
) -> Vec<PurposeDefinition> {
    let mut granted: Vec<PurposeDefinition> = Vec::new();
    for code in codes {
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
    granted
}

/// The guardian's address a minor must give (not the minor's own `email`);
/// one given by an adult is not needed, and not stored.
fn check_guardian(
    request: &SignupRequest,
    email: Option<&Email>,
    faults: &mut Vec<AccountError>,
) -> Option<Email> {
    let raw = match (request.age, request.guardian_email.as_deref()) {
        (AgeDeclaration::Minor, Some(raw)) => raw,
        (AgeDeclaration::Minor, None) => {
            faults.push(AccountError::GuardianEmail("required"));
            return None;
        }
        (_, _) => return None,
    };
    match Email::parse(raw) {
        Err(_) => {
            faults.push(AccountError::GuardianEmail("invalid"));
            None
        }
        Ok(guardian) if email.is_some_and(|own| own.normalised() == guardian.normalised()) => {
            faults.push(AccountError::GuardianEmail("same as the account's"));
            None
        }
        Ok(guardian) => Some(guardian),
    }
}

/// The answer to an invalid sign-up: its faults, a taken (well-formed)
/// username last.
async fn signup_faults(
    state: &AppState,
    username: Option<Username>,
    mut faults: Vec<AccountError>,
) -> AccountError {
    if let Some(username) = username
        && let Err(taken) = ensure_username_free(state, state.db(), &username).await
    {
        faults.push(taken);
    }
    if faults.len() == 1 {
        faults.remove(0)
    } else {
        AccountError::Invalid(faults)
    }
}

/// Signs a person up. Answers `Ok(())` for any valid input, including an
/// address that already has an account (whose owner is told by mail
/// instead), so the answer reveals nothing about which addresses exist.
///
/// The new account's rows (its data key, the account, its consents, its
/// verification link and mail) are written together by one
/// [`crate::db::Writes`]: one statement on PostgreSQL. The look-up before
/// them runs on its own; a sign-up that took the name or the address in
/// between fails the writes with a unique violation, and the look-up then
/// runs again for the answer.
pub async fn signup(state: &AppState, request: SignupRequest) -> Result<(), AccountError> {
    let checked = check_signup(state, &request).await?;
    // Hash before looking anything up, so both answers cost the same.
    let password_hash = state.passwords().hash(&request.password).await?;
    let now = state.clock().now();
    if let Some(owner) = holder_of_address(state, &checked).await? {
        return tell_owner_of_signup(state, &owner, &checked.email).await;
    }
    let id = Uuid::new_v4();
    let mut writes = Writes::new();
    let key = state.new_account_key_in(&mut writes, id).await?;
    let new = NewAccount {
        id,
        username: &checked.username,
        email: &checked.email,
        email_verified: false,
        password_hash,
        role: Role::User,
        language: request.language,
        age: request.age,
        guardian_email: checked.guardian_email.as_ref(),
        accepted_policy_version: checked.policy.version.clone(),
        now,
    };
    store::insert_in(&mut writes, store::seal_new(state, &key, &new)?);
    let required = checked.policy.purposes.iter().filter(|p| p.required);
    grant_at_signup(
        &mut writes,
        id,
        &checked.policy,
        required.chain(&checked.granted),
        now,
    );
    send_verification_link(state, &mut writes, &key, &new, request.language)?;
    if let Some(guardian) = &checked.guardian_email {
        ask_guardian(state, &mut writes, &key, &new, guardian, request.language)?;
    }
    match writes.run(state.db()).await {
        Ok(()) => state.keys().committed(id, &key),
        // Another sign-up took the name or the address since the look-up:
        // the answer is the one the look-up would give now.
        Err(err) if crate::db::is_unique_violation(&err) => {
            return match holder_of_address(state, &checked).await? {
                Some(owner) => tell_owner_of_signup(state, &owner, &checked.email).await,
                None => Err(AccountError::UsernameTaken),
            };
        }
        Err(err) => return Err(err.into()),
    }
    state.wake_sender();
    tracing::info!(account_id = %id, "account created");
    Ok(())
}

/// The owner of the sign-up's address, if it has one; `UsernameTaken` when
/// an account holds the name. One read finds both (under either
/// blind-index key); the name is checked first.
async fn holder_of_address(
    state: &AppState,
    checked: &CheckedSignup,
) -> Result<Option<account::Model>, AccountError> {
    let username_indexes = username_lookup(state, &checked.username);
    let email_indexes = email_lookup(state, &checked.email);
    let holders = store::holders(state.db(), &username_indexes, &email_indexes).await?;
    if holders
        .iter()
        .any(|holder| username_indexes.contains(&holder.username_bidx))
    {
        return Err(AccountError::UsernameTaken);
    }
    Ok(holders
        .into_iter()
        .find(|holder| email_indexes.contains(&holder.email_bidx)))
}

/// Tells the owner of an address that someone tried to sign up with it,
/// instead of the caller; a scheduled deletion means processing has
/// stopped, so nothing is sent then.
async fn tell_owner_of_signup(
    state: &AppState,
    owner: &account::Model,
    email: &Email,
) -> Result<(), AccountError> {
    tracing::info!(account_id = %owner.id, "signup attempted with a registered address");
    if !store::is_active(owner) {
        return Ok(());
    }
    let owner_language = Language::from_tag(&owner.language);
    outbox::queue(
        state,
        state.db(),
        OutgoingMail::to_account(
            owner.id,
            "signup_attempt_on_existing_account",
            email.as_str(),
            templates::signup_attempt_on_existing_account(owner_language),
        ),
        state.clock().now(),
    )
    .await?;
    Ok(())
}

/// Records the consents given at sign-up: every required purpose and the
/// optional ones granted.
fn grant_at_signup<'p>(
    writes: &mut Writes,
    id: Uuid,
    policy: &PolicyDocument,
    purposes: impl Iterator<Item = &'p PurposeDefinition>,
    now: DateTime<Utc>,
) {
    for purpose in purposes {
        let decision = consent::decision(id, policy, purpose, true, ConsentSource::Signup, now);
        consent::append_in(writes, decision);
    }
}

/// Mails the new account the link that proves its address.
fn send_verification_link(
    state: &AppState,
    writes: &mut Writes,
    key: &AccountKey,
    new: &NewAccount<'_>,
    language: Language,
) -> Result<(), AccountError> {
    let settings = state.settings();
    let ttl = settings.accounts.verification_token_ttl;
    let token = issue_token_in(writes, new.id, TokenPurpose::VerifyEmail, ttl, new.now)?;
    let link = templates::action_link(
        &settings.http.public_url,
        "/verify-email",
        token.expose_secret(),
    );
    outbox::queue_in(
        state,
        writes,
        Some(key),
        &OutgoingMail::to_account(
            new.id,
            "verify_email",
            new.email.as_str(),
            templates::verify_email(
                language,
                new.username.as_str(),
                &link,
                u32::try_from(ttl.num_hours()).unwrap_or(u32::MAX),
            ),
        ),
        state.clock().now(),
    )?;
    Ok(())
}

/// Mails a minor's guardian the link that grants or refuses consent.
fn ask_guardian(
    state: &AppState,
    writes: &mut Writes,
    key: &AccountKey,
    new: &NewAccount<'_>,
    guardian: &Email,
    language: Language,
) -> Result<(), AccountError> {
    let settings = state.settings();
    let days = settings.accounts.guardian_consent_days;
    let ttl = chrono::Duration::days(i64::from(days));
    let purpose = TokenPurpose::GuardianConsent;
    let token = issue_token_in(writes, new.id, purpose, ttl, new.now)?;
    let link = templates::action_link(
        &settings.http.public_url,
        "/guardian-consent",
        token.expose_secret(),
    );
    outbox::queue_in(
        state,
        writes,
        Some(key),
        &OutgoingMail::to_account(
            new.id,
            "guardian_consent_request",
            guardian.as_str(),
            templates::guardian_consent_request(language, new.username.as_str(), &link, days),
        ),
        state.clock().now(),
    )?;
    Ok(())
}

/// Uses a token from a `/verify-email` link: proves the signup address, or
/// moves the account to a new address that the link proved.
///
/// The link that verified the account's current address answers `Ok`
/// again until it expires, and changes nothing the second time: pages
/// call this twice (React's StrictMode does). A voided link, or one whose
/// address a later link replaced, has ended (see [`void_tokens`] and
/// [`token_store::end_address_links`]), so it is `InvalidToken`.
pub async fn verify_email(state: &AppState, token: &str) -> Result<(), AccountError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let purposes = [TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail];
    let row = token_store::find_live(&txn, token, &purposes, now)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    let account = store::find_row(&txn, row.account_id)
        .await?
        .filter(store::is_active)
        .ok_or(AccountError::InvalidToken)?;
    // A restored link of an account whose data key is gone proves nothing
    // (and must not make the account a new key).
    if !is_readable_in(state, &txn, &account).await? {
        return Err(AccountError::InvalidToken);
    }
    // Claimed only while unused: of two uses at once, one acts.
    if !token_store::claim(&txn, row.id, now).await? {
        // Used, and not ended since: this link verified the current
        // address. Read again, as a use at the same moment may just have
        // committed.
        return if store::is_active_and_verified(&txn, row.account_id).await? {
            tracing::info!(account_id = %account.id, purpose = %row.purpose, "email verification link used again");
            Ok(())
        } else {
            Err(AccountError::InvalidToken)
        };
    }
    let new_email = if TokenPurpose::ChangeEmail.is(&row.purpose) {
        Some(move_to_new_address(state, &txn, &account, &row, now).await?)
    } else {
        None
    };
    let account_id = account.id;
    store::verify_address(&txn, account, new_email, now).await?;
    txn.commit().await?;
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, purpose = %row.purpose, "email verified");
    Ok(())
}

/// The new address an email-change link proved, sealed for the account,
/// once every link that spoke for the old address has ended.
async fn move_to_new_address(
    state: &AppState,
    txn: &DatabaseTransaction,
    account: &account::Model,
    row: &account_token::Model,
    now: DateTime<Utc>,
) -> Result<SealedEmail, AccountError> {
    if row.new_email_bidx.is_none() {
        return Err(AccountError::InvalidToken);
    }
    let Some(new_email) = token_store::open_new_email_in(state, txn, row).await? else {
        return Err(AccountError::InvalidToken);
    };
    // The token's own index may be under the previous blind-index key:
    // recompute from the address, so the account stores the active one.
    let new_email = Email::parse(&new_email).map_err(|_| AccountError::InvalidToken)?;
    let lookup = email_lookup(state, &new_email);
    if store::email_holder(txn, lookup, Some(account.id))
        .await?
        .is_some()
    {
        // Someone signed up with the address since the link was sent.
        return Err(AccountError::InvalidToken);
    }
    let key = state.write_key(txn, account.id).await?;
    let sealed = store::seal_email(state, &key, account.id, &new_email)?;
    token_store::void(txn, account.id, TokenPurpose::ChangeEmail, now).await?;
    token_store::void(txn, account.id, TokenPurpose::VerifyEmail, now).await?;
    token_store::end_address_links(txn, account.id, row.id, now).await?;
    // Reset links went to the old address, which no longer speaks for
    // the account.
    token_store::void(txn, account.id, TokenPurpose::ResetPassword, now).await?;
    Ok(sealed)
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
    let purpose = TokenPurpose::VerifyEmail;
    if token_store::issued_last_hour(&txn, account_id, purpose, now).await? >= MAX_MAILS_PER_HOUR {
        tracing::info!(account_id = %account_id, "verification mail limit reached");
        return Ok(());
    }
    token_store::void(&txn, account_id, purpose, now).await?;
    let settings = state.settings();
    let ttl = settings.accounts.verification_token_ttl;
    let token = issue_token(&txn, account_id, purpose, ttl, now, None).await?;
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
    let row = store::find_row(&txn, account_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let lookup = username_lookup(state, &username);
    if store::username_holder(&txn, lookup, Some(account_id))
        .await?
        .is_some()
    {
        return Err(AccountError::UsernameTaken);
    }
    let key = state.write_key(&txn, account_id).await?;
    let sealed = store::seal_username(state, &key, account_id, &username)?;
    let updated = match store::set_username(&txn, row, sealed, now).await {
        Ok(updated) => updated,
        Err(err) if crate::db::is_unique_violation(&err) => {
            return Err(AccountError::UsernameTaken);
        }
        Err(err) => return Err(err.into()),
    };
    txn.commit().await?;
    state.session_cache().forget_account(account_id);
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
    let row = store::find_row(state.db(), account_id)
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
    // Concurrent requests of one account queue here, so the cap is exact.
    let row = store::find_row_locked(&txn, account_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let since = now - chrono::Duration::hours(1);
    if outbox::queued_since(&txn, account_id, EMAIL_CHANGE_NOTICE, since).await?
        >= MAX_MAILS_PER_HOUR
    {
        tracing::info!(account_id = %account_id, "email change mail limit reached");
        return Ok(());
    }
    let account = open_in(state, &txn, &row).await?;
    // Only the newest request can complete.
    token_store::void(&txn, account_id, TokenPurpose::ChangeEmail, now).await?;
    match store::email_holder(&txn, new_lookup, None).await? {
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
    let key = state.write_key(txn, account.id).await?;
    let sealed = token_store::seal_new_email(state, &key, new_email)?;
    let ttl = state.settings().accounts.verification_token_ttl;
    let purpose = TokenPurpose::ChangeEmail;
    let token = issue_token(txn, account.id, purpose, ttl, now, Some(sealed)).await?;
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
    if !store::is_active(owner) {
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
    let row = store::find_row(state.db(), account_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    check_current_password(state, &row, current).await?;
    let account = open(state, &row).await?;
    password::check(new, &[account.username.as_str(), account.email.as_str()])?;
    let hash = state.passwords().hash(new).await?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    store::set_password_hash(&txn, row, hash, now).await?;
    sessions_store::revoke_all_except(&txn, account_id, Some(current_session), now).await?;
    token_store::void(&txn, account_id, TokenPurpose::ResetPassword, now).await?;
    token_store::void(&txn, account_id, TokenPurpose::ChangeEmail, now).await?;
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
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, "password changed");
    Ok(())
}

/// Sets the language of the account's mail and messages.
pub async fn set_language(
    state: &AppState,
    account_id: Uuid,
    language: Language,
) -> Result<AccountRecord, AccountError> {
    let row = store::find_row(state.db(), account_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let updated = store::set_language(state.db(), row, language, state.clock().now()).await?;
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
    ensure_username_free(state, state.db(), &username).await?;
    if store::email_holder(state.db(), email_lookup(state, &email), None)
        .await?
        .is_some()
    {
        // The address belongs to someone: the operator sees this, not the public.
        return Err(AccountError::Email(InvalidEmail));
    }
    let mut writes = Writes::new();
    let key = state.new_account_key_in(&mut writes, id).await?;
    let new = NewAccount {
        id,
        username: &username,
        email: &email,
        email_verified: true,
        password_hash,
        role: Role::Admin,
        language: Language::default(),
        age: AgeDeclaration::Adult,
        guardian_email: None,
        accepted_policy_version: policy.version.clone(),
        now,
    };
    store::insert_in(&mut writes, store::seal_new(state, &key, &new)?);
    let required = policy.purposes.iter().filter(|p| p.required);
    grant_at_signup(&mut writes, id, policy, required, now);
    if let Err(err) = writes.run(state.db()).await {
        return Err(admin_insert_failure(state, &username, err).await);
    }
    state.keys().committed(id, &key);
    tracing::info!(account_id = %id, "admin account created");
    Ok(id)
}

/// Why an admin account could not be inserted: a unique violation is the
/// name (when an account holds it now) or else the address.
async fn admin_insert_failure(
    state: &AppState,
    username: &Username,
    err: sea_orm::DbErr,
) -> AccountError {
    if !crate::db::is_unique_violation(&err) {
        return err.into();
    }
    match store::username_holder(state.db(), username_lookup(state, username), None).await {
        Ok(Some(_)) => AccountError::UsernameTaken,
        // The address belongs to someone: the operator sees this, not the public.
        Ok(None) => AccountError::Email(InvalidEmail),
        Err(err) => err.into(),
    }
}
