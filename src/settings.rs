//! Typed settings, layered: defaults, then an optional `custos.toml`, then
//! `CUSTOS_*` environment variables.
//!
//! Every setting is declared once, in the `settings!` table below: its
//! group, its field (the environment variable is `CUSTOS_` and the field in
//! upper case; `custos.toml` uses the field itself), its default, and what
//! it means. From that table come [`RawSettings`], the variable names that
//! errors quote ([`name`]), and the settings table in `docs/operations.md`
//! ([`markdown_table`], checked by a test; run
//! `CUSTOS_WRITE_SETTINGS_TABLE=1 cargo test --lib settings` to rewrite it).
//!
//! Raw values are validated once at start into [`Settings`], nested by the
//! same groups; a bad value stops the start with a one-line message naming
//! the setting. Secrets stay wrapped in [`SecretString`] so they never
//! reach a log or a panic message.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chrono::NaiveDate;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The largest `CUSTOS_PURGE_BATCH`: a batch's lists of ids and indexes
/// stay well below SQLite's 32,766 parameters a statement.
pub const MAX_PURGE_BATCH: u64 = 5000;
/// The longest `CUSTOS_SESSION_CACHE_SECONDS`.
pub const MAX_SESSION_CACHE_SECONDS: u32 = 60;

/// A setting that could not be used, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct SettingsError {
    /// The environment variable that holds the bad value.
    pub setting: &'static str,
    /// What is wrong with it, without echoing secrets.
    pub reason: String,
}

impl SettingsError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// One setting as an operator meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingInfo {
    /// The group it belongs to (a field of [`Settings`], or `general`).
    pub group: &'static str,
    /// Its field in [`RawSettings`] and its key in `custos.toml`.
    pub field: &'static str,
    /// Its environment variable.
    pub name: &'static str,
    /// Its default, as the operations guide states it.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// `CUSTOS_` and `field` in upper case, as `N` bytes (the field's length
/// plus seven).
const fn env_bytes<const N: usize>(field: &str) -> [u8; N] {
    const PREFIX: &[u8] = b"CUSTOS_";
    let field = field.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < PREFIX.len() {
            PREFIX[i]
        } else {
            field[i - PREFIX.len()].to_ascii_uppercase()
        };
        i += 1;
    }
    out
}

/// Declares every setting once; see the module documentation.
macro_rules! settings {
    ($(
        $group:ident {
            $( $field:ident: $ty:ty = $default:expr, shown $shown:literal, $meaning:literal; )*
        }
    )*) => {
        /// Settings as read from files and the environment, before
        /// validation: one field per environment variable.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(default)]
        pub struct RawSettings {
            $($(
                #[doc = $meaning]
                pub $field: $ty,
            )*)*
        }

        impl Default for RawSettings {
            fn default() -> Self {
                Self { $($( $field: $default, )*)* }
            }
        }

        /// The environment variable of each setting, by its field name.
        #[allow(non_upper_case_globals)]
        pub mod name {
            $($(
                #[doc = $meaning]
                pub const $field: &str = {
                    const BYTES: [u8; stringify!($field).len() + 7] =
                        super::env_bytes(stringify!($field));
                    match core::str::from_utf8(&BYTES) {
                        Ok(name) => name,
                        Err(_) => "CUSTOS_CONFIG",
                    }
                };
            )*)*
        }

        /// Every setting, in the order of the operations guide.
        pub const SETTINGS: &[SettingInfo] = &[
            $($(
                SettingInfo {
                    group: stringify!($group),
                    field: stringify!($field),
                    name: name::$field,
                    default: $shown,
                    meaning: $meaning,
                },
            )*)*
        ];
    };
}

