//! Encrypted fields never reach the database in clear.

use sea_orm::{ConnectionTrait, Statement};
use secrecy::SecretString;

use crate::helpers::{TestApp, TestDatabase, spawn_app};

/// Fails when any needle appears in clear anywhere in the database: every
/// SQLite file byte, or every row of every PostgreSQL table (as JSON, with
/// binary columns in hex, so both forms are searched).
pub async fn assert_no_plaintext(app: &TestApp, needles: &[&str]) {
    match &*app.database {
        TestDatabase::Sqlite(dir) => {
            // Checkpoint the WAL so every page is in the main file, then scan all files.
            app.state
                .db()
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .unwrap();
            for entry in std::fs::read_dir(dir).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                for needle in needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "plaintext {needle:?} found in the database files"
                    );
                }
            }
        }
        TestDatabase::Postgres { .. } => {
            let db = app.state.db();
            let backend = db.get_database_backend();
            let tables = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                ))
                .await
                .unwrap();
            assert!(!tables.is_empty());
            for table in tables {
                let name: String = table.try_get("", "tablename").unwrap();
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT row_to_json(t)::text AS dump FROM \"{name}\" t"),
                    ))
                    .await
                    .unwrap();
                for row in rows {
                    let dump: String = row.try_get("", "dump").unwrap();
                    for needle in needles {
                        assert!(!dump.contains(needle), "plaintext {needle:?} in {name}");
                        assert!(
                            !dump.contains(&hex::encode(needle)),
                            "hex of {needle:?} in {name}"
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn database_holds_no_plaintext_username_or_email() {
    let app = spawn_app().await;
    custos::accounts::service::create_admin(
        &app.state,
        "plainscan_admin",
        "plainscan.person@example.org",
        SecretString::from("a long enough passphrase".to_owned()),
    )
    .await
    .unwrap();
    assert_no_plaintext(
        &app,
        &[
            "plainscan_admin",
            "plainscan.person@example.org",
            "plainscan",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
    use custos::crypto::fields::FieldContext;
    let app = spawn_app().await;
    let cipher = app.state.cipher();
    let first = uuid::Uuid::new_v4();
    let second = uuid::Uuid::new_v4();
    let sealed = cipher
        .encrypt_str(
            &FieldContext {
                table: "accounts",
                column: "email",
                row_id: first,
            },
            "moved@example.org",
        )
        .unwrap();
    let moved = cipher.decrypt_str(
        &FieldContext {
            table: "accounts",
            column: "email",
            row_id: second,
        },
        &sealed,
    );
    assert!(moved.is_err());
    let other_column = cipher.decrypt_str(
        &FieldContext {
            table: "accounts",
            column: "username",
            row_id: first,
        },
        &sealed,
    );
    assert!(other_column.is_err());
}
