//! Mail: templates, the outbox and the transport that delivers it.
//!
//! Rules this module keeps:
//! - Every email leaves through the `outbox` table ([`queue::enqueue`]),
//!   written with the caller's open transaction, so the mail exists if and
//!   only if the change that caused it was committed.
//! - Recipient, subject and bodies are stored encrypted, bound to the outbox
//!   row, and decrypted only by the sender ([`sender::OutboxSender`]) at the
//!   moment of sending.
//! - The sender claims rows before sending them, so several instances on one
//!   PostgreSQL never send the same row concurrently; on SQLite one process
//!   owns the jobs. A failed send is retried with exponential back-off: an SMTP
//!   outage delays mail and loses none.
//! - Logs and errors hold outbox ids, kinds and failure classes only: never an
//!   address, a subject, a body or a token.
//! - Templates are plain Rust functions, one per mail, in zh-CN and English
//!   ([`templates`]); links are built by the caller and only embedded here.

pub mod outbox;
pub mod queue;
pub mod sender;
pub mod templates;
pub mod transport;

pub use templates::RenderedMail;

#[cfg(test)]
#[path = "../../tests/support/smtp.rs"]
mod test_smtp;

/// A language a mail can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    /// Simplified Chinese, the platform's default.
    #[default]
    ZhCn,
    /// English.
    En,
}

impl Language {
    /// The BCP 47 tag of the language, as stored and sent in headers.
    pub fn as_tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }

    /// The supported language matching a tag, by its primary subtag (`en`,
    /// `en-US` → English); anything unknown falls back to zh-CN, the
    /// platform's default, so a mail is always written in some language.
    pub fn from_tag(tag: &str) -> Language {
        Self::supported(tag).unwrap_or_default()
    }

    /// The language a person or caller named: `zh-CN` (also `zh`,
    /// `zh-Hans`, `zh-Hans-CN`) or `en` (also `en-US` and other English
    /// regions), in any case; `None` for anything else, so a caller's
    /// unknown language is refused rather than replaced.
    pub fn parse(tag: &str) -> Option<Language> {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        if tag == "en" || tag.starts_with("en-") {
            Some(Language::En)
        } else if matches!(tag.as_str(), "zh" | "zh-cn" | "zh-hans" | "zh-hans-cn") {
            Some(Language::ZhCn)
        } else {
            None
        }
    }

    /// Picks the supported language with the highest `q` from an HTTP
    /// `Accept-Language` header (earlier entries win ties); zh-CN when none
    /// is supported or the header is malformed.
    pub fn from_accept_language(header: &str) -> Language {
        Self::preferred(header).unwrap_or_default()
    }

    /// The supported language with the highest `q` in an `Accept-Language`
    /// header, or `None` when it names none of ours.
    pub fn preferred(header: &str) -> Option<Language> {
        let mut best: Option<(u16, Language)> = None;
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let mut quality = 1000_u16;
            for param in parts {
                let param = param.trim();
                if let Some(value) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                {
                    quality = parse_quality(value.trim()).unwrap_or(0);
                }
            }
            // q=0 means "not acceptable"; it never wins.
            if quality == 0 {
                continue;
            }
            let Some(language) = Self::supported(tag) else {
                continue;
            };
            if best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, language));
            }
        }
        best.map(|(_, language)| language)
    }

    /// The supported language for a tag, or `None` when it is not one of ours.
    fn supported(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Some(Language::En)
        } else if primary.eq_ignore_ascii_case("zh") {
            Some(Language::ZhCn)
        } else {
            None
        }
    }
}

