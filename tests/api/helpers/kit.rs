//! The test kit: the arrange steps test files share. People signed up,
//! verified and signed in through the API with one standard password; an
//! admin; staff; consents and tickets; the current policy version and new
//! versions published by an admin; password resets and deletions asked for
//! by mail; row counts, plaintext checks and the keys of a test app; and
//! the waits for what travels between instances.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use super::{TestApp, TestDatabase, link_token};

/// The password of every account the kit signs up.
pub const PASSWORD: &str = "a fine long passphrase";
/// The password tests change or reset to.
pub const NEW_PASSWORD: &str = "another quite long passphrase";

/// `signup`, answering whether it was accepted.
pub const SIGNUP: &str = "mutation($input: SignupInput!) { signup(input: $input) { accepted } }";
/// `login` with `$l` and `$p`, answering the session token.
pub const SIGN_IN: &str =
    "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }";
/// `verifyEmail` with the token `$t`.
pub const VERIFY_EMAIL: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
/// `publishPolicy` with the input `$input`.
pub const PUBLISH: &str = "mutation($input: PublishPolicyInput!) { publishPolicy(input: $input) { version major purposes { code required sensitive } } }";
/// `requestPasswordReset` for `$email`.
pub const REQUEST_RESET: &str = "mutation($email: String!) { requestPasswordReset(email: $email) }";
/// `resetPassword` with `$token` and `$password`.
pub const RESET_PASSWORD: &str = "mutation($token: String!, $password: String!) { resetPassword(token: $token, newPassword: $password) }";
/// `requestAccountDeletion` for `$u` at `$e`.
pub const REQUEST_DELETION: &str = "mutation($u: String!, $e: String!) { requestAccountDeletion(input: { username: $u, email: $e }) }";
/// The caller's id and username.
const ME: &str = "{ me { id username } }";

// People.

