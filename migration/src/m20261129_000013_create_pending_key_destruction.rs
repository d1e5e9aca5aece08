//! Account keys the purge has still to destroy in a separate key store.
//! The purge writes the erased account's id here in its own transaction
//! and deletes the key from the store after the commit; a key the store
//! did not delete (it was down, the process died) is destroyed by the next
//! run. Random ids only.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PendingKeyDestruction::Table)
                    .if_not_exists()
                    .col(pk_uuid(PendingKeyDestruction::Id))
                    .col(timestamp_with_time_zone(PendingKeyDestruction::QueuedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingKeyDestruction::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PendingKeyDestruction {
    Table,
    Id,
    QueuedAt,
}
