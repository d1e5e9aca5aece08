//! The erasure journal: the ids of erased accounts and when they were
//! erased, kept in a database apart from the main one, so that restoring
//! a backup of the main database cannot bring an erased person back.
//!
//! Rules:
//! - It lives in the separate key store when there is one
//!   (`CUSTOS_KEY_STORE_URL`), else in the database
//!   `CUSTOS_ERASURE_JOURNAL_URL` names; without either there is none, and
//!   production warns at start that restores cannot re-apply erasures.
//! - The purge records a batch before committing it, so no erasure commits
//!   unrecorded; an entry whose erasure then fails to commit is withdrawn.
//! - Entries hold account ids and times only, never personal data, and are
//!   never deleted by Custos: they are what a restore is checked against
//!   ([`super::reapply`]).

use chrono::{DateTime, Utc};
use entity::erasure_journal;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

/// Ids per statement when recording or reading entries.
const CHUNK: usize = 1000;

/// Where this instance keeps the erasure journal, if anywhere.
pub struct ErasureJournal {
    db: Option<DatabaseConnection>,
}

impl std::fmt::Debug for ErasureJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureJournal")
            .field("kept", &self.db.is_some())
            .finish()
    }
}

impl ErasureJournal {
    /// No journal: erasures cannot be re-applied after a restore.
    pub fn none() -> Self {
        Self { db: None }
    }

    /// A journal in `db` (already migrated): the key store or a database
    /// of its own.
    pub fn kept_in(db: DatabaseConnection) -> Self {
        Self { db: Some(db) }
    }

    /// Whether erasures are recorded at all.
    pub fn is_kept(&self) -> bool {
        self.db.is_some()
    }

    /// Records that `accounts` were erased at `at`. An account recorded
    /// before keeps its first time.
    pub async fn record(&self, accounts: &[Uuid], at: DateTime<Utc>) -> Result<(), DbErr> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        for chunk in accounts.chunks(CHUNK) {
            let rows = chunk.iter().map(|id| erasure_journal::ActiveModel {
                account_id: Set(*id),
                erased_at: Set(at),
            });
            erasure_journal::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([erasure_journal::Column::AccountId])
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }

    /// Takes back entries recorded for an erasure that then failed to
    /// commit (the accounts are still whole and their requests still due).
    pub async fn withdraw(&self, accounts: &[Uuid]) -> Result<(), DbErr> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        for chunk in accounts.chunks(CHUNK) {
            erasure_journal::Entity::delete_many()
                .filter(erasure_journal::Column::AccountId.is_in(chunk.iter().copied()))
                .exec(db)
                .await?;
        }
        Ok(())
    }

    /// Up to `limit` entries after `after` in id order: the journal walked
    /// a page at a time. Empty when there is no journal.
    pub async fn page_after(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, DbErr> {
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        let mut query = erasure_journal::Entity::find()
            .select_only()
            .columns([
                erasure_journal::Column::AccountId,
                erasure_journal::Column::ErasedAt,
            ])
            .order_by_asc(erasure_journal::Column::AccountId)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(erasure_journal::Column::AccountId.gt(after));
        }
        query.into_tuple().all(db).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use chrono::TimeZone;
    use migration::MigratorTrait;
    use sea_orm::Database;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0)
            .single()
            .unwrap()
    }

    async fn journal() -> ErasureJournal {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::ErasureJournalMigrator::up(&db, None)
            .await
            .unwrap();
        ErasureJournal::kept_in(db)
    }

    #[tokio::test]
    async fn entries_are_recorded_once_walked_in_pages_and_withdrawn() {
        let journal = journal().await;
        let mut ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        ids.sort();
        journal.record(&ids[..3], at(1)).await.unwrap();
        // Recorded again later: the first time stays.
        journal.record(&ids, at(2)).await.unwrap();
        let first = journal.page_after(None, 2).await.unwrap();
        assert_eq!(first, vec![(ids[0], at(1)), (ids[1], at(1))]);
        let rest = journal.page_after(Some(ids[1]), 10).await.unwrap();
        assert_eq!(
            rest,
            vec![(ids[2], at(1)), (ids[3], at(2)), (ids[4], at(2))]
        );
        journal.withdraw(&ids[3..]).await.unwrap();
        let all = journal.page_after(None, 10).await.unwrap();
        assert_eq!(all.len(), 3);
    }

    #[tokio::test]
    async fn without_a_journal_nothing_is_kept_and_nothing_fails() {
        let journal = ErasureJournal::none();
        assert!(!journal.is_kept());
        journal.record(&[Uuid::new_v4()], at(1)).await.unwrap();
        journal.withdraw(&[Uuid::new_v4()]).await.unwrap();
        assert!(journal.page_after(None, 10).await.unwrap().is_empty());
    }
}
