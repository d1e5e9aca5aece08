//! Per-account data keys for crypto-shredding: each account's personal
//! fields are encrypted under its own random key, stored here wrapped by
//! the keyring. The purge deletes the key, so copies of the account's rows
//! (backups, replicas, WAL archives) can no longer be decrypted.
//!
//! The table lives in the main database unless `CUSTOS_KEY_STORE_URL`
//! names a separate one; that store is migrated by `KeyStoreMigrator`,
//! which runs only this migration.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Sqlite {
            // Clustered on the account id: a rowid table would keep a
            // second B-tree for the key, and the purge deletes one random
            // id per account (a fifth of its time on 100,000 accounts).
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE TABLE IF NOT EXISTS \"account_keys\" ( \
                     \"id\" uuid_text NOT NULL PRIMARY KEY, \
                     \"wrapped_key_ct\" blob NOT NULL, \
                     \"created_at\" timestamp_with_timezone_text NOT NULL ) WITHOUT ROWID",
                )
                .await?;
            return Ok(());
        }
        manager
            .create_table(
                Table::create()
                    .table(AccountKeys::Table)
                    .if_not_exists()
                    .col(pk_uuid(AccountKeys::Id))
                    .col(blob(AccountKeys::WrappedKeyCt))
                    .col(timestamp_with_time_zone(AccountKeys::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccountKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AccountKeys {
    Table,
    Id,
    WrappedKeyCt,
    CreatedAt,
}
