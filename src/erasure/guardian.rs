//! Guardian consent for minors. A minor's account waits, restricted, until
//! the guardian agrees by the mailed link; a refusal, or no answer within
//! `CUSTOS_GUARDIAN_CONSENT_DAYS`, schedules erasure at once.

use entity::{account, account_token};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};

use super::service::{ErasureError, ErasureReason, schedule_immediately};
use crate::{
    accounts::{AccountStatus, GuardianConsent, TokenPurpose, service::claim_token},
    audit::service::{self as audit, AuditRecord},
    consent::policy::PurposeDefinition,
    crypto::tokens,
    state::AppState,
};

/// What a guardian is asked to agree to: the minor's username and the
/// purposes their account is set to be used for. Nothing else about the
/// minor is shown to whoever holds the link. No `Debug`: it holds a
/// username, which must not reach a log.
pub struct GuardianRequest {
    /// The minor's username.
    pub username: String,
    /// The purposes the account would be used for: the required ones and
    /// the optional ones the minor chose.
    pub purposes: Vec<PurposeDefinition>,
}

/// The request behind a `/guardian-consent` token; `None` when the token
/// is unknown, used or expired, or the account no longer waits.
pub async fn request(
    state: &AppState,
    token: &str,
) -> Result<Option<GuardianRequest>, ErasureError> {
    let now = state.clock().now();
    let db = state.db();
    let Some(row) = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(tokens::hash_token(token.trim())))
        .filter(account_token::Column::Purpose.eq(TokenPurpose::GuardianConsent))
        .one(db)
        .await?
        .filter(|t| t.used_at.is_none() && t.expires_at > now)
    else {
        return Ok(None);
    };
    let Some(minor) = account::Entity::find_by_id(row.account_id)
        .one(db)
        .await?
        .filter(|a| {
            GuardianConsent::Pending.is(&a.guardian_consent) && AccountStatus::Active.is(&a.status)
        })
    else {
        return Ok(None);
    };
    let account = crate::accounts::service::open(state, &minor).await?;
    let policy = crate::consent::versions::current(db).await?.document;
    let states = crate::consent::service::current_states(db, minor.id, &policy).await?;
    let purposes = policy
        .purposes
        .into_iter()
        .filter(|purpose| {
            purpose.required
                || states
                    .iter()
                    .any(|s| s.purpose == purpose.code && s.granted)
        })
        .collect();
    Ok(Some(GuardianRequest {
        username: account.username,
        purposes,
    }))
}

/// Records the guardian's answer given through a `/guardian-consent` link.
pub async fn confirm(state: &AppState, token: &str, granted: bool) -> Result<(), ErasureError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(tokens::hash_token(token.trim())))
        .filter(account_token::Column::Purpose.eq(TokenPurpose::GuardianConsent))
        .one(&txn)
        .await?
        .filter(|t| t.used_at.is_none() && t.expires_at > now)
        .ok_or(ErasureError::InvalidToken)?;
    let minor = account::Entity::find_by_id(row.account_id)
        .one(&txn)
        .await?
        .filter(|a| {
            GuardianConsent::Pending.is(&a.guardian_consent) && AccountStatus::Active.is(&a.status)
        })
        .ok_or(ErasureError::InvalidToken)?;
    let account_id = minor.id;
    if !claim_token(&txn, row.id, now).await? {
        // Answered by a request running at the same time.
        return Err(ErasureError::InvalidToken);
    }
    let mut update = minor.into_active_model();
    update.guardian_consent = Set(if granted {
        GuardianConsent::Granted
    } else {
        GuardianConsent::Refused
    }
    .into());
    update.updated_at = Set(now);
    update.update(&txn).await?;
    audit::append(
        &txn,
        AuditRecord {
            actor_id: None,
            action: "guardian.consent",
            subject_id: Some(account_id),
            detail: if granted { "granted" } else { "refused" }.to_owned(),
        },
        now,
    )
    .await?;
    if !granted {
        schedule_immediately(&txn, account_id, ErasureReason::GuardianRefused, now).await?;
    }
    txn.commit().await?;
    // The session cache holds the account row: a request after this one
    // must see the change.
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, granted, "guardian answered");
    Ok(())
}

/// Schedules erasure of minors whose guardian never answered in time;
/// returns how many. Run by the scheduler.
pub async fn expire_unanswered(state: &AppState) -> Result<u64, ErasureError> {
    let now = state.clock().now();
    let cutoff =
        now - chrono::Duration::days(i64::from(state.settings().accounts.guardian_consent_days));
    let mut expired = 0;
    loop {
        let txn = state.db().begin().await?;
        let Some(minor) = account::Entity::find()
            .filter(account::Column::GuardianConsent.eq(GuardianConsent::Pending))
            .filter(account::Column::Status.eq(AccountStatus::Active))
            .filter(account::Column::CreatedAt.lte(cutoff))
            .limit(1)
            .one(&txn)
            .await?
        else {
            break;
        };
        schedule_immediately(&txn, minor.id, ErasureReason::GuardianTimeout, now).await?;
        audit::append(
            &txn,
            AuditRecord {
                actor_id: None,
                action: "guardian.timeout",
                subject_id: Some(minor.id),
                detail: "no answer in time".to_owned(),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        state.session_cache().forget_account(minor.id);
        expired += 1;
    }
    Ok(expired)
}
