//! Recovery: getting back into an account through the bound email address
//! when the password is forgotten (OWASP Forgot Password cheat sheet, ASVS
//! 5.0 §6.3–6.4).
//!
//! Rules:
//! - `requestPasswordReset` answers `true` for every well-formed address,
//!   after the same fixed delay whether or not it has an account, so neither
//!   the answer nor its timing says which addresses exist. A syntactically
//!   invalid address is `BAD_USER_INPUT` (field `email`): that says something
//!   about the input, nothing about accounts.
//! - Only an `ACTIVE` account's bound address gets a link, built from
//!   `CUSTOS_PUBLIC_URL` (never from the request's `Host`). At most
//!   [`crate::accounts::service::MAX_MAILS_PER_HOUR`] reset mails go to one
//!   account in an hour; further requests are answered the same and send
//!   nothing.
//! - The link's token is 256 random bits, stored only as its SHA-256 in
//!   `account_tokens` (purpose `RESET_PASSWORD`), single use, valid for
//!   `CUSTOS_RESET_TOKEN_MINUTES` (30). A newer request voids older tokens.
//! - `resetPassword` applies the password policy before it touches the
//!   token, so a weak choice leaves the link usable. On success, in one
//!   transaction: the token is used, every other reset token and every
//!   pending email-change link dies, every session ends, the sign-in
//!   throttle of the account's names (and of the resetting client's
//!   network) and the throttle of its password checks are cleared, the
//!   address counts as verified (the link proved it) and a "your password
//!   was changed" notice is queued. Nobody is signed in automatically.
//! - Unknown, used and expired tokens are all `INVALID_TOKEN`.
//! - Every step is logged as a security event with ids only: never an
//!   address, a token or a password.

pub mod graphql;
pub mod service;
