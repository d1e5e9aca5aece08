//! One message in a ticket's thread, from the requester or from staff. The
//! body is encrypted.

use sea_orm::entity::prelude::*;

/// One row of `ticket_messages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_messages")]
pub struct Model {
    /// Random id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The ticket it belongs to.
    pub ticket_id: Uuid,
    /// Position in the thread, from 1 (unique per ticket).
    pub seq: i32,
    /// `REQUESTER` or `STAFF`.
    pub author: String,
    /// For staff messages: who answered.
    pub staff_id: Option<Uuid>,
    /// Encrypted text.
    pub body_ct: Vec<u8>,
    /// When it was written.
    pub created_at: DateTimeUtc,
}

/// Messages belong to tickets.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The ticket.
    #[sea_orm(
        belongs_to = "super::ticket::Entity",
        from = "Column::TicketId",
        to = "super::ticket::Column::Id",
        on_delete = "Cascade"
    )]
    Ticket,
}

impl Related<super::ticket::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Ticket.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
