//! Mail waiting to be sent, written in the same transaction as the change
//! that caused it. Recipient, subject and bodies are encrypted: a body can
//! hold a single-use token or a username.

use sea_orm::entity::prelude::*;

/// One row of `outbox`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// Random id; also the Message-ID's local part.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account the mail concerns, if any (for export and erasure).
    pub account_id: Option<Uuid>,
    /// What kind of mail this is, e.g. `verify_email` (never personal).
    pub kind: String,
    /// Encrypted recipient address.
    pub recipient_ct: Vec<u8>,
    /// Blind index of the recipient, so erasure finds mail to an address.
    pub recipient_bidx: Vec<u8>,
    /// Encrypted subject line.
    pub subject_ct: Vec<u8>,
    /// Encrypted plain-text body, or the encrypted draft (see `body_format`).
    pub body_text_ct: Vec<u8>,
    /// Encrypted HTML body, when the template has one (never with a draft).
    pub body_html_ct: Option<Vec<u8>>,
    /// `rendered`: the bodies are stored as sent; `draft`: `body_text_ct`
    /// holds the mail's draft (language and blocks, JSON), rendered again
    /// at send time.
    pub body_format: String,
    /// `PENDING`, `SENT` or `FAILED` (given up).
    pub status: String,
    /// Send attempts so far.
    pub attempts: i32,
    /// Not to be tried before this instant (back-off).
    pub next_attempt_at: DateTimeUtc,
    /// Set while an instance is sending it; another may take it once past.
    pub claimed_until: Option<DateTimeUtc>,
    /// The class of the last failure, never personal data.
    pub last_error: Option<String>,
    /// When the row was written.
    pub created_at: DateTimeUtc,
    /// When the relay accepted it.
    pub sent_at: Option<DateTimeUtc>,
}

/// The outbox has no declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
