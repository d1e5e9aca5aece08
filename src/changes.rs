//! Changes made by other instances, heard on PostgreSQL: one `LISTEN`
//! connection per instance carries every channel, and each notice makes
//! the cache it concerns forget what it kept.
//!
//! Rules:
//! - Channels: [`crate::accounts::session_cache::CHANNEL`] (an account id:
//!   its sessions are forgotten) and [`crate::consent::policy_cache::CHANNEL`]
//!   (the policy is forgotten). Triggers send them at commit.
//! - The caches are used only while the listener is connected and has
//!   received a probe it sent itself on connecting ("informed"): from the
//!   moment it drops until it has listened again, and for good when
//!   notifications never arrive (a pooler in transaction mode), every
//!   request reads the database.
//! - SQLite serves one instance: nothing listens there, and the caches are
//!   informed from the start.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    accounts::session_cache::{self, SessionCache},
    consent::policy_cache::{self, PolicyCache},
};

/// The caches one listener keeps informed.
#[derive(Clone)]
pub struct Listeners {
    /// Signed-in callers.
    pub sessions: Arc<SessionCache>,
    /// The current policy.
    pub policy: Arc<PolicyCache>,
    /// Unwrapped account keys: an erased account's key must not outlive it
    /// on any instance, and keys are only kept while the listener is informed.
    pub keys: Arc<crate::crypto::keystore::KeyStore>,
}

impl Listeners {
    /// Turns every cache on or off (each forgets what it kept either way).
    fn set_informed(&self, informed: bool) {
        self.sessions.set_informed(informed);
        self.policy.set_informed(informed);
        self.keys.set_informed(informed);
    }

    /// Acts on one notice.
    fn notice(&self, channel: &str, payload: &str) {
        if channel == policy_cache::CHANNEL {
            self.policy.forget();
        } else if channel == session_cache::CHANNEL {
            match Uuid::parse_str(payload) {
                Ok(account) => {
                    self.sessions.forget_account(account);
                    self.keys.forget_account(account);
                }
                Err(_) => {
                    self.sessions.forget_all();
                    self.keys.forget_all();
                }
            }
        }
    }
}

/// How long a new listener waits for its own probe notification before
/// deciding that notifications do not reach it.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the listener waits before trying again after its probe was
/// lost: what loses it (a pooler) does not go away by itself.
const PROBE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Payloads that start with this are a listener's probe, not an account.
const PROBE_PREFIX: &str = "probe:";

/// Keeps `caches` informed of changes made by any instance on the
/// PostgreSQL database at `database_url`, for as long as the task runs:
/// listens on every channel, forgets what the notices name, and
/// reconnects (with the caches out of use meanwhile) whenever the
/// connection drops.
///
/// The caches are turned on only once a notification sent from another
/// connection has come back to the listener: behind a pooler in
/// transaction mode `LISTEN` succeeds but nothing is delivered, and the
/// caches then stay off (with a warning) instead of serving changes late.
pub async fn listen(caches: Listeners, database_url: String) {
    listen_probing(caches, database_url, CHANNELS[0], PROBE_TIMEOUT).await;
}

/// Every channel listened on.
const CHANNELS: [&str; 2] = [session_cache::CHANNEL, policy_cache::CHANNEL];

/// [`listen`], sending its probe on `probe_channel` (tests send it where
/// nobody listens) and waiting `probe_timeout` for it.
async fn listen_probing(
    caches: Listeners,
    database_url: String,
    probe_channel: &str,
    probe_timeout: std::time::Duration,
) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&database_url).await?;
            // Report a lost connection at once (the cache must go off then),
            // rather than reconnecting inside `try_recv` first.
            listener.eager_reconnect(false);
            listener.listen_all(CHANNELS).await?;
            let delivered =
                probe(&mut listener, &database_url, probe_channel, probe_timeout).await?;
            Ok::<_, sea_orm::sqlx::Error>((listener, delivered))
        }
        .await;
        let mut listener = match listener {
            Ok((listener, true)) => listener,
            Ok((_, false)) => {
                tracing::warn!(
                    "notifications do not reach this instance (a pooler in transaction \
                     mode?); reading sessions and the policy from the database"
                );
                tokio::time::sleep(PROBE_RETRY).await;
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for changes; reading sessions and the policy from the database");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
        };
        wait = std::time::Duration::from_millis(250);
        caches.set_informed(true);
        tracing::debug!("listening for changes made by other instances");
        loop {
            match listener.try_recv().await {
                Ok(Some(notice)) if notice.payload().starts_with(PROBE_PREFIX) => {}
                Ok(Some(notice)) => caches.notice(notice.channel(), notice.payload()),
                Ok(None) => {
                    tracing::warn!("change listener disconnected");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "change listener failed");
                    break;
                }
            }
        }
        caches.set_informed(false);
        // A database that dropped us is likely restarting: give it a moment.
        tokio::time::sleep(wait).await;
    }
}

