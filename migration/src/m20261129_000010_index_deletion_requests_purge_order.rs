//! The purge walks due requests in `(purge_after, id)` order with a cursor
//! (see `erasure::purge`), so its index must cover `id` too: on PostgreSQL,
//! requests it has just completed leave dead entries at the front of the
//! old `(status, purge_after)` index until vacuum, and every batch scanned
//! all of them again (100,000 purges took nine minutes instead of one).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_deletion_requests_due_order")
                    .table(DeletionRequests::Table)
                    .col(DeletionRequests::Status)
                    .col(DeletionRequests::PurgeAfter)
                    .col(DeletionRequests::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_deletion_requests_due")
                    .table(DeletionRequests::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
            .drop_index(
                Index::drop()
                    .name("idx_deletion_requests_due_order")
                    .table(DeletionRequests::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum DeletionRequests {
    Table,
    Id,
    Status,
    PurgeAfter,
}