/// The current policy version, as a sign-up accepts it.
pub async fn policy_version(app: &TestApp) -> String {
    let body = app.gql("{ policy { version } }", json!({})).await;
    body["data"]["policy"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no policy version: {body}"))
        .to_owned()
}

/// A `SignupInput` for an adult with the standard password.
pub fn adult(version: &str, username: &str, email: &str) -> Value {
    json!({
        "username": username,
        "email": email,
        "password": PASSWORD,
        "acceptPolicyVersion": version,
        "age": "ADULT",
    })
}

/// A `SignupInput` for a minor with the standard password, whose guardian
/// is asked at `guardian`.
pub fn minor(version: &str, username: &str, email: &str, guardian: &str) -> Value {
    json!({
        "username": username,
        "email": email,
        "password": PASSWORD,
        "acceptPolicyVersion": version,
        "age": "MINOR",
        "guardianEmail": guardian,
    })
}

/// Signs up with `input`; the answer.
pub async fn signup_with(app: &TestApp, input: Value) -> Value {
    app.gql(SIGNUP, json!({ "input": input })).await
}

/// Signs an adult up on the current policy; the answer.
pub async fn signup(app: &TestApp, username: &str, email: &str) -> Value {
    let version = policy_version(app).await;
    signup_with(app, adult(&version, username, email)).await
}

/// Signs a minor up on the current policy, naming `guardian`; the answer.
pub async fn signup_minor(app: &TestApp, username: &str, email: &str, guardian: &str) -> Value {
    let version = policy_version(app).await;
    signup_with(app, minor(&version, username, email, guardian)).await
}

/// The token of the link to `path` in the newest mail to `address`
/// (delivered already).
pub fn last_link(app: &TestApp, address: &str, path: &str) -> String {
    let mail = app
        .last_mail_to(address)
        .unwrap_or_else(|| panic!("no mail to {address}"));
    link_token(&mail, path).unwrap_or_else(|| panic!("no {path} link in the mail to {address}"))
}

/// Uses a verification link's token; the answer.
pub async fn verify_email(app: &TestApp, token: &str) -> Value {
    app.gql(VERIFY_EMAIL, json!({ "t": token })).await
}

/// Follows the verification link in the newest mail to `address`
/// (delivered already) and checks it verified.
pub async fn follow_verify_link(app: &TestApp, address: &str) {
    let token = last_link(app, address, "/verify-email");
    let body = verify_email(app, &token).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
}

/// Signs an adult up and verifies the address through the mailed link,
/// without signing in.
pub async fn signup_and_verify(app: &TestApp, username: &str, email: &str) {
    let body = signup(app, username, email).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    follow_verify_link(app, email).await;
}

/// Signs in with `password`; the answer, whatever it is.
pub async fn sign_in(app: &TestApp, login: &str, password: &str) -> Value {
    app.gql(SIGN_IN, json!({ "l": login, "p": password })).await
}

/// Signs in with `password`; the session token (panics if refused).
pub async fn login(app: &TestApp, login: &str, password: &str) -> String {
    let body = sign_in(app, login, password).await;
    body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

/// A verified adult, signed in: signs up, verifies the address through the
/// mailed link, signs in; the session token.
pub async fn signed_in(app: &TestApp, username: &str, email: &str) -> String {
    signup_and_verify(app, username, email).await;
    login(app, username, PASSWORD).await
}

/// A verified adult who signed up with `Accept-Language: en`, signed in;
/// the session token.
pub async fn signed_in_in_english(app: &TestApp, username: &str, email: &str) -> String {
    let version = policy_version(app).await;
    let body: Value = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("Accept-Language", "en-GB,en;q=0.9")
        .json(&json!({
            "query": SIGNUP,
            "variables": { "input": adult(&version, username, email) },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    follow_verify_link(app, email).await;
    let body = app
        .gql(
            "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token account { language } } }",
            json!({ "l": username, "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["login"]["account"]["language"], "en", "{body}");
    body["data"]["login"]["token"].as_str().unwrap().to_owned()
}

/// Answers the guardian's consent link in the newest mail to `guardian`
/// (delivered already); the answer.
pub async fn answer_guardian(app: &TestApp, guardian: &str, granted: bool) -> Value {
    let token = last_link(app, guardian, "/guardian-consent");
    app.gql(
        "mutation($t: String!, $g: Boolean!) { confirmGuardianConsent(token: $t, granted: $g) }",
        json!({ "t": token, "g": granted }),
    )
    .await
}

/// A minor whose guardian consented, signed in; the session token.
pub async fn consented_minor(app: &TestApp, name: &str, guardian: &str) -> String {
    let body = signup_minor(app, name, &format!("{name}@example.org"), guardian).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    let body = answer_guardian(app, guardian, true).await;
    assert_eq!(body["data"]["confirmGuardianConsent"], true, "{body}");
    login(app, name, PASSWORD).await
}

/// A verified ADMIN created through the same path as `custos create-admin`,
/// signed in; its bearer token.
pub async fn admin_token(app: &TestApp) -> String {
    let password = "admin passphrase for tests";
    // Random hex can spell a refused word (leetspeak included): draw again.
    let username = loop {
        let username = format!("root_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        match custos::accounts::service::create_admin(
            &app.state,
            &username,
            &format!("{username}@example.org"),
            secrecy::SecretString::from(password.to_owned()),
        )
        .await
        {
            Err(custos::accounts::service::AccountError::UsernameNotAllowed) => continue,
            created => {
                created.expect("admin created");
                break username;
            }
        }
    };
    let body = sign_in(app, &username, password).await;
    body["data"]["login"]["token"]
        .as_str()
        .expect("admin signs in")
        .to_owned()
}

/// The signed-in caller's account id.
pub async fn my_id(app: &TestApp, token: &str) -> String {
    let body = app
        .gql_with_token(Some(token), "{ me { id } }", json!({}))
        .await;
    body["data"]["me"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no account: {body}"))
        .to_owned()
}

/// A verified account at `{name}@example.org`, given `role` by `admin`
/// through `setRole`; its (token, id).
pub async fn staff(app: &TestApp, admin: &str, name: &str, role: &str) -> (String, String) {
    let token = signed_in(app, name, &format!("{name}@example.org")).await;
    let id = my_id(app, &token).await;
    let body = app
        .gql_with_token(
            Some(admin),
            "mutation($id: ID!, $role: Role!) { setRole(accountId: $id, role: $role) { role } }",
            json!({ "id": id, "role": role }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], role, "{body}");
    (token, id)
}

/// The newest 200 audit entries, as `admin` reads them.
pub async fn audit_entries(app: &TestApp, admin: &str) -> Vec<Value> {
    let body = app
        .gql_with_token(
            Some(admin),
            "{ auditLog(first: 200) { nodes { id actorId action subjectId detail } } }",
            json!({}),
        )
        .await;
    body["data"]["auditLog"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

/// Grants or withdraws `purpose` as `token`; the answer.
pub async fn record_consent(app: &TestApp, token: &str, purpose: &str, granted: bool) -> Value {
    app.gql_with_token(
        Some(token),
        "mutation($p: String!, $g: Boolean!) { recordConsent(purpose: $p, granted: $g) { granted } }",
        json!({ "p": purpose, "g": granted }),
    )
    .await
}

/// Files a ticket as `token`; the answer, with the ticket's id.
pub async fn file_ticket(
    app: &TestApp,
    token: &str,
    category: &str,
    subject: &str,
    body: &str,
) -> Value {
    app.gql_with_token(
        Some(token),
        "mutation($c: TicketCategory!, $s: String!, $b: String!) { createTicket(input: { category: $c, subject: $s, body: $b }) { id } }",
        json!({ "c": category, "s": subject, "b": body }),
    )
    .await
}

// The policy.

/// The current policy's purposes, in English, as `publishPolicy` takes them.
pub async fn current_purposes(app: &TestApp) -> Vec<Value> {
    let body = app
        .gql("{ policy(language: \"en\") { purposes { code title description required sensitive dataCategories } } }", json!({}))
        .await;
    body["data"]["policy"]["purposes"]
        .as_array()
        .unwrap()
        .clone()
}

/// A `PublishPolicyInput` for `version` with `purposes` (and `extra`).
pub fn new_version(
    version: &str,
    major: bool,
    mut purposes: Vec<Value>,
    extra: Option<Value>,
) -> Value {
    if let Some(extra) = extra {
        purposes.push(extra);
    }
    json!({
        "version": version,
        "major": major,
        "summaryOfChanges": "Adds nearby-friends suggestions",
        "text": "The updated policy text.",
        "purposes": purposes,
        "language": "en",
    })
}

/// The same version with the current Chinese texts of the shipped
/// purposes, so only what the test changes is new.
pub async fn with_chinese(app: &TestApp, mut input: Value) -> Value {
    let body = app
        .gql(
            "{ policy(language: \"zh-CN\") { purposes { code title description } } }",
            json!({}),
        )
        .await;
    input["translations"] = json!([{
        "language": "zh-CN",
        "summaryOfChanges": "新增附近好友推荐",
        "text": "更新后的政策文本。",
        "purposes": body["data"]["policy"]["purposes"].clone(),
    }]);
    input
}

/// Publishes `input` as `token` (an admin, or anyone the test tries); the
/// answer.
pub async fn publish(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_with_token(Some(token), PUBLISH, json!({ "input": input }))
        .await
}

// Links by mail.

/// Asks for a password reset; the answer.
pub async fn request_reset(app: &TestApp, email: &str) -> Value {
    app.gql(REQUEST_RESET, json!({ "email": email })).await
}

/// Requests a reset for `email`, delivers mail and returns the link's token.
pub async fn reset_token(app: &TestApp, email: &str) -> String {
    let body = request_reset(app, email).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    app.deliver_mail().await;
    let mail = app.last_mail_to(email).expect("reset mail");
    link_token(&mail, "/reset-password").expect("reset link")
}

/// Resets the password with a reset link's token; the answer.
pub async fn reset(app: &TestApp, token: &str, password: &str) -> Value {
    app.gql(
        RESET_PASSWORD,
        json!({ "token": token, "password": password }),
    )
    .await
}

/// Asks for the deletion of the account `username` at `email`; the answer.
pub async fn request_deletion(app: &TestApp, username: &str, email: &str) -> Value {
    app.gql(REQUEST_DELETION, json!({ "u": username, "e": email }))
        .await
}

/// Asks for the deletion of an account, delivers mail and returns the
/// confirm and cancel tokens of the newest mail to `email`.
pub async fn deletion_tokens(app: &TestApp, username: &str, email: &str) -> (String, String) {
    let body = request_deletion(app, username, email).await;
    assert_eq!(body["data"]["requestAccountDeletion"], true, "{body}");
    app.deliver_mail().await;
    let mail = app.last_mail_to(email).expect("confirmation mail");
    (
        link_token(&mail, "/confirm-deletion").expect("confirm link"),
        link_token(&mail, "/cancel-deletion").expect("cancel link"),
    )
}

/// Requests and confirms the deletion of an account, then moves the clock
/// past its purge deadline: the next purge run erases it.
pub async fn due_for_purge(app: &TestApp, username: &str, email: &str) {
    let (confirm, _cancel) = deletion_tokens(app, username, email).await;
    let body = app
        .gql(
            "mutation($t: String!) { confirmAccountDeletion(token: $t) { purgeAfter } }",
            json!({ "t": confirm }),
        )
        .await;
    let purge_after: DateTime<Utc> = body["data"]["confirmAccountDeletion"]["purgeAfter"]
        .as_str()
        .unwrap_or_else(|| panic!("not scheduled: {body}"))
        .parse()
        .unwrap();
    app.clock.set(purge_after + chrono::Duration::seconds(1));
}

// The database.

/// `SELECT COUNT(*) FROM {from}` (a table, or a table and a condition).
pub async fn count_rows(app: &TestApp, from: &str) -> i64 {
    let db = app.state.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {from}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

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

/// The key settings of a running test app: (encryption keys, blind-index key).
pub fn given_keys(app: &TestApp) -> (String, String) {
    use secrecy::ExposeSecret;
    let custos::settings::KeySource::Given {
        encryption_keys,
        blind_index_key,
    } = &app.state.settings().keys.source
    else {
        panic!("test apps use given keys")
    };
    (
        encryption_keys.expose_secret().to_owned(),
        blind_index_key.expose_secret().to_owned(),
    )
}

// Waits, for what travels between instances.

/// Polls `done` every `every`, at most `tries` times; whether it held.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    tries: usize,
    every: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    for _ in 0..tries {
        if done().await {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    false
}

/// How often the waits below ask.
const STEP: Duration = Duration::from_millis(25);

/// Ends the PostgreSQL connection `app` listens for other instances'
/// changes on, as a database restart or a network failure would.
pub async fn cut_change_listener(app: &TestApp) {
    app.state
        .db()
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .await
        .unwrap();
}

/// Waits until the session cache may answer from memory (on PostgreSQL,
/// once its change listener is connected).
pub async fn session_cache_ready(app: &TestApp) {
    let ready = eventually(200, STEP, || async {
        app.state.session_cache().is_active()
    })
    .await;
    assert!(ready, "the session cache never became active");
}

/// Waits until `app` listens for other instances' changes to sessions and
/// the policy (on PostgreSQL; on SQLite its caches are in use from the
/// start).
pub async fn listening(app: &TestApp) {
    let ready = eventually(200, STEP, || async {
        app.state.session_cache().is_active() && app.state.policy().is_active()
    })
    .await;
    assert!(ready, "the change listener never connected");
}

/// The username `me` answers for `token`, if any.
pub async fn username(app: &TestApp, token: &str) -> Option<String> {
    let body = app.gql_with_token(Some(token), ME, json!({})).await;
    body["data"]["me"]["username"].as_str().map(str::to_owned)
}

/// `me` for `token` answered from `app`'s memory: the second of two
/// requests reads no session.
pub async fn warm(app: &TestApp, token: &str) {
    assert!(username(app, token).await.is_some());
    let (hits, _) = app.state.session_cache().counts();
    assert!(username(app, token).await.is_some());
    let (after, _) = app.state.session_cache().counts();
    assert_eq!(after, hits + 1, "the second request was a cache hit");
}

/// Polls `me` on `app` until it is anonymous (a notification has to
/// travel), for at most two seconds of wall time.
pub async fn becomes_anonymous(app: &TestApp, token: &str) -> bool {
    eventually(80, STEP, || async { username(app, token).await.is_none() }).await
}

/// Polls `app` for up to two seconds of wall time until it answers
/// `version` as the current policy (a notification has to travel).
pub async fn sees_policy(app: &TestApp, version: &str) -> bool {
    eventually(80, STEP, || async { policy_version(app).await == version }).await
}
