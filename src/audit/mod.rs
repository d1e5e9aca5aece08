//! The audit trail.
//!
//! Rules: entries are only ever appended. Each holds the SHA-256 of the
//! previous entry, so editing or deleting one breaks the chain, which
//! `custos audit verify` finds and names. Entries carry ids, never personal
//! data; after an account is erased only its random id remains. Appends are
//! serialised (an advisory lock on PostgreSQL, the single writer on SQLite)
//! so the chain never forks. Staff free text (a reveal's reason, a
//! processing justification) is not chained: it is a [`notes`] entry,
//! encrypted beside the chain and erased with the person it concerns, and
//! the entry chains only its id and a salted hash.

pub mod graphql;
pub mod notes;
pub mod service;
