//! On PostgreSQL, tells every server instance when something a session
//! check depends on changes: an account row is updated or deleted, or a
//! session is revoked or deleted. The account's id goes out on channel
//! `custos_auth` at commit (`pg_notify`), and each instance forgets what it
//! cached for that account (`src/accounts/session_cache.rs`). The
//! `lastSeenAt` touch is not a change (it fires nothing). SQLite serves
//! one instance, which forgets its own changes: nothing to do there.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE FUNCTION custos_notify_auth_change() RETURNS trigger \
             LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF TG_TABLE_NAME = 'accounts' THEN \
                 PERFORM pg_notify('custos_auth', OLD.id::text); \
               ELSE \
                 PERFORM pg_notify('custos_auth', OLD.account_id::text); \
               END IF; \
               RETURN NULL; \
             END $$",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER accounts_notify_auth_change \
             AFTER UPDATE OR DELETE ON accounts \
             FOR EACH ROW EXECUTE FUNCTION custos_notify_auth_change()",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER sessions_notify_revocation \
             AFTER UPDATE OF revoked_at ON sessions \
             FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at) \
             EXECUTE FUNCTION custos_notify_auth_change()",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER sessions_notify_deletion \
             AFTER DELETE ON sessions \
             FOR EACH ROW EXECUTE FUNCTION custos_notify_auth_change()",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_notify_deletion ON sessions")
            .await?;
        db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_notify_revocation ON sessions")
            .await?;
        db.execute_unprepared("DROP TRIGGER IF EXISTS accounts_notify_auth_change ON accounts")
            .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS custos_notify_auth_change()")
            .await?;
        Ok(())
    }
}
