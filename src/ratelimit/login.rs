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
//! - Each attempt is counted twice: per name and client network (an IPv4
//!   /24, an IPv6 /64; [`network_subject`]) under [`PER_NETWORK`], and per
//!   name alone under the higher [`PER_NAME`]. The network count is
//!   decided first, and an attempt it refuses is not counted per name, so
//!   a stranger guessing from one network backs off only that network:
//!   the owner, from another, still signs in. The per-name count still
//!   meets a guesser spread over many networks. On PostgreSQL, when
//!   neither has a count, both first attempts are one statement that
//!   inserts the name's row only if the network's went in.
//! - Under each schedule the first `free` attempts of a one-hour window
//!   are free (5 per network, 50 per name). Then the next attempt must
//!   wait 1 s, then 2 s, 4 s, …, doubling up to [`MAX_DELAY`] (15
//!   minutes), never longer; the reset link is never throttled here, and a
//!   completed reset clears the per-name count.
//! - A refused attempt is not counted and does not extend the wait:
//!   otherwise hammering during a wait would keep the owner out for good.
//! - At most `max_per_window` attempts count in one window (100 per
//!   network, 200 per name); past that, attempts wait until the window
//!   ends. With the back-off above this ceiling cannot be reached in an
//!   hour from one network (about 18 attempts can); it stays as a bound
//!   that holds whatever the delays are tuned to.
//! - Rows whose window and wait have both passed carry nothing and are
//!   pruned by the job runner ([`prune`]).

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use entity::login_throttle;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, QueryTrait, Set, Statement,
    TransactionTrait, TryInsertResult, Value, sea_query::DeleteStatement,
};
use uuid::Uuid;

use crate::crypto::blind_index::BlindIndex;
use crate::db::Writes;

/// How many attempts a subject gets before it backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Attempts in a window before the back-off starts.
    pub free: i32,
    /// Most attempts counted in one window.
    pub max_per_window: i32,
}

/// Attempts on one name from one client network.
pub const PER_NETWORK: Schedule = Schedule {
    free: 5,
    max_per_window: 100,
};
/// Attempts on one name from anywhere: ten networks' worth, so it backs
/// off only a guesser spread over many networks.
pub const PER_NAME: Schedule = Schedule {
    free: 50,
    max_per_window: 200,
};
/// The counting window.
pub const WINDOW: TimeDelta = TimeDelta::hours(1);
/// The longest wait the back-off imposes.
pub const MAX_DELAY: TimeDelta = TimeDelta::minutes(15);

/// Blind-index field of throttle subjects. Derived from the lookup index
/// rather than equal to it, so the table cannot be joined to `accounts`.
const SUBJECT_INDEX: &str = "login_throttle";
/// Blind-index field of per-network subjects.
const NETWORK_SUBJECT_INDEX: &str = "login_throttle_network";
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