settings! {
    general {
        env: String = "development".into(), shown "`development`",
            "`production` refuses dev keys, file mail and a missing public URL; turns introspection and the playground off unless asked for";
        log_format: String = "pretty".into(), shown "`pretty`",
            "`json` for one JSON object a line";
    }
    http {
        bind: String = "127.0.0.1:8000".into(), shown "`127.0.0.1:8000`",
            "listen address (`:0` picks a free port and logs it)";
        metrics_bind: Option<String> = None, shown "unset: `/metrics` on `CUSTOS_BIND`",
            "a second listen address (`host:port`, different from `CUSTOS_BIND`) serving `/metrics` alone, e.g. on an internal interface; the main listener then answers 404 for `/metrics`. Empty counts as unset";
        public_url: Option<String> = None, shown "`http://localhost:8000`",
            "base of every link in an email; must be `https://` in production (the links carry tokens); when it is `https://`, every answer carries `Strict-Transport-Security: max-age=31536000`";
        tls_cert: Option<String> = None, shown "unset",
            "PEM certificate chain: serve HTTPS directly (rustls on ring) instead of behind a TLS-terminating proxy; set with `CUSTOS_TLS_KEY` (both or neither); a bad file stops the start; HSTS is sent and the session cookie is `Secure`, in development too";
        tls_key: Option<String> = None, shown "unset",
            "PEM private key of the `CUSTOS_TLS_CERT` certificate (both or neither)";
        allowed_origins: String = String::new(), shown "empty",
            "CORS origins allowed to call with credentials";
        playground: Option<bool> = None, shown "on outside production",
            "serve GraphiQL";
        introspection: Option<bool> = None, shown "on outside production",
            "answer introspection";
        account_console: Option<bool> = None, shown "on outside production",
            "serve the [account console](console.md) at `/` and the emailed paths; off, those paths answer a short page saying the link was not used and where to go";
    }
    database {
        database_url: String = "sqlite://custos.db?mode=rwc".into(), shown "`sqlite://custos.db?mode=rwc`",
            "`sqlite://…` or `postgres://…`";
        key_store_url: Option<String> = None, shown "unset: keys in the main database",
            "a separate `sqlite://…` or `postgres://…` database for account data keys; see [Account keys and backups](#account-keys-and-backups)";
        erasure_journal_url: Option<String> = None, shown "unset",
            "without `CUSTOS_KEY_STORE_URL` only (the key store keeps the journal otherwise): a `postgres://…` database every instance shares, or a `sqlite://…` file for a single instance, that records each erased account's id and time, so a restored backup cannot bring an erased person back; see [Backups and restores](#backups-and-restores). Production with neither warns at start";
    }
    keys {
        encryption_keys: Option<String> = None, shown "dev key",
            "comma-separated `id:base64(32 bytes)`; the first encrypts, all decrypt";
        blind_index_key: Option<String> = None, shown "dev key",
            "base64(32 bytes), HMAC key for lookups; every blind index is written under it";
        blind_index_previous_key: Option<String> = None, shown "unset",
            "base64(32 bytes), only while a blind-index key rotation is under way: the key being replaced. Lookups and uniqueness checks then match rows indexed under either key; writes use `CUSTOS_BLIND_INDEX_KEY` only. Empty counts as unset";
        dev_keys_file: String = "custos.dev-keys".into(), shown "`custos.dev-keys`",
            "where development keys live";
    }
    mail {
        smtp_url: Option<String> = None, shown "unset (file mail)",
            "`smtp://host:port`, `smtps://user:pass@host:port`, `smtp://…?tls=required`";
        mail_from: String = "Custos <no-reply@localhost>".into(), shown "`Custos <no-reply@localhost>`",
            "sender";
        mail_dir: String = "mail".into(), shown "`mail`",
            "where file mail goes in development";
        outbox_batch: u64 = 50, shown "`50`",
            "mails per outbox tick";
        outbox_max_attempts: u32 = 12, shown "`12`",
            "attempts before a mail is given up";
    }
    jobs {
        scheduler_interval_secs: u64 = 60, shown "`60`",
            "how often background jobs wake (the first run is at start, so the purge catches up after downtime); mail queued on an instance also wakes its outbox at once, so links arrive in about a second";
        run_jobs: bool = true, shown "`true`",
            "`false` on instances that should only serve HTTP (some instance must run the jobs)";
    }
    sessions {
        session_idle_minutes: u32 = 30, shown "`30`",
            "a session ends when unused this many minutes";
        session_lifetime_hours: u32 = 12, shown "`12`",
            "a session ends this many hours after sign-in";
        session_cache_seconds: u32 = 5, shown "`5`",
            "how long an instance may answer a session check from memory (0–60; `0`: read the database on every signed-in request); see \"Session cache\"";
        notify_new_signin: bool = false, shown "`false`",
            "mail the owner when their account signs in from a browser or app none of its recent sessions used";
    }
    accounts {
        verification_token_hours: u32 = 24, shown "`24`",
            "how long address-verification and deletion-confirmation links work";
        unverified_grace_days: u32 = 7, shown "`7`",
            "a sign-up whose address was never verified is erased this many days after its newest verification link expired (it may hold a stranger's address); no receipt is mailed";
        reset_token_minutes: u32 = 30, shown "`30`",
            "how long a password reset link works (1–1440)";
        guardian_consent_days: u32 = 7, shown "`7`",
            "days a minor's account waits for a guardian";
        username_blocklist: String = String::new(), shown "empty",
            "the operator's extra refused terms: comma-separated, or a file with one a line";
        username_reserved: String = String::new(), shown "empty",
            "the operator's extra reserved names: comma-separated, or a file with one a line";
    }
    erasure {
        deletion_grace_working_days: u32 = 3, shown "`3`",
            "working days between a confirmed deletion and the purge";
        holidays: String = String::new(), shown "empty",
            "comma-separated `YYYY-MM-DD` holidays and/or calendar files whose lines are `YYYY-MM-DD holiday` or `YYYY-MM-DD workday` (make-up working days); `data/calendars/cn-2026.txt` is the official PRC arrangement for 2026";
        timezone: String = "Asia/Shanghai".into(), shown "`Asia/Shanghai`",
            "the IANA time zone working days are counted in";
        purge_batch: Option<u64> = None, shown "`1000` on SQLite, `5000` on PostgreSQL",
            "accounts erased per purge transaction (1–5000)";
    }
    limits {
        rate_limit_per_minute: u32 = 30, shown "`30`",
            "attempts per client IP (IPv6: per /64) a minute, for each of signup, `usernameCheck`, login, password reset request and use, password checks behind a session (`changePassword` and `changeEmail` together), deletion request and ticket creation; counted in each instance's memory and, on PostgreSQL, also in the database for all instances together (see \"Several instances\")";
        trusted_proxies: String = String::new(), shown "empty",
            "IPs or CIDRs of your load balancers, comma-separated; only requests from them have `X-Forwarded-For` believed (else the TCP peer is the client)";
    }
    notices {
        incident_announce_threshold: u64 = 10_000, shown "`10000`",
            "a security incident affecting more accounts than this is also published as a public announcement (individual notice being impractical)";
        incident_wait_seconds: u64 = 5, shown "`5`",
            "how long `reportSecurityIncident` waits for its fan-out before answering with the progress so far (0–20; the fan-out goes on either way, followed with `incidentReport`)";
    }
}

impl RawSettings {
    /// Reads defaults, then `custos.toml` (or the file named by
    /// `CUSTOS_CONFIG`) when it exists, then `CUSTOS_*` variables.
    pub fn load() -> Result<Self, SettingsError> {
        let file = std::env::var("CUSTOS_CONFIG").unwrap_or_else(|_| "custos.toml".into());
        Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("CUSTOS_").ignore(&["CONFIG", "TEST_DATABASE_URL"]))
            .extract()
            .map_err(|e| {
                let setting = e
                    .path
                    .first()
                    .map(|key| setting_name(key))
                    .unwrap_or("CUSTOS_CONFIG");
                SettingsError::new(setting, e.kind.to_string())
            })
    }
}

/// Maps a field name back to the environment variable an operator sets.
fn setting_name(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|setting| setting.field.eq_ignore_ascii_case(key))
        .map_or("CUSTOS_CONFIG", |setting| setting.name)
}

/// The settings table of `docs/operations.md`, one row per setting.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| group | variable | default | meaning |\n| --- | --- | --- | --- |\n");
    for setting in SETTINGS {
        table.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            setting.group, setting.name, setting.default, setting.meaning
        ));
    }
    table
}

/// Where the service runs, which decides what it tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Dev keys, file mail and the playground are allowed.
    Development,
    /// Dev keys and file mail are refused; playground and introspection off
    /// unless asked for.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object a line, for collectors.
    Json,
}

/// The database the service stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// A SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum MailTransportSetting {
    /// `.eml` files under a folder (development only).
    Files(PathBuf),
    /// An SMTP relay; the URL may carry credentials, so it stays secret.
    Smtp(SecretString),
}

/// Encryption and blind-index keys as given, or "use the dev keys file".
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys from the environment or the settings file.
    Given {
        /// `CUSTOS_ENCRYPTION_KEYS`.
        encryption_keys: SecretString,
        /// `CUSTOS_BLIND_INDEX_KEY`.
        blind_index_key: SecretString,
    },
    /// Development keys, generated once into this file.
    DevFile(PathBuf),
}

