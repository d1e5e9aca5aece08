//! The security-incident notice, as mailed (zh-CN and English) and as
//! announced publicly.
//!
//! Every notice carries all five content blocks, each under its own heading,
//! in the order the person needs them: what happened, what it may mean for
//! them, what was done, what they should do, and what remedies they have.

use super::content::{ContentBlock, IncidentContent};
use crate::mail::{Language, RenderedMail, templates::Draft};

/// The heading of a content block in `lang`.
pub fn heading(block: ContentBlock, lang: Language) -> &'static str {
    match (block, lang) {
        (ContentBlock::Title, Language::ZhCn) => "标题",
        (ContentBlock::Title, Language::En) => "Title",
        (ContentBlock::WhatHappened, Language::ZhCn) => "发生了什么",
        (ContentBlock::WhatHappened, Language::En) => "What happened",
        (ContentBlock::PossibleImpact, Language::ZhCn) => "可能造成的影响",
        (ContentBlock::PossibleImpact, Language::En) => "What it may mean for you",
        (ContentBlock::MeasuresTaken, Language::ZhCn) => "我们已经采取的措施",
        (ContentBlock::MeasuresTaken, Language::En) => "What we have done",
        (ContentBlock::AdviceToUsers, Language::ZhCn) => "建议你采取的措施",
        (ContentBlock::AdviceToUsers, Language::En) => "What we advise you to do",
        (ContentBlock::Remedies, Language::ZhCn) => "补救措施",
        (ContentBlock::Remedies, Language::En) => "Remedies available to you",
    }
}

/// The blocks of a notice body, in the order they are told.
const BODY_BLOCKS: [ContentBlock; 5] = [
    ContentBlock::WhatHappened,
    ContentBlock::PossibleImpact,
    ContentBlock::MeasuresTaken,
    ContentBlock::AdviceToUsers,
    ContentBlock::Remedies,
];

/// Adds a block's text, one paragraph per blank-line-separated part, so a
/// long block keeps its shape in the HTML part too.
fn with_text(mut draft: Draft, text: &str) -> Draft {
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        draft = draft.para(paragraph);
    }
    draft
}

/// The notice mailed to each affected person in their language. It names
/// nobody, so one rendering serves every recipient of a language.
pub fn incident_notice(lang: Language, content: &IncidentContent) -> RenderedMail {
    let (subject, greeting, intro, contact) = match lang {
        Language::ZhCn => (
            format!("安全事件通知：{}", content.title),
            "你好：",
            "我们发生了一起可能涉及你的个人信息的安全事件。依照我们的隐私政策，现将有关情况告知如下。",
            "如有疑问，请通过平台的客服与我们联系。",
        ),
        Language::En => (
            format!("Security incident notice: {}", content.title),
            "Hello,",
            "A security incident has occurred that may concern your personal information. As our privacy policy promises, here is what you need to know.",
            "If you have questions, please contact us through the platform's support desk.",
        ),
    };
    let mut draft = Draft::new(lang, subject)
        .para(greeting)
        .para(intro)
        .para(content.title.clone());
    for block in BODY_BLOCKS {
        draft = with_text(
            draft.para(format!("【{}】", heading(block, lang))),
            content.block(block),
        );
    }
    draft.para(contact).render()
}

/// The body of the public announcement: all five blocks under headings in
/// both languages, as an announcement has no reader whose language is known.
pub fn incident_announcement_body(content: &IncidentContent) -> String {
    let mut body = String::new();
    for block in BODY_BLOCKS {
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&format!(
            "{} / {}\n{}",
            heading(block, Language::ZhCn),
            heading(block, Language::En),
            content.block(block)
        ));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> IncidentContent {
        IncidentContent {
            title: "Leak <b>".into(),
            what_happened: "A backup was exposed.\n\nIt held hashes.".into(),
            possible_impact: "Hashes may be cracked.".into(),
            measures_taken: "We closed the bucket.".into(),
            advice_to_users: "Change your password.".into(),
            remedies: "Free monitoring & support.".into(),
        }
    }

    #[test]
    fn the_mail_carries_every_block_and_heading_in_both_languages() {
        let content = content();
        for lang in [Language::ZhCn, Language::En] {
            let mail = incident_notice(lang, &content);
            assert!(mail.subject.contains("Leak <b>"));
            for block in BODY_BLOCKS {
                assert!(mail.text.contains(heading(block, lang)), "{}", mail.text);
            }
            for needle in [
                "A backup was exposed.",
                "It held hashes.",
                "Hashes may be cracked.",
                "We closed the bucket.",
                "Change your password.",
                "Free monitoring & support.",
            ] {
                assert!(mail.text.contains(needle), "{needle}: {}", mail.text);
            }
            let html = mail.html.unwrap_or_default();
            assert!(html.contains("Free monitoring &amp; support."));
            assert!(html.contains("Leak &lt;b&gt;"));
            assert!(html.contains("<p>It held hashes.</p>"));
        }
        assert!(
            incident_notice(Language::ZhCn, &content)
                .text
                .contains("发生了什么")
        );
        assert!(
            incident_notice(Language::En, &content)
                .text
                .contains("What happened")
        );
    }

    #[test]
    fn the_announcement_body_has_bilingual_headings_and_every_block() {
        let body = incident_announcement_body(&content());
        assert!(body.starts_with("发生了什么 / What happened\nA backup was exposed."));
        for block in BODY_BLOCKS {
            assert!(body.contains(heading(block, Language::En)));
            assert!(body.contains(content().block(block)));
        }
    }
}
