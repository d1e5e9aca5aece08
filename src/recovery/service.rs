//! Password reset rules (see [`super`]) and their transactions. Addresses
//! are looked up by blind index and decrypted only to address the mail.

use chrono::{DateTime, Utc};
use entity::{account, account_token};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set, TransactionTrait, sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    accounts::{
        AccountStatus, TokenPurpose,
        email::{Email, InvalidEmail},
        password::{self, WeakPassword},
        service::{
            self as accounts, AccountRecord, EMAIL_INDEX, MAX_MAILS_PER_HOUR, open_readable,
            open_readable_in,
        },
        sessions,
    },
    crypto::tokens,
    mail::{
        outbox::{self, OutgoingMail},
        templates,
    },
    ratelimit::{login as throttle, password_check},
    state::AppState,
};

/// What can go wrong in recovery.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The address is not syntactically valid.
    #[error("email: {0}")]
    Email(#[from] InvalidEmail),
    /// The token is unknown, used or expired (or its account is gone).
    #[error("invalid token")]
    InvalidToken,
    /// The new password breaks the policy.
    #[error("password: {0}")]
    WeakPassword(#[from] WeakPassword),
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(RecoveryError);

/// Handles `requestPasswordReset`: mails a reset link to the bound address
/// of the `ACTIVE` account that has `email`, if any and if the hourly mail
/// cap allows. `Ok(())` for every well-formed address, answered no sooner
/// than [`crate::timing::ANSWER_FLOOR`] after the call so that timing tells
/// nothing.
pub async fn request_password_reset(state: &AppState, email: &str) -> Result<(), RecoveryError> {
    let email = Email::parse(email)?;
    crate::timing::with_answer_floor("request_password_reset", send_reset_link(state, &email)).await
}

/// The work behind [`request_password_reset`], without the answer floor.
async fn send_reset_link(state: &AppState, email: &Email) -> Result<(), RecoveryError> {
    let now = state.clock().now();
    // Every key in use: an account not yet re-indexed by a blind-index
    // rotation must still get its link.
    let indexes = state.blind().lookup(EMAIL_INDEX, &email.normalised());
    let txn = state.db().begin().await?;
    let mut select = account::Entity::find().filter(account::Column::EmailBidx.is_in(indexes));
    if txn.get_database_backend() == DbBackend::Postgres {
        // Concurrent requests for one account queue here, so the hourly
        // cap below is exact.
        select = select.lock_exclusive();
    }
    let Some(row) = select
        .one(&txn)
        .await?
        .filter(|row| AccountStatus::Active.is(&row.status))
    else {
        txn.rollback().await?;
        tracing::info!(
            target: "security",
            event = "password_reset_requested_unknown",
            "password reset asked for an address without an active account"
        );
        return Ok(());
    };
    let sent =
        accounts::tokens_issued_last_hour(&txn, row.id, TokenPurpose::ResetPassword, now).await?;
    if sent >= MAX_MAILS_PER_HOUR {
        txn.rollback().await?;
        tracing::info!(
            target: "security",
            account_id = %row.id,
            event = "password_reset_mail_limited",
            "password reset mail cap reached; nothing sent"
        );
        return Ok(());
    }
    let Some(account) = open_readable_in(state, &txn, &row).await? else {
        // Its data key is gone: answered as for an unknown address.
        txn.rollback().await?;
        return Ok(());
    };
    queue_reset_link(state, &txn, row.id, &account, now).await?;
    txn.commit().await?;
    tracing::info!(
        target: "security",
        account_id = %row.id,
        event = "password_reset_requested",
        "password reset link queued"
    );
    Ok(())
}

/// Issues a fresh reset link for `account_id` in `txn`, voiding any
/// earlier one (only the newest link works), and queues it to `account`.
async fn queue_reset_link<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    account_id: Uuid,
    account: &AccountRecord,
    now: DateTime<Utc>,
) -> Result<(), RecoveryError> {
    accounts::void_tokens(txn, account_id, TokenPurpose::ResetPassword, now).await?;
    let settings = state.settings();
    let ttl = settings.accounts.reset_token_ttl;
    let issued = tokens::issue()?;
    account_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        account_id: Set(account_id),
        purpose: Set(TokenPurpose::ResetPassword.into()),
        token_hash: Set(issued.hash),
        new_email_ct: Set(None),
        new_email_bidx: Set(None),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(txn)
    .await?;
    // Built from the configured public URL only: a forged Host header
    // cannot send someone a link to another site.
    let link = templates::action_link(
        &settings.http.public_url,
        "/reset-password",
        issued.token.expose_secret(),
    );
    let minutes = u32::try_from(ttl.num_minutes()).unwrap_or(u32::MAX);
    outbox::queue(
        state,
        txn,
        OutgoingMail::to_account(
            account_id,
            "password_reset",
            &account.email,
            templates::password_reset(account.language, &link, minutes),
        ),
        now,
    )
    .await?;
    Ok(())
}

/// The reset token `token` names, while unused and unexpired.
async fn live_reset_token(
    state: &AppState,
    token: &str,
) -> Result<account_token::Model, RecoveryError> {
    let now = state.clock().now();
    let Some(token_row) = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(tokens::hash_token(token.trim())))
        .filter(account_token::Column::Purpose.eq(TokenPurpose::ResetPassword))
        .one(state.db())
        .await?
        .filter(|t| t.used_at.is_none() && t.expires_at > now)
    else {
        tracing::info!(
            target: "security",
            event = "password_reset_token_rejected",
            "unknown, used or expired reset token"
        );
        return Err(RecoveryError::InvalidToken);
    };
    Ok(token_row)
}

