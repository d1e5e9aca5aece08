//! The throttle on password checks behind a session: `changePassword` and
//! `changeEmail` ask for the current password again, and a stolen session
//! must not be a faster way to guess it than the sign-in.
//!
//! Rules:
//! - Counted per account, in the `login_throttle` table with the sign-in's
//!   schedule ([`super::login`]): five checks an hour are free, then each
//!   waits 1 s, 2 s, 4 s … up to 15 minutes. Counted before the password is
//!   checked, so parallel guesses cannot slip in; a wait refuses without
//!   counting; a correct password, and a completed reset, clear the count.
//!   A refusal is `RATE_LIMITED` with `retryAfterSeconds`, even for the
//!   right password, until the wait has passed.
//! - The subject is a blind index of the account id under its own field,
//!   so it never meets a sign-in subject and the table cannot be joined to
//!   `accounts` without the key.
//! - Only a session of the account can spend its checks, so this is no
//!   lockout tool for strangers; and someone holding a stolen session who
//!   spends them delays the owner's password change by at most the cap,
//!   while the reset link (which ends every session) is never throttled
//!   here.
//! - Besides, each client has a per-IP bucket for these checks
//!   ([`super::Action::PasswordCheck`]), and a request may hold only one
//!   of them (`crate::http::documents::PASSWORD_CHECKS`).

use uuid::Uuid;

use crate::crypto::BlindIndex;

/// Blind-index field of password-check subjects.
const SUBJECT_INDEX: &str = "password_check";

/// The throttle subject of the account's password checks.
pub fn subject(blind: &BlindIndex, account_id: Uuid) -> Vec<u8> {
    blind.compute(SUBJECT_INDEX, &account_id.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_per_account_and_apart_from_sign_in_subjects() {
        let blind = BlindIndex::new([9; 32]);
        let account = Uuid::new_v4();
        let mine = subject(&blind, account);
        assert_eq!(mine, subject(&blind, account));
        assert_ne!(mine, subject(&blind, Uuid::new_v4()));
        let as_login_name = super::super::login::other_subject(&blind, &account.to_string());
        assert_ne!(mine, as_login_name);
    }
}
