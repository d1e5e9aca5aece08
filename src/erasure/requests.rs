//! The deletion requests of an account as stored: their states, and the
//! open or newest one. Read by the sign-in (to say when an erasure runs)
//! as well as by the erasure use cases.

use entity::deletion_request;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

/// Request states.
pub mod request_status {
    /// Waiting for the link in the mail.
    pub const AWAITING_CONFIRMATION: &str = "AWAITING_CONFIRMATION";
    /// Confirmed: processing stopped, purge due at `purge_after`.
    pub const SCHEDULED: &str = "SCHEDULED";
    /// Cancelled before the purge.
    pub const CANCELLED: &str = "CANCELLED";
    /// Erased.
    pub const COMPLETED: &str = "COMPLETED";
}

/// The open (awaiting or scheduled) request of an account, if any.
pub async fn open_request<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Option<deletion_request::Model>, sea_orm::DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .filter(deletion_request::Column::Status.is_in([
            request_status::AWAITING_CONFIRMATION,
            request_status::SCHEDULED,
        ]))
        .order_by_desc(deletion_request::Column::RequestedAt)
        .one(conn)
        .await
}

/// The newest request of an account, whatever its state.
pub async fn latest_request<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Option<deletion_request::Model>, sea_orm::DbErr> {
    deletion_request::Entity::find()
        .filter(deletion_request::Column::AccountId.eq(account_id))
        .order_by_desc(deletion_request::Column::RequestedAt)
        .one(conn)
        .await
}
