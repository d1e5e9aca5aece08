//! Looking accounts up by name: whether a username can be taken, and staff
//! finding the account behind a username or address.
//!
//! Rules:
//! - A username check answers exactly what sign-up would for that name:
//!   the same shape and policy rules ([`service::check_username`]) and the
//!   same uniqueness over the normal form under every blind-index key. It
//!   says nothing about addresses.
//! - Staff find an account by its exact username (in normal form) or
//!   address, never by a part of either; each search is audit-logged as
//!   `account.find` before anything is returned, found or not, and a search
//!   that cannot be logged fails. Staff see the id, username, a masked
//!   address and the role: what they need to act on the account.

use super::{
    Role,
    email::Email,
    service::{self, AccountError},
    store,
    username::Username,
};
use crate::{
    audit::service::{self as audit, AuditRecord},
    state::AppState,
};

/// `audit_log.action` of a staff search for an account.
pub const FIND_ACTION: &str = "account.find";

/// `Ok` when sign-up would accept `raw` as a username now; else the error
/// sign-up would answer for it (shape, policy or taken).
pub async fn check_username_free(state: &AppState, raw: &str) -> Result<(), AccountError> {
    let username = service::check_username(state, raw, false)?;
    service::ensure_username_free(state, state.db(), &username).await
}

/// What staff see of an account they looked up.
pub struct StaffView {
    /// The account's id.
    pub id: uuid::Uuid,
    /// Its username as shown.
    pub username: String,
    /// Its address, masked (`z***@example.com`).
    pub email_masked: String,
    /// Its role.
    pub role: Role,
}

/// The account whose username or address is exactly `login`, for staff
/// member `staff_id` (callers check the role). `BAD_USER_INPUT`-shaped
/// [`AccountError::Email`] or [`AccountError::UsernameShape`] when `login`
/// is neither a well-formed address nor a well-formed username.
pub async fn find_for_staff(
    state: &AppState,
    staff_id: uuid::Uuid,
    login: &str,
) -> Result<Option<StaffView>, AccountError> {
    let login = login.trim();
    let (by, row) = if login.contains('@') {
        let lookup = store::email_lookup(state, &Email::parse(login)?);
        (
            "email",
            store::email_holder(state.db(), lookup, None).await?,
        )
    } else {
        let lookup = store::username_lookup(state, &Username::parse(login)?);
        (
            "username",
            store::username_holder(state.db(), lookup, None).await?,
        )
    };
    audit::append_alone(
        state.db(),
        AuditRecord {
            actor_id: Some(staff_id),
            action: FIND_ACTION,
            subject_id: row.as_ref().map(|row| row.id),
            detail: format!("by={by} found={}", row.is_some()),
        },
        state.clock().now(),
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let record = store::open(state, &row).await?;
    Ok(Some(StaffView {
        id: record.id,
        username: record.username,
        email_masked: crate::tickets::service::mask_email(&record.email),
        role: record.role,
    }))
}
