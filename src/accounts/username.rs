//! Usernames: shape and normal form.
//!
//! The normal form (NFKC, case folded, zero-width characters and the
//! separators `_ - .` and white space removed) is what uniqueness and the
//! blind index are computed over, so `Zhang_San`, `zhangsan` and
//! `ＺｈａｎｇＳａｎ` are one name.
//!
//! What a username may say (no insults, threats or obscenities, no staff
//! names) is decided by the username policy in `username_policy`, which
//! matches over a looser form built on this one.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Fewest characters in the normal form, a Chinese character counting two
/// (see [`min_length_weight`]).
pub const MIN_USERNAME_CHARS: usize = 3;
/// Most characters in the normal form.
pub const MAX_USERNAME_CHARS: usize = 32;

/// A username of acceptable shape. `Debug` redacts it (it is personal data).
#[derive(Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

/// Why a username has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameShapeError {
    /// Too short or too long after normalisation.
    #[error(
        "a username has {MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} characters; a Chinese character counts as two toward the minimum"
    )]
    Length,
    /// A character outside letters, digits, CJK, `_`, `-` and `.`.
    #[error("use only letters, digits, Chinese characters, `_`, `-` and `.`")]
    Characters,
}

/// Characters removed before anything else: invisible ones that would let
/// two names look alike.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
    )
}

/// CJK ideographs (Chinese characters): the unified blocks and their
/// extensions, and the compatibility block.
pub(crate) fn is_han(c: char) -> bool {
    matches!(
        c,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}'
    )
}

/// What a character counts toward the minimum length: two for a Chinese
/// character, which is a syllable and often a whole word (王芳 and 小雨
/// are ordinary names), one for anything else. Only Chinese characters
/// count double because only Chinese has word lists that stop the short
/// insults a longer minimum used to stop (`offensive-zh-tokens.txt`).
pub fn min_length_weight(c: char) -> usize {
    if is_han(c) { 2 } else { 1 }
}

/// The separators a username may contain (`_ - .`) and white space: left out
/// of the normal form, and word boundaries for the username policy.
pub(crate) fn is_separator(c: char) -> bool {
    c == '_' || c == '-' || c == '.' || c.is_whitespace()
}

/// Letters (any script, CJK included), digits and the three separators.
fn is_allowed(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// The normal form of any text: NFKC (full-width to half-width among
/// others), case folded, invisible characters and separators removed.
pub fn canonical(text: &str) -> String {
    text.nfkc()
        .filter(|c| !is_invisible(*c))
        .flat_map(char::to_lowercase)
        .filter(|c| !is_separator(*c))
        .collect()
}

impl Username {
    /// Checks the shape of a username as typed. The stored, displayed form
    /// is the NFKC form with invisible characters removed and trimmed.
    pub fn parse(raw: &str) -> Result<Self, UsernameShapeError> {
        let display: String = raw.nfkc().filter(|c| !is_invisible(*c)).collect();
        let display = display.trim().to_owned();
        if !display.chars().all(is_allowed) {
            return Err(UsernameShapeError::Characters);
        }
        let canonical = canonical(&display);
        let len = canonical.chars().count();
        let weight: usize = canonical.chars().map(min_length_weight).sum();
        // Counting up only for the minimum keeps every name that was valid
        // valid: no name gets longer than the maximum by it.
        if weight < MIN_USERNAME_CHARS
            || len > MAX_USERNAME_CHARS
            || display.chars().count() > MAX_USERNAME_CHARS * 2
        {
            return Err(UsernameShapeError::Length);
        }
        Ok(Self { display, canonical })
    }

    /// The name as shown to people.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The normal form for uniqueness and the blind index.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Username(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_folds_width_case_and_separators() {
        let a = Username::parse("Zhang_San").unwrap();
        let b = Username::parse("ｚｈａｎｇ．ｓａｎ").unwrap();
        let c = Username::parse("zhang\u{200B}san").unwrap();
        assert_eq!(a.canonical(), "zhangsan");
        assert_eq!(b.canonical(), "zhangsan");
        assert_eq!(c.canonical(), "zhangsan");
        assert_eq!(c.as_str(), "zhangsan");
    }

    #[test]
    fn two_chinese_characters_are_enough_and_one_is_not() {
        for name in ["王芳", "小雨", "張三", "王a", "李1"] {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
        for name in ["王", "芳_", "ab", "a1"] {
            assert_eq!(
                Username::parse(name).err(),
                Some(UsernameShapeError::Length),
                "{name}"
            );
        }
        // The maximum still counts characters: 32 Chinese characters fit.
        assert!(Username::parse(&"王".repeat(32)).is_ok());
        assert_eq!(
            Username::parse(&"王".repeat(33)).err(),
            Some(UsernameShapeError::Length)
        );
    }

    #[test]
    fn every_name_of_three_characters_or_more_stays_valid() {
        for name in ["abc", "a_b_c", "张三丰", "x12", &"x".repeat(32)] {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn shape_rules() {
        assert!(Username::parse("张三丰").is_ok());
        assert!(Username::parse("li.si-2026").is_ok());
        assert_eq!(
            Username::parse("ab").err(),
            Some(UsernameShapeError::Length)
        );
        assert_eq!(
            Username::parse("a_b").err(),
            Some(UsernameShapeError::Length)
        );
        assert_eq!(
            Username::parse(&"x".repeat(33)).err(),
            Some(UsernameShapeError::Length)
        );
        assert_eq!(
            Username::parse("bad name").err(),
            Some(UsernameShapeError::Characters)
        );
        assert_eq!(
            Username::parse("who@where").err(),
            Some(UsernameShapeError::Characters)
        );
        assert_eq!(
            Username::parse("emoji😀x").err(),
            Some(UsernameShapeError::Characters)
        );
    }
}
