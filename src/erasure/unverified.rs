//! Sign-ups never verified are erased once their verification link has
//! expired and a grace (`CUSTOS_UNVERIFIED_GRACE_DAYS`, default 7) has
//! passed: anyone can type any address at sign-up, so an unverified account
//! may hold a stranger's address, and the policy keeps only what it needs.
//!
//! Rules: the window runs from the newest verification link the account was
//! sent (a resent link keeps it until that link, too, has expired plus the
//! grace). Erasure is scheduled at once and done by the purge like every
//! other; no receipt is mailed, because nobody proved the address theirs.

use entity::{account, account_token};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::service::{ErasureError, ErasureReason, schedule_immediately};
use crate::{
    accounts::{AccountStatus, TokenPurpose},
    audit::service::{self as audit, AuditRecord},
    state::AppState,
};

/// The audit action of an unverified sign-up scheduled for erasure.
pub const UNVERIFIED_EXPIRED_ACTION: &str = "signup.unverified_expired";

/// Schedules erasure of active accounts whose address was never verified
/// and whose newest verification link expired more than the grace ago;
/// returns how many. Run by the scheduler, before the purge.
pub async fn expire_unverified(state: &AppState) -> Result<u64, ErasureError> {
    let now = state.clock().now();
    let settings = state.settings();
    let links_expired_before = now - settings.accounts.unverified_grace;
    // No link outlives its account's creation by more than its life, so
    // younger accounts need not be looked at.
    let created_before = links_expired_before - settings.accounts.verification_token_ttl;
    let mut expired = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let txn = state.db().begin().await?;
        let mut query = account::Entity::find()
            .filter(account::Column::EmailVerified.eq(false))
            .filter(account::Column::Status.eq(AccountStatus::Active))
            .filter(account::Column::CreatedAt.lte(created_before))
            .order_by_asc(account::Column::Id)
            .limit(1);
        if let Some(after) = after {
            query = query.filter(account::Column::Id.gt(after));
        }
        let Some(row) = query.one(&txn).await? else {
            break;
        };
        after = Some(row.id);
        let live_links = account_token::Entity::find()
            .filter(account_token::Column::AccountId.eq(row.id))
            .filter(account_token::Column::Purpose.eq(TokenPurpose::VerifyEmail))
            .filter(account_token::Column::ExpiresAt.gt(links_expired_before))
            .count(&txn)
            .await?;
        if live_links > 0 {
            continue;
        }
        schedule_immediately(&txn, row.id, ErasureReason::UnverifiedSignup, now).await?;
        audit::append(
            &txn,
            AuditRecord {
                actor_id: None,
                action: UNVERIFIED_EXPIRED_ACTION,
                subject_id: Some(row.id),
                detail: "address never verified".to_owned(),
            },
            now,
        )
        .await?;
        txn.commit().await?;
        state.session_cache().forget_account(row.id);
        expired += 1;
    }
    Ok(expired)
}
