//! Storage of the `accounts` table: the one place its personal fields are
//! sealed, opened and blind-indexed, and where its queries live. Callers
//! get [`AccountRecord`]s with plaintext; the database holds only
//! ciphertext and keyed indexes over the normal forms.
//!
//! Errors are storage errors ([`DbErr`] for queries, [`CryptoError`] for
//! sealing and keys); the rules that turn them into answers live in
//! [`super::service`].

use chrono::{DateTime, Utc};
use entity::account;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QuerySelect, QueryTrait, Set,
};
use uuid::Uuid;

use super::{
    Role,
    email::Email,
    states::{AccountStatus, AgeDeclaration, GuardianConsent},
    username::Username,
};
use crate::{
    crypto::{AccountKey, CryptoError, SealedField, Sealer},
    db::Writes,
    mail::Language,
    state::AppState,
};

/// Blind-index field name for usernames.
pub const USERNAME_INDEX: &str = "username";
/// Blind-index field name for email addresses.
pub const EMAIL_INDEX: &str = "email";

/// `accounts.username_ct`.
const USERNAME: SealedField = SealedField::new("accounts", "username");
/// `accounts.email_ct`.
const EMAIL: SealedField = SealedField::new("accounts", "email");
/// `accounts.guardian_email_ct`.
const GUARDIAN_EMAIL: SealedField = SealedField::new("accounts", "guardian_email");

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
    /// Guardian consent state.
    pub guardian_consent: GuardianConsent,
    /// The policy version last accepted.
    pub accepted_policy_version: Option<String>,
    /// In use, or deletion scheduled.
    pub status: AccountStatus,
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

/// The state's sealer, under the keyring until [`Sealer::under`] an
/// account key.
pub fn sealer(state: &AppState) -> Sealer<'_> {
    Sealer::new(state.cipher(), state.blind())
}

/// Encrypts one account field under the account's data key (see
/// [`AppState::write_key`]), bound to its row.
pub fn seal(
    state: &AppState,
    key: &AccountKey,
    column: &'static str,
    id: Uuid,
    value: &str,
) -> Result<Vec<u8>, CryptoError> {
    sealer(state)
        .under(Some(key))
        .seal(SealedField::new(USERNAME.table, column).at(id), value)
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
    sealer(state)
        .under(key)
        .open_opt(GUARDIAN_EMAIL.at(row.id), row.guardian_email_ct.as_deref())
}

/// Decrypts an account row with its data key, already fetched (`None`
/// for rows still under the keyring).
pub fn open_with(
    state: &AppState,
    row: &account::Model,
    key: Option<&AccountKey>,
) -> Result<AccountRecord, CryptoError> {
    let sealer = sealer(state).under(key);
    Ok(AccountRecord {
        id: row.id,
        username: sealer.open(USERNAME.at(row.id), &row.username_ct)?,
        email: sealer.open(EMAIL.at(row.id), &row.email_ct)?,
        email_verified: row.email_verified,
        role: Role::from_stored(&row.role),
        language: Language::from_tag(&row.language),
        age_declaration: row.age_declaration.clone(),
        guardian_consent: GuardianConsent::from_stored(&row.guardian_consent),
        accepted_policy_version: row.accepted_policy_version.clone(),
        status: AccountStatus::from_stored(&row.status),
        created_at: row.created_at,
    })
}

/// Whether the row's account is in use (not scheduled for deletion).
pub fn is_active(row: &account::Model) -> bool {
    AccountStatus::Active.is(&row.status)
}

/// The username's blind index under the active key: what is stored.
pub fn username_index(state: &AppState, username: &Username) -> Vec<u8> {
    sealer(state).index(USERNAME_INDEX, username.canonical())
}

/// Every index a stored row may hold for the username (both keys while a
/// blind-index rotation is under way): what is searched, and what
/// uniqueness is checked against, since the unique constraint alone cannot
/// see that an index under the other key names the same person.
pub fn username_lookup(state: &AppState, username: &Username) -> Vec<Vec<u8>> {
    sealer(state).lookup(USERNAME_INDEX, username.canonical())
}

/// The address's blind index under the active key: what is stored.
pub fn email_index(state: &AppState, email: &Email) -> Vec<u8> {
    sealer(state).index(EMAIL_INDEX, &email.normalised())
}

