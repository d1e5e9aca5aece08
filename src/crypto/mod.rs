//! Field encryption, blind indexes, password hashing and single-use tokens.
//!
//! Rules this module keeps:
//! - Personal data is stored only as AES-256-GCM-SIV ciphertext that names its
//!   key id and is bound to its table, column and row ([`fields`]).
//! - Lookups and uniqueness on encrypted fields go through keyed HMAC-SHA256
//!   blind indexes, one derived key per field ([`blind_index`]).
//! - Passwords are hashed with argon2id at explicit parameters, off the async
//!   runtime, under a concurrency bound and from a bounded queue that callers
//!   share in turns; unknown accounts cost the same time as known ones
//!   ([`passwords`]).
//! - Storage modules seal, open and index their fields through one helper,
//!   [`Sealer`], naming each encrypted column once ([`seal`]).
//! - Single-use tokens are 256 random bits and only their SHA-256 is stored
//!   ([`tokens`]).
//! - Key material lives in zeroizing buffers or `secrecy` wrappers, never shows
//!   in `Debug`, and never appears in an error message ([`keys`]).

pub mod blind_index;
pub mod fields;
pub mod keys;
pub mod passwords;
pub mod seal;
pub mod tokens;

pub use blind_index::{BlindIndex, BlindIndexKeys, normalise_email};
pub use fields::{AccountKey, EncryptionKey, FieldCipher, FieldContext, Keyring, key_id_of};
pub use keys::{KeyMaterial, generate as generate_keys, load_or_create_dev_keys};
pub use passwords::PasswordHasher;
pub use seal::{SealedField, Sealer};
pub use tokens::{IssuedToken, hash_token, issue as issue_token, random_bytes};

/// Everything that can go wrong in `crypto`.
///
/// Messages never carry key material, plaintext or passwords, so the whole
/// error may be logged; none of it is meant for API clients.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext did not authenticate: tampered, truncated, or moved to
    /// another table, column or row.
    #[error("stored ciphertext failed to authenticate")]
    Decrypt,
    /// Encryption itself failed (only possible for absurdly large inputs).
    #[error("encryption failed")]
    Encrypt,
    /// The ciphertext names a key id that is not in the keyring.
    #[error("stored ciphertext uses key id {0:?}, which is not in CUSTOS_ENCRYPTION_KEYS")]
    UnknownKeyId(String),
    /// The value is under an account's data key and none was given.
    #[error("stored value is under an account key that was not supplied")]
    AccountKeyNeeded,
    /// The account's data key is gone (destroyed when the account was
    /// erased): the value can never be decrypted again.
    #[error("the account's data key has been destroyed")]
    AccountKeyDestroyed,
    /// The key store could not be read or written.
    #[error("key store: {0}")]
    KeyStore(#[from] sea_orm::DbErr),
    /// A stored value does not have the expected layout or encoding.
    #[error("stored value is malformed")]
    Malformed,
    /// Password hashing failed or its worker could not run.
    #[error("password hashing failed")]
    Hash,
    /// The password-hashing queue, or the caller's share of it, is full:
    /// try again in a moment (answered `RATE_LIMITED`).
    #[error("password hashing queue full")]
    Busy,
    /// The operating system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// A key setting is unusable; `reason` says why without quoting the key.
    #[error("{setting} is invalid: {reason}")]
    BadKey {
        /// The environment variable or file entry at fault.
        setting: &'static str,
        /// What is wrong with it, never including key material.
        reason: String,
    },
    /// The development key file could not be created or read.
    #[error("development key file {}: {source}", path.display())]
    DevKeyFile {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}
