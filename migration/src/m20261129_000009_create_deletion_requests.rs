//! Deletion requests and erasure records.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `deletion_requests` and `erasure_records`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeletionRequests::Table)
                    .if_not_exists()
                    .col(pk_uuid(DeletionRequests::Id))
                    .col(uuid(DeletionRequests::AccountId))
                    .col(string_len(DeletionRequests::Status, 32))
                    .col(string_len(DeletionRequests::Reason, 32))
                    .col(blob_null(DeletionRequests::ConfirmTokenHash))
                    .col(timestamp_with_time_zone_null(
                        DeletionRequests::ConfirmExpiresAt,
                    ))
                    .col(blob_null(DeletionRequests::CancelTokenHash))
                    .col(timestamp_with_time_zone(DeletionRequests::RequestedAt))
                    .col(timestamp_with_time_zone_null(DeletionRequests::ConfirmedAt))
                    .col(timestamp_with_time_zone_null(DeletionRequests::PurgeAfter))
                    .col(timestamp_with_time_zone_null(
                        DeletionRequests::ClaimedUntil,
                    ))
                    .col(timestamp_with_time_zone_null(DeletionRequests::CancelledAt))
                    .col(timestamp_with_time_zone_null(DeletionRequests::CompletedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_deletion_requests_account", DeletionRequests::AccountId),
            (
                "idx_deletion_requests_confirm",
                DeletionRequests::ConfirmTokenHash,
            ),
            (
                "idx_deletion_requests_cancel",
                DeletionRequests::CancelTokenHash,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(DeletionRequests::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        // The purge scans scheduled requests by due time.
        manager
            .create_index(
                Index::create()
                    .name("idx_deletion_requests_due")
                    .table(DeletionRequests::Table)
                    .col(DeletionRequests::Status)
                    .col(DeletionRequests::PurgeAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ErasureRecords::Table)
                    .if_not_exists()
                    .col(pk_uuid(ErasureRecords::Id))
                    .col(uuid_uniq(ErasureRecords::RequestId))
                    .col(string_len(ErasureRecords::Reason, 32))
                    .col(timestamp_with_time_zone(ErasureRecords::RequestedAt))
                    .col(timestamp_with_time_zone_null(ErasureRecords::ConfirmedAt))
                    .col(timestamp_with_time_zone_null(ErasureRecords::Deadline))
                    .col(timestamp_with_time_zone(ErasureRecords::CompletedAt))
                    .col(text(ErasureRecords::TableCounts))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ErasureRecords::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeletionRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeletionRequests {
    Table,
    Id,
    AccountId,
    Status,
    Reason,
    ConfirmTokenHash,
    ConfirmExpiresAt,
    CancelTokenHash,
    RequestedAt,
    ConfirmedAt,
    PurgeAfter,
    ClaimedUntil,
    CancelledAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum ErasureRecords {
    Table,
    Id,
    RequestId,
    Reason,
    RequestedAt,
    ConfirmedAt,
    Deadline,
    CompletedAt,
    TableCounts,
}
