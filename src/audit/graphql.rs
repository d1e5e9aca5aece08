//! The audit trail as staff read it.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    accounts::Role,
    graphql::{errors::ApiResult, parse_id, require_role, state},
};

/// Largest page of `auditLog`.
pub const MAX_PAGE: i32 = 200;

/// One entry of the audit trail.
#[derive(SimpleObject)]
pub struct AuditEntry {
    id: ID,
    at: DateTime<Utc>,
    actor_id: Option<ID>,
    action: String,
    subject_id: Option<ID>,
    detail: String,
}

impl From<entity::audit_entry::Model> for AuditEntry {
    fn from(entry: entity::audit_entry::Model) -> Self {
        Self {
            id: ID(entry.id.to_string()),
            at: entry.at,
            actor_id: entry.actor_id.map(|a| ID(a.to_string())),
            action: entry.action,
            subject_id: entry.subject_id.map(|s| ID(s.to_string())),
            detail: entry.detail,
        }
    }
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// ADMIN. The trail oldest first; `first` (1–200, default 50) entries
    /// after the entry `after`.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> ApiResult<Vec<AuditEntry>> {
        require_role(ctx, &[Role::Admin])?;
        let first = first.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(crate::graphql::errors::ApiError::bad_input(
                "first",
                crate::graphql::messages::Message::new(crate::graphql::messages::Key::PageSize)
                    .arg("min", 1)
                    .arg("max", MAX_PAGE),
            ));
        }
        let after = match after {
            Some(id) => Some(parse_id(&id, "after")?),
            None => None,
        };
        let entries =
            crate::audit::service::page(state(ctx)?.db(), first.unsigned_abs().into(), after)
                .await?;
        Ok(entries.into_iter().map(AuditEntry::from).collect())
    }
}
