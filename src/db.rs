//! Database connection and migrations, for SQLite and PostgreSQL alike, and
//! the enums stored as text ([`stored_enum!`]).

use std::time::Duration;

use migration::{ErasureJournalMigrator, KeyStoreMigrator, Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait, Value,
    sea_query::{
        Alias, CommonTableExpression, Expr, SubQueryStatement, WithClause, postgres_array::NotU8,
    },
    sqlx,
};
use secrecy::{ExposeSecret, SecretString};

/// Generates a stored-string enum: `as_str` for writing, `parse` for
/// reading, `is` for comparing with a stored value, `Display` and
/// `Serialize` as the stored string, and conversions into a query value
/// (`Column::Status.eq(AccountStatus::Active)`) and into the stored
/// `String` (`Set(AccountStatus::Active.into())`).
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads a stored name; `None` for anything else.
            pub fn parse(stored: &str) -> Option<Self> {
                match stored {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// Whether `stored` is this value's stored name.
            pub fn is(self, stored: &str) -> bool {
                stored == self.as_str()
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(value: $name) -> Self {
                value.as_str().into()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.as_str().to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_enum;

/// Opens a pool to `url`. SQLite runs in WAL mode with foreign keys on, on
/// one connection: SQLite has one writer at a time anyway, and a deferred
/// transaction that reads and then writes fails with `SQLITE_BUSY` (no
/// waiting) when another connection wrote in between, which would turn
/// concurrent signups into internal errors. PostgreSQL gets a real pool.
pub async fn connect(url: &SecretString) -> Result<DatabaseConnection, DbErr> {
    let url = url.expose_secret();
    let pool_size = if url.starts_with("sqlite:") { 1 } else { 16 };
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool_size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        // sqlx pings a connection when it goes back to the pool; pinging it
        // again when it comes out doubled the round trips of every
        // one-statement request (a cold signed-in read). A connection idle
        // for a second or more is still tested before use, so one the
        // server closed meanwhile is replaced, not handed out.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        // Statements may carry ciphertext and blind indexes: keep them out of logs.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(15))
                // 64 MiB of page cache instead of SQLite's 2 MiB: index
                // lookups into a large outbox or audit log stay in memory
                // (the 100,000-account purge spent a fifth of its time
                // walking indexes at 2 MiB, and 10% more at 32 MiB once
                // account keys were a table to erase from too). Filled
                // only as pages are read.
                .pragma("cache_size", "-65536")
        });
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Applies every pending migration of a separate key store.
pub async fn migrate_key_store(db: &DatabaseConnection) -> Result<(), DbErr> {
    KeyStoreMigrator::up(db, None).await
}

/// Applies every pending migration of an erasure journal of its own.
pub async fn migrate_erasure_journal(db: &DatabaseConnection) -> Result<(), DbErr> {
    ErasureJournalMigrator::up(db, None).await
}

/// True when `err` is a unique-constraint violation, which services turn
/// into a field error (e.g. `USERNAME_TAKEN`) instead of an internal one.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// `column` is one of `values`: `IN (?, ..)` on SQLite, and on PostgreSQL
/// `= ANY($1)` with the values as one array parameter.
///
/// The purge's statements each name up to 5,000 ids or indexes. As
/// `IN ($1, .., $5000)` the statement text is the same every batch, and
/// after five executions on a connection PostgreSQL may switch it to its
/// generic plan, kept from then on: there the list is an array of
/// parameters that cannot be hashed, so wherever the plan compares rows
/// with the list rather than looking each value up in an index, every row
/// costs 5,000 comparisons. The outbox's receipt delete got such a plan
/// (`account_id IS NULL` first, from statistics taken while the outbox held
/// no receipts) and took over 20 s a batch at 490,000 receipts. With one
/// array parameter the generic plan assumes a short array and looks the
/// values up in the column's index, which costs the same whatever the table
/// holds; the statement is also a few hundred bytes instead of 30 KB to
/// parse and plan, and the last, shorter batch reuses it.
pub fn one_of<V>(backend: DbBackend, column: impl ColumnTrait, values: Vec<V>) -> Expr
where
    V: Into<Value> + NotU8,
{
    match backend {
        DbBackend::Postgres => column.eq_any(values),
        _ => column.is_in(values),
    }
}

/// Writes that stand or fall together, such as the rows of one sign-up,
/// collected and then sent by [`Writes::run`].
///
/// On PostgreSQL they go as one statement: every write but the last is a
/// data-modifying `WITH` of the last. One statement commits or fails as a
/// whole without `BEGIN` and `COMMIT`, so five inserts cost one round trip
/// instead of seven, and the database's CPU per round trip is what bounds a
/// sign-up beside its password hash. SQLite has no data-modifying `WITH`;
/// there the writes run in order in one transaction (in process, where a
/// round trip costs little).
///
/// The writes of one `WITH` all see the database as it was before the
/// statement, not each other's rows, and run in no set order: none may
/// read what another writes, and no two may change the same row. A foreign
/// key is checked once the whole statement is done, so a row may refer to
/// one inserted beside it.
#[derive(Default)]
pub struct Writes(Vec<SubQueryStatement>);

impl Writes {
    /// No writes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `write` (an insert, update or delete).
    pub fn push(&mut self, write: impl Into<SubQueryStatement>) {
        self.0.push(write.into());
    }

    /// How many writes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs every write on `db`, all or none; a write's error (a unique
    /// violation, say) is the error of the whole.
    pub async fn run(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        let mut writes = self.0;
        let Some(last) = writes.pop() else {
            return Ok(());
        };
        if writes.is_empty() {
            return db.execute_raw(build(backend, &last)).await.map(drop);
        }
        if backend == DbBackend::Postgres {
            return db.execute(&with(writes, last)).await.map(drop);
        }
        let txn = db.begin().await?;
        for write in writes.iter().chain([&last]) {
            txn.execute_raw(build(backend, write)).await?;
        }
        txn.commit().await
    }
}

/// `last`, with each of `writes` as a `WITH` of its own (`w0`, `w1`, …).
fn with(writes: Vec<SubQueryStatement>, last: SubQueryStatement) -> sea_orm::sea_query::WithQuery {
    let mut clause = WithClause::new();
    for (n, write) in writes.into_iter().enumerate() {
        clause.cte(
            CommonTableExpression::new()
                .query(write)
                .table_name(Alias::new(format!("w{n}")))
                .to_owned(),
        );
    }
    clause.query(last)
}

/// One write as a statement of `backend`.
fn build(backend: DbBackend, write: &SubQueryStatement) -> sea_orm::Statement {
    match write {
        SubQueryStatement::InsertStatement(s) => backend.build(s),
        SubQueryStatement::UpdateStatement(s) => backend.build(s),
        SubQueryStatement::DeleteStatement(s) => backend.build(s),
        SubQueryStatement::SelectStatement(s) => backend.build(s),
        SubQueryStatement::WithStatement(s) => backend.build(s),
    }
}

/// For unit tests on PostgreSQL: `CUSTOS_TEST_DATABASE_URL` when it names a
/// PostgreSQL server (tests that need one pass trivially without it).
#[cfg(test)]
pub(crate) fn test_postgres_url() -> Option<String> {
    std::env::var("CUSTOS_TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
}

/// For unit tests on PostgreSQL: runs `body` on a migrated database of its
/// own on the server `CUSTOS_TEST_DATABASE_URL` names, then drops it; does
/// nothing without that server (the test passes trivially).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) async fn with_test_postgres(body: impl AsyncFnOnce(&DatabaseConnection)) {
    let Some(admin_url) = test_postgres_url() else {
        return;
    };
    let admin = Database::connect(&admin_url).await.unwrap();
    let name = format!("custos_unit_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let url = if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    };
    let db = Database::connect(&url).await.unwrap();
    migrate(&db).await.unwrap();
    body(&db).await;
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use chrono::Utc;
    use entity::account_key;
    use sea_orm::{EntityTrait, PaginatorTrait, QueryFilter, QueryTrait, Set};
    use uuid::Uuid;

    use super::*;

    fn key_row(id: Uuid) -> SubQueryStatement {
        account_key::Entity::insert(account_key::ActiveModel {
            id: Set(id),
            wrapped_key_ct: Set(vec![1, 2, 3]),
            created_at: Set(Utc::now()),
        })
        .into_query()
        .into()
    }

    /// Writes run all or none: a unique violation in the last one leaves
    /// nothing of the others, and is the error of the whole.
    async fn writes_stand_or_fall_together(db: &DatabaseConnection) {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        Writes::new().run(db).await.unwrap();
        let mut both = Writes::new();
        both.push(key_row(a));
        both.push(key_row(b));
        assert_eq!(both.len(), 2);
        both.run(db).await.unwrap();
        assert_eq!(account_key::Entity::find().count(db).await.unwrap(), 2);

        let mut clash = Writes::new();
        clash.push(key_row(c));
        clash.push(
            account_key::Entity::delete_many()
                .filter(account_key::Column::Id.eq(b))
                .into_query(),
        );
        clash.push(key_row(a));
        let refused = clash.run(db).await.unwrap_err();
        assert!(is_unique_violation(&refused), "{refused}");
        let ids: Vec<Uuid> = account_key::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect();
        assert!(ids.contains(&a) && ids.contains(&b) && !ids.contains(&c));
        assert_eq!(ids.len(), 2);
    }

    #[tokio::test]
    async fn writes_stand_or_fall_together_on_sqlite() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migrate(&db).await.unwrap();
        writes_stand_or_fall_together(&db).await;
    }

    /// The same on PostgreSQL (passes trivially without
    /// `CUSTOS_TEST_DATABASE_URL`).
    #[tokio::test]
    async fn writes_stand_or_fall_together_on_postgres() {
        with_test_postgres(writes_stand_or_fall_together).await;
    }

    #[test]
    fn several_writes_are_one_statement_on_postgres() {
        let writes = vec![key_row(Uuid::nil())];
        let built = DbBackend::Postgres.build(&with(writes, key_row(Uuid::max())));
        assert!(
            built
                .sql
                .starts_with(r#"WITH "w0" AS (INSERT INTO "account_keys""#),
            "{}",
            built.sql
        );
        assert_eq!(built.sql.matches("INSERT INTO").count(), 2);
        assert!(
            built.sql.contains("$6"),
            "parameters numbered across: {}",
            built.sql
        );
        assert_eq!(built.values.unwrap().0.len(), 6);
    }

    #[test]
    fn one_of_is_one_array_parameter_on_postgres_and_a_list_on_sqlite() {
        let ids = vec![uuid::Uuid::nil(), uuid::Uuid::max(), uuid::Uuid::nil()];
        let statement = |backend| {
            account_key::Entity::find()
                .filter(one_of(backend, account_key::Column::Id, ids.clone()))
                .build(backend)
        };
        for (backend, tail, parameters) in [
            (
                DbBackend::Postgres,
                r#"WHERE "account_keys"."id" = ANY($1)"#,
                1,
            ),
            (
                DbBackend::Sqlite,
                r#"WHERE "account_keys"."id" IN (?, ?, ?)"#,
                3,
            ),
        ] {
            let built = statement(backend);
            assert!(built.sql.ends_with(tail), "{backend:?}: {}", built.sql);
            assert_eq!(built.values.unwrap().0.len(), parameters, "{backend:?}");
        }
    }
}
