//! Key rotation: re-encrypts every encrypted field under the active key
//! ([`rotate`]), and recomputes every blind index still under the previous
//! blind-index key ([`reindex`]).
//!
//! Encrypted columns are found from the live schema (every column named
//! `*_ct`; its field context is the name without `_ct`), so a column added
//! by a later migration is rotated too. Blind-indexed columns are listed in
//! [`BLIND_INDEXED_COLUMNS`] instead, because each needs the normal form its
//! writer indexes (a test checks the list against the schema). Rows are
//! walked in batches by id and each value is rewritten only while it still
//! holds what was read (an optimistic check), so rotation runs beside a
//! serving instance, and a run that stops is simply started again: values
//! already under the active key are skipped.

use entity::login_throttle;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryResult, Statement, Value,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{
    accounts::{
        service::{EMAIL_INDEX, USERNAME_INDEX},
        username::canonical as username_normal_form,
    },
    crypto::{
        BlindIndex,
        blind_index::normalise_email,
        fields::{FieldContext, is_under_account_key},
    },
    ratelimit::login as throttle,
    state::AppState,
};

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
    columns_ending_in(conn, "ct").await
}

/// Every `(table, column)` holding a blind index, as the live schema has
/// them; [`BLIND_INDEXED_COLUMNS`] must cover them all.
pub async fn blind_index_columns<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, String)>, DbErr> {
    columns_ending_in(conn, "bidx").await
}

/// Every `(table, column)` whose column name ends in `_` + `suffix` (a
/// fixed identifier, never input).
async fn columns_ending_in<C: ConnectionTrait>(
    conn: &C,
    suffix: &'static str,
) -> Result<Vec<(String, String)>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT table_name AS t, column_name AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name LIKE '%\\_{suffix}' ORDER BY 1, 2"
        ),
        _ => format!(
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name LIKE '%\\_{suffix}' ESCAPE '\\' ORDER BY 1, 2"
        ),
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

