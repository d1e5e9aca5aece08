//! Mail of the accounts domain that `mail::templates` does not already
//! hold: the notice of a sign-in from a new browser or app.
//!
//! Rules: subjects carry no parameters; the user agent is text a client
//! chose, so it only ever appears escaped in HTML (the `Draft` builder does
//! that) and is cut to what the session keeps.

use chrono::{DateTime, Utc};

use crate::mail::{Language, RenderedMail, templates::Draft};

/// Tells the owner that their account signed in from a browser or app it
/// has not used recently (`CUSTOS_NOTIFY_NEW_SIGNIN`).
pub fn new_signin(
    lang: Language,
    username: &str,
    user_agent: &str,
    at: DateTime<Utc>,
) -> RenderedMail {
    let when = at.format("%Y-%m-%d %H:%M UTC").to_string();
    match lang {
        Language::ZhCn => Draft::new(lang, "你的账号在新的设备或浏览器上登录")
            .para(format!("{username}，你好："))
            .para(format!("你的账号于 {when} 在一个最近没有用过的设备或浏览器上登录："))
            .para(user_agent.to_owned())
            .para("如果是你本人操作，无需处理。")
            .para("如果不是你，请立即修改密码（或通过“忘记密码”重置密码），并在“登录设备”中退出不认识的会话。")
            .render(),
        Language::En => Draft::new(lang, "New sign-in to your account")
            .para(format!("Hello {username},"))
            .para(format!(
                "Your account signed in at {when} from a browser or app it has not used recently:"
            ))
            .para(user_agent.to_owned())
            .para("If it was you, there is nothing to do.")
            .para("If it was not you, change your password now (or reset it with \"Forgot password\") and end the sessions you do not recognise.")
            .render(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::mail::templates::escape_html;

    #[test]
    fn new_signin_names_agent_and_time_and_escapes_them() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let agent = "<script>x</script> Firefox/140";
        for lang in [Language::ZhCn, Language::En] {
            let mail = new_signin(lang, "alice", agent, at);
            assert!(mail.text.contains(agent));
            assert!(mail.text.contains("alice"));
            assert!(mail.text.contains("2026-11-30 02:00 UTC"));
            let html = mail.html.unwrap_or_default();
            assert!(!html.contains("<script>"), "{html}");
            assert!(html.contains(&escape_html(agent)));
            assert!(!mail.subject.contains("alice"));
        }
    }
}
