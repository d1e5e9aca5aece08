//! The stored states of an account and of its single-use tokens.
//!
//! The database keeps them as text (`accounts.status`,
//! `accounts.guardian_consent`, `account_tokens.purpose`); these enums are
//! the one place those strings are written, and code compares enums, not
//! strings.

use crate::db::stored_enum;

stored_enum! {
    /// Where an account stands (`accounts.status`).
    AccountStatus {
        /// In use.
        Active => "ACTIVE",
        /// Deletion confirmed: processing has stopped until the purge.
        DeletionScheduled => "DELETION_SCHEDULED",
    }
}

impl AccountStatus {
    /// Reads a stored status; anything unknown counts as not active.
    pub fn from_stored(stored: &str) -> Self {
        Self::parse(stored).unwrap_or(Self::DeletionScheduled)
    }
}

stored_enum! {
    /// Where guardian consent stands (`accounts.guardian_consent`).
    GuardianConsent {
        /// Not a minor.
        NotNeeded => "NOT_NEEDED",
        /// Waiting for the guardian.
        Pending => "PENDING",
        /// The guardian agreed.
        Granted => "GRANTED",
        /// The guardian refused.
        Refused => "REFUSED",
    }
}

impl GuardianConsent {
    /// Reads a stored state; anything unknown counts as not needed.
    pub fn from_stored(stored: &str) -> Self {
        Self::parse(stored).unwrap_or(Self::NotNeeded)
    }
}

stored_enum! {
    /// What a single-use token is for (`account_tokens.purpose`).
    TokenPurpose {
        /// Proves the signup address.
        VerifyEmail => "VERIFY_EMAIL",
        /// Proves a new address before it replaces the old one.
        ChangeEmail => "CHANGE_EMAIL",
        /// Lets a guardian consent for a minor.
        GuardianConsent => "GUARDIAN_CONSENT",
        /// Lets the holder of the bound address choose a new password.
        ResetPassword => "RESET_PASSWORD",
    }
}

stored_enum! {
    /// What the person declared about their age (`accounts.age_declaration`).
    AgeDeclaration {
        /// 18 or older.
        Adult => "ADULT",
        /// 16 or 17 and self-supporting: treated as an adult.
        SelfSupporting16Plus => "SELF_SUPPORTING_16_PLUS",
        /// Under 18: a guardian must consent.
        Minor => "MINOR",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_read_back_as_themselves() {
        for status in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(status.as_str()), Some(*status));
        }
        for state in GuardianConsent::ALL {
            assert_eq!(GuardianConsent::parse(state.as_str()), Some(*state));
        }
        for purpose in TokenPurpose::ALL {
            assert_eq!(TokenPurpose::parse(purpose.as_str()), Some(*purpose));
        }
        assert_eq!(AccountStatus::parse("active"), None);
        assert_eq!(
            AccountStatus::from_stored("?"),
            AccountStatus::DeletionScheduled
        );
        assert_eq!(
            GuardianConsent::from_stored("?"),
            GuardianConsent::NotNeeded
        );
        assert_eq!(
            serde_json::to_value(GuardianConsent::Pending).unwrap(),
            serde_json::json!("PENDING")
        );
    }

    #[test]
    fn compares_and_converts_as_the_stored_name() {
        assert!(AccountStatus::Active.is("ACTIVE"));
        assert!(!AccountStatus::Active.is("DELETION_SCHEDULED"));
        assert!(!GuardianConsent::Pending.is("pending"));
        assert_eq!(String::from(TokenPurpose::ResetPassword), "RESET_PASSWORD");
        assert_eq!(
            sea_orm::Value::from(GuardianConsent::Refused),
            sea_orm::Value::from("REFUSED")
        );
    }
}
