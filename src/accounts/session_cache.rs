//! A per-instance cache of signed-in callers, so that a request with a
//! session token usually costs no database read.
//!
//! Rules:
//! - An entry is the session row and its account row as the database last
//!   returned them, keyed by the token's hash. Every check of
//!   [`super::sessions::authenticate`] (revoked, idle, past its lifetime,
//!   account not active) still runs on each request, against the clock.
//! - An entry lives at most `CUSTOS_SESSION_CACHE_SECONDS` (5 by default;
//!   0 turns the cache off), and never past the moment `lastSeenAt` is due
//!   to be written: that request reads and writes the database as before.
//! - What this instance changes it forgets at once: each service that
//!   changes an account row or ends sessions forgets that account once its
//!   change has committed (a name, an address, a password, a role, the
//!   language, the policy accepted, a guardian's answer, a deletion
//!   scheduled or cancelled, a sign-out); the jobs that change accounts
//!   forget them (guardian expiry the minor's account, the purge
//!   everything, after each batch). Sign-ups and sign-ins change no
//!   existing account or session, so they forget nothing.
//! - What other instances change arrives as PostgreSQL notifications: a
//!   trigger (migration 000014) sends the account's id on channel
//!   [`CHANNEL`] whenever an account row changes or goes, or a session is
//!   revoked or deleted, and the change listener ([`crate::changes`])
//!   forgets that account's entries. The
//!   cache is used only while that listener is connected and has received
//!   a probe it sent itself on connecting: from the moment it drops until
//!   it has listened again, and for good when notifications never arrive
//!   (a pooler in transaction mode), every request reads the database.
//! - SQLite serves one instance; changes made by other processes on the same
//!   file (the CLI's `purge`, an operator's SQL) are seen within the
//!   lifetime.
//! - A fill that raced an invalidation is dropped: each invalidation moves
//!   a generation counter, and an entry read before the move is not stored.
//! - Entries hold ciphertexts, as the database does, never decrypted
//!   fields, and never the password hash: nothing answered from the cache
//!   needs it (checking a password reads the row). At most [`CAPACITY`]
//!   are kept (emptied when full).

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Duration, Utc};
use entity::{account, session};
use uuid::Uuid;

/// `lastSeenAt` is written at most this often, so reads stay reads; a
/// cached session is served no longer than that before it is read again.
pub const LAST_SEEN_GRANULARITY: Duration = Duration::minutes(1);

/// The PostgreSQL notification channel that carries changed account ids.
pub const CHANNEL: &str = "custos_auth";

/// Entries kept at most.
pub const CAPACITY: usize = 10_000;

/// What the database returned for one token.
#[derive(Debug, Clone)]
pub struct CachedSession {
    /// The session row.
    pub session: session::Model,
    /// Its account row, with an empty password hash once stored.
    pub account: account::Model,
}

struct Entry {
    cached: CachedSession,
    stored_at: DateTime<Utc>,
    /// The lifetime's end, or the moment `lastSeenAt` is due to be
    /// written if that comes first.
    usable_until: DateTime<Utc>,
}

#[derive(Default)]
struct Entries {
    by_token: HashMap<Vec<u8>, Entry>,
    by_account: HashMap<Uuid, Vec<Vec<u8>>>,
}

