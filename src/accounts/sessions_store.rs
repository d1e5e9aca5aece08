//! Storage of `sessions`: bearer tokens kept only as hashes, and the user
//! agent of each sign-in, sealed under the account's data key here.

use chrono::{DateTime, Duration, Utc};
use entity::session;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::store;
use crate::{
    crypto::{AccountKey, CryptoError, SealedField},
    db::Writes,
    state::AppState,
};

/// `sessions.user_agent_ct`.
const USER_AGENT: SealedField = SealedField::new("sessions", "user_agent");

/// Seals the user agent of session `id` under `key`, its account's data key.
pub fn seal_user_agent(
    state: &AppState,
    key: &AccountKey,
    id: Uuid,
    agent: &str,
) -> Result<Vec<u8>, CryptoError> {
    store::sealer(state)
        .under(Some(key))
        .seal(USER_AGENT.at(id), agent)
}

/// Decrypts a session's user agent, if it has one, outside any open
/// transaction.
pub async fn open_user_agent(
    state: &AppState,
    row: &session::Model,
) -> Result<Option<String>, CryptoError> {
    let Some(sealed) = &row.user_agent_ct else {
        return Ok(None);
    };
    let key = state.read_key(row.account_id, &[sealed]).await?;
    open_user_agent_with(state, row, key.as_deref())
}

/// Like [`open_user_agent`], reading the key with `conn` (which may hold
/// an open transaction).
pub async fn open_user_agent_in<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &session::Model,
) -> Result<Option<String>, CryptoError> {
    let Some(sealed) = &row.user_agent_ct else {
        return Ok(None);
    };
    let key = state.read_key_in(conn, row.account_id, &[sealed]).await?;
    open_user_agent_with(state, row, key.as_deref())
}

fn open_user_agent_with(
    state: &AppState,
    row: &session::Model,
    key: Option<&AccountKey>,
) -> Result<Option<String>, CryptoError> {
    store::sealer(state)
        .under(key)
        .open_opt(USER_AGENT.at(row.id), row.user_agent_ct.as_deref())
}

/// A new session, as it is to be stored.
pub struct NewSession {
    /// Random id.
    pub id: Uuid,
    /// The account signed in.
    pub account_id: Uuid,
    /// SHA-256 of the bearer token.
    pub token_hash: Vec<u8>,
    /// The sealed user agent (see [`seal_user_agent`]).
    pub user_agent_ct: Option<Vec<u8>>,
    /// Start.
    pub now: DateTime<Utc>,
    /// End at the latest.
    pub expires_at: DateTime<Utc>,
}

/// Adds a new session's insert to `writes` (with the throttle clear of the
/// sign-in that starts it, and any notice of it).
pub fn insert_in(writes: &mut Writes, new: NewSession) {
    let row = session::ActiveModel {
        id: Set(new.id),
        account_id: Set(new.account_id),
        token_hash: Set(new.token_hash),
        user_agent_ct: Set(new.user_agent_ct),
        created_at: Set(new.now),
        last_seen_at: Set(new.now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
    };
    writes.push(session::Entity::insert(row).into_query());
}

/// The account's `limit` most recent sessions, newest first.
pub async fn recent<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    limit: u64,
) -> Result<Vec<session::Model>, DbErr> {
    session::Entity::find()
        .filter(session::Column::AccountId.eq(account_id))
        .order_by_desc(session::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await
}

/// Records that the session was used at `now`.
pub async fn touch<C: ConnectionTrait>(
    conn: &C,
    row: session::Model,
    now: DateTime<Utc>,
) -> Result<session::Model, DbErr> {
    let mut touched = row.into_active_model();
    touched.last_seen_at = Set(now);
    touched.update(conn).await
}

/// The session `id` of the account, if it is theirs.
pub async fn find_of<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find_by_id(id)
        .filter(session::Column::AccountId.eq(account_id))
        .one(conn)
        .await
}

/// Ends the session at `now`, unless it has ended already.
pub async fn revoke<C: ConnectionTrait>(
    conn: &C,
    row: session::Model,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if row.revoked_at.is_none() {
        let mut revoked = row.into_active_model();
        revoked.revoked_at = Set(Some(now));
        revoked.update(conn).await?;
    }
    Ok(())
}

/// Ends every live session of the account but `keep`: those neither
/// expired nor idle longer than `idle`. Returns how many ended.
pub async fn revoke_live_except<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    keep: Uuid,
    idle: Duration,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::AccountId.eq(account_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::LastSeenAt.gt(now - idle))
        .filter(session::Column::Id.ne(keep))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Ends every session of the account but `keep`.
pub async fn revoke_all_except<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::AccountId.eq(account_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    update.exec(conn).await?;
    Ok(())
}

/// The account's unrevoked, unexpired sessions, newest first (idle ones
/// included: the caller knows the idle limit).
pub async fn unexpired<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<session::Model>, DbErr> {
    session::Entity::find()
        .filter(session::Column::AccountId.eq(account_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_desc(session::Column::CreatedAt)
        .all(conn)
        .await
}
