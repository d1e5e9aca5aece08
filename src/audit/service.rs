//! Appending to and verifying the audit chain.

use chrono::{DateTime, Utc};
use entity::audit_entry;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What is being recorded.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Who did it.
    pub actor_id: Option<Uuid>,
    /// What was done, e.g. `role.set`, `ticket.reveal_email`.
    pub action: &'static str,
    /// Whose data or which account it concerned.
    pub subject_id: Option<Uuid>,
    /// Further facts, without personal data.
    pub detail: String,
}

/// The hash an entry must carry: over `prev_hash` and every field but
/// `hash` itself.
pub fn entry_hash(entry: &audit_entry::Model) -> Vec<u8> {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(&entry.prev_hash);
    field(&entry.seq.to_be_bytes());
    field(entry.id.as_bytes());
    field(
        entry
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .as_bytes(),
    );
    field(
        entry
            .actor_id
            .map(|a| *a.as_bytes())
            .unwrap_or_default()
            .as_slice(),
    );
    field(entry.action.as_bytes());
    field(
        entry
            .subject_id
            .map(|s| *s.as_bytes())
            .unwrap_or_default()
            .as_slice(),
    );
    field(entry.detail.as_bytes());
    hasher.finalize().to_vec()
}

/// Appends an entry inside the caller's transaction (so the entry commits
/// or rolls back with the change it records).
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    record: AuditRecord,
    now: DateTime<Utc>,
) -> Result<audit_entry::Model, sea_orm::DbErr> {
    let mut entries = append_many(conn, vec![record], now).await?;
    entries
        .pop()
        .ok_or_else(|| sea_orm::DbErr::Custom("audit append wrote nothing".into()))
}

/// Appends an entry in a transaction of its own, for what changes nothing
/// else (a read of personal data, a finished run). The chain's lock needs
/// a transaction: on a bare connection PostgreSQL would release it at once,
/// and two appenders could take the same place in the chain.
pub async fn append_alone(
    db: &DatabaseConnection,
    record: AuditRecord,
    now: DateTime<Utc>,
) -> Result<audit_entry::Model, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let entry = append(&txn, record, now).await?;
    txn.commit().await?;
    Ok(entry)
}

/// Appends several entries in order, chained to each other, with one
/// multi-row insert (inside the caller's transaction).
pub async fn append_many<C: ConnectionTrait>(
    conn: &C,
    records: Vec<AuditRecord>,
    now: DateTime<Utc>,
) -> Result<Vec<audit_entry::Model>, sea_orm::DbErr> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        // One appender at a time: the lock ends with the transaction.
        conn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(7301986254)",
        ))
        .await?;
    }
    let last = audit_entry::Entity::find()
        .order_by_desc(audit_entry::Column::Seq)
        .limit(1)
        .one(conn)
        .await?;
    let (mut seq, mut prev_hash) = match last {
        Some(last) => (last.seq, last.hash),
        None => (0, vec![0u8; 32]),
    };
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        seq += 1;
        let mut entry = audit_entry::Model {
            seq,
            id: Uuid::new_v4(),
            at: now,
            actor_id: record.actor_id,
            action: record.action.to_owned(),
            subject_id: record.subject_id,
            detail: record.detail,
            prev_hash,
            hash: Vec::new(),
        };
        entry.hash = entry_hash(&entry);
        prev_hash = entry.hash.clone();
        entries.push(entry);
    }
    // Nine parameters a row: chunks stay below SQLite's 32,766.
    for chunk in entries.chunks(2000) {
        audit_entry::Entity::insert_many(chunk.iter().cloned().map(audit_entry::ActiveModel::from))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(entries)
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The sequence number of the first entry that does not verify.
    pub seq: i64,
    /// Its id.
    pub id: Uuid,
    /// What is wrong.
    pub reason: &'static str,
}

/// Checks the whole chain in order, in batches; returns the number of
/// entries checked, or the first break.
pub async fn verify<C: ConnectionTrait>(
    conn: &C,
) -> Result<Result<u64, ChainBreak>, sea_orm::DbErr> {
    const BATCH: u64 = 1000;
    let mut expected_prev = vec![0u8; 32];
    let mut expected_seq = 1i64;
    let mut checked = 0u64;
    loop {
        let batch = audit_entry::Entity::find()
            .filter(audit_entry::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_entry::Column::Seq)
            .limit(BATCH)
            .all(conn)
            .await?;
        if batch.is_empty() {
            return Ok(Ok(checked));
        }
        for entry in batch {
            let broken = |reason| ChainBreak {
                seq: entry.seq,
                id: entry.id,
                reason,
            };
            if entry.seq != expected_seq {
                // A gap: the entry before this one was deleted.
                return Ok(Err(broken("an earlier entry is missing")));
            }
            if entry.prev_hash != expected_prev {
                return Ok(Err(broken("does not follow the previous entry")));
            }
            if entry_hash(&entry) != entry.hash {
                return Ok(Err(broken("its content was changed")));
            }
            expected_prev = entry.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
}

/// A page of the trail in chain order: `limit` entries after the one at
/// sequence number `after`.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    limit: u64,
    after: Option<i64>,
) -> Result<Vec<audit_entry::Model>, sea_orm::DbErr> {
    let mut query = audit_entry::Entity::find().order_by_asc(audit_entry::Column::Seq);
    if let Some(after) = after {
        query = query.filter(audit_entry::Column::Seq.gt(after));
    }
    query.limit(limit).all(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};

    async fn database() -> sea_orm::DatabaseConnection {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    fn record(action: &'static str) -> AuditRecord {
        AuditRecord {
            actor_id: Some(Uuid::new_v4()),
            action,
            subject_id: Some(Uuid::new_v4()),
            detail: format!("detail of {action}"),
        }
    }

    #[tokio::test]
    async fn an_untouched_chain_verifies_and_pages() {
        let db = database().await;
        let now = Utc::now();
        let mut ids = Vec::new();
        for action in ["a.one", "a.two", "a.three"] {
            ids.push(append(&db, record(action), now).await.unwrap().id);
        }
        assert_eq!(verify(&db).await.unwrap(), Ok(3));
        let page_one = page(&db, 2, None).await.unwrap();
        assert_eq!(page_one.len(), 2);
        let page_two = page(&db, 2, Some(page_one[1].seq)).await.unwrap();
        assert_eq!(
            page_two.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[2]]
        );
    }

    #[tokio::test]
    async fn an_edited_entry_is_named() {
        let db = database().await;
        let now = Utc::now();
        append(&db, record("a.one"), now).await.unwrap();
        let second = append(&db, record("a.two"), now).await.unwrap();
        append(&db, record("a.three"), now).await.unwrap();
        let mut edited = second.clone().into_active_model();
        edited.detail = Set("something else".into());
        edited.update(&db).await.unwrap();
        let broken = verify(&db).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 2);
        assert_eq!(broken.id, second.id);
    }

    #[tokio::test]
    async fn a_deleted_entry_is_found() {
        let db = database().await;
        let now = Utc::now();
        append(&db, record("a.one"), now).await.unwrap();
        let second = append(&db, record("a.two"), now).await.unwrap();
        let third = append(&db, record("a.three"), now).await.unwrap();
        audit_entry::Entity::delete_by_id(second.seq)
            .exec(&db)
            .await
            .unwrap();
        let broken = verify(&db).await.unwrap().unwrap_err();
        assert_eq!(broken.id, third.id);
    }
}
