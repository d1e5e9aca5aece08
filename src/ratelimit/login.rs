//! The sign-in throttle per login name, shared by every server instance
//! through the `login_throttle` table.
//!
//! Rules:
//! - The subject is a blind index of the login name as typed (after the
//!   same normalisation the lookup uses), never the account: unknown names
//!   are counted and refused exactly like known ones, so `RATE_LIMITED` says
//!   nothing about which names have accounts. An account's username and
//!   email are two subjects; a correct password clears both.
//! - An attempt is counted *before* the password is checked, and a correct
//!   password then clears the count. A name without a count gets its row,
//!   holding the first attempt, from one insert; a name with one is decided
//!   in a short transaction that holds its row (`FOR UPDATE` on PostgreSQL;
//!   SQLite has a single writer). So parallel guesses cannot all slip in
//!   before the first failure is written: once the count says "wait", every
//!   further attempt waits. A row that vanishes between the two (pruned, or
//!   cleared by a correct password) means the attempt is counted afresh;
//!   no attempt goes ahead uncounted.
//! - The first [`FREE_ATTEMPTS`] attempts of a one-hour window are free.
//!   From the fifth on, the next attempt must wait 1 s, then 2 s, 4 s, …,
//!   doubling up to [`MAX_DELAY`] (15 minutes). The cap is what keeps this
//!   from being a lockout tool: someone guessing at another person's
//!   account can delay them, by at most 15 minutes per guess they spend,
//!   never shut them out; and the reset link is never throttled here, and a
//!   completed reset clears the count.
//! - A refused attempt is not counted and does not extend the wait:
//!   otherwise hammering during a wait would keep the owner out for good.
//! - At most [`MAX_ATTEMPTS_PER_WINDOW`] (100) attempts count in one window;
//!   past that, attempts wait until the window ends. With the back-off above
//!   this ceiling cannot be reached in an hour (about 18 attempts can); it
//!   stays as a bound that holds whatever the delays are tuned to.
//! - Rows whose window and wait have both passed carry nothing and are
//!   pruned by the job runner ([`prune`]).

use chrono::{DateTime, TimeDelta, Utc};
use entity::login_throttle;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set, TransactionTrait,
    TryInsertResult,
};
use uuid::Uuid;

use crate::crypto::blind_index::BlindIndex;

/// Attempts in a window before the back-off starts.
pub const FREE_ATTEMPTS: i32 = 5;
/// Most attempts counted in one window.
pub const MAX_ATTEMPTS_PER_WINDOW: i32 = 100;
/// The counting window.
pub const WINDOW: TimeDelta = TimeDelta::hours(1);
/// The longest wait the back-off imposes.
pub const MAX_DELAY: TimeDelta = TimeDelta::minutes(15);

/// Blind-index field of throttle subjects. Derived from the lookup index
/// rather than equal to it, so the table cannot be joined to `accounts`.
const SUBJECT_INDEX: &str = "login_throttle";
/// Blind-index field for login names that are neither a valid username nor
/// a valid email (they have no lookup index of their own).
const OTHER_LOGIN_INDEX: &str = "login_other";

/// The throttle subject for a login name whose account lookup index (the
/// `username_bidx` or `email_bidx` it is looked up by) is `lookup_index`.
pub fn subject(blind: &BlindIndex, lookup_index: &[u8]) -> Vec<u8> {
    blind.compute(SUBJECT_INDEX, &hex::encode(lookup_index))
}

/// The throttle subject of a login name that cannot name any account.
pub fn other_subject(blind: &BlindIndex, login: &str) -> Vec<u8> {
    subject(
        blind,
        &blind.compute(OTHER_LOGIN_INDEX, &login.trim().to_lowercase()),
    )
}

/// Where one subject's count stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Attempts counted in the window.
    pub failures: i32,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// No attempt before this.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Counter {
    fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            failures: 0,
            window_started_at: now,
            locked_until: None,
        }
    }
}

/// The wait imposed after the `attempts`-th attempt of a window.
pub fn delay_after(attempts: i32) -> Option<TimeDelta> {
    if attempts < FREE_ATTEMPTS {
        return None;
    }
    // 2^20 s is far past the cap already; the bound keeps the shift sane.
    let exponent = u32::try_from(attempts - FREE_ATTEMPTS).unwrap_or(0).min(20);
    Some(TimeDelta::seconds(1_i64 << exponent).min(MAX_DELAY))
}

