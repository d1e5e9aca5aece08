//! Reads of a session and its account, batched across requests: a signed-in
//! request the session cache cannot answer reads its session row with the
//! account row, and under load many such requests wait at once. Each read
//! of its own would pay a pooled connection taken and given back (sqlx pings
//! the connection as it returns), a statement built, sent and answered, and
//! the database's work for one statement; one read for every request waiting
//! pays all of that once. A signed-in read costs about half as much CPU
//! that way, most of it on the database's side.
//!
//! Rules:
//! - A read only answers requests that were waiting before its statement
//!   was sent. A request that arrives while a read is under way waits for
//!   the next one, so it never gets an answer older than itself: a session
//!   revoked (on any instance) before the request arrived is seen revoked.
//! - The first request to find no read running starts one, in a task of its
//!   own, so a caller that goes away does not take the others' answers with
//!   it. At most [`IN_FLIGHT`] reads run at once (one on SQLite, which has
//!   one connection); each takes what is waiting, up to [`MAX_BATCH`]
//!   tokens, and the reader goes on while anything waits.
//! - With nothing else waiting, a request is read at once, alone: batching
//!   never waits for company.
//! - A read that fails answers every request in it with the error; nothing
//!   is retried behind the caller's back.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use entity::{account, session};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::oneshot;

/// Reads run at once on PostgreSQL. Two keep both cores of a small host
/// busy while the batches stay large; more would split the waiting
/// requests into smaller batches without reading any sooner.
pub const IN_FLIGHT: usize = 2;

/// Tokens read by one statement at most.
pub const MAX_BATCH: usize = 128;

/// A session row and its account row, as one read returns them.
pub type SessionRow = (session::Model, Option<account::Model>);

/// What a waiting request is sent: its row, if the token is known.
type Answer = Result<Option<SessionRow>, String>;

/// Requests waiting for a read, and how many reads are running.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Vec<u8>, oneshot::Sender<Answer>)>,
    running: usize,
}

/// Counts of reads and of the requests they answered, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCounts {
    /// Statements run.
    pub reads: u64,
    /// Requests answered by them.
    pub requests: u64,
}

/// The batched reader; one per instance, held by the state.
pub struct SessionReads {
    db: DatabaseConnection,
    in_flight: usize,
    queue: Mutex<Queue>,
    reads: AtomicU64,
    requests: AtomicU64,
}