/// Validated settings, by group.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Development or production.
    pub env: Environment,
    /// Log line format.
    pub log_format: LogFormat,
    /// Listeners, links and what the HTTP layer serves.
    pub http: HttpSettings,
    /// Where data is stored.
    pub database: DatabaseSettings,
    /// The encryption and blind-index keys.
    pub keys: KeySettings,
    /// Where mail goes and how the outbox sends it.
    pub mail: MailSettings,
    /// The background jobs.
    pub jobs: JobSettings,
    /// Sessions.
    pub sessions: SessionSettings,
    /// Sign-up, verification, recovery and usernames.
    pub accounts: AccountSettings,
    /// Deletion, the purge and its calendar.
    pub erasure: ErasureSettings,
    /// Rate limits.
    pub limits: LimitSettings,
    /// Breach notices.
    pub notices: NoticeSettings,
}

/// Listeners, links and what the HTTP layer serves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Listen address.
    pub bind: SocketAddr,
    /// Where `/metrics` is served alone, off the main listener; `None`
    /// serves it on the main listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Base of every link in an email, without a trailing slash.
    pub public_url: String,
    /// The certificate chain and key files when the binary serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// CORS origins allowed to call with credentials.
    pub allowed_origins: Vec<String>,
    /// Serve the GraphiQL page.
    pub playground: bool,
    /// Answer introspection queries.
    pub introspection: bool,
    /// Serve the account console; when off, the emailed paths answer a
    /// short page that says where to go.
    pub account_console: bool,
}

/// Where data is stored.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// A sea-orm database URL.
    pub url: SecretString,
    /// Which database the URL points at.
    pub kind: DatabaseKind,
    /// Where account data keys live when not in the main database; a
    /// sea-orm database URL (see [`crate::crypto::keystore`]).
    pub key_store_url: Option<SecretString>,
    /// Where the erasure journal lives when there is no separate key store;
    /// a sea-orm database URL (see [`crate::erasure::journal`]).
    pub erasure_journal_url: Option<SecretString>,
}

/// The encryption and blind-index keys.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// The keys to use.
    pub source: KeySource,
    /// The blind-index key being rotated away from: lookups match rows
    /// indexed under it too, until `custos keys rotate` has recomputed them.
    pub blind_index_previous_key: Option<SecretString>,
}

/// Where mail goes and how the outbox sends it.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where mail goes.
    pub transport: MailTransportSetting,
    /// The sender of every mail.
    pub from: lettre::message::Mailbox,
    /// Mails claimed per outbox tick.
    pub outbox_batch: u64,
    /// Attempts before a mail is given up for good.
    pub outbox_max_attempts: u32,
}

/// The background jobs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How often background jobs wake.
    pub interval: Duration,
    /// Whether this process runs the background jobs.
    pub run: bool,
}

/// Sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle: chrono::Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: chrono::Duration,
    /// How long a session check may be answered from memory (zero: off).
    pub cache: chrono::Duration,
    /// Mail a notice when an account signs in from a browser or app it
    /// has not used before.
    pub notify_new_signin: bool,
}

/// Sign-up, verification, recovery and usernames.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How long an address-verification link works.
    pub verification_token_ttl: chrono::Duration,
    /// How long after its last link expired a sign-up never verified is erased.
    pub unverified_grace: chrono::Duration,
    /// How long a password reset link works.
    pub reset_token_ttl: chrono::Duration,
    /// Days a minor's account waits for a guardian.
    pub guardian_consent_days: u32,
    /// Operator's extra refused username terms.
    pub username_blocklist: Vec<String>,
    /// Operator's extra reserved usernames.
    pub username_reserved: Vec<String>,
}

/// Deletion, the purge and its calendar.
#[derive(Debug, Clone)]
pub struct ErasureSettings {
    /// Working days between a confirmed deletion and the purge.
    pub grace_working_days: u32,
    /// Holidays and make-up working days.
    pub calendar: CalendarSetting,
    /// The time zone deadlines are counted in.
    pub timezone: chrono_tz::Tz,
    /// Accounts erased per purge transaction, when set; otherwise a
    /// default for the database.
    pub purge_batch: Option<u64>,
}

/// Rate limits.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Attempts of each rate-limited action per client a minute.
    pub per_minute: std::num::NonZeroU32,
    /// Proxies whose `X-Forwarded-For` names the client; empty: none.
    pub trusted_proxies: Vec<crate::ratelimit::IpNetwork>,
}

/// Breach notices.
#[derive(Debug, Clone)]
pub struct NoticeSettings {
    /// Above this many affected accounts an incident is also announced
    /// publicly, as individual notice is then impractical.
    pub incident_announce_threshold: u64,
    /// How long a report waits for its fan-out before answering with the
    /// progress so far.
    pub incident_wait: Duration,
}

/// The longest `CUSTOS_INCIDENT_WAIT_SECONDS`: well inside the 30 s limit
/// of a request, so the answer always comes back.
pub const MAX_INCIDENT_WAIT_SECONDS: u64 = 20;

impl NoticeSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        if raw.incident_wait_seconds > MAX_INCIDENT_WAIT_SECONDS {
            return Err(SettingsError::new(
                name::incident_wait_seconds,
                format!("must be at most {MAX_INCIDENT_WAIT_SECONDS}"),
            ));
        }
        Ok(Self {
            incident_announce_threshold: raw.incident_announce_threshold,
            incident_wait: Duration::from_secs(raw.incident_wait_seconds),
        })
    }
}

/// PEM files of the certificate chain and its key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `CUSTOS_TLS_CERT`.
    pub cert: std::path::PathBuf,
    /// `CUSTOS_TLS_KEY`.
    pub key: std::path::PathBuf,
}

/// "Must be at least 1" unless `value` is.
fn at_least_one(setting: &'static str, value: u64) -> Result<(), SettingsError> {
    if value == 0 {
        return Err(SettingsError::new(setting, "must be at least 1"));
    }
    Ok(())
}

