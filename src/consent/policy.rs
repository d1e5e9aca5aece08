//! Policy documents: the version shipped with the crate and its purposes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use figment::{
    Figment,
    providers::{Format, Toml},
};
use serde::{Deserialize, Serialize};

use crate::mail::Language;

/// A text in each language the service speaks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Localized(BTreeMap<String, String>);

impl Localized {
    /// Sets the text of one language.
    pub fn set(&mut self, language: Language, text: &str) {
        self.0.insert(language.as_tag().to_owned(), text.to_owned());
    }

    /// The same text for every language the service speaks.
    pub fn uniform(text: &str) -> Self {
        Self(
            [Language::ZhCn, Language::En]
                .into_iter()
                .map(|l| (l.as_tag().to_owned(), text.to_owned()))
                .collect(),
        )
    }

    /// The text in `language`, falling back to Chinese then to any.
    pub fn get(&self, language: Language) -> &str {
        self.0
            .get(language.as_tag())
            .or_else(|| self.0.get(Language::ZhCn.as_tag()))
            .or_else(|| self.0.values().next())
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// One purpose of processing, as the policy states it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PurposeDefinition {
    /// Stable code, e.g. `product_updates`.
    pub code: String,
    /// Short name.
    pub title: Localized,
    /// What the data is used for.
    pub description: Localized,
    /// Needed to run the account; cannot be withdrawn short of deletion.
    pub required: bool,
    /// Concerns sensitive personal information: always granted explicitly.
    pub sensitive: bool,
    /// Which kinds of data the purpose uses.
    pub data_categories: Vec<String>,
}

/// A published version of the privacy policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyDocument {
    /// Version label, e.g. `2026-11-01`.
    pub version: String,
    /// When it took effect.
    pub published_at: DateTime<Utc>,
    /// Major versions are mailed to everybody and need acceptance.
    pub major: bool,
    /// What changed since the previous version.
    pub summary_of_changes: Localized,
    /// The policy text.
    pub text: Localized,
    /// The purposes of processing.
    pub purposes: Vec<PurposeDefinition>,
}

/// Why a policy document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("policy document is malformed: {0}")]
pub struct PolicyError(String);

impl PolicyError {
    /// What is wrong, without the prefix of its `Display`.
    pub fn detail(&self) -> &str {
        &self.0
    }
}

const DEFAULT_POLICY: &str = include_str!("../../data/policy/default.toml");

impl PolicyDocument {
    /// Parses a policy document written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let document: Self = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| PolicyError(e.to_string()))?;
        document.check()?;
        Ok(document)
    }

    /// The policy shipped with the crate, served until an operator publishes
    /// their own.
    pub fn shipped_default() -> Result<Self, PolicyError> {
        Self::from_toml(DEFAULT_POLICY)
    }

    /// The purpose with this code, if the policy has it.
    pub fn purpose(&self, code: &str) -> Option<&PurposeDefinition> {
        self.purposes.iter().find(|p| p.code == code)
    }

    /// Checks the rules every published policy keeps.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.version.trim().is_empty() {
            return Err(PolicyError("version is empty".into()));
        }
        let mut codes = std::collections::BTreeSet::new();
        for purpose in &self.purposes {
            if !codes.insert(purpose.code.as_str()) {
                return Err(PolicyError(format!(
                    "purpose {} appears twice",
                    purpose.code
                )));
            }
            if purpose.required && purpose.sensitive {
                // Sensitive data needs a separate, explicit grant; it can
                // never come bundled with the account.
                return Err(PolicyError(format!(
                    "purpose {} cannot be both required and sensitive",
                    purpose.code
                )));
            }
        }
        if !self
            .purposes
            .iter()
            .any(|p| p.code == "account" && p.required)
        {
            return Err(PolicyError(
                "the required purpose `account` is missing".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policy_parses_with_the_promised_purposes() {
        let policy = PolicyDocument::shipped_default().unwrap();
        assert!(policy.purpose("account").unwrap().required);
        assert!(!policy.purpose("support").unwrap().required);
        assert!(!policy.purpose("product_updates").unwrap().required);
        assert!(policy.purposes.iter().any(|p| p.sensitive && !p.required));
        assert!(policy.text.get(Language::En).contains("3 working days"));
        assert!(policy.text.get(Language::ZhCn).contains("3 个工作日"));
    }

    #[test]
    fn a_required_sensitive_purpose_is_refused() {
        let text = DEFAULT_POLICY.replace(
            "code = \"precise_location\"\nrequired = false",
            "code = \"precise_location\"\nrequired = true",
        );
        assert!(PolicyDocument::from_toml(&text).is_err());
    }
}
