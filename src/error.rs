//! The failures every domain shares: storage, crypto and mail.
//!
//! Each domain's error enum names its own refusals (an invalid token, a
//! taken username, …) and carries everything that is "ours, not the
//! person's" as one variant, [`Internal`], which the GraphQL layer answers
//! `INTERNAL` in one place (or `RATE_LIMITED` for a full password-hashing
//! queue). [`internal_causes!`](internal_causes) gives a domain
//! error the `From` conversions so `?` works on each cause directly.
//!
//! Unique-constraint violations are not internal when a service expects
//! them: [`is_unique_violation`] recognises them on SQLite and PostgreSQL.

use crate::{audit::notes::NoteError, crypto::CryptoError, mail::MailError};

pub use crate::db::is_unique_violation;

/// A failure on our side: the person can do nothing about it, and the
/// cause is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    /// Storage failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Encryption, decryption, hashing or randomness failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// Mail could not be queued.
    #[error("mail: {0}")]
    Mail(#[from] MailError),
}

impl Internal {
    /// The underlying cause, as logged.
    pub fn cause(&self) -> &(dyn std::fmt::Display + Send + Sync) {
        match self {
            Self::Database(err) => err,
            Self::Crypto(err) => err,
            Self::Mail(err) => err,
        }
    }
}

impl From<NoteError> for Internal {
    fn from(err: NoteError) -> Self {
        match err {
            NoteError::Database(err) => Self::Database(err),
            NoteError::Crypto(err) => Self::Crypto(err),
        }
    }
}

/// Gives a domain error with an `Internal(crate::error::Internal)` variant
/// `From` conversions from each internal cause (database, crypto, mail and
/// audit-note errors), so `?` lifts them without a `map_err`.
macro_rules! internal_causes {
    ($error:ty) => {
        impl From<sea_orm::DbErr> for $error {
            fn from(err: sea_orm::DbErr) -> Self {
                Self::Internal(err.into())
            }
        }
        impl From<$crate::crypto::CryptoError> for $error {
            fn from(err: $crate::crypto::CryptoError) -> Self {
                Self::Internal(err.into())
            }
        }
        impl From<$crate::mail::MailError> for $error {
            fn from(err: $crate::mail::MailError) -> Self {
                Self::Internal(err.into())
            }
        }
        impl From<$crate::audit::notes::NoteError> for $error {
            fn from(err: $crate::audit::notes::NoteError) -> Self {
                Self::Internal(err.into())
            }
        }
    };
}
pub(crate) use internal_causes;

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection};

    use super::*;

    /// A second equal value in a unique column is recognised; another
    /// failed statement is not.
    async fn recognised_on(db: &DatabaseConnection) {
        let table = format!("unique_probe_{}", uuid::Uuid::new_v4().simple());
        db.execute_unprepared(&format!("CREATE TABLE {table} (name TEXT UNIQUE)"))
            .await
            .unwrap();
        let insert = format!("INSERT INTO {table} (name) VALUES ('a')");
        db.execute_unprepared(&insert).await.unwrap();
        let twice = db.execute_unprepared(&insert).await.err().unwrap();
        assert!(is_unique_violation(&twice), "{twice}");
        let other = db
            .execute_unprepared(&format!("INSERT INTO {table} (missing) VALUES ('a')"))
            .await
            .err()
            .unwrap();
        assert!(!is_unique_violation(&other), "{other}");
        db.execute_unprepared(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unique_violations_are_recognised_on_sqlite() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        recognised_on(&db).await;
    }

    /// The same on PostgreSQL (passes trivially without
    /// `CUSTOS_TEST_DATABASE_URL`).
    #[tokio::test]
    async fn unique_violations_are_recognised_on_postgres() {
        let Some(url) = crate::db::test_postgres_url() else {
            return;
        };
        let db = sea_orm::Database::connect(&url).await.unwrap();
        recognised_on(&db).await;
        db.close().await.unwrap();
    }
}
