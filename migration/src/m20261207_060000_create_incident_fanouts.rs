//! Security-incident fan-outs as durable jobs: one row per report, holding
//! the notice, the audience, how far the mailing got (a keyset cursor over
//! account ids and the counts) and the lease of the instance driving it, so
//! a fan-out outlives the request that started it and is resumed after a
//! crash. The rows hold the incident's description and account ids only.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `incident_fanouts`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IncidentFanouts::Table)
                    .if_not_exists()
                    .col(pk_uuid(IncidentFanouts::Id))
                    .col(uuid(IncidentFanouts::ActorId))
                    .col(string_len(IncidentFanouts::Audience, 32))
                    .col(json_null(IncidentFanouts::ListedIds))
                    .col(text(IncidentFanouts::Title))
                    .col(text(IncidentFanouts::WhatHappened))
                    .col(text(IncidentFanouts::PossibleImpact))
                    .col(text(IncidentFanouts::MeasuresTaken))
                    .col(text(IncidentFanouts::AdviceToUsers))
                    .col(text(IncidentFanouts::Remedies))
                    .col(boolean(IncidentFanouts::PublishAnnouncement))
                    .col(big_integer(IncidentFanouts::Affected))
                    .col(big_integer(IncidentFanouts::Notified))
                    .col(big_integer(IncidentFanouts::Failed))
                    .col(uuid_null(IncidentFanouts::LastAccountId))
                    .col(string_len(IncidentFanouts::Status, 16))
                    .col(uuid_null(IncidentFanouts::AnnouncementId))
                    .col(uuid_null(IncidentFanouts::LeaseOwner))
                    .col(timestamp_with_time_zone_null(IncidentFanouts::LeaseUntil))
                    .col(timestamp_with_time_zone(IncidentFanouts::CreatedAt))
                    .col(timestamp_with_time_zone_null(IncidentFanouts::FinishedAt))
                    .to_owned(),
            )
            .await?;
        // The job runner looks for running fan-outs whose lease ran out.
        manager
            .create_index(
                Index::create()
                    .name("idx_incident_fanouts_status_lease")
                    .table(IncidentFanouts::Table)
                    .col(IncidentFanouts::Status)
                    .col(IncidentFanouts::LeaseUntil)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IncidentFanouts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IncidentFanouts {
    Table,
    Id,
    ActorId,
    Audience,
    ListedIds,
    Title,
    WhatHappened,
    PossibleImpact,
    MeasuresTaken,
    AdviceToUsers,
    Remedies,
    PublishAnnouncement,
    Affected,
    Notified,
    Failed,
    LastAccountId,
    Status,
    AnnouncementId,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    FinishedAt,
}
