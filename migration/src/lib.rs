//! Schema migrations, applied at start and by `custos migrate`.
//!
//! A migration is never edited after it lands: changes come as new files
//! named `mYYYYMMDD_HHMMSS_verb_noun.rs`.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_accounts;
mod m20261129_000002_create_outbox;
mod m20261129_000003_create_sessions_tokens_consents;
mod m20261129_000004_create_audit_log;
mod m20261129_000005_create_login_throttle;
mod m20261129_000006_create_tickets;
mod m20261129_000007_create_policy_versions;
mod m20261129_000008_create_announcements;
mod m20261129_000009_create_deletion_requests;
mod m20261129_000010_index_deletion_requests_purge_order;
mod m20261129_000011_outbox_body_format;
mod m20261129_000012_create_account_keys;
mod m20261129_000013_create_pending_key_destruction;
mod m20261130_000014_notify_auth_changes;
mod m20261207_000015_add_policy_change_kinds;
mod m20261207_000015_create_audit_notes;
mod m20261207_024500_create_erasure_journal;
mod m20261207_035000_create_client_rate_windows;
mod m20261207_035100_notify_policy_changes;
mod m20261207_060000_create_incident_fanouts;
mod m20261207_180000_index_unowned_outbox_recipients;

/// The ordered list of migrations.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_accounts::Migration),
            Box::new(m20261129_000002_create_outbox::Migration),
            Box::new(m20261129_000003_create_sessions_tokens_consents::Migration),
            Box::new(m20261129_000004_create_audit_log::Migration),
            Box::new(m20261129_000005_create_login_throttle::Migration),
            Box::new(m20261129_000006_create_tickets::Migration),
            Box::new(m20261129_000007_create_policy_versions::Migration),
            Box::new(m20261129_000008_create_announcements::Migration),
            Box::new(m20261129_000009_create_deletion_requests::Migration),
            Box::new(m20261129_000010_index_deletion_requests_purge_order::Migration),
            Box::new(m20261129_000011_outbox_body_format::Migration),
            Box::new(m20261129_000012_create_account_keys::Migration),
            Box::new(m20261129_000013_create_pending_key_destruction::Migration),
            Box::new(m20261130_000014_notify_auth_changes::Migration),
            Box::new(m20261207_000015_create_audit_notes::Migration),
            Box::new(m20261207_000015_add_policy_change_kinds::Migration),
            Box::new(m20261207_035000_create_client_rate_windows::Migration),
            Box::new(m20261207_035100_notify_policy_changes::Migration),
            Box::new(m20261207_060000_create_incident_fanouts::Migration),
            Box::new(m20261207_180000_index_unowned_outbox_recipients::Migration),
        ]
    }
}

/// The migrations of a separate key store (`CUSTOS_KEY_STORE_URL`): the
/// account-key table and the erasure journal, tracked in a table of its own so the store may
/// also be a schema of a database that holds other things.
pub struct KeyStoreMigrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for KeyStoreMigrator {
    fn migration_table_name() -> DynIden {
        Alias::new("custos_key_store_migrations").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000012_create_account_keys::Migration),
            Box::new(m20261207_024500_create_erasure_journal::Migration),
        ]
    }
}

/// The migrations of an erasure journal of its own
/// (`CUSTOS_ERASURE_JOURNAL_URL`): only the journal table, tracked in a
/// table of its own so the journal may share a database with other things.
pub struct ErasureJournalMigrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for ErasureJournalMigrator {
    fn migration_table_name() -> DynIden {
        Alias::new("custos_erasure_journal_migrations").into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261207_024500_create_erasure_journal::Migration)]
    }
}
