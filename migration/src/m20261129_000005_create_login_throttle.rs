//! The shared sign-in throttle: failed logins counted per login name, in the
//! database so that every server instance sees the same counts.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `login_throttle`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .if_not_exists()
                    .col(pk_uuid(LoginThrottle::Id))
                    .col(blob_uniq(LoginThrottle::SubjectBidx))
                    .col(integer(LoginThrottle::Failures))
                    .col(timestamp_with_time_zone(LoginThrottle::WindowStartedAt))
                    .col(timestamp_with_time_zone_null(LoginThrottle::LockedUntil))
                    .col(timestamp_with_time_zone(LoginThrottle::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The prune job deletes by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_login_throttle_updated_at")
                    .table(LoginThrottle::Table)
                    .col(LoginThrottle::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginThrottle::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Id,
    SubjectBidx,
    Failures,
    WindowStartedAt,
    LockedUntil,
    UpdatedAt,
}
