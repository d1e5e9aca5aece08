//! Database rows of Custos, hand-written so they work on SQLite and
//! PostgreSQL alike.
//!
//! These types never reach the GraphQL layer: services map them to API
//! types, and every column ending in `_ct` holds AES-256-GCM-SIV ciphertext
//! (bound to table, column and row id) while `_bidx` columns hold HMAC blind
//! indexes. No column here holds personal data in clear.

pub mod account;
pub mod account_key;
pub mod account_token;
pub mod announcement;
pub mod audit_entry;
pub mod audit_note;
pub mod consent_event;
pub mod deletion_request;
pub mod erasure_journal;
pub mod erasure_record;
pub mod incident_fanout;
pub mod login_throttle;
pub mod outbox;
pub mod pending_key_destruction;
pub mod policy_version;
pub mod session;
pub mod ticket;
pub mod ticket_message;
