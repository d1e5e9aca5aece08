//! Typed settings, layered: defaults, then an optional `custos.toml`, then
//! `CUSTOS_*` environment variables (the table in docs/operations.md).
//!
//! Raw values are validated once at start into [`Settings`]; a bad value
//! stops the start with a one-line message naming the setting. Secrets stay
//! wrapped in [`SecretString`] so they never reach a log or a panic message.

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

/// Settings as read from files and the environment, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RawSettings {
    /// `CUSTOS_ENV`.
    pub env: String,
    /// `CUSTOS_BIND`.
    pub bind: String,
    /// `CUSTOS_METRICS_BIND`: a listener of its own for `/metrics`.
    pub metrics_bind: Option<String>,
    /// `CUSTOS_DATABASE_URL`.
    pub database_url: String,
    /// `CUSTOS_KEY_STORE_URL`: a separate database for account data keys.
    pub key_store_url: Option<String>,
    /// `CUSTOS_ERASURE_JOURNAL_URL`: where the erasure journal lives when
    /// there is no separate key store.
    pub erasure_journal_url: Option<String>,
    /// `CUSTOS_PUBLIC_URL`; `None` means "not given" (refused in production).
    pub public_url: Option<String>,
    /// `CUSTOS_SMTP_URL`.
    pub smtp_url: Option<String>,
    /// `CUSTOS_MAIL_FROM`.
    pub mail_from: String,
    /// `CUSTOS_MAIL_DIR`: where file mail goes when no SMTP URL is set.
    pub mail_dir: String,
    /// `CUSTOS_ENCRYPTION_KEYS`.
    pub encryption_keys: Option<String>,
    /// `CUSTOS_BLIND_INDEX_KEY`.
    pub blind_index_key: Option<String>,
    /// `CUSTOS_BLIND_INDEX_PREVIOUS_KEY`: set only while a blind-index key
    /// rotation is under way.
    pub blind_index_previous_key: Option<String>,
    /// `CUSTOS_DEV_KEYS_FILE`.
    pub dev_keys_file: String,
    /// `CUSTOS_DELETION_GRACE_WORKING_DAYS`.
    pub deletion_grace_working_days: u32,
    /// `CUSTOS_HOLIDAYS`.
    pub holidays: String,
    /// `CUSTOS_TIMEZONE`: where working days are counted.
    pub timezone: String,
    /// `CUSTOS_SCHEDULER_INTERVAL_SECS`.
    pub scheduler_interval_secs: u64,
    /// `CUSTOS_RUN_JOBS`: run the background jobs in this process.
    pub run_jobs: bool,
    /// `CUSTOS_GUARDIAN_CONSENT_DAYS`.
    pub guardian_consent_days: u32,
    /// `CUSTOS_ALLOWED_ORIGINS`.
    pub allowed_origins: String,
    /// `CUSTOS_LOG_FORMAT`.
    pub log_format: String,
    /// `CUSTOS_PLAYGROUND`: serve GraphiQL (defaults to on outside production).
    pub playground: Option<bool>,
    /// `CUSTOS_ACCOUNT_CONSOLE`: serve the account console at `/` and the
    /// emailed paths (defaults to on outside production).
    pub account_console: Option<bool>,
    /// `CUSTOS_INTROSPECTION`: allow introspection (defaults to on outside production).
    pub introspection: Option<bool>,
    /// `CUSTOS_OUTBOX_BATCH`: mails claimed per outbox tick.
    pub outbox_batch: u64,
    /// `CUSTOS_OUTBOX_MAX_ATTEMPTS`: attempts before a mail is given up.
    pub outbox_max_attempts: u32,
    /// `CUSTOS_PURGE_BATCH`: accounts erased per purge transaction
    /// (defaults by database, see [`crate::erasure::purge::batch_size`]).
    pub purge_batch: Option<u64>,
    /// `CUSTOS_SESSION_IDLE_MINUTES`: a session unused this long ends.
    pub session_idle_minutes: u32,
    /// `CUSTOS_SESSION_LIFETIME_HOURS`: a session ends this long after sign-in.
    pub session_lifetime_hours: u32,
    /// `CUSTOS_SESSION_CACHE_SECONDS`: how long an instance may answer a
    /// session check from memory (0: always read the database).
    pub session_cache_seconds: u32,
    /// `CUSTOS_VERIFICATION_TOKEN_HOURS`: how long an address-verification link works.
    pub verification_token_hours: u32,
    /// `CUSTOS_USERNAME_BLOCKLIST`: extra refused terms (comma-separated, or a file).
    pub username_blocklist: String,
    /// `CUSTOS_USERNAME_RESERVED`: extra reserved names (comma-separated, or a file).
    pub username_reserved: String,
    /// `CUSTOS_RESET_TOKEN_MINUTES`: how long a password reset link works.
    pub reset_token_minutes: u32,
    /// `CUSTOS_RATE_LIMIT_PER_MINUTE`: attempts of each limited action per client a minute.
    pub rate_limit_per_minute: u32,
    /// `CUSTOS_TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` is believed (IPs or CIDRs).
    pub trusted_proxies: String,
    /// `CUSTOS_NOTIFY_NEW_SIGNIN`: mail a notice on sign-in from a new browser or app.
    pub notify_new_signin: bool,
    /// `CUSTOS_INCIDENT_ANNOUNCE_THRESHOLD`: above this many affected
    /// accounts, an incident is also announced publicly.
    pub incident_announce_threshold: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            env: "development".into(),
            bind: "127.0.0.1:8000".into(),
            metrics_bind: None,
            database_url: "sqlite://custos.db?mode=rwc".into(),
            key_store_url: None,
            erasure_journal_url: None,
            public_url: None,
            smtp_url: None,
            mail_from: "Custos <no-reply@localhost>".into(),
            mail_dir: "mail".into(),
            encryption_keys: None,
            blind_index_key: None,
            blind_index_previous_key: None,
            dev_keys_file: "custos.dev-keys".into(),
            deletion_grace_working_days: 3,
            holidays: String::new(),
            timezone: "Asia/Shanghai".into(),
            scheduler_interval_secs: 60,
            run_jobs: true,
            guardian_consent_days: 7,
            allowed_origins: String::new(),
            log_format: "pretty".into(),
            playground: None,
            account_console: None,
            introspection: None,
            outbox_batch: 50,
            outbox_max_attempts: 12,
            purge_batch: None,
            session_idle_minutes: 30,
            session_lifetime_hours: 12,
            session_cache_seconds: 5,
            verification_token_hours: 24,
            username_blocklist: String::new(),
            username_reserved: String::new(),
            reset_token_minutes: 30,
            rate_limit_per_minute: 30,
            trusted_proxies: String::new(),
            notify_new_signin: false,
            incident_announce_threshold: 10_000,
        }
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
    const NAMES: &[&str] = &[
        "CUSTOS_ENV",
        "CUSTOS_BIND",
        "CUSTOS_METRICS_BIND",
        "CUSTOS_DATABASE_URL",
        "CUSTOS_KEY_STORE_URL",
        "CUSTOS_PUBLIC_URL",
        "CUSTOS_SMTP_URL",
        "CUSTOS_MAIL_FROM",
        "CUSTOS_MAIL_DIR",
        "CUSTOS_ENCRYPTION_KEYS",
        "CUSTOS_BLIND_INDEX_KEY",
        "CUSTOS_BLIND_INDEX_PREVIOUS_KEY",
        "CUSTOS_DEV_KEYS_FILE",
        "CUSTOS_DELETION_GRACE_WORKING_DAYS",
        "CUSTOS_HOLIDAYS",
        "CUSTOS_TIMEZONE",
        "CUSTOS_SCHEDULER_INTERVAL_SECS",
        "CUSTOS_RUN_JOBS",
        "CUSTOS_GUARDIAN_CONSENT_DAYS",
        "CUSTOS_ALLOWED_ORIGINS",
        "CUSTOS_LOG_FORMAT",
        "CUSTOS_PLAYGROUND",
        "CUSTOS_INTROSPECTION",
        "CUSTOS_OUTBOX_BATCH",
        "CUSTOS_OUTBOX_MAX_ATTEMPTS",
        "CUSTOS_PURGE_BATCH",
        "CUSTOS_SESSION_IDLE_MINUTES",
        "CUSTOS_SESSION_LIFETIME_HOURS",
        "CUSTOS_SESSION_CACHE_SECONDS",
        "CUSTOS_VERIFICATION_TOKEN_HOURS",
        "CUSTOS_USERNAME_BLOCKLIST",
        "CUSTOS_USERNAME_RESERVED",
        "CUSTOS_RESET_TOKEN_MINUTES",
        "CUSTOS_RATE_LIMIT_PER_MINUTE",
        "CUSTOS_TRUSTED_PROXIES",
        "CUSTOS_NOTIFY_NEW_SIGNIN",
        "CUSTOS_INCIDENT_ANNOUNCE_THRESHOLD",
    ];
    let wanted = format!("CUSTOS_{}", key.to_ascii_uppercase());
    NAMES
        .iter()
        .find(|name| **name == wanted)
        .copied()
        .unwrap_or("CUSTOS_CONFIG")
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

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Development or production.
    pub env: Environment,
    /// Listen address.
    pub bind: SocketAddr,
    /// Where `/metrics` is served alone, off the main listener; `None`
    /// serves it on the main listener.
    pub metrics_bind: Option<SocketAddr>,
    /// A sea-orm database URL.
    pub database_url: SecretString,
    /// Which database the URL points at.
    pub database_kind: DatabaseKind,
    /// Where account data keys live when not in the main database; a
    /// sea-orm database URL (see [`crate::keystore`]).
    pub key_store_url: Option<SecretString>,
    /// Where the erasure journal lives when there is no separate key store;
    /// a sea-orm database URL (see [`crate::erasure::journal`]).
    pub erasure_journal_url: Option<SecretString>,
    /// Base of every link in an email, without a trailing slash.
    pub public_url: String,
    /// Where mail goes.
    pub mail_transport: MailTransportSetting,
    /// The sender of every mail.
    pub mail_from: lettre::message::Mailbox,
    /// The keys to use.
    pub keys: KeySource,
    /// The blind-index key being rotated away from: lookups match rows
    /// indexed under it too, until `custos keys rotate` has recomputed them.
    pub blind_index_previous_key: Option<SecretString>,
    /// Working days between a confirmed deletion and the purge.
    pub deletion_grace_working_days: u32,
    /// Holidays and make-up working days.
    pub calendar: CalendarSetting,
    /// The time zone deadlines are counted in.
    pub timezone: chrono_tz::Tz,
    /// How often background jobs wake.
    pub scheduler_interval: Duration,
    /// Whether this process runs the background jobs.
    pub run_jobs: bool,
    /// Days a minor's account waits for a guardian.
    pub guardian_consent_days: u32,
    /// CORS origins allowed to call with credentials.
    pub allowed_origins: Vec<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Serve the GraphiQL page.
    pub playground: bool,
    /// Serve the account console; when off, the emailed paths answer a
    /// short page that says where to go.
    pub account_console: bool,
    /// Answer introspection queries.
    pub introspection: bool,
    /// Mails claimed per outbox tick.
    pub outbox_batch: u64,
    /// Attempts before a mail is given up for good.
    pub outbox_max_attempts: u32,
    /// Accounts erased per purge transaction, when set; otherwise a
    /// default for the database.
    pub purge_batch: Option<u64>,
    /// A session unused this long ends.
    pub session_idle: chrono::Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_lifetime: chrono::Duration,
    /// How long a session check may be answered from memory (zero: off).
    pub session_cache: chrono::Duration,
    /// How long an address-verification link works.
    pub verification_token_ttl: chrono::Duration,
    /// Operator's extra refused username terms.
    pub username_blocklist: Vec<String>,
    /// Operator's extra reserved usernames.
    pub username_reserved: Vec<String>,
    /// How long a password reset link works.
    pub reset_token_ttl: chrono::Duration,
    /// Attempts of each rate-limited action per client a minute.
    pub rate_limit_per_minute: std::num::NonZeroU32,
    /// Proxies whose `X-Forwarded-For` names the client; empty: none.
    pub trusted_proxies: Vec<crate::ratelimit::IpNetwork>,
    /// Mail a notice when an account signs in from a browser or app it
    /// has not used before.
    pub notify_new_signin: bool,
    /// Above this many affected accounts an incident is also announced
    /// publicly, as individual notice is then impractical.
    pub incident_announce_threshold: u64,
}