/// A trimmed value, `None` when unset or blank.
fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl Settings {
    /// Whether answers tell browsers to use HTTPS only
    /// (`Strict-Transport-Security`): when the service is reached at an
    /// https `CUSTOS_PUBLIC_URL`, usually through a TLS-terminating proxy.
    pub fn sends_hsts(&self) -> bool {
        self.http.tls.is_some() || self.http.public_url.starts_with("https://")
    }

    /// Loads and validates settings from the process's sources.
    pub fn load() -> Result<Self, SettingsError> {
        Self::validate(RawSettings::load()?)
    }

    /// Checks every raw value and builds typed settings.
    pub fn validate(raw: RawSettings) -> Result<Self, SettingsError> {
        let env = match raw.env.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(SettingsError::new(
                    name::env,
                    format!("expected development or production, got {other:?}"),
                ));
            }
        };
        let production = env == Environment::Production;
        // Group by group: the first bad value found is the one named.
        let http = HttpSettings::validate(&raw, production)?;
        let database = DatabaseSettings::validate(&raw)?;
        let mail = MailSettings::validate(&raw, production)?;
        let keys = KeySettings::validate(&raw, production)?;
        let erasure = ErasureSettings::validate(&raw)?;
        let jobs = JobSettings::validate(&raw)?;
        let sessions = SessionSettings::validate(&raw)?;
        let accounts = AccountSettings::validate(&raw)?;
        let limits = LimitSettings::validate(&raw)?;
        let log_format = match raw.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(SettingsError::new(
                    name::log_format,
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        Ok(Self {
            env,
            log_format,
            http,
            database,
            keys,
            mail,
            jobs,
            sessions,
            accounts,
            erasure,
            limits,
            notices: NoticeSettings::validate(&raw)?,
        })
    }
}

impl HttpSettings {
    fn validate(raw: &RawSettings, production: bool) -> Result<Self, SettingsError> {
        let bind = parse_bind(name::bind, &raw.bind)?;
        let metrics_bind = match raw.metrics_bind.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let metrics_bind = parse_bind(name::metrics_bind, text)?;
                if metrics_bind == bind && bind.port() != 0 {
                    return Err(SettingsError::new(
                        name::metrics_bind,
                        format!(
                            "must differ from {} (unset it to serve /metrics there)",
                            name::bind
                        ),
                    ));
                }
                Some(metrics_bind)
            }
        };
        let allowed_origins = raw
            .allowed_origins
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_string())
            .filter(|origin| !origin.is_empty())
            .collect::<Vec<_>>();
        if let Some(bad) = allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(SettingsError::new(
                name::allowed_origins,
                format!("{bad:?} is not an http(s) origin"),
            ));
        }
        Ok(Self {
            bind,
            metrics_bind,
            public_url: public_url(raw.public_url.clone(), production)?,
            tls: tls_files(raw)?,
            allowed_origins,
            playground: raw.playground.unwrap_or(!production),
            introspection: raw.introspection.unwrap_or(!production),
            account_console: raw.account_console.unwrap_or(!production),
        })
    }
}

/// Checks `CUSTOS_PUBLIC_URL`, which production must give as https.
fn public_url(value: Option<String>, production: bool) -> Result<String, SettingsError> {
    match value {
        Some(url) => {
            let url = url.trim().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SettingsError::new(
                    name::public_url,
                    "must start with http:// or https://",
                ));
            }
            if production && !url.starts_with("https://") {
                // Mailed links carry single-use tokens (verification,
                // password reset, deletion): they must travel encrypted.
                return Err(SettingsError::new(
                    name::public_url,
                    "must be https:// in production: emailed links carry tokens",
                ));
            }
            Ok(url)
        }
        None if production => Err(SettingsError::new(
            name::public_url,
            "must be set in production: every emailed link is built from it",
        )),
        None => Ok("http://localhost:8000".into()),
    }
}

/// Checks that `CUSTOS_TLS_CERT` and `CUSTOS_TLS_KEY` come together.
fn tls_files(raw: &RawSettings) -> Result<Option<TlsFiles>, SettingsError> {
    match (present(raw.tls_cert.clone()), present(raw.tls_key.clone())) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(SettingsError::new(
            name::tls_key,
            format!("must be set with {}", name::tls_cert),
        )),
        (None, Some(_)) => Err(SettingsError::new(
            name::tls_cert,
            format!("must be set with {}", name::tls_key),
        )),
    }
}

impl DatabaseSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        let kind = database_kind_of(name::database_url, &raw.database_url)?;
        let main = raw.database_url.trim();
        let key_store_url = match present(raw.key_store_url.clone()) {
            None => None,
            Some(url) => {
                database_kind_of(name::key_store_url, &url)?;
                if url == main {
                    return Err(SettingsError::new(
                        name::key_store_url,
                        "names the main database; leave it unset to keep keys there",
                    ));
                }
                Some(SecretString::from(url))
            }
        };
        let erasure_journal_url = match present(raw.erasure_journal_url.clone()) {
            None => None,
            Some(url) => {
                database_kind_of(name::erasure_journal_url, &url)?;
                if url == main {
                    return Err(SettingsError::new(
                        name::erasure_journal_url,
                        "names the main database; a restored backup of it would restore the journal too",
                    ));
                }
                // The key store keeps the journal: a second place could
                // only disagree with it.
                if key_store_url.is_some() {
                    return Err(SettingsError::new(
                        name::erasure_journal_url,
                        format!(
                            "is for deployments without {}; the key store keeps the journal",
                            name::key_store_url
                        ),
                    ));
                }
                Some(SecretString::from(url))
            }
        };
        Ok(Self {
            url: SecretString::from(raw.database_url.clone()),
            kind,
            key_store_url,
            erasure_journal_url,
        })
    }
}

impl KeySettings {
    fn validate(raw: &RawSettings, production: bool) -> Result<Self, SettingsError> {
        let source = match (raw.encryption_keys.clone(), raw.blind_index_key.clone()) {
            (Some(encryption_keys), Some(blind_index_key)) => {
                let encryption_keys = SecretString::from(encryption_keys);
                let blind_index_key = SecretString::from(blind_index_key);
                // Parse now so a malformed key stops the start, not the first request.
                crate::crypto::fields::Keyring::parse(encryption_keys.expose_secret())
                    .map_err(|e| SettingsError::new(name::encryption_keys, e.to_string()))?;
                crate::crypto::blind_index::BlindIndex::parse(blind_index_key.expose_secret())
                    .map_err(|e| SettingsError::new(name::blind_index_key, e.to_string()))?;
                KeySource::Given {
                    encryption_keys,
                    blind_index_key,
                }
            }
            (Some(_), None) => {
                return Err(SettingsError::new(
                    name::blind_index_key,
                    format!("must be set together with {}", name::encryption_keys),
                ));
            }
            (None, Some(_)) => {
                return Err(SettingsError::new(
                    name::encryption_keys,
                    format!("must be set together with {}", name::blind_index_key),
                ));
            }
            (None, None) if production => {
                return Err(SettingsError::new(
                    name::encryption_keys,
                    "must be set in production: development keys are refused",
                ));
            }
            (None, None) => KeySource::DevFile(PathBuf::from(&raw.dev_keys_file)),
        };
        Ok(Self {
            source,
            blind_index_previous_key: parse_previous_blind_index_key(
                raw.blind_index_previous_key.clone(),
            )?,
        })
    }
}

