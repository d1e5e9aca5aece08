//! The per-client limits counted in the database, so that N instances
//! behind a balancer allow what one would, not N times as much.
//!
//! Rules:
//! - Used on PostgreSQL only. SQLite serves one instance, whose memory
//!   already sees every attempt; a write per attempt there would only take
//!   turns from sign-ups at SQLite's single writer.
//! - Runs behind the in-memory buckets ([`super::RateLimits`]): an attempt
//!   they refuse never reaches the database, so a flood costs each
//!   instance at most the limit's worth of writes a minute per client.
//! - An attempt costs one statement: an upsert on (action, client,
//!   window) that adds one and returns the count, together with the count
//!   of the window before. The limit holds over a sliding minute,
//!   estimated from the two fixed windows (the previous one weighted by how
//!   much of it still lies inside the last 60 seconds), so a client cannot
//!   spend twice the limit across a window boundary.
//! - The client is a blind index of its address (or IPv6 /64) under a field
//!   of its own, never the address; rows are pruned by the job runner once
//!   both windows that could read them have passed ([`prune`]).
//! - When the count cannot be written (the database is failing), the
//!   in-memory decision stands: the request needs the database for its own
//!   work anyway, and refusing everybody would not help.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::retry_after::RetryAfter;

/// The length of one counting window, in seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// Blind-index field of rate-limit clients.
pub const CLIENT_INDEX: &str = "rate_limit_client";

/// The counts an attempt sees once it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Attempts in the current window, this one included.
    pub current: i64,
    /// Attempts in the window before.
    pub previous: i64,
}

/// The start (in seconds since the epoch) of the window holding `now`.
pub fn window_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

/// Counts one attempt of `bucket` by `client` at `now`: one statement.
pub async fn count<C: ConnectionTrait>(
    conn: &C,
    bucket: &str,
    client: &[u8],
    now: DateTime<Utc>,
) -> Result<Counts, DbErr> {
    let window = window_of(now);
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO client_rate_windows (bucket, client, window_start, attempts) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (bucket, client, window_start) \
             DO UPDATE SET attempts = client_rate_windows.attempts + 1 \
             RETURNING attempts, (SELECT p.attempts FROM client_rate_windows p \
             WHERE p.bucket = $4 AND p.client = $5 AND p.window_start = $6) AS previous"
        }
        _ => {
            "INSERT INTO client_rate_windows (bucket, client, window_start, attempts) \
             VALUES (?, ?, ?, 1) \
             ON CONFLICT (bucket, client, window_start) \
             DO UPDATE SET attempts = client_rate_windows.attempts + 1 \
             RETURNING attempts, (SELECT p.attempts FROM client_rate_windows p \
             WHERE p.bucket = ? AND p.client = ? AND p.window_start = ?) AS previous"
        }
    };
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [
            bucket.into(),
            client.to_vec().into(),
            window.into(),
            bucket.into(),
            client.to_vec().into(),
            (window - WINDOW_SECONDS).into(),
        ],
    );
    let row = conn
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| DbErr::Custom("the rate-limit upsert returned no row".into()))?;
    let current: i32 = row.try_get("", "attempts")?;
    let previous: Option<i32> = row.try_get("", "previous")?;
    Ok(Counts {
        current: i64::from(current),
        previous: i64::from(previous.unwrap_or(0)),
    })
}

/// Whether an attempt that sees `counts` at `now` is within `limit` a
/// minute, or how long to wait. Pure, so the sliding estimate is tested
/// without a database.
pub fn decide(counts: Counts, now: DateTime<Utc>, limit: u32) -> Result<(), RetryAfter> {
    let window = window_of(now);
    // Milliseconds into the current window, 0..60,000.
    let into = (now.timestamp_millis() - window * 1000).clamp(0, WINDOW_SECONDS * 1000);
    let window_millis = WINDOW_SECONDS * 1000;
    // previous × (remaining share of the window) + current, in thousandths
    // of an attempt, so no float is needed.
    let estimate = counts.previous * (window_millis - into) + counts.current * window_millis;
    if estimate <= i64::from(limit) * window_millis {
        return Ok(());
    }
    let wait = u64::try_from(window_millis - into).unwrap_or(1000);
    Err(RetryAfter(std::time::Duration::from_millis(wait)))
}

