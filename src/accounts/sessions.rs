//! Sessions: sign-in by username or email, bearer tokens stored only as
//! hashes, idle and absolute expiry, revocation. Sign-in attempts are
//! throttled per login name ([`crate::ratelimit::login`]); a sign-in from a
//! new user agent can be told to the owner (`CUSTOS_NOTIFY_NEW_SIGNIN`).

use chrono::{DateTime, Utc};
use entity::{account, session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::{
    Role,
    email::Email,
    service::{
        AccountError, AccountRecord, EMAIL_INDEX, USERNAME_INDEX, is_readable, open_readable,
        status,
    },
    session_cache::CachedSession,
    username::Username,
};
use crate::{
    crypto::{fields::FieldContext, tokens},
    mail::outbox::{self, OutgoingMail},
    ratelimit::login::{self as throttle, Admission},
    state::AppState,
};

pub use super::session_cache::LAST_SEEN_GRANULARITY;
/// Longest user agent kept.
const MAX_USER_AGENT_CHARS: usize = 256;

/// The signed-in caller of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their account.
    pub account_id: Uuid,
    /// The session the request came with.
    pub session_id: Uuid,
    /// Their role.
    pub role: Role,
    /// Their account row as read with the session, so a request that
    /// shows it (`me`) needs no second read.
    pub account: account::Model,
}

/// A new session.
pub struct SignedIn {
    /// The bearer token (shown once).
    pub token: SecretString,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// The account.
    pub account: AccountRecord,
}

/// A session as shown to its owner.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Session id.
    pub id: Uuid,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// Last use.
    pub last_seen_at: DateTime<Utc>,
    /// End at the latest (absolute, or idle if sooner).
    pub expires_at: DateTime<Utc>,
    /// The browser or client that signed in.
    pub user_agent: Option<String>,
    /// True for the session of the request.
    pub current: bool,
}

fn user_agent_context(id: Uuid) -> FieldContext<'static> {
    FieldContext {
        table: "sessions",
        column: "user_agent",
        row_id: id,
    }
}

/// How a login name is looked up: the column and the blind indexes it is
/// found by (every key in use, so a row not yet re-indexed by a blind-index
/// rotation still signs in; none for names that can be neither a username
/// nor an email), and the throttle subject its attempts are counted under.
struct LoginLookup {
    index: Option<(account::Column, Vec<Vec<u8>>)>,
    subject: Vec<u8>,
}

/// Parses a login: an email address when it parses as one, else a
/// username.
fn login_lookup(state: &AppState, login: &str) -> LoginLookup {
    let login = login.trim();
    let blind = state.blind();
    let normal_form = if login.contains('@') {
        Email::parse(login)
            .ok()
            .map(|email| (account::Column::EmailBidx, EMAIL_INDEX, email.normalised()))
    } else {
        Username::parse(login).ok().map(|username| {
            (
                account::Column::UsernameBidx,
                USERNAME_INDEX,
                username.canonical().to_owned(),
            )
        })
    };
    // Attempts are counted under the active key only: counters under the
    // previous key are ephemeral and simply left to expire (or be dropped
    // by the rotation), which at worst restarts a back-off once.
    let subject = match &normal_form {
        Some((_, field, value)) => {
            throttle::subject(blind.active(), &blind.active().compute(field, value))
        }
        None => throttle::other_subject(blind.active(), login),
    };
    let index = normal_form.map(|(column, field, value)| (column, blind.lookup(field, &value)));
    LoginLookup { index, subject }
}

/// The throttle subjects of both names of an account, under every
/// blind-index key in use. Computed from the names themselves rather than
/// the stored indexes, which may still be under the previous key while the
/// sign-in counted its attempt under the active one.
pub fn throttle_subjects(state: &AppState, person: &AccountRecord) -> Vec<Vec<u8>> {
    let username = super::username::canonical(&person.username);
    let email = crate::crypto::normalise_email(&person.email);
    state
        .blind()
        .each()
        .flat_map(|key| {
            [
                throttle::subject(key, &key.compute(USERNAME_INDEX, &username)),
                throttle::subject(key, &key.compute(EMAIL_INDEX, &email)),
            ]
        })
        .collect()
}

/// [`throttle_subjects`] and, for each, its count from `client`'s network
/// (what a correct password or a completed reset clears: other networks'
/// counts stay, so a stranger's network stays backed off).
pub fn throttle_subjects_from(
    state: &AppState,
    person: &AccountRecord,
    client: Option<std::net::IpAddr>,
) -> Vec<Vec<u8>> {
    let names = throttle_subjects(state, person);
    let networks: Vec<Vec<u8>> = names
        .iter()
        .map(|name| throttle::network_subject(state.blind().active(), name, client))
        .collect();
    names.into_iter().chain(networks).collect()
}