impl MailSettings {
    fn validate(raw: &RawSettings, production: bool) -> Result<Self, SettingsError> {
        let transport = match raw.smtp_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(SettingsError::new(
                        name::smtp_url,
                        "must start with smtp:// or smtps://",
                    ));
                }
                MailTransportSetting::Smtp(SecretString::from(url.to_owned()))
            }
            _ if production => {
                return Err(SettingsError::new(
                    name::smtp_url,
                    "must be set in production: file mail reaches nobody",
                ));
            }
            _ => MailTransportSetting::Files(PathBuf::from(&raw.mail_dir)),
        };
        let from = raw.mail_from.parse().map_err(|_| {
            SettingsError::new(name::mail_from, "not a mailbox like `Name <addr@host>`")
        })?;
        at_least_one(name::outbox_batch, raw.outbox_batch)?;
        at_least_one(name::outbox_max_attempts, raw.outbox_max_attempts.into())?;
        Ok(Self {
            transport,
            from,
            outbox_batch: raw.outbox_batch,
            outbox_max_attempts: raw.outbox_max_attempts,
        })
    }
}

impl JobSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        at_least_one(name::scheduler_interval_secs, raw.scheduler_interval_secs)?;
        Ok(Self {
            interval: Duration::from_secs(raw.scheduler_interval_secs),
            run: raw.run_jobs,
        })
    }
}

impl SessionSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        at_least_one(name::session_idle_minutes, raw.session_idle_minutes.into())?;
        at_least_one(
            name::session_lifetime_hours,
            raw.session_lifetime_hours.into(),
        )?;
        // `lastSeenAt` is written once a minute, and every such request reads
        // the database anyway: a longer cache would gain nothing.
        if raw.session_cache_seconds > MAX_SESSION_CACHE_SECONDS {
            return Err(SettingsError::new(
                name::session_cache_seconds,
                format!("must be 0 to {MAX_SESSION_CACHE_SECONDS}"),
            ));
        }
        Ok(Self {
            idle: chrono::Duration::minutes(i64::from(raw.session_idle_minutes)),
            lifetime: chrono::Duration::hours(i64::from(raw.session_lifetime_hours)),
            cache: chrono::Duration::seconds(i64::from(raw.session_cache_seconds)),
            notify_new_signin: raw.notify_new_signin,
        })
    }
}

impl AccountSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        at_least_one(
            name::verification_token_hours,
            raw.verification_token_hours.into(),
        )?;
        // A reset link is a password in transit: it should die soon (OWASP
        // suggests minutes), and never outlive a day.
        if !(1..=1440).contains(&raw.reset_token_minutes) {
            return Err(SettingsError::new(
                name::reset_token_minutes,
                "must be between 1 and 1440",
            ));
        }
        Ok(Self {
            verification_token_ttl: chrono::Duration::hours(i64::from(
                raw.verification_token_hours,
            )),
            unverified_grace: chrono::Duration::days(i64::from(raw.unverified_grace_days)),
            reset_token_ttl: chrono::Duration::minutes(i64::from(raw.reset_token_minutes)),
            guardian_consent_days: raw.guardian_consent_days,
            username_blocklist: parse_word_list(name::username_blocklist, &raw.username_blocklist)?,
            username_reserved: parse_word_list(name::username_reserved, &raw.username_reserved)?,
        })
    }
}

impl ErasureSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        let calendar = parse_holidays(&raw.holidays)?;
        let timezone = raw.timezone.trim().parse().map_err(|_| {
            SettingsError::new(name::timezone, "not an IANA time zone like Asia/Shanghai")
        })?;
        if let Some(batch) = raw.purge_batch
            && !(1..=MAX_PURGE_BATCH).contains(&batch)
        {
            return Err(SettingsError::new(
                name::purge_batch,
                format!("must be 1 to {MAX_PURGE_BATCH}"),
            ));
        }
        Ok(Self {
            grace_working_days: raw.deletion_grace_working_days,
            calendar,
            timezone,
            purge_batch: raw.purge_batch,
        })
    }
}

impl LimitSettings {
    fn validate(raw: &RawSettings) -> Result<Self, SettingsError> {
        let per_minute = std::num::NonZeroU32::new(raw.rate_limit_per_minute)
            .ok_or_else(|| SettingsError::new(name::rate_limit_per_minute, "must be at least 1"))?;
        let trusted_proxies = raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                crate::ratelimit::IpNetwork::parse(item)
                    .map_err(|reason| SettingsError::new(name::trusted_proxies, reason))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            per_minute,
            trusted_proxies,
        })
    }
}

/// Checks `CUSTOS_BLIND_INDEX_PREVIOUS_KEY`. Empty counts as unset, so an
/// operator can end a rotation by blanking the variable as well as by
/// removing it.
fn parse_previous_blind_index_key(
    value: Option<String>,
) -> Result<Option<SecretString>, SettingsError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let value = SecretString::from(value);
    let setting = crate::crypto::blind_index::PREVIOUS_SETTING;
    crate::crypto::blind_index::BlindIndex::parse_setting(setting, value.expose_secret()).map_err(
        |err| match err {
            // The setting is already named by `SettingsError`; say it once.
            crate::crypto::CryptoError::BadKey { reason, .. } => {
                SettingsError::new(setting, reason)
            }
            other => SettingsError::new(setting, other.to_string()),
        },
    )?;
    Ok(Some(value))
}

fn parse_bind(setting: &'static str, bind: &str) -> Result<SocketAddr, SettingsError> {
    let bind = bind.trim();
    // ":0" is shorthand for "any free port on loopback".
    let full = if bind.starts_with(':') {
        format!("127.0.0.1{bind}")
    } else {
        bind.to_string()
    };
    full.parse()
        .map_err(|_| SettingsError::new(setting, "expected host:port, e.g. 127.0.0.1:8000"))
}

