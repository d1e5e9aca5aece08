//! Staff free text of an audit entry, outside the hash chain: the entry's
//! detail names the note and chains a salted hash of it; the text is here,
//! encrypted, and the purge erases it with the person it concerns.

use sea_orm::entity::prelude::*;

/// One row of `audit_notes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_notes")]
pub struct Model {
    /// Random id, named in the entry's detail (`note=<id>`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account the entry concerns, if any (erased with it).
    pub subject_id: Option<Uuid>,
    /// For a guest's ticket: the ticket, so erasing the account with the
    /// guest's address (which erases the ticket) erases the note.
    pub ticket_id: Option<Uuid>,
    /// Random salt of the chained hash, so the hash left after erasure
    /// says nothing about the text.
    pub salt: Vec<u8>,
    /// The encrypted text.
    pub note_ct: Vec<u8>,
    /// When it was written.
    pub created_at: DateTimeUtc,
}

/// No relations: notes outlive nothing and are erased by id.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
