//! The purge deletes the mail to an erased person's addresses that
//! concerns no account: `recipient_bidx = ANY(..) AND account_id IS NULL`.
//! Every erasure queues such a row itself (its receipt), so the rows with
//! no account are most of the outbox while a large purge runs. With only
//! `idx_outbox_account` and `idx_outbox_recipient_bidx`, PostgreSQL could
//! read every `account_id IS NULL` entry and compare each row with the
//! batch's addresses (whenever its statistics said few rows had no
//! account, as they do until the table is analysed again): the statement
//! grew with every receipt queued, past 20 s a batch at 490,000 receipts.
//! This index holds exactly the rows that statement may delete, keyed by
//! address, so the lookup costs one probe per address however many
//! receipts wait.

use sea_orm_migration::prelude::*;

/// Creates `idx_outbox_unowned_recipient`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_unowned_recipient")
                    .table(Outbox::Table)
                    .col(Outbox::RecipientBidx)
                    .and_where(Expr::col(Outbox::AccountId).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_unowned_recipient")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    RecipientBidx,
    AccountId,
}
