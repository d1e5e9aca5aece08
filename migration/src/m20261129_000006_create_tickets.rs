//! The support desk: tickets and the messages of their threads.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `tickets` and `ticket_messages`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tickets::Table)
                    .if_not_exists()
                    .col(pk_uuid(Tickets::Id))
                    // The unique index is what makes a reference collision
                    // fail the insert, which the service retries.
                    .col(string_len_uniq(Tickets::Reference, 16))
                    .col(uuid_null(Tickets::AccountId))
                    .col(string_len(Tickets::Category, 32))
                    .col(string_len(Tickets::Status, 16))
                    .col(blob(Tickets::SubjectCt))
                    .col(blob_null(Tickets::ContactUsernameCt))
                    .col(blob_null(Tickets::ContactEmailCt))
                    .col(blob_null(Tickets::ContactEmailBidx))
                    .col(string_len(Tickets::Language, 16))
                    .col(timestamp_with_time_zone(Tickets::CreatedAt))
                    .col(timestamp_with_time_zone(Tickets::UpdatedAt))
                    // An account's tickets go with the account row.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tickets_account")
                            .from(Tickets::Table, Tickets::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Erasure and `myTickets` find tickets by account; erasure finds a
        // guest's tickets by the blind index of the address.
        manager
            .create_index(
                Index::create()
                    .name("idx_tickets_account")
                    .table(Tickets::Table)
                    .col(Tickets::AccountId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tickets_contact_email_bidx")
                    .table(Tickets::Table)
                    .col(Tickets::ContactEmailBidx)
                    .to_owned(),
            )
            .await?;
        // The support queue filters by status and reads oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_tickets_status_created")
                    .table(Tickets::Table)
                    .col(Tickets::Status)
                    .col(Tickets::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketMessages::Table)
                    .if_not_exists()
                    .col(pk_uuid(TicketMessages::Id))
                    .col(uuid(TicketMessages::TicketId))
                    .col(integer(TicketMessages::Seq))
                    .col(string_len(TicketMessages::Author, 16))
                    // No foreign key: a staff account may be erased while
                    // the thread it answered stays with the requester.
                    .col(uuid_null(TicketMessages::StaffId))
                    .col(blob(TicketMessages::BodyCt))
                    .col(timestamp_with_time_zone(TicketMessages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ticket_messages_ticket")
                            .from(TicketMessages::Table, TicketMessages::TicketId)
                            .to(Tickets::Table, Tickets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ticket_messages_ticket_seq")
                    .table(TicketMessages::Table)
                    .col(TicketMessages::TicketId)
                    .col(TicketMessages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TicketMessages::Table.into_iden(),
            Tickets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Id,
    Reference,
    AccountId,
    Category,
    Status,
    SubjectCt,
    ContactUsernameCt,
    ContactEmailCt,
    ContactEmailBidx,
    Language,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TicketMessages {
    Table,
    Id,
    TicketId,
    Seq,
    Author,
    StaffId,
    BodyCt,
    CreatedAt,
}
