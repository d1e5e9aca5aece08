//! Restores never bring an erased person back: a backup of the main
//! database taken before a purge, restored and started, answers for the
//! erased account as for no account, and the erasure journal (in the key
//! store, or a database of its own) has the account erased again before
//! anything is served. An account whose data key is gone is treated as
//! absent on every path, and never as an internal error.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestApp, TestDatabase, admin_token, due_for_purge, error_code, file_ticket,
    given_keys, link_token, login, my_id, record_consent, sign_in, signed_in, spawn_app_with,
};

const ALICE: (&str, &str) = ("alice_restored", "alice.restored@example.org");
const BOB: (&str, &str) = ("bob_kept", "bob.kept@example.org");

/// Everything the server logs while the guard lives, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's logs (the test runtime runs the server on
    /// the test's own thread) until the guard drops.
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|l| l.clone()).unwrap_or_default()).into_owned()
    }

    /// Panics with the offending lines if anything was logged at ERROR.
    fn assert_no_error(&self) {
        let text = self.text();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "errors logged:\n{}", errors.join("\n"));
    }
}

/// A copy of the main database, taken while the server runs.
enum Backup {
    /// A SQLite file written by `VACUUM INTO` (consistent in WAL mode).
    Sqlite(std::path::PathBuf),
    /// A plain `pg_dump` script.
    Postgres(std::path::PathBuf),
}

/// Backs up the app's main database as an operator would.
async fn back_up(app: &TestApp) -> Backup {
    let dir = std::env::temp_dir().join(format!("custos-backup-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    if app.is_postgres() {
        let file = dir.join("custos.sql");
        let status = std::process::Command::new("pg_dump")
            .args(["--no-owner", "--no-privileges", "--file"])
            .arg(&file)
            .arg(&app.database_url)
            .status()
            .expect("pg_dump runs");
        assert!(status.success(), "pg_dump failed");
        Backup::Postgres(file)
    } else {
        let file = dir.join("custos.db");
        let db = app.state.db();
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            format!("VACUUM INTO '{}'", file.display()),
        ))
        .await
        .unwrap();
        Backup::Sqlite(file)
    }
}

