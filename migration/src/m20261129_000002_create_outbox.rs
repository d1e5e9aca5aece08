//! The mail outbox: mail is written here in the same transaction as the
//! change that causes it, and sent later by the outbox job.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `outbox`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(pk_uuid(Outbox::Id))
                    .col(uuid_null(Outbox::AccountId))
                    .col(string_len(Outbox::Kind, 64))
                    .col(blob(Outbox::RecipientCt))
                    .col(blob(Outbox::RecipientBidx))
                    .col(blob(Outbox::SubjectCt))
                    .col(blob(Outbox::BodyTextCt))
                    .col(blob_null(Outbox::BodyHtmlCt))
                    .col(string_len(Outbox::Status, 16))
                    .col(integer(Outbox::Attempts))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Outbox::ClaimedUntil))
                    .col(string_len_null(Outbox::LastError, 200))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .to_owned(),
            )
            .await?;
        // The sender scans pending mail by due time.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_status_next_attempt")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // Erasure and export find mail by account and by address.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_account")
                    .table(Outbox::Table)
                    .col(Outbox::AccountId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_recipient_bidx")
                    .table(Outbox::Table)
                    .col(Outbox::RecipientBidx)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    AccountId,
    Kind,
    RecipientCt,
    RecipientBidx,
    SubjectCt,
    BodyTextCt,
    BodyHtmlCt,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    LastError,
    CreatedAt,
    SentAt,
}
