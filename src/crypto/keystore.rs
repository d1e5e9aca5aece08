//! Account data keys (crypto-shredding).
//!
//! Each account's personal fields (its row, sessions, tokens, the tickets
//! and messages it filed, the mail addressed to it) are encrypted under a
//! random key of its own, stored wrapped by the keyring in `account_keys`.
//! Erasing the account destroys the key, so any copy of those rows that
//! outlives the purge (a backup, a replica, a WAL archive, a page SQLite
//! has not yet reused) can no longer be decrypted.
//!
//! Where the keys live decides what that protects:
//! - By default, in the main database: copies of the database taken after
//!   the purge are shredded, but a backup from before it holds the key too.
//! - With `CUSTOS_KEY_STORE_URL`, in a database of their own. Backed up on a
//!   retention no longer than the erasure window (or not at all), every
//!   older backup of the main database becomes unreadable for erased
//!   accounts once the key store has forgotten them. The store also keeps
//!   the erasure journal (see `crate::erasure::journal`).
//!
//! Rules:
//! - A key is made the first time something is written for the account,
//!   with the caller's connection (or, for a new account, among the writes
//!   that create it: [`KeyStore::create_in`]), so in the main database it
//!   commits or rolls back with the row it protects.
//! - Only keys read through the pool (committed) are cached; a key just
//!   made inside an open transaction never is, so a rollback cannot leave a
//!   cached key that nothing stores.
//! - The purge destroys keys in its own transaction when they share it;
//!   with a separate store it records the ids in `pending_key_destruction`
//!   and deletes the keys after the commit, retrying on the next run.
//! - An erased account's key leaves every instance's cache, not only the
//!   purging one's: on PostgreSQL the account row's deletion is notified
//!   (migration 000014) and the session cache's listener
//!   ([`crate::changes::listen`]) forgets the key too.
//!   While that listener is not connected, keys are read from the store on
//!   each use and none is kept; a fill that raced a notification is
//!   dropped (a generation counter, as in the session cache).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Utc};
use entity::{account_key, pending_key_destruction};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, TryInsertResult,
    sea_query::{IntoColumnRef, ReturningClause},
};
use uuid::Uuid;

use crate::crypto::{
    CryptoError,
    fields::{AccountKey, FieldCipher},
};
use crate::db::Writes;

/// Keys kept unwrapped in memory at most; the cache is emptied when full.
const CACHE_LIMIT: usize = 10_000;
/// Ids per statement when reading or destroying many keys.
const CHUNK: usize = 1000;
/// Ids per statement when the purge takes keys: a whole batch (at most
/// `MAX_PURGE_BATCH`) in one statement, one array parameter on PostgreSQL
/// ([`crate::db::one_of`]), because over TCP each large statement may wait
/// on a delayed ACK (see `erasure::purge::batch_size`).
const TAKE_CHUNK: usize = crate::settings::MAX_PURGE_BATCH as usize;

