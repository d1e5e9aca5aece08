//! The password policy (ASVS 5.0 §6.2): length, not composition.
//!
//! Rules: a password has 8 to 128 characters, counted as typed (no
//! trimming, no normalisation, spaces and any script welcome); there are no
//! composition rules (no "one digit, one capital"), because they push people
//! to predictable patterns without adding strength; it may not equal the
//! username or email; and it may not be one of the 10,000 most common
//! passwords (`data/passwords/common-10000.txt`, see the README beside it
//! for its source and licence).

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

/// Fewest characters accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters accepted (long passphrases are welcome).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Why a password was refused; the reason is shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("use at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("use at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    /// Equal to the username or email.
    #[error("do not use your username or email as your password")]
    SameAsIdentity,
    /// One of the 10,000 most common passwords.
    #[error(
        "this password is one of the most commonly used passwords, which attackers try first; choose another"
    )]
    Common,
}

/// The 10,000 most common passwords, parsed once on first use. Embedded so
/// that the check works offline and cannot silently go missing at run time.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/passwords/common-10000.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Whether a password is on the common list. The typed form is looked up as
/// is, and so is its lower-case form: the list is almost all lower case, and
/// `Password1` or `QWERTY123` are tried by every guessing tool right after
/// their lower-case forms, so capitals add no strength against them. Only the
/// lookup folds case; the password itself is never changed.
fn is_common(typed: &str) -> bool {
    let lowered = typed.to_lowercase();
    COMMON_PASSWORDS.contains(typed) || COMMON_PASSWORDS.contains(lowered.as_str())
}

/// Checks a password exactly as typed (no trimming, no normalisation),
/// against the identity it would protect and the common-password list.
pub fn check(password: &SecretString, identities: &[&str]) -> Result<(), WeakPassword> {
    let typed = password.expose_secret();
    let chars = typed.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    let lowered = typed.to_lowercase();
    if identities
        .iter()
        .any(|identity| !identity.is_empty() && lowered == identity.trim().to_lowercase())
    {
        return Err(WeakPassword::SameAsIdentity);
    }
    if is_common(typed) {
        return Err(WeakPassword::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn length_is_the_rule() {
        assert_eq!(check(&secret("short"), &[]), Err(WeakPassword::TooShort));
        assert_eq!(
            check(&secret(&"x".repeat(129)), &[]),
            Err(WeakPassword::TooLong)
        );
        assert!(check(&secret("correct horse battery"), &[]).is_ok());
        assert!(check(&secret(&"長".repeat(128)), &[]).is_ok());
        // Spaces count as typed.
        assert!(check(&secret("       a"), &[]).is_ok());
    }

    #[test]
    fn identity_is_refused() {
        assert_eq!(
            check(&secret("ZhangSan99"), &["zhangsan99", "z@example.com"]),
            Err(WeakPassword::SameAsIdentity)
        );
    }

    #[test]
    fn the_list_is_the_shipped_ten_thousand() {
        assert_eq!(COMMON_PASSWORDS.len(), 10_000);
        assert!(COMMON_PASSWORDS.contains("123456"));
        assert!(COMMON_PASSWORDS.contains("password"));
    }

    #[test]
    fn common_passwords_are_refused() {
        for common in [
            "password",
            "12345678",
            "123456789",
            "baseball",
            "football",
            "iloveyou",
            "trustno1",
            "sunshine",
            "princess",
            "qwertyuiop",
            "1234567890",
            "superman",
            "starwars",
            "whatever",
            "michelle",
            "computer",
        ] {
            assert_eq!(
                check(&secret(common), &[]),
                Err(WeakPassword::Common),
                "{common} should be refused"
            );
        }
    }

    #[test]
    fn case_variants_of_common_passwords_are_refused() {
        for common in [
            "Password",
            "PASSWORD",
            "Baseball",
            "IloveYou",
            "TrustNo1",
            "QWERTYUIOP",
        ] {
            assert_eq!(
                check(&secret(common), &[]),
                Err(WeakPassword::Common),
                "{common} should be refused"
            );
        }
    }

    #[test]
    fn as_typed_means_no_trimming() {
        // The password is checked as typed: surrounding spaces make it a
        // different password, which is not on the list.
        assert!(check(&secret(" password "), &[]).is_ok());
        assert!(check(&secret("password."), &[]).is_ok());
    }

    #[test]
    fn uncommon_passwords_pass() {
        for fine in [
            "correct horse battery staple",
            "tea-kettle-on-the-moon",
            "zq8#Lm2!vR",
            "我的密码很长很长",
            "Grüße aus Köln 2026",
            "password is not my password",
        ] {
            assert!(check(&secret(fine), &[]).is_ok(), "{fine} should pass");
        }
    }

    #[test]
    fn the_reason_is_readable() {
        assert!(
            WeakPassword::Common
                .to_string()
                .contains("most commonly used")
        );
    }
}
