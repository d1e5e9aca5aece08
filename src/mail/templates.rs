//! The wording of every mail, in zh-CN and English.
//!
//! Rules:
//! - A template is a plain function of a [`Language`] and its parameters that
//!   returns a [`RenderedMail`]; no template engine, so the compiler checks
//!   every parameter.
//! - Links arrive fully built ([`action_link`]); templates never see settings
//!   or raw tokens.
//! - Every mail has a plain-text body and an HTML alternative in which every
//!   interpolated value is escaped ([`escape_html`]): a username is
//!   user-chosen text.
//! - Subjects hold no parameters, so nothing user-chosen reaches a header or
//!   a mailbox preview line.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Language;

/// A mail ready to be queued: subject, plain text and an optional HTML
/// alternative. Holds personal data (usernames, tokens in links), so its
/// `Debug` shows sizes only.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The subject line.
    pub subject: String,
    /// The plain-text body, always present.
    pub text: String,
    /// The HTML alternative, already escaped.
    pub html: Option<String>,
    /// The draft it was rendered from, when [`Draft`] wrote it:
    /// the outbox stores this instead of the two renderings and renders it
    /// again at send time.
    pub draft: Option<DraftBody>,
}

impl fmt::Debug for RenderedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedMail")
            .field("subject", &"<redacted>")
            .field("text_len", &self.text.len())
            .field("has_html", &self.html.is_some())
            .finish()
    }
}

/// Builds an emailed action link: `public_url` + `path` + `?token=<token>`.
///
/// A trailing `/` on `public_url` and a missing leading `/` on `path` are
/// tolerated; the token is percent-encoded outside the URL-safe characters,
/// although tokens are URL-safe base64 or hex and never need it.
pub fn action_link(public_url: &str, path: &str, token: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut link = format!("{base}/{path}?token=");
    for byte in token.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            link.push(char::from(byte));
        } else {
            link.push_str(&format!("%{byte:02X}"));
        }
    }
    link
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Asks a new account holder to confirm their address (`/verify-email`).
pub fn verify_email(
    lang: Language,
    username: &str,
    link: &str,
    expires_hours: u32,
) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "请验证你的邮箱地址")
            .para(format!("{username}，你好："))
            .para("感谢注册。请打开下面的链接，确认这个邮箱地址属于你：")
            .link("验证邮箱地址", link)
            .para(format!("链接在 {expires_hours} 小时内有效，只能使用一次。"))
            .para("如果你没有注册过账号，请忽略这封邮件，什么都不会改变。")
            .render(),
        Language::En => Draft::new(lang, "Confirm your email address")
            .para(format!("Hello {username},"))
            .para("Thank you for signing up. Please open the link below to confirm that this address is yours:")
            .link("Confirm my email address", link)
            .para(format!(
                "The link works once and expires in {expires_hours} {}.",
                plural(expires_hours, "hour", "hours")
            ))
            .para("If you did not sign up, you can ignore this email; nothing will change.")
            .render(),
    }
}

/// Tells the owner of an address that someone tried to sign up with it.
/// Sent instead of an error, so signup never reveals which addresses have
/// accounts.
pub fn signup_attempt_on_existing_account(lang: Language) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "有人尝试用你的邮箱地址注册")
            .para("你好：")
            .para("刚才有人尝试用这个邮箱地址注册新账号，而这个地址已经属于一个账号。")
            .para("如果是你本人，请直接登录；如果忘记了密码，可以在登录页面重置密码。")
            .para("如果不是你，无需任何操作：你的账号没有任何变更。")
            .render(),
        Language::En => Draft::new(lang, "Someone tried to sign up with your email address")
            .para("Hello,")
            .para("Someone just tried to create a new account with this email address, which already belongs to an account.")
            .para("If it was you, simply sign in; if you have forgotten your password, you can reset it from the sign-in page.")
            .para("If it was not you, there is nothing to do: nothing about your account was changed.")
            .render(),
    }
}

/// Asks for confirmation of a new address; sent to the new address.
pub fn email_change_verify(lang: Language, username: &str, link: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "确认你的新邮箱地址")
            .para(format!("{username}，你好："))
            .para("你申请把账号的邮箱地址改为这个地址。请打开下面的链接确认：")
            .link("确认新邮箱地址", link)
            .para("确认之前，账号仍然使用原来的邮箱地址。链接只能使用一次。")
            .para("如果不是你申请的，请忽略这封邮件。")
            .render(),
        Language::En => Draft::new(lang, "Confirm your new email address")
            .para(format!("Hello {username},"))
            .para("You asked to change your account's email address to this one. Please open the link below to confirm:")
            .link("Confirm my new email address", link)
            .para("Until you confirm, your account keeps its current address. The link works once.")
            .para("If you did not ask for this, you can ignore this email.")
            .render(),
    }
}