impl Settings {
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
                    "CUSTOS_ENV",
                    format!("expected development or production, got {other:?}"),
                ));
            }
        };
        let production = env == Environment::Production;

        let bind = parse_bind("CUSTOS_BIND", &raw.bind)?;
        let metrics_bind = match raw.metrics_bind.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let metrics_bind = parse_bind("CUSTOS_METRICS_BIND", text)?;
                if metrics_bind == bind && bind.port() != 0 {
                    return Err(SettingsError::new(
                        "CUSTOS_METRICS_BIND",
                        "must differ from CUSTOS_BIND (unset it to serve /metrics there)",
                    ));
                }
                Some(metrics_bind)
            }
        };

        let database_kind = database_kind_of("CUSTOS_DATABASE_URL", &raw.database_url)?;
        let key_store_url = match raw.key_store_url.map(|url| url.trim().to_owned()) {
            None => None,
            Some(url) if url.is_empty() => None,
            Some(url) => {
                database_kind_of("CUSTOS_KEY_STORE_URL", &url)?;
                if url == raw.database_url.trim() {
                    return Err(SettingsError::new(
                        "CUSTOS_KEY_STORE_URL",
                        "names the main database; leave it unset to keep keys there",
                    ));
                }
                Some(SecretString::from(url))
            }
        };
        let erasure_journal_url = match raw.erasure_journal_url.map(|url| url.trim().to_owned()) {
            None => None,
            Some(url) if url.is_empty() => None,
            Some(url) => {
                database_kind_of("CUSTOS_ERASURE_JOURNAL_URL", &url)?;
                if url == raw.database_url.trim() {
                    return Err(SettingsError::new(
                        "CUSTOS_ERASURE_JOURNAL_URL",
                        "names the main database; a restored backup of it would restore the journal too",
                    ));
                }
                // The key store keeps the journal: a second place could
                // only disagree with it.
                if key_store_url.is_some() {
                    return Err(SettingsError::new(
                        "CUSTOS_ERASURE_JOURNAL_URL",
                        "is for deployments without CUSTOS_KEY_STORE_URL; the key store keeps the journal",
                    ));
                }
                Some(SecretString::from(url))
            }
        };

        let public_url = match raw.public_url {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_string();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SettingsError::new(
                        "CUSTOS_PUBLIC_URL",
                        "must start with http:// or https://",
                    ));
                }
                url
            }
            None if production => {
                return Err(SettingsError::new(
                    "CUSTOS_PUBLIC_URL",
                    "must be set in production: every emailed link is built from it",
                ));
            }
            None => "http://localhost:8000".into(),
        };

        let mail_transport = match raw.smtp_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => {
                let url = url.trim().to_string();
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(SettingsError::new(
                        "CUSTOS_SMTP_URL",
                        "must start with smtp:// or smtps://",
                    ));
                }
                MailTransportSetting::Smtp(SecretString::from(url))
            }
            None if production => {
                return Err(SettingsError::new(
                    "CUSTOS_SMTP_URL",
                    "must be set in production: file mail reaches nobody",
                ));
            }
            None => MailTransportSetting::Files(PathBuf::from(raw.mail_dir)),
        };

        let mail_from = raw.mail_from.parse().map_err(|_| {
            SettingsError::new("CUSTOS_MAIL_FROM", "not a mailbox like `Name <addr@host>`")
        })?;

        let keys = match (raw.encryption_keys, raw.blind_index_key) {
            (Some(encryption_keys), Some(blind_index_key)) => {
                let encryption_keys = SecretString::from(encryption_keys);
                let blind_index_key = SecretString::from(blind_index_key);
                // Parse now so a malformed key stops the start, not the first request.
                crate::crypto::fields::Keyring::parse(encryption_keys.expose_secret())
                    .map_err(|e| SettingsError::new("CUSTOS_ENCRYPTION_KEYS", e.to_string()))?;
                crate::crypto::blind_index::BlindIndex::parse(blind_index_key.expose_secret())
                    .map_err(|e| SettingsError::new("CUSTOS_BLIND_INDEX_KEY", e.to_string()))?;
                KeySource::Given {
                    encryption_keys,
                    blind_index_key,
                }
            }
            (Some(_), None) => {
                return Err(SettingsError::new(
                    "CUSTOS_BLIND_INDEX_KEY",
                    "must be set together with CUSTOS_ENCRYPTION_KEYS",
                ));
            }
            (None, Some(_)) => {
                return Err(SettingsError::new(
                    "CUSTOS_ENCRYPTION_KEYS",
                    "must be set together with CUSTOS_BLIND_INDEX_KEY",
                ));
            }
            (None, None) if production => {
                return Err(SettingsError::new(
                    "CUSTOS_ENCRYPTION_KEYS",
                    "must be set in production: development keys are refused",
                ));
            }
            (None, None) => KeySource::DevFile(PathBuf::from(raw.dev_keys_file)),
        };

        let blind_index_previous_key =
            parse_previous_blind_index_key(raw.blind_index_previous_key)?;

        let holidays = parse_holidays(&raw.holidays)?;
        let timezone: chrono_tz::Tz = raw.timezone.trim().parse().map_err(|_| {
            SettingsError::new(
                "CUSTOS_TIMEZONE",
                "not an IANA time zone like Asia/Shanghai",
            )
        })?;

        if raw.scheduler_interval_secs == 0 {
            return Err(SettingsError::new(
                "CUSTOS_SCHEDULER_INTERVAL_SECS",
                "must be at least 1",
            ));
        }
        if raw.outbox_batch == 0 {
            return Err(SettingsError::new(
                "CUSTOS_OUTBOX_BATCH",
                "must be at least 1",
            ));
        }
        if let Some(batch) = raw.purge_batch
            && !(1..=MAX_PURGE_BATCH).contains(&batch)
        {
            return Err(SettingsError::new(
                "CUSTOS_PURGE_BATCH",
                format!("must be 1 to {MAX_PURGE_BATCH}"),
            ));
        }
        if raw.outbox_max_attempts == 0 {
            return Err(SettingsError::new(
                "CUSTOS_OUTBOX_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }

        for (setting, value) in [
            ("CUSTOS_SESSION_IDLE_MINUTES", raw.session_idle_minutes),
            ("CUSTOS_SESSION_LIFETIME_HOURS", raw.session_lifetime_hours),
            (
                "CUSTOS_VERIFICATION_TOKEN_HOURS",
                raw.verification_token_hours,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError::new(setting, "must be at least 1"));
            }
        }
        // `lastSeenAt` is written once a minute, and every such request reads
        // the database anyway: a longer cache would gain nothing.
        if raw.session_cache_seconds > MAX_SESSION_CACHE_SECONDS {
            return Err(SettingsError::new(
                "CUSTOS_SESSION_CACHE_SECONDS",
                format!("must be 0 to {MAX_SESSION_CACHE_SECONDS}"),
            ));
        }
        let username_blocklist =
            parse_word_list("CUSTOS_USERNAME_BLOCKLIST", &raw.username_blocklist)?;
        let username_reserved =
            parse_word_list("CUSTOS_USERNAME_RESERVED", &raw.username_reserved)?;

        // A reset link is a password in transit: it should die soon (OWASP
        // suggests minutes), and never outlive a day.
        if !(1..=1440).contains(&raw.reset_token_minutes) {
            return Err(SettingsError::new(
                "CUSTOS_RESET_TOKEN_MINUTES",
                "must be between 1 and 1440",
            ));
        }
        let rate_limit_per_minute = std::num::NonZeroU32::new(raw.rate_limit_per_minute)
            .ok_or_else(|| {
                SettingsError::new("CUSTOS_RATE_LIMIT_PER_MINUTE", "must be at least 1")
            })?;
        let trusted_proxies = raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                crate::ratelimit::IpNetwork::parse(item)
                    .map_err(|reason| SettingsError::new("CUSTOS_TRUSTED_PROXIES", reason))
            })
            .collect::<Result<Vec<_>, _>>()?;

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
                "CUSTOS_ALLOWED_ORIGINS",
                format!("{bad:?} is not an http(s) origin"),
            ));
        }

        let log_format = match raw.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(SettingsError::new(
                    "CUSTOS_LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };

        Ok(Self {
            env,
            bind,
            metrics_bind,
            database_url: SecretString::from(raw.database_url),
            database_kind,
            key_store_url,
            erasure_journal_url,
            public_url,
            mail_transport,
            mail_from,
            keys,
            blind_index_previous_key,
            deletion_grace_working_days: raw.deletion_grace_working_days,
            calendar: holidays,
            timezone,
            scheduler_interval: Duration::from_secs(raw.scheduler_interval_secs),
            run_jobs: raw.run_jobs,
            guardian_consent_days: raw.guardian_consent_days,
            allowed_origins,
            log_format,
            playground: raw.playground.unwrap_or(!production),
            account_console: raw.account_console.unwrap_or(!production),
            introspection: raw.introspection.unwrap_or(!production),
            outbox_batch: raw.outbox_batch,
            outbox_max_attempts: raw.outbox_max_attempts,
            purge_batch: raw.purge_batch,
            session_idle: chrono::Duration::minutes(i64::from(raw.session_idle_minutes)),
            session_lifetime: chrono::Duration::hours(i64::from(raw.session_lifetime_hours)),
            session_cache: chrono::Duration::seconds(i64::from(raw.session_cache_seconds)),
            verification_token_ttl: chrono::Duration::hours(i64::from(
                raw.verification_token_hours,
            )),
            username_blocklist,
            username_reserved,
            reset_token_ttl: chrono::Duration::minutes(i64::from(raw.reset_token_minutes)),
            rate_limit_per_minute,
            trusted_proxies,
            notify_new_signin: raw.notify_new_signin,
            incident_announce_threshold: raw.incident_announce_threshold,
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
        assert_eq!(settings.public_url, "http://localhost:8000");
        assert!(matches!(settings.keys, KeySource::DevFile(_)));
        assert!(settings.playground && settings.introspection);
        assert!(settings.account_console);
    }

    #[test]
    fn production_refuses_dev_keys_file_mail_and_missing_public_url() {
        let mut r = raw();
        r.env = "production".into();
        let err = Settings::validate(r.clone()).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_PUBLIC_URL"));

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
            settings.as_ref().is_ok_and(|s| !s.account_console),
            "{settings:?}"
        );
        r.account_console = Some(true);
        let settings = Settings::validate(r);
        assert!(
            settings.as_ref().is_ok_and(|s| s.account_console),
            "{settings:?}"
        );
    }

    #[test]
    fn key_store_url_is_optional_and_checked() {
        let mut r = raw();
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.key_store_url.is_none())
        );
        r.key_store_url = Some("  ".into());
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.key_store_url.is_none())
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
                .is_some_and(|s| s.key_store_url.is_some())
        );
    }

    #[test]
    fn erasure_journal_url_is_optional_checked_and_not_beside_a_key_store() {
        let mut r = raw();
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.erasure_journal_url.is_none())
        );
        r.erasure_journal_url = Some(" ".into());
        assert!(
            Settings::validate(r.clone())
                .ok()
                .is_some_and(|s| s.erasure_journal_url.is_none())
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
                .is_some_and(|s| s.erasure_journal_url.is_some())
        );
        r.key_store_url = Some("sqlite://keys.db?mode=rwc".into());
        let err = Settings::validate(r).err().map(|e| e.setting);
        assert_eq!(err, Some("CUSTOS_ERASURE_JOURNAL_URL"));
    }

    #[test]
    fn session_cache_is_bounded_and_may_be_off() {
        let mut r = raw();
        let lifetime =
            |r: &RawSettings| Settings::validate(r.clone()).ok().map(|s| s.session_cache);
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
            Settings::validate(r.clone()).ok().map(|s| s.purge_batch),
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
                .and_then(|s| s.purge_batch);
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
            matches!(&settings, Ok(s) if s.blind_index_previous_key.is_none()),
            "{settings:?}"
        );

        let mut r = raw();
        r.blind_index_previous_key = Some("  ".into());
        let settings = Settings::validate(r);
        assert!(
            matches!(&settings, Ok(s) if s.blind_index_previous_key.is_none()),
            "blank means unset: {settings:?}"
        );

        let mut r = raw();
        r.blind_index_previous_key = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
        let settings = Settings::validate(r);
        assert!(
            matches!(&settings, Ok(s) if s.blind_index_previous_key.is_some()),
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
    }

    #[test]
    fn a_metrics_bind_is_optional_parsed_and_apart_from_the_main_one() {
        let unset = Settings::validate(raw()).map(|s| s.metrics_bind);
        assert!(matches!(unset, Ok(None)), "{unset:?}");
        let mut r = raw();
        r.metrics_bind = Some("  ".into());
        assert!(matches!(
            Settings::validate(r.clone()).map(|s| s.metrics_bind),
            Ok(None)
        ));
        r.metrics_bind = Some("10.0.0.5:9100".into());
        let set = Settings::validate(r.clone()).map(|s| s.metrics_bind.map(|a| a.to_string()));
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
        assert_eq!(settings.bind.port(), 0);
        assert_eq!(settings.calendar.holidays.len(), 2);

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
                    .calendar
                    .workdays
                    .contains(&NaiveDate::from_ymd_opt(2026, 2, 14).unwrap_or_default())
            );
            assert!(
                shipped
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
        assert_eq!(settings.reset_token_ttl, chrono::Duration::minutes(30));
        assert_eq!(settings.rate_limit_per_minute.get(), 30);
        assert!(settings.trusted_proxies.is_empty());
        assert!(!settings.notify_new_signin);

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
        assert_eq!(settings.trusted_proxies.len(), 3);
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
