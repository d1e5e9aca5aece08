//! Staff roles: who may answer tickets (SUPPORT) and who may run the
//! platform (ADMIN).
//!
//! Rules: only an ADMIN changes roles (the resolver guards it). The platform
//! never loses its last ACTIVE admin: demoting them is refused as bad input
//! on `role`, since the request itself is what is wrong, not the caller's
//! rights. Every change is audit-logged as `role.set` with the staff id, the
//! subject and "OLD -> NEW", in the transaction of the change. The answer
//! shows the subject's account to the admin, so even a call that changes
//! nothing leaves an entry: every staff read of someone's data is traced.
//! Roles are read from the account on every request, so a change applies
//! at the subject's next request without ending their sessions.

use entity::account;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::LockType,
};
use uuid::Uuid;

use super::{
    Role,
    states::AccountStatus,
    store::{self, AccountRecord, open_in, open_readable_in},
};
use crate::{
    audit::service::{AuditRecord, append},
    state::AppState,
};

/// The audit action of a role change.
pub const AUDIT_ACTION: &str = "role.set";

/// What can go wrong when changing a role.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The change would leave no active admin.
    #[error("the last admin cannot be demoted")]
    LastAdmin,
    /// The caller is no longer an active admin.
    #[error("the caller is not an admin")]
    NotAdmin,
    /// No such account.
    #[error("account not found")]
    NotFound,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(RoleError);

/// The ids of every ACTIVE admin, their rows locked on PostgreSQL (SQLite
/// has one writer). Two admins demoting each other at once are serialised
/// here: the second sees the first's change.
async fn active_admins<C: ConnectionTrait>(conn: &C) -> Result<Vec<Uuid>, sea_orm::DbErr> {
    let mut query = account::Entity::find()
        .filter(account::Column::Role.eq(Role::Admin.as_str()))
        .filter(account::Column::Status.eq(AccountStatus::Active))
        .order_by_asc(account::Column::Id);
    if conn.get_database_backend() == DbBackend::Postgres {
        query = query.lock(LockType::Update);
    }
    Ok(query
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect())
}

/// Gives `account_id` the role `role`, as `actor_id` (an admin) asked.
pub async fn set_role(
    state: &AppState,
    actor_id: Uuid,
    account_id: Uuid,
    role: Role,
) -> Result<AccountRecord, RoleError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    // Admins are locked before the subject's row, always in this order, so
    // concurrent changes cannot deadlock.
    let admins = active_admins(&txn).await?;
    // The caller's role was read when the request began; a concurrent
    // change may have taken it away since.
    if !admins.contains(&actor_id) {
        return Err(RoleError::NotAdmin);
    }
    let others = admins.iter().filter(|id| **id != account_id).count();
    let row = store::find_row(&txn, account_id)
        .await?
        .ok_or(RoleError::NotFound)?;
    // An account whose data key is gone is no account.
    if open_readable_in(state, &txn, &row).await?.is_none() {
        return Err(RoleError::NotFound);
    }
    let previous = Role::from_stored(&row.role);
    if previous == Role::Admin && role != Role::Admin && others == 0 {
        return Err(RoleError::LastAdmin);
    }
    let row = if previous == role {
        row
    } else {
        store::set_role(&txn, row, role, now).await?
    };
    append(
        &txn,
        AuditRecord {
            actor_id: Some(actor_id),
            action: AUDIT_ACTION,
            subject_id: Some(account_id),
            detail: format!("{} -> {}", previous.as_str(), role.as_str()),
        },
        now,
    )
    .await?;
    let record = open_in(state, &txn, &row).await?;
    txn.commit().await?;
    // The session cache holds the subject's role: their next request must
    // see the new one.
    state.session_cache().forget_account(account_id);
    tracing::info!(actor_id = %actor_id, account_id = %account_id, role = role.as_str(), "role set");
    Ok(record)
}
