//! Accounts: personal fields only as ciphertext plus blind indexes.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `accounts`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(pk_uuid(Accounts::Id))
                    .col(blob(Accounts::UsernameCt))
                    .col(blob_uniq(Accounts::UsernameBidx))
                    .col(blob(Accounts::EmailCt))
                    .col(blob_uniq(Accounts::EmailBidx))
                    .col(boolean(Accounts::EmailVerified))
                    .col(string(Accounts::PasswordHash))
                    .col(string_len(Accounts::Role, 16))
                    .col(string_len(Accounts::Language, 16))
                    .col(string_len(Accounts::AgeDeclaration, 32))
                    .col(string_len(Accounts::GuardianConsent, 16))
                    .col(blob_null(Accounts::GuardianEmailCt))
                    .col(string_len_null(Accounts::AcceptedPolicyVersion, 64))
                    .col(string_len(Accounts::Status, 32))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .col(timestamp_with_time_zone(Accounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_accounts_role")
                    .table(Accounts::Table)
                    .col(Accounts::Role)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    UsernameCt,
    UsernameBidx,
    EmailCt,
    EmailBidx,
    EmailVerified,
    PasswordHash,
    Role,
    Language,
    AgeDeclaration,
    GuardianConsent,
    GuardianEmailCt,
    AcceptedPolicyVersion,
    Status,
    CreatedAt,
    UpdatedAt,
}
