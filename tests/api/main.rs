#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Integration tests through HTTP against the real server. One binary, so
//! the crate links once; every test owns its database and SMTP server.

mod helpers;

mod accounts;
mod audit;
mod cli;
mod consent;
mod console;
mod erasure;
mod fixed_values;
mod health;
mod hostile;
mod instances;
mod mail;
mod messages;
mod minor_flag;
mod notices;
mod page_sessions;
mod password_checks;
mod persisted_queries;
mod recovery;
mod restore;
mod roles;
mod rotation;
mod schema_file;
mod session_cache;
mod shredding;
mod single_use;
mod storage;
mod tickets;
mod tls;
mod transport;
