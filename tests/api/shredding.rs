//! Crypto-shredding: an account's personal fields are under its own data
//! key, and the purge destroys that key, so a copy of the rows taken before
//! the purge (a backup) can no longer be read after it.

use custos::crypto::{
    CryptoError, FieldContext,
    fields::{ACCOUNT_KEY_ID, key_id_of},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, SIGN_IN, TestApp, TestDatabase, due_for_purge, file_ticket, given_keys, lift_refusal,
    my_id, record_consent, refuse, signed_in, spawn_app_with,
};

const USERNAME: &str = "shredded_person";
const EMAIL: &str = "shredded@example.org";
const AGENT: &str = "ShredBrowser/1.0 (okapi)";
const SUBJECT: &str = "Backup subject okapi";
const BODY: &str = "Backup body tapir";

/// A server whose account keys live in a database of their own, and a
/// connection to that key store.
async fn app_with_key_store() -> (TestApp, TestDatabase, DatabaseConnection) {
    let (store, store_url) = TestDatabase::create().await;
    let url = store_url.clone();
    let app = spawn_app_with(move |raw| raw.key_store_url = Some(url)).await;
    let conn = sea_orm::Database::connect(&store_url).await.unwrap();
    (app, store, conn)
}

/// Signs the person up, signs in once more from a browser (a session with
/// a user agent), files a ticket and sends their mail; answers their id.
async fn person_with_data(app: &TestApp) -> Uuid {
    let token = signed_in(app, USERNAME, EMAIL).await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("User-Agent", AGENT)
        .json(&json!({
            "query": SIGN_IN,
            "variables": { "l": USERNAME, "p": PASSWORD },
        }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    record_consent(app, &token, "product_updates", true).await;
    let body = file_ticket(app, &token, "COMPLAINT", SUBJECT, BODY).await;
    assert!(body["data"]["createTicket"]["id"].is_string(), "{body}");
    app.deliver_mail().await;
    my_id(app, &token).await.parse().unwrap()
}

/// One encrypted value copied out of the database, with where it was.
struct Copied {
    table: &'static str,
    column: &'static str,
    row_id: Uuid,
    stored: Vec<u8>,
}

/// What a backup holds of one account: every encrypted value of its rows.
async fn backup_of(app: &TestApp, account: Uuid) -> Vec<Copied> {
    let db = app.state.db();
    let mut copied = Vec::new();
    let row = entity::account::Entity::find_by_id(account)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    for (column, stored) in [("username", row.username_ct), ("email", row.email_ct)] {
        copied.push(Copied {
            table: "accounts",
            column,
            row_id: account,
            stored,
        });
    }
    for session in entity::session::Entity::find()
        .filter(entity::session::Column::AccountId.eq(account))
        .all(db)
        .await
        .unwrap()
    {
        if let Some(stored) = session.user_agent_ct {
            copied.push(Copied {
                table: "sessions",
                column: "user_agent",
                row_id: session.id,
                stored,
            });
        }
    }
    let tickets = entity::ticket::Entity::find()
        .filter(entity::ticket::Column::AccountId.eq(account))
        .all(db)
        .await
        .unwrap();
    for ticket in &tickets {
        copied.push(Copied {
            table: "tickets",
            column: "subject",
            row_id: ticket.id,
            stored: ticket.subject_ct.clone(),
        });
    }
    for message in entity::ticket_message::Entity::find()
        .filter(entity::ticket_message::Column::TicketId.is_in(tickets.iter().map(|t| t.id)))
        .all(db)
        .await
        .unwrap()
    {
        copied.push(Copied {
            table: "ticket_messages",
            column: "body",
            row_id: message.id,
            stored: message.body_ct,
        });
    }
    for mail in entity::outbox::Entity::find()
        .filter(entity::outbox::Column::AccountId.eq(account))
        .all(db)
        .await
        .unwrap()
    {
        for (column, stored) in [
            ("recipient", mail.recipient_ct),
            ("subject", mail.subject_ct),
            ("body_text", mail.body_text_ct),
        ] {
            copied.push(Copied {
                table: "outbox",
                column,
                row_id: mail.id,
                stored,
            });
        }
    }
    copied
}

/// Reads every copied value as the service would: with the account's data
/// key from the key store.
async fn read_backup(
    app: &TestApp,
    account: Uuid,
    copied: &[Copied],
) -> Result<Vec<String>, CryptoError> {
    let mut plain = Vec::with_capacity(copied.len());
    for value in copied {
        let key = app.state.read_key(account, &[&value.stored]).await?;
        plain.push(app.state.cipher().decrypt_str_under(
            key.as_deref(),
            &FieldContext {
                table: value.table,
                column: value.column,
                row_id: value.row_id,
            },
            &value.stored,
        )?);
    }
    Ok(plain)
}

async fn keys_in_store(store: &DatabaseConnection, account: Uuid) -> usize {
    entity::account_key::Entity::find_by_id(account)
        .all(store)
        .await
        .unwrap()
        .len()
}

async fn pending(app: &TestApp) -> usize {
    entity::pending_key_destruction::Entity::find()
        .all(app.state.db())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_backup_taken_before_the_purge_cannot_be_read_after_it() {
    let (app, _store, store) = app_with_key_store().await;
    let account = person_with_data(&app).await;
    assert_eq!(keys_in_store(&store, account).await, 1);
    assert!(
        entity::account_key::Entity::find()
            .all(app.state.db())
            .await
            .unwrap()
            .is_empty(),
        "with a key store, the main database holds no key"
    );

    let backup = backup_of(&app, account).await;
    let tables: Vec<&str> = backup.iter().map(|c| c.table).collect();
    for table in [
        "accounts",
        "sessions",
        "tickets",
        "ticket_messages",
        "outbox",
    ] {
        assert!(tables.contains(&table), "the backup holds {table}");
    }
    // Every personal value of the account is under its own key: the
    // keyring alone reads none of it.
    for value in &backup {
        assert_eq!(
            key_id_of(&value.stored),
            Some(ACCOUNT_KEY_ID),
            "{}.{}",
            value.table,
            value.column
        );
        let keyring_only = app.state.cipher().decrypt(
            &FieldContext {
                table: value.table,
                column: value.column,
                row_id: value.row_id,
            },
            &value.stored,
        );
        assert!(matches!(keyring_only, Err(CryptoError::AccountKeyNeeded)));
    }
    // While the key exists, the backup reads (so the check below can fail).
    let before = read_backup(&app, account, &backup).await.unwrap();
    for needle in [USERNAME, EMAIL, AGENT, SUBJECT, BODY] {
        assert!(before.iter().any(|p| p.contains(needle)), "{needle}");
    }

    due_for_purge(&app, USERNAME, EMAIL).await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(report.rows.get("account_keys"), Some(&1));
    assert_eq!(
        keys_in_store(&store, account).await,
        0,
        "the key is destroyed"
    );
    assert_eq!(pending(&app).await, 0, "nothing left to destroy");

    let after = read_backup(&app, account, &backup).await;
    assert!(
        matches!(after, Err(CryptoError::AccountKeyDestroyed)),
        "{after:?}"
    );
    // The receipt still reached the person: it was sealed under the
    // keyring before the key went.
    app.deliver_mail().await;
    let receipt = app.last_mail_to(EMAIL).unwrap();
    assert!(receipt.decoded_text().contains("erased") || receipt.decoded_text().contains("删除"));
}

#[tokio::test]
async fn keys_a_key_store_failed_to_destroy_are_destroyed_by_the_next_run() {
    let (app, _store, store) = app_with_key_store().await;
    let account = person_with_data(&app).await;
    due_for_purge(&app, USERNAME, EMAIL).await;

    refuse(
        &store,
        "refuse_key_delete",
        "DELETE",
        "account_keys",
        "TRUE",
    )
    .await;

    // The erasure itself commits; the key waits in the queue.
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert!(
        entity::account::Entity::find_by_id(account)
            .one(app.state.db())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(keys_in_store(&store, account).await, 1);
    assert_eq!(pending(&app).await, 1);

    // Still refused: a run changes nothing and fails nothing.
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0);
    assert_eq!(pending(&app).await, 1);

    lift_refusal(&store, "refuse_key_delete", "account_keys").await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0);
    assert_eq!(
        keys_in_store(&store, account).await,
        0,
        "destroyed on the next run"
    );
    assert_eq!(pending(&app).await, 0);
}

#[tokio::test]
async fn readiness_reports_a_key_store_that_does_not_answer() {
    let (app, _store, store) = app_with_key_store().await;
    let ready = |app: &TestApp| {
        let request = app.client.get(format!("{}/readyz", app.address));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&app).await, 200);
    app.state
        .keys()
        .separate_db()
        .unwrap()
        .clone()
        .close()
        .await
        .unwrap();
    assert_eq!(ready(&app).await, 503);
    drop(store);
}

#[tokio::test]
async fn the_cli_migrates_a_separate_key_store_and_rotation_rewraps_its_keys() {
    let (app, _store, store) = app_with_key_store().await;
    let account = person_with_data(&app).await;
    let (fresh_store, fresh_url) = TestDatabase::create().await;
    let migrated = crate::helpers::run_custos(
        &app,
        &["migrate"],
        &[("CUSTOS_KEY_STORE_URL", fresh_url.as_str())],
    )
    .await;
    assert!(migrated.status.success(), "{migrated:?}");
    let fresh = sea_orm::Database::connect(&fresh_url).await.unwrap();
    assert_eq!(
        entity::account_key::Entity::find()
            .all(&fresh)
            .await
            .unwrap()
            .len(),
        0,
        "the store's table exists (and is empty)"
    );
    drop(fresh_store);

    let (encryption_keys, blind_index_key) = given_keys(&app);
    use secrecy::ExposeSecret;
    let new_key = custos::crypto::keys::generate("k9").unwrap();
    let both = format!(
        "{},{}",
        new_key.encryption_keys.expose_secret(),
        encryption_keys.as_str()
    );
    let store_url = match &app.state.settings().database.key_store_url {
        Some(url) => url.expose_secret().to_owned(),
        None => panic!("the app has a key store"),
    };
    let rotated = crate::helpers::run_custos(
        &app,
        &["keys", "rotate"],
        &[
            ("CUSTOS_ENCRYPTION_KEYS", both.as_str()),
            ("CUSTOS_BLIND_INDEX_KEY", blind_index_key.as_str()),
            ("CUSTOS_KEY_STORE_URL", store_url.as_str()),
        ],
    )
    .await;
    assert!(rotated.status.success(), "{rotated:?}");
    let wrapped = entity::account_key::Entity::find_by_id(account)
        .one(&store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key_id_of(&wrapped.wrapped_key_ct), Some("k9"));
}