/// Deletes the windows no attempt reads any more (older than the one
/// before the current one); returns how many.
pub async fn prune<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM client_rate_windows WHERE window_start < $1",
        _ => "DELETE FROM client_rate_windows WHERE window_start < ?",
    };
    let oldest_read = window_of(now) - WINDOW_SECONDS;
    let done = conn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [oldest_read.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use sea_orm::DatabaseConnection;

    /// The start of a window (a multiple of 60 seconds).
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn secs(s: i64) -> DateTime<Utc> {
        t0() + chrono::TimeDelta::seconds(s)
    }

    #[test]
    fn the_limit_holds_over_a_sliding_minute() {
        let counts = |previous, current| Counts { current, previous };
        // Within the first window: up to the limit.
        assert!(decide(counts(0, 3), secs(10), 3).is_ok());
        let refused = decide(counts(0, 4), secs(10), 3).unwrap_err();
        assert_eq!(refused.seconds(), 50, "until the window ends");
        // Just after the boundary the previous window still counts almost
        // fully: no second burst.
        assert!(decide(counts(3, 1), secs(61), 3).is_err());
        // Halfway through, it counts half.
        assert!(decide(counts(2, 2), secs(90), 3).is_ok());
        assert!(decide(counts(4, 2), secs(90), 3).is_err());
        // Near the window's end it hardly counts any more.
        assert!(decide(counts(3, 2), secs(110), 3).is_ok());
        assert!(decide(counts(3, 3), secs(119), 3).is_err());
    }

    #[test]
    fn windows_start_on_the_minute() {
        assert_eq!(window_of(secs(0)), t0().timestamp());
        assert_eq!(window_of(secs(59)), t0().timestamp());
        assert_eq!(window_of(secs(60)), t0().timestamp() + 60);
    }

    async fn database() -> DatabaseConnection {
        use migration::MigratorTrait;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    async fn counts_and_prunes(db: &DatabaseConnection) {
        let client = [7u8; 32];
        let first = count(db, "login", &client, secs(1)).await.unwrap();
        assert_eq!(
            first,
            Counts {
                current: 1,
                previous: 0
            }
        );
        let second = count(db, "login", &client, secs(59)).await.unwrap();
        assert_eq!(
            second,
            Counts {
                current: 2,
                previous: 0
            }
        );
        // Another action and another client count apart.
        let other = count(db, "signup", &client, secs(2)).await.unwrap();
        assert_eq!(other.current, 1);
        let other = count(db, "login", &[8u8; 32], secs(2)).await.unwrap();
        assert_eq!(other.current, 1);
        // The next window starts over and sees the one before.
        let next = count(db, "login", &client, secs(61)).await.unwrap();
        assert_eq!(
            next,
            Counts {
                current: 1,
                previous: 2
            }
        );
        // The first window is still read during the second.
        assert_eq!(prune(db, secs(119)).await.unwrap(), 0);
        // From the third on, it is not.
        assert_eq!(prune(db, secs(120)).await.unwrap(), 3);
        let later = count(db, "login", &client, secs(121)).await.unwrap();
        assert_eq!(
            later,
            Counts {
                current: 1,
                previous: 1
            }
        );
    }

    #[tokio::test]
    async fn attempts_are_counted_per_window_and_old_windows_pruned() {
        counts_and_prunes(&database().await).await;
    }

    /// The same on PostgreSQL, in a database of its own (passes trivially
    /// without `CUSTOS_TEST_DATABASE_URL`).
    #[tokio::test]
    async fn attempts_are_counted_the_same_on_postgres() {
        crate::db::with_test_postgres(counts_and_prunes).await;
    }
}
