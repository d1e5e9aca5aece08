//! On PostgreSQL, tells every server instance when a policy version is
//! published (or a row of `policy_versions` otherwise changes): a
//! notification on channel `custos_policy` at commit, on which each
//! instance forgets the policy it keeps in memory
//! (`src/consent/policy_cache.rs`). SQLite serves one instance, which
//! forgets its own publications: nothing to do there.

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
            "CREATE FUNCTION custos_notify_policy_change() RETURNS trigger \
             LANGUAGE plpgsql AS $$ \
             BEGIN \
               PERFORM pg_notify('custos_policy', ''); \
               RETURN NULL; \
             END $$",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER policy_versions_notify_change \
             AFTER INSERT OR UPDATE OR DELETE ON policy_versions \
             FOR EACH STATEMENT EXECUTE FUNCTION custos_notify_policy_change()",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "DROP TRIGGER IF EXISTS policy_versions_notify_change ON policy_versions",
        )
        .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS custos_notify_policy_change()")
            .await?;
        Ok(())
    }
}