impl SessionReads {
    /// A reader over `db`, running at most `in_flight` reads at once.
    pub fn new(db: DatabaseConnection, in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            db,
            in_flight: in_flight.max(1),
            queue: Mutex::default(),
            reads: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// The session whose token hashes to `token_hash`, with its account;
    /// `None` when no session has that token.
    pub async fn find(self: &Arc<Self>, token_hash: &[u8]) -> Result<Option<SessionRow>, DbErr> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push((token_hash.to_vec(), answer));
            let start = queue.running < self.in_flight;
            if start {
                queue.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(Arc::clone(self).read_while_waiting());
        }
        match answered.await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(failed)) => Err(DbErr::Custom(failed)),
            // The reading task ended without answering (it panicked or the
            // runtime is shutting down).
            Err(_) => Err(DbErr::Custom("the session read was abandoned".to_owned())),
        }
    }

    /// Reads so far, and the requests they answered.
    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            reads: self.reads.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue whole (every
        // change to it is one push or one drain).
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes what is waiting and reads it, until nothing waits. The count
    /// of running reads drops under the same lock that finds the queue
    /// empty, so a request queued meanwhile always has a reader.
    async fn read_while_waiting(self: Arc<Self>) {
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect::<Vec<_>>()
            };
            self.read(batch).await;
        }
    }

    /// One statement for every token of `batch`; each waiting request is
    /// sent its row, or the error.
    async fn read(&self, batch: Vec<(Vec<u8>, oneshot::Sender<Answer>)>) {
        let mut tokens: Vec<Vec<u8>> = batch.iter().map(|(token, _)| token.clone()).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let found = session::Entity::find()
            .find_also_related(account::Entity)
            // One statement text whatever the batch's size on PostgreSQL
            // (an array parameter), so each connection prepares it once.
            .filter(crate::db::one_of(
                self.db.get_database_backend(),
                session::Column::TokenHash,
                tokens,
            ))
            .all(&self.db)
            .await;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match found {
            Ok(rows) => {
                let by_token: HashMap<Vec<u8>, SessionRow> = rows
                    .into_iter()
                    .map(|(row, account)| (row.token_hash.clone(), (row, account)))
                    .collect();
                for (token, answer) in batch {
                    // A request that went away is no longer listening.
                    let _ = answer.send(Ok(by_token.get(&token).cloned()));
                }
            }
            Err(err) => {
                let failed = format!("session read failed: {err}");
                for (_, answer) in batch {
                    let _ = answer.send(Err(failed.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
    use uuid::Uuid;

    async fn database() -> DatabaseConnection {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    /// An account with one session, whose token hash is `token`.
    async fn signed_in(db: &DatabaseConnection, token: u8) -> Uuid {
        let now = Utc::now();
        let id = Uuid::new_v4();
        account::ActiveModel {
            id: Set(id),
            username_ct: Set(vec![token]),
            username_bidx: Set(vec![token, 1]),
            email_ct: Set(vec![token]),
            email_bidx: Set(vec![token, 2]),
            email_verified: Set(true),
            password_hash: Set(String::new()),
            role: Set("USER".into()),
            language: Set("en".into()),
            age_declaration: Set("ADULT".into()),
            guardian_consent: Set("NOT_NEEDED".into()),
            guardian_email_ct: Set(None),
            accepted_policy_version: Set(None),
            status: Set("ACTIVE".into()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .unwrap();
        session::ActiveModel {
            id: Set(Uuid::new_v4()),
            account_id: Set(id),
            token_hash: Set(vec![token; 32]),
            user_agent_ct: Set(None),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(now + Duration::days(1)),
            revoked_at: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
        id
    }

    #[tokio::test]
    async fn each_request_gets_its_own_row_and_waiting_ones_share_a_read() {
        let db = database().await;
        let mut accounts = Vec::new();
        for token in 1..=40u8 {
            accounts.push(signed_in(&db, token).await);
        }
        let reads = SessionReads::new(db, 1);
        // Forty requests at once, one of them twice and one unknown.
        let mut asked: Vec<u8> = (1..=40).collect();
        asked.extend([7, 99]);
        let answers = futures_util::future::join_all(asked.iter().map(|token| {
            let reads = Arc::clone(&reads);
            let token = vec![*token; 32];
            async move { reads.find(&token).await.unwrap() }
        }))
        .await;
        for (token, answer) in asked.iter().zip(answers) {
            match (token, answer) {
                (99, None) => {}
                (token, Some((row, Some(account)))) => {
                    assert_eq!(row.token_hash, vec![*token; 32]);
                    assert_eq!(account.id, accounts[usize::from(*token) - 1]);
                }
                (token, other) => panic!("token {token}: {other:?}"),
            }
        }
        let counts = reads.counts();
        assert_eq!(counts.requests, 42);
        assert!(
            counts.reads < 42,
            "requests waiting together share a read: {counts:?}"
        );
    }

    #[tokio::test]
    async fn a_read_sees_what_committed_before_the_request() {
        let db = database().await;
        let account = signed_in(&db, 5).await;
        let reads = SessionReads::new(db.clone(), 2);
        let (row, _) = reads.find(&[5; 32]).await.unwrap().unwrap();
        assert!(row.revoked_at.is_none());
        db.execute_unprepared("UPDATE sessions SET revoked_at = created_at")
            .await
            .unwrap();
        let (row, found) = reads.find(&[5; 32]).await.unwrap().unwrap();
        assert!(row.revoked_at.is_some(), "the revocation is seen at once");
        assert_eq!(found.map(|a| a.id), Some(account));
    }

    #[tokio::test]
    async fn a_failed_read_answers_every_request_in_it_with_the_error() {
        let db = database().await;
        signed_in(&db, 3).await;
        db.execute_unprepared("DROP TABLE sessions").await.unwrap();
        let reads = SessionReads::new(db, 1);
        let answers = futures_util::future::join_all((0..5).map(|_| {
            let reads = Arc::clone(&reads);
            async move { reads.find(&[3; 32]).await }
        }))
        .await;
        for answer in answers {
            let err = answer.expect_err("the table is gone");
            assert!(err.to_string().contains("session read failed"), "{err}");
        }
        // The reader stopped cleanly: a later request starts a new read.
        let again = reads.find(&[3; 32]).await;
        assert!(again.is_err());
        assert_eq!(reads.counts().requests, 6);
    }
}