/// The per-network subject of attempts on the name whose subject is
/// `name_subject` from `client`: its IPv4 /24 or IPv6 /64 (clients of
/// unknown address share one).
pub fn network_subject(blind: &BlindIndex, name_subject: &[u8], client: Option<IpAddr>) -> Vec<u8> {
    let network = match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Some(IpAddr::V6(v6)) => format!("{:x}/64", u128::from(v6) >> 64),
        None => "unknown".to_owned(),
    };
    blind.compute(
        NETWORK_SUBJECT_INDEX,
        &format!("{}|{network}", hex::encode(name_subject)),
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

impl Schedule {
    /// The wait imposed after the `attempts`-th attempt of a window.
    pub fn delay_after(self, attempts: i32) -> Option<TimeDelta> {
        if attempts < self.free {
            return None;
        }
        // 2^20 s is far past the cap already; the bound keeps the shift sane.
        let exponent = u32::try_from(attempts - self.free).unwrap_or(0).min(20);
        Some(TimeDelta::seconds(1_i64 << exponent).min(MAX_DELAY))
    }

    /// Decides one attempt: the counter to store if it may go ahead, or how
    /// long to wait. Pure, so the schedule is tested without a database.
    pub fn admit(self, current: Option<Counter>, now: DateTime<Utc>) -> Result<Counter, TimeDelta> {
        let mut counter = current.unwrap_or_else(|| Counter::fresh(now));
        if let Some(until) = counter.locked_until
            && until > now
        {
            return Err(until - now);
        }
        let window_end = counter.window_started_at + WINDOW;
        if now >= window_end {
            counter = Counter::fresh(now);
        } else if counter.failures >= self.max_per_window {
            return Err(window_end - now);
        }
        counter.failures += 1;
        counter.locked_until = self.delay_after(counter.failures).map(|delay| now + delay);
        Ok(counter)
    }
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

/// Counts a sign-in attempt on a name from a network, or refuses it: the
/// network's count first, then, only if that admits it, the name's (see
/// the module's rules). Either count refusing refuses the attempt.
pub async fn begin_sign_in(
    db: &DatabaseConnection,
    name_subject: &[u8],
    network_subject: &[u8],
    now: DateTime<Utc>,
) -> Result<Admission, DbErr> {
    let network_counted = match first_of_both(db, name_subject, network_subject, now).await? {
        Firsts::Both => return Ok(Admission::Allowed),
        Firsts::Network => Admission::Allowed,
        Firsts::Neither => begin_attempt(db, network_subject, PER_NETWORK, now).await?,
    };
    match network_counted {
        Admission::Allowed => begin_attempt(db, name_subject, PER_NAME, now).await,
        refused => Ok(refused),
    }
}

/// Which first attempts [`first_of_both`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firsts {
    /// The network's and the name's: the attempt may go ahead.
    Both,
    /// The network's only: the name has a count already.
    Network,
    /// Neither: the network has a count already (or this is SQLite).
    Neither,
}

/// The usual sign-in, where neither the network nor the name has a count,
/// in one statement on PostgreSQL: [`count_first`] for the network and,
/// only when that inserted its row, for the name, keeping the order of
/// [`begin_sign_in`]. SQLite, in process, counts one after the other.
async fn first_of_both(
    db: &DatabaseConnection,
    name_subject: &[u8],
    network_subject: &[u8],
    now: DateTime<Utc>,
) -> Result<Firsts, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Firsts::Neither);
    }
    let (Ok(network), Ok(name)) = (PER_NETWORK.admit(None, now), PER_NAME.admit(None, now)) else {
        return Ok(Firsts::Neither);
    };
    let mut values: Vec<Value> = Vec::with_capacity(12);
    for (subject, counter) in [(network_subject, network), (name_subject, name)] {
        values.extend([
            Uuid::new_v4().into(),
            subject.to_vec().into(),
            counter.failures.into(),
            counter.window_started_at.into(),
            counter.locked_until.into(),
            now.into(),
        ]);
    }
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, FIRST_OF_BOTH, values);
    let counted = db.query_one_raw(statement).await?;
    let inserted = |column| {
        counted
            .as_ref()
            .map_or(Ok(0), |row| row.try_get::<i64>("", column))
    };
    Ok(match (inserted("network")?, inserted("name")?) {
        (1, 1) => Firsts::Both,
        (1, _) => Firsts::Network,
        _ => Firsts::Neither,
    })
}

/// [`first_of_both`]'s statement: the name's row is inserted only when the
/// network's was, and the answer says which were.
const FIRST_OF_BOTH: &str = r#"WITH by_network AS (
    INSERT INTO "login_throttle"
        ("id", "subject_bidx", "failures", "window_started_at", "locked_until", "updated_at")
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT ("subject_bidx") DO NOTHING
    RETURNING 1
), by_name AS (
    INSERT INTO "login_throttle"
        ("id", "subject_bidx", "failures", "window_started_at", "locked_until", "updated_at")
    SELECT $7, $8, $9, $10, $11, $12 WHERE EXISTS (SELECT 1 FROM by_network)
    ON CONFLICT ("subject_bidx") DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM by_network) AS "network", (SELECT count(*) FROM by_name) AS "name""#;

