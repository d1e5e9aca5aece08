//! The catalog of every message a client may show a person, in zh-CN and
//! English.
//!
//! Rules:
//! - This table is the only place an error's human text is written. An
//!   error site names a [`Key`] (and its arguments, such as a wait or a
//!   length), never a sentence, so both languages exist for every message
//!   by construction, and the key travels to the client as
//!   `extensions.messageKey`, stable across wording changes.
//! - A message is put into words only when the answer is written, in the
//!   request's language (`Accept-Language`, else the signed-in account's
//!   language, else zh-CN), so services and error conversions never need
//!   to know it.
//! - Arguments are numbers and names the server chose, never what a person
//!   typed: a message must not echo personal data back.

use crate::mail::Language;

/// Declares the catalog: each entry is a variant of [`Key`], its wire key,
/// and its text in both languages. Both texts are required by the grammar
/// of the table itself.
macro_rules! catalog {
    ($($variant:ident = $key:literal { zh: $zh:literal, en: $en:literal })+) => {
        /// A message of the catalog.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key {
            $(
                #[doc = $key]
                $variant,
            )+
        }

        impl Key {
            /// Every key, in catalog order.
            pub const ALL: &'static [Key] = &[$(Key::$variant),+];

            /// The stable wire name, e.g. `auth.invalid_credentials`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Key::$variant => $key,)+
                }
            }

            /// The text with `{name}` placeholders, in `language`.
            pub fn template(self, language: Language) -> &'static str {
                match (self, language) {
                    $(
                        (Key::$variant, Language::ZhCn) => $zh,
                        (Key::$variant, Language::En) => $en,
                    )+
                }
            }
        }
    };
}

