//! The shared state of one running service: settings, database, keys,
//! hasher, clock and mail transport. Cheap to clone.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{
    accounts::{
        session_cache::SessionCache, session_reads::SessionReads, username_policy::UsernamePolicy,
    },
    clock::Clock,
    crypto::{
        CryptoError,
        blind_index::{BlindIndex, BlindIndexKeys, PREVIOUS_SETTING},
        fields::{AccountKey, FieldCipher, Keyring, is_under_account_key},
        passwords::PasswordHasher,
    },
    erasure::journal::ErasureJournal,
    mail::transport::MailTransport,
    settings::{DatabaseKind, Environment, KeySource, Settings},
};

/// Why the shared state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A setting is unusable.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The database did not answer or a migration failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Keys could not be read or made.
    #[error("keys: {0}")]
    Keys(#[from] crate::crypto::CryptoError),
    /// The mail transport could not be built.
    #[error("mail: {0}")]
    Mail(#[from] crate::mail::MailError),
    /// The password hashing threads could not be started.
    #[error("cannot start the password hashing threads: {0}")]
    Threads(std::io::Error),
}

/// What tests (or embedders) may replace: the clock and the mail transport.
#[derive(Default)]
pub struct Overrides {
    /// Used instead of the wall clock.
    pub clock: Option<Clock>,
    /// Used instead of the transport built from settings.
    pub transport: Option<MailTransport>,
}

struct Inner {
    settings: Settings,
    db: DatabaseConnection,
    cipher: Arc<FieldCipher>,
    keys: Arc<crate::crypto::keystore::KeyStore>,
    journal: crate::erasure::journal::ErasureJournal,
    unreadable: std::sync::atomic::AtomicU64,
    blind: Arc<BlindIndexKeys>,
    passwords: PasswordHasher,
    clock: Clock,
    transport: MailTransport,
    username_policy: UsernamePolicy,
    job_counts: std::sync::Mutex<JobCounts>,
    mail_wake: tokio::sync::Notify,
    session_cache: Arc<SessionCache>,
    session_reads: Arc<SessionReads>,
    policy: Arc<crate::consent::policy_cache::PolicyCache>,
}

/// What the jobs counted since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobCounts {
    /// Purge runs.
    pub purge_runs: u64,
    /// Accounts erased by the purge.
    pub purged_accounts: u64,
    /// Accounts erased again after a restore (the journal named them and
    /// the database still held them).
    pub reapplied_erasures: u64,
    /// How long the last purge run took.
    pub last_purge_seconds: f64,
}