/// Warns the current address that a change to another address was
/// requested; sent to the old address.
pub fn email_change_notice(lang: Language, username: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "你的账号申请了更换邮箱地址")
            .para(format!("{username}，你好："))
            .para("你的账号刚刚申请把绑定的邮箱地址改为另一个地址。新地址确认之后，登录验证、找回密码和各类通知都将发往新地址。")
            .para("如果是你本人操作，无需处理。")
            .para("如果不是你，请立即登录并修改密码，或联系客服。")
            .render(),
        Language::En => Draft::new(lang, "A change of email address was requested for your account")
            .para(format!("Hello {username},"))
            .para("Someone just asked to change the email address of your account to another address. Once the new address is confirmed, password resets and notices will go there instead.")
            .para("If it was you, there is nothing to do.")
            .para("If it was not you, sign in and change your password now, or contact support.")
            .render(),
    }
}

/// Tells the owner of an address that someone asked to move another
/// account to it; sent instead of a confirmation link when the address
/// already has an account. Names nobody: the request proves nothing about
/// who made it.
pub fn email_change_to_registered_address(lang: Language) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "有人想把另一个账号的邮箱改为你的地址")
            .para("你好：")
            .para("刚才有人申请把另一个账号的邮箱地址改为这个地址，而这个地址已经属于一个账号。一个地址只能属于一个账号，所以什么都没有改变。")
            .para("如果是你本人，请登录拥有这个地址的账号；如果想把另一个账号改用这个地址，需要先让这个地址空出来。")
            .para("如果不是你，无需任何操作：你的账号没有任何变更。")
            .render(),
        Language::En => Draft::new(lang, "Someone tried to move an account to your email address")
            .para("Hello,")
            .para("Someone just asked to change another account's email address to this one, which already belongs to an account. An address belongs to one account only, so nothing was changed.")
            .para("If it was you, sign in to the account that has this address; to move another account here, free the address first.")
            .para("If it was not you, there is nothing to do: nothing about your account was changed.")
            .render(),
    }
}

/// Confirms that the account's password was changed or reset.
pub fn password_changed(lang: Language, username: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "你的密码已修改")
            .para(format!("{username}，你好："))
            .para("你账号的密码刚刚被修改。")
            .para("如果是你本人操作，无需处理。")
            .para("如果不是你，请立即通过“忘记密码”重置密码，并联系客服。")
            .render(),
        Language::En => Draft::new(lang, "Your password was changed")
            .para(format!("Hello {username},"))
            .para("The password of your account was just changed.")
            .para("If it was you, there is nothing to do.")
            .para("If it was not you, reset your password at once with \"Forgot password\" and contact support.")
            .render(),
    }
}

/// Carries a password reset link (`/reset-password`). Names no username:
/// the request only proves someone knows the address.
pub fn password_reset(lang: Language, link: &str, expires_minutes: u32) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "重置你的密码")
            .para("你好：")
            .para("我们收到了重置这个账号密码的请求。请打开下面的链接设置新密码：")
            .link("重置密码", link)
            .para(format!("链接在 {expires_minutes} 分钟内有效，只能使用一次。重置成功后，所有设备上的登录都会退出。"))
            .para("如果你没有申请重置密码，请忽略这封邮件，你的密码不会改变。")
            .render(),
        Language::En => Draft::new(lang, "Reset your password")
            .para("Hello,")
            .para("We received a request to reset the password of this account. Please open the link below to choose a new one:")
            .link("Reset my password", link)
            .para(format!(
                "The link works once and expires in {expires_minutes} {}. After the reset, every device is signed out.",
                plural(expires_minutes, "minute", "minutes")
            ))
            .para("If you did not ask for this, you can ignore this email; your password will not change.")
            .render(),
    }
}

/// Asks a guardian to consent to a minor's account (`/guardian-consent`).
pub fn guardian_consent_request(
    lang: Language,
    username: &str,
    link: &str,
    days: u32,
) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "请确认是否同意未成年人使用账号")
            .para("您好：")
            .para(format!("一位未成年人在我们的平台注册了用户名为“{username}”的账号，并填写了您的邮箱地址作为监护人的联系方式。"))
            .para("在您同意之前，这个账号的功能受到限制。请打开下面的链接查看说明，并选择同意或拒绝：")
            .link("查看并答复", link)
            .para(format!("如果您拒绝，或者 {days} 天内没有答复，这个账号及其全部个人信息都将被删除。"))
            .para("如果您不认识这个账号，可以选择拒绝，或者忽略这封邮件。")
            .render(),
        Language::En => Draft::new(lang, "Your consent is requested for a minor's account")
            .para("Hello,")
            .para(format!("A minor has created an account with the username \"{username}\" on our platform and gave your email address as their guardian's."))
            .para("Until you consent, the account is restricted. Please open the link below to read what this means and to consent or refuse:")
            .link("Review and answer", link)
            .para(format!(
                "If you refuse, or do not answer within {days} {}, the account and all of its personal information will be erased.",
                plural(days, "day", "days")
            ))
            .para("If you do not recognise this account, you can refuse or simply ignore this email.")
            .render(),
    }
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// One paragraph or link of a mail, rendered once as text and once as HTML.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Block {
    #[serde(rename = "p")]
    Paragraph(String),
    #[serde(rename = "a")]
    Link { label: String, url: String },
}

