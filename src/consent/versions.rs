//! The policy store: published versions in the database, newest current.
//! Every instance reads the same table, so a publication is seen by all.

use entity::policy_version;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::policy::{MajorChangeKind, PolicyDocument};

/// A published version with its place in the order.
#[derive(Debug, Clone)]
pub struct PublishedPolicy {
    /// Publication order.
    pub seq: i64,
    /// The document.
    pub document: PolicyDocument,
}

fn decode(row: policy_version::Model) -> Result<PublishedPolicy, DbErr> {
    let mut document: PolicyDocument = serde_json::from_str(&row.document)
        .map_err(|e| DbErr::Custom(format!("stored policy {} is unreadable: {e}", row.seq)))?;
    document.change_kinds = MajorChangeKind::split(&row.change_kinds);
    Ok(PublishedPolicy {
        seq: row.seq,
        document,
    })
}

/// The current policy: the newest published version.
pub async fn current<C: ConnectionTrait>(conn: &C) -> Result<PublishedPolicy, DbErr> {
    let row = policy_version::Entity::find()
        .order_by_desc(policy_version::Column::Seq)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::Custom("no policy has been published".into()))?;
    decode(row)
}

/// Every published version, newest first.
pub async fn all<C: ConnectionTrait>(conn: &C) -> Result<Vec<PublishedPolicy>, DbErr> {
    policy_version::Entity::find()
        .order_by_desc(policy_version::Column::Seq)
        .all(conn)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// The publication order of `version`, if it was published.
pub async fn seq_of<C: ConnectionTrait>(conn: &C, version: &str) -> Result<Option<i64>, DbErr> {
    Ok(policy_version::Entity::find()
        .filter(policy_version::Column::Version.eq(version))
        .one(conn)
        .await?
        .map(|row| row.seq))
}

/// The publication order of the newest major version.
pub async fn latest_major_seq<C: ConnectionTrait>(conn: &C) -> Result<Option<i64>, DbErr> {
    Ok(policy_version::Entity::find()
        .filter(policy_version::Column::Major.eq(true))
        .order_by_desc(policy_version::Column::Seq)
        .limit(1)
        .one(conn)
        .await?
        .map(|row| row.seq))
}

/// Whether someone who accepted `accepted` must accept again: a major
/// version newer than the one they accepted has been published.
pub async fn needs_acceptance<C: ConnectionTrait>(
    conn: &C,
    accepted: Option<&str>,
) -> Result<bool, DbErr> {
    let Some(latest_major) = latest_major_seq(conn).await? else {
        return Ok(false);
    };
    let accepted_seq = match accepted {
        Some(version) => seq_of(conn, version).await?,
        None => None,
    };
    Ok(accepted_seq.is_none_or(|seq| seq < latest_major))
}

/// Appends a version; the caller checked it. Returns it as published.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    document: &PolicyDocument,
    published_by: Option<Uuid>,
) -> Result<PublishedPolicy, DbErr> {
    let last_seq = policy_version::Entity::find()
        .order_by_desc(policy_version::Column::Seq)
        .one(conn)
        .await?
        .map_or(0, |row| row.seq);
    let json = serde_json::to_string(document)
        .map_err(|e| DbErr::Custom(format!("policy cannot be stored: {e}")))?;
    let row = policy_version::ActiveModel {
        seq: Set(last_seq + 1),
        version: Set(document.version.clone()),
        published_at: Set(document.published_at),
        major: Set(document.major),
        document: Set(json),
        published_by: Set(published_by),
        change_kinds: Set(MajorChangeKind::join(&document.change_kinds)),
    }
    .insert(conn)
    .await?;
    decode(row)
}

/// Publishes the versions shipped with the crate that are not published
/// yet, oldest first, while the installation serves only shipped versions
/// (first start, or an upgrade that ships a new version). Once an admin has
/// published a version of their own, the operator's policy is theirs to
/// change and nothing shipped is added. Two instances starting at once may
/// race: the unique version keeps one row, and the loser's error is ignored.
pub async fn ensure_shipped<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    let published = policy_version::Entity::find().all(conn).await?;
    if published.iter().any(|row| row.published_by.is_some()) {
        return Ok(());
    }
    let shipped = PolicyDocument::shipped_versions().map_err(|e| DbErr::Custom(e.to_string()))?;
    for document in shipped {
        if published.iter().any(|row| row.version == document.version) {
            continue;
        }
        match insert(conn, &document, None).await {
            Ok(_) => {}
            Err(err) if crate::db::is_unique_violation(&err) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
