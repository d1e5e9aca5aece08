//! The per-client rate limits shared by every server instance: attempts of
//! one action by one client, counted per one-minute window
//! (`src/ratelimit/shared.rs`). The client is a blind index of its address
//! (or IPv6 /64), never the address; rows older than two windows carry
//! nothing and are pruned by the job runner.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `client_rate_windows`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClientRateWindows::Table)
                    .if_not_exists()
                    .col(string(ClientRateWindows::Bucket))
                    .col(blob(ClientRateWindows::Client))
                    .col(big_integer(ClientRateWindows::WindowStart))
                    .col(integer(ClientRateWindows::Attempts))
                    // The key every attempt upserts on.
                    .primary_key(
                        Index::create()
                            .col(ClientRateWindows::Bucket)
                            .col(ClientRateWindows::Client)
                            .col(ClientRateWindows::WindowStart),
                    )
                    .to_owned(),
            )
            .await?;
        // The prune job deletes by window.
        manager
            .create_index(
                Index::create()
                    .name("idx_client_rate_windows_window_start")
                    .table(ClientRateWindows::Table)
                    .col(ClientRateWindows::WindowStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClientRateWindows::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ClientRateWindows {
    Table,
    Bucket,
    Client,
    WindowStart,
    Attempts,
}
