//! Mail about the policy and the purposes people granted.

use super::policy::{MajorChangeKind, PolicyDocument};
use crate::mail::{Language, RenderedMail, templates::Draft};

/// A purpose as named in a notice.
pub struct NamedPurpose<'a> {
    /// Its title.
    pub title: &'a str,
    /// What it is for.
    pub description: &'a str,
}

/// The kinds of change as one line in `lang`, e.g. "变更类型：…；…".
fn kinds_line(lang: Language, kinds: &[MajorChangeKind]) -> String {
    let (label, separator) = match lang {
        Language::ZhCn => ("变更类型：", "；"),
        Language::En => ("What kind of change: ", "; "),
    };
    let named: Vec<&str> = kinds.iter().map(|kind| kind.describe(lang)).collect();
    format!("{label}{}", named.join(separator))
}

/// The public announcement of a major version: one text for everybody, so
/// it says what changed and which kinds of change in each language the
/// service speaks, Chinese first.
pub struct PolicyAnnouncement {
    /// Its headline.
    pub title: String,
    /// Its text.
    pub body: String,
}

/// Writes the announcement of a major version.
pub fn policy_update_announcement(document: &PolicyDocument) -> PolicyAnnouncement {
    let version = &document.version;
    let body = [Language::ZhCn, Language::En]
        .into_iter()
        .map(|lang| {
            let summary = document.summary_of_changes.get(lang);
            let kinds = kinds_line(lang, &document.change_kinds);
            match lang {
                Language::ZhCn => format!("变更内容：{summary}\n{kinds}"),
                Language::En => format!("What changed: {summary}\n{kinds}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    PolicyAnnouncement {
        title: format!(
            "隐私政策重要变更（版本 {version}） / Privacy policy {version}: a major change"
        ),
        body,
    }
}

/// The prominent notice of a major policy change: what changed, the kinds
/// of major change it makes, which purposes are new (all off until
/// granted), and that acceptance is asked.
pub fn policy_update_notice(
    lang: Language,
    version: &str,
    summary: &str,
    kinds: &[MajorChangeKind],
    new_purposes: &[NamedPurpose<'_>],
    link: &str,
) -> RenderedMail {
    match lang {
        Language::ZhCn => {
            let mut draft = Draft::new(lang, format!("隐私政策重要变更（版本 {version}）"))
                .para(format!(
                    "我们的隐私政策发布了新版本 {version}，这是一次重要变更。"
                ))
                .para(format!("变更内容：{summary}"))
                .para(kinds_line(lang, kinds));
            if !new_purposes.is_empty() {
                draft = draft.para(
                    "新增的处理目的如下。它们在您明确同意之前一律关闭，不同意不会影响其他功能：",
                );
                for purpose in new_purposes {
                    draft = draft.para(format!("• {}：{}", purpose.title, purpose.description));
                }
            }
            draft
                .para("您的权利不会在未经您明确同意的情况下被减少。请阅读新版本并决定是否接受：")
                .link("阅读新版隐私政策", link)
                .render()
        }
        Language::En => {
            let mut draft = Draft::new(
                lang,
                format!("Important change to our privacy policy (version {version})"),
            )
            .para(format!(
                "We have published version {version} of our privacy policy. This is a major change."
            ))
            .para(format!("What changed: {summary}"))
            .para(kinds_line(lang, kinds));
            if !new_purposes.is_empty() {
                draft = draft.para("New purposes of processing, each off until you switch it on; saying no turns off only the feature that needs it:");
                for purpose in new_purposes {
                    draft = draft.para(format!("• {}: {}", purpose.title, purpose.description));
                }
            }
            draft
                .para("Your rights are never reduced without your explicit consent. Please read the new version and decide whether to accept it:")
                .link("Read the new privacy policy", link)
                .render()
        }
    }
}

/// Product news, sent only to people who granted `product_updates`.
pub fn product_update(
    lang: Language,
    subject: &str,
    body: &str,
    settings_link: &str,
) -> RenderedMail {
    let (unsubscribe, label) = match lang {
        Language::ZhCn => (
            "您收到这封邮件是因为您同意接收产品动态邮件。您可以随时在设置中关闭，关闭不影响其他功能。",
            "管理我的同意",
        ),
        Language::En => (
            "You receive this because you agreed to product news by email. You can switch it off at any time in your settings; nothing else changes.",
            "Manage my consent",
        ),
    };
    Draft::new(lang, subject)
        .para(body)
        .para(unsubscribe)
        .link(label, settings_link)
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_notice_lists_new_purposes_in_both_languages() {
        for lang in [Language::ZhCn, Language::En] {
            let mail = policy_update_notice(
                lang,
                "v2",
                "Added <location> features",
                &[MajorChangeKind::ServiceModel, MajorChangeKind::Recipients],
                &[NamedPurpose {
                    title: "Nearby",
                    description: "Shows what is near",
                }],
                "https://example.org/privacy",
            );
            assert!(mail.subject.contains("v2"));
            assert!(mail.text.contains("Added <location> features"));
            assert!(mail.text.contains("Nearby"));
            for kind in [MajorChangeKind::ServiceModel, MajorChangeKind::Recipients] {
                assert!(mail.text.contains(kind.describe(lang)), "{}", mail.text);
            }
            assert!(!mail.text.contains(MajorChangeKind::Rights.describe(lang)));
            assert!(mail.html.unwrap_or_default().contains("&lt;location&gt;"));
        }
    }
}
