//! The audit trail as staff read it.

use async_graphql::{Context, ID, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use crate::{
    accounts::Role,
    graphql::{
        errors::ApiResult,
        paging::{self, AUDIT_LOG, Cursors, Seq},
        require_role, state,
    },
};

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
    /// ADMIN. The trail oldest first (in chain order); `first` (0–200,
    /// default 50) entries after the cursor `after`.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, AuditEntry>> {
        require_role(ctx, &[Role::Admin])?;
        let first = paging::page_size(first)?;
        let state = state(ctx)?;
        let cursors = Cursors::shared(state.cipher());
        let position = cursors.open::<Seq<AUDIT_LOG>>(after.as_deref())?;
        let entries =
            crate::audit::service::page(state.db(), first + 1, position.map(|seq| seq.0)).await?;
        let (entries, more) = paging::split_page(entries, first);
        let items = entries
            .into_iter()
            .map(|entry| (Seq::<AUDIT_LOG>(entry.seq), AuditEntry::from(entry)))
            .collect();
        cursors.connection(items, more, position.is_some())
    }
}
