//! Typed settings, layered: defaults, then an optional `custos.toml`, then
//! `CUSTOS_*` environment variables (names in RUNTIME.md).
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
    /// `CUSTOS_DATABASE_URL`.
    pub database_url: String,
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
    /// `CUSTOS_DEV_KEYS_FILE`.
    pub dev_keys_file: String,
    /// `CUSTOS_DELETION_GRACE_WORKING_DAYS`.
    pub deletion_grace_working_days: u32,
    /// `CUSTOS_HOLIDAYS`.
    pub holidays: String,
    /// `CUSTOS_SCHEDULER_INTERVAL_SECS`.
    pub scheduler_interval_secs: u64,
    /// `CUSTOS_GUARDIAN_CONSENT_DAYS`.
    pub guardian_consent_days: u32,
    /// `CUSTOS_ALLOWED_ORIGINS`.
    pub allowed_origins: String,
    /// `CUSTOS_LOG_FORMAT`.
    pub log_format: String,
    /// `CUSTOS_PLAYGROUND`: serve GraphiQL (defaults to on outside production).
    pub playground: Option<bool>,
    /// `CUSTOS_INTROSPECTION`: allow introspection (defaults to on outside production).
    pub introspection: Option<bool>,
    /// `CUSTOS_OUTBOX_BATCH`: mails claimed per outbox tick.
    pub outbox_batch: u64,
    /// `CUSTOS_OUTBOX_MAX_ATTEMPTS`: attempts before a mail is given up.
    pub outbox_max_attempts: u32,
    /// `CUSTOS_SESSION_IDLE_MINUTES`: a session unused this long ends.
    pub session_idle_minutes: u32,
    /// `CUSTOS_SESSION_LIFETIME_HOURS`: a session ends this long after sign-in.
    pub session_lifetime_hours: u32,
    /// `CUSTOS_VERIFICATION_TOKEN_HOURS`: how long an address-verification link works.
    pub verification_token_hours: u32,
    /// `CUSTOS_USERNAME_BLOCKLIST`: extra refused terms (comma-separated, or a file).
    pub username_blocklist: String,
    /// `CUSTOS_USERNAME_RESERVED`: extra reserved names (comma-separated, or a file).
    pub username_reserved: String,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            env: "development".into(),
            bind: "127.0.0.1:8000".into(),
            database_url: "sqlite://custos.db?mode=rwc".into(),
            public_url: None,
            smtp_url: None,
            mail_from: "Custos <no-reply@localhost>".into(),
            mail_dir: "mail".into(),
            encryption_keys: None,
            blind_index_key: None,
            dev_keys_file: "custos.dev-keys".into(),
            deletion_grace_working_days: 3,
            holidays: String::new(),
            scheduler_interval_secs: 60,
            guardian_consent_days: 7,
            allowed_origins: String::new(),
            log_format: "pretty".into(),
            playground: None,
            introspection: None,
            outbox_batch: 50,
            outbox_max_attempts: 12,
            session_idle_minutes: 30,
            session_lifetime_hours: 12,
            verification_token_hours: 24,
            username_blocklist: String::new(),
            username_reserved: String::new(),
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
        "CUSTOS_DATABASE_URL",
        "CUSTOS_PUBLIC_URL",
        "CUSTOS_SMTP_URL",
        "CUSTOS_MAIL_FROM",
        "CUSTOS_MAIL_DIR",
        "CUSTOS_ENCRYPTION_KEYS",
        "CUSTOS_BLIND_INDEX_KEY",
        "CUSTOS_DEV_KEYS_FILE",
        "CUSTOS_DELETION_GRACE_WORKING_DAYS",
        "CUSTOS_HOLIDAYS",
        "CUSTOS_SCHEDULER_INTERVAL_SECS",
        "CUSTOS_GUARDIAN_CONSENT_DAYS",
        "CUSTOS_ALLOWED_ORIGINS",
        "CUSTOS_LOG_FORMAT",
        "CUSTOS_PLAYGROUND",
        "CUSTOS_INTROSPECTION",
        "CUSTOS_OUTBOX_BATCH",
        "CUSTOS_OUTBOX_MAX_ATTEMPTS",
        "CUSTOS_SESSION_IDLE_MINUTES",
        "CUSTOS_SESSION_LIFETIME_HOURS",
        "CUSTOS_VERIFICATION_TOKEN_HOURS",
        "CUSTOS_USERNAME_BLOCKLIST",
        "CUSTOS_USERNAME_RESERVED",
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
    /// A sea-orm database URL.
    pub database_url: SecretString,
    /// Which database the URL points at.
    pub database_kind: DatabaseKind,
    /// Base of every link in an email, without a trailing slash.
    pub public_url: String,
    /// Where mail goes.
    pub mail_transport: MailTransportSetting,
    /// The sender of every mail.
    pub mail_from: lettre::message::Mailbox,
    /// The keys to use.
    pub keys: KeySource,
    /// Working days between a confirmed deletion and the purge.
    pub deletion_grace_working_days: u32,
    /// Extra non-working dates.
    pub holidays: Vec<NaiveDate>,
    /// How often background jobs wake.
    pub scheduler_interval: Duration,
    /// Days a minor's account waits for a guardian.
    pub guardian_consent_days: u32,
    /// CORS origins allowed to call with credentials.
    pub allowed_origins: Vec<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Serve the GraphiQL page.
    pub playground: bool,
    /// Answer introspection queries.
    pub introspection: bool,
    /// Mails claimed per outbox tick.
    pub outbox_batch: u64,
    /// Attempts before a mail is given up for good.
    pub outbox_max_attempts: u32,
    /// A session unused this long ends.
    pub session_idle: chrono::Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_lifetime: chrono::Duration,
    /// How long an address-verification link works.
    pub verification_token_ttl: chrono::Duration,
    /// Operator's extra refused username terms.
    pub username_blocklist: Vec<String>,
    /// Operator's extra reserved usernames.
    pub username_reserved: Vec<String>,
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

        let bind = parse_bind(&raw.bind)?;

        let database_kind = database_kind(&raw.database_url)?;

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

        let holidays = parse_holidays(&raw.holidays)?;

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
        let username_blocklist =
            parse_word_list("CUSTOS_USERNAME_BLOCKLIST", &raw.username_blocklist)?;
        let username_reserved =
            parse_word_list("CUSTOS_USERNAME_RESERVED", &raw.username_reserved)?;

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
            database_url: SecretString::from(raw.database_url),
            database_kind,
            public_url,
            mail_transport,
            mail_from,
            keys,
            deletion_grace_working_days: raw.deletion_grace_working_days,
            holidays,
            scheduler_interval: Duration::from_secs(raw.scheduler_interval_secs),
            guardian_consent_days: raw.guardian_consent_days,
            allowed_origins,
            log_format,
            playground: raw.playground.unwrap_or(!production),
            introspection: raw.introspection.unwrap_or(!production),
            outbox_batch: raw.outbox_batch,
            outbox_max_attempts: raw.outbox_max_attempts,
            session_idle: chrono::Duration::minutes(i64::from(raw.session_idle_minutes)),
            session_lifetime: chrono::Duration::hours(i64::from(raw.session_lifetime_hours)),
            verification_token_ttl: chrono::Duration::hours(i64::from(
                raw.verification_token_hours,
            )),
            username_blocklist,
            username_reserved,
        })
    }
}