/// The cache of one instance.
pub struct SessionCache {
    lifetime: Duration,
    entries: Mutex<Entries>,
    /// Moves on every invalidation.
    generation: AtomicU64,
    /// Whether changes made elsewhere reach this instance (always on SQLite;
    /// on PostgreSQL, while [`crate::changes::listen`] is connected).
    informed: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SessionCache {
    /// A cache whose entries live `lifetime` (zero: off). `informed` says
    /// whether it may be used before a listener has connected.
    pub fn new(lifetime: Duration, informed: bool) -> Self {
        Self {
            lifetime,
            entries: Mutex::new(Entries::default()),
            generation: AtomicU64::new(0),
            informed: AtomicBool::new(informed),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether entries are served and stored now.
    pub fn is_active(&self) -> bool {
        self.lifetime > Duration::zero() && self.informed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps half-changed
        // in a way that matters: at worst an entry is missing.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `token_hash`, when at `now` it is younger than the
    /// lifetime and its session's `lastSeenAt` is not yet due to be
    /// written. Counts a hit or a miss.
    pub fn get(&self, token_hash: &[u8], now: DateTime<Utc>) -> Option<CachedSession> {
        if !self.is_active() {
            return None;
        }
        let found = self
            .lock()
            .by_token
            .get(token_hash)
            .filter(|entry| now >= entry.stored_at && now < entry.usable_until)
            .map(|entry| entry.cached.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The generation to hand back to [`SessionCache::put`]: read it before
    /// reading the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores what the database returned, unless the cache was invalidated
    /// since `generation` was read (the rows may be older than the change).
    pub fn put(
        &self,
        token_hash: Vec<u8>,
        mut cached: CachedSession,
        generation: u64,
        now: DateTime<Utc>,
    ) {
        if !self.is_active() {
            return;
        }
        cached.account.password_hash = String::new();
        let mut entries = self.lock();
        // Invalidations move the generation while holding the lock, so this
        // comparison cannot interleave with one.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.by_token.len() >= CAPACITY {
            *entries = Entries::default();
        }
        let account_id = cached.account.id;
        let usable_until =
            (now + self.lifetime).min(cached.session.last_seen_at + LAST_SEEN_GRANULARITY);
        if entries
            .by_token
            .insert(
                token_hash.clone(),
                Entry {
                    cached,
                    stored_at: now,
                    usable_until,
                },
            )
            .is_none()
        {
            entries
                .by_account
                .entry(account_id)
                .or_default()
                .push(token_hash);
        }
    }

    /// Forgets every entry of `account`.
    pub fn forget_account(&self, account: Uuid) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(tokens) = entries.by_account.remove(&account) {
            for token in tokens {
                entries.by_token.remove(&token);
            }
        }
    }

    /// Forgets everything.
    pub fn forget_all(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *entries = Entries::default();
    }

    /// Records whether changes made elsewhere reach this instance; either
    /// way the entries so far are forgotten (while uninformed, changes may
    /// have been missed).
    pub fn set_informed(&self, informed: bool) {
        self.informed.store(informed, Ordering::Release);
        // After the switch: a fill that read the database before it (while
        // changes could be missed) finds the generation moved.
        self.forget_all();
    }

    /// Requests answered from the cache and requests that read the
    /// database while it was active, since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().by_token.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid instant")
    }

    fn cached(account_id: Uuid) -> CachedSession {
        CachedSession {
            session: session::Model {
                id: Uuid::new_v4(),
                account_id,
                token_hash: vec![1],
                user_agent_ct: None,
                created_at: at(0),
                last_seen_at: at(0),
                expires_at: at(3600),
                revoked_at: None,
            },
            account: account::Model {
                id: account_id,
                username_ct: vec![2],
                username_bidx: vec![3],
                email_ct: vec![4],
                email_bidx: vec![5],
                email_verified: true,
                password_hash: String::new(),
                role: "USER".into(),
                language: "en".into(),
                age_declaration: "ADULT".into(),
                guardian_consent: "NOT_REQUIRED".into(),
                guardian_email_ct: None,
                accepted_policy_version: None,
                status: "ACTIVE".into(),
                created_at: at(0),
                updated_at: at(0),
            },
        }
    }

    #[test]
    fn entries_live_for_the_lifetime_only() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let account = Uuid::new_v4();
        cache.put(b"t".to_vec(), cached(account), cache.generation(), at(0));
        assert!(cache.get(b"t", at(4)).is_some());
        assert!(cache.get(b"t", at(5)).is_none());
        // A clock set back does not make an entry young again.
        assert!(cache.get(b"t", at(-1)).is_none());
        assert!(cache.get(b"other", at(1)).is_none());
        assert_eq!(cache.counts(), (1, 3));
    }

    #[test]
    fn entries_never_hold_a_password_hash() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let mut with_hash = cached(Uuid::new_v4());
        with_hash.account.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into();
        cache.put(b"t".to_vec(), with_hash, cache.generation(), at(0));
        let found = cache.get(b"t", at(1)).unwrap();
        assert_eq!(found.account.password_hash, "");
    }

    #[test]
    fn an_entry_ends_when_last_seen_is_due_to_be_written() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let mut seen_long_ago = cached(Uuid::new_v4());
        // Last written 58 s before the fill: due 2 s after it.
        seen_long_ago.session.last_seen_at = at(-58);
        cache.put(b"t".to_vec(), seen_long_ago, cache.generation(), at(0));
        assert!(cache.get(b"t", at(1)).is_some());
        assert!(cache.get(b"t", at(2)).is_none());
        assert_eq!(cache.counts(), (1, 1));
    }

    #[test]
    fn a_zero_lifetime_or_an_uninformed_cache_stores_nothing() {
        for cache in [
            SessionCache::new(Duration::zero(), true),
            SessionCache::new(Duration::seconds(5), false),
        ] {
            cache.put(b"t".to_vec(), cached(Uuid::new_v4()), 0, at(0));
            assert!(cache.get(b"t", at(1)).is_none());
            assert!(cache.is_empty());
            // Off is not a miss.
            assert_eq!(cache.counts(), (0, 0));
        }
    }

    #[test]
    fn forgetting_an_account_leaves_the_others() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put(b"a1".to_vec(), cached(one), cache.generation(), at(0));
        cache.put(b"a2".to_vec(), cached(one), cache.generation(), at(0));
        cache.put(b"b".to_vec(), cached(two), cache.generation(), at(0));
        cache.forget_account(one);
        assert!(cache.get(b"a1", at(1)).is_none());
        assert!(cache.get(b"a2", at(1)).is_none());
        assert!(cache.get(b"b", at(1)).is_some());
        cache.forget_all();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let account = Uuid::new_v4();
        let before = cache.generation();
        // The rows were read, then some instance changed the account.
        cache.forget_account(account);
        cache.put(b"t".to_vec(), cached(account), before, at(0));
        assert!(cache.is_empty());
        let before = cache.generation();
        cache.forget_all();
        cache.put(b"t".to_vec(), cached(account), before, at(0));
        assert!(cache.is_empty());
    }

    #[test]
    fn losing_the_listener_empties_and_disables_the_cache() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        cache.put(b"t".to_vec(), cached(Uuid::new_v4()), 0, at(0));
        cache.set_informed(false);
        assert!(!cache.is_active());
        assert!(cache.is_empty());
        cache.put(
            b"t".to_vec(),
            cached(Uuid::new_v4()),
            cache.generation(),
            at(0),
        );
        assert!(cache.is_empty());
        cache.set_informed(true);
        cache.put(
            b"t".to_vec(),
            cached(Uuid::new_v4()),
            cache.generation(),
            at(0),
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = SessionCache::new(Duration::seconds(5), true);
        let account = Uuid::new_v4();
        for i in 0..CAPACITY {
            cache.put(i.to_le_bytes().to_vec(), cached(account), 0, at(0));
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.put(b"one more".to_vec(), cached(account), 0, at(0));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(b"one more", at(1)).is_some());
    }
}
