//! Public announcements (security incidents, policy updates).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `announcements`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Announcements::Table)
                    .if_not_exists()
                    .col(pk_uuid(Announcements::Id))
                    .col(string_len(Announcements::Kind, 32))
                    .col(text(Announcements::Title))
                    .col(text(Announcements::Body))
                    .col(timestamp_with_time_zone(Announcements::PublishedAt))
                    .to_owned(),
            )
            .await?;
        // `announcements` lists newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_announcements_published_at")
                    .table(Announcements::Table)
                    .col(Announcements::PublishedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Announcements::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Announcements {
    Table,
    Id,
    Kind,
    Title,
    Body,
    PublishedAt,
}