/// Counts an attempt for `subject` under `schedule`, or refuses it. Runs
/// in its own short transactions on `db` and commits before returning, so
/// the count holds even if the caller fails later.
pub async fn begin_attempt(
    db: &DatabaseConnection,
    subject: &[u8],
    schedule: Schedule,
    now: DateTime<Utc>,
) -> Result<Admission, DbErr> {
    place(|| async {
        if count_first(db, subject, schedule, now).await? {
            return Ok(Some(Admission::Allowed));
        }
        count_under_lock(db, subject, schedule, now).await
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
    schedule: Schedule,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let Ok(first) = schedule.admit(None, now) else {
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
    schedule: Schedule,
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
    let admission = match schedule.admit(Some(current), now) {
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
    conn.execute(&clearing(subjects)).await?;
    Ok(())
}

/// [`clear`] as one of `writes` (with the session a correct password
/// starts).
pub fn clear_in(writes: &mut Writes, subjects: &[Vec<u8>]) {
    writes.push(clearing(subjects));
}

/// The delete that forgets the counts of `subjects`.
fn clearing(subjects: &[Vec<u8>]) -> DeleteStatement {
    login_throttle::Entity::delete_many()
        .filter(login_throttle::Column::SubjectBidx.is_in(subjects.iter().cloned()))
        .into_query()
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
        assert_eq!(PER_NETWORK.delay_after(4), None);
        assert_eq!(PER_NETWORK.delay_after(5), Some(TimeDelta::seconds(1)));
        assert_eq!(PER_NETWORK.delay_after(6), Some(TimeDelta::seconds(2)));
        assert_eq!(PER_NETWORK.delay_after(14), Some(TimeDelta::seconds(512)));
        assert_eq!(PER_NETWORK.delay_after(15), Some(MAX_DELAY));
        assert_eq!(PER_NETWORK.delay_after(99), Some(MAX_DELAY));
        assert_eq!(PER_NETWORK.delay_after(i32::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn a_wait_refuses_without_counting() {
        let now = t0();
        let mut counter = None;
        for _ in 0..4 {
            counter = Some(PER_NETWORK.admit(counter, now).unwrap());
            assert_eq!(counter.unwrap().locked_until, None);
        }
        let fifth = PER_NETWORK.admit(counter, now).unwrap();
        assert_eq!(fifth.failures, 5);
        assert_eq!(fifth.locked_until, Some(now + TimeDelta::seconds(1)));
        // Refused, and the refusal changes nothing.
        assert_eq!(
            PER_NETWORK.admit(Some(fifth), now),
            Err(TimeDelta::seconds(1))
        );
        let later = now + TimeDelta::seconds(1);
        let sixth = PER_NETWORK.admit(Some(fifth), later).unwrap();
        assert_eq!(sixth.failures, 6);
        assert_eq!(sixth.locked_until, Some(later + TimeDelta::seconds(2)));
    }

    #[test]
    fn the_wait_never_exceeds_the_cap() {
        let mut now = t0();
        let mut counter = None;
        let mut longest = TimeDelta::zero();
        for _ in 0..40 {
            let next = PER_NETWORK.admit(counter, now).unwrap();
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
        let next = PER_NETWORK.admit(Some(counter), later).unwrap();
        assert_eq!(next.failures, 1);
        assert_eq!(next.window_started_at, later);
        assert_eq!(next.locked_until, None);
    }

    #[test]
    fn the_hourly_ceiling_holds_whatever_the_delays() {
        let now = t0();
        let counter = Counter {
            failures: PER_NETWORK.max_per_window,
            window_started_at: now - TimeDelta::minutes(50),
            locked_until: None,
        };
        assert_eq!(
            PER_NETWORK.admit(Some(counter), now),
            Err(TimeDelta::minutes(10))
        );
        let next = PER_NETWORK
            .admit(Some(counter), now + TimeDelta::minutes(10))
            .unwrap();
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

    #[test]
    fn networks_are_a_v4_slash_24_and_a_v6_slash_64() {
        let blind = BlindIndex::new([7; 32]);
        let name = subject(&blind, b"name");
        let at = |ip: &str| network_subject(&blind, &name, Some(ip.parse().unwrap()));
        assert_eq!(at("192.0.2.1"), at("192.0.2.254"));
        assert_ne!(at("192.0.2.1"), at("192.0.3.1"));
        assert_eq!(at("::ffff:192.0.2.9"), at("192.0.2.1"));
        assert_eq!(at("2001:db8:1:2::1"), at("2001:db8:1:2:ffff::9"));
        assert_ne!(at("2001:db8:1:2::1"), at("2001:db8:1:3::1"));
        assert_ne!(at("192.0.2.1"), network_subject(&blind, &name, None));
        let other = subject(&blind, b"other");
        assert_ne!(
            at("192.0.2.1"),
            network_subject(&blind, &other, Some("192.0.2.1".parse().unwrap()))
        );
        assert_ne!(at("192.0.2.1"), name);
    }

    #[tokio::test]
    async fn a_stranger_backing_off_one_network_never_keeps_the_owner_out() {
        stranger_and_owner(&throttle_db().await).await;
    }

    /// The same on PostgreSQL, where a first attempt counts both subjects
    /// in one statement (passes trivially without `CUSTOS_TEST_DATABASE_URL`).
    #[tokio::test]
    async fn a_stranger_backing_off_one_network_never_keeps_the_owner_out_on_postgres() {
        crate::db::with_test_postgres(stranger_and_owner).await;
    }

    async fn stranger_and_owner(db: &DatabaseConnection) {
        let blind = BlindIndex::new([7; 32]);
        let name = subject(&blind, b"owner");
        let attacker = network_subject(&blind, &name, Some("198.51.100.7".parse().unwrap()));
        let owner = network_subject(&blind, &name, Some("203.0.113.20".parse().unwrap()));
        // A guess timed to every wait, for two hours.
        let mut now = t0();
        let mut refused = 0;
        while now < t0() + WINDOW * 2 {
            match begin_sign_in(db, &name, &attacker, now).await.unwrap() {
                Admission::Allowed => {}
                Admission::Refused { retry_after } => {
                    refused += 1;
                    now += retry_after;
                    continue;
                }
            }
            // The owner, from home, is never refused meanwhile.
            assert_eq!(
                begin_sign_in(db, &name, &owner, now).await.unwrap(),
                Admission::Allowed,
                "at {now}"
            );
            // ... and signs in (a correct password clears the owner's counts
            // but not the stranger's network).
            clear(db, &[name.clone(), owner.clone()]).await.unwrap();
            now += TimeDelta::milliseconds(1);
        }
        assert!(refused > 10, "the stranger's network was backed off");
        // Without the owner's sign-ins, the stranger alone never meets the
        // per-name ceiling: their network backs off first.
        let lone = subject(&blind, b"lone");
        let stranger = network_subject(&blind, &lone, Some("198.51.100.7".parse().unwrap()));
        let mut now = t0();
        while now < t0() + WINDOW {
            if let Admission::Refused { retry_after } =
                begin_sign_in(db, &lone, &stranger, now).await.unwrap()
            {
                now += retry_after;
            }
        }
        let counted = stored(db, &lone).await.unwrap().failures;
        assert!(counted < PER_NAME.free, "{counted}");
    }

    #[tokio::test]
    async fn a_guesser_spread_over_many_networks_meets_the_per_name_ceiling() {
        let db = throttle_db().await;
        let blind = BlindIndex::new([7; 32]);
        let name = subject(&blind, b"target");
        let now = t0();
        let from =
            |i: usize| network_subject(&blind, &name, Some(format!("10.0.{i}.1").parse().unwrap()));
        // Each network stays within its free attempts.
        for attempt in 0..PER_NAME.free {
            let network = from(usize::try_from(attempt).unwrap() / 4);
            assert_eq!(
                begin_sign_in(&db, &name, &network, now).await.unwrap(),
                Admission::Allowed
            );
        }
        // The name now backs off, for every network, fresh ones included.
        assert_eq!(
            begin_sign_in(&db, &name, &from(200), now).await.unwrap(),
            Admission::Refused {
                retry_after: TimeDelta::seconds(1)
            }
        );
        // The refused network was counted once; the name not again.
        assert_eq!(stored(&db, &from(200)).await.unwrap().failures, 1);
        assert_eq!(stored(&db, &name).await.unwrap().failures, PER_NAME.free);
    }

    #[tokio::test]
    async fn a_row_that_vanishes_before_its_lock_is_counted_afresh() {
        let db = throttle_db().await;
        let subject = b"subject".to_vec();
        let now = t0();
        // A count is there, so the first insert finds it.
        assert_eq!(
            begin_attempt(&db, &subject, PER_NETWORK, now)
                .await
                .unwrap(),
            Admission::Allowed
        );
        let mut steps = 0;
        let admission = place(|| {
            steps += 1;
            let (db, subject) = (&db, &subject);
            let first_step = steps == 1;
            async move {
                if count_first(db, subject, PER_NETWORK, now).await? {
                    return Ok(Some(Admission::Allowed));
                }
                assert!(first_step, "the row was there only for the first step");
                // A correct password clears it between insert and lock.
                clear(db, std::slice::from_ref(subject)).await?;
                count_under_lock(db, subject, PER_NETWORK, now).await
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
        assert_eq!(
            count_under_lock(&db, b"nobody", PER_NETWORK, t0())
                .await
                .unwrap(),
            None
        );
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
            begin_attempt(&db, &subject, PER_NETWORK, now)
                .await
                .unwrap(),
            Admission::Allowed
        );
        let first = stored().await;
        assert_eq!(
            (first.failures, first.window_started_at, first.locked_until),
            (1, now, None)
        );
        for _ in 1..PER_NETWORK.free {
            assert_eq!(
                begin_attempt(&db, &subject, PER_NETWORK, now)
                    .await
                    .unwrap(),
                Admission::Allowed
            );
        }
        let fifth = stored().await;
        assert_eq!(fifth.failures, PER_NETWORK.free);
        assert_eq!(fifth.locked_until, Some(now + TimeDelta::seconds(1)));
        assert_eq!(
            begin_attempt(&db, &subject, PER_NETWORK, now)
                .await
                .unwrap(),
            Admission::Refused {
                retry_after: TimeDelta::seconds(1)
            }
        );
        assert_eq!(stored().await.failures, PER_NETWORK.free);
        // A correct password clears the count: the next attempt is a first one.
        clear(&db, std::slice::from_ref(&subject)).await.unwrap();
        assert_eq!(
            begin_attempt(&db, &subject, PER_NETWORK, now)
                .await
                .unwrap(),
            Admission::Allowed
        );
        assert_eq!(stored().await.failures, 1);
    }

    /// Which first attempts one statement counted, on PostgreSQL: both when
    /// neither subject has a count, the network's alone when the name has
    /// one, and nothing at all (not even the name's) when the network has
    /// one. SQLite counts nothing here and leaves it to `begin_attempt`.
    #[tokio::test]
    async fn both_first_attempts_are_one_statement_on_postgres_and_keep_their_order() {
        let sqlite = throttle_db().await;
        let (name, network) = (b"name".to_vec(), b"network".to_vec());
        let now = t0();
        assert_eq!(
            first_of_both(&sqlite, &name, &network, now).await.unwrap(),
            Firsts::Neither
        );
        assert!(stored(&sqlite, &network).await.is_none());
        crate::db::with_test_postgres(async |db| {
            // What one call decides, and the counts it leaves (network, name).
            let step = || async {
                let firsts = first_of_both(db, &name, &network, now).await.unwrap();
                let failures =
                    |subject| async move { stored(db, subject).await.map(|r| r.failures) };
                (firsts, failures(&network).await, failures(&name).await)
            };
            assert_eq!(step().await, (Firsts::Both, Some(1), Some(1)));
            assert_eq!(step().await, (Firsts::Neither, Some(1), Some(1)));
            clear(db, std::slice::from_ref(&network)).await.unwrap();
            assert_eq!(step().await, (Firsts::Network, Some(1), Some(1)));
            // The whole sign-in then counts the name under its lock.
            clear(db, std::slice::from_ref(&network)).await.unwrap();
            assert_eq!(
                begin_sign_in(db, &name, &network, now).await.unwrap(),
                Admission::Allowed
            );
            assert_eq!(stored(db, &network).await.unwrap().failures, 1);
            assert_eq!(stored(db, &name).await.unwrap().failures, 2);
        })
        .await;
    }
}
