//! Sessions: sign-in by username or email, bearer tokens stored only as
//! hashes, idle and absolute expiry, revocation.

use chrono::{DateTime, Duration, Utc};
use entity::{account, session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::{
    Role,
    email::Email,
    service::{AccountError, AccountRecord, EMAIL_INDEX, USERNAME_INDEX, open, status},
    username::Username,
};
use crate::{
    crypto::{fields::FieldContext, tokens},
    state::AppState,
};

/// `lastSeenAt` is written at most this often, so reads stay reads.
pub const LAST_SEEN_GRANULARITY: Duration = Duration::minutes(1);
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
    /// Whether their address is verified.
    pub email_verified: bool,
    /// Stored guardian consent state.
    pub guardian_consent: String,
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

/// Finds the account a login names: an email address when it parses as
/// one, else a username.
async fn find_by_login(
    state: &AppState,
    login: &str,
) -> Result<Option<account::Model>, AccountError> {
    let login = login.trim();
    let index = if login.contains('@') {
        match Email::parse(login) {
            Ok(email) => state.blind().compute(EMAIL_INDEX, &email.normalised()),
            Err(_) => return Ok(None),
        }
    } else {
        match Username::parse(login) {
            Ok(username) => state.blind().compute(USERNAME_INDEX, username.canonical()),
            Err(_) => return Ok(None),
        }
    };
    let column = if login.contains('@') {
        account::Column::EmailBidx
    } else {
        account::Column::UsernameBidx
    };
    Ok(account::Entity::find()
        .filter(column.eq(index))
        .one(state.db())
        .await?)
}

/// Signs in by username or email. Every failure is `InvalidCredentials`,
/// and an unknown login costs a dummy hash so timing tells nothing.
pub async fn login(
    state: &AppState,
    login: &str,
    password: &SecretString,
    user_agent: Option<&str>,
) -> Result<SignedIn, AccountError> {
    let row = find_by_login(state, login).await?;
    let verified = state
        .passwords()
        .verify(password, row.as_ref().map(|r| r.password_hash.as_str()))
        .await?;
    let row = match row {
        Some(row) if verified => row,
        _ => return Err(AccountError::InvalidCredentials),
    };
    if row.status == status::DELETION_SCHEDULED {
        return Err(AccountError::DeletionScheduled);
    }
    let account = open(state, &row)?;
    let now = state.clock().now();
    let issued = tokens::issue()?;
    let id = Uuid::new_v4();
    let expires_at = now + state.settings().session_lifetime;
    let user_agent_ct = match user_agent {
        Some(agent) if !agent.trim().is_empty() => {
            let agent: String = agent.trim().chars().take(MAX_USER_AGENT_CHARS).collect();
            Some(
                state
                    .cipher()
                    .encrypt_str(&user_agent_context(id), &agent)?,
            )
        }
        _ => None,
    };
    session::ActiveModel {
        id: Set(id),
        account_id: Set(row.id),
        token_hash: Set(issued.hash),
        user_agent_ct: Set(user_agent_ct),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    }
    .insert(state.db())
    .await?;
    tracing::info!(account_id = %row.id, session_id = %id, "signed in");
    Ok(SignedIn {
        token: issued.token,
        expires_at,
        account,
    })
}

/// Resolves a presented token to its caller, or `None` when the token is
/// unknown, revoked, idle too long, past its lifetime, or its account is no
/// longer active.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Viewer>, AccountError> {
    let now = state.clock().now();
    let Some(row) = session::Entity::find()
        .filter(session::Column::TokenHash.eq(tokens::hash_token(token)))
        .one(state.db())
        .await?
    else {
        return Ok(None);
    };
    let idle_limit = row.last_seen_at + state.settings().session_idle;
    if row.revoked_at.is_some() || row.expires_at <= now || idle_limit <= now {
        return Ok(None);
    }
    let Some(account) = account::Entity::find_by_id(row.account_id)
        .one(state.db())
        .await?
        .filter(|a| a.status == status::ACTIVE)
    else {
        return Ok(None);
    };
    if now - row.last_seen_at >= LAST_SEEN_GRANULARITY {
        let mut touched = row.clone().into_active_model();
        touched.last_seen_at = Set(now);
        touched.update(state.db()).await?;
    }
    Ok(Some(Viewer {
        account_id: account.id,
        session_id: row.id,
        role: Role::from_stored(&account.role),
        email_verified: account.email_verified,
        guardian_consent: account.guardian_consent,
    }))
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
            Some(ct) => Some(
                state
                    .cipher()
                    .decrypt_str(&user_agent_context(row.id), ct)?,
            ),
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