/// The account-key store of one instance.
pub struct KeyStore {
    /// The separate key database, when `CUSTOS_KEY_STORE_URL` names one.
    separate: Option<DatabaseConnection>,
    cache: Mutex<HashMap<Uuid, Arc<AccountKey>>>,
    /// Whether erasures made elsewhere reach this instance (see the rules).
    informed: AtomicBool,
    /// Moves on every forgetting, so a read that raced one is not kept.
    generation: AtomicU64,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("separate", &self.separate.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Keys in the main database.
    pub fn shared() -> Self {
        Self {
            separate: None,
            cache: Mutex::new(HashMap::new()),
            informed: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        }
    }

    /// Keys in their own database (already migrated).
    pub fn separate(db: DatabaseConnection) -> Self {
        Self {
            separate: Some(db),
            cache: Mutex::new(HashMap::new()),
            informed: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        }
    }

    /// The separate key database, if there is one.
    pub fn separate_db(&self) -> Option<&DatabaseConnection> {
        self.separate.as_ref()
    }

    /// The key of `account`, read through `pool` (the main database's pool,
    /// never an open transaction) and cached. `None` when it has none: not
    /// made yet, or destroyed.
    pub async fn cached(
        &self,
        cipher: &FieldCipher,
        pool: &DatabaseConnection,
        account: Uuid,
    ) -> Result<Option<Arc<AccountKey>>, CryptoError> {
        if let Some(key) = self.cache_get(account) {
            return Ok(Some(key));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = self.read(cipher, pool, &[account]).await?;
        let key = found.get(&account).cloned();
        if let Some(key) = &key {
            self.cache_put_since(generation, [(account, Arc::clone(key))]);
        }
        Ok(key)
    }

    /// The keys of `accounts` that exist, read with `conn` (which may be a
    /// transaction) and not cached.
    pub async fn find_many<C: ConnectionTrait>(
        &self,
        cipher: &FieldCipher,
        conn: &C,
        accounts: &[Uuid],
    ) -> Result<HashMap<Uuid, Arc<AccountKey>>, CryptoError> {
        let mut keys = HashMap::with_capacity(accounts.len());
        let mut missing = Vec::new();
        for account in accounts {
            match self.cache_get(*account) {
                Some(key) => {
                    keys.insert(*account, key);
                }
                None => missing.push(*account),
            }
        }
        for chunk in missing.chunks(CHUNK) {
            keys.extend(self.read(cipher, conn, chunk).await?);
        }
        Ok(keys)
    }

    /// The key of `account`, made and stored with `conn` if it has none.
    pub async fn get_or_create<C: ConnectionTrait>(
        &self,
        cipher: &FieldCipher,
        conn: &C,
        account: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Arc<AccountKey>, CryptoError> {
        if let Some(key) = self.cache_get(account) {
            return Ok(key);
        }
        if let Some(key) = self.read(cipher, conn, &[account]).await?.remove(&account) {
            return Ok(key);
        }
        // Two writers may race to make the first key: the first row wins
        // and the other goes on with what is stored.
        match self.insert_new(cipher, conn, account, now).await? {
            Some(key) => Ok(key),
            None => self
                .read(cipher, conn, &[account])
                .await?
                .remove(&account)
                .ok_or(CryptoError::AccountKeyDestroyed),
        }
    }

    /// Makes a key for `account` and stores it (with `conn`, or in the
    /// separate store) unless the account has one: the new key, or `None`
    /// when a stored key was there first.
    async fn insert_new<C: ConnectionTrait>(
        &self,
        cipher: &FieldCipher,
        conn: &C,
        account: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<AccountKey>>, CryptoError> {
        let (key, row) = new_key(cipher, account, now)?;
        let insert =
            account_key::Entity::insert(row).on_conflict_do_nothing_on([account_key::Column::Id]);
        let inserted = match &self.separate {
            Some(db) => insert.exec_without_returning(db).await?,
            None => insert.exec_without_returning(conn).await?,
        };
        Ok(matches!(inserted, TryInsertResult::Inserted(1)).then(|| Arc::new(key)))
    }

    /// The key of an account being created by `writes` (its id minted
    /// just now, so it has no key yet): made and handed back without being
    /// read again. In the main database the key's insert joins `writes`, so
    /// it is stored or not with the account's row; a separate store stores
    /// it at once (a key left there by a failed sign-up names no account
    /// and is never read). An id that has a key already fails the writes.
    /// Not cached until [`KeyStore::committed`], once the writes have run.
    pub async fn create_in(
        &self,
        cipher: &FieldCipher,
        writes: &mut Writes,
        account: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Arc<AccountKey>, CryptoError> {
        let (key, row) = new_key(cipher, account, now)?;
        let insert = account_key::Entity::insert(row);
        match &self.separate {
            Some(db) => {
                insert.exec_without_returning(db).await?;
            }
            None => writes.push(insert.into_query()),
        }
        Ok(Arc::new(key))
    }

    /// Caches a key that [`KeyStore::create_in`] made, once the transaction
    /// that stored it has committed (so the outbox job and the account's
    /// first requests need not read it).
    pub fn committed(&self, account: Uuid, key: &Arc<AccountKey>) {
        let generation = self.generation.load(Ordering::Acquire);
        self.cache_put_since(generation, [(account, Arc::clone(key))]);
    }

    /// Records whether erasures made by other instances reach this one
    /// (the change listener is connected); either way the keys held so far
    /// are forgotten, as some may belong to accounts erased meanwhile.
    pub fn set_informed(&self, informed: bool) {
        self.informed.store(informed, Ordering::Release);
        self.forget_all();
    }

    /// Forgets the key of `account` (an erasure notified by the database).
    pub fn forget_account(&self, account: Uuid) {
        self.forget(&[account]);
    }

    /// Forgets every key held.
    pub fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            cache.clear();
        }
    }

    /// Whether this instance holds the key of `account` unwrapped.
    pub fn holds(&self, account: Uuid) -> bool {
        self.cache
            .lock()
            .is_ok_and(|cache| cache.contains_key(&account))
    }

    /// The keys of `accounts`, read for the last time by the purge inside
    /// its transaction `txn`, and their destruction begun: when keys share
    /// the main database they are deleted by the same statement that reads
    /// them (`DELETE … RETURNING`: one round trip, undone by a rollback);
    /// otherwise they are read from the store and queued for
    /// [`KeyStore::destroy_pending`] after the commit.
    pub async fn take_for_erasure<C: ConnectionTrait>(
        &self,
        cipher: &FieldCipher,
        txn: &C,
        accounts: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, Arc<AccountKey>>, CryptoError> {
        if self.separate.is_some() {
            let keys = self.find_many(cipher, txn, accounts).await?;
            self.forget(accounts);
            self.queue_destruction(txn, accounts, now).await?;
            return Ok(keys);
        }
        self.forget(accounts);
        let mut keys = HashMap::with_capacity(accounts.len());
        for chunk in accounts.chunks(TAKE_CHUNK) {
            let mut statement = account_key::Entity::delete_many()
                .filter(crate::db::one_of(
                    txn.get_database_backend(),
                    account_key::Column::Id,
                    chunk.to_vec(),
                ))
                .into_query();
            statement.returning(ReturningClause::Columns(vec![
                account_key::Column::Id.into_column_ref(),
                account_key::Column::WrappedKeyCt.into_column_ref(),
            ]));
            for row in txn.query_all(&statement).await? {
                let id: Uuid = row.try_get_by_index(0)?;
                let wrapped: Vec<u8> = row.try_get_by_index(1)?;
                keys.insert(id, Arc::new(cipher.unwrap_account_key(id, &wrapped)?));
            }
        }
        Ok(keys)
    }

    /// Queues the erased `accounts` in `pending_key_destruction` inside the
    /// purge's transaction `txn`, for [`KeyStore::destroy_pending`] to
    /// delete their keys from the separate store after the commit.
    async fn queue_destruction<C: ConnectionTrait>(
        &self,
        txn: &C,
        accounts: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        for chunk in accounts.chunks(CHUNK) {
            let rows = chunk.iter().map(|id| pending_key_destruction::ActiveModel {
                id: Set(*id),
                queued_at: Set(now),
            });
            pending_key_destruction::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([pending_key_destruction::Column::Id])
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }

    /// Deletes from the separate store every key the purge queued, then the
    /// queue entries; answers how many keys were deleted. A failure leaves
    /// the rest queued for the next run. Nothing to do when keys share the
    /// main database.
    pub async fn destroy_pending(&self, main: &DatabaseConnection) -> Result<u64, DbErr> {
        let Some(store) = &self.separate else {
            return Ok(0);
        };
        let mut destroyed = 0;
        loop {
            let ids: Vec<Uuid> = pending_key_destruction::Entity::find()
                .select_only()
                .column(pending_key_destruction::Column::Id)
                .order_by_asc(pending_key_destruction::Column::Id)
                .limit(CHUNK as u64)
                .into_tuple()
                .all(main)
                .await?;
            if ids.is_empty() {
                return Ok(destroyed);
            }
            self.forget(&ids);
            destroyed += account_key::Entity::delete_many()
                .filter(account_key::Column::Id.is_in(ids.iter().copied()))
                .exec(store)
                .await?
                .rows_affected;
            pending_key_destruction::Entity::delete_many()
                .filter(pending_key_destruction::Column::Id.is_in(ids))
                .exec(main)
                .await?;
        }
    }

    /// Reads and unwraps the stored keys of `accounts`.
    async fn read<C: ConnectionTrait>(
        &self,
        cipher: &FieldCipher,
        conn: &C,
        accounts: &[Uuid],
    ) -> Result<HashMap<Uuid, Arc<AccountKey>>, CryptoError> {
        let query = account_key::Entity::find()
            .filter(account_key::Column::Id.is_in(accounts.iter().copied()));
        let rows = match &self.separate {
            Some(db) => query.all(db).await?,
            None => query.all(conn).await?,
        };
        rows.into_iter()
            .map(|row| {
                let key = cipher.unwrap_account_key(row.id, &row.wrapped_key_ct)?;
                Ok((row.id, Arc::new(key)))
            })
            .collect()
    }

    fn cache_get(&self, account: Uuid) -> Option<Arc<AccountKey>> {
        if !self.informed.load(Ordering::Acquire) {
            return None;
        }
        self.cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&account).cloned())
    }

    /// Keeps `keys` unless something was forgotten since `generation` was
    /// read (the keys may belong to an account erased meanwhile) or erasures
    /// elsewhere may go unnoticed now.
    fn cache_put_since(
        &self,
        generation: u64,
        keys: impl IntoIterator<Item = (Uuid, Arc<AccountKey>)>,
    ) {
        if !self.informed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            // Forgetting moves the generation while holding the lock.
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            for (account, key) in keys {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(account, key);
            }
        }
    }

    /// Drops `accounts` from this instance's cache.
    fn forget(&self, accounts: &[Uuid]) {
        if let Ok(mut cache) = self.cache.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            for account in accounts {
                cache.remove(account);
            }
        }
    }
}

/// A new key for `account` and its row (the key wrapped by the keyring).
fn new_key(
    cipher: &FieldCipher,
    account: Uuid,
    now: DateTime<Utc>,
) -> Result<(AccountKey, account_key::ActiveModel), CryptoError> {
    let (key, raw) = AccountKey::generate()?;
    let row = account_key::ActiveModel {
        id: Set(account),
        wrapped_key_ct: Set(cipher.wrap_account_key(account, &raw)?),
        created_at: Set(now),
    };
    Ok((key, row))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use chrono::TimeZone;
    use migration::MigratorTrait;
    use sea_orm::{Database, PaginatorTrait, TransactionTrait};

    use super::*;
    use crate::crypto::{EncryptionKey, FieldContext, Keyring};

    fn cipher() -> FieldCipher {
        FieldCipher::new(Keyring::new(vec![EncryptionKey::new("t1", [3u8; 32]).unwrap()]).unwrap())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .unwrap()
    }

    async fn main_db() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    /// A new account's key from `store`, and the writes that store it.
    async fn create(
        store: &KeyStore,
        cipher: &FieldCipher,
        account: Uuid,
    ) -> (Arc<AccountKey>, Writes) {
        let mut writes = Writes::new();
        let key = store
            .create_in(cipher, &mut writes, account, now())
            .await
            .unwrap();
        (key, writes)
    }

    /// A store in a database of its own, and that database.
    async fn separate_store() -> (KeyStore, DatabaseConnection) {
        let keys_db = Database::connect("sqlite::memory:").await.unwrap();
        migration::KeyStoreMigrator::up(&keys_db, None)
            .await
            .unwrap();
        (KeyStore::separate(keys_db.clone()), keys_db)
    }

    fn ctx(id: Uuid) -> FieldContext<'static> {
        FieldContext {
            table: "accounts",
            column: "email",
            row_id: id,
        }
    }

