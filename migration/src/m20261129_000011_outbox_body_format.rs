//! A mail written from a draft is stored as that draft (language and
//! blocks, encrypted in `body_text_ct`) and rendered at send time, instead
//! of as its plain-text and HTML renderings: about a third of the bytes,
//! which is most of what the purge and the incident fan-out write.
//! `body_format` says which a row holds; rows written before keep
//! `rendered`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(
                        ColumnDef::new(Outbox::BodyFormat)
                            .string_len(16)
                            .not_null()
                            .default("rendered"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::BodyFormat)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    BodyFormat,
}
