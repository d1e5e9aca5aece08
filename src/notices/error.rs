//! What can go wrong with an incident report.

use super::content::ContentBlock;

/// What can go wrong with a notice.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// A content block is empty.
    #[error("the {0:?} block is empty")]
    MissingBlock(ContentBlock),
    /// Several blocks are empty: every one of them, in reading order.
    #[error("{} blocks are empty", .0.len())]
    Invalid(Vec<NoticeError>),
    /// LISTED_ACCOUNTS with no accounts.
    #[error("no accounts listed")]
    NoAccountsListed,
    /// A listed account does not exist.
    #[error("a listed account does not exist")]
    UnknownAccount,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(NoticeError);