    /// Whether `a` decrypts what `b` encrypted: the same key.
    fn same(cipher: &FieldCipher, a: &AccountKey, b: &AccountKey) -> bool {
        let id = Uuid::new_v4();
        let stored = cipher.encrypt_under(Some(b), &ctx(id), b"probe").unwrap();
        cipher.decrypt_under(Some(a), &ctx(id), &stored).is_ok()
    }

    #[tokio::test]
    async fn a_key_is_made_once_and_found_again() {
        let (db, cipher, store) = (main_db().await, cipher(), KeyStore::shared());
        let account = Uuid::new_v4();
        assert!(store.cached(&cipher, &db, account).await.unwrap().is_none());
        let first = store
            .get_or_create(&cipher, &db, account, now())
            .await
            .unwrap();
        let again = store
            .get_or_create(&cipher, &db, account, now())
            .await
            .unwrap();
        assert!(same(&cipher, &first, &again));
        let found = store.cached(&cipher, &db, account).await.unwrap().unwrap();
        assert!(same(&cipher, &found, &first));
        assert_eq!(account_key::Entity::find().count(&db).await.unwrap(), 1);
        let many = store
            .find_many(&cipher, &db, &[account, Uuid::new_v4()])
            .await
            .unwrap();
        assert_eq!(many.len(), 1);
    }