/// The next [`BATCH`] rows of `table` in id order after `after` (from the
/// start when `None`): `id` and `columns`, skipping rows whose `present`
/// column is NULL. Both passes page this way, so a run can stop anywhere
/// and the next one simply starts again.
async fn next_page(
    db: &DatabaseConnection,
    table: &str,
    columns: &str,
    present: &str,
    after: Option<Uuid>,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    let (after_clause, values): (String, Vec<Value>) = match after {
        Some(last) => (
            format!("id > {} AND ", placeholder(backend, 1)),
            vec![last.into()],
        ),
        None => (String::new(), Vec::new()),
    };
    let sql = format!(
        "SELECT id, {columns} FROM {table} WHERE {after_clause}{present} IS NOT NULL \
         ORDER BY id LIMIT {BATCH}"
    );
    db.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

/// Re-encrypts every value not under the active key; `progress` is told
/// after each batch.
pub async fn rotate(
    state: &AppState,
    mut progress: impl FnMut(&str, &str, &RotationReport),
) -> Result<RotationReport, RotationError> {
    let db = state.db();
    let cipher = state.cipher();
    let mut report = RotationReport::default();
    rotate_database(state, db, true, &mut report, &mut progress).await?;
    // Account keys in a separate store are wrapped by the keyring too.
    if let Some(store) = state.keys().separate_db() {
        rotate_database(state, store, false, &mut report, &mut progress).await?;
    }
    crate::audit::service::append_alone(
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

/// For each table holding an account's own fields, the SQL that names the
/// account a row belongs to (NULL for a guest's). A test checks every
/// encrypted table of the schema is here or in [`KEYRING_ONLY_TABLES`].
pub const OWNER_OF_ROW: &[(&str, &str)] = &[
    ("accounts", "id"),
    ("sessions", "account_id"),
    ("account_tokens", "account_id"),
    ("outbox", "account_id"),
    ("tickets", "account_id"),
    ("audit_notes", "subject_id"),
    (
        "ticket_messages",
        "(SELECT t.account_id FROM tickets t WHERE t.id = ticket_messages.ticket_id)",
    ),
];

/// Encrypted tables whose values stay under the keyring.
pub const KEYRING_ONLY_TABLES: &[&str] = &["account_keys"];

/// Re-encrypts, in one database, every value not under the active key. A
/// value of an account's own that is still under the keyring (written
/// before accounts had data keys) moves under the account's key instead.
/// `holds_accounts` is false for a separate key store.
async fn rotate_database(
    state: &AppState,
    db: &DatabaseConnection,
    holds_accounts: bool,
    report: &mut RotationReport,
    progress: &mut impl FnMut(&str, &str, &RotationReport),
) -> Result<(), RotationError> {
    let backend = db.get_database_backend();
    let cipher = state.cipher();
    for (table, column) in encrypted_columns(db).await? {
        let context_column = column.trim_end_matches("_ct").to_owned();
        let owner = OWNER_OF_ROW
            .iter()
            .find(|(name, _)| holds_accounts && *name == table)
            .map(|(_, owner)| *owner);
        let columns = match owner {
            Some(owner) => format!("{column} AS v, {owner} AS o"),
            None => format!("{column} AS v"),
        };
        let mut after: Option<Uuid> = None;
        loop {
            let rows = next_page(db, &table, &columns, &column, after).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.try_get::<Uuid>("", "id")?);
            for row in &rows {
                let id: Uuid = row.try_get("", "id")?;
                let stored: Vec<u8> = row.try_get("", "v")?;
                let owner: Option<Uuid> = match owner {
                    Some(_) => row.try_get("", "o")?,
                    None => None,
                };
                report.examined += 1;
                let under_keyring = !is_under_account_key(&stored);
                let move_to_account = owner.is_some() && under_keyring;
                if !move_to_account && !cipher.needs_rotation(&stored) {
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
                let key = match owner.filter(|_| move_to_account) {
                    Some(owner) => Some(state.write_key(db, owner).await.map_err(crypto_error)?),
                    None => None,
                };
                let fresh = cipher
                    .encrypt_under(key.as_deref(), &context, &plain)
                    .map_err(crypto_error)?;
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
            progress(&table, &column, report);
        }
    }
    Ok(())
}

/// A blind-indexed column: where it is, the ciphertext its value is
/// computed from, and the writer's blind-index field and normal form.
#[derive(Debug, Clone, Copy)]
pub struct BlindIndexedColumn {
    /// Table.
    pub table: &'static str,
    /// The `*_bidx` column.
    pub index_column: &'static str,
    /// The `*_ct` column holding the indexed value.
    pub value_column: &'static str,
    /// The column naming the account whose data key the value may be
    /// under (NULL for people without an account).
    pub owner_column: &'static str,
    /// The blind-index field the writer computes under.
    pub field: &'static str,
    /// The writer's normal form: the same function, so a recomputed index
    /// matches what a lookup computes.
    pub normal_form: fn(&str) -> String,
}

/// Every blind-indexed column whose value can be recomputed.
/// `login_throttle.subject_bidx` is not here: it has no ciphertext to
/// recompute from (see [`reindex`] for what happens to it).
pub const BLIND_INDEXED_COLUMNS: &[BlindIndexedColumn] = &[
    BlindIndexedColumn {
        table: "accounts",
        index_column: "username_bidx",
        value_column: "username_ct",
        owner_column: "id",
        field: USERNAME_INDEX,
        normal_form: username_normal_form,
    },
    BlindIndexedColumn {
        table: "accounts",
        index_column: "email_bidx",
        value_column: "email_ct",
        owner_column: "id",
        field: EMAIL_INDEX,
        normal_form: normalise_email,
    },
    BlindIndexedColumn {
        table: "account_tokens",
        index_column: "new_email_bidx",
        value_column: "new_email_ct",
        owner_column: "account_id",
        field: EMAIL_INDEX,
        normal_form: normalise_email,
    },
    BlindIndexedColumn {
        table: "tickets",
        index_column: "contact_email_bidx",
        value_column: "contact_email_ct",
        owner_column: "account_id",
        field: EMAIL_INDEX,
        normal_form: normalise_email,
    },
    BlindIndexedColumn {
        table: "outbox",
        index_column: "recipient_bidx",
        value_column: "recipient_ct",
        owner_column: "account_id",
        field: crate::mail::outbox::BLIND_INDEX_FIELD,
        normal_form: normalise_email,
    },
];

/// Blind-indexed columns with no value to recompute from: their rows under
/// the previous key are dropped instead.
pub const EPHEMERAL_BLIND_INDEX_COLUMNS: &[(&str, &str)] = &[("login_throttle", "subject_bidx")];

/// What a blind-index pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReindexReport {
    /// Whether a previous key was set (without one the pass does nothing).
    pub had_previous_key: bool,
    /// Indexes examined.
    pub examined: u64,
    /// Indexes recomputed under the active key.
    pub reindexed: u64,
    /// Indexes skipped because another writer changed the row meanwhile.
    pub raced: u64,
    /// Indexes under neither key (or with no value to recompute from):
    /// left alone, and named by row id in the log.
    pub unmatched: u64,
    /// Indexes whose active-key value another row already holds (a unique
    /// column): left alone, and named by row id in the log.
    pub conflicts: u64,
    /// Sign-in throttle counters under the previous key dropped.
    pub throttle_dropped: u64,
}

/// Recomputes, under the active blind-index key, every blind index still
/// under the previous key (`CUSTOS_BLIND_INDEX_PREVIOUS_KEY`); without a
/// previous key it does nothing. `progress` is told after each batch.
///
/// Each value is decrypted, put in its writer's normal form and indexed
/// under both keys: an index equal to the active one is done, one equal to
/// the previous one is rewritten while the row still holds the index and
/// ciphertext read, anything else is counted as unmatched and left for the
/// operator (it is under some third key, and neither key finds it anyway).
///
/// Sign-in throttle counters have no value to recompute from: sign-in
/// counts under the active key only, so those under the previous key are
/// dead. The pass drops the ones belonging to each account it re-indexes;
/// the rest (names with no account) expire through the throttle's prune.
pub async fn reindex(
    state: &AppState,
    mut progress: impl FnMut(&str, &str, &ReindexReport),
) -> Result<ReindexReport, RotationError> {
    let keys = state.blind();
    let Some(previous) = keys.previous() else {
        return Ok(ReindexReport::default());
    };
    let pass = Reindex {
        state,
        active: keys.active(),
        previous,
    };
    let mut report = ReindexReport {
        had_previous_key: true,
        ..ReindexReport::default()
    };
    for column in BLIND_INDEXED_COLUMNS {
        let mut after: Option<Uuid> = None;
        loop {
            let columns = format!(
                "{} AS i, {} AS v, {} AS o",
                column.index_column, column.value_column, column.owner_column
            );
            let rows = next_page(
                state.db(),
                column.table,
                &columns,
                column.index_column,
                after,
            )
            .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.try_get::<Uuid>("", "id")?);
            for row in &rows {
                pass.row(column, row, &mut report).await?;
            }
            progress(column.table, column.index_column, &report);
        }
    }
    record_reindex(state, &report).await?;
    tracing::info!(
        reindexed = report.reindexed,
        examined = report.examined,
        unmatched = report.unmatched,
        conflicts = report.conflicts,
        "blind-index rotation finished"
    );
    Ok(report)
}

/// One re-indexing pass: the state and both blind-index keys.
struct Reindex<'a> {
    state: &'a AppState,
    active: &'a BlindIndex,
    previous: &'a BlindIndex,
}

/// One stored row of a blind-indexed column.
struct IndexedRow {
    id: Uuid,
    index: Vec<u8>,
    value: Vec<u8>,
    owner: Option<Uuid>,
}

impl Reindex<'_> {
    /// Re-indexes one row of `column` if its index is under the previous
    /// key, and counts what became of it.
    async fn row(
        &self,
        column: &BlindIndexedColumn,
        row: &QueryResult,
        report: &mut ReindexReport,
    ) -> Result<(), RotationError> {
        let id: Uuid = row.try_get("", "id")?;
        let stored_index: Vec<u8> = row.try_get("", "i")?;
        let stored_value: Option<Vec<u8>> = row.try_get("", "v")?;
        let owner: Option<Uuid> = row.try_get("", "o")?;
        report.examined += 1;
        let (table, index_column) = (column.table, column.index_column);
        let Some(stored_value) = stored_value else {
            // An index without a value: nothing to recompute from.
            report.unmatched += 1;
            tracing::warn!(%table, column = %index_column, %id, "blind index without a value: left alone");
            return Ok(());
        };
        let row = IndexedRow {
            id,
            index: stored_index,
            value: stored_value,
            owner,
        };
        let Some(normal) = self.normal_form(column, &row).await? else {
            return Ok(());
        };
        if row.index == self.active.compute(column.field, &normal) {
            return Ok(());
        }
        if row.index != self.previous.compute(column.field, &normal) {
            report.unmatched += 1;
            tracing::warn!(%table, column = %index_column, %id, "blind index under neither key: left alone");
            return Ok(());
        }
        if table == "accounts" {
            // Sign-in counted this name under the previous key's subject
            // until the restart; nothing reads it now.
            let dropped = login_throttle::Entity::delete_many()
                .filter(
                    login_throttle::Column::SubjectBidx
                        .eq(throttle::subject(self.previous, &row.index)),
                )
                .exec(self.state.db())
                .await?;
            report.throttle_dropped += dropped.rows_affected;
        }
        let fresh = self.active.compute(column.field, &normal);
        self.rewrite(column, row, fresh, report).await
    }

    /// The value of `row` decrypted and put in its writer's normal form;
    /// `None` when its account's data key is gone (nothing can read it, so
    /// there is nothing to re-index).
    async fn normal_form(
        &self,
        column: &BlindIndexedColumn,
        row: &IndexedRow,
    ) -> Result<Option<Zeroizing<String>>, RotationError> {
        let crypto_error = |source| RotationError::Crypto {
            table: column.table.to_owned(),
            column: column.value_column.to_owned(),
            id: row.id,
            source,
        };
        let context = FieldContext {
            table: column.table,
            column: column.value_column.trim_end_matches("_ct"),
            row_id: row.id,
        };
        let key = match row.owner {
            Some(owner) => match self.state.read_key(owner, &[&row.value]).await {
                Ok(key) => key,
                Err(err) if crate::accounts::service::is_unreadable(&err) => {
                    self.state.account_unreadable(owner);
                    return Ok(None);
                }
                Err(err) => return Err(crypto_error(err)),
            },
            None => None,
        };
        let plain = self
            .state
            .cipher()
            .decrypt_under(key.as_deref(), &context, &row.value)
            .map_err(crypto_error)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| crypto_error(crate::crypto::CryptoError::Malformed))?;
        Ok(Some(Zeroizing::new((column.normal_form)(text))))
    }

    /// Writes the `fresh` index of `row` while the row still holds the
    /// index and ciphertext read.
    async fn rewrite(
        &self,
        column: &BlindIndexedColumn,
        row: IndexedRow,
        fresh: Vec<u8>,
        report: &mut ReindexReport,
    ) -> Result<(), RotationError> {
        let db = self.state.db();
        let backend = db.get_database_backend();
        let BlindIndexedColumn {
            table,
            index_column,
            value_column,
            ..
        } = *column;
        let update = format!(
            "UPDATE {table} SET {index_column} = {} \
             WHERE id = {} AND {index_column} = {} AND {value_column} = {}",
            placeholder(backend, 1),
            placeholder(backend, 2),
            placeholder(backend, 3),
            placeholder(backend, 4)
        );
        let id = row.id;
        let result = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                update,
                [fresh.into(), id.into(), row.index.into(), row.value.into()],
            ))
            .await;
        match result {
            Ok(done) if done.rows_affected() == 1 => report.reindexed += 1,
            Ok(_) => report.raced += 1,
            Err(err) if crate::db::is_unique_violation(&err) => {
                // Two rows hold one value, one under each key: only a
                // person can tell which should keep it.
                report.conflicts += 1;
                tracing::warn!(%table, column = %index_column, %id, "active-key blind index already held by another row: left alone");
            }
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }
}

/// Writes the `keys.reindex` audit entry with the pass's counts.
async fn record_reindex(state: &AppState, report: &ReindexReport) -> Result<(), RotationError> {
    crate::audit::service::append_alone(
        state.db(),
        crate::audit::service::AuditRecord {
            actor_id: None,
            action: "keys.reindex",
            subject_id: None,
            detail: format!(
                "examined={} reindexed={} raced={} unmatched={} conflicts={} throttle_dropped={}",
                report.examined,
                report.reindexed,
                report.raced,
                report.unmatched,
                report.conflicts,
                report.throttle_dropped
            ),
        },
        state.clock().now(),
    )
    .await?;
    Ok(())
}
