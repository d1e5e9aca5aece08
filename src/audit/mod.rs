//! The audit trail.
//!
//! Rules: entries are only ever appended. Each holds the SHA-256 of the
//! previous entry, so editing or deleting one breaks the chain, which
//! `custos audit verify` finds and names. Entries carry ids, never personal
//! data; after an account is erased only its random id remains. Appends are
//! serialised (an advisory lock on PostgreSQL, the single writer on SQLite)
//! so the chain never forks.

pub mod graphql;
pub mod service;