catalog! {
    Unauthenticated = "auth.unauthenticated" {
        zh: "请先登录。",
        en: "Please sign in first."
    }
    Forbidden = "auth.forbidden" {
        zh: "你无权执行此操作。",
        en: "You are not allowed to do that."
    }
    InvalidCredentials = "auth.invalid_credentials" {
        zh: "登录名或密码错误。",
        en: "The login or password is wrong."
    }
    NotFound = "common.not_found" {
        zh: "未找到。",
        en: "Not found."
    }
    Internal = "common.internal" {
        zh: "我们这边出了问题。联系客服时请提供请求编号。",
        en: "Something went wrong on our side. Quote the request id if you contact support."
    }
    TimedOut = "common.timed_out" {
        zh: "请求处理时间过长。",
        en: "The request took too long."
    }
    InvalidValue = "common.invalid_value" {
        zh: "此值无效。",
        en: "This value is not valid."
    }
    RateLimited = "common.rate_limited" {
        zh: "尝试次数过多，请 {seconds} 秒后再试。",
        en: "Too many attempts. Please wait {seconds} seconds and try again."
    }
    PageSize = "common.page_size" {
        zh: "每页数量须在 {min} 到 {max} 之间。",
        en: "Ask for {min} to {max} items."
    }
    NestedTooDeep = "graphql.nested_too_deep" {
        zh: "查询中的方括号、花括号或圆括号嵌套超过 64 层。",
        en: "The query nests brackets, braces or parentheses deeper than 64 levels."
    }
    BodyNestedTooDeep = "request.body_nested_too_deep" {
        zh: "请求正文的嵌套超过 128 层。",
        en: "The request body nests deeper than 128 levels."
    }
    StaffNotFlaggable = "minor_flag.staff_account" {
        zh: "员工账号不能被标记。",
        en: "Staff accounts cannot be flagged."
    }
    NoMinorFlag = "minor_flag.not_flagged" {
        zh: "此账号没有可解除的未成年人标记。",
        en: "This account has no minor flag to lift."
    }
    TicketThreadFull = "ticket.thread_full" {
        zh: "此工单的消息已达上限，请新建一个工单。",
        en: "This ticket holds as many messages as it can. Please file a new one."
    }
    CursorUnknown = "common.cursor_unknown" {
        zh: "此游标不属于该列表，请从第一页重新开始。",
        en: "This cursor was not given out for this list. Start again from the first page."
    }
    PersistedQueryMalformed = "graphql.persisted_query_malformed" {
        zh: "extensions.persistedQuery 的格式须为 { version: 1, sha256Hash: <64 位十六进制> }。",
        en: "extensions.persistedQuery must be { version: 1, sha256Hash: <64 hex digits> }."
    }
    PersistedQueryHashMismatch = "graphql.persisted_query_hash_mismatch" {
        zh: "持久化查询的 sha256Hash 与其文本的哈希不符。",
        en: "The persisted query's sha256Hash is not the hash of its text."
    }
    UnsupportedLanguage = "common.unsupported_language" {
        zh: "不支持该语言，请选择 zh-CN 或 en。",
        en: "This language is not supported: choose zh-CN or en."
    }
    GuardianConsentPending = "account.guardian_consent_pending" {
        zh: "需要父母或监护人同意后才能使用此账号。",
        en: "A parent or guardian must agree before this account can be used."
    }
    DeletionScheduled = "account.deletion_scheduled" {
        zh: "此账号已安排注销。",
        en: "This account is scheduled for deletion."
    }
    LoginShape = "account.login_invalid" {
        zh: "请输入完整的用户名或邮箱地址。",
        en: "Enter an exact username or email address."
    }
    UsernameLength = "username.length" {
        zh: "用户名须为 {min} 到 {max} 个字符（_、- 和 . 不计入）。",
        en: "A username has {min} to {max} characters, not counting _, - and ."
    }
    UsernameCharacters = "username.characters" {
        zh: "用户名只能包含字母、数字、汉字以及 _、- 和 .。",
        en: "Use only letters, digits, Chinese characters, _, - and . in a username."
    }
    UsernameNotAllowed = "username.not_allowed" {
        zh: "此用户名不可使用，请另选一个。",
        en: "This username is not allowed. Please choose another."
    }
    UsernameTaken = "username.taken" {
        zh: "此用户名已被占用。",
        en: "This username is taken."
    }
    EmailInvalid = "email.invalid" {
        zh: "请输入有效的邮箱地址。",
        en: "Enter a valid email address."
    }
    EmailUnchanged = "email.unchanged" {
        zh: "这已经是你的邮箱地址。",
        en: "That is already your email address."
    }
    GuardianEmailRequired = "guardian_email.required" {
        zh: "未满 18 岁需要填写父母或监护人的邮箱地址。",
        en: "A guardian's email address is required for people under 18."
    }
    GuardianEmailSame = "guardian_email.same_as_account" {
        zh: "监护人的邮箱地址不能与你自己的相同。",
        en: "The guardian's email address must differ from your own."
    }
    GuardianEmailInvalid = "guardian_email.invalid" {
        zh: "请输入监护人的有效邮箱地址。",
        en: "Enter a valid email address for your guardian."
    }
    PasswordTooShort = "password.too_short" {
        zh: "请设置更安全的密码：至少 {min} 个字符。",
        en: "Choose a stronger password: use at least {min} characters."
    }
    PasswordTooLong = "password.too_long" {
        zh: "密码最多 {max} 个字符。",
        en: "Choose a shorter password: use at most {max} characters."
    }
    PasswordSameAsIdentity = "password.same_as_identity" {
        zh: "请设置更安全的密码：不要用用户名或邮箱作密码。",
        en: "Choose a stronger password: do not use your username or email as your password."
    }
    PasswordCommon = "password.common" {
        zh: "请设置更安全的密码：这是最常用的密码之一，攻击者会最先尝试。",
        en: "Choose a stronger password: this is one of the most commonly used passwords, which attackers try first."
    }
    TokenInvalid = "token.invalid" {
        zh: "此链接无效或已过期。",
        en: "This link is invalid or has expired."
    }
    ResetTokenInvalid = "token.reset_invalid" {
        zh: "此链接无效或已过期，请重新申请。",
        en: "This link is invalid or has expired. Please ask for a new one."
    }
    PolicyChanged = "policy.changed" {
        zh: "隐私政策已更新，请阅读最新版本。",
        en: "The privacy policy has changed. Please read the current version."
    }
    PolicyNotCurrent = "policy.not_current" {
        zh: "这不是当前的隐私政策版本。",
        en: "That is not the current policy version."
    }
    PolicyVersionShape = "policy.version_shape" {
        zh: "版本号须为 1 到 64 个字母、数字、'.'、'-' 或 '_'。",
        en: "Use 1 to 64 letters, digits, '.', '-' or '_' for the version."
    }
    PolicyVersionPublished = "policy.version_published" {
        zh: "此版本已经发布过。",
        en: "This version was published already."
    }
    PolicySummaryMissing = "policy.summary_missing" {
        zh: "请说明变更内容。",
        en: "Say what changed."
    }
    PolicyTextEmpty = "policy.text_empty" {
        zh: "政策正文为空。",
        en: "The policy text is empty."
    }
    PolicyPurposeCode = "policy.purpose_code" {
        zh: "用途代码只能使用 a-z、0-9 和 _。",
        en: "Purpose codes use a-z, 0-9 and _."
    }
    PolicyPurposeTexts = "policy.purpose_texts" {
        zh: "每项用途都需要标题和说明。",
        en: "Every purpose needs a title and a description."
    }
    PolicyPurposeSet = "policy.purpose_set" {
        zh: "用途设置有误：{detail}。",
        en: "The purposes do not fit together: {detail}."
    }
    PolicyTranslationPurposeTexts = "policy.translation_purpose_texts" {
        zh: "每项翻译后的用途都需要标题和说明。",
        en: "Every translated purpose needs a title and a description."
    }
    PolicyTranslationTexts = "policy.translation_texts" {
        zh: "翻译需要包含变更摘要和正文。",
        en: "A translation needs its summary and text."
    }
    PolicyTranslationRepeatsMain = "policy.translation_repeats_main" {
        zh: "翻译的语言与主语言相同。",
        en: "A translation repeats the main language."
    }
    ProductUpdateSubject = "product_update.subject_length" {
        zh: "主题须为 1 到 {max} 个字符。",
        en: "Use 1 to {max} characters for the subject."
    }
    ProductUpdateBody = "product_update.body_length" {
        zh: "正文须为 1 到 {max} 个字符。",
        en: "Use 1 to {max} characters for the body."
    }
    JustificationLength = "exception.justification_length" {
        zh: "请用 {min} 到 {max} 个字符说明依据。",
        en: "Explain the basis in {min} to {max} characters."
    }
    PurposeUnknown = "consent.unknown_purpose" {
        zh: "当前隐私政策中没有此用途。",
        en: "There is no such purpose in the current policy."
    }
    GrantedPurposeUnknown = "consent.unknown_granted_purpose" {
        zh: "其中一项用途不在当前隐私政策中。",
        en: "One of the purposes is not in the current policy."
    }
    PurposeRequired = "consent.required_purpose" {
        zh: "此用途是账号运行所必需的，无法撤回。如需停止全部处理，请注销账号。",
        en: "This purpose is needed to run your account and cannot be withdrawn. To stop all processing, delete your account."
    }
    ConsentRequired = "consent.required" {
        zh: "此功能需要先征得你的同意，你可以在隐私设置中授权。",
        en: "This feature needs your consent first. You can grant it in your privacy settings."
    }
    LastAdmin = "role.last_admin" {
        zh: "不能更改最后一位管理员的角色，请先任命另一位管理员。",
        en: "The last administrator cannot be given another role. Make someone else an administrator first."
    }
    TicketSubjectEmpty = "ticket.subject_empty" {
        zh: "请输入主题。",
        en: "Enter a subject."
    }
    TicketSubjectTooLong = "ticket.subject_too_long" {
        zh: "主题最多 {max} 个字符。",
        en: "A subject has at most {max} characters."
    }
    TicketBodyEmpty = "ticket.body_empty" {
        zh: "请输入内容。",
        en: "Enter a message."
    }
    TicketBodyTooLong = "ticket.body_too_long" {
        zh: "内容最多 {max} 个字符。",
        en: "A message has at most {max} characters."
    }
    TicketContactUsername = "ticket.contact_username" {
        zh: "名称最多 {max} 个字符，且不能包含控制字符。",
        en: "A name has at most {max} characters and no control characters."
    }
    TicketContactForGuestsOnly = "ticket.contact_for_guests_only" {
        zh: "已登录时会使用你账号的用户名和邮箱，此项请留空。",
        en: "Signed-in requests use your account's username and email; leave this out."
    }
    TicketReasonEmpty = "ticket.reason_empty" {
        zh: "请说明为何需要完整的邮箱地址。",
        en: "Say why you need the full email address."
    }
    TicketReasonTooLong = "ticket.reason_too_long" {
        zh: "原因最多 {max} 个字符。",
        en: "A reason has at most {max} characters."
    }
    TicketClosed = "ticket.closed" {
        zh: "此工单已关闭，请重新提交一个。",
        en: "This ticket is closed. Please file a new one."
    }
    TicketNoContactEmail = "ticket.no_contact_email" {
        zh: "此工单没有邮箱地址。",
        en: "This ticket has no email address."
    }
    NoticeMissingBlock = "notice.missing_block" {
        zh: "安全事件通知的每一部分都必须填写。",
        en: "Every part of an incident notice must be filled in."
    }
    NoticeNoAccountsListed = "notice.no_accounts_listed" {
        zh: "请列出受影响的账号，或选择 ALL_ACCOUNTS。",
        en: "List the affected accounts, or choose ALL_ACCOUNTS."
    }
    NoticeUnknownAccount = "notice.unknown_account" {
        zh: "所列账号中有一个不存在。",
        en: "One of the listed accounts does not exist."
    }
    ParseFailed = "graphql.parse_failed" {
        zh: "查询文本无法解析。",
        en: "The query text does not parse."
    }
    ValidationFailed = "graphql.validation_failed" {
        zh: "查询与接口定义不符。",
        en: "The query does not match the API's schema."
    }
    QueryTooLong = "graphql.query_too_long" {
        zh: "查询文本过长。",
        en: "The query text is too long."
    }
    TooManyAliases = "graphql.too_many_aliases" {
        zh: "一次请求中的别名字段过多。",
        en: "Too many aliased fields in one request."
    }
    OnePasswordCheck = "graphql.one_password_check" {
        zh: "一个请求只能校验一次密码：请将 changePassword 和 changeEmail 分别单独发送，且不要使用别名。",
        en: "One request may check the password once: send changePassword and changeEmail in requests of their own, without aliases."
    }
    TooDeep = "graphql.too_deep" {
        zh: "查询嵌套过深。",
        en: "The query is nested too deep."
    }
    JsonOnly = "request.json_only" {
        zh: "请以 application/json 格式发送 GraphQL 请求。",
        en: "Send GraphQL requests as application/json."
    }
    PostOnly = "request.post_only" {
        zh: "GraphQL 操作只接受以 application/json 格式 POST 发送。",
        en: "GraphQL operations are accepted only as POST with application/json."
    }
    BodyTooLarge = "request.body_too_large" {
        zh: "请求体过大。",
        en: "The request body is too large."
    }
    BodyNotJson = "request.not_json" {
        zh: "请求体不是有效的 JSON。",
        en: "The request body is not valid JSON."
    }
    Batched = "request.batched" {
        zh: "不接受批量请求：每个请求只发送一个操作。",
        en: "Batched requests are not accepted: send one operation per request."
    }
    NotGraphqlRequest = "request.not_graphql" {
        zh: "请求体须为 GraphQL 请求：{\"query\": \"...\", \"variables\": {...}}。",
        en: "The body must be a GraphQL request: {\"query\": \"...\", \"variables\": {...}}."
    }
}

