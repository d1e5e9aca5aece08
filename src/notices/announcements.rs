//! Public announcements: security incidents and policy updates. They are
//! public by design (anonymous callers read them) and hold no personal
//! data.

use chrono::{DateTime, Utc};
use entity::announcement;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryOrder,
};
use uuid::Uuid;

crate::db::stored_enum! {
    /// What an announcement is about (`announcements.kind`).
    AnnouncementKind {
        /// A security incident (see `reportSecurityIncident`).
        SecurityIncident => "SECURITY_INCIDENT",
        /// A change of the privacy policy.
        PolicyUpdate => "POLICY_UPDATE",
    }
}

/// Publishes a public announcement on `conn` (pass the open transaction of
/// the change it announces, so both commit or neither does).
pub async fn publish_announcement<C: ConnectionTrait>(
    conn: &C,
    kind: AnnouncementKind,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<announcement::Model, DbErr> {
    announcement::ActiveModel {
        id: Set(Uuid::new_v4()),
        kind: Set(kind.as_str().to_owned()),
        title: Set(title.to_owned()),
        body: Set(body.to_owned()),
        published_at: Set(now),
    }
    .insert(conn)
    .await
}

/// Every announcement, newest first.
pub async fn announcements<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<announcement::Model>, DbErr> {
    announcement::Entity::find()
        .order_by_desc(announcement::Column::PublishedAt)
        .order_by_desc(announcement::Column::Id)
        .all(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            AnnouncementKind::SecurityIncident,
            AnnouncementKind::PolicyUpdate,
        ] {
            assert_eq!(AnnouncementKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AnnouncementKind::parse("OTHER"), None);
    }
}
