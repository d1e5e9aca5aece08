//! Erasure: verified deletion requests, the working-day grace window, the
//! purge, the certificate, cancellation, minors, and the data export.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, Statement};
use serde_json::json;

use crate::helpers::{
    PASSWORD, REQUEST_DELETION, TestApp, TestDatabase, admin_token, answer_guardian,
    assert_no_plaintext, count_rows, deletion_tokens, due_for_purge, error_code, file_ticket,
    follow_verify_link, last_link, link_token, login, minor, my_id, policy_version, record_consent,
    request_deletion, sign_in, signed_in, signup, signup_minor, signup_with, spawn_app,
    spawn_app_with,
};

const CONFIRM: &str = "mutation($t: String!) { confirmAccountDeletion(token: $t) { id status requestedAt confirmedAt purgeAfter } }";
const CANCEL: &str = "mutation($t: String!) { cancelAccountDeletion(token: $t) { status } }";

#[tokio::test]
async fn a_wrong_email_gets_the_same_answer_and_no_mail() {
    let app = spawn_app().await;
    signed_in(&app, "careful_one", "careful@example.org").await;
    app.deliver_mail().await;
    let before = app.smtp.messages().len();
    let raw = |username: &str, email: &str| {
        let client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        let body = json!({ "query": REQUEST_DELETION, "variables": { "u": username, "e": email } });
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    let wrong = raw("careful_one", "someone.else@example.org").await;
    let unknown = raw("nobody_at_all", "careful@example.org").await;
    let malformed = raw("x", "not-an-email").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    app.deliver_mail().await;
    assert_eq!(app.smtp.messages().len(), before, "no mail for a mismatch");
    use entity::deletion_request;
    assert_eq!(
        deletion_request::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        0
    );
}

/// A deletion request answers no sooner than the floor a password reset
/// keeps, whether the names match an account or not, so its timing does
/// not tell which.
#[tokio::test]
async fn a_deletion_request_answers_after_the_floor_whatever_it_finds() {
    let app = spawn_app().await;
    signed_in(&app, "timed_one", "timed@example.org").await;
    let floor = custos::timing::ANSWER_FLOOR;
    let mut bodies = Vec::new();
    for (username, email) in [
        ("nobody_at_all", "nobody@example.org"),
        ("timed_one", "someone.else@example.org"),
        ("x", "not-an-email"),
        ("timed_one", "timed@example.org"),
    ] {
        let started = std::time::Instant::now();
        let body = request_deletion(&app, username, email).await;
        let took = started.elapsed();
        assert!(took >= floor, "{username}/{email} answered in {took:?}");
        bodies.push(body);
    }
    assert!(bodies.iter().all(|body| *body == bodies[0]), "{bodies:?}");
    assert_eq!(
        bodies[0],
        json!({ "data": { "requestAccountDeletion": true } })
    );
    app.deliver_mail().await;
    let mail = app.last_mail_to("timed@example.org").unwrap();
    assert!(
        link_token(&mail, "/confirm-deletion").is_some(),
        "the match was mailed"
    );
}

#[tokio::test]
async fn confirmed_deletion_stops_processing_and_the_purge_erases_everything() {
    let app = spawn_app().await;
    let token = signed_in(&app, "leaving_soon", "leaving@example.org").await;
    record_consent(&app, &token, "product_updates", true).await;
    let ticket = file_ticket(
        &app,
        &token,
        "COMPLAINT",
        "Secret subject zebra",
        "Secret body giraffe",
    )
    .await;
    assert!(ticket["data"]["createTicket"]["id"].is_string(), "{ticket}");

    let (confirm, _cancel) = deletion_tokens(&app, "leaving_soon", "leaving@example.org").await;
    // A second request while one is pending creates no duplicate.
    let body = app
        .gql(
            REQUEST_DELETION,
            json!({ "u": "leaving_soon", "e": "leaving@example.org" }),
        )
        .await;
    assert_eq!(body["data"]["requestAccountDeletion"], true);
    use entity::deletion_request;
    assert_eq!(
        deletion_request::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        1
    );
    app.deliver_mail().await;
    let confirm = link_token(
        &app.last_mail_to("leaving@example.org").unwrap(),
        "/confirm-deletion",
    )
    .unwrap_or(confirm);

    // Monday 2026-11-30 10:00 Beijing + 3 working days = Thursday 10:00.
    let body = app.gql(CONFIRM, json!({ "t": confirm })).await;
    let request = &body["data"]["confirmAccountDeletion"];
    assert_eq!(request["status"], "SCHEDULED", "{body}");
    let purge_after: DateTime<Utc> = request["purgeAfter"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        purge_after,
        "2026-12-03T02:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    // Single use.
    let body = app.gql(CONFIRM, json!({ "t": confirm })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));

    // Processing stopped: sessions ended, sign-in refused, nothing erased yet.
    let me = app
        .gql_with_token(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null());
    let body = sign_in(&app, "leaving_soon", PASSWORD).await;
    assert_eq!(error_code(&body), Some("ACCOUNT_DELETION_SCHEDULED"));
    // The refusal says when the erasure runs, as the confirmation did.
    let told: DateTime<Utc> = body["errors"][0]["extensions"]["purgeAfter"]
        .as_str()
        .unwrap_or_else(|| panic!("no purgeAfter: {body}"))
        .parse()
        .unwrap();
    assert_eq!(told, purge_after);
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0, "not before the deadline");

    app.clock.set(purge_after + chrono::Duration::seconds(1));
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(report.overdue, 0);
    assert_eq!(report.rows.get("accounts"), Some(&1));
    assert_eq!(report.rows.get("tickets"), Some(&1));
    assert_eq!(
        report.rows.get("account_keys"),
        Some(&1),
        "the data key is destroyed"
    );

    for table in [
        "accounts",
        "account_keys",
        "sessions",
        "account_tokens",
        "consent_events",
        "tickets",
        "ticket_messages",
        "login_throttle",
    ] {
        assert_eq!(count_rows(&app, table).await, 0, "{table} still holds rows");
    }

    // The final receipt is sent, then its row is forgotten.
    app.deliver_mail().await;
    let receipt = app.last_mail_to("leaving@example.org").unwrap();
    assert!(receipt.decoded_text().contains("erased") || receipt.decoded_text().contains("删除"));
    assert_eq!(
        count_rows(&app, "outbox").await,
        0,
        "no mail row keeps the address"
    );

    // The certificate exists and holds no personal data.
    let certificates = entity::erasure_record::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(certificates.len(), 1);
    let text = format!("{:?}", certificates[0]);
    for needle in ["leaving", "example.org", "zebra", "giraffe"] {
        assert!(!text.contains(needle));
    }
    assert_eq!(certificates[0].deadline, Some(purge_after));
    assert_no_plaintext(
        &app,
        &["leaving_soon", "leaving@example.org", "zebra", "giraffe"],
    )
    .await;

    // The same username and email can sign up again.
    signed_in(&app, "leaving_soon", "leaving@example.org").await;
}

