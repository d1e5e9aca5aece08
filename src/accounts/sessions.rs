//! Sessions: sign-in by username or email, bearer tokens stored only as
//! hashes, idle and absolute expiry, revocation. Sign-in attempts are
//! throttled per login name ([`crate::ratelimit::login`]); a sign-in from a
//! new user agent can be told to the owner (`CUSTOS_NOTIFY_NEW_SIGNIN`).

use chrono::{DateTime, Utc};
use entity::{account, session};
use sea_orm::ConnectionTrait;
use secrecy::SecretString;
use uuid::Uuid;

use super::{
    Role,
    email::Email,
    service::AccountError,
    session_cache::CachedSession,
    sessions_store::{self, NewSession},
    states::AccountStatus,
    store::{self, AccountRecord, EMAIL_INDEX, USERNAME_INDEX, is_readable, open_readable},
    username::Username,
};
use crate::{
    crypto::{IssuedToken, tokens},
    db::Writes,
    mail::outbox::{self, MailQueue, OutgoingMail},
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
    admit_attempt(state, &lookup, client).await?;
    let (row, account) = check_password(state, &lookup, password).await?;
    // The password was right: the count starts over, for both names (in
    // the statement that stores the new session, on PostgreSQL).
    let mut writes = Writes::new();
    throttle::clear_in(
        &mut writes,
        &throttle_subjects_from(state, &account, client),
    );
    if AccountStatus::DeletionScheduled.is(&row.status) {
        writes.run(state.db()).await?;
        // The person is told when the erasure runs: until then a
        // cancellation link still works.
        let purge_after = crate::erasure::store::open_request(state.db(), row.id)
            .await?
            .and_then(|request| request.purge_after);
        return Err(AccountError::DeletionScheduled { purge_after });
    }
    let now = state.clock().now();
    let issued = tokens::issue()?;
    let expires_at = now + state.settings().sessions.lifetime;
    let user_agent: Option<String> = user_agent
        .map(str::trim)
        .filter(|agent| !agent.is_empty())
        .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
    start_session(
        state,
        writes,
        &account,
        &issued,
        user_agent.as_deref(),
        now,
        expires_at,
    )
    .await?;
    Ok(SignedIn {
        token: issued.token,
        expires_at,
        account,
    })
}

/// Counts a sign-in attempt against the login name and the client's
/// network; `RateLimited` when there have been too many.
async fn admit_attempt(
    state: &AppState,
    lookup: &LoginLookup,
    client: Option<std::net::IpAddr>,
) -> Result<(), AccountError> {
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
    Ok(())
}

/// The account the login names, when `password` is its password and it
/// can still be read; else `InvalidCredentials` (after a hash either way).
async fn check_password(
    state: &AppState,
    lookup: &LoginLookup,
    password: &SecretString,
) -> Result<(account::Model, AccountRecord), AccountError> {
    let row = match &lookup.index {
        Some((column, indexes)) => store::holder_by(state.db(), *column, indexes.clone()).await?,
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
    Ok((row, account))
}

/// Stores the new session of `account` with `writes` (the sign-in's
/// throttle clear), and with them, when the user agent is new to the
/// account and the operator asked for it, a notice to its owner.
async fn start_session(
    state: &AppState,
    mut writes: Writes,
    account: &AccountRecord,
    issued: &IssuedToken,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), AccountError> {
    let id = Uuid::new_v4();
    // The user agent is stored sealed under the account's key.
    let agent = match user_agent {
        Some(agent) => Some((agent, state.write_key(state.db(), account.id).await?)),
        None => None,
    };
    let user_agent_ct = match &agent {
        Some((agent, key)) => Some(sessions_store::seal_user_agent(state, key, id, agent)?),
        None => None,
    };
    let notice = match &agent {
        Some((agent, key)) if state.settings().sessions.notify_new_signin => {
            is_new_user_agent(state, state.db(), account.id, agent)
                .await?
                .then(|| (key, new_signin_notice(account, agent, now)))
        }
        _ => None,
    };
    sessions_store::insert_in(
        &mut writes,
        NewSession {
            id,
            account_id: account.id,
            token_hash: issued.hash.clone(),
            user_agent_ct,
            now,
            expires_at,
        },
    );
    // The session and the notice of it are written together.
    if let Some((key, mail)) = &notice {
        outbox::queue_in(state, &mut writes, Some(key), mail, now)?;
    }
    writes.run(state.db()).await?;
    if notice.is_some() {
        state.wake_sender();
        tracing::info!(target: "security", account_id = %account.id, event = "new_signin_notice_queued", "sign-in from a new user agent");
    }
    tracing::info!(target: "security", account_id = %account.id, session_id = %id, event = "login_succeeded", "signed in");
    Ok(())
}

/// The notice to the owner of a sign-in from a new user agent.
fn new_signin_notice(account: &AccountRecord, agent: &str, now: DateTime<Utc>) -> OutgoingMail {
    OutgoingMail {
        account_id: Some(account.id),
        kind: "new_signin_notice",
        to: account.email.clone(),
        content: super::templates::new_signin(account.language, &account.username, agent, now),
    }
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
    let recent = sessions_store::recent(conn, account_id, RECENT_SESSIONS_COMPARED).await?;
    if recent.is_empty() {
        return Ok(false);
    }
    for earlier in &recent {
        // User agents are encrypted with a fresh nonce each: compare
        // plaintexts, row by row.
        let seen = sessions_store::open_user_agent_in(state, conn, earlier).await?;
        if seen.as_deref() == Some(agent) {
            return Ok(false);
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
    // One read for both, shared with the other requests waiting for one:
    // this runs on every signed-in request the cache does not answer.
    let Some((mut row, Some(account))) = state.session_reads().find(&token_hash).await? else {
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
        row = sessions_store::touch(state.db(), row, now).await?;
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
    let idle_limit = row.last_seen_at + state.settings().sessions.idle;
    if row.revoked_at.is_some() || row.expires_at <= now || idle_limit <= now {
        return None;
    }
    if !AccountStatus::Active.is(&account.status) {
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
    let row = sessions_store::find_of(state.db(), account_id, session_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    sessions_store::revoke(state.db(), row, state.clock().now()).await?;
    state.session_cache().forget_account(account_id);
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
    let idle = state.settings().sessions.idle;
    let ended = sessions_store::revoke_live_except(state.db(), account_id, keep, idle, now).await?;
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, ended, "other sessions ended");
    Ok(ended)
}

/// The account's live sessions, newest first.
pub async fn list(state: &AppState, viewer: &Viewer) -> Result<Vec<SessionInfo>, AccountError> {
    let now = state.clock().now();
    let idle = state.settings().sessions.idle;
    let rows = sessions_store::unexpired(state.db(), viewer.account_id, now).await?;
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        let idle_end = row.last_seen_at + idle;
        if idle_end <= now {
            continue;
        }
        let user_agent = sessions_store::open_user_agent(state, &row).await?;
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
