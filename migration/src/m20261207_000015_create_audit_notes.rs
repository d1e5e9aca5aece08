//! Staff free text of audit entries (reveal reasons, processing
//! justifications), kept out of the hash chain: the entry chains a salted
//! hash of the note and its id, the note itself is stored here encrypted
//! (under the subject account's data key where there is one) so the purge
//! can erase it without breaking the chain.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `audit_notes`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditNotes::Table)
                    .if_not_exists()
                    .col(pk_uuid(AuditNotes::Id))
                    .col(uuid_null(AuditNotes::SubjectId))
                    .col(uuid_null(AuditNotes::TicketId))
                    .col(blob(AuditNotes::Salt))
                    .col(blob(AuditNotes::NoteCt))
                    .col(timestamp_with_time_zone(AuditNotes::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_notes_subject")
                    .table(AuditNotes::Table)
                    .col(AuditNotes::SubjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_notes_ticket")
                    .table(AuditNotes::Table)
                    .col(AuditNotes::TicketId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditNotes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditNotes {
    Table,
    Id,
    SubjectId,
    TicketId,
    Salt,
    NoteCt,
    CreatedAt,
}