/// Puts `backup` in place of the main database (nothing is connected).
async fn restore(backup: &Backup, database: &TestDatabase, url: &str) {
    match (backup, database) {
        (Backup::Sqlite(file), TestDatabase::Sqlite(dir)) => {
            let live = dir.join("custos.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
            }
            std::fs::copy(file, &live).unwrap();
        }
        (Backup::Postgres(file), TestDatabase::Postgres { admin_url, name }) => {
            let admin = sea_orm::Database::connect(admin_url).await.unwrap();
            for statement in [
                format!("DROP DATABASE {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                admin.execute_unprepared(&statement).await.unwrap();
            }
            admin.close().await.unwrap();
            let status = std::process::Command::new("psql")
                .args(["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--file"])
                .arg(file)
                .arg(url)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("psql runs");
            assert!(status.success(), "psql restore failed");
        }
        _ => panic!("a backup restores onto its own kind of database"),
    }
    let dir = match backup {
        Backup::Sqlite(file) | Backup::Postgres(file) => file.parent().map(|d| d.to_owned()),
    };
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Signs the person up and leaves data in every table the purge erases:
/// a consent, a ticket with a message, sessions and mail. Answers the
/// session token and the account id.
async fn person_with_data(app: &TestApp, (username, email): (&str, &str)) -> (String, Uuid) {
    let token = signed_in(app, username, email).await;
    record_consent(app, &token, "product_updates", true).await;
    let body = file_ticket(
        app,
        &token,
        "COMPLAINT",
        "Restored subject",
        "Restored body",
    )
    .await;
    assert!(body["data"]["createTicket"]["id"].is_string(), "{body}");
    app.deliver_mail().await;
    let id = my_id(app, &token).await.parse().unwrap();
    (token, id)
}

/// Rows the account still has, per table that holds them.
async fn rows_of(app: &TestApp, account: Uuid) -> Vec<(&'static str, u64)> {
    use entity::{account, account_key, consent_event, outbox, session, ticket};
    let db = app.state.db();
    let mut held = vec![
        (
            "accounts",
            account::Entity::find_by_id(account)
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "sessions",
            session::Entity::find()
                .filter(session::Column::AccountId.eq(account))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "consent_events",
            consent_event::Entity::find()
                .filter(consent_event::Column::AccountId.eq(account))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "tickets",
            ticket::Entity::find()
                .filter(ticket::Column::AccountId.eq(account))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "outbox",
            outbox::Entity::find()
                .filter(outbox::Column::AccountId.eq(account))
                .count(db)
                .await
                .unwrap(),
        ),
    ];
    let keys = match app.state.keys().separate_db() {
        Some(store) => account_key::Entity::find_by_id(account).count(store).await,
        None => account_key::Entity::find_by_id(account).count(db).await,
    };
    held.push(("account_keys", keys.unwrap()));
    held.retain(|(_, count)| *count > 0);
    held
}

/// The value of an unlabelled metric.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let page = app.metrics().await;
    page.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Audit entries of `action` about `account`.
async fn audited(app: &TestApp, action: &str, account: Uuid) -> Vec<String> {
    entity::audit_entry::Entity::find()
        .filter(entity::audit_entry::Column::Action.eq(action))
        .filter(entity::audit_entry::Column::SubjectId.eq(account))
        .all(app.state.db())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.detail)
        .collect()
}

/// Tokens of links mailed to alice.
struct Links {
    reset: String,
    confirm: String,
    cancel: String,
    change_email: String,
}

/// Has alice mailed a reset link, an email-change link, and the confirm
/// and cancel links of a deletion request.
async fn links_mailed_to_alice(app: &TestApp, token: &str) -> Links {
    let newest = |address: &str, path: &str| {
        let mail = app.last_mail_to(address).expect("mail");
        link_token(&mail, path).unwrap_or_else(|| panic!("{path} link"))
    };
    app.gql(
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": ALICE.1 }),
    )
    .await;
    app.deliver_mail().await;
    let reset = newest(ALICE.1, "/reset-password");
    let body = app
        .gql_with_token(
            Some(token),
            "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }",
            json!({ "e": "alice.new@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let change_email = newest("alice.new@example.org", "/verify-email");
    app.gql(
        "mutation($u: String!, $e: String!) { requestAccountDeletion(input: { username: $u, email: $e }) }",
        json!({ "u": ALICE.0, "e": ALICE.1 }),
    )
    .await;
    app.deliver_mail().await;
    Links {
        reset,
        confirm: newest(ALICE.1, "/confirm-deletion"),
        cancel: newest(ALICE.1, "/cancel-deletion"),
        change_email,
    }
}

/// Where the test keeps keys or the journal besides the main database.
enum Beside {
    /// `CUSTOS_KEY_STORE_URL`: keys and journal in a store of their own.
    KeyStore,
    /// Keys in the main database, `CUSTOS_ERASURE_JOURNAL_URL` for the journal.
    Journal,
}

/// The drill: sign up two people, back up, erase one, restore the backup,
/// start; the erased one stays erased, the other is untouched.
async fn drill(beside: Beside) {
    let (_extra, extra_url) = TestDatabase::create().await;
    let url = extra_url.clone();
    let app = spawn_app_with(move |raw| match beside {
        Beside::KeyStore => raw.key_store_url = Some(url),
        Beside::Journal => raw.erasure_journal_url = Some(url),
    })
    .await;
    let (alice_token, alice) = person_with_data(&app, ALICE).await;
    let (_, bob) = person_with_data(&app, BOB).await;
    let backup = back_up(&app).await;

    due_for_purge(&app, ALICE.0, ALICE.1).await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    app.deliver_mail().await;
    let receipts_before = app.mail_to(ALICE.1).len();
    assert!(rows_of(&app, alice).await.is_empty());

    let (logs, _guard) = Logs::capture();
    let app = app
        .restart_after(|database, url| async move { restore(&backup, &database, &url).await })
        .await;

    // Before anything was served, the journal had her erased again.
    assert_eq!(rows_of(&app, alice).await, vec![]);
    assert_eq!(
        error_code(&sign_in(&app, ALICE.0, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    assert_eq!(
        error_code(&sign_in(&app, ALICE.1, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    let me = app
        .gql_with_token(Some(&alice_token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "{me}");
    assert_ne!(error_code(&me), Some("INTERNAL"), "{me}");
    let details = audited(&app, custos::erasure::reapply::REAPPLIED, alice).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        details[0].contains("re-applied after a restore"),
        "{details:?}"
    );
    // Her restored deletion request is done, not due again.
    let open = entity::deletion_request::Entity::find()
        .filter(entity::deletion_request::Column::AccountId.eq(alice))
        .filter(entity::deletion_request::Column::Status.ne("COMPLETED"))
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(open, 0);
    assert_eq!(metric(&app, "custos_erasures_reapplied_total").await, 1);

    // The first tick finds nothing more to do and mails no second receipt.
    let outbox = custos::jobs::outbox_sender(&app.state);
    custos::jobs::tick(&app.state, &outbox).await;
    assert_eq!(rows_of(&app, alice).await, vec![]);
    app.deliver_mail().await;
    assert_eq!(
        app.mail_to(ALICE.1).len(),
        receipts_before,
        "no second receipt"
    );
    assert_eq!(
        audited(&app, custos::erasure::reapply::REAPPLIED, alice)
            .await
            .len(),
        1
    );

    // Bob is whole and works.
    assert!(
        rows_of(&app, bob).await.len() >= 4,
        "{:?}",
        rows_of(&app, bob).await
    );
    let token = login(&app, BOB.0, PASSWORD).await;
    let me = app
        .gql_with_token(Some(&token), "{ me { id username email } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["username"], BOB.0, "{me}");
    assert_eq!(me["data"]["me"]["email"], BOB.1, "{me}");
    let data = app
        .gql_with_token(Some(&token), "{ myData }", json!({}))
        .await;
    assert!(data["data"]["myData"].is_object(), "{data}");

    assert!(
        logs.text().contains("erasures re-applied"),
        "{}",
        logs.text()
    );
    logs.assert_no_error();
}

#[tokio::test]
async fn a_restore_beside_a_separate_key_store_never_brings_an_erased_person_back() {
    drill(Beside::KeyStore).await;
}

#[tokio::test]
async fn a_restore_with_keys_in_the_database_and_a_journal_never_brings_an_erased_person_back() {
    drill(Beside::Journal).await;
}

#[tokio::test]
async fn a_tick_erases_again_an_account_the_journal_names_and_nothing_else() {
    let (_journal, journal_url) = TestDatabase::create().await;
    let url = journal_url.clone();
    let app = spawn_app_with(move |raw| raw.erasure_journal_url = Some(url)).await;
    let (_, alice) = person_with_data(&app, ALICE).await;
    let (_, bob) = person_with_data(&app, BOB).await;
    let mails_before = app.smtp.messages().len();
    // What a restore under a running instance amounts to: the journal
    // names an account the database holds.
    app.state
        .journal()
        .record(&[alice], app.clock.now())
        .await
        .unwrap();
    let (logs, _guard) = Logs::capture();
    let outbox = custos::jobs::outbox_sender(&app.state);
    custos::jobs::tick(&app.state, &outbox).await;
    assert_eq!(rows_of(&app, alice).await, vec![]);
    assert_eq!(
        audited(&app, custos::erasure::reapply::REAPPLIED, alice)
            .await
            .len(),
        1
    );
    assert!(rows_of(&app, bob).await.len() >= 4);
    app.deliver_mail().await;
    assert_eq!(app.smtp.messages().len(), mails_before, "no mail at all");
    assert_eq!(
        error_code(&sign_in(&app, ALICE.0, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    login(&app, BOB.0, PASSWORD).await;
    assert_eq!(metric(&app, "custos_erasures_reapplied_total").await, 1);
    logs.assert_no_error();

    // A journal that does not answer fails the tick's re-apply (logged),
    // and a start on it is refused rather than serving unchecked.
    let journal = sea_orm::Database::connect(&journal_url).await.unwrap();
    journal
        .execute_unprepared("DROP TABLE erasure_journal")
        .await
        .unwrap();
    let failed = custos::erasure::reapply::run(&app.state).await;
    assert!(failed.is_err());
    let settings = custos::settings::Settings::validate(app.settings.clone()).unwrap();
    let started = custos::app::Application::build(
        settings,
        custos::state::Overrides {
            clock: Some(app.clock.clone()),
            transport: None,
        },
    )
    .await;
    assert!(
        matches!(started, Err(custos::app::StartError::Reapply(_))),
        "a start that cannot check the journal is refused"
    );
}

#[tokio::test]
async fn a_purge_whose_journal_does_not_answer_erases_nothing_until_it_does() {
    let (_journal, journal_url) = TestDatabase::create().await;
    let url = journal_url.clone();
    let app = spawn_app_with(move |raw| raw.erasure_journal_url = Some(url)).await;
    let (_, alice) = person_with_data(&app, ALICE).await;
    due_for_purge(&app, ALICE.0, ALICE.1).await;
    let journal = sea_orm::Database::connect(&journal_url).await.unwrap();
    journal
        .execute_unprepared("ALTER TABLE erasure_journal RENAME TO erasure_journal_away")
        .await
        .unwrap();
    assert!(custos::erasure::purge::run_once(&app.state).await.is_err());
    assert!(
        !rows_of(&app, alice).await.is_empty(),
        "nothing erased unrecorded"
    );
    journal
        .execute_unprepared("ALTER TABLE erasure_journal_away RENAME TO erasure_journal")
        .await
        .unwrap();
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(rows_of(&app, alice).await, vec![]);
    let recorded = app.state.journal().page_after(None, 10).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, alice);
}

#[tokio::test]
async fn an_account_whose_key_is_gone_is_absent_on_every_path_and_never_internal() {
    let (_store, store_url) = TestDatabase::create().await;
    let url = store_url.clone();
    let app = spawn_app_with(move |raw| raw.key_store_url = Some(url)).await;
    let admin = admin_token(&app).await;
    let (alice_token, alice) = person_with_data(&app, ALICE).await;
    let (_, bob) = person_with_data(&app, BOB).await;
    let queue = "{ supportQueue { edges { node { id } } } }";
    let before = app.gql_with_token(Some(&admin), queue, json!({})).await;
    assert_eq!(
        crate::helpers::paging::nodes(&before, "supportQueue").len(),
        2
    );
    // Links mailed to her before the loss: reset, deletion (confirm and
    // cancel, of two requests) and an email change.
    let links = links_mailed_to_alice(&app, &alice_token).await;
    let mails_before = app.smtp.messages().len();

    // Her key is destroyed and nothing recorded an erasure (a key store
    // restored without its journal, a key deleted by hand).
    let store = sea_orm::Database::connect(&store_url).await.unwrap();
    entity::account_key::Entity::delete_by_id(alice)
        .exec(&store)
        .await
        .unwrap();
    app.state.session_cache().forget_all();
    // This instance's key cache still holds it: a fresh instance is what
    // meets the loss.
    let app = app.another_instance().await;
    let (logs, _guard) = Logs::capture();

    // Sign-in by either name, with the right password.
    for name in [ALICE.0, ALICE.1] {
        assert_eq!(
            error_code(&sign_in(&app, name, PASSWORD).await),
            Some("INVALID_CREDENTIALS")
        );
    }
    // Her session signs nobody in.
    let me = app
        .gql_with_token(Some(&alice_token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "{me}");
    assert_ne!(error_code(&me), Some("INTERNAL"), "{me}");
    // Reset and deletion requests are answered as for an unknown address.
    let reset = app
        .gql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": ALICE.1 }),
        )
        .await;
    assert_eq!(reset["data"]["requestPasswordReset"], true, "{reset}");
    let deletion = app
        .gql(
            "mutation($u: String!, $e: String!) { requestAccountDeletion(input: { username: $u, email: $e }) }",
            json!({ "u": ALICE.0, "e": ALICE.1 }),
        )
        .await;
    assert_eq!(
        deletion["data"]["requestAccountDeletion"], true,
        "{deletion}"
    );
    // Her links open nothing.
    for (mutation, token) in [
        (
            "mutation($t: String!) { resetPassword(token: $t, newPassword: \"another long passphrase\") }",
            &links.reset,
        ),
        (
            "mutation($t: String!) { confirmAccountDeletion(token: $t) { id } }",
            &links.confirm,
        ),
        (
            "mutation($t: String!) { cancelAccountDeletion(token: $t) { id } }",
            &links.cancel,
        ),
        (
            "mutation($t: String!) { verifyEmail(token: $t) }",
            &links.change_email,
        ),
    ] {
        let body = app.gql(mutation, json!({ "t": token })).await;
        assert_eq!(
            error_code(&body),
            Some("INVALID_TOKEN"),
            "{mutation}: {body}"
        );
    }
    assert_eq!(
        entity::account_key::Entity::find_by_id(alice)
            .count(&store)
            .await
            .unwrap(),
        0,
        "no path made her a new key"
    );
    // Staff queues skip her ticket; an admin cannot give her a role.
    let shown = app.gql_with_token(Some(&admin), queue, json!({})).await;
    assert_eq!(
        crate::helpers::paging::nodes(&shown, "supportQueue").len(),
        1,
        "{shown}"
    );
    let role = app
        .gql_with_token(
            Some(&admin),
            "mutation($id: ID!) { setRole(accountId: $id, role: SUPPORT) { id } }",
            json!({ "id": alice }),
        )
        .await;
    assert_eq!(error_code(&role), Some("NOT_FOUND"), "{role}");
    // A fan-out tells everybody else, and her absence is no failure.
    let report = app
        .gql_with_token(
            Some(&admin),
            "mutation($input: SecurityIncidentInput!) { reportSecurityIncident(input: $input) { notified announcement { id } } }",
            json!({ "input": {
                "title": "Test incident", "whatHappened": "w", "possibleImpact": "p",
                "measuresTaken": "m", "adviceToUsers": "a", "remedies": "r",
                "audience": "ALL_ACCOUNTS", "publishAnnouncement": false,
            } }),
        )
        .await;
    // Bob and the admin.
    assert_eq!(
        report["data"]["reportSecurityIncident"]["notified"], 2,
        "{report}"
    );
    assert!(
        report["data"]["reportSecurityIncident"]["announcement"].is_null(),
        "{report}"
    );
    app.deliver_mail().await;
    let new: Vec<_> = app.smtp.messages().into_iter().skip(mails_before).collect();
    assert_eq!(new.len(), 2, "only the incident notices went out");
    assert!(
        new.iter()
            .all(|mail| !mail.to.iter().any(|to| to.eq_ignore_ascii_case(ALICE.1))),
        "nothing for her"
    );
    assert!(metric(&app, "custos_unreadable_accounts_total").await >= 6);

    // No journal names her: a tick leaves her rows, as it would an account
    // from before per-account keys (only a recorded erasure is re-applied).
    let outbox = custos::jobs::outbox_sender(&app.state);
    custos::jobs::tick(&app.state, &outbox).await;
    assert!(rows_of(&app, alice).await.contains(&("accounts", 1)));
    assert!(rows_of(&app, bob).await.len() >= 4);
    login(&app, BOB.0, PASSWORD).await;
    logs.assert_no_error();
}

#[tokio::test]
async fn the_cli_migrates_a_journal_and_purge_once_re_applies_what_it_names() {
    let (_journal, journal_url) = TestDatabase::create().await;
    let app = spawn_app_with(|_| {}).await;
    let (_, alice) = person_with_data(&app, ALICE).await;
    let (_, bob) = person_with_data(&app, BOB).await;
    let (encryption_keys, blind_index_key) = given_keys(&app);
    let env = [
        ("CUSTOS_ENCRYPTION_KEYS", encryption_keys.as_str()),
        ("CUSTOS_BLIND_INDEX_KEY", blind_index_key.as_str()),
        ("CUSTOS_ERASURE_JOURNAL_URL", journal_url.as_str()),
        ("CUSTOS_MAIL_DIR", "mail"),
    ];
    let migrated = crate::helpers::run_custos(&app, &["migrate"], &env).await;
    assert!(migrated.status.success(), "{migrated:?}");
    let journal = sea_orm::Database::connect(&journal_url).await.unwrap();
    assert_eq!(
        entity::erasure_journal::Entity::find()
            .count(&journal)
            .await
            .unwrap(),
        0,
        "the journal's table exists (and is empty)"
    );
    // The journal names alice, whom the database still holds.
    custos::erasure::journal::ErasureJournal::kept_in(journal)
        .record(&[alice], app.clock.now())
        .await
        .unwrap();
    let purged = crate::helpers::run_custos(&app, &["purge", "--once"], &env).await;
    assert!(purged.status.success(), "{purged:?}");
    let out = String::from_utf8_lossy(&purged.stdout);
    assert!(
        out.contains("erasures re-applied after a restore: 1"),
        "{out}"
    );
    assert_eq!(rows_of(&app, alice).await, vec![]);
    assert!(rows_of(&app, bob).await.len() >= 4);
}

#[tokio::test]
async fn production_without_a_journal_warns_at_start_and_with_one_does_not() {
    const WARNING: &str = "no erasure journal";
    let (logs, _guard) = Logs::capture();
    // Production needs an https public URL (emailed links carry tokens).
    let without = spawn_app_with(|raw| {
        raw.env = "production".into();
        raw.public_url = Some("https://custos.example.org".into());
    })
    .await;
    assert!(logs.text().contains(WARNING), "{}", logs.text());
    drop(without);

    let (logs, _guard) = Logs::capture();
    let (_journal, journal_url) = TestDatabase::create().await;
    let with = spawn_app_with(move |raw| {
        raw.env = "production".into();
        raw.public_url = Some("https://custos.example.org".into());
        raw.erasure_journal_url = Some(journal_url);
    })
    .await;
    assert!(with.state.journal().is_kept());
    assert!(!logs.text().contains(WARNING), "{}", logs.text());
    logs.assert_no_error();
}
