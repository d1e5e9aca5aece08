//! Key rotation: re-encrypts every encrypted field under the active key.
//!
//! Encrypted columns are found from the live schema (every column named
//! `*_ct`; its field context is the name without `_ct`), so a column added
//! by a later migration is rotated too. Rows are walked in batches by id and
//! each value is rewritten only while it still holds the ciphertext read
//! (an optimistic check), so rotation runs beside a serving instance, and a
//! run that stops is simply started again: values already under the active
//! key are skipped.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use uuid::Uuid;

use crate::{crypto::fields::FieldContext, state::AppState};

/// Rows read per batch.
pub const BATCH: u64 = 500;

/// What a rotation run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Values examined.
    pub examined: u64,
    /// Values re-encrypted.
    pub rotated: u64,
    /// Values skipped because another writer changed them meanwhile.
    pub raced: u64,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Storage failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A value could not be decrypted with any key of the keyring.
    #[error("{table}.{column} of row {id}: {source}")]
    Crypto {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Row id.
        id: Uuid,
        /// Why.
        source: crate::crypto::CryptoError,
    },
}

/// Every `(table, column)` holding ciphertext.
pub async fn encrypted_columns<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, String)>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name AS t, column_name AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name LIKE '%\\_ct' ORDER BY 1, 2"
        }
        _ => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name LIKE '%\\_ct' ESCAPE '\\' ORDER BY 1, 2"
        }
    };
    let rows = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "t")?,
                row.try_get::<String>("", "c")?,
            ))
        })
        .collect()
}

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// Re-encrypts every value not under the active key; `progress` is told
/// after each batch.
pub async fn rotate(
    state: &AppState,
    mut progress: impl FnMut(&str, &str, &RotationReport),
) -> Result<RotationReport, RotationError> {
    let db = state.db();
    let backend = db.get_database_backend();
    let cipher = state.cipher();
    let mut report = RotationReport::default();
    for (table, column) in encrypted_columns(db).await? {
        let context_column = column.trim_end_matches("_ct").to_owned();
        let mut after: Option<Uuid> = None;
        loop {
            let (sql, values): (String, Vec<Value>) = match after {
                Some(last) => (
                    format!(
                        "SELECT id, {column} AS v FROM {table} WHERE id > {} AND {column} IS NOT NULL ORDER BY id LIMIT {BATCH}",
                        placeholder(backend, 1)
                    ),
                    vec![last.into()],
                ),
                None => (
                    format!(
                        "SELECT id, {column} AS v FROM {table} WHERE {column} IS NOT NULL ORDER BY id LIMIT {BATCH}"
                    ),
                    vec![],
                ),
            };
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.try_get::<Uuid>("", "id")?);
            for row in &rows {
                let id: Uuid = row.try_get("", "id")?;
                let stored: Vec<u8> = row.try_get("", "v")?;
                report.examined += 1;
                if !cipher.needs_rotation(&stored) {
                    continue;
                }
                let context = FieldContext {
                    table: &table,
                    column: &context_column,
                    row_id: id,
                };
                let crypto_error = |source| RotationError::Crypto {
                    table: table.clone(),
                    column: column.clone(),
                    id,
                    source,
                };
                let plain = cipher.decrypt(&context, &stored).map_err(crypto_error)?;
                let fresh = cipher.encrypt(&context, &plain).map_err(crypto_error)?;
                let update = format!(
                    "UPDATE {table} SET {column} = {} WHERE id = {} AND {column} = {}",
                    placeholder(backend, 1),
                    placeholder(backend, 2),
                    placeholder(backend, 3)
                );
                let result = db
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        update,
                        [fresh.into(), id.into(), stored.into()],
                    ))
                    .await?;
                if result.rows_affected() == 1 {
                    report.rotated += 1;
                } else {
                    report.raced += 1;
                }
            }
            progress(&table, &column, &report);
        }
    }
    crate::audit::service::append(
        db,
        crate::audit::service::AuditRecord {
            actor_id: None,
            action: "keys.rotate",
            subject_id: None,
            detail: format!(
                "active_key={} examined={} rotated={} raced={}",
                cipher.active_id(),
                report.examined,
                report.rotated,
                report.raced
            ),
        },
        state.clock().now(),
    )
    .await?;
    tracing::info!(
        rotated = report.rotated,
        examined = report.examined,
        "key rotation finished"
    );
    Ok(report)
}
