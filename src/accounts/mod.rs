//! Accounts: who a person is on the platform.
//!
//! Rules: signing up needs only a username, the person's own email and a
//! password. Username and email are stored only encrypted, with blind
//! indexes (over their normal forms) for lookup and uniqueness; the username
//! is unique case-insensitively after normalisation. Passwords are argon2id
//! hashes.
//!
//! Imports run one way: `graphql` → `sessions`, `lookup`, `roles` →
//! `service` (the rules of each use case) → `store`, `token_store`,
//! `sessions_store` (sealing, blind indexes and queries) → `states`,
//! `email`, `username`, `password`, `session_cache`.

pub mod email;
pub mod graphql;
pub mod lookup;
pub mod password;
pub mod roles;
pub mod service;
pub mod session_cache;
pub mod session_reads;
pub mod sessions;
pub mod sessions_store;
pub mod states;
pub mod store;
pub mod templates;
pub mod token_store;
pub mod username;
pub mod username_policy;

pub use states::{AccountStatus, AgeDeclaration, GuardianConsent, TokenPurpose};

/// Staff roles, as stored in `accounts.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A person using the platform.
    User,
    /// Support staff: answers tickets.
    Support,
    /// Administrator: policy, incidents, roles.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Support => "SUPPORT",
            Self::Admin => "ADMIN",
        }
    }

    /// Reads a stored role; unknown values are treated as the least
    /// privileged role.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "ADMIN" => Self::Admin,
            "SUPPORT" => Self::Support,
            _ => Self::User,
        }
    }
}
