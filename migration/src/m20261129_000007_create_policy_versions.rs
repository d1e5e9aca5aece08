//! Published policy versions, so every instance serves the same policy.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `policy_versions`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PolicyVersions::Table)
                    .if_not_exists()
                    .col(big_integer(PolicyVersions::Seq).primary_key())
                    .col(string_len_uniq(PolicyVersions::Version, 64))
                    .col(timestamp_with_time_zone(PolicyVersions::PublishedAt))
                    .col(boolean(PolicyVersions::Major))
                    .col(text(PolicyVersions::Document))
                    .col(uuid_null(PolicyVersions::PublishedBy))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicyVersions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PolicyVersions {
    Table,
    Seq,
    Version,
    PublishedAt,
    Major,
    Document,
    PublishedBy,
}