/// Decides one attempt: the counter to store if it may go ahead, or how
/// long to wait. Pure, so the schedule is tested without a database.
pub fn admit(current: Option<Counter>, now: DateTime<Utc>) -> Result<Counter, TimeDelta> {
    let mut counter = current.unwrap_or_else(|| Counter::fresh(now));
    if let Some(until) = counter.locked_until
        && until > now
    {
        return Err(until - now);
    }
    let window_end = counter.window_started_at + WINDOW;
    if now >= window_end {
        counter = Counter::fresh(now);
    } else if counter.failures >= MAX_ATTEMPTS_PER_WINDOW {
        return Err(window_end - now);
    }
    counter.failures += 1;
    counter.locked_until = delay_after(counter.failures).map(|delay| now + delay);
    Ok(counter)
}

/// What [`begin_attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead and check the password; the attempt is already counted.
    Allowed,
    /// Refused without checking anything; retry after this long.
    Refused {
        /// How long to wait.
        retry_after: TimeDelta,
    },
}

/// How many times [`begin_attempt`] tries to place an attempt whose row
/// keeps vanishing between the insert that finds it and the select that
/// locks it.
const PLACEMENT_TRIES: usize = 3;

/// What a busy subject is told when its attempt could not be placed.
const BUSY_RETRY: TimeDelta = TimeDelta::seconds(1);

/// Counts an attempt for `subject`, or refuses it. Runs in its own short
/// transactions on `db` and commits before returning, so the count holds
/// even if the caller fails later.
pub async fn begin_attempt(
    db: &DatabaseConnection,
    subject: &[u8],
    now: DateTime<Utc>,
) -> Result<Admission, DbErr> {
    place(|| async {
        if count_first(db, subject, now).await? {
            return Ok(Some(Admission::Allowed));
        }
        count_under_lock(db, subject, now).await
    })
    .await
}

/// Runs `step` until it places the attempt, at most [`PLACEMENT_TRIES`]
/// times. A row can vanish between finding and locking it (pruned, or
/// cleared by a correct password); the attempt must then be counted
/// afresh, never let through uncounted. If it keeps vanishing, the
/// attempt is refused for a moment: failing closed costs the owner a
/// second, failing open would hand a guesser a free try.
async fn place<F, Fut>(mut step: F) -> Result<Admission, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Admission>, DbErr>>,
{
    for _ in 0..PLACEMENT_TRIES {
        if let Some(admission) = step().await? {
            return Ok(admission);
        }
    }
    tracing::warn!(target: "security", event = "login_throttle_contended", "sign-in attempt could not be counted; refused");
    Ok(Admission::Refused {
        retry_after: BUSY_RETRY,
    })
}

/// The usual case: the name has no count (a correct password deletes it).
/// Its first attempt is then counted by one insert, and this says `true`.
/// A row already there, even one a parallel first attempt inserted a
/// moment ago, is left for [`count_under_lock`].
async fn count_first(
    db: &DatabaseConnection,
    subject: &[u8],
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let Ok(first) = admit(None, now) else {
        return Ok(false);
    };
    let inserted = login_throttle::Entity::insert(new_row(subject, first, now))
        .on_conflict_do_nothing_on([login_throttle::Column::SubjectBidx])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(1)))
}