/// Every index a stored row may hold for the address; see [`username_lookup`].
pub fn email_lookup(state: &AppState, email: &Email) -> Vec<Vec<u8>> {
    sealer(state).lookup(EMAIL_INDEX, &email.normalised())
}

/// The account row `id`.
pub async fn find_row<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find_by_id(id).one(conn).await
}

/// The account row `id`, locked for the rest of `conn`'s transaction on
/// PostgreSQL (SQLite has one writer), so concurrent changes of one
/// account queue.
pub async fn find_row_locked<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<account::Model>, DbErr> {
    let mut select = account::Entity::find_by_id(id);
    if conn.get_database_backend() == DbBackend::Postgres {
        select = select.lock_exclusive();
    }
    select.one(conn).await
}

/// The account whose `column` (a blind-index column) is one of `lookup`.
pub async fn holder_by<C: ConnectionTrait>(
    conn: &C,
    column: account::Column,
    lookup: Vec<Vec<u8>>,
) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find()
        .filter(column.is_in(lookup))
        .one(conn)
        .await
}

/// The account holding a username indexed as one of `lookup`, other than
/// `except`.
pub async fn username_holder<C: ConnectionTrait>(
    conn: &C,
    lookup: Vec<Vec<u8>>,
    except: Option<Uuid>,
) -> Result<Option<account::Model>, DbErr> {
    let mut select = account::Entity::find().filter(account::Column::UsernameBidx.is_in(lookup));
    if let Some(except) = except {
        select = select.filter(account::Column::Id.ne(except));
    }
    select.one(conn).await
}

/// The account bound to an address indexed as one of `lookup`, other than
/// `except`.
pub async fn email_holder<C: ConnectionTrait>(
    conn: &C,
    lookup: Vec<Vec<u8>>,
    except: Option<Uuid>,
) -> Result<Option<account::Model>, DbErr> {
    let mut select = account::Entity::find().filter(account::Column::EmailBidx.is_in(lookup));
    if let Some(except) = except {
        select = select.filter(account::Column::Id.ne(except));
    }
    select.one(conn).await
}

/// Every account holding the username or the address (indexes as in
/// [`username_lookup`] and [`email_lookup`]), in one read.
pub async fn holders<C: ConnectionTrait>(
    conn: &C,
    username_lookup: &[Vec<u8>],
    email_lookup: &[Vec<u8>],
) -> Result<Vec<account::Model>, DbErr> {
    account::Entity::find()
        .filter(
            Condition::any()
                .add(account::Column::UsernameBidx.is_in(username_lookup.to_vec()))
                .add(account::Column::EmailBidx.is_in(email_lookup.to_vec())),
        )
        .all(conn)
        .await
}

/// A new account, as it is to be stored.
pub struct NewAccount<'a> {
    /// Random id (the account key is made for it first).
    pub id: Uuid,
    /// The username.
    pub username: &'a Username,
    /// The bound address.
    pub email: &'a Email,
    /// Whether the address is proven already (operator-made accounts).
    pub email_verified: bool,
    /// The argon2id hash of the password.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Mail language.
    pub language: Language,
    /// Age declaration.
    pub age: AgeDeclaration,
    /// The guardian's address, for a minor.
    pub guardian_email: Option<&'a Email>,
    /// The policy version accepted.
    pub accepted_policy_version: String,
    /// Creation time.
    pub now: DateTime<Utc>,
}

/// The row of a new account, its fields sealed under `key` (the account's
/// new data key) and indexed under the active blind-index key.
pub fn seal_new(
    state: &AppState,
    key: &AccountKey,
    new: &NewAccount<'_>,
) -> Result<account::ActiveModel, CryptoError> {
    let sealer = sealer(state).under(Some(key));
    let id = new.id;
    let guardian_consent = if new.guardian_email.is_some() {
        GuardianConsent::Pending
    } else {
        GuardianConsent::NotNeeded
    };
    Ok(account::ActiveModel {
        id: Set(id),
        username_ct: Set(sealer.seal(USERNAME.at(id), new.username.as_str())?),
        username_bidx: Set(username_index(state, new.username)),
        email_ct: Set(sealer.seal(EMAIL.at(id), new.email.as_str())?),
        email_bidx: Set(email_index(state, new.email)),
        email_verified: Set(new.email_verified),
        password_hash: Set(new.password_hash.clone()),
        role: Set(new.role.as_str().to_owned()),
        language: Set(new.language.as_tag().to_owned()),
        age_declaration: Set(new.age.into()),
        guardian_consent: Set(guardian_consent.into()),
        guardian_email_ct: Set(
            sealer.seal_opt(GUARDIAN_EMAIL.at(id), new.guardian_email.map(Email::as_str))?
        ),
        accepted_policy_version: Set(Some(new.accepted_policy_version.clone())),
        status: Set(AccountStatus::Active.into()),
        created_at: Set(new.now),
        updated_at: Set(new.now),
    })
}

