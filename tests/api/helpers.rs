//! The test harness: `spawn_app()` starts the real server on port 0 with a
//! fresh database of its own (SQLite always; PostgreSQL when
//! `CUSTOS_TEST_DATABASE_URL` is set), a real SMTP server on loopback, and
//! a manual clock.

use std::{path::PathBuf, sync::Arc};

use chrono::{DateTime, Utc};
use custos::{
    app::Application,
    clock::Clock,
    settings::{RawSettings, Settings},
    state::{AppState, Overrides},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

#[path = "../support/smtp.rs"]
pub mod smtp;

mod kit;
pub mod paging;
pub use kit::*;

use smtp::{CapturedMail, TestSmtp};

/// Where emailed links point in tests.
pub const PUBLIC_URL: &str = "http://custos.test";

/// Which database a test app runs on.
pub enum TestDatabase {
    /// A SQLite file in a temporary folder, removed on drop.
    Sqlite(PathBuf),
    /// A PostgreSQL database created for this test, dropped on drop.
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// Makes a fresh database: PostgreSQL if asked for by the environment,
    /// else SQLite.
    pub async fn create() -> (Self, String) {
        match std::env::var("CUSTOS_TEST_DATABASE_URL") {
            Ok(admin_url) if admin_url.starts_with("postgres") => {
                let name = format!("custos_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("connect to CUSTOS_TEST_DATABASE_URL");
                use sea_orm::ConnectionTrait;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let url = replace_database(&admin_url, &name);
                (Self::Postgres { admin_url, name }, url)
            }
            _ => {
                let dir =
                    std::env::temp_dir().join(format!("custos-test-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.join("custos.db").display());
                (Self::Sqlite(dir), url)
            }
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            Self::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { admin_url, name } => {
                let admin_url = admin_url.clone();
                let name = name.clone();
                // Drop runs inside the test's runtime: use a thread of our own.
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime.block_on(async move {
                        use sea_orm::ConnectionTrait;
                        if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A running server with its database, mail server and clock.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// `http://127.0.0.1:port` of the metrics listener, when it has one.
    pub metrics_address: Option<String>,
    /// The shared state (database, keys, clock).
    pub state: AppState,
    /// The HTTP layer's own data (metrics, parsed documents).
    pub http: custos::http::HttpState,
    /// The clock the server reads; tests move it.
    pub clock: Clock,
    /// The SMTP server mail is delivered to.
    pub smtp: Arc<TestSmtp>,
    /// An HTTP client without a cookie jar: only bearer tokens authenticate.
    pub client: reqwest::Client,
    /// An HTTP client that keeps cookies, like a browser.
    pub browser: reqwest::Client,
    /// The database; dropped (and removed) with the last app using it.
    pub database: Arc<TestDatabase>,
    /// The URL the server connects to, for CLI runs against the same database.
    pub database_url: String,
    /// The settings the server started with.
    pub settings: RawSettings,
    server: tokio::task::JoinHandle<()>,
}

/// The `custos` binary on the app's database, run from `workdir` with no
/// config file and nothing of this process's `CUSTOS_*` environment. The
/// inherited variables are cleared first, so none can undo a setting the
/// caller adds afterwards.
pub fn custos_command(app: &TestApp, workdir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_custos"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CUSTOS_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(workdir)
        .env("CUSTOS_CONFIG", workdir.join("absent.toml"))
        .env("CUSTOS_DATABASE_URL", &app.database_url);
    command
}

/// Runs `custos <args>` to completion on the app's database (see
/// [`custos_command`]) in a fresh working directory, with `env` added.
pub async fn run_custos(
    app: &TestApp,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let workdir = std::env::temp_dir().join(format!("custos-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut command = custos_command(app, &workdir);
    command.args(args).envs(env.iter().copied());
    let output = command.output().await.unwrap();
    let _ = std::fs::remove_dir_all(&workdir);
    output
}

/// The instant tests start at: a Monday, 10:00 in Beijing.
pub fn start_instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
        .expect("valid instant")
        .with_timezone(&Utc)
}

/// Settings every test app starts from.
pub fn test_settings(database_url: &str, smtp: &TestSmtp) -> RawSettings {
    // Fresh keys for every test app: no key is ever written into the repository.
    let keys = custos::crypto::keys::generate("t1").expect("test keys");
    RawSettings {
        bind: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        public_url: Some(PUBLIC_URL.into()),
        smtp_url: Some(format!("smtp://{}", smtp.addr)),
        encryption_keys: Some(keys.encryption_keys.expose_secret().to_owned()),
        blind_index_key: Some(keys.blind_index_key.expose_secret().to_owned()),
        // Tests drive the jobs themselves, so ticks never race assertions.
        run_jobs: false,
        scheduler_interval_secs: 3600,
        ..RawSettings::default()
    }
}

/// Starts a server with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `adjust` has changed the test settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut RawSettings)) -> TestApp {
    let smtp = Arc::new(TestSmtp::start());
    let (database, url) = TestDatabase::create().await;
    let clock = Clock::manual(start_instant());
    start(Arc::new(database), url, smtp, clock, adjust).await
}

/// Starts a server on an existing database, SMTP server and clock.
async fn start(
    database: Arc<TestDatabase>,
    database_url: String,
    smtp: Arc<TestSmtp>,
    clock: Clock,
    adjust: impl FnOnce(&mut RawSettings),
) -> TestApp {
    let mut raw = test_settings(&database_url, &smtp);
    adjust(&mut raw);
    let settings = Settings::validate(raw.clone()).expect("valid test settings");
    let app = Application::build(
        settings,
        Overrides {
            clock: Some(clock.clone()),
            transport: None,
        },
    )
    .await
    .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let state = app.state().clone();
    let http = app.http().clone();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    let client = reqwest::Client::new();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("http client");
    TestApp {
        address,
        metrics_address,
        state,
        http,
        clock,
        smtp,
        client,
        browser,
        database,
        database_url,
        settings: raw,
        server,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// Stops this server and starts another on the same database, SMTP
    /// server and clock, as an operator restarts with new settings.
    /// `adjust` starts from fresh test settings (fresh keys included), so
    /// it must set every key the data needs.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut RawSettings)) -> TestApp {
        let database = self.database.clone();
        let database_url = self.database_url.clone();
        let smtp = self.smtp.clone();
        let clock = self.clock.clone();
        drop(self);
        start(database, database_url, smtp, clock, adjust).await
    }

    /// Stops this server and closes its database pool, runs `between` on
    /// the database while nothing is connected to it (as an operator
    /// restores a backup), and starts the server again with the same
    /// settings, keys included.
    pub async fn restart_after<F>(
        self,
        between: impl FnOnce(Arc<TestDatabase>, String) -> F,
    ) -> TestApp
    where
        F: std::future::Future<Output = ()>,
    {
        let database = self.database.clone();
        let database_url = self.database_url.clone();
        let smtp = self.smtp.clone();
        let clock = self.clock.clone();
        let settings = self.settings.clone();
        self.server.abort();
        // Closed, not only dropped: a SQLite connection still open would
        // checkpoint into the replaced file when it finally closes.
        let _ = self.state.db().clone().close().await;
        drop(self);
        between(database.clone(), database_url.clone()).await;
        start(database, database_url, smtp, clock, move |raw| {
            *raw = settings
        })
        .await
    }

    /// Starts a second server on the same database, SMTP server, clock and
    /// settings (keys included), as an operator scales out.
    pub async fn another_instance(&self) -> TestApp {
        let settings = self.settings.clone();
        start(
            self.database.clone(),
            self.database_url.clone(),
            self.smtp.clone(),
            self.clock.clone(),
            move |raw| *raw = settings,
        )
        .await
    }

    /// Whether this app runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(*self.database, TestDatabase::Postgres { .. })
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text")
    }

    /// POSTs a GraphQL operation as JSON and returns the decoded body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_with_token(None, query, variables).await
    }

    /// POSTs a query text alone; the status and decoded body, whatever the
    /// status (for requests refused before they run).
    pub async fn post_query(&self, query: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// POSTs a GraphQL operation with an optional bearer token.
    pub async fn gql_with_token(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert!(
            response.status().is_success(),
            "unexpected status {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    /// Runs the outbox job once, as the scheduler would.
    pub async fn deliver_mail(&self) -> custos::mail::outbox::SendReport {
        custos::jobs::outbox_sender(&self.state)
            .run_once()
            .await
            .expect("outbox tick")
    }

    /// Every mail the SMTP server received for `address`.
    pub fn mail_to(&self, address: &str) -> Vec<CapturedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// The newest mail the SMTP server received for `address`.
    pub fn last_mail_to(&self, address: &str) -> Option<CapturedMail> {
        self.mail_to(address).pop()
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The `extensions.field` of every error, in order (each must name one).
pub fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .map(|e| e["extensions"]["field"].as_str().unwrap())
        .collect()
}

/// The `extensions.retryAfterSeconds` of the first error.
pub fn retry_after(body: &Value) -> u64 {
    body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterSeconds: {body}"))
}

/// An HTTP client whose requests leave from `ip` (a loopback address), so
/// the server sees another client.
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap()
}

/// POSTs a GraphQL operation through `client`, with an optional bearer
/// token; the decoded body of a successful answer.
pub async fn gql_via(
    app: &TestApp,
    client: &reqwest::Client,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

/// The token of the first link to `path` in a mail's text.
pub fn link_token(mail: &CapturedMail, path: &str) -> Option<String> {
    let text = mail.decoded_text();
    let prefix = format!("{PUBLIC_URL}{path}?token=");
    let start = text.find(&prefix)? + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// A fresh data key for a seeded account, and its `account_keys` row (the
/// key wrapped by `app`'s keyring), for seeders that write rows directly.
pub fn new_account_key(
    app: &TestApp,
    account: uuid::Uuid,
) -> (custos::crypto::AccountKey, entity::account_key::ActiveModel) {
    let (key, raw) = custos::crypto::AccountKey::generate().unwrap();
    let row = entity::account_key::ActiveModel {
        id: sea_orm::Set(account),
        wrapped_key_ct: sea_orm::Set(app.state.cipher().wrap_account_key(account, &raw).unwrap()),
        created_at: sea_orm::Set(app.clock.now()),
    };
    (key, row)
}

/// Makes `db` refuse every `operation` (`INSERT`, `UPDATE` or `DELETE`) on
/// `table` for which the SQL condition `when` holds (over `NEW` or `OLD`),
/// as a database failing partway would: a trigger named `name`, written
/// for SQLite or PostgreSQL. [`lift_refusal`] removes it.
pub async fn refuse(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    operation: &str,
    table: &str,
    when: &str,
) {
    use sea_orm::ConnectionTrait;
    let statements = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => vec![
            format!(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF {when} THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$"
            ),
            format!(
                "CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW \
                 EXECUTE FUNCTION {name}()"
            ),
        ],
        _ => vec![format!(
            "CREATE TRIGGER {name} BEFORE {operation} ON {table} WHEN {when} \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )],
    };
    for statement in statements {
        db.execute_unprepared(&statement).await.unwrap();
    }
}

/// Removes a trigger [`refuse`] made on `table`.
pub async fn lift_refusal(db: &sea_orm::DatabaseConnection, name: &str, table: &str) {
    use sea_orm::ConnectionTrait;
    let statement = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("DROP TRIGGER {name} ON {table}"),
        _ => format!("DROP TRIGGER {name}"),
    };
    db.execute_unprepared(&statement).await.unwrap();
}

/// This process's resident memory (Linux, from `/proc/self/status`), for
/// the benchmarks that state a memory target: the peak since the last
/// [`ResidentMemory::reset_peak`], and the current size, in MiB.
pub struct ResidentMemory;

impl ResidentMemory {
    /// Starts a new peak at the current resident size (`5` written to
    /// `/proc/self/clear_refs`), so what seeding took is not counted.
    pub fn reset_peak() {
        std::fs::write("/proc/self/clear_refs", "5")
            .expect("/proc/self/clear_refs resets the peak");
    }

    /// The highest resident size since the last reset.
    pub fn peak_mib() -> f64 {
        Self::field("VmHWM:")
    }

    /// The resident size now.
    pub fn current_mib() -> f64 {
        Self::field("VmRSS:")
    }

    fn field(name: &str) -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| {
                let kib = line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim();
                kib.parse::<f64>().ok()
            })
            .map(|kib| kib / 1024.0)
            .expect("the field is in /proc/self/status")
    }
}
