//! Mail about deleting an account.

use crate::mail::{Language, RenderedMail, templates::Draft};

/// Asks the owner of the bound address to confirm deletion.
pub fn confirm_request(
    lang: Language,
    username: &str,
    confirm_link: &str,
    cancel_link: &str,
    grace_days: u32,
    expires_hours: i64,
) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "请确认注销账号")
            .para(format!("{username}，你好："))
            .para("我们收到了注销你的账号的申请。确认后，我们会立即停止处理你的个人信息，结束你的所有登录会话，")
            .para(format!(
                "并在 {grace_days} 个工作日内删除全部个人信息：用户名、邮箱、密码散列、登录会话、同意记录、客服工单及其消息、待发送的邮件。"
            ))
            .link("确认注销", confirm_link)
            .para(format!("确认链接在 {expires_hours} 小时内有效，只能使用一次。"))
            .para("如果这不是你本人的操作，或者你改变了主意，请打开下面的链接取消申请，或忽略这封邮件：")
            .link("取消注销", cancel_link)
            .render(),
        Language::En => Draft::new(lang, "Confirm the deletion of your account")
            .para(format!("Hello {username},"))
            .para("We received a request to delete your account. Once you confirm, we stop processing your personal data at once and end all your sessions,")
            .para(format!(
                "and within {grace_days} working days we erase all of it: username, email address, password hash, sessions, consent records, support tickets and their messages, and mail waiting to be sent."
            ))
            .link("Confirm the deletion", confirm_link)
            .para(format!("The link works once and expires in {expires_hours} hours."))
            .para("If you did not ask for this, or changed your mind, cancel the request below or ignore this email:")
            .link("Cancel the deletion", cancel_link)
            .render(),
    }
}

/// Tells the person the deletion is scheduled and how to cancel it.
pub fn scheduled(
    lang: Language,
    username: &str,
    erase_by: &str,
    cancel_link: &str,
) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "你的账号将被注销")
            .para(format!("{username}，你好："))
            .para(format!(
                "你已确认注销账号。我们已停止处理你的个人信息，并将在 {erase_by} 之后删除全部数据。"
            ))
            .para("在删除之前，你仍可以取消：")
            .link("取消注销", cancel_link)
            .render(),
        Language::En => Draft::new(lang, "Your account will be deleted")
            .para(format!("Hello {username},"))
            .para(format!(
                "You confirmed the deletion of your account. We have stopped processing your personal data and will erase all of it after {erase_by}."
            ))
            .para("Until then you can still cancel:")
            .link("Cancel the deletion", cancel_link)
            .render(),
    }
}

/// Tells the account's address (and its guardian's) that staff found the
/// account to belong to a minor without a guardian's consent: what stopped,
/// when it is erased, and how to contest it before then.
pub fn minor_flagged(lang: Language, username: &str, erase_after: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "账号已因未成年人未获监护人同意而停用")
            .para(format!("关于账号 {username}："))
            .para("我们的工作人员认定该账号属于未获得监护人可核实同意的未成年人。我们已立即停止处理该账号的个人信息，结束了它的所有登录会话，登录也会被拒绝。")
            .para(format!(
                "如无异议，我们将在 {erase_after} 之后删除该账号的全部个人信息。"
            ))
            .para(format!(
                "如果这是误判（账号持有人已满 18 周岁，或监护人已经同意），请在 {erase_after} 之前联系我们的客服（无需登录，并注明账号名）。管理员核实后可以撤销这一认定，账号随即恢复。"
            ))
            .render(),
        Language::En => Draft::new(lang, "An account was stopped: a minor without a guardian's consent")
            .para(format!("About the account {username}:"))
            .para("Our staff found that this account belongs to a minor without a guardian's verifiable consent. We stopped processing its personal data at once, ended all its sessions, and sign-in is refused.")
            .para(format!(
                "Unless this is contested, we erase all of the account's personal data after {erase_after}."
            ))
            .para(format!(
                "If this is a mistake (the account holder is 18 or older, or a guardian has agreed), contact our support before {erase_after} (no sign-in needed; name the account). An administrator can lift the finding, and the account is restored."
            ))
            .render(),
    }
}

/// Tells the account's address (and its guardian's) that a mistaken
/// minor flag was lifted and the account is active again.
pub fn minor_flag_lifted(lang: Language, username: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "账号已恢复")
            .para(format!("关于账号 {username}："))
            .para("管理员撤销了对该账号属于未获监护人同意的未成年人的认定。删除已取消，账号已恢复，可以重新登录。")
            .render(),
        Language::En => Draft::new(lang, "The account is restored")
            .para(format!("About the account {username}:"))
            .para("An administrator lifted the finding that this account belongs to a minor without a guardian's consent. The erasure is cancelled and the account is active again: you can sign in again.")
            .render(),
    }
}

/// The last mail: the data is gone. It names nothing personal.
pub fn erased(lang: Language, completed: &str, certificate_id: &str) -> RenderedMail {
    match lang {
        Language::ZhCn => Draft::new(lang, "你的数据已被删除")
            .para(format!("你的账号和全部个人信息已于 {completed} 删除。"))
            .para(format!(
                "删除证明编号：{certificate_id}。该证明不包含任何个人信息。"
            ))
            .para("这是我们发给这个地址的最后一封邮件，我们不再保存这个地址。")
            .render(),
        Language::En => Draft::new(lang, "Your data has been erased")
            .para(format!(
                "Your account and all your personal data were erased on {completed}."
            ))
            .para(format!(
                "Erasure certificate: {certificate_id}. It holds no personal data."
            ))
            .para("This is the last email we send to this address; we no longer keep it.")
            .render(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_carry_their_links_in_both_languages() {
        for lang in [Language::ZhCn, Language::En] {
            let mail = confirm_request(
                lang,
                "<u>",
                "https://x/confirm-deletion?token=a",
                "https://x/cancel-deletion?token=b",
                3,
                24,
            );
            assert!(mail.text.contains("confirm-deletion?token=a"));
            assert!(mail.text.contains("cancel-deletion?token=b"));
            assert!(mail.html.unwrap_or_default().contains("&lt;u&gt;"));
            let mail = scheduled(
                lang,
                "u",
                "2026-12-02 15:00",
                "https://x/cancel-deletion?token=c",
            );
            assert!(mail.text.contains("2026-12-02 15:00"));
            assert!(mail.text.contains("cancel-deletion?token=c"));
            let mail = erased(lang, "2026-12-02", "cert-1");
            assert!(mail.text.contains("cert-1"));
            let mail = minor_flagged(lang, "<u>", "2026-12-03 10:00");
            assert!(mail.text.contains("2026-12-03 10:00"));
            assert!(mail.html.unwrap_or_default().contains("&lt;u&gt;"));
            let mail = minor_flag_lifted(lang, "<u>");
            assert!(mail.html.unwrap_or_default().contains("&lt;u&gt;"));
        }
    }
}