/// Sends a notification on `channel` from a connection of its own and
/// waits up to `timeout` for `listener` to receive it: whether
/// notifications reach the listener. What else arrives meanwhile is
/// dropped; the caches are not in use yet, and are emptied when turned on.
async fn probe(
    listener: &mut sea_orm::sqlx::postgres::PgListener,
    database_url: &str,
    channel: &str,
    timeout: std::time::Duration,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::Connection as _;
    let payload = format!("{PROBE_PREFIX}{}", Uuid::new_v4());
    let mut sender = sea_orm::sqlx::PgConnection::connect(database_url).await?;
    // A plain query, not a prepared statement, so that a pooler in
    // transaction mode passes it on: then only the delivery is tested.
    // Both names are ours (a constant channel, a uuid payload).
    let sent = sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(format!(
        "NOTIFY \"{channel}\", '{payload}'"
    )))
    .execute(&mut sender)
    .await;
    match sent {
        // The notification came back to the sender: behind a pooler in
        // transaction mode it ran on the server session the listener's
        // LISTEN was left on, which the pooler handed to the sender.
        Err(sea_orm::sqlx::Error::Protocol(_)) => return Ok(false),
        Err(err) => return Err(err),
        Ok(_) => sender.close().await?,
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, listener.try_recv()).await {
            Err(_) => return Ok(false),
            Ok(Ok(Some(notice))) if notice.payload() == payload => return Ok(true),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                return Err(sea_orm::sqlx::Error::Protocol(
                    "the listener was disconnected during its probe".into(),
                ));
            }
            Ok(Err(err)) => return Err(err),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn caches() -> Listeners {
        Listeners {
            sessions: Arc::new(SessionCache::new(chrono::Duration::seconds(5), false)),
            policy: Arc::new(PolicyCache::new(false)),
            keys: Arc::new(crate::crypto::keystore::KeyStore::shared()),
        }
    }

    /// Whether any of the caches is on.
    fn any_on(caches: &Listeners) -> bool {
        caches.sessions.is_active() || caches.policy.is_active()
    }

    /// Polls for up to `seconds` of wall time whether every cache is on.
    async fn turns_on_within(caches: &Listeners, seconds: u64) -> bool {
        let all_on = || caches.sessions.is_active() && caches.policy.is_active();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if all_on() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        all_on()
    }

    /// On PostgreSQL only (passes trivially elsewhere): the listener turns
    /// the caches on once its probe came back, and leaves them off when
    /// notifications do not reach it (here: the probe goes to a channel
    /// nobody listens on, as a pooler in transaction mode would lose it).
    #[tokio::test]
    async fn the_cache_goes_on_only_when_notifications_arrive() {
        // LISTEN and NOTIFY need no tables: the server's own database will do.
        let Some(url) = crate::db::test_postgres_url() else {
            return;
        };
        let delivered = caches();
        let task = tokio::spawn(listen_probing(
            delivered.clone(),
            url.clone(),
            session_cache::CHANNEL,
            std::time::Duration::from_secs(5),
        ));
        assert!(turns_on_within(&delivered, 10).await);
        task.abort();

        let lost = caches();
        let task = tokio::spawn(listen_probing(
            lost.clone(),
            url,
            "custos_probe_to_nobody",
            std::time::Duration::from_millis(300),
        ));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert!(!any_on(&lost));
        task.abort();
    }
}
