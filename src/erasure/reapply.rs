//! Erasures re-applied after a restore: any account the erasure journal
//! names that the main database still holds (a backup from before its
//! purge was restored) is erased again, before and while the restored
//! copy serves anyone. Runs at start and on every tick of the instance
//! running jobs, and in `custos purge --once`.
//!
//! Rules:
//! - Only the journal decides: an account without a data key may simply
//!   predate per-account keys (until `custos keys rotate`), and is never
//!   erased for that alone.
//! - The re-erasure takes every row the purge takes and destroys the data
//!   key if the restore brought one back; it leaves an audit entry saying
//!   it was re-applied after a restore, completes the account's open
//!   deletion requests, and sends no mail: the person had their receipt.
//! - Accounts are locked as they are claimed (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL), so instances starting together do not erase one twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{account, deletion_request};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
    sea_query::{LockBehavior, LockType},
};
use uuid::Uuid;

use super::{
    purge::{Erased, complete_requests, erase_rows},
    service::ErasureError,
};
use crate::{
    audit::service::{self as audit, AuditRecord},
    state::AppState,
};

/// Journal entries read and checked against the main database at a time.
const PAGE: u64 = 1000;

/// The audit action of an erasure re-applied after a restore.
pub const REAPPLIED: &str = "account.purge.reapplied";

/// Erases again every account the journal names that the database still
/// holds; answers how many. Nothing to do without a journal.
pub async fn run(state: &AppState) -> Result<u64, ErasureError> {
    let journal = state.journal();
    if !journal.is_kept() {
        return Ok(0);
    }
    let mut after = None;
    let mut erased = 0;
    loop {
        let page = journal.page_after(after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(*last);
        let ids: Vec<Uuid> = page.iter().map(|(id, _)| *id).collect();
        let present: Vec<Uuid> = account::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .filter(account::Column::Id.is_in(ids))
            .into_tuple()
            .all(state.db())
            .await?;
        if !present.is_empty() {
            let erased_at: BTreeMap<Uuid, DateTime<Utc>> = page
                .into_iter()
                .filter(|(id, _)| present.contains(id))
                .collect();
            erased += erase_again(state, &erased_at).await?;
        } else if (page.len() as u64) < PAGE {
            break;
        }
    }
    if erased > 0 {
        // No session of a re-erased account may be answered from memory.
        state.session_cache().forget_all();
        tracing::warn!(
            accounts = erased,
            "erasures re-applied: the database held accounts the erasure journal names (a restored backup)"
        );
    }
    Ok(erased)
}

/// Erases the accounts of `erased_at` (journal times by id) in one
/// transaction; answers how many it claimed.
async fn erase_again(
    state: &AppState,
    erased_at: &BTreeMap<Uuid, DateTime<Utc>>,
) -> Result<u64, ErasureError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let mut query =
        account::Entity::find().filter(account::Column::Id.is_in(erased_at.keys().copied()));
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = query.all(&txn).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let Erased { counts, .. } = erase_rows(state, &txn, &ids, &rows, now).await?;
    // The restored copy may still be waiting to confirm or purge: done.
    complete_requests(
        &txn,
        sea_orm::Condition::all()
            .add(deletion_request::Column::AccountId.is_in(ids.clone()))
            .add(deletion_request::Column::Status.is_in(super::store::RequestStatus::OPEN)),
        now,
    )
    .await?;
    let records = ids
        .iter()
        .map(|id| AuditRecord {
            actor_id: None,
            action: REAPPLIED,
            subject_id: Some(*id),
            detail: format!(
                "re-applied after a restore: erased {} as the erasure journal records; rows={}",
                erased_at
                    .get(id)
                    .map(|at| at.to_rfc3339())
                    .unwrap_or_default(),
                counts
                    .get(id)
                    .map(|tables| tables.values().sum::<u64>())
                    .unwrap_or_default()
            ),
        })
        .collect();
    audit::append_many(&txn, records, now).await?;
    txn.commit().await?;
    // A key the restore brought back into a separate store goes too.
    if let Err(err) = state.keys().destroy_pending(state.db()).await {
        tracing::error!(error = %err, "key store did not destroy re-erased accounts' keys; retried next run");
    }
    for id in &ids {
        tracing::info!(account_id = %id, "erasure re-applied after a restore");
    }
    Ok(ids.len() as u64)
}
