//! Storage of incident fan-outs (`incident_fanouts`): opening one, taking
//! its lease, moving its cursor a page at a time, and closing it.
//!
//! Every write that moves a fan-out forward is guarded: it names the lease
//! owner and the cursor it started from, and changes nothing when either
//! moved. A driver that lost its lease, or raced another one, finds zero
//! rows updated and stops, so each account is mailed once.

use chrono::{DateTime, Utc};
use entity::incident_fanout::{self, Column, Entity};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait as _},
};
use uuid::Uuid;

use super::content::IncidentContent;

/// How long a driver holds a fan-out without writing a page; after that
/// the job runner lets another driver resume it. A page takes well under a
/// second, so only a driver that died or hangs loses its lease.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(60);

crate::db::stored_enum! {
    /// Where a fan-out stands (`incident_fanouts.status`).
    FanoutStatus {
        /// Accounts remain to be handled.
        Running => "RUNNING",
        /// Every affected account was handled.
        Done => "DONE",
    }
}

crate::db::stored_enum! {
    /// Who a fan-out mails, as stored (`incident_fanouts.audience`); the
    /// stored name is also the API's and the audit entry's.
    StoredAudience {
        /// Every ACTIVE account.
        AllAccounts => "ALL_ACCOUNTS",
        /// The ACTIVE accounts among `listed_ids`.
        ListedAccounts => "LISTED_ACCOUNTS",
    }
}

/// A fan-out about to be opened.
pub struct NewFanout<'a> {
    /// Its id.
    pub id: Uuid,
    /// The reporting ADMIN.
    pub actor_id: Uuid,
    /// Who it mails.
    pub audience: StoredAudience,
    /// With `ListedAccounts`: the ids, sorted, without repeats.
    pub listed_ids: Option<&'a [Uuid]>,
    /// The notice, checked.
    pub content: &'a IncidentContent,
    /// Whether a public announcement was asked for.
    pub publish_announcement: bool,
    /// ACTIVE accounts concerned.
    pub affected: u64,
    /// The announcement already published, if one was.
    pub announcement_id: Option<Uuid>,
    /// The driver that starts it, holding the lease from the start.
    pub owner: Uuid,
}

/// A stored count (never negative) as a number of accounts.
pub fn count(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Writes a running fan-out, leased to `new.owner` (inside the caller's
/// transaction, with the announcement and the audit entry of the report).
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    new: NewFanout<'_>,
    now: DateTime<Utc>,
) -> Result<incident_fanout::Model, DbErr> {
    let listed_ids = new
        .listed_ids
        .map(|ids| serde_json::Value::from(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()));
    incident_fanout::ActiveModel {
        id: Set(new.id),
        actor_id: Set(new.actor_id),
        audience: Set(new.audience.as_str().to_owned()),
        listed_ids: Set(listed_ids),
        title: Set(new.content.title.clone()),
        what_happened: Set(new.content.what_happened.clone()),
        possible_impact: Set(new.content.possible_impact.clone()),
        measures_taken: Set(new.content.measures_taken.clone()),
        advice_to_users: Set(new.content.advice_to_users.clone()),
        remedies: Set(new.content.remedies.clone()),
        publish_announcement: Set(new.publish_announcement),
        affected: Set(stored(new.affected)),
        notified: Set(0),
        failed: Set(0),
        last_account_id: Set(None),
        status: Set(FanoutStatus::Running.as_str().to_owned()),
        announcement_id: Set(new.announcement_id),
        lease_owner: Set(Some(new.owner)),
        lease_until: Set(Some(now + LEASE)),
        created_at: Set(now),
        finished_at: Set(None),
    }
    .insert(conn)
    .await
}

/// The fan-out with this id.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<incident_fanout::Model>, DbErr> {
    Entity::find_by_id(id).one(conn).await
}

/// The listed ids stored with a fan-out, sorted; `None` when the stored
/// value is not a list of ids (the fan-out cannot go on then).
pub fn listed_ids(row: &incident_fanout::Model) -> Option<Vec<Uuid>> {
    let list = row.listed_ids.as_ref()?.as_array()?;
    let mut ids = list
        .iter()
        .map(|id| id.as_str().and_then(|id| Uuid::parse_str(id).ok()))
        .collect::<Option<Vec<Uuid>>>()?;
    ids.sort_unstable();
    Some(ids)
}

/// Running fan-outs whose lease ran out by `now` (their driver died or
/// stopped), oldest first, at most `limit`.
pub async fn expired<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(FanoutStatus::Running))
        .filter(lease_free(now))
        .order_by_asc(Column::CreatedAt)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::LeaseUntil.is_null())
        .add(Column::LeaseUntil.lt(now))
}

/// Gives `owner` the lease of a running fan-out whose lease ran out;
/// whether it did (another driver may have taken it first).
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = Entity::update_many()
        .col_expr(Column::LeaseOwner, Expr::value(Some(owner)))
        .col_expr(Column::LeaseUntil, Expr::value(Some(now + LEASE)))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(FanoutStatus::Running))
        .filter(lease_free(now))
        .exec(conn)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// The guard of every forward step: the fan-out is running, `owner` holds
/// its lease, and its cursor is still `from`.
fn held_at(id: Uuid, owner: Uuid, from: Option<Uuid>) -> Condition {
    let cursor = match from {
        Some(from) => Column::LastAccountId.eq(from),
        None => Column::LastAccountId.is_null(),
    };
    Condition::all()
        .add(Column::Id.eq(id))
        .add(Column::Status.eq(FanoutStatus::Running))
        .add(Column::LeaseOwner.eq(owner))
        .add(cursor)
}

/// One page handled: where the cursor goes and what the page counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStep {
    /// The cursor the page started after.
    pub from: Option<Uuid>,
    /// The last account id the page covered.
    pub to: Option<Uuid>,
    /// Notices the page queued.
    pub notified: u64,
    /// Notices the page could not seal.
    pub failed: u64,
}

/// Moves the cursor of a fan-out `owner` drives from `step.from` to
/// `step.to`, adds the page's counts and renews the lease, inside the
/// caller's transaction (the one that queues the page's mail). Whether it
/// did: `false` when the lease or the cursor moved, so the page must not
/// be queued.
pub async fn advance<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    owner: Uuid,
    step: PageStep,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let advanced = Entity::update_many()
        .col_expr(Column::LastAccountId, Expr::value(step.to))
        .col_expr(
            Column::Notified,
            Expr::col(Column::Notified).add(stored(step.notified)),
        )
        .col_expr(
            Column::Failed,
            Expr::col(Column::Failed).add(stored(step.failed)),
        )
        .col_expr(Column::LeaseUntil, Expr::value(Some(now + LEASE)))
        .filter(held_at(id, owner, step.from))
        .exec(conn)
        .await?;
    Ok(advanced.rows_affected == 1)
}

/// Marks done a fan-out `owner` drives and whose cursor is still `at`,
/// with its announcement, releasing the lease and forgetting the listed
/// ids (the queued mail is the record of who was told). Whether it did.
pub async fn finish<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    owner: Uuid,
    at: Option<Uuid>,
    announcement_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let finished = Entity::update_many()
        .col_expr(Column::Status, Expr::value(FanoutStatus::Done.as_str()))
        .col_expr(Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(Column::AnnouncementId, Expr::value(announcement_id))
        .col_expr(Column::LeaseOwner, Expr::value(None::<Uuid>))
        .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
        .col_expr(Column::ListedIds, Expr::value(None::<serde_json::Value>))
        .filter(held_at(id, owner, at))
        .exec(conn)
        .await?;
    Ok(finished.rows_affected == 1)
}