/// Everything a request or a job needs.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Resolves keys, connects to the database and applies migrations.
    pub async fn build(settings: Settings, overrides: Overrides) -> Result<Self, StateError> {
        let (keyring, blind) = load_keys(&settings)?;
        let previous_blind = match &settings.keys.blind_index_previous_key {
            Some(key) => Some(BlindIndex::parse_setting(
                PREVIOUS_SETTING,
                key.expose_secret(),
            )?),
            None => None,
        };
        if previous_blind.is_some() {
            // Lookups cost a second index each until the rotation is done.
            tracing::info!(
                "{PREVIOUS_SETTING} is set: lookups also match blind indexes under the previous key; \
                 run `custos keys rotate`, then unset it"
            );
        }
        let db = crate::db::connect(&settings.database.url).await?;
        crate::db::migrate(&db).await?;
        let (keys, journal) = match &settings.database.key_store_url {
            Some(url) => {
                let store = crate::db::connect(url).await?;
                crate::db::migrate_key_store(&store).await?;
                let journal = ErasureJournal::kept_in(store.clone());
                (crate::crypto::keystore::KeyStore::separate(store), journal)
            }
            None => (
                crate::crypto::keystore::KeyStore::shared(),
                journal(&settings).await?,
            ),
        };
        // On PostgreSQL other instances erase accounts too: keys are kept
        // only once the change listener hears of it (crate::changes::listen).
        keys.set_informed(settings.database.kind == DatabaseKind::Sqlite);
        let clock = overrides.clock.unwrap_or_else(Clock::system);
        crate::consent::versions::ensure_shipped(&db).await?;
        let transport = match overrides.transport {
            Some(transport) => transport,
            None => MailTransport::from_setting(&settings.mail.transport)?,
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SQLite serves one instance; on PostgreSQL the cache waits for its
        // change listener (crate::changes::listen).
        let session_cache = Arc::new(SessionCache::new(
            settings.sessions.cache,
            settings.database.kind == DatabaseKind::Sqlite,
        ));
        // SQLite has one connection: a second read would only queue for it.
        let session_reads = SessionReads::new(
            db.clone(),
            match settings.database.kind {
                DatabaseKind::Sqlite => 1,
                _ => crate::accounts::session_reads::IN_FLIGHT,
            },
        );
        // Likewise the policy kept in memory.
        let policy = Arc::new(crate::consent::policy_cache::PolicyCache::new(
            settings.database.kind == DatabaseKind::Sqlite,
        ));
        Ok(Self(Arc::new(Inner {
            session_cache,
            session_reads,
            policy,
            db,
            cipher: Arc::new(FieldCipher::new(keyring)),
            keys: Arc::new(keys),
            journal,
            unreadable: std::sync::atomic::AtomicU64::new(0),
            blind: Arc::new(BlindIndexKeys::new(blind, previous_blind)),
            passwords: PasswordHasher::new(cpus).map_err(StateError::Threads)?,
            clock,
            transport,
            job_counts: std::sync::Mutex::default(),
            mail_wake: tokio::sync::Notify::new(),
            username_policy: UsernamePolicy::with_extra_terms(
                &settings.accounts.username_blocklist,
                &settings.accounts.username_reserved,
            ),
            settings,
        })))
    }

    /// Validated settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// This instance's cache of signed-in callers.
    pub fn session_cache(&self) -> &Arc<SessionCache> {
        &self.0.session_cache
    }

    /// This instance's batched reader of sessions and their accounts.
    pub fn session_reads(&self) -> &Arc<SessionReads> {
        &self.0.session_reads
    }

    /// This instance's copy of the current policy.
    pub fn policy(&self) -> &Arc<crate::consent::policy_cache::PolicyCache> {
        &self.0.policy
    }

    /// The database pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.0.db
    }

    /// Field encryption.
    pub fn cipher(&self) -> &Arc<FieldCipher> {
        &self.0.cipher
    }

    /// Account data keys.
    pub fn keys(&self) -> &Arc<crate::crypto::keystore::KeyStore> {
        &self.0.keys
    }

    /// The key needed to read `values` of `account`, outside any open
    /// transaction (it reads through the pool, and caches): `None` when
    /// they are all under the keyring. A destroyed key is
    /// [`CryptoError::AccountKeyDestroyed`].
    pub async fn read_key(
        &self,
        account: Uuid,
        values: &[&[u8]],
    ) -> Result<Option<Arc<AccountKey>>, CryptoError> {
        if !values.iter().any(|v| is_under_account_key(v)) {
            return Ok(None);
        }
        match self
            .0
            .keys
            .cached(&self.0.cipher, &self.0.db, account)
            .await?
        {
            Some(key) => Ok(Some(key)),
            None => Err(CryptoError::AccountKeyDestroyed),
        }
    }

    /// Like [`AppState::read_key`], reading with `conn` (a transaction may
    /// be open on it) and without caching.
    pub async fn read_key_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        account: Uuid,
        values: &[&[u8]],
    ) -> Result<Option<Arc<AccountKey>>, CryptoError> {
        if !values.iter().any(|v| is_under_account_key(v)) {
            return Ok(None);
        }
        self.0
            .keys
            .find_many(&self.0.cipher, conn, &[account])
            .await?
            .remove(&account)
            .map(Some)
            .ok_or(CryptoError::AccountKeyDestroyed)
    }

    /// The key to write `account`'s fields under, made with `conn` (pass
    /// the transaction that writes them) when the account has none yet.
    pub async fn write_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        account: Uuid,
    ) -> Result<Arc<AccountKey>, CryptoError> {
        self.0
            .keys
            .get_or_create(&self.0.cipher, conn, account, self.0.clock.now())
            .await
    }

    /// The key of an account being created by `writes` (see
    /// [`crate::crypto::keystore::KeyStore::create_in`]); cache it with
    /// [`AppState::keys`]`().committed` once they have run.
    pub async fn new_account_key_in(
        &self,
        writes: &mut crate::db::Writes,
        account: Uuid,
    ) -> Result<Arc<AccountKey>, CryptoError> {
        self.0
            .keys
            .create_in(&self.0.cipher, writes, account, self.0.clock.now())
            .await
    }

    /// Where erasures are recorded for re-applying after a restore.
    pub fn journal(&self) -> &ErasureJournal {
        &self.0.journal
    }

    /// Notes that `account` was met with its data key gone and treated as
    /// absent (counted in `/metrics`).
    pub fn account_unreadable(&self, account: Uuid) {
        self.0
            .unreadable
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            account_id = %account,
            "account data key destroyed: the account is treated as absent"
        );
    }

    /// How many times an account was treated as absent because its data
    /// key is gone, since start.
    pub fn unreadable_accounts(&self) -> u64 {
        self.0.unreadable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blind-index keys: `active()` for what is written, `lookup()` for
    /// what is searched (both keys while a rotation is under way).
    pub fn blind(&self) -> &BlindIndexKeys {
        &self.0.blind
    }

    /// Password hashing.
    pub fn passwords(&self) -> &PasswordHasher {
        &self.0.passwords
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// The mail transport the outbox job sends through.
    pub fn transport(&self) -> &MailTransport {
        &self.0.transport
    }

    /// Tells this instance's outbox job that mail was queued, so it goes
    /// out now instead of at the next scheduler tick. `queue::queue` calls
    /// it; code writing sealed mail itself calls it after writing. The job
    /// gives the transaction a moment to commit, and mail it misses still
    /// leaves at the next tick.
    pub fn mail_queued(&self) {
        self.0.mail_wake.notify_one();
    }

    /// Resolves once [`Self::mail_queued`] has been called (for the job
    /// runner).
    pub fn mail_wake(&self) -> &tokio::sync::Notify {
        &self.0.mail_wake
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, JobCounts> {
        self.0
            .job_counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one purge run.
    pub fn observe_purge(&self, accounts: u64, elapsed: std::time::Duration) {
        let mut counts = self.counts();
        counts.purge_runs += 1;
        counts.purged_accounts += accounts;
        counts.last_purge_seconds = elapsed.as_secs_f64();
    }

    /// Counts accounts erased again after a restore.
    pub fn count_reapplied(&self, accounts: u64) {
        self.counts().reapplied_erasures += accounts;
    }

    /// What the jobs counted since start.
    pub fn job_counts(&self) -> JobCounts {
        *self.counts()
    }

    /// The username policy, with the operator's extra terms.
    pub fn username_policy(&self) -> &UsernamePolicy {
        &self.0.username_policy
    }
}

/// Queued mail is sealed with the service's keys and wakes its sender.
impl crate::mail::queue::MailQueue for AppState {
    fn field_cipher(&self) -> &FieldCipher {
        &self.0.cipher
    }

    fn recipient_index(&self) -> &BlindIndex {
        self.0.blind.active()
    }

    async fn account_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        account: Uuid,
    ) -> Result<Arc<AccountKey>, CryptoError> {
        self.write_key(conn, account).await
    }

    fn wake_sender(&self) {
        self.mail_queued();
    }
}

/// Reads the keyring and blind-index key from settings, or from the dev
/// keys file (made on first use, with a loud warning).
fn load_keys(settings: &Settings) -> Result<(Keyring, BlindIndex), StateError> {
    match &settings.keys.source {
        KeySource::Given {
            encryption_keys,
            blind_index_key,
        } => Ok((
            Keyring::parse(encryption_keys.expose_secret())?,
            BlindIndex::parse(blind_index_key.expose_secret())?,
        )),
        KeySource::DevFile(path) => {
            let (material, created) = crate::crypto::keys::load_or_create_dev_keys(path)?;
            if created {
                tracing::warn!(
                    file = %path.display(),
                    "DEVELOPMENT KEYS GENERATED: personal data is encrypted with keys from this file. \
                     Never use them in production: run `custos keys generate` and set \
                     CUSTOS_ENCRYPTION_KEYS and CUSTOS_BLIND_INDEX_KEY."
                );
            } else {
                tracing::warn!(
                    file = %path.display(),
                    "USING DEVELOPMENT KEYS: not for production"
                );
            }
            Ok((
                Keyring::parse(material.encryption_keys.expose_secret())?,
                BlindIndex::parse(material.blind_index_key.expose_secret())?,
            ))
        }
    }
}

/// The erasure journal of a deployment without a separate key store: the
/// database `CUSTOS_ERASURE_JOURNAL_URL` names, or none (with a warning in
/// production, where restores are expected).
async fn journal(settings: &Settings) -> Result<ErasureJournal, StateError> {
    match &settings.database.erasure_journal_url {
        Some(url) => {
            let db = crate::db::connect(url).await?;
            crate::db::migrate_erasure_journal(&db).await?;
            Ok(ErasureJournal::kept_in(db))
        }
        None => {
            if settings.env == Environment::Production {
                tracing::warn!(
                    "no erasure journal (set CUSTOS_KEY_STORE_URL or CUSTOS_ERASURE_JOURNAL_URL): \
                     a restored backup of the database cannot re-apply the erasures made since it was taken"
                );
            }
            Ok(ErasureJournal::none())
        }
    }
}
