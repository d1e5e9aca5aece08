//! The current policy kept in memory, so that sign-ups, `policy` and
//! `needsPolicyAcceptance` read no policy row on most requests.
//!
//! Rules:
//! - What is kept is what the database path ([`load`]) returns: the newest
//!   version's document, and the publication order and major flag of every
//!   version (what `needsPolicyAcceptance` compares). The versions are few
//!   (one per publication), so all of them fit.
//! - It is kept until a publication changes it: this instance forgets it
//!   when its own `publishPolicy` has committed; on PostgreSQL a trigger
//!   (migration `m20261207_035100`) sends a notification on [`CHANNEL`] at
//!   every commit that touches `policy_versions`, and every instance's
//!   change listener ([`crate::changes`]) forgets it then.
//! - On PostgreSQL it is used only while that listener is connected and
//!   informed (as the session cache is): from the moment it drops until it
//!   listens again, every read goes to the database. SQLite serves one
//!   instance, which forgets its own publications.
//! - A fill that raced a forgetting is dropped: each forgetting moves a
//!   generation counter, and a snapshot read before the move is not kept.
//! - Transactions that must see the policy as of their own reads
//!   (publishing, accepting) read the database, never this.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use entity::policy_version;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder, QuerySelect};

use super::versions::{self, PublishedPolicy};

/// The PostgreSQL notification channel that says the policy changed.
pub const CHANNEL: &str = "custos_policy";

/// The policy as the database last returned it.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// The current version.
    pub current: PublishedPolicy,
    /// Publication order of every version, by version.
    seqs: HashMap<String, i64>,
    /// Publication order of the newest major version.
    latest_major: Option<i64>,
}

impl PolicySnapshot {
    /// Whether someone who accepted `accepted` must accept again: the
    /// same rule as [`versions::needs_acceptance`], answered from memory.
    pub fn needs_acceptance(&self, accepted: Option<&str>) -> bool {
        let Some(latest_major) = self.latest_major else {
            return false;
        };
        let accepted_seq = accepted.and_then(|version| self.seqs.get(version).copied());
        accepted_seq.is_none_or(|seq| seq < latest_major)
    }
}

/// Reads the snapshot from the database: the path taken when nothing is
/// kept.
pub async fn load<C: ConnectionTrait>(conn: &C) -> Result<PolicySnapshot, DbErr> {
    let current = versions::current(conn).await?;
    let rows: Vec<(i64, String, bool)> = policy_version::Entity::find()
        .select_only()
        .column(policy_version::Column::Seq)
        .column(policy_version::Column::Version)
        .column(policy_version::Column::Major)
        .order_by_asc(policy_version::Column::Seq)
        .into_tuple()
        .all(conn)
        .await?;
    let latest_major = rows
        .iter()
        .filter(|(_, _, major)| *major)
        .map(|(seq, _, _)| *seq)
        .max();
    let seqs = rows
        .into_iter()
        .map(|(seq, version, _)| (version, seq))
        .collect();
    Ok(PolicySnapshot {
        current,
        seqs,
        latest_major,
    })
}