/// A message ready to be put into words: a key and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    key: Key,
    args: Vec<(&'static str, String)>,
}

impl Message {
    /// A message without arguments.
    pub fn new(key: Key) -> Self {
        Self {
            key,
            args: Vec::new(),
        }
    }

    /// Fills the `{name}` placeholder.
    pub fn arg(mut self, name: &'static str, value: impl ToString) -> Self {
        self.args.push((name, value.to_string()));
        self
    }

    /// The catalog key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The message in `language`, its placeholders filled.
    pub fn render(&self, language: Language) -> String {
        let mut text = self.key.template(language).to_owned();
        for (name, value) in &self.args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

impl From<Key> for Message {
    fn from(key: Key) -> Self {
        Self::new(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The `{name}` placeholders of a template (a `{` followed by a
    /// lowercase name and `}`; JSON examples in a text are not one).
    fn placeholders(template: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            rest = &rest[start + 1..];
            if let Some(end) = rest.find('}') {
                let name = &rest[..end];
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    found.insert(name.to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn every_key_has_both_languages_with_the_same_placeholders() {
        for key in Key::ALL {
            let zh = key.template(Language::ZhCn);
            let en = key.template(Language::En);
            assert!(!zh.trim().is_empty() && !en.trim().is_empty(), "{key:?}");
            // The Chinese text is Chinese, not a copy of the English one.
            assert!(
                zh.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)),
                "{key:?} has no Chinese text: {zh}"
            );
            assert!(en.is_ascii(), "{key:?} English text: {en}");
            assert_ne!(zh, en, "{key:?}");
            assert_eq!(placeholders(zh), placeholders(en), "{key:?}");
        }
    }

    #[test]
    fn keys_are_unique_dotted_names() {
        let mut seen = BTreeSet::new();
        for key in Key::ALL {
            let name = key.as_str();
            assert!(seen.insert(name), "{name} twice");
            let (area, what) = name.split_once('.').expect("area.name");
            for part in [area, what] {
                assert!(
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn arguments_fill_their_placeholders_in_either_language() {
        let message = Message::new(Key::RateLimited).arg("seconds", 42);
        assert_eq!(
            message.render(Language::En),
            "Too many attempts. Please wait 42 seconds and try again."
        );
        assert_eq!(
            message.render(Language::ZhCn),
            "尝试次数过多，请 42 秒后再试。"
        );
        assert_eq!(message.key().as_str(), "common.rate_limited");
        // A text that shows JSON keeps its braces.
        assert!(
            Message::new(Key::NotGraphqlRequest)
                .render(Language::En)
                .contains("{\"query\"")
        );
    }
}
