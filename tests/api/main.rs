#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Integration tests through HTTP against the real server. One binary, so
//! the crate links once; every test owns its database and SMTP server.

mod helpers;

mod accounts;
mod health;
mod mail;
mod schema_file;
mod storage;
mod transport;