fn parse_bind(bind: &str) -> Result<SocketAddr, SettingsError> {
    let bind = bind.trim();
    // ":0" is shorthand for "any free port on loopback".
    let full = if bind.starts_with(':') {
        format!("127.0.0.1{bind}")
    } else {
        bind.to_string()
    };
    full.parse()
        .map_err(|_| SettingsError::new("CUSTOS_BIND", "expected host:port, e.g. 127.0.0.1:8000"))
}

fn database_kind(url: &str) -> Result<DatabaseKind, SettingsError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseKind::Postgres)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(SettingsError::new(
            "CUSTOS_DATABASE_URL",
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

/// Parses `YYYY-MM-DD` dates separated by commas or white space, or reads
/// them from a file when the value names one.
fn parse_holidays(value: &str) -> Result<Vec<NaiveDate>, SettingsError> {
    let value = value.trim();
    let text = if !value.is_empty() && std::path::Path::new(value).is_file() {
        std::fs::read_to_string(value)
            .map_err(|e| SettingsError::new("CUSTOS_HOLIDAYS", format!("cannot read file: {e}")))?
    } else {
        value.to_string()
    };
    let mut dates = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        for item in line.split(|c: char| c == ',' || c.is_whitespace()) {
            if item.is_empty() {
                continue;
            }
            let date = NaiveDate::parse_from_str(item, "%Y-%m-%d").map_err(|_| {
                SettingsError::new(
                    "CUSTOS_HOLIDAYS",
                    format!("{item:?} is not a YYYY-MM-DD date"),
                )
            })?;
            dates.push(date);
        }
    }
    dates.sort();
    dates.dedup();
    Ok(dates)
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
    fn bind_shorthand_and_holidays_parse() {
        let mut r = raw();
        r.bind = ":0".into();
        r.holidays = "2026-10-01, 2026-10-02 2026-10-01".into();
        let settings = Settings::validate(r);
        assert!(settings.is_ok());
        let Ok(settings) = settings else { return };
        assert_eq!(settings.bind.port(), 0);
        assert_eq!(settings.holidays.len(), 2);

        let mut r = raw();
        r.holidays = "2026-13-01".into();
        assert_eq!(
            Settings::validate(r).err().map(|e| e.setting),
            Some("CUSTOS_HOLIDAYS")
        );
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
    }
}
