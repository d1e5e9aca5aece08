//! Sessions, mailed single-use tokens and the consent ledger.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `sessions`, `account_tokens` and `consent_events`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(pk_uuid(Sessions::Id))
                    .col(uuid(Sessions::AccountId))
                    .col(blob_uniq(Sessions::TokenHash))
                    .col(blob_null(Sessions::UserAgentCt))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_account")
                            .from(Sessions::Table, Sessions::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_account")
                    .table(Sessions::Table)
                    .col(Sessions::AccountId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AccountTokens::Table)
                    .if_not_exists()
                    .col(pk_uuid(AccountTokens::Id))
                    .col(uuid(AccountTokens::AccountId))
                    .col(string_len(AccountTokens::Purpose, 32))
                    .col(blob_uniq(AccountTokens::TokenHash))
                    .col(blob_null(AccountTokens::NewEmailCt))
                    .col(blob_null(AccountTokens::NewEmailBidx))
                    .col(timestamp_with_time_zone(AccountTokens::CreatedAt))
                    .col(timestamp_with_time_zone(AccountTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AccountTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_account_tokens_account")
                            .from(AccountTokens::Table, AccountTokens::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_tokens_account_purpose")
                    .table(AccountTokens::Table)
                    .col(AccountTokens::AccountId)
                    .col(AccountTokens::Purpose)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConsentEvents::Table)
                    .if_not_exists()
                    // The order of decisions made in the same instant must
                    // still be known: the newest one is the current state.
                    .col(big_pk_auto(ConsentEvents::Seq))
                    .col(uuid_uniq(ConsentEvents::Id))
                    .col(uuid(ConsentEvents::AccountId))
                    .col(string_len(ConsentEvents::Purpose, 64))
                    .col(blob(ConsentEvents::PurposeHash))
                    .col(string_len(ConsentEvents::PolicyVersion, 64))
                    .col(blob(ConsentEvents::PolicyTextHash))
                    .col(boolean(ConsentEvents::Granted))
                    .col(string_len(ConsentEvents::Source, 32))
                    .col(timestamp_with_time_zone(ConsentEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_consent_events_account")
                            .from(ConsentEvents::Table, ConsentEvents::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_consent_events_account_purpose")
                    .table(ConsentEvents::Table)
                    .col(ConsentEvents::AccountId)
                    .col(ConsentEvents::Purpose)
                    .col(ConsentEvents::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ConsentEvents::Table.into_iden(),
            AccountTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    AccountId,
    TokenHash,
    UserAgentCt,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    Id,
    AccountId,
    Purpose,
    TokenHash,
    NewEmailCt,
    NewEmailBidx,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum ConsentEvents {
    Table,
    Seq,
    Id,
    AccountId,
    Purpose,
    PurposeHash,
    PolicyVersion,
    PolicyTextHash,
    Granted,
    Source,
    CreatedAt,
}