fn database_kind_of(setting: &'static str, url: &str) -> Result<DatabaseKind, SettingsError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseKind::Postgres)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(SettingsError::new(
            setting,
            format!("unsupported scheme {scheme:?}: use sqlite:// or postgres://"),
        ))
    }
}

/// Reads a word list given inline (comma-separated) or as a file (one a
/// line, `#` comments).
fn parse_word_list(setting: &'static str, value: &str) -> Result<Vec<String>, SettingsError> {
    let value = value.trim();
    let text = if !value.is_empty() && std::path::Path::new(value).is_file() {
        std::fs::read_to_string(value)
            .map_err(|e| SettingsError::new(setting, format!("cannot read file: {e}")))?
    } else {
        value.replace(',', "\n")
    };
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim().to_owned())
        .filter(|word| !word.is_empty())
        .collect())
}

/// The working-day calendar's exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarSetting {
    /// Days off that would otherwise be working days.
    pub holidays: Vec<NaiveDate>,
    /// Weekend days that are working days (make-up days).
    pub workdays: Vec<NaiveDate>,
}

/// Reads `CUSTOS_HOLIDAYS`: items separated by commas, each a `YYYY-MM-DD`
/// holiday or the path of a calendar file whose lines are `YYYY-MM-DD`,
/// `YYYY-MM-DD holiday` or `YYYY-MM-DD workday` (`#` starts a comment).
fn parse_holidays(value: &str) -> Result<CalendarSetting, SettingsError> {
    let mut calendar = CalendarSetting::default();
    let bad = |what: &str| SettingsError::new("CUSTOS_HOLIDAYS", what.to_owned());
    let read_line = |line: &str, calendar: &mut CalendarSetting| -> Result<(), SettingsError> {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let date_text = parts.next().unwrap_or_default();
        let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
            .map_err(|_| bad(&format!("{date_text:?} is not a YYYY-MM-DD date")))?;
        match parts.next() {
            None | Some("holiday") => calendar.holidays.push(date),
            Some("workday") => calendar.workdays.push(date),
            Some(other) => {
                return Err(bad(&format!(
                    "unknown day kind {other:?}: use holiday or workday"
                )));
            }
        }
        Ok(())
    };
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let path = std::path::Path::new(item);
        if NaiveDate::parse_from_str(
            item.split_whitespace().next().unwrap_or_default(),
            "%Y-%m-%d",
        )
        .is_ok()
        {
            read_line(item, &mut calendar)?;
        } else if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(&format!(
                    "cannot read calendar file {}: {e}",
                    path.display()
                ))
            })?;
            for line in text.lines() {
                read_line(line, &mut calendar)?;
            }
        } else {
            return Err(bad(&format!(
                "{item:?} is neither a YYYY-MM-DD date nor a calendar file"
            )));
        }
    }
    for list in [&mut calendar.holidays, &mut calendar.workdays] {
        list.sort();
        list.dedup();
    }
    if let Some(both) = calendar
        .holidays
        .iter()
        .find(|d| calendar.workdays.contains(d))
    {
        return Err(bad(&format!(
            "{both} is listed as both a holiday and a workday"
        )));
    }
    Ok(calendar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings::default()
    }

    #[test]
    fn defaults_are_valid_for_development() {
        let settings = Settings::validate(raw());
        assert!(settings.is_ok(), "{settings:?}");
        let Ok(settings) = settings else { return };
        assert_eq!(settings.env, Environment::Development);
        assert_eq!(settings.http.public_url, "http://localhost:8000");
        assert!(matches!(settings.keys.source, KeySource::DevFile(_)));
        assert!(settings.http.playground && settings.http.introspection);
        assert!(settings.http.account_console);
    }

    #[test]
    fn the_incident_wait_stays_inside_the_request_limit() {
        let mut r = raw();
        r.incident_wait_seconds = 0;
        let wait = Settings::validate(r.clone()).map(|s| s.notices.incident_wait);
        assert_eq!(wait.ok(), Some(Duration::ZERO));
        r.incident_wait_seconds = MAX_INCIDENT_WAIT_SECONDS + 1;
        let err = Settings::validate(r).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_INCIDENT_WAIT_SECONDS"));
    }

    #[test]
    fn production_refuses_dev_keys_file_mail_and_missing_public_url() {
        let mut r = raw();
        r.env = "production".into();
        let err = Settings::validate(r.clone()).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_PUBLIC_URL"));

        r.public_url = Some("http://example.org".into());
        let err = Settings::validate(r.clone()).err();
        assert_eq!(err.as_ref().map(|e| e.setting), Some("CUSTOS_PUBLIC_URL"));
        assert!(err.is_some_and(|e| e.reason.contains("https://")));

        r.public_url = Some("https://example.org".into());
        let err = Settings::validate(r.clone()).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_SMTP_URL"));

        r.smtp_url = Some("smtp://127.0.0.1:25".into());
        let err = Settings::validate(r.clone()).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_ENCRYPTION_KEYS"));
    }

    #[test]
    fn the_account_console_is_off_in_production_unless_asked_for() {
        let Ok(keys) = crate::crypto::keys::generate("p1") else {
            panic!("keys generate");
        };
        let mut r = raw();
        r.env = "production".into();
        r.public_url = Some("https://example.org".into());
        r.smtp_url = Some("smtp://127.0.0.1:25".into());
        r.encryption_keys = Some(keys.encryption_keys.expose_secret().to_owned());
        r.blind_index_key = Some(keys.blind_index_key.expose_secret().to_owned());
        let settings = Settings::validate(r.clone());
        assert!(
            settings.as_ref().is_ok_and(|s| !s.http.account_console),
            "{settings:?}"
        );
        r.account_console = Some(true);
        let settings = Settings::validate(r);
        assert!(
            settings.as_ref().is_ok_and(|s| s.http.account_console),
            "{settings:?}"
        );
    }

    #[test]
    fn key_store_url_is_optional_and_checked() {
        let mut r = raw();
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.database.key_store_url.is_none())
        );
        r.key_store_url = Some("  ".into());
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.database.key_store_url.is_none())
        );
        let main = r.database_url.clone();
        for bad in ["mysql://keys", main.as_str()] {
            r.key_store_url = Some(bad.into());
            let err = Settings::validate(r.clone()).err().map(|e| e.setting);
            assert_eq!(err, Some("CUSTOS_KEY_STORE_URL"), "{bad}");
        }
        r.key_store_url = Some("sqlite://keys.db?mode=rwc".into());
        assert!(
            Settings::validate(r)
                .ok()
                .is_some_and(|s| s.database.key_store_url.is_some())
        );
    }

    #[test]
    fn erasure_journal_url_is_optional_checked_and_not_beside_a_key_store() {
        let mut r = raw();
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.database.erasure_journal_url.is_none())
        );
        r.erasure_journal_url = Some(" ".into());
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.database.erasure_journal_url.is_none())
        );
        let main = r.database_url.clone();
        for bad in ["mysql://journal", main.as_str()] {
            r.erasure_journal_url = Some(bad.into());
            let err = Settings::validate(r.clone()).err().map(|e| e.setting);
            assert_eq!(err, Some("CUSTOS_ERASURE_JOURNAL_URL"), "{bad}");
        }
        r.erasure_journal_url = Some("sqlite://journal.db?mode=rwc".into());
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.database.erasure_journal_url.is_some())
        );
        r.key_store_url = Some("sqlite://keys.db?mode=rwc".into());
        let err = Settings::validate(r).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_ERASURE_JOURNAL_URL"));
    }

    #[test]
    fn session_cache_is_bounded_and_may_be_off() {
        let mut r = raw();
        let lifetime =
            |r: &RawSettings| Settings::validate(r.clone()).ok().map(|s| s.sessions.cache);
        assert_eq!(lifetime(&r), Some(chrono::Duration::seconds(5)));
        r.session_cache_seconds = 0;
        assert_eq!(lifetime(&r), Some(chrono::Duration::zero()));
        r.session_cache_seconds = MAX_SESSION_CACHE_SECONDS;
        assert_eq!(lifetime(&r), Some(chrono::Duration::seconds(60)));
        r.session_cache_seconds = MAX_SESSION_CACHE_SECONDS + 1;
        let err = Settings::validate(r).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_SESSION_CACHE_SECONDS"));
    }

    #[test]
    fn purge_batch_is_optional_and_bounded() {
        let mut r = raw();
        assert_eq!(
            Settings::validate(r.clone())
                .ok()
                .map(|s| s.erasure.purge_batch),
            Some(None)
        );
        for bad in [0, MAX_PURGE_BATCH + 1] {
            r.purge_batch = Some(bad);
            let err = Settings::validate(r.clone()).err().map(|e| e.setting);
            assert_eq!(err, Some("CUSTOS_PURGE_BATCH"), "{bad}");
        }
        for good in [1, MAX_PURGE_BATCH] {
            r.purge_batch = Some(good);
            let batch = Settings::validate(r.clone())
                .ok()
                .and_then(|s| s.erasure.purge_batch);
            assert_eq!(batch, Some(good));
        }
    }

    #[test]
    fn unknown_database_scheme_is_named() {
        let mut r = raw();
        r.database_url = "oracle://db".into();
        let err = Settings::validate(r).err();
        assert_eq!(err.as_ref().map(|e| e.setting), Some("CUSTOS_DATABASE_URL"));
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("oracle")
        );
    }

    #[test]
    fn malformed_key_is_named_without_echoing_it() {
        let mut r = raw();
        r.encryption_keys = Some("k1:not-base64-secretvalue".into());
        r.blind_index_key = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
        let err = Settings::validate(r).err();
        assert_eq!(
            err.as_ref().map(|e| e.setting),
            Some("CUSTOS_ENCRYPTION_KEYS")
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!text.contains("secretvalue"), "{text}");
    }

    #[test]
    fn previous_blind_index_key_is_optional_and_checked() {
        let settings = Settings::validate(raw());
        assert!(
            matches!(&settings, Ok(s) if s.keys.blind_index_previous_key.is_none()),
            "{settings:?}"
        );

        let mut r = raw();
        r.blind_index_previous_key = Some("  ".into());
        let settings = Settings::validate(r);
        assert!(
            matches!(&settings, Ok(s) if s.keys.blind_index_previous_key.is_none()),
            "blank means unset: {settings:?}"
        );

        let mut r = raw();
        r.blind_index_previous_key = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
        let settings = Settings::validate(r);
        assert!(
            matches!(&settings, Ok(s) if s.keys.blind_index_previous_key.is_some()),
            "{settings:?}"
        );
    }

    #[test]
    fn malformed_previous_blind_index_key_is_named_on_one_line_without_echoing_it() {
        for bad in [
            "not base64 secretvalue!",
            // Valid base64, wrong length (24 bytes).
            "c2VjcmV0dmFsdWVzZWNyZXR2YWx1ZXNl",
        ] {
            let mut r = raw();
            r.blind_index_previous_key = Some(bad.into());
            let err = Settings::validate(r).err();
            assert_eq!(
                err.as_ref().map(|e| e.setting),
                Some("CUSTOS_BLIND_INDEX_PREVIOUS_KEY")
            );
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                text.starts_with("invalid setting CUSTOS_BLIND_INDEX_PREVIOUS_KEY: "),
                "{text}"
            );
            assert_eq!(
                text.matches("CUSTOS_BLIND_INDEX_PREVIOUS_KEY").count(),
                1,
                "{text}"
            );
            assert!(!text.contains('\n'), "{text}");
            assert!(
                !text.contains("secretvalue") && !text.contains(bad),
                "{text}"
            );
        }
    }

    #[test]
    fn previous_blind_index_key_has_an_operator_name() {
        assert_eq!(
            setting_name("blind_index_previous_key"),
            "CUSTOS_BLIND_INDEX_PREVIOUS_KEY"
        );
        assert_eq!(
            name::blind_index_previous_key,
            crate::crypto::blind_index::PREVIOUS_SETTING
        );
    }

    #[test]
    fn every_setting_has_one_name_derived_from_its_field() {
        for setting in SETTINGS {
            assert_eq!(
                setting.name,
                format!("CUSTOS_{}", setting.field.to_ascii_uppercase())
            );
            assert_eq!(setting_name(setting.field), setting.name);
            assert_eq!(
                SETTINGS.iter().filter(|s| s.name == setting.name).count(),
                1,
                "{}",
                setting.name
            );
        }
        assert_eq!(
            setting_name("ERASURE_JOURNAL_URL"),
            "CUSTOS_ERASURE_JOURNAL_URL"
        );
        assert_eq!(setting_name("no_such_setting"), "CUSTOS_CONFIG");
        // Every field of RawSettings is in the table.
        let raw = serde_json::to_value(RawSettings::default()).unwrap_or_default();
        let fields = raw.as_object().map(|o| o.len()).unwrap_or_default();
        assert_eq!(fields, SETTINGS.len());
    }

    const TABLE_START: &str = "<!-- The settings table is generated from src/settings.rs: \
         CUSTOS_WRITE_SETTINGS_TABLE=1 cargo test --lib settings -->\n";
    const TABLE_END: &str = "<!-- end of the settings table -->";

    /// The table in `docs/operations.md` is [`markdown_table`]; with
    /// `CUSTOS_WRITE_SETTINGS_TABLE=1` this test rewrites it.
    #[test]
    fn the_operations_guide_lists_every_setting_as_declared() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc.find(TABLE_START).expect("the table's start marker") + TABLE_START.len();
        let end = doc.find(TABLE_END).expect("the table's end marker");
        let wanted = markdown_table();
        if doc[start..end] == wanted {
            return;
        }
        if std::env::var_os("CUSTOS_WRITE_SETTINGS_TABLE").is_some() {
            let rewritten = format!("{}{wanted}{}", &doc[..start], &doc[end..]);
            std::fs::write(path, rewritten).unwrap();
            return;
        }
        panic!(
            "the settings table of docs/operations.md differs from src/settings.rs; \
             rewrite it with CUSTOS_WRITE_SETTINGS_TABLE=1 cargo test --lib settings"
        );
    }

    #[test]
    fn a_metrics_bind_is_optional_parsed_and_apart_from_the_main_one() {
        let unset = Settings::validate(raw()).map(|s| s.http.metrics_bind);
        assert!(matches!(unset, Ok(None)), "{unset:?}");
        let mut r = raw();
        r.metrics_bind = Some("  ".into());
        assert!(matches!(
            Settings::validate(r.clone()).map(|s| s.http.metrics_bind),
            Ok(None)
        ));
        r.metrics_bind = Some("10.0.0.5:9100".into());
        let set = Settings::validate(r.clone()).map(|s| s.http.metrics_bind.map(|a| a.to_string()));
        assert_eq!(set.ok().flatten().as_deref(), Some("10.0.0.5:9100"));
        r.metrics_bind = Some(":0".into());
        assert!(Settings::validate(r.clone()).is_ok());
        for bad in ["nine thousand", "10.0.0.5"] {
            r.metrics_bind = Some(bad.into());
            assert_eq!(
                Settings::validate(r.clone()).err().map(|e| e.setting),
                Some("CUSTOS_METRICS_BIND"),
                "{bad}"
            );
        }
        r.bind = "127.0.0.1:8000".into();
        r.metrics_bind = Some("127.0.0.1:8000".into());
        assert_eq!(
            Settings::validate(r).err().map(|e| e.setting),
            Some("CUSTOS_METRICS_BIND")
        );
    }

    #[test]
    fn bind_shorthand_and_holidays_parse() {
        let mut r = raw();
        r.bind = ":0".into();
        r.holidays = "2026-10-01, 2026-10-02, 2026-10-01".into();
        let settings = Settings::validate(r);
        assert!(settings.is_ok());
        let Ok(settings) = settings else { return };
        assert_eq!(settings.http.bind.port(), 0);
        assert_eq!(settings.erasure.calendar.holidays.len(), 2);

        let mut r = raw();
        r.holidays = "2026-13-01".into();
        assert_eq!(
            Settings::validate(r.clone()).err().map(|e| e.setting),
            Some("CUSTOS_HOLIDAYS")
        );
        r.holidays = "data/calendars/cn-2026.txt".into();
        r.timezone = "Mars/Olympus".into();
        assert_eq!(
            Settings::validate(r.clone()).err().map(|e| e.setting),
            Some("CUSTOS_TIMEZONE")
        );
        r.timezone = "Asia/Shanghai".into();
        let shipped = Settings::validate(r.clone());
        assert!(shipped.is_ok(), "{shipped:?}");
        if let Ok(shipped) = shipped {
            assert!(
                shipped
                    .erasure
                    .calendar
                    .workdays
                    .contains(&NaiveDate::from_ymd_opt(2026, 2, 14).unwrap_or_default())
            );
            assert!(
                shipped
                    .erasure
                    .calendar
                    .holidays
                    .contains(&NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default())
            );
        }
        r.holidays = "2026-10-01, 2026-10-01 workday".into();
        assert_eq!(
            Settings::validate(r).err().map(|e| e.setting),
            Some("CUSTOS_HOLIDAYS")
        );
    }

    #[test]
    fn recovery_and_rate_limit_settings_are_checked() {
        let settings = Settings::validate(raw());
        let Ok(settings) = settings else {
            unreachable!("valid settings")
        };
        assert_eq!(
            settings.accounts.reset_token_ttl,
            chrono::Duration::minutes(30)
        );
        assert_eq!(settings.limits.per_minute.get(), 30);
        assert!(settings.limits.trusted_proxies.is_empty());
        assert!(!settings.sessions.notify_new_signin);

        for (adjust, setting) in [
            (
                (|r: &mut RawSettings| r.reset_token_minutes = 0) as fn(&mut RawSettings),
                "CUSTOS_RESET_TOKEN_MINUTES",
            ),
            (
                |r: &mut RawSettings| r.reset_token_minutes = 1441,
                "CUSTOS_RESET_TOKEN_MINUTES",
            ),
            (
                |r: &mut RawSettings| r.rate_limit_per_minute = 0,
                "CUSTOS_RATE_LIMIT_PER_MINUTE",
            ),
            (
                |r: &mut RawSettings| r.trusted_proxies = "10.0.0.0/8, proxy.local".into(),
                "CUSTOS_TRUSTED_PROXIES",
            ),
        ] {
            let mut r = raw();
            adjust(&mut r);
            assert_eq!(
                Settings::validate(r).err().map(|e| e.setting),
                Some(setting)
            );
        }

        let mut r = raw();
        r.trusted_proxies = "10.0.0.0/8, 192.0.2.7 ,fd00::/8".into();
        let Ok(settings) = Settings::validate(r) else {
            unreachable!("valid settings")
        };
        assert_eq!(settings.limits.trusted_proxies.len(), 3);
    }

    #[test]
    fn secrets_do_not_print() {
        let mut r = raw();
        r.smtp_url = Some("smtps://user:hunter2pass@mail.example:465".into());
        let Ok(settings) = Settings::validate(r) else {
            unreachable!("valid settings")
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2pass"));

        let mut r = raw();
        r.blind_index_previous_key = Some("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into());
        let Ok(settings) = Settings::validate(r) else {
            unreachable!("valid settings")
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("AQEBAQEB"), "{printed}");
    }
}