/// Signs in by username or email. Every failure is `InvalidCredentials`,
/// and an unknown login costs a dummy hash so timing tells nothing. Each
/// attempt is counted against the login name and the `client`'s network
/// first (see [`crate::ratelimit::login`]): too many answer `RateLimited`,
/// for known and unknown names alike, before any password is checked.
pub async fn login(
    state: &AppState,
    login: &str,
    password: &SecretString,
    user_agent: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Result<SignedIn, AccountError> {
    let lookup = login_lookup(state, login);
    let network = throttle::network_subject(state.blind().active(), &lookup.subject, client);
    let admission =
        throttle::begin_sign_in(state.db(), &lookup.subject, &network, state.clock().now()).await?;
    if let Admission::Refused { retry_after } = admission {
        tracing::info!(target: "security", event = "login_throttled", "sign-in attempt refused");
        let millis = u64::try_from(retry_after.num_milliseconds()).unwrap_or(0);
        return Err(AccountError::RateLimited {
            retry_after_seconds: millis.div_ceil(1000).max(1),
        });
    }
    let row = match &lookup.index {
        Some((column, indexes)) => {
            account::Entity::find()
                .filter(column.is_in(indexes.clone()))
                .one(state.db())
                .await?
        }
        None => None,
    };
    let verified = state
        .passwords()
        .verify(password, row.as_ref().map(|r| r.password_hash.as_str()))
        .await?;
    let row = match row {
        Some(row) if verified => row,
        Some(row) => {
            tracing::info!(target: "security", account_id = %row.id, event = "login_failed", "wrong password");
            return Err(AccountError::InvalidCredentials);
        }
        None => {
            tracing::info!(target: "security", event = "login_failed_unknown_name", "no such login");
            return Err(AccountError::InvalidCredentials);
        }
    };
    // An account whose data key is gone is no account.
    let Some(account) = open_readable(state, &row).await? else {
        tracing::info!(target: "security", account_id = %row.id, event = "login_failed_unreadable", "account data key destroyed");
        return Err(AccountError::InvalidCredentials);
    };
    // The password was right: the count starts over, for both names.
    throttle::clear(state.db(), &throttle_subjects_from(state, &account, client)).await?;
    if row.status == status::DELETION_SCHEDULED {
        // The person is told when the erasure runs: until then a
        // cancellation link still works.
        let purge_after = crate::erasure::service::open_request(state.db(), row.id)
            .await?
            .and_then(|request| request.purge_after);
        return Err(AccountError::DeletionScheduled { purge_after });
    }
    let now = state.clock().now();
    let issued = tokens::issue()?;
    let id = Uuid::new_v4();
    let expires_at = now + state.settings().session_lifetime;
    let user_agent: Option<String> = user_agent
        .map(str::trim)
        .filter(|agent| !agent.is_empty())
        .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
    let user_agent_ct = match &user_agent {
        Some(agent) => {
            let key = state.write_key(state.db(), row.id).await?;
            Some(
                state
                    .cipher()
                    .encrypt_str_under(Some(&key), &user_agent_context(id), agent)?,
            )
        }
        None => None,
    };
    let new_agent = match &user_agent {
        Some(agent) if state.settings().notify_new_signin => {
            is_new_user_agent(state, state.db(), row.id, agent).await?
        }
        _ => false,
    };
    let session = session::ActiveModel {
        id: Set(id),
        account_id: Set(row.id),
        token_hash: Set(issued.hash),
        user_agent_ct: Set(user_agent_ct),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    };
    if let (true, Some(agent)) = (new_agent, &user_agent) {
        // The session and the notice of it are written together.
        let txn = state.db().begin().await?;
        session.insert(&txn).await?;
        outbox::queue(
            state,
            &txn,
            OutgoingMail {
                account_id: Some(row.id),
                kind: "new_signin_notice",
                to: account.email.clone(),
                content: super::templates::new_signin(
                    account.language,
                    &account.username,
                    agent,
                    now,
                ),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        tracing::info!(target: "security", account_id = %row.id, event = "new_signin_notice_queued", "sign-in from a new user agent");
    } else {
        session.insert(state.db()).await?;
    }
    tracing::info!(target: "security", account_id = %row.id, session_id = %id, event = "login_succeeded", "signed in");
    Ok(SignedIn {
        token: issued.token,
        expires_at,
        account,
    })
}

/// Sessions looked at when deciding whether a user agent is new.
const RECENT_SESSIONS_COMPARED: u64 = 50;

/// Whether `agent` differs from the user agent of every one of the
/// account's recent sessions. An account that never signed in before has
/// nothing to compare with: its first sign-in is not news to its owner.
async fn is_new_user_agent<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    account_id: Uuid,
    agent: &str,
) -> Result<bool, AccountError> {
    let recent = session::Entity::find()
        .filter(session::Column::AccountId.eq(account_id))
        .order_by_desc(session::Column::CreatedAt)
        .limit(RECENT_SESSIONS_COMPARED)
        .all(conn)
        .await?;
    if recent.is_empty() {
        return Ok(false);
    }
    for earlier in &recent {
        if let Some(ct) = &earlier.user_agent_ct {
            // User agents are encrypted with a fresh nonce each: compare
            // plaintexts, row by row.
            let key = state.read_key_in(conn, account_id, &[ct]).await?;
            let seen = state.cipher().decrypt_str_under(
                key.as_deref(),
                &user_agent_context(earlier.id),
                ct,
            )?;
            if seen == agent {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Resolves a presented token to its caller, or `None` when the token is
/// unknown, revoked, idle too long, past its lifetime, or its account is no
/// longer active. Usually answered from this instance's
/// [`super::session_cache`]; the database is read when the cache has no
/// fresh entry or `lastSeenAt` is due to be written.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Viewer>, AccountError> {
    let now = state.clock().now();
    let token_hash = tokens::hash_token(token);
    let cache = state.session_cache();
    if let Some(cached) = cache.get(&token_hash, now) {
        return Ok(admit(state, cached.session, cached.account, now));
    }
    let generation = cache.generation();
    // One read for both: this runs on every signed-in request the cache
    // does not answer.
    let Some((mut row, Some(account))) = session::Entity::find()
        .find_also_related(account::Entity)
        .filter(session::Column::TokenHash.eq(token_hash.clone()))
        .one(state.db())
        .await?
    else {
        return Ok(None);
    };
    let Some(viewer) = admit(state, row.clone(), account, now) else {
        return Ok(None);
    };
    // A session restored with the rows of an account whose key is gone
    // signs nobody in.
    if !is_readable(state, &viewer.account).await? {
        return Ok(None);
    }
    if now - row.last_seen_at >= LAST_SEEN_GRANULARITY {
        let mut touched = row.clone().into_active_model();
        touched.last_seen_at = Set(now);
        row = touched.update(state.db()).await?;
    }
    cache.put(
        token_hash,
        CachedSession {
            session: row,
            account: viewer.account.clone(),
        },
        generation,
        now,
    );
    Ok(Some(viewer))
}

/// The caller a session row and its account row stand for at `now`, or
/// `None` when the session is over or the account not active.
fn admit(
    state: &AppState,
    row: session::Model,
    account: account::Model,
    now: DateTime<Utc>,
) -> Option<Viewer> {
    let idle_limit = row.last_seen_at + state.settings().session_idle;
    if row.revoked_at.is_some() || row.expires_at <= now || idle_limit <= now {
        return None;
    }
    if account.status != status::ACTIVE {
        return None;
    }
    Some(Viewer {
        account_id: account.id,
        session_id: row.id,
        role: Role::from_stored(&account.role),
        account,
    })
}

/// Ends one session of the account; `NotFound` when it is not theirs.
pub async fn revoke(
    state: &AppState,
    account_id: Uuid,
    session_id: Uuid,
) -> Result<(), AccountError> {
    let row = session::Entity::find_by_id(session_id)
        .filter(session::Column::AccountId.eq(account_id))
        .one(state.db())
        .await?
        .ok_or(AccountError::NotFound)?;
    if row.revoked_at.is_none() {
        let mut revoked = row.into_active_model();
        revoked.revoked_at = Set(Some(state.clock().now()));
        revoked.update(state.db()).await?;
    }
    tracing::info!(account_id = %account_id, session_id = %session_id, "session ended");
    Ok(())
}

/// Ends every live session of the account but `keep` (the caller's own);
/// returns how many ended. The session cache forgets the account, so the
/// ended sessions stop working on this instance at once.
pub async fn revoke_others(
    state: &AppState,
    account_id: Uuid,
    keep: Uuid,
) -> Result<u64, AccountError> {
    let now = state.clock().now();
    // Only sessions `mySessions` would list count: expired ones have ended.
    let ended = session::Entity::update_many()
        .col_expr(
            session::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(session::Column::AccountId.eq(account_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::LastSeenAt.gt(now - state.settings().session_idle))
        .filter(session::Column::Id.ne(keep))
        .exec(state.db())
        .await?
        .rows_affected;
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, ended, "other sessions ended");
    Ok(ended)
}

/// Ends every session of the account but `keep`.
pub async fn revoke_all_except<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let mut update = session::Entity::update_many()
        .col_expr(
            session::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(session::Column::AccountId.eq(account_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    update.exec(conn).await?;
    Ok(())
}

/// The account's live sessions, newest first.
pub async fn list(state: &AppState, viewer: &Viewer) -> Result<Vec<SessionInfo>, AccountError> {
    let now = state.clock().now();
    let idle = state.settings().session_idle;
    let rows = session::Entity::find()
        .filter(session::Column::AccountId.eq(viewer.account_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_desc(session::Column::CreatedAt)
        .all(state.db())
        .await?;
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        let idle_end = row.last_seen_at + idle;
        if idle_end <= now {
            continue;
        }
        let user_agent = match &row.user_agent_ct {
            Some(ct) => {
                let key = state.read_key(viewer.account_id, &[ct]).await?;
                Some(state.cipher().decrypt_str_under(
                    key.as_deref(),
                    &user_agent_context(row.id),
                    ct,
                )?)
            }
            None => None,
        };
        sessions.push(SessionInfo {
            id: row.id,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at.min(idle_end),
            user_agent,
            current: row.id == viewer.session_id,
        });
    }
    Ok(sessions)
}
