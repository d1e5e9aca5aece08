//! The kinds of major change a policy version makes (`SERVICE_MODEL`,
//! `OWNERSHIP`, `RECIPIENTS`, `RIGHTS`, `CONTACT`), comma-separated; empty
//! for minor versions and for versions published before kinds existed.

use sea_orm_migration::prelude::*;

/// Adds `policy_versions.change_kinds`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PolicyVersions::Table)
                    .add_column(
                        ColumnDef::new(PolicyVersions::ChangeKinds)
                            .string_len(128)
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PolicyVersions::Table)
                    .drop_column(PolicyVersions::ChangeKinds)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PolicyVersions {
    Table,
    ChangeKinds,
}
