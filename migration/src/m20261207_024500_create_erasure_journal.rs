//! The erasure journal: which accounts the purge erased, and when. Kept in
//! a database apart from the main one (the separate key store, or the
//! database `CUSTOS_ERASURE_JOURNAL_URL` names), so that a restored backup
//! of the main database cannot forget an erasure made after it was taken.
//! Random ids and times only.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ErasureJournal::Table)
                    .if_not_exists()
                    .col(pk_uuid(ErasureJournal::AccountId))
                    .col(timestamp_with_time_zone(ErasureJournal::ErasedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ErasureJournal::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ErasureJournal {
    Table,
    AccountId,
    ErasedAt,
}
