//! Custos: the GraphQL backend that keeps a platform's privacy promises.

// Long functions are split into named steps (threshold in clippy.toml).
#![deny(clippy::too_many_lines)]

pub mod accounts;
pub mod app;
pub mod audit;
pub mod changes;
pub mod clock;
pub mod commands;
pub mod consent;
pub mod crypto;
pub mod db;
pub mod erasure;
pub mod error;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod notices;
pub mod ratelimit;
pub mod recovery;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod tickets;
pub mod timing;