/// Adds a row made by [`seal_new`] to `writes` (with the account's key,
/// consents and first mail). A unique violation is left to the caller to
/// tell apart (see [`crate::db::is_unique_violation`]).
pub fn insert_in(writes: &mut Writes, row: account::ActiveModel) {
    writes.push(account::Entity::insert(row).into_query());
}

/// A username sealed for one account: its ciphertext and its index.
pub struct SealedUsername(Vec<u8>, Vec<u8>);

/// Seals `username` for account `id` under its data key `key`.
pub fn seal_username(
    state: &AppState,
    key: &AccountKey,
    id: Uuid,
    username: &Username,
) -> Result<SealedUsername, CryptoError> {
    let sealed = sealer(state)
        .under(Some(key))
        .seal(USERNAME.at(id), username.as_str())?;
    Ok(SealedUsername(sealed, username_index(state, username)))
}

/// Stores a new username on `row`; a unique violation is the caller's to
/// tell apart.
pub async fn set_username<C: ConnectionTrait>(
    conn: &C,
    row: account::Model,
    username: SealedUsername,
    now: DateTime<Utc>,
) -> Result<account::Model, DbErr> {
    let mut update = row.into_active_model();
    update.username_ct = Set(username.0);
    update.username_bidx = Set(username.1);
    update.updated_at = Set(now);
    update.update(conn).await
}

/// An address sealed for one account: its ciphertext and its index.
pub struct SealedEmail(Vec<u8>, Vec<u8>);

/// Seals `email` for account `id` under its data key `key`.
pub fn seal_email(
    state: &AppState,
    key: &AccountKey,
    id: Uuid,
    email: &Email,
) -> Result<SealedEmail, CryptoError> {
    let sealed = sealer(state)
        .under(Some(key))
        .seal(EMAIL.at(id), email.as_str())?;
    Ok(SealedEmail(sealed, email_index(state, email)))
}

/// Marks the account's address proven, first moving it to `new_email`
/// when given.
pub async fn verify_address<C: ConnectionTrait>(
    conn: &C,
    row: account::Model,
    new_email: Option<SealedEmail>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = row.into_active_model();
    if let Some(SealedEmail(sealed, index)) = new_email {
        update.email_ct = Set(sealed);
        update.email_bidx = Set(index);
    }
    update.email_verified = Set(true);
    update.updated_at = Set(now);
    update.update(conn).await?;
    Ok(())
}

/// Whether account `id` is active with a proven address.
pub async fn is_active_and_verified<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<bool, DbErr> {
    Ok(find_row(conn, id)
        .await?
        .is_some_and(|row| is_active(&row) && row.email_verified))
}

/// Stores a new password hash on `row`.
pub async fn set_password_hash<C: ConnectionTrait>(
    conn: &C,
    row: account::Model,
    hash: String,
    now: DateTime<Utc>,
) -> Result<account::Model, DbErr> {
    let mut update = row.into_active_model();
    update.password_hash = Set(hash);
    update.updated_at = Set(now);
    update.update(conn).await
}

/// Stores the language of the account's mail and messages.
pub async fn set_language<C: ConnectionTrait>(
    conn: &C,
    row: account::Model,
    language: Language,
    now: DateTime<Utc>,
) -> Result<account::Model, DbErr> {
    let mut update = row.into_active_model();
    update.language = Set(language.as_tag().to_owned());
    update.updated_at = Set(now);
    update.update(conn).await
}

/// Gives the account `role`.
pub async fn set_role<C: ConnectionTrait>(
    conn: &C,
    row: account::Model,
    role: Role,
    now: DateTime<Utc>,
) -> Result<account::Model, DbErr> {
    let mut update = row.into_active_model();
    update.role = Set(role.as_str().to_owned());
    update.updated_at = Set(now);
    update.update(conn).await
}
