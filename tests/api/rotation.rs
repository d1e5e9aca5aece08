//! Key rotation: every encrypted field moves to the new key and stays
//! readable, every blind index moves to the new blind-index key and stays
//! findable throughout; the old keys can then be retired.

use custos::{
    crypto::BlindIndex,
    settings::{KeySource, Settings},
    state::{AppState, Overrides},
};
use sea_orm::EntityTrait;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{
    PASSWORD, due_for_purge, error_code, file_ticket, given_keys, link_token, login,
    record_consent, signed_in, signup, spawn_app, verify_email,
};

async fn state_with_keys(app: &crate::helpers::TestApp, keys: &str) -> AppState {
    let mut raw =
        crate::helpers::test_settings(app.state.settings().database.url.expose_secret(), &app.smtp);
    raw.encryption_keys = Some(keys.to_owned());
    if let KeySource::Given {
        blind_index_key, ..
    } = &app.state.settings().keys.source
    {
        raw.blind_index_key = Some(blind_index_key.expose_secret().to_owned());
    }
    AppState::build(
        Settings::validate(raw).unwrap(),
        Overrides {
            clock: Some(app.clock.clone()),
            transport: None,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rotation_moves_every_field_to_the_active_key_and_keeps_it_readable() {
    let app = spawn_app().await;
    let token = signed_in(&app, "rotating_person", "rotating@example.org").await;
    record_consent(&app, &token, "product_updates", true).await;
    file_ticket(
        &app,
        &token,
        "CONSULTATION",
        "Rotating subject",
        "Rotating body",
    )
    .await;
    let (old, _) = given_keys(&app);
    let fresh = custos::crypto::keys::generate("k2").unwrap();
    let both = format!("{},{old}", fresh.encryption_keys.expose_secret());

    let rotating = state_with_keys(&app, &both).await;
    let columns = custos::commands::rotation::encrypted_columns(rotating.db())
        .await
        .unwrap();
    for expected in [
        ("accounts", "email_ct"),
        ("account_keys", "wrapped_key_ct"),
        ("tickets", "subject_ct"),
        ("ticket_messages", "body_ct"),
        ("outbox", "recipient_ct"),
    ] {
        assert!(
            columns
                .iter()
                .any(|(t, c)| t == expected.0 && c == expected.1),
            "{expected:?}"
        );
    }
    let report = custos::commands::rotation::rotate(&rotating, |_, _, _| {})
        .await
        .unwrap();
    // The person's fields are under their own data key: rotating the
    // keyring re-wraps that key (one value) and leaves the fields alone.
    assert!(report.rotated >= 1, "{report:?}");
    assert_eq!(report.raced, 0);
    let again = custos::commands::rotation::rotate(&rotating, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(again.rotated, 0, "a second run has nothing left to do");

    // The new key alone reads everything.
    let only_new = state_with_keys(&app, fresh.encryption_keys.expose_secret()).await;
    let account = entity::account::Entity::find()
        .one(only_new.db())
        .await
        .unwrap()
        .unwrap();
    let record = custos::accounts::service::open(&only_new, &account)
        .await
        .unwrap();
    assert_eq!(record.email, "rotating@example.org");
    assert_eq!(
        custos::crypto::fields::key_id_of(&account.email_ct),
        Some(custos::crypto::fields::ACCOUNT_KEY_ID)
    );
    let wrapped = entity::account_key::Entity::find_by_id(account.id)
        .one(only_new.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        custos::crypto::fields::key_id_of(&wrapped.wrapped_key_ct),
        Some("k2")
    );
    let _ = token;
}

/// Decrypts a stored value, as its writer sealed it: under the data key
/// of `owner` (the account it belongs to), or the keyring.
async fn decrypt(
    state: &AppState,
    owner: Option<uuid::Uuid>,
    (table, column, id): (&str, &str, uuid::Uuid),
    stored: &[u8],
) -> String {
    let key = match owner {
        Some(owner) => state.read_key(owner, &[stored]).await.unwrap(),
        None => None,
    };
    state
        .cipher()
        .decrypt_str_under(
            key.as_deref(),
            &custos::crypto::FieldContext {
                table,
                column,
                row_id: id,
            },
            stored,
        )
        .unwrap()
}

/// Checks every blind index in the database against `key`, recomputed here
/// from the decrypted value (independently of the rotation's own table of
/// columns); returns how many indexes were checked per table.
async fn assert_every_index_under(state: &AppState, key: &BlindIndex) -> [usize; 4] {
    use custos::{accounts::username::canonical, crypto::normalise_email};
    let db = state.db();
    let accounts = entity::account::Entity::find().all(db).await.unwrap();
    for row in &accounts {
        let owner = Some(row.id);
        let username = decrypt(
            state,
            owner,
            ("accounts", "username", row.id),
            &row.username_ct,
        )
        .await;
        let email = decrypt(state, owner, ("accounts", "email", row.id), &row.email_ct).await;
        assert_eq!(
            row.username_bidx,
            key.compute("username", &canonical(&username)),
            "accounts.username_bidx of {}",
            row.id
        );
        assert_eq!(
            row.email_bidx,
            key.compute("email", &normalise_email(&email)),
            "accounts.email_bidx of {}",
            row.id
        );
    }
    let mut tokens = 0;
    for row in entity::account_token::Entity::find().all(db).await.unwrap() {
        if let (Some(ct), Some(bidx)) = (&row.new_email_ct, &row.new_email_bidx) {
            let owner = Some(row.account_id);
            let email = decrypt(state, owner, ("account_tokens", "new_email", row.id), ct).await;
            assert_eq!(
                bidx,
                &key.compute("email", &normalise_email(&email)),
                "account_tokens.new_email_bidx of {}",
                row.id
            );
            tokens += 1;
        }
    }
    let mut tickets = 0;
    for row in entity::ticket::Entity::find().all(db).await.unwrap() {
        if let (Some(ct), Some(bidx)) = (&row.contact_email_ct, &row.contact_email_bidx) {
            let owner = row.account_id;
            let email = decrypt(state, owner, ("tickets", "contact_email", row.id), ct).await;
            assert_eq!(
                bidx,
                &key.compute("email", &normalise_email(&email)),
                "tickets.contact_email_bidx of {}",
                row.id
            );
            tickets += 1;
        }
    }
    let outbox = entity::outbox::Entity::find().all(db).await.unwrap();
    for row in &outbox {
        let owner = row.account_id;
        let to = decrypt(
            state,
            owner,
            ("outbox", "recipient", row.id),
            &row.recipient_ct,
        )
        .await;
        assert_eq!(
            row.recipient_bidx,
            key.compute("email", &normalise_email(&to)),
            "outbox.recipient_bidx of {}",
            row.id
        );
    }
    [accounts.len(), tokens, tickets, outbox.len()]
}

#[tokio::test]
async fn blind_indexes_move_to_the_new_key_and_lookups_work_throughout() {
    use sea_orm::PaginatorTrait;

    // Under key A: two accounts, a guest ticket, a pending email change
    // (its link and notice still queued), a failed sign-in counted.
    let app = spawn_app().await;
    let (encryption_keys, key_a) = given_keys(&app);
    signed_in(&app, "Rotating_Ada", "Ada.Rotates@Example.org").await;
    let bob = signed_in(&app, "bob_rotates", "bob.rotates@example.org").await;
    let body = app
        .gql_with_token(
            Some(&bob),
            "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }",
            json!({ "e": "Bob.Moved@Example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    let body = app
        .gql(
            "mutation($input: CreateTicketInput!) { createTicket(input: $input) { id } }",
            json!({ "input": {
                "category": "COMPLAINT",
                "subject": "Guest before the rotation",
                "body": "Please answer me.",
                "contactUsername": "Guest Person",
                "contactEmail": " Guest.Person@Example.org ",
            } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql(
            "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }",
            json!({ "l": "bob_rotates", "p": "a wrong passphrase" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    let queued = custos::mail::outbox::pending_count(app.state.db())
        .await
        .unwrap();
    assert!(
        queued >= 2,
        "the change's link and notice wait in the outbox"
    );
    let key_a_index = BlindIndex::parse(&key_a).unwrap();
    let counted = assert_every_index_under(&app.state, &key_a_index).await;
    assert_eq!(counted[0], 2);
    assert!(
        counted[1] >= 1 && counted[2] >= 1 && counted[3] >= 4,
        "{counted:?}"
    );

    // Restart with key B active and key A as the previous key.
    let key_b = custos::crypto::keys::generate("unused")
        .unwrap()
        .blind_index_key
        .expose_secret()
        .to_owned();
    let app = {
        let (encryption_keys, key_a, key_b) =
            (encryption_keys.clone(), key_a.clone(), key_b.clone());
        app.restart_with(move |raw| {
            raw.encryption_keys = Some(encryption_keys);
            raw.blind_index_key = Some(key_b);
            raw.blind_index_previous_key = Some(key_a);
        })
        .await
    };

    // Before the rotation: sign-in by username and by email finds rows
    // indexed under A, and uniqueness still sees them.
    login(&app, "rotating-ada", PASSWORD).await;
    login(&app, " ADA.rotates@example.org ", PASSWORD).await;
    let body = signup(&app, "ROTATING_ada", "someone.else@example.org").await;
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"), "{body}");
    let body = signup(&app, "a_new_person", "ada.rotates@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    assert_eq!(
        entity::account::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        2,
        "no second account for a taken address"
    );
    // The owner is told of the attempt, through a mail indexed under B.
    app.deliver_mail().await;
    assert!(app.mail_to("ada.rotates@example.org").len() >= 2);

    // The rotation recomputes everything under A, and only that.
    let mut batches = 0;
    let report = custos::commands::rotation::reindex(&app.state, |_, _, _| batches += 1)
        .await
        .unwrap();
    assert!(report.had_previous_key);
    assert!(batches >= 5, "progress after each batch of each column");
    assert_eq!(
        (report.raced, report.unmatched, report.conflicts),
        (0, 0, 0),
        "{report:?}"
    );
    assert!(report.reindexed >= 8, "{report:?}");
    assert_eq!(report.throttle_dropped, 1, "bob's counter under A");
    // Bob's count from his network stays until the job runner prunes it:
    // it is tied to no account, and dead once its key is gone.
    assert_eq!(
        entity::login_throttle::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        1
    );
    let key_b_index = BlindIndex::parse(&key_b).unwrap();
    let after = assert_every_index_under(&app.state, &key_b_index).await;
    assert_eq!(after[..3], counted[..3], "{after:?}");

    let again = custos::commands::rotation::reindex(&app.state, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(again.examined, report.examined, "{again:?}");
    assert_eq!(
        (
            again.reindexed,
            again.raced,
            again.unmatched,
            again.throttle_dropped
        ),
        (0, 0, 0, 0),
        "a second run changes nothing: {again:?}"
    );

    // Key B alone: everything is found, and the email change made under A
    // completes.
    let app = {
        let key_b = key_b.clone();
        app.restart_with(move |raw| {
            raw.encryption_keys = Some(encryption_keys);
            raw.blind_index_key = Some(key_b);
        })
        .await
    };
    assert!(app.state.blind().previous().is_none());
    let nothing = custos::commands::rotation::reindex(&app.state, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        nothing,
        custos::commands::rotation::ReindexReport::default()
    );
    login(&app, "Rotating_Ada", PASSWORD).await;
    login(&app, "ada.rotates@EXAMPLE.org", PASSWORD).await;
    let body = signup(&app, "rotatingada", "third.person@example.org").await;
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"), "{body}");

    app.deliver_mail().await;
    let link = app
        .last_mail_to("Bob.Moved@Example.org")
        .and_then(|mail| link_token(&mail, "/verify-email"))
        .expect("email change link sent under A");
    let body = verify_email(&app, &link).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    login(&app, "bob.moved@example.org", PASSWORD).await;
    assert_every_index_under(&app.state, &key_b_index).await;
}

#[tokio::test]
async fn every_blind_index_column_is_known_to_the_rotation() {
    let app = spawn_app().await;
    let mut in_schema = custos::commands::rotation::blind_index_columns(app.state.db())
        .await
        .unwrap();
    in_schema.sort();
    let mut known: Vec<(String, String)> = custos::commands::rotation::BLIND_INDEXED_COLUMNS
        .iter()
        .map(|c| (c.table.to_owned(), c.index_column.to_owned()))
        .chain(
            custos::commands::rotation::EPHEMERAL_BLIND_INDEX_COLUMNS
                .iter()
                .map(|(t, c)| ((*t).to_owned(), (*c).to_owned())),
        )
        .collect();
    known.sort();
    assert_eq!(
        in_schema, known,
        "a new *_bidx column needs an entry in custos::commands::rotation::BLIND_INDEXED_COLUMNS"
    );
    for column in custos::commands::rotation::BLIND_INDEXED_COLUMNS {
        assert!(
            custos::commands::rotation::encrypted_columns(app.state.db())
                .await
                .unwrap()
                .contains(&(column.table.to_owned(), column.value_column.to_owned())),
            "{column:?}"
        );
    }
}

/// Runs `custos keys rotate` against the app's database with the given
/// key settings and nothing else from this process's environment.
async fn keys_rotate(app: &crate::helpers::TestApp, env: &[(&str, &str)]) -> std::process::Output {
    crate::helpers::run_custos(app, &["keys", "rotate"], env).await
}

#[tokio::test]
async fn keys_rotate_command_recomputes_blind_indexes_and_reports_counts() {
    let app = spawn_app().await;
    let (encryption_keys, key_a) = given_keys(&app);
    signed_in(&app, "cli_rotating", "cli.rotating@example.org").await;
    let key_b = custos::crypto::keys::generate("unused")
        .unwrap()
        .blind_index_key
        .expose_secret()
        .to_owned();

    let without_previous = keys_rotate(
        &app,
        &[
            ("CUSTOS_ENCRYPTION_KEYS", &encryption_keys),
            ("CUSTOS_BLIND_INDEX_KEY", &key_a),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&without_previous.stdout);
    assert!(without_previous.status.success(), "{stdout}");
    assert!(stdout.contains("nothing to recompute"), "{stdout}");

    let env = [
        ("CUSTOS_ENCRYPTION_KEYS", encryption_keys.as_str()),
        ("CUSTOS_BLIND_INDEX_KEY", key_b.as_str()),
        ("CUSTOS_BLIND_INDEX_PREVIOUS_KEY", key_a.as_str()),
    ];
    let first = keys_rotate(&app, &env).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stdout}{stderr}");
    // Two names of the account and the verification mail's recipient.
    assert!(stdout.contains(", 3 recomputed,"), "{stdout}");
    assert!(stdout.contains("may be unset"), "{stdout}");
    assert!(
        stderr.contains("accounts.username_bidx:"),
        "progress: {stderr}"
    );
    for secret in [&key_a, &key_b, &encryption_keys] {
        assert!(!stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()));
    }
    assert!(!stdout.contains("cli.rotating") && !stderr.contains("cli.rotating"));

    let second = keys_rotate(&app, &env).await;
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}");
    assert!(stdout.contains(", 0 recomputed,"), "{stdout}");
}

#[tokio::test]
async fn a_deletion_during_the_rotation_erases_rows_under_either_key() {
    use sea_orm::PaginatorTrait;

    // Under key A: an account, a guest ticket from its address, a failed
    // sign-in counted against its name.
    let app = spawn_app().await;
    let (encryption_keys, key_a) = given_keys(&app);
    signed_in(&app, "leaving_midway", "leaving.midway@example.org").await;
    let body = app
        .gql(
            "mutation($input: CreateTicketInput!) { createTicket(input: $input) { id } }",
            json!({ "input": {
                "category": "CONSULTATION",
                "subject": "Asked as a guest",
                "body": "Before I had an account.",
                "contactEmail": "Leaving.Midway@example.org",
            } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql(
            "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }",
            json!({ "l": "leaving_midway", "p": "a wrong passphrase" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");

    // Restarted with key B and A as the previous key, before any rotation.
    let key_b = custos::crypto::keys::generate("unused")
        .unwrap()
        .blind_index_key
        .expose_secret()
        .to_owned();
    let app = app
        .restart_with(move |raw| {
            raw.encryption_keys = Some(encryption_keys);
            raw.blind_index_key = Some(key_b);
            raw.blind_index_previous_key = Some(key_a);
        })
        .await;
    // A second guest ticket, indexed under B while the account is under A.
    let body = app
        .gql(
            "mutation($input: CreateTicketInput!) { createTicket(input: $input) { id } }",
            json!({ "input": {
                "category": "CONSULTATION",
                "subject": "Asked as a guest again",
                "body": "During the rotation.",
                "contactEmail": "leaving.midway@EXAMPLE.org",
            } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // The account under A is found by name and address, mailed and confirmed.
    due_for_purge(&app, "Leaving_Midway", "leaving.midway@example.org").await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(report.rows.get("tickets"), Some(&2), "{report:?}");
    assert_eq!(report.rows.get("login_throttle"), Some(&1), "{report:?}");

    let db = app.state.db();
    assert_eq!(entity::ticket::Entity::find().count(db).await.unwrap(), 0);
    // The count from the guesser's network is tied to no account: the job
    // runner prunes it once its window ends.
    assert_eq!(
        entity::login_throttle::Entity::find()
            .count(db)
            .await
            .unwrap(),
        1
    );
    app.deliver_mail().await;
    assert_eq!(
        entity::outbox::Entity::find().count(db).await.unwrap(),
        0,
        "no mail row under either key keeps the address"
    );
}

#[tokio::test]
async fn rotation_pages_through_more_rows_than_one_batch() {
    let app = spawn_app().await;
    let rows = 2 * custos::commands::rotation::BATCH as usize + 34;
    crate::notices::seed_accounts(&app, rows).await;
    let (old, _) = given_keys(&app);
    let fresh = custos::crypto::keys::generate("k2").unwrap();
    let both = format!("{},{old}", fresh.encryption_keys.expose_secret());
    let rotating = state_with_keys(&app, &both).await;

    let mut key_batches = 0;
    let report = custos::commands::rotation::rotate(&rotating, |table, column, _| {
        if (table, column) == ("account_keys", "wrapped_key_ct") {
            key_batches += 1;
        }
    })
    .await
    .unwrap();
    assert_eq!(key_batches, 3, "three pages of account keys");
    // Every seeded account's wrapped data key, at least.
    assert!(report.rotated >= rows as u64, "{report:?}");
    let keys = entity::account_key::Entity::find()
        .all(rotating.db())
        .await
        .unwrap();
    assert_eq!(keys.len(), rows);
    for key in &keys {
        assert_eq!(
            custos::crypto::fields::key_id_of(&key.wrapped_key_ct),
            Some("k2")
        );
    }
    // The new key alone still reads every account, through its data key.
    let only_new = state_with_keys(&app, fresh.encryption_keys.expose_secret()).await;
    for account in entity::account::Entity::find()
        .all(only_new.db())
        .await
        .unwrap()
    {
        custos::accounts::service::open(&only_new, &account)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_encrypted_table_says_whose_key_its_values_take() {
    let app = spawn_app().await;
    for (table, column) in custos::commands::rotation::encrypted_columns(app.state.db())
        .await
        .unwrap()
    {
        let owned = custos::commands::rotation::OWNER_OF_ROW
            .iter()
            .any(|(t, _)| *t == table);
        let keyring_only =
            custos::commands::rotation::KEYRING_ONLY_TABLES.contains(&table.as_str());
        assert!(
            owned != keyring_only,
            "{table}.{column} needs an entry in OWNER_OF_ROW or KEYRING_ONLY_TABLES"
        );
    }
}

#[tokio::test]
async fn rotation_moves_fields_written_before_account_keys_under_them() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = spawn_app().await;
    let state = &app.state;
    let now = app.clock.now();
    // An account, its ticket and message as an earlier version wrote them:
    // under the keyring, with no data key.
    let keyring_seal = |table: &str, column: &str, id: uuid::Uuid, value: &str| {
        state
            .cipher()
            .encrypt_str(
                &custos::crypto::FieldContext {
                    table,
                    column,
                    row_id: id,
                },
                value,
            )
            .unwrap()
    };
    let account = uuid::Uuid::new_v4();
    entity::account::ActiveModel {
        id: Set(account),
        username_ct: Set(keyring_seal("accounts", "username", account, "old_timer")),
        username_bidx: Set(state.blind().active().compute("username", "oldtimer")),
        email_ct: Set(keyring_seal(
            "accounts",
            "email",
            account,
            "old.timer@example.org",
        )),
        email_bidx: Set(state
            .blind()
            .active()
            .compute("email", "old.timer@example.org")),
        email_verified: Set(true),
        password_hash: Set("$argon2id$legacy".into()),
        role: Set("USER".into()),
        language: Set("en".into()),
        age_declaration: Set("ADULT".into()),
        guardian_consent: Set("NOT_NEEDED".into()),
        guardian_email_ct: Set(None),
        accepted_policy_version: Set(None),
        status: Set("ACTIVE".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(state.db())
    .await
    .unwrap();
    let ticket = uuid::Uuid::new_v4();
    entity::ticket::ActiveModel {
        id: Set(ticket),
        reference: Set("L-00000001".into()),
        account_id: Set(Some(account)),
        category: Set("CONSULTATION".into()),
        status: Set("OPEN".into()),
        subject_ct: Set(keyring_seal("tickets", "subject", ticket, "Legacy subject")),
        contact_username_ct: Set(None),
        contact_email_ct: Set(None),
        contact_email_bidx: Set(None),
        language: Set("en".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(state.db())
    .await
    .unwrap();
    let message = uuid::Uuid::new_v4();
    entity::ticket_message::ActiveModel {
        id: Set(message),
        ticket_id: Set(ticket),
        seq: Set(1),
        author: Set("REQUESTER".into()),
        staff_id: Set(None),
        body_ct: Set(keyring_seal(
            "ticket_messages",
            "body",
            message,
            "Legacy body",
        )),
        created_at: Set(now),
    }
    .insert(state.db())
    .await
    .unwrap();
    // A guest's ticket has no account: it stays under the keyring.
    let guest = app
        .gql(
            "mutation { createTicket(input: { category: CONSULTATION, subject: \"Guest subject\", body: \"Guest body\", contactEmail: \"guest@example.org\" }) { id } }",
            json!({}),
        )
        .await;
    assert!(guest["data"]["createTicket"]["id"].is_string(), "{guest}");

    let report = custos::commands::rotation::rotate(state, |_, _, _| {})
        .await
        .unwrap();
    assert!(report.rotated >= 4, "{report:?}");
    let key_id = |stored: &[u8]| custos::crypto::fields::key_id_of(stored).map(str::to_owned);
    let row = entity::account::Entity::find_by_id(account)
        .one(state.db())
        .await
        .unwrap()
        .unwrap();
    let under_account_key = Some(custos::crypto::fields::ACCOUNT_KEY_ID.to_owned());
    assert_eq!(key_id(&row.username_ct), under_account_key);
    assert_eq!(key_id(&row.email_ct), under_account_key);
    let record = custos::accounts::service::open(state, &row).await.unwrap();
    assert_eq!(
        (record.username.as_str(), record.email.as_str()),
        ("old_timer", "old.timer@example.org")
    );
    let stored_ticket = entity::ticket::Entity::find_by_id(ticket)
        .one(state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key_id(&stored_ticket.subject_ct), under_account_key);
    let stored_message = entity::ticket_message::Entity::find_by_id(message)
        .one(state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key_id(&stored_message.body_ct), under_account_key);
    for guest_ticket in entity::ticket::Entity::find()
        .all(state.db())
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.account_id.is_none())
    {
        assert_ne!(key_id(&guest_ticket.subject_ct), under_account_key);
    }
    assert!(
        entity::account_key::Entity::find_by_id(account)
            .one(state.db())
            .await
            .unwrap()
            .is_some()
    );
    let again = custos::commands::rotation::rotate(state, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(again.rotated, 0, "{again:?}");
}
