//! The `ConsentState` GraphQL object: one purpose's state for a person,
//! shown on `Account.consents` and answered by `recordConsent`. Apart from
//! the consent resolvers so that the account's type can show it.

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use super::service;

/// The current state of one purpose for the caller.
#[derive(SimpleObject)]
pub struct ConsentState {
    purpose: String,
    /// False while undecided.
    granted: bool,
    /// The version the newest decision was made against; the current
    /// version while undecided.
    policy_version: String,
    /// When this state began: the newest decision, or the current
    /// version's publication while the person has not decided (see
    /// `decidedAt`).
    updated_at: DateTime<Utc>,
    /// When the newest decision was made; null while the person has not
    /// decided about this purpose (as the current policy defines it).
    decided_at: Option<DateTime<Utc>>,
}

impl From<service::ConsentState> for ConsentState {
    fn from(state: service::ConsentState) -> Self {
        Self {
            purpose: state.purpose,
            granted: state.granted,
            policy_version: state.policy_version,
            updated_at: state.updated_at,
            decided_at: state.decided_at,
        }
    }
}