/// Handles `resetPassword`: sets `new_password` on the account of a live
/// reset token and ends every session, as described in [`super`]. A weak
/// password is refused before the token is touched.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: &SecretString,
    client: Option<std::net::IpAddr>,
) -> Result<(), RecoveryError> {
    let token_row = live_reset_token(state, token).await?;
    let row = account::Entity::find_by_id(token_row.account_id)
        .one(state.db())
        .await?
        .filter(|row| AccountStatus::Active.is(&row.status))
        .ok_or(RecoveryError::InvalidToken)?;
    // A restored link of an account whose data key is gone opens nothing.
    let Some(account) = open_readable(state, &row).await? else {
        return Err(RecoveryError::InvalidToken);
    };
    password::check(
        new_password,
        &[account.username.as_str(), account.email.as_str()],
    )?;
    // Hashed before the transaction: SQLite has one connection, and a
    // hash is tens of milliseconds nobody should wait on.
    let password_hash = state.passwords().hash(new_password).await?;

    let now = state.clock().now();
    let txn = state.db().begin().await?;
    // Used in the update itself, so of two uses racing only one wins.
    let claimed = account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(now))
        .filter(account_token::Column::Id.eq(token_row.id))
        .filter(account_token::Column::UsedAt.is_null())
        .filter(account_token::Column::ExpiresAt.gt(now))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(RecoveryError::InvalidToken);
    }
    let row = account::Entity::find_by_id(row.id)
        .one(&txn)
        .await?
        .filter(|row| AccountStatus::Active.is(&row.status))
        .ok_or(RecoveryError::InvalidToken)?;
    // From the row read in this transaction: its names are the current ones.
    // A restored link of an account whose data key is gone opens nothing.
    let Some(person) = open_readable_in(state, &txn, &row).await? else {
        return Err(RecoveryError::InvalidToken);
    };
    let mut subjects = sessions::throttle_subjects_from(state, &person, client);
    // The reset proves the address: a wait on password checks ends too.
    subjects.push(password_check::subject(state.blind().active(), row.id));
    let account_id = row.id;
    let mut update = row.into_active_model();
    update.password_hash = Set(password_hash);
    // The link reached the bound address: that proves the address.
    update.email_verified = Set(true);
    update.updated_at = Set(now);
    update.update(&txn).await?;
    crate::accounts::sessions_store::revoke_all_except(&txn, account_id, None, now).await?;
    accounts::void_tokens(&txn, account_id, TokenPurpose::ResetPassword, now).await?;
    // Whoever knew the old password may have started moving the account to
    // their own address: that link dies with the old password.
    accounts::void_tokens(&txn, account_id, TokenPurpose::ChangeEmail, now).await?;
    throttle::clear(&txn, &subjects).await?;
    outbox::queue(
        state,
        &txn,
        OutgoingMail::to_account(
            account_id,
            "password_changed",
            &account.email,
            templates::password_changed(account.language, &account.username),
        ),
        now,
    )
    .await?;
    txn.commit().await?;
    // Every session of the account has ended.
    state.session_cache().forget_account(account_id);
    tracing::info!(
        target: "security",
        account_id = %account_id,
        event = "password_reset_completed",
        "password reset; every session ended"
    );
    Ok(())
}
