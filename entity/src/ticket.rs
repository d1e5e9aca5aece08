//! A support ticket: a complaint, consultation, appeal or data request.
//! Subject and contact details are encrypted; the contact address also has
//! a blind index so erasure can find a guest's tickets by address.

use sea_orm::entity::prelude::*;

/// One row of `tickets`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Short human reference such as `T-7K3Q9M` (unique).
    #[sea_orm(unique)]
    pub reference: String,
    /// The account that filed it; `None` for a guest.
    pub account_id: Option<Uuid>,
    /// `COMPLAINT`, `CONSULTATION`, `APPEAL`, `DATA_REQUEST` or `OTHER`.
    pub category: String,
    /// `OPEN`, `ANSWERED` or `CLOSED`.
    pub status: String,
    /// Encrypted subject line.
    pub subject_ct: Vec<u8>,
    /// Guests: the encrypted name they gave, if any.
    pub contact_username_ct: Option<Vec<u8>>,
    /// Guests: the encrypted address they gave, if any.
    pub contact_email_ct: Option<Vec<u8>>,
    /// Guests: blind index (`email` field) of the normalised address.
    pub contact_email_bidx: Option<Vec<u8>>,
    /// Language of mail to a guest (accounts use their own setting).
    pub language: String,
    /// When it was filed.
    pub created_at: DateTimeUtc,
    /// Last message or status change.
    pub updated_at: DateTimeUtc,
}

/// Tickets filed from an account belong to it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The filing account.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::AccountId",
        to = "super::account::Column::Id",
        on_delete = "Cascade"
    )]
    Account,
    /// The thread.
    #[sea_orm(has_many = "super::ticket_message::Entity")]
    Messages,
}

impl Related<super::account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::ticket_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Messages.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