/// Parses an HTTP quality value (`0`, `0.5`, `1.000`) into thousandths, so
/// comparisons need no floating point.
fn parse_quality(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = match whole {
        "0" => {
            let padded = format!("{fraction:0<3}");
            padded.parse::<u16>().ok()?
        }
        "1" if fraction.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(thousandths)
}

/// Everything that can go wrong while queueing or sending mail.
///
/// Messages never carry addresses, subjects, bodies or tokens, so the whole
/// error may be logged; none of it is meant for API clients.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The database refused a read or write.
    #[error("database error in the mail outbox: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A field could not be encrypted or decrypted.
    #[error("mail field encryption failed: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The recipient is not a valid email address (which one is not said).
    #[error("the recipient is not a valid email address")]
    Address,
    /// The message could not be assembled from its parts.
    #[error("the message could not be built: {0}")]
    Message(&'static str),
    /// The transport could not be set up; the class says why, without the
    /// URL (which may hold credentials).
    #[error("mail transport unusable: {0}")]
    Transport(String),
    /// The folder for file mail could not be created.
    #[error("mail folder {}: {source}", path.display())]
    MailDir {
        /// The folder involved (a setting, not personal data).
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_fall_back_to_chinese() {
        assert_eq!(Language::default(), Language::ZhCn);
        assert_eq!(Language::ZhCn.as_tag(), "zh-CN");
        assert_eq!(Language::En.as_tag(), "en");
        assert_eq!(Language::from_tag("en"), Language::En);
        assert_eq!(Language::from_tag("en-US"), Language::En);
        assert_eq!(Language::from_tag("EN_gb"), Language::En);
        assert_eq!(Language::from_tag("zh"), Language::ZhCn);
        assert_eq!(Language::from_tag("zh-TW"), Language::ZhCn);
        assert_eq!(Language::from_tag("zh-CN"), Language::ZhCn);
        assert_eq!(Language::from_tag("fr"), Language::ZhCn);
        assert_eq!(Language::from_tag(""), Language::ZhCn);
        assert_eq!(Language::from_tag("english"), Language::ZhCn);
        // Named by a caller: only ours, never a fallback.
        assert_eq!(Language::parse("zh-CN"), Some(Language::ZhCn));
        assert_eq!(Language::parse("ZH_hans"), Some(Language::ZhCn));
        assert_eq!(Language::parse("en-GB"), Some(Language::En));
        assert_eq!(Language::parse("fr"), None);
        assert_eq!(Language::parse("zh-TW"), None);
        assert_eq!(Language::parse("english"), None);
        assert_eq!(Language::parse(""), None);
        assert_eq!(Language::preferred("fr, de;q=0.5"), None);
        assert_eq!(Language::preferred("fr, en;q=0.5"), Some(Language::En));
    }

    #[test]
    fn accept_language_picks_the_highest_supported_quality() {
        assert_eq!(
            Language::from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8"),
            Language::En
        );
        assert_eq!(
            Language::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Language::ZhCn
        );
        assert_eq!(
            Language::from_accept_language("fr-FR, fr;q=0.9, en;q=0.5, zh;q=0.4"),
            Language::En
        );
        assert_eq!(
            Language::from_accept_language("zh;q=0.3, en;q=0.7"),
            Language::En
        );
        assert_eq!(Language::from_accept_language("en;q=0, fr"), Language::ZhCn);
        assert_eq!(Language::from_accept_language("de, fr"), Language::ZhCn);
        assert_eq!(Language::from_accept_language(""), Language::ZhCn);
        assert_eq!(Language::from_accept_language("*"), Language::ZhCn);
        assert_eq!(
            Language::from_accept_language("en;q=banana, zh;q=0.1"),
            Language::ZhCn
        );
        // Equal quality: the first listed wins.
        assert_eq!(Language::from_accept_language("en, zh"), Language::En);
    }

    #[test]
    fn quality_values_parse_in_thousandths() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("1.5"), None);
        assert_eq!(parse_quality("0.1234"), None);
        assert_eq!(parse_quality("2"), None);
    }

    #[test]
    fn rendered_mail_debug_hides_content() {
        let mail = RenderedMail {
            subject: "secret subject".into(),
            text: "token abc".into(),
            html: None,
            draft: None,
        };
        let printed = format!("{mail:?}");
        assert!(!printed.contains("secret"));
        assert!(!printed.contains("abc"));
    }
}