    #[tokio::test]
    async fn a_new_accounts_key_is_stored_as_handed_back_and_never_made_twice() {
        let (db, cipher, store) = (main_db().await, cipher(), KeyStore::shared());
        let account = Uuid::new_v4();
        let (made, writes) = create(&store, &cipher, account).await;
        assert_eq!(writes.len(), 1, "the key's insert joins the writes");
        assert_eq!(account_key::Entity::find().count(&db).await.unwrap(), 0);
        assert!(store.cache_get(account).is_none(), "not before they run");
        // What the creating writes go on to store is readable with the
        // stored key once they have run.
        writes.run(&db).await.unwrap();
        store.committed(account, &made);
        assert!(same(&cipher, &store.cache_get(account).unwrap(), &made));
        let stored = KeyStore::shared()
            .cached(&cipher, &db, account)
            .await
            .unwrap()
            .unwrap();
        assert!(same(&cipher, &stored, &made));
        // An id that already has a key is refused, never silently re-keyed.
        let (_, again) = create(&store, &cipher, account).await;
        let refused = again.run(&db).await.unwrap_err();
        assert!(crate::db::is_unique_violation(&refused), "{refused}");
        let kept = store.cached(&cipher, &db, account).await.unwrap().unwrap();
        assert!(same(&cipher, &kept, &made));
        assert_eq!(account_key::Entity::find().count(&db).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_separate_store_keeps_a_new_accounts_key_at_once() {
        let (db, cipher) = (main_db().await, cipher());
        let (store, _) = separate_store().await;
        let account = Uuid::new_v4();
        let (made, writes) = create(&store, &cipher, account).await;
        assert!(writes.is_empty(), "nothing for the main database");
        assert_eq!(account_key::Entity::find().count(&db).await.unwrap(), 0);
        let stored = store.read(&cipher, &db, &[account]).await.unwrap();
        assert!(same(&cipher, &stored[&account], &made));
    }

    #[tokio::test]
    async fn a_key_made_in_a_rolled_back_transaction_is_not_kept_anywhere() {
        let (db, cipher, store) = (main_db().await, cipher(), KeyStore::shared());
        let account = Uuid::new_v4();
        let txn = db.begin().await.unwrap();
        let lost = store
            .get_or_create(&cipher, &txn, account, now())
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        // Not cached: the next writer makes (and stores) a key of its own.
        assert!(store.cached(&cipher, &db, account).await.unwrap().is_none());
        let kept = store
            .get_or_create(&cipher, &db, account, now())
            .await
            .unwrap();
        assert!(!same(&cipher, &kept, &lost));
    }

    #[tokio::test]
    async fn the_purge_takes_keys_and_deletes_them_in_one_go() {
        let (db, cipher, store) = (main_db().await, cipher(), KeyStore::shared());
        let (erased, other) = (Uuid::new_v4(), Uuid::new_v4());
        let made = store
            .get_or_create(&cipher, &db, erased, now())
            .await
            .unwrap();
        store
            .get_or_create(&cipher, &db, other, now())
            .await
            .unwrap();

        // Rolled back: the key is still there.
        let txn = db.begin().await.unwrap();
        let taken = store
            .take_for_erasure(&cipher, &txn, &[erased], now())
            .await
            .unwrap();
        assert!(same(&cipher, &taken[&erased], &made));
        txn.rollback().await.unwrap();
        assert!(store.cached(&cipher, &db, erased).await.unwrap().is_some());

        let txn = db.begin().await.unwrap();
        let taken = store
            .take_for_erasure(&cipher, &txn, &[erased, Uuid::new_v4()], now())
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        txn.commit().await.unwrap();
        assert!(store.cached(&cipher, &db, erased).await.unwrap().is_none());
        assert!(store.cached(&cipher, &db, other).await.unwrap().is_some());
        // Nothing was queued: the key went with the transaction.
        assert_eq!(store.destroy_pending(&db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_separate_store_destroys_after_the_commit() {
        let (db, cipher) = (main_db().await, cipher());
        let (store, keys_db) = separate_store().await;
        let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
        for account in [gone, kept] {
            store
                .get_or_create(&cipher, &db, account, now())
                .await
                .unwrap();
        }
        assert_eq!(
            account_key::Entity::find().count(&keys_db).await.unwrap(),
            2
        );
        assert_eq!(account_key::Entity::find().count(&db).await.unwrap(), 0);

        let txn = db.begin().await.unwrap();
        let taken = store
            .take_for_erasure(&cipher, &txn, &[gone], now())
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        // Queued, not yet destroyed: a rollback here would keep the key.
        assert_eq!(
            account_key::Entity::find().count(&keys_db).await.unwrap(),
            2
        );
        txn.commit().await.unwrap();
        assert_eq!(store.destroy_pending(&db).await.unwrap(), 1);
        assert!(store.cached(&cipher, &db, gone).await.unwrap().is_none());
        assert!(store.cached(&cipher, &db, kept).await.unwrap().is_some());
        assert_eq!(
            pending_key_destruction::Entity::find()
                .count(&db)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn an_uninformed_store_keeps_no_key_and_a_raced_read_is_dropped() {
        let (db, cipher, store) = (main_db().await, cipher(), KeyStore::shared());
        let account = Uuid::new_v4();
        store
            .get_or_create(&cipher, &db, account, now())
            .await
            .unwrap();
        assert!(store.cached(&cipher, &db, account).await.unwrap().is_some());
        assert!(store.holds(account));

        // Erasures elsewhere may go unnoticed: nothing kept, reads still work.
        store.set_informed(false);
        assert!(!store.holds(account));
        assert!(store.cached(&cipher, &db, account).await.unwrap().is_some());
        assert!(!store.holds(account));

        // A read that raced a forgetting is not kept.
        store.set_informed(true);
        let before = store.generation.load(Ordering::Acquire);
        let key = store.read(&cipher, &db, &[account]).await.unwrap();
        store.forget_account(account);
        store.cache_put_since(before, key);
        assert!(!store.holds(account));
        assert!(store.cached(&cipher, &db, account).await.unwrap().is_some());
        assert!(store.holds(account));
        store.forget_account(account);
        assert!(!store.holds(account));
    }
}