#[tokio::test]
async fn cancelling_within_the_window_restores_the_account() {
    let app = spawn_app().await;
    signed_in(&app, "second_thoughts", "thoughts@example.org").await;
    let (confirm, _) = deletion_tokens(&app, "second_thoughts", "thoughts@example.org").await;
    app.gql(CONFIRM, json!({ "t": confirm })).await;
    app.deliver_mail().await;
    // The "scheduled" notice carries a fresh cancel link.
    let cancel = last_link(&app, "thoughts@example.org", "/cancel-deletion");
    app.clock.advance(chrono::Duration::days(1));
    let body = app.gql(CANCEL, json!({ "t": cancel })).await;
    assert_eq!(
        body["data"]["cancelAccountDeletion"]["status"], "CANCELLED",
        "{body}"
    );
    let body = app.gql(CANCEL, json!({ "t": cancel })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
    let body = sign_in(&app, "second_thoughts", PASSWORD).await;
    let token = body["data"]["login"]["token"].as_str().unwrap().to_owned();
    let me = app
        .gql_with_token(
            Some(&token),
            "{ me { deletionRequest { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["deletionRequest"]["status"], "CANCELLED");
    app.clock.advance(chrono::Duration::days(30));
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0);
}

#[tokio::test]
async fn confirmation_links_expire() {
    let app = spawn_app().await;
    signed_in(&app, "slow_decider", "slow.decider@example.org").await;
    let (confirm, _) = deletion_tokens(&app, "slow_decider", "slow.decider@example.org").await;
    app.clock.advance(chrono::Duration::hours(25));
    let body = app.gql(CONFIRM, json!({ "t": confirm })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
    let body = app.gql(CONFIRM, json!({ "t": "made-up" })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
}

#[tokio::test]
async fn a_purge_rolled_back_midway_leaves_the_account_whole() {
    use sea_orm::TransactionTrait;
    let app = spawn_app().await;
    signed_in(&app, "interrupted", "interrupted@example.org").await;
    let (confirm, _) = deletion_tokens(&app, "interrupted", "interrupted@example.org").await;
    app.gql(CONFIRM, json!({ "t": confirm })).await;
    app.clock.advance(chrono::Duration::days(10));
    let request = entity::deletion_request::Entity::find()
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    {
        // What a process killed inside the transaction leaves: the work
        // done, never committed.
        let txn = app.state.db().begin().await.unwrap();
        custos::erasure::purge::erase_accounts(
            &app.state,
            &txn,
            std::slice::from_ref(&request),
            app.clock.now(),
        )
        .await
        .unwrap();
        txn.rollback().await.unwrap();
    }
    assert_eq!(
        count_rows(&app, "accounts").await,
        1,
        "the account is whole"
    );
    assert!(count_rows(&app, "consent_events").await > 0);
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1, "the next run erases it");
    assert_eq!(count_rows(&app, "accounts").await, 0);
}

/// Accounts per purge transaction in the killed-purge test.
const KILL_TEST_BATCH: usize = 200;

/// Starts `custos serve` as its own process on the app's database, with
/// the jobs on a one-second tick and mail to the app's SMTP server.
fn start_server(
    app: &TestApp,
    keys: &(Option<String>, Option<String>),
    workdir: &std::path::Path,
    log: &str,
) -> tokio::process::Child {
    let mut command = crate::helpers::custos_command(app, workdir);
    command
        .arg("serve")
        .env("CUSTOS_BIND", "127.0.0.1:0")
        .env("CUSTOS_PUBLIC_URL", crate::helpers::PUBLIC_URL)
        .env("CUSTOS_SMTP_URL", format!("smtp://{}", app.smtp.addr))
        .env("CUSTOS_ENCRYPTION_KEYS", keys.0.clone().unwrap())
        .env("CUSTOS_BLIND_INDEX_KEY", keys.1.clone().unwrap())
        .env("CUSTOS_RUN_JOBS", "true")
        .env("CUSTOS_SCHEDULER_INTERVAL_SECS", "1")
        .env("CUSTOS_OUTBOX_BATCH", "500")
        .env("CUSTOS_PURGE_BATCH", KILL_TEST_BATCH.to_string())
        .env("CUSTOS_LOG_FORMAT", "json")
        .stdout(std::fs::File::create(workdir.join(log)).unwrap())
        .stderr(std::fs::File::create(workdir.join(format!("{log}.err"))).unwrap())
        .kill_on_drop(true);
    command.spawn().unwrap()
}

async fn requests_with_status(app: &TestApp, status: &str) -> u64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    entity::deletion_request::Entity::find()
        .filter(entity::deletion_request::Column::Status.eq(status))
        .count(app.state.db())
        .await
        .unwrap()
}

/// A real process killed with SIGKILL while its purge runs: every account is
/// either erased with its certificate or wholly there, and the next start of
/// the server erases the rest; every person gets the receipt.
#[tokio::test]
async fn a_server_killed_during_the_purge_is_finished_by_the_next_start() {
    let mut keys = (None, None);
    let app = spawn_app_with(|raw| {
        keys = (raw.encryption_keys.clone(), raw.blind_index_key.clone());
    })
    .await;
    // Three batches, so the kill lands between two of them.
    let accounts = 3 * KILL_TEST_BATCH;
    // Due by the real clock, which the child processes read.
    let emails = seed_due_accounts(&app, accounts, Utc::now() - chrono::Duration::days(1)).await;
    let workdir = std::env::temp_dir().join(format!("custos-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();

    let mut first = start_server(&app, &keys, &workdir, "first.log");
    let started = std::time::Instant::now();
    // Kill as soon as the first batch has committed: the next one is then
    // under way inside its transaction.
    loop {
        let erased = entity::erasure_record::Entity::find()
            .count(app.state.db())
            .await
            .unwrap();
        if erased > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the purge never started: {}",
            std::fs::read_to_string(workdir.join("first.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();

    let completed = requests_with_status(&app, "COMPLETED").await;
    let whole = accounts as i64 - completed as i64;
    assert!(
        completed > 0 && whole > 0,
        "killed midway: {completed} of {accounts} erased"
    );
    // Each account is all erased or all there: nothing half-done.
    assert_eq!(
        entity::erasure_record::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        completed
    );
    assert_eq!(requests_with_status(&app, "SCHEDULED").await as i64, whole);
    assert_eq!(count_rows(&app, "accounts").await, whole);
    assert_eq!(count_rows(&app, "tickets").await, whole);
    assert_eq!(count_rows(&app, "ticket_messages").await, whole);
    assert_eq!(count_rows(&app, "consent_events").await, 3 * whole);

    let mut second = start_server(&app, &keys, &workdir, "second.log");
    let started = std::time::Instant::now();
    loop {
        let scheduled = requests_with_status(&app, "SCHEDULED").await;
        let queued = count_rows(&app, "outbox").await;
        if scheduled == 0 && queued == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(180),
            "the next start did not finish: {scheduled} scheduled, {queued} mails queued: {}",
            std::fs::read_to_string(workdir.join("second.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let certificates = entity::erasure_record::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    let requests: std::collections::BTreeSet<_> =
        certificates.iter().map(|c| c.request_id).collect();
    assert_eq!(certificates.len(), accounts, "one certificate per account");
    assert_eq!(requests.len(), accounts, "no account erased twice");
    for table in ["accounts", "tickets", "ticket_messages", "consent_events"] {
        assert_eq!(count_rows(&app, table).await, 0, "{table}");
    }
    // Every person got the receipt. A mail handed to SMTP just before the
    // kill, but not yet marked sent, goes again (at-least-once delivery).
    let mut receipts = std::collections::BTreeMap::new();
    for mail in app.smtp.messages() {
        for to in mail.to {
            *receipts.entry(to.to_lowercase()).or_insert(0u32) += 1;
        }
    }
    for email in &emails {
        assert!(receipts.contains_key(email), "no receipt for {email}");
    }
    assert_eq!(receipts.len(), accounts);
    let _ = std::fs::remove_dir_all(&workdir);
}

#[tokio::test]
async fn concurrent_purge_runners_erase_each_account_exactly_once() {
    let app = spawn_app().await;
    let mut names = Vec::new();
    for i in 0..8 {
        let name = format!("runner_target_{i}");
        let email = format!("target{i}@example.org");
        signed_in(&app, &name, &email).await;
        let (confirm, _) = deletion_tokens(&app, &name, &email).await;
        app.gql(CONFIRM, json!({ "t": confirm })).await;
        names.push(name);
    }
    app.clock.advance(chrono::Duration::days(10));
    let (first, second) = tokio::join!(
        custos::erasure::purge::run_once(&app.state),
        custos::erasure::purge::run_once(&app.state)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.accounts + second.accounts, 8);
    assert_eq!(
        entity::erasure_record::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        8
    );
    assert_eq!(count_rows(&app, "accounts").await, 0);
}

#[tokio::test]
async fn every_table_is_in_the_erasure_inventory() {
    let app = spawn_app().await;
    let db = app.state.db();
    let sql = match &*app.database {
        TestDatabase::Sqlite(_) => {
            "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        TestDatabase::Postgres { .. } => {
            "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    assert!(rows.len() > 5);
    for row in rows {
        let table: String = row.try_get("", "t").unwrap();
        assert!(
            custos::erasure::inventory::coverage(&table).is_some(),
            "table {table} is not in src/erasure/inventory.rs: say whether the purge erases it"
        );
    }
}

#[tokio::test]
async fn a_guardian_refusal_erases_the_minors_account() {
    let app = spawn_app().await;
    let body = signup_minor(
        &app,
        "young_person",
        "young.person@example.org",
        "guardian@example.org",
    )
    .await;
    assert_eq!(body["data"]["signup"]["accepted"], true);
    app.deliver_mail().await;
    let token = last_link(&app, "guardian@example.org", "/guardian-consent");
    let answer =
        "mutation($t: String!, $g: Boolean!) { confirmGuardianConsent(token: $t, granted: $g) }";
    let body = app.gql(answer, json!({ "t": token, "g": false })).await;
    assert_eq!(body["data"]["confirmGuardianConsent"], true, "{body}");
    let body = app.gql(answer, json!({ "t": token, "g": true })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "single use");
    let body = sign_in(&app, "young_person", PASSWORD).await;
    assert_eq!(error_code(&body), Some("ACCOUNT_DELETION_SCHEDULED"));
    // Erased at the next purge: due now.
    let told: DateTime<Utc> = body["errors"][0]["extensions"]["purgeAfter"]
        .as_str()
        .unwrap_or_else(|| panic!("no purgeAfter: {body}"))
        .parse()
        .unwrap();
    assert_eq!(told, app.clock.now());
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1, "erased at once");
    assert_eq!(count_rows(&app, "accounts").await, 0);
    assert_no_plaintext(&app, &["young_person", "guardian@example.org"]).await;
}

#[tokio::test]
async fn the_purge_leaves_a_named_guardians_own_mail_alone() {
    let app = spawn_app().await;
    // Someone with an account of her own, named as guardian below.
    signed_in(&app, "real_parent", "parent@example.org").await;
    let body = signup_minor(
        &app,
        "named_child",
        "named.child@example.org",
        "parent@example.org",
    )
    .await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    due_for_purge(&app, "named_child", "named.child@example.org").await;

    // Her own reset link, not yet sent when the purge runs.
    let body = app
        .gql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": "parent@example.org" }),
        )
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let pending = "outbox WHERE status = 'PENDING' AND kind = 'password_reset'";
    assert_eq!(count_rows(&app, pending).await, 1);

    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(
        count_rows(&app, pending).await,
        1,
        "the guardian's own mail survives the purge"
    );
    app.deliver_mail().await;
    let mail = app.last_mail_to("parent@example.org").expect("reset mail");
    assert!(link_token(&mail, "/reset-password").is_some());
}

#[tokio::test]
async fn a_guardian_consent_unlocks_the_account_and_silence_erases_it() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    for (name, guardian) in [
        ("kid_granted", "g1@example.org"),
        ("kid_silent", "g2@example.org"),
    ] {
        signup_with(
            &app,
            minor(&version, name, &format!("{name}@example.org"), guardian),
        )
        .await;
    }
    app.deliver_mail().await;
    let body = answer_guardian(&app, "g1@example.org", true).await;
    assert_eq!(body["data"]["confirmGuardianConsent"], true, "{body}");
    let session = login(&app, "kid_granted", PASSWORD).await;
    let body = app
        .gql_with_token(Some(&session), "{ mySessions { id } }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "usable after consent: {body}");

    app.clock.advance(chrono::Duration::days(8));
    let expired = custos::erasure::guardian::expire_unanswered(&app.state)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert!(sign_in(&app, "kid_granted", PASSWORD).await["data"]["login"]["token"].is_string());
    assert_eq!(
        error_code(&sign_in(&app, "kid_silent", PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn staff_can_flag_an_unconsented_minor() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let person = signed_in(&app, "flagged_one", "flagged@example.org").await;
    let id = app
        .gql_with_token(Some(&person), "{ me { id } }", json!({}))
        .await["data"]["me"]["id"]
        .clone();
    let flag = "mutation($a: ID!) { flagMinorWithoutGuardianConsent(accountId: $a, reason: \"said so\") { status purgeAfter } }";
    let body = app
        .gql_with_token(Some(&person), flag, json!({ "a": id }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    let body = app.gql(flag, json!({ "a": id })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    let body = app
        .gql_with_token(
            Some(&admin),
            flag,
            json!({ "a": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    let body = app
        .gql_with_token(Some(&admin), flag, json!({ "a": id }))
        .await;
    assert_eq!(
        body["data"]["flagMinorWithoutGuardianConsent"]["status"], "SCHEDULED",
        "{body}"
    );
    // Erased after the working-day window (see minor_flag.rs), not at once.
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0);
    app.clock.advance(chrono::Duration::days(3));
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
}

#[tokio::test]
async fn my_data_exports_everything_held() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let token = signed_in(&app, "curious_person", "curious@example.org").await;
    record_consent(&app, &token, "product_updates", true).await;
    file_ticket(
        &app,
        &token,
        "DATA_REQUEST",
        "What do you hold",
        "Please tell me",
    )
    .await;
    let id = app
        .gql_with_token(Some(&token), "{ me { id } }", json!({}))
        .await["data"]["me"]["id"]
        .clone();
    app.gql_with_token(
        Some(&admin),
        "mutation($a: ID!) { recordProcessingException(accountId: $a, basis: LEGAL_OBLIGATION, justification: \"Court order number 42 requires retention.\") { id } }",
        json!({ "a": id }),
    )
    .await;
    let body = app
        .gql_with_token(Some(&token), "{ myData }", json!({}))
        .await;
    let data = &body["data"]["myData"];
    assert_eq!(data["account"]["username"], "curious_person", "{body}");
    assert_eq!(data["account"]["email"], "curious@example.org");
    assert!(data["consentLedger"].as_array().unwrap().len() >= 2);
    assert!(!data["sessions"].as_array().unwrap().is_empty());
    assert_eq!(data["tickets"][0]["subject"], "What do you hold");
    assert_eq!(data["tickets"][0]["messages"][0]["body"], "Please tell me");
    assert!(
        data["processingExceptions"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("LEGAL_OBLIGATION")
    );
    assert!(
        data["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "verify_email")
    );
    let body = app.gql("{ myData }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn my_data_includes_guest_tickets_a_pending_address_and_staff_reads() {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = spawn_app().await;
    // Before signing up, the person wrote to support as a guest; so did
    // somebody else.
    for (email, subject) in [
        ("open.book@example.org", "Asked as a guest"),
        ("someone.else@example.org", "Not theirs"),
    ] {
        let body = app
            .gql(
                "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
                json!({ "i": { "category": "CONSULTATION", "subject": subject, "body": "Hello", "contactEmail": email } }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let token = signed_in(&app, "open_book", "open.book@example.org").await;
    let body = app
        .gql_with_token(
            Some(&token),
            "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }",
            json!({ "e": "new.book@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    // A member of support reads the person's ticket and reveals the address.
    // Filing needs no optional purpose.
    let filed = file_ticket(&app, &token, "OTHER", "Signed in", "Hi").await;
    let ticket_id = filed["data"]["createTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let support = signed_in(&app, "desk_agent", "desk.agent@example.org").await;
    let support_id = my_id(&app, &support).await;
    let row = entity::account::Entity::find_by_id(uuid::Uuid::parse_str(&support_id).unwrap())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    let mut staff = row.into_active_model();
    staff.role = Set("SUPPORT".into());
    staff.update(app.state.db()).await.unwrap();
    app.state.session_cache().forget_all();
    let body = app
        .gql_with_token(
            Some(&support),
            "query($id: ID!) { ticket(id: $id) { id } }",
            json!({ "id": ticket_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql_with_token(
            Some(&support),
            "mutation($id: ID!) { revealTicketContact(ticketId: $id, reason: \"Phone call\") }",
            json!({ "id": ticket_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let body = app
        .gql_with_token(Some(&token), "{ myData }", json!({}))
        .await;
    let data = &body["data"]["myData"];
    let guest = data["guestTickets"].as_array().unwrap();
    assert_eq!(guest.len(), 1, "{body}");
    assert_eq!(guest[0]["subject"], "Asked as a guest");
    assert_eq!(guest[0]["messages"][0]["body"], "Hello");
    let pending = data["account"]["pendingEmailChanges"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{body}");
    assert_eq!(pending[0]["email"], "new.book@example.org");
    let reads = data["staffReads"].as_array().unwrap();
    assert_eq!(reads.len(), 2, "{body}");
    assert_eq!(reads[0]["action"], "ticket.read");
    assert_eq!(reads[1]["action"], "ticket.reveal_contact");
    for read in reads {
        assert_eq!(read["byRole"], "SUPPORT", "{read}");
        assert_eq!(read["ticket"], ticket_id.as_str(), "{read}");
    }
    // Who read is not shown, nor the reason they gave.
    let staff_reads = data["staffReads"].to_string();
    assert!(!staff_reads.contains(&support_id), "{staff_reads}");
    assert!(!staff_reads.contains("Phone call"), "{staff_reads}");
    // Once the link has expired the change is no longer in flight.
    app.clock.advance(chrono::Duration::days(2));
    let token = login(&app, "open_book", PASSWORD).await;
    let body = app
        .gql_with_token(Some(&token), "{ myData }", json!({}))
        .await;
    assert_eq!(
        body["data"]["myData"]["account"]["pendingEmailChanges"],
        json!([]),
        "{body}"
    );
}

#[tokio::test]
async fn staff_free_text_stays_out_of_the_chain_and_goes_with_the_person() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let token = signed_in(&app, "noted_person", "noted@example.org").await;
    let id = my_id(&app, &token).await;
    let justification = "Court order 42 names this person by their nickname Xiaoming";
    let body = app
        .gql_with_token(
            Some(&admin),
            "mutation($a: ID!, $j: String!) { recordProcessingException(accountId: $a, basis: LEGAL_OBLIGATION, justification: $j) { detail } }",
            json!({ "a": id, "j": justification }),
        )
        .await;
    let detail = body["data"]["recordProcessingException"]["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert!(detail.contains("LEGAL_OBLIGATION"), "{detail}");
    assert!(!detail.contains("Xiaoming"), "{detail}");
    record_consent(&app, &token, "product_updates", true).await;
    let filed = file_ticket(&app, &token, "OTHER", "Call me", "Please").await;
    let reason = "Xiaoming asked for a call about his debts";
    let body = app
        .gql_with_token(
            Some(&admin),
            "mutation($id: ID!, $r: String!) { revealTicketContact(ticketId: $id, reason: $r) }",
            json!({ "id": filed["data"]["createTicket"]["id"], "r": reason }),
        )
        .await;
    assert_eq!(
        body["data"]["revealTicketContact"], "noted@example.org",
        "{body}"
    );
    // Neither text is stored in clear anywhere, the chain included.
    assert_no_plaintext(&app, &["Xiaoming"]).await;
    assert_eq!(count_rows(&app, "audit_notes").await, 2);
    // The person sees the justification in their export.
    let body = app
        .gql_with_token(Some(&token), "{ myData }", json!({}))
        .await;
    assert_eq!(
        body["data"]["myData"]["processingExceptions"][0]["justification"], justification,
        "{body}"
    );

    due_for_purge(&app, "noted_person", "noted@example.org").await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(report.rows.get("audit_notes"), Some(&2));
    assert_eq!(count_rows(&app, "audit_notes").await, 0);
    // The entries stay and the chain still verifies.
    let entries = u64::try_from(count_rows(&app, "audit_log").await).unwrap();
    assert_eq!(
        custos::audit::service::verify(app.state.db())
            .await
            .unwrap(),
        Ok(entries)
    );
    let output = crate::helpers::run_custos(&app, &["audit", "verify"], &[]).await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn a_note_about_a_guest_ticket_goes_with_the_account_of_that_address() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let filed = app
        .gql(
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
            json!({ "i": { "category": "OTHER", "subject": "Hi", "body": "Hello", "contactEmail": "later.member@example.org" } }),
        )
        .await;
    let body = app
        .gql_with_token(
            Some(&admin),
            "mutation($id: ID!) { revealTicketContact(ticketId: $id, reason: \"Guest asked Zhangwei\") }",
            json!({ "id": filed["data"]["createTicket"]["id"] }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_no_plaintext(&app, &["Zhangwei"]).await;
    assert_eq!(count_rows(&app, "audit_notes").await, 1);
    signed_in(&app, "later_member", "later.member@example.org").await;
    due_for_purge(&app, "later_member", "later.member@example.org").await;
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(report.rows.get("audit_notes"), Some(&1));
    assert_eq!(count_rows(&app, "audit_notes").await, 0);
    assert!(
        custos::audit::service::verify(app.state.db())
            .await
            .unwrap()
            .is_ok()
    );
}

/// Seeds `accounts` accounts whose erasure is due at `purge_after`, each
/// with a ticket and its message and three consent events, straight into
/// the database (1,000 per transaction). Returns their email addresses.
pub async fn seed_due_accounts(
    app: &TestApp,
    accounts: usize,
    purge_after: DateTime<Utc>,
) -> Vec<String> {
    use sea_orm::{ActiveValue::NotSet, Set, TransactionTrait};
    let state = &app.state;
    let now = app.clock.now();
    let mut emails = Vec::with_capacity(accounts);
    let policy = custos::consent::versions::current(state.db())
        .await
        .unwrap()
        .document;
    // Sealed under each account's own data key, as the service writes them.
    let seal = |key: &custos::crypto::AccountKey,
                table: &str,
                column: &str,
                id: uuid::Uuid,
                value: &str| {
        state
            .cipher()
            .encrypt_str_under(
                Some(key),
                &custos::crypto::fields::FieldContext {
                    table,
                    column,
                    row_id: id,
                },
                value,
            )
            .unwrap()
    };
    for chunk_start in (0..accounts).step_by(1000) {
        let chunk = chunk_start..(chunk_start + 1000).min(accounts);
        let txn = state.db().begin().await.unwrap();
        let mut account_rows = Vec::new();
        let mut tickets = Vec::new();
        let mut messages = Vec::new();
        let mut events = Vec::new();
        let mut requests = Vec::new();
        let mut keys = Vec::new();
        for i in chunk {
            let id = uuid::Uuid::new_v4();
            let (key, key_row) = crate::helpers::new_account_key(app, id);
            keys.push(key_row);
            let username = format!("bench_user_{i}");
            let email = format!("bench{i}@example.org");
            emails.push(email.clone());
            account_rows.push(entity::account::ActiveModel {
                id: Set(id),
                username_ct: Set(seal(&key, "accounts", "username", id, &username)),
                username_bidx: Set(state
                    .blind()
                    .active()
                    .compute("username", &username.replace('_', ""))),
                email_ct: Set(seal(&key, "accounts", "email", id, &email)),
                email_bidx: Set(state.blind().active().compute("email", &email)),
                email_verified: Set(true),
                password_hash: Set("$argon2id$v=19$m=19456,t=2,p=1$bench$bench".into()),
                role: Set("USER".into()),
                language: Set("zh-CN".into()),
                age_declaration: Set("ADULT".into()),
                guardian_consent: Set("NOT_NEEDED".into()),
                guardian_email_ct: Set(None),
                accepted_policy_version: Set(Some(policy.version.clone())),
                status: Set("DELETION_SCHEDULED".into()),
                created_at: Set(now),
                updated_at: Set(now),
            });
            let ticket_id = uuid::Uuid::new_v4();
            tickets.push(entity::ticket::ActiveModel {
                id: Set(ticket_id),
                reference: Set(format!("B-{i:08}")),
                account_id: Set(Some(id)),
                category: Set("CONSULTATION".into()),
                status: Set("OPEN".into()),
                subject_ct: Set(seal(&key, "tickets", "subject", ticket_id, "A question")),
                contact_username_ct: Set(None),
                contact_email_ct: Set(None),
                contact_email_bidx: Set(None),
                language: Set("zh-CN".into()),
                created_at: Set(now),
                updated_at: Set(now),
            });
            let message_id = uuid::Uuid::new_v4();
            messages.push(entity::ticket_message::ActiveModel {
                id: Set(message_id),
                ticket_id: Set(ticket_id),
                seq: Set(1),
                author: Set("REQUESTER".into()),
                staff_id: Set(None),
                body_ct: Set(seal(
                    &key,
                    "ticket_messages",
                    "body",
                    message_id,
                    "Some words",
                )),
                created_at: Set(now),
            });
            for purpose in policy.purposes.iter().take(3) {
                events.push(entity::consent_event::ActiveModel {
                    seq: NotSet,
                    id: Set(uuid::Uuid::new_v4()),
                    account_id: Set(id),
                    purpose: Set(purpose.code.clone()),
                    purpose_hash: Set(custos::consent::service::purpose_hash(purpose)),
                    policy_version: Set(policy.version.clone()),
                    policy_text_hash: Set(vec![0; 32]),
                    granted: Set(true),
                    source: Set("SIGNUP".into()),
                    created_at: Set(now),
                });
            }
            requests.push(entity::deletion_request::ActiveModel {
                id: Set(uuid::Uuid::new_v4()),
                account_id: Set(id),
                status: Set("SCHEDULED".into()),
                reason: Set("PERSON_REQUEST".into()),
                confirm_token_hash: Set(None),
                confirm_expires_at: Set(None),
                cancel_token_hash: Set(None),
                requested_at: Set(now),
                confirmed_at: Set(Some(now)),
                purge_after: Set(Some(purge_after)),
                claimed_until: Set(None),
                cancelled_at: Set(None),
                completed_at: Set(None),
            });
        }
        entity::account_key::Entity::insert_many(keys)
            .exec_without_returning(&txn)
            .await
            .unwrap();
        entity::account::Entity::insert_many(account_rows)
            .exec(&txn)
            .await
            .unwrap();
        entity::ticket::Entity::insert_many(tickets)
            .exec(&txn)
            .await
            .unwrap();
        entity::ticket_message::Entity::insert_many(messages)
            .exec(&txn)
            .await
            .unwrap();
        for chunk in events.chunks(1000) {
            entity::consent_event::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await
                .unwrap();
        }
        entity::deletion_request::Entity::insert_many(requests)
            .exec(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    // A database that has held these rows for a while has planner
    // statistics (autovacuum analyses it); freshly bulk-loaded tables have
    // none, and PostgreSQL then plans `account_id IN (...)` as a full scan.
    if app.is_postgres() {
        state.db().execute_unprepared("ANALYZE").await.unwrap();
    }
    emails
}

/// The plan of the purge's delete of mail to erased addresses that
/// concerns no account. Every erasure queues such a row (its receipt), so
/// a plan that reads the rows with no account, rather than looking the
/// addresses up, grows with every account purged before: on PostgreSQL
/// with statistics taken before the receipts came, the plan a connection
/// keeps after five batches took over 20 s a batch at 490,000 receipts.
#[tokio::test]
async fn the_purge_looks_erased_addresses_up_in_the_outbox_whatever_it_holds() {
    use sea_orm::{QueryFilter, QueryTrait, TransactionTrait};
    let app = spawn_app().await;
    let db = app.state.db();
    let backend = db.get_database_backend();
    let statement = entity::outbox::Entity::delete_many()
        .filter(custos::erasure::purge::unowned_mail_to(
            backend,
            vec![vec![1; 32], vec![2; 32]],
        ))
        .build(backend);
    let plan: Vec<String> = if app.is_postgres() {
        // Statistics from an outbox without receipts, then a purge's worth.
        db.execute_unprepared("ANALYZE outbox").await.unwrap();
        db.execute_unprepared(
            "INSERT INTO outbox (id, account_id, kind, recipient_ct, recipient_bidx, subject_ct, \
             body_text_ct, status, attempts, next_attempt_at, created_at) \
             SELECT gen_random_uuid(), NULL, 'erasure_receipt', '\\x00', \
             decode(md5(g::text) || md5(g::text), 'hex'), '\\x00', '\\x00', 'PENDING', 0, \
             now(), now() FROM generate_series(1, 20000) g",
        )
        .await
        .unwrap();
        // The generic plan: the one a connection keeps once it has run
        // the statement five times.
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .unwrap();
        txn.execute_unprepared(&format!("PREPARE receipt_probe AS {}", statement.sql))
            .await
            .unwrap();
        let rows = txn
            .query_all_raw(Statement::from_string(
                backend,
                "EXPLAIN EXECUTE receipt_probe(ARRAY['\\x01'::bytea])",
            ))
            .await
            .unwrap();
        txn.execute_unprepared("DEALLOCATE receipt_probe")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        rows.iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect()
    } else {
        let mut explain = statement.clone();
        explain.sql = format!("EXPLAIN QUERY PLAN {}", statement.sql);
        db.query_all_raw(explain)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect()
    };
    let plan = plan.join("\n");
    let looked_up = if app.is_postgres() {
        "idx_outbox_unowned_recipient"
    } else {
        "idx_outbox_recipient_bidx"
    };
    assert!(plan.contains(looked_up), "{plan}");
    assert!(!plan.contains("idx_outbox_account"), "{plan}");
    assert!(
        !plan.contains("Seq Scan") && !plan.contains("SCAN outbox"),
        "{plan}"
    );
}

/// The purge benchmark (not a timed test): seeds `BENCH_ACCOUNTS` due
/// accounts (default 100,000), each with a ticket and its message and three
/// consent events, then times one purge run. Run it with `bench/purge.sh`;
/// the figures go into bench/RESULTS.md.
#[tokio::test]
#[ignore = "benchmark: run with bench/purge.sh"]
async fn purge_benchmark() {
    let accounts: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // The batch the server would use, or the one CUSTOS_PURGE_BATCH names.
    let batch = std::env::var("CUSTOS_PURGE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    let app = spawn_app_with(|raw| raw.purge_batch = batch).await;
    let state = &app.state;
    let seeding = std::time::Instant::now();
    seed_due_accounts(&app, accounts, app.clock.now()).await;
    let seeded = seeding.elapsed();
    app.clock.advance(chrono::Duration::seconds(1));
    // Memory is measured from here: the purge's, not the seeding's.
    crate::helpers::ResidentMemory::reset_peak();
    let resident_at_start = crate::helpers::ResidentMemory::current_mib();
    let started = std::time::Instant::now();
    let report = custos::erasure::purge::run_once(state).await.unwrap();
    let elapsed = started.elapsed();
    let resident_peak = crate::helpers::ResidentMemory::peak_mib();
    let left = entity::deletion_request::Entity::find()
        .all(state.db())
        .await
        .unwrap();
    let mut by_status = std::collections::BTreeMap::new();
    for r in &left {
        *by_status.entry(r.status.clone()).or_insert(0) += 1;
    }
    println!(
        "requests by status: {by_status:?}; accounts left {}",
        count_rows(&app, "accounts").await
    );
    assert_eq!(report.accounts as usize, accounts);
    assert_eq!(count_rows(&app, "accounts").await, 0);
    let backend = if app.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "BENCH purge {backend}: {accounts} accounts (seeded in {:.1} s) erased in {:.1} s = {:.0} accounts/s; \
         resident {resident_at_start:.0} MiB at the start, peak {resident_peak:.0} MiB during the purge; rows {:?}",
        seeded.as_secs_f64(),
        elapsed.as_secs_f64(),
        accounts as f64 / elapsed.as_secs_f64(),
        report.rows
    );
}

#[tokio::test]
async fn a_sign_up_never_verified_is_erased_after_its_link_and_the_grace() {
    let app = spawn_app().await;
    let outbox = custos::jobs::outbox_sender(&app.state);
    // Never verified; verified at once; verified late, with a fresh link.
    let body = signup(&app, "never_verified", "stranger@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    signed_in(&app, "kept_person", "kept@example.org").await;
    custos::jobs::tick(&app.state, &outbox).await;
    assert_eq!(app.mail_to("stranger@example.org").len(), 1, "the link");

    // The link lives 24 hours, the grace 7 days: a minute before the end
    // nothing happens.
    app.clock.advance(
        chrono::Duration::hours(24) + chrono::Duration::days(7) - chrono::Duration::minutes(1),
    );
    custos::jobs::tick(&app.state, &outbox).await;
    assert!(
        error_code(&sign_in(&app, "never_verified", PASSWORD).await) != Some("INVALID_CREDENTIALS"),
        "kept until its window ends"
    );
    let body = signup(&app, "late_verifier", "late.v@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");

    app.clock.advance(chrono::Duration::minutes(2));
    custos::jobs::tick(&app.state, &outbox).await;
    assert_eq!(
        error_code(&sign_in(&app, "never_verified", PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    // Two accounts are left, and nobody mailed the stranger a receipt.
    assert_eq!(count_rows(&app, "accounts").await, 2);
    assert_eq!(app.mail_to("stranger@example.org").len(), 1);
    assert!(sign_in(&app, "kept_person", PASSWORD).await["data"]["login"]["token"].is_string());
    let entries = entity::audit_entry::Entity::find()
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == custos::erasure::unverified::UNVERIFIED_EXPIRED_ACTION)
            .count(),
        1
    );
    assert_no_plaintext(&app, &["never_verified", "stranger@example.org"]).await;

    // The later sign-up is still in its own window, and is verified in time.
    follow_verify_link(&app, "late.v@example.org").await;
    app.clock.advance(chrono::Duration::days(30));
    custos::jobs::tick(&app.state, &outbox).await;
    assert_eq!(count_rows(&app, "accounts").await, 2);
}

#[tokio::test]
async fn the_grace_for_unverified_sign_ups_is_a_setting() {
    let app = spawn_app_with(|raw| raw.unverified_grace_days = 0).await;
    signup(&app, "brief_visit", "brief@example.org").await;
    app.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::minutes(1));
    let expired = custos::erasure::unverified::expire_unverified(&app.state)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(
        custos::erasure::unverified::expire_unverified(&app.state)
            .await
            .unwrap(),
        0,
        "scheduled once"
    );
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    assert_eq!(count_rows(&app, "accounts").await, 0);
}