/// What the outbox stores of a mail written with a [`Draft`]: its language
/// and blocks, about a third of the bytes of its text and HTML renderings.
/// The sender renders it again with the subject stored beside it, so the
/// mail sent is the mail rendered when it was queued.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftBody {
    lang: String,
    blocks: Vec<Block>,
}

impl DraftBody {
    /// The stored form (JSON), to be encrypted.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads the stored form back.
    pub fn from_json(stored: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(stored)
    }

    /// Renders text and HTML, as [`Draft::render`] did when it was queued.
    pub fn render(self, subject: String) -> RenderedMail {
        Draft {
            lang: Language::from_tag(&self.lang),
            subject,
            blocks: self.blocks,
        }
        .render()
    }
}

/// A mail being written: blocks in order, then the shared footer. Domains
/// write their own templates with it (e.g. `src/tickets/templates.rs`), so
/// every mail has the same shape and escaping.
pub struct Draft {
    lang: Language,
    subject: String,
    blocks: Vec<Block>,
}

impl Draft {
    /// Starts a mail in `lang` with a subject.
    pub fn new(lang: Language, subject: impl Into<String>) -> Self {
        Self {
            lang,
            subject: subject.into(),
            blocks: Vec::new(),
        }
    }

    /// Adds a paragraph (plain text; escaped for HTML).
    pub fn para(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// Adds a link with a label; the bare URL is repeated for copying.
    pub fn link(mut self, label: &'static str, url: &str) -> Self {
        self.blocks.push(Block::Link {
            label: label.to_owned(),
            url: url.to_owned(),
        });
        self
    }

    /// Renders text and HTML with the shared footer.
    pub fn render(self) -> RenderedMail {
        let footer = match self.lang {
            Language::ZhCn => "此邮件由系统自动发送，请勿直接回复。",
            Language::En => "This email was sent automatically; please do not reply to it.",
        };
        let mut text = String::new();
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n",
            self.lang.as_tag(),
            escape_html(&self.subject)
        );
        for block in &self.blocks {
            match block {
                Block::Paragraph(paragraph) => {
                    text.push_str(paragraph);
                    text.push_str("\n\n");
                    html.push_str(&format!("<p>{}</p>\n", escape_html(paragraph)));
                }
                Block::Link { label, url } => {
                    // The bare URL is repeated so it can be copied when a
                    // client blocks links.
                    text.push_str(&format!("{label}:\n{url}\n\n"));
                    let url = escape_html(url);
                    html.push_str(&format!(
                        "<p><a href=\"{url}\">{}</a></p>\n<p style=\"word-break:break-all\">{url}</p>\n",
                        escape_html(label)
                    ));
                }
            }
        }
        text.push_str("-- \n");
        text.push_str(footer);
        text.push('\n');
        html.push_str(&format!(
            "<hr>\n<p><small>{}</small></p>\n</body>\n</html>\n",
            escape_html(footer)
        ));
        RenderedMail {
            subject: self.subject,
            text,
            html: Some(html),
            draft: Some(DraftBody {
                lang: self.lang.as_tag().to_owned(),
                blocks: self.blocks,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://example.org/verify-email?token=abc_DEF-123";
    const EVIL: &str = "<script>x</script>&\"";

    fn both() -> [Language; 2] {
        [Language::ZhCn, Language::En]
    }

    #[test]
    fn a_stored_draft_renders_the_same_mail_again() {
        for lang in both() {
            for mail in [
                verify_email(lang, EVIL, LINK, 24),
                password_reset(lang, LINK, 30),
                signup_attempt_on_existing_account(lang),
                email_change_to_registered_address(lang),
            ] {
                let stored = mail.draft.as_ref().map(|d| d.to_json().unwrap()).unwrap();
                let again = DraftBody::from_json(&stored)
                    .unwrap()
                    .render(mail.subject.clone());
                assert_eq!(again.text, mail.text);
                assert_eq!(again.html, mail.html);
                assert!(
                    stored.len() < mail.text.len() + mail.html.as_deref().unwrap_or("").len(),
                    "the draft is smaller than its renderings"
                );
            }
        }
    }

    fn assert_contains_everywhere(mail: &RenderedMail, needle: &str) {
        assert!(
            mail.text.contains(needle),
            "text lacks {needle:?}:\n{}",
            mail.text
        );
        let html = mail.html.as_deref().unwrap_or_default();
        assert!(
            html.contains(&escape_html(needle)),
            "html lacks {needle:?}:\n{html}"
        );
    }

    fn assert_escaped(mail: &RenderedMail) {
        let html = mail.html.as_deref().unwrap_or_default();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt;&amp;&quot;"),
            "{html}"
        );
        // Plain text is not HTML: the name stays as typed.
        assert!(mail.text.contains(EVIL));
    }

    #[test]
    fn action_link_joins_and_encodes() {
        assert_eq!(
            action_link("https://example.org/", "/reset-password", "abc_DEF-123"),
            "https://example.org/reset-password?token=abc_DEF-123"
        );
        assert_eq!(
            action_link("http://localhost:8000", "verify-email", "a+b/c="),
            "http://localhost:8000/verify-email?token=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn escape_html_escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("张三"), "张三");
    }

    #[test]
    fn verify_email_has_link_name_and_expiry() {
        for lang in both() {
            let mail = verify_email(lang, "alice", LINK, 24);
            assert_contains_everywhere(&mail, LINK);
            assert_contains_everywhere(&mail, "alice");
            assert_contains_everywhere(&mail, "24");
            assert_escaped(&verify_email(lang, EVIL, LINK, 24));
        }
        assert!(
            verify_email(Language::En, "a", LINK, 1)
                .text
                .contains("1 hour.")
        );
    }

    #[test]
    fn signup_attempt_names_nothing_and_reassures() {
        let zh = signup_attempt_on_existing_account(Language::ZhCn);
        assert!(zh.text.contains("没有任何变更"));
        let en = signup_attempt_on_existing_account(Language::En);
        assert!(en.text.contains("nothing about your account was changed"));
        assert!(en.text.contains("reset"));
        assert_ne!(zh.subject, en.subject);
    }

    #[test]
    fn email_change_to_a_registered_address_names_nothing_and_reassures() {
        let zh = email_change_to_registered_address(Language::ZhCn);
        assert!(zh.text.contains("没有任何变更"));
        let en = email_change_to_registered_address(Language::En);
        assert!(en.text.contains("nothing about your account was changed"));
        assert_ne!(zh.subject, en.subject);
        for mail in [zh, en] {
            assert!(!mail.text.contains("http"), "no link: {}", mail.text);
        }
    }

    #[test]
    fn email_change_verify_has_link_and_name() {
        for lang in both() {
            let mail = email_change_verify(lang, "bob", LINK);
            assert_contains_everywhere(&mail, LINK);
            assert_contains_everywhere(&mail, "bob");
            assert_escaped(&email_change_verify(lang, EVIL, LINK));
        }
    }

    #[test]
    fn email_change_notice_has_name() {
        for lang in both() {
            assert_contains_everywhere(&email_change_notice(lang, "bob"), "bob");
            assert_escaped(&email_change_notice(lang, EVIL));
        }
    }

    #[test]
    fn password_changed_has_name() {
        for lang in both() {
            assert_contains_everywhere(&password_changed(lang, "carol"), "carol");
            assert_escaped(&password_changed(lang, EVIL));
        }
    }

    #[test]
    fn password_reset_has_link_and_expiry() {
        for lang in both() {
            let mail = password_reset(lang, LINK, 30);
            assert_contains_everywhere(&mail, LINK);
            assert_contains_everywhere(&mail, "30");
        }
    }

    #[test]
    fn guardian_consent_request_has_link_name_and_days() {
        for lang in both() {
            let mail = guardian_consent_request(lang, "kid", LINK, 7);
            assert_contains_everywhere(&mail, LINK);
            assert_contains_everywhere(&mail, "kid");
            assert_contains_everywhere(&mail, "7");
            assert_escaped(&guardian_consent_request(lang, EVIL, LINK, 7));
        }
    }

    #[test]
    fn links_with_ampersands_are_escaped_in_html() {
        let mail = verify_email(Language::En, "a", "https://x.example/v?token=a&b=<c>", 1);
        let html = mail.html.unwrap_or_default();
        assert!(html.contains("href=\"https://x.example/v?token=a&amp;b=&lt;c&gt;\""));
    }

    #[test]
    fn html_declares_the_language() {
        let zh = password_changed(Language::ZhCn, "x")
            .html
            .unwrap_or_default();
        let en = password_changed(Language::En, "x").html.unwrap_or_default();
        assert!(zh.contains("lang=\"zh-CN\""));
        assert!(en.contains("lang=\"en\""));
    }
}