/// Decides an attempt on a name that has a count, holding its row. `None`
/// when there is no row (any more): nothing was counted or written.
async fn count_under_lock(
    db: &DatabaseConnection,
    subject: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Admission>, DbErr> {
    let txn = db.begin().await?;
    let mut select =
        login_throttle::Entity::find().filter(login_throttle::Column::SubjectBidx.eq(subject));
    if txn.get_database_backend() == DbBackend::Postgres {
        // Parallel attempts on one name queue here, one decision at a time.
        select = select.lock_exclusive();
    }
    let Some(row) = select.one(&txn).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let current = Counter {
        failures: row.failures,
        window_started_at: row.window_started_at,
        locked_until: row.locked_until,
    };
    let admission = match admit(Some(current), now) {
        Ok(next) => {
            let mut update = row.into_active_model();
            update.failures = Set(next.failures);
            update.window_started_at = Set(next.window_started_at);
            update.locked_until = Set(next.locked_until);
            update.updated_at = Set(now);
            update.update(&txn).await?;
            Admission::Allowed
        }
        Err(retry_after) => Admission::Refused { retry_after },
    };
    txn.commit().await?;
    Ok(Some(admission))
}

/// A new row holding `counter` for `subject`.
fn new_row(subject: &[u8], counter: Counter, now: DateTime<Utc>) -> login_throttle::ActiveModel {
    login_throttle::ActiveModel {
        id: Set(Uuid::new_v4()),
        subject_bidx: Set(subject.to_vec()),
        failures: Set(counter.failures),
        window_started_at: Set(counter.window_started_at),
        locked_until: Set(counter.locked_until),
        updated_at: Set(now),
    }
}

/// Forgets the counts of `subjects` (after a correct password or a
/// completed reset).
pub async fn clear<C: ConnectionTrait>(conn: &C, subjects: &[Vec<u8>]) -> Result<(), DbErr> {
    login_throttle::Entity::delete_many()
        .filter(login_throttle::Column::SubjectBidx.is_in(subjects.iter().cloned()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes rows whose window and wait have both passed; returns how many.
pub async fn prune<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let done = login_throttle::Entity::delete_many()
        .filter(login_throttle::Column::WindowStartedAt.lte(now - WINDOW))
        .filter(
            Condition::any()
                .add(login_throttle::Column::LockedUntil.is_null())
                .add(login_throttle::Column::LockedUntil.lte(now)),
        )
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn five_attempts_are_free_then_the_wait_doubles_up_to_the_cap() {
        assert_eq!(delay_after(4), None);
        assert_eq!(delay_after(5), Some(TimeDelta::seconds(1)));
        assert_eq!(delay_after(6), Some(TimeDelta::seconds(2)));
        assert_eq!(delay_after(14), Some(TimeDelta::seconds(512)));
        assert_eq!(delay_after(15), Some(MAX_DELAY));
        assert_eq!(delay_after(99), Some(MAX_DELAY));
        assert_eq!(delay_after(i32::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn a_wait_refuses_without_counting() {
        let now = t0();
        let mut counter = None;
        for _ in 0..4 {
            counter = Some(admit(counter, now).unwrap());
            assert_eq!(counter.unwrap().locked_until, None);
        }
        let fifth = admit(counter, now).unwrap();
        assert_eq!(fifth.failures, 5);
        assert_eq!(fifth.locked_until, Some(now + TimeDelta::seconds(1)));
        // Refused, and the refusal changes nothing.
        assert_eq!(admit(Some(fifth), now), Err(TimeDelta::seconds(1)));
        let later = now + TimeDelta::seconds(1);
        let sixth = admit(Some(fifth), later).unwrap();
        assert_eq!(sixth.failures, 6);
        assert_eq!(sixth.locked_until, Some(later + TimeDelta::seconds(2)));
    }

    #[test]
    fn the_wait_never_exceeds_the_cap() {
        let mut now = t0();
        let mut counter = None;
        let mut longest = TimeDelta::zero();
        for _ in 0..40 {
            let next = admit(counter, now).unwrap();
            if let Some(until) = next.locked_until {
                longest = longest.max(until - now);
                now = until;
            }
            counter = Some(next);
        }
        assert_eq!(longest, MAX_DELAY);
    }

    #[test]
    fn a_new_window_starts_over() {
        let now = t0();
        let counter = Counter {
            failures: 12,
            window_started_at: now,
            locked_until: Some(now + TimeDelta::minutes(2)),
        };
        let later = now + WINDOW;
        let next = admit(Some(counter), later).unwrap();
        assert_eq!(next.failures, 1);
        assert_eq!(next.window_started_at, later);
        assert_eq!(next.locked_until, None);
    }

    #[test]
    fn the_hourly_ceiling_holds_whatever_the_delays() {
        let now = t0();
        let counter = Counter {
            failures: MAX_ATTEMPTS_PER_WINDOW,
            window_started_at: now - TimeDelta::minutes(50),
            locked_until: None,
        };
        assert_eq!(admit(Some(counter), now), Err(TimeDelta::minutes(10)));
        let next = admit(Some(counter), now + TimeDelta::minutes(10)).unwrap();
        assert_eq!(next.failures, 1);
    }

    #[test]
    fn subjects_differ_from_lookup_indexes_and_between_names() {
        let blind = BlindIndex::new([7; 32]);
        let lookup = blind.compute("email", "a@example.org");
        let s = subject(&blind, &lookup);
        assert_ne!(s, lookup);
        assert_eq!(s, subject(&blind, &lookup));
        assert_ne!(s, subject(&blind, &blind.compute("email", "b@example.org")));
        assert_eq!(other_subject(&blind, " A B "), other_subject(&blind, "a b"));
        assert_ne!(other_subject(&blind, "a b"), other_subject(&blind, "a c"));
    }

    async fn throttle_db() -> DatabaseConnection {
        use migration::MigratorTrait;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    async fn stored(db: &DatabaseConnection, subject: &[u8]) -> Option<login_throttle::Model> {
        login_throttle::Entity::find()
            .filter(login_throttle::Column::SubjectBidx.eq(subject))
            .one(db)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_row_that_vanishes_before_its_lock_is_counted_afresh() {
        let db = throttle_db().await;
        let subject = b"subject".to_vec();
        let now = t0();
        // A count is there, so the first insert finds it.
        assert_eq!(
            begin_attempt(&db, &subject, now).await.unwrap(),
            Admission::Allowed
        );
        let mut steps = 0;
        let admission = place(|| {
            steps += 1;
            let (db, subject) = (&db, &subject);
            let first_step = steps == 1;
            async move {
                if count_first(db, subject, now).await? {
                    return Ok(Some(Admission::Allowed));
                }
                assert!(first_step, "the row was there only for the first step");
                // A correct password clears it between insert and lock.
                clear(db, std::slice::from_ref(subject)).await?;
                count_under_lock(db, subject, now).await
            }
        })
        .await
        .unwrap();
        assert_eq!(admission, Admission::Allowed);
        assert_eq!(steps, 2);
        // Counted: a fresh row holds this attempt.
        let row = stored(&db, &subject).await.unwrap();
        assert_eq!((row.failures, row.window_started_at), (1, now));
    }

    #[tokio::test]
    async fn no_row_to_lock_decides_nothing_and_writes_nothing() {
        let db = throttle_db().await;
        assert_eq!(count_under_lock(&db, b"nobody", t0()).await.unwrap(), None);
        assert!(stored(&db, b"nobody").await.is_none());
    }

    #[tokio::test]
    async fn an_attempt_that_cannot_be_placed_is_refused_not_let_through() {
        let mut steps = 0;
        let admission = place(|| {
            steps += 1;
            async { Ok(None) }
        })
        .await
        .unwrap();
        assert_eq!(
            admission,
            Admission::Refused {
                retry_after: BUSY_RETRY
            }
        );
        assert_eq!(steps, PLACEMENT_TRIES);
    }

    #[tokio::test]
    async fn a_database_error_while_placing_is_returned_at_once() {
        let mut steps = 0;
        let result = place(|| {
            steps += 1;
            async { Err(DbErr::Custom("down".into())) }
        })
        .await;
        assert!(matches!(result, Err(DbErr::Custom(_))));
        assert_eq!(steps, 1);
    }

    #[tokio::test]
    async fn the_first_attempt_is_one_insert_and_later_ones_are_counted_under_the_lock() {
        let db = throttle_db().await;
        let subject = b"subject".to_vec();
        let stored = || async { stored(&db, &subject).await.unwrap() };
        let now = t0();
        assert_eq!(
            begin_attempt(&db, &subject, now).await.unwrap(),
            Admission::Allowed
        );
        let first = stored().await;
        assert_eq!(
            (first.failures, first.window_started_at, first.locked_until),
            (1, now, None)
        );
        for _ in 1..FREE_ATTEMPTS {
            assert_eq!(
                begin_attempt(&db, &subject, now).await.unwrap(),
                Admission::Allowed
            );
        }
        let fifth = stored().await;
        assert_eq!(fifth.failures, FREE_ATTEMPTS);
        assert_eq!(fifth.locked_until, Some(now + TimeDelta::seconds(1)));
        assert_eq!(
            begin_attempt(&db, &subject, now).await.unwrap(),
            Admission::Refused {
                retry_after: TimeDelta::seconds(1)
            }
        );
        assert_eq!(stored().await.failures, FREE_ATTEMPTS);
        // A correct password clears the count: the next attempt is a first one.
        clear(&db, std::slice::from_ref(&subject)).await.unwrap();
        assert_eq!(
            begin_attempt(&db, &subject, now).await.unwrap(),
            Admission::Allowed
        );
        assert_eq!(stored().await.failures, 1);
    }
}
