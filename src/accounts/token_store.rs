//! Storage of `account_tokens`: single-use links, stored only as hashes
//! ([`crate::crypto::tokens`]), and the new address an email-change link
//! carries, sealed and blind-indexed here.

use chrono::{DateTime, Duration, Utc};
use entity::account_token;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QueryTrait, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::{email::Email, states::TokenPurpose, store};
use crate::{
    crypto::{AccountKey, CryptoError, IssuedToken, SealedField, tokens},
    db::Writes,
    state::AppState,
};

/// `account_tokens.new_email_ct`.
const NEW_EMAIL: SealedField = SealedField::new("account_tokens", "new_email");

/// The new address of an email-change token, sealed for its row.
pub struct SealedNewEmail {
    id: Uuid,
    sealed: Vec<u8>,
    index: Vec<u8>,
}

/// Seals `email` as the new address of a token to be issued to the account
/// whose data key is `key`.
pub fn seal_new_email(
    state: &AppState,
    key: &AccountKey,
    email: &Email,
) -> Result<SealedNewEmail, CryptoError> {
    let id = Uuid::new_v4();
    let sealed = store::sealer(state)
        .under(Some(key))
        .seal(NEW_EMAIL.at(id), email.as_str())?;
    Ok(SealedNewEmail {
        id,
        sealed,
        index: store::email_index(state, email),
    })
}

/// Stores a token made by [`new_token`].
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    token: account_token::ActiveModel,
) -> Result<(), DbErr> {
    token.insert(conn).await?;
    Ok(())
}

/// [`insert`] as one of `writes` (a new account's first link, written with
/// the account).
pub fn insert_in(writes: &mut Writes, token: account_token::ActiveModel) {
    writes.push(account_token::Entity::insert(token).into_query());
}

/// The stored form of `issued` (its hash, never the token) as a token of
/// `purpose` for the account, valid for `ttl` from `now`, carrying
/// `new_email` if given.
pub fn new_token(
    account_id: Uuid,
    purpose: TokenPurpose,
    issued: &IssuedToken,
    ttl: Duration,
    now: DateTime<Utc>,
    new_email: Option<SealedNewEmail>,
) -> account_token::ActiveModel {
    let (id, new_email_ct, new_email_bidx) = match new_email {
        Some(new) => (new.id, Some(new.sealed), Some(new.index)),
        None => (Uuid::new_v4(), None, None),
    };
    account_token::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        purpose: Set(purpose.into()),
        token_hash: Set(issued.hash.clone()),
        new_email_ct: Set(new_email_ct),
        new_email_bidx: Set(new_email_bidx),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
}

/// The unexpired token of one of `purposes` presented as `token`, used or
/// not.
pub async fn find_live<C: ConnectionTrait>(
    conn: &C,
    token: &str,
    purposes: &[TokenPurpose],
    now: DateTime<Utc>,
) -> Result<Option<account_token::Model>, DbErr> {
    Ok(account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(tokens::hash_token(token.trim())))
        .filter(account_token::Column::Purpose.is_in(purposes.iter().copied()))
        .one(conn)
        .await?
        .filter(|row| row.expires_at > now))
}

/// The unused, unexpired `CHANGE_EMAIL` tokens of the account, newest
/// first.
pub async fn pending_email_changes<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<account_token::Model>, DbErr> {
    account_token::Entity::find()
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(account_token::Column::Purpose.eq(TokenPurpose::ChangeEmail))
        .filter(account_token::Column::UsedAt.is_null())
        .filter(account_token::Column::ExpiresAt.gt(now))
        .order_by_desc(account_token::Column::CreatedAt)
        .all(conn)
        .await
}

/// Decrypts the new address an email-change token carries, if any,
/// outside any open transaction.
pub async fn open_new_email(
    state: &AppState,
    row: &account_token::Model,
) -> Result<Option<String>, CryptoError> {
    let Some(sealed) = &row.new_email_ct else {
        return Ok(None);
    };
    let key = state.read_key(row.account_id, &[sealed]).await?;
    open_new_email_with(state, row, key.as_deref())
}

/// Like [`open_new_email`], reading the key with `conn` (which may hold an
/// open transaction).
pub async fn open_new_email_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &account_token::Model,
) -> Result<Option<String>, CryptoError> {
    let Some(sealed) = &row.new_email_ct else {
        return Ok(None);
    };
    let key = state.read_key_in(conn, row.account_id, &[sealed]).await?;
    open_new_email_with(state, row, key.as_deref())
}

fn open_new_email_with(
    state: &AppState,
    row: &account_token::Model,
    key: Option<&AccountKey>,
) -> Result<Option<String>, CryptoError> {
    store::sealer(state)
        .under(key)
        .open_opt(NEW_EMAIL.at(row.id), row.new_email_ct.as_deref())
}

/// Voids every unused token of `purpose` for the account. A voided token
/// also ends now, so a used token that has not expired is one that was
/// used, never one that was voided.
pub async fn void<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(now))
        .col_expr(account_token::Column::ExpiresAt, Expr::value(now))
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
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(now))
        .filter(account_token::Column::Id.eq(token_id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// How many tokens of `purpose` were issued to the account in the last hour.
pub async fn issued_last_hour<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    account_token::Entity::find()
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(account_token::Column::Purpose.eq(purpose))
        .filter(account_token::Column::CreatedAt.gt(now - Duration::hours(1)))
        .count(conn)
        .await
}

/// Ends every verification and email-change link of the account but
/// `keep`, used or not: the address they proved is no longer the
/// account's, so none of them may answer that it is verified.
pub async fn end_address_links<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    keep: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    account_token::Entity::update_many()
        .col_expr(account_token::Column::ExpiresAt, Expr::value(now))
        .filter(account_token::Column::AccountId.eq(account_id))
        .filter(
            account_token::Column::Purpose
                .is_in([TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail]),
        )
        .filter(account_token::Column::Id.ne(keep))
        .filter(account_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    Ok(())
}