/// The policy of one instance.
pub struct PolicyCache {
    held: Mutex<Option<Arc<PolicySnapshot>>>,
    /// Moves on every forgetting.
    generation: AtomicU64,
    /// Whether publications made elsewhere reach this instance (always on
    /// SQLite; on PostgreSQL, while the change listener is connected).
    informed: AtomicBool,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache")
            .field("active", &self.is_active())
            .finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// An empty cache; `informed` says whether it may be used before a
    /// listener has connected.
    pub fn new(informed: bool) -> Self {
        Self {
            held: Mutex::new(None),
            generation: AtomicU64::new(0),
            informed: AtomicBool::new(informed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<PolicySnapshot>>> {
        // Nothing can be left half-changed: the slot is replaced whole.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the policy may be answered from memory now.
    pub fn is_active(&self) -> bool {
        self.informed.load(Ordering::Acquire)
    }

    /// The policy: from memory when kept and in use, else from `conn`
    /// (and then kept, unless it was forgotten meanwhile).
    pub async fn snapshot<C: ConnectionTrait>(
        &self,
        conn: &C,
    ) -> Result<Arc<PolicySnapshot>, DbErr> {
        if !self.is_active() {
            return Ok(Arc::new(load(conn).await?));
        }
        if let Some(held) = self.lock().as_ref() {
            return Ok(held.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = Arc::new(load(conn).await?);
        let mut held = self.lock();
        // Forgetting moves the generation while holding the lock, so this
        // comparison cannot interleave with one.
        if self.is_active() && self.generation.load(Ordering::Acquire) == generation {
            *held = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// The current version (see [`PolicyCache::snapshot`]).
    pub async fn current<C: ConnectionTrait>(&self, conn: &C) -> Result<PolicyRef, DbErr> {
        Ok(PolicyRef(self.snapshot(conn).await?))
    }

    /// Whether someone who accepted `accepted` must accept again.
    pub async fn needs_acceptance<C: ConnectionTrait>(
        &self,
        conn: &C,
        accepted: Option<&str>,
    ) -> Result<bool, DbErr> {
        Ok(self.snapshot(conn).await?.needs_acceptance(accepted))
    }

    /// Forgets the kept policy: a version was published.
    pub fn forget(&self) {
        let mut held = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *held = None;
    }

    /// Records whether publications made elsewhere reach this instance;
    /// either way the kept policy is forgotten (while uninformed, a
    /// publication may have been missed).
    pub fn set_informed(&self, informed: bool) {
        self.informed.store(informed, Ordering::Release);
        self.forget();
    }

    /// Whether a policy is kept now.
    pub fn is_held(&self) -> bool {
        self.lock().is_some()
    }
}

/// The current version, shared with the snapshot it came from.
#[derive(Debug, Clone)]
pub struct PolicyRef(Arc<PolicySnapshot>);

impl std::ops::Deref for PolicyRef {
    type Target = PublishedPolicy;

    fn deref(&self) -> &PublishedPolicy {
        &self.0.current
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::consent::policy::PolicyDocument;
    use sea_orm::DatabaseConnection;

    async fn database() -> DatabaseConnection {
        use migration::MigratorTrait;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        versions::ensure_shipped(&db).await.unwrap();
        db
    }

    async fn publish(db: &DatabaseConnection, version: &str, major: bool) {
        let mut document = versions::current(db).await.unwrap().document;
        document.version = version.to_owned();
        document.major = major;
        versions::insert(db, &document, None).await.unwrap();
    }

    /// For every accepted version worth asking about, the kept snapshot and
    /// the database answer alike.
    async fn answers_match(db: &DatabaseConnection, cache: &PolicyCache) {
        let cached = cache.snapshot(db).await.unwrap();
        let shipped = PolicyDocument::shipped_versions()
            .unwrap()
            .into_iter()
            .map(|document| document.version)
            .max()
            .unwrap();
        let mut asked: Vec<Option<String>> = vec![None, Some("never-published".into())];
        asked.push(Some(shipped));
        for version in ["1.1-minor", "2.0-major", "2.1-minor", "3.0-major"] {
            asked.push(Some(version.into()));
        }
        for accepted in &asked {
            assert_eq!(
                cached.needs_acceptance(accepted.as_deref()),
                versions::needs_acceptance(db, accepted.as_deref())
                    .await
                    .unwrap(),
                "accepted {accepted:?}"
            );
        }
        let current = versions::current(db).await.unwrap();
        assert_eq!(cached.current.seq, current.seq);
        assert_eq!(cached.current.document, current.document);
    }

    #[tokio::test]
    async fn the_kept_policy_answers_as_the_database_does() {
        let db = database().await;
        let cache = PolicyCache::new(true);
        answers_match(&db, &cache).await;
        for (version, major) in [
            ("1.1-minor", false),
            ("2.0-major", true),
            ("2.1-minor", false),
            ("3.0-major", true),
        ] {
            publish(&db, version, major).await;
            cache.forget();
            answers_match(&db, &cache).await;
            assert_eq!(cache.current(&db).await.unwrap().document.version, version);
        }
    }

    #[tokio::test]
    async fn it_is_kept_until_forgotten() {
        let db = database().await;
        let cache = PolicyCache::new(true);
        let first = cache.current(&db).await.unwrap().seq;
        assert!(cache.is_held());
        // Published behind its back: still the kept one...
        publish(&db, "9.0", true).await;
        assert_eq!(cache.current(&db).await.unwrap().seq, first);
        // ...until it is told.
        cache.forget();
        assert!(!cache.is_held());
        assert_eq!(cache.current(&db).await.unwrap().document.version, "9.0");
    }

    #[tokio::test]
    async fn an_uninformed_cache_reads_the_database_every_time() {
        let db = database().await;
        let cache = PolicyCache::new(false);
        cache.current(&db).await.unwrap();
        assert!(!cache.is_held());
        publish(&db, "9.0", true).await;
        assert_eq!(cache.current(&db).await.unwrap().document.version, "9.0");
        cache.set_informed(true);
        cache.current(&db).await.unwrap();
        assert!(cache.is_held());
        // Losing the listener forgets what was kept.
        cache.set_informed(false);
        assert!(!cache.is_held());
    }
}
