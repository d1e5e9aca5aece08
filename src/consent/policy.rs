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

/// A kind of major change, as the policy itself lists them: a version that
/// makes one is major, mailed to everybody and accepted again.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MajorChangeKind {
    /// Purposes, categories of data or ways of use.
    ServiceModel,
    /// The owner or the organisation running the service.
    Ownership,
    /// Who data is shared with, transferred to or disclosed to.
    Recipients,
    /// The person's rights or how to exercise them.
    Rights,
    /// The responsible department, the contact or the complaint channel.
    Contact,
}

impl MajorChangeKind {
    /// Every kind, in the order the policy lists them.
    pub const ALL: [Self; 5] = [
        Self::ServiceModel,
        Self::Ownership,
        Self::Recipients,
        Self::Rights,
        Self::Contact,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceModel => "SERVICE_MODEL",
            Self::Ownership => "OWNERSHIP",
            Self::Recipients => "RECIPIENTS",
            Self::Rights => "RIGHTS",
            Self::Contact => "CONTACT",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// What the kind means, in words for people, as a notice names it.
    pub fn describe(self, language: Language) -> &'static str {
        match (self, language) {
            (Self::ServiceModel, Language::ZhCn) => "处理目的、个人信息种类或使用方式",
            (Self::Ownership, Language::ZhCn) => "服务的所有者或运营者",
            (Self::Recipients, Language::ZhCn) => "个人信息的共享、转让或公开披露对象",
            (Self::Rights, Language::ZhCn) => "您的权利及其行使方式",
            (Self::Contact, Language::ZhCn) => "负责部门、联系方式或投诉渠道",
            (Self::ServiceModel, Language::En) => "the purposes, kinds of data or ways we use them",
            (Self::Ownership, Language::En) => "who owns or runs the service",
            (Self::Recipients, Language::En) => {
                "who we share your data with, transfer it to or disclose it to"
            }
            (Self::Rights, Language::En) => "your rights or how to exercise them",
            (Self::Contact, Language::En) => {
                "the department responsible, how to contact us or where to complain"
            }
        }
    }

    /// Kinds as stored in `policy_versions.change_kinds`: names joined by commas.
    pub fn join(kinds: &[Self]) -> String {
        kinds
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads the stored column; unknown names are skipped (none are written).
    pub fn split(stored: &str) -> Vec<Self> {
        stored
            .split(',')
            .filter_map(|name| Self::from_stored(name.trim()))
            .collect()
    }
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
    /// The kinds of major change this version makes (none for a minor one).
    /// Stored in a column of its own, not in the document's JSON.
    #[serde(default, skip_serializing)]
    pub change_kinds: Vec<MajorChangeKind>,
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
/// The versions shipped with the crate, oldest first.
const SHIPPED_VERSIONS: [&str; 2] = [
    DEFAULT_POLICY,
    include_str!("../../data/policy/2026-12-07.toml"),
];

impl PolicyDocument {
    /// Parses a policy document written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let document: Self = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| PolicyError(e.to_string()))?;
        document.check()?;
        Ok(document)
    }

    /// The versions shipped with the crate, oldest first: a fresh
    /// installation publishes them all, so the policy's public history is
    /// the same everywhere, and serves the last until an operator publishes
    /// their own.
    pub fn shipped_versions() -> Result<Vec<Self>, PolicyError> {
        SHIPPED_VERSIONS
            .iter()
            .map(|text| Self::from_toml(text))
            .collect()
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
        let versions = PolicyDocument::shipped_versions().unwrap();
        let first = &versions[0];
        assert!(!first.purpose("support").unwrap().required);
        let policy = versions.last().unwrap();
        assert!(policy.purpose("account").unwrap().required);
        // Tickets need no optional purpose: `support` went in 2026-12-07.
        assert!(policy.purpose("support").is_none());
        assert!(!policy.major && policy.change_kinds.is_empty());
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

    #[test]
    fn change_kinds_are_stored_as_names_and_read_back() {
        let kinds = [MajorChangeKind::ServiceModel, MajorChangeKind::Contact];
        let stored = MajorChangeKind::join(&kinds);
        assert_eq!(stored, "SERVICE_MODEL,CONTACT");
        assert_eq!(MajorChangeKind::split(&stored), kinds);
        assert!(MajorChangeKind::split("").is_empty());
        for kind in MajorChangeKind::ALL {
            assert_ne!(kind.describe(Language::ZhCn), kind.describe(Language::En));
        }
    }
}
