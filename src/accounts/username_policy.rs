//! The username policy: what a username may say.
//!
//! Rules:
//! - A username may not contain an insulting, threatening, obscene or
//!   abusive term, in English or Chinese (simplified and traditional), nor
//!   pose as the platform's staff (admin, support, official, 客服, 管理员 …).
//!   The lists are data files under `data/usernames/`, embedded in the
//!   binary, and the operator can add terms through a setting
//!   ([`UsernamePolicy::with_extra_terms`]).
//! - Matching is done on a skeleton, not on the name as typed: the normal
//!   form of [`canonical`] (NFKC, so full width becomes half width; case
//!   folded; zero-width characters and the separators `_ - .` removed), then
//!   accents dropped, Cyrillic and Greek look-alikes read as Latin letters,
//!   `@ $ ! |` read as `a s i i`, `l` read as `i` (so that `1`, `l` and `i`
//!   are one letter for names and terms alike), and digits that stand next
//!   to a Latin letter read as the letters they imitate (`0 1 3 4 5 7` as
//!   `o i e a s t`) where they stand for letters: inside a word or at its
//!   start, with a letter after them in the same word (`sh1t`, `5hit`). A
//!   number that ends a word or stands alone stays a number, because people
//!   add numbers to names all the time: `user_2455` is not `ass`, `shi_7`
//!   (the surname Shi) is not `shit`, and `nazi1488` keeps the word `nazi`. A letter typed three times or more matches the same
//!   letter typed fewer times in a term, so `fuuuck` is `fuck`; a doubled
//!   letter does not, because English doubles letters all the time
//!   (`rapped` is not `raped`, `Pratt` is not `prat`, `tilt` — `tiit` in the
//!   skeleton — is not `tit`).
//! - Most terms match anywhere in the skeleton. Short or ambiguous English
//!   terms (`ass`, `cum`, `tit`, `sex`, `sb` …) match only as a whole word of
//!   the name (the name split at separators, at changes of case as in
//!   `BigAss`, between Chinese and other letters, and at digits left as
//!   digits) or as the whole name: anything else would refuse `classic`,
//!   `document`, `title`, `Sussex` and countless ordinary names.
//! - A term that lies inside an allowed word (`data/usernames/allowed.txt`:
//!   Scunthorpe, cockpit, grape, therapist …) is ignored there. A Chinese
//!   term is ignored where it merely overlaps an allowed word, because
//!   Chinese runs words together and a term often straddles two of them
//!   (体操|你好 holds 操你).
//! - Staff accounts created by the operator skip only the reserved names
//!   ([`UsernamePolicy::check_offensive_only`]); nobody skips the offensive terms.
//!
//! No list is complete, and this one is meant to stop the obvious; people
//! can still report a name, and staff can change it.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::username::{Username, canonical, is_han, is_separator};

const OFFENSIVE_EN: &str = include_str!("../../data/usernames/offensive-en.txt");
const OFFENSIVE_EN_TOKENS: &str = include_str!("../../data/usernames/offensive-en-tokens.txt");
const OFFENSIVE_ZH_HANS: &str = include_str!("../../data/usernames/offensive-zh-hans.txt");
const OFFENSIVE_ZH_HANT: &str = include_str!("../../data/usernames/offensive-zh-hant.txt");
const OFFENSIVE_ZH_TOKENS: &str = include_str!("../../data/usernames/offensive-zh-tokens.txt");
const HATE_EN: &str = include_str!("../../data/usernames/hate-en.txt");
const HATE_EN_TOKENS: &str = include_str!("../../data/usernames/hate-en-tokens.txt");
const HATE_ZH: &str = include_str!("../../data/usernames/hate-zh.txt");
const RESERVED: &str = include_str!("../../data/usernames/reserved.txt");
const RESERVED_TOKENS: &str = include_str!("../../data/usernames/reserved-tokens.txt");
const ALLOWED: &str = include_str!("../../data/usernames/allowed.txt");

/// Operator terms without Chinese characters and with at most this many
/// letters in their skeleton match only as whole words: a short term matched
/// inside words refuses far more innocent names than it catches.
pub const SHORT_TERM_CHARS: usize = 4;

/// Why the policy refused a username. The message is shown to the person and
/// deliberately does not quote the term that matched: quoting it would teach
/// how to get round the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// The name contains an insulting, threatening, obscene or abusive term.
    #[error(
        "this username contains an insulting, threatening, obscene or abusive term; choose another"
    )]
    Offensive,
    /// The name is, contains or imitates a name kept for the platform.
    #[error("this username is kept for the platform and its staff; choose another")]
    Reserved,
}

/// One letter of a skeleton and how many times it is repeated there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    letter: char,
    count: usize,
    /// Whether any of it was typed as a letter, not as a digit read as one:
    /// a match made only of digits read as letters is a number, not a word
    /// (`2455` in `2455_user` is not `ass`).
    lettered: bool,
}

/// A run in a name's skeleton, with where it starts (in characters), so that
/// a match can be compared with the allowed words around it.
#[derive(Debug, Clone, Copy)]
struct PlacedRun {
    run: Run,
    start: usize,
}

/// A half-open range of characters in a name's skeleton.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn within(self, outer: Span) -> bool {
        outer.start <= self.start && self.end <= outer.end
    }

    fn overlaps(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A term or allowed word, as the runs of its skeleton.
#[derive(Debug, Clone)]
struct Pattern {
    runs: Vec<Run>,
    /// Whether it holds Chinese characters: such terms are excused by
    /// overlapping an allowed word, others only by lying inside one.
    han: bool,
}

impl Pattern {
    /// `None` when nothing is left of the term after normalisation: an empty
    /// term would match every name.
    fn new(term: &str) -> Option<Self> {
        let skeleton = skeleton(term);
        if skeleton.is_empty() {
            return None;
        }
        let marked: Vec<(char, bool)> = skeleton.chars().map(|c| (c, true)).collect();
        Some(Self {
            han: skeleton.chars().any(is_han),
            runs: runs(&marked),
        })
    }

    fn letters(&self) -> usize {
        self.runs.iter().map(|run| run.count).sum()
    }

    /// Every place the pattern occurs in a name. The first and last runs of
    /// the pattern may sit at the edge of a longer run in the name (`misslut`
    /// holds `slut`); the runs between them must match as [`repeats_match`]
    /// says.
    fn occurrences<'a>(&'a self, name: &'a [PlacedRun]) -> impl Iterator<Item = Span> + 'a {
        let width = self.runs.len();
        name.windows(width.max(1))
            .filter(move |window| {
                width > 0
                    && window.iter().any(|placed| placed.run.lettered)
                    && window
                        .iter()
                        .zip(&self.runs)
                        .enumerate()
                        .all(|(at, (placed, run))| {
                            let edge = at == 0 || at + 1 == width;
                            placed.run.letter == run.letter
                                && (repeats_match(placed.run.count, run.count)
                                    || (edge && placed.run.count > run.count))
                        })
            })
            .filter_map(|window| {
                let first = window.first()?;
                let last = window.last()?;
                Some(Span {
                    start: first.start,
                    end: last.start + last.run.count,
                })
            })
    }

    /// Whether a whole word is this pattern.
    fn is_word(&self, word: &[Run]) -> bool {
        word.len() == self.runs.len()
            && word.iter().zip(&self.runs).all(|(found, wanted)| {
                found.letter == wanted.letter && repeats_match(found.count, wanted.count)
            })
    }
}

/// Whether a letter typed `found` times in a name stands for the same letter
/// typed `wanted` times in a term: the same count, or stretched to three or
/// more (`fuuuck`, `asss`). A doubled letter is ordinary spelling, not
/// stretching, so it matches only a double.
fn repeats_match(found: usize, wanted: usize) -> bool {
    found == wanted || (found > wanted && found >= 3)
}

/// Terms of one kind (offensive or reserved), by how they match.
#[derive(Debug, Clone, Default)]
struct TermList {
    /// Terms that match anywhere in the skeleton.
    anywhere: Vec<Pattern>,
    /// Terms that match only a whole word or the whole name.
    whole_word: Vec<Pattern>,
}

impl TermList {
    fn add_anywhere(&mut self, list: &str) {
        self.anywhere
            .extend(list_entries(list).filter_map(Pattern::new));
    }

    fn add_whole_word(&mut self, list: &str) {
        self.whole_word
            .extend(list_entries(list).filter_map(Pattern::new));
    }

    /// Adds operator terms, placing each by [`SHORT_TERM_CHARS`].
    fn add_operator_terms(&mut self, terms: &[String]) {
        for pattern in terms.iter().filter_map(|term| Pattern::new(term)) {
            if !pattern.han && pattern.letters() <= SHORT_TERM_CHARS {
                self.whole_word.push(pattern);
            } else {
                self.anywhere.push(pattern);
            }
        }
    }

    fn len(&self) -> usize {
        self.anywhere.len() + self.whole_word.len()
    }

    fn matches(&self, name: &NameForms, allowed: &[Pattern]) -> bool {
        let allowed_spans: Vec<Span> = allowed
            .iter()
            .flat_map(|word| word.occurrences(&name.skeleton))
            .collect();
        let anywhere = self.anywhere.iter().any(|term| {
            term.occurrences(&name.skeleton).any(|found| {
                !allowed_spans.iter().any(|allowed| {
                    if term.han {
                        found.overlaps(*allowed)
                    } else {
                        found.within(*allowed)
                    }
                })
            })
        });
        anywhere
            || self
                .whole_word
                .iter()
                .any(|term| name.words.iter().any(|word| term.is_word(word)))
    }
}

/// What the policy matches a username by: the runs of its whole skeleton,
/// and the runs of each of its words.
struct NameForms {
    skeleton: Vec<PlacedRun>,
    words: Vec<Vec<Run>>,
}

impl NameForms {
    fn of(display: &str) -> Self {
        let whole = skeleton_marked(display);
        let mut placed = Vec::new();
        let mut start = 0;
        for run in runs(&whole) {
            placed.push(PlacedRun { run, start });
            start += run.count;
        }
        let words = words(display)
            .iter()
            .map(|word| skeleton_marked(word))
            .chain(std::iter::once(whole))
            .flat_map(|skeleton| {
                // Digits still in a skeleton were not read as letters, so
                // they separate words: `ass69` holds the word `ass`. A
                // piece made only of digits read as letters is a number.
                skeleton
                    .split(|(c, _)| c.is_ascii_digit())
                    .filter(|piece| piece.iter().any(|(_, lettered)| *lettered))
                    .map(runs)
                    .collect::<Vec<_>>()
            })
            .collect();
        Self {
            skeleton: placed,
            words,
        }
    }
}

/// The username policy: offensive terms, reserved names and allowed words,
/// each already reduced to skeletons.
#[derive(Clone)]
pub struct UsernamePolicy {
    offensive: TermList,
    reserved: TermList,
    allowed: Vec<Pattern>,
}

impl UsernamePolicy {
    /// The lists shipped with Custos (`data/usernames/`).
    pub fn shipped() -> Self {
        let mut offensive = TermList::default();
        offensive.add_anywhere(OFFENSIVE_EN);
        offensive.add_anywhere(OFFENSIVE_ZH_HANS);
        offensive.add_anywhere(OFFENSIVE_ZH_HANT);
        offensive.add_whole_word(OFFENSIVE_EN_TOKENS);
        offensive.add_whole_word(OFFENSIVE_ZH_TOKENS);
        // Hate and extremist terms are a category of their own in the
        // files, refused like every other offensive term.
        offensive.add_anywhere(HATE_EN);
        offensive.add_anywhere(HATE_ZH);
        offensive.add_whole_word(HATE_EN_TOKENS);
        let mut reserved = TermList::default();
        reserved.add_anywhere(RESERVED);
        reserved.add_whole_word(RESERVED_TOKENS);
        let allowed = list_entries(ALLOWED).filter_map(Pattern::new).collect();
        Self {
            offensive,
            reserved,
            allowed,
        }
    }

    /// The shipped lists plus the operator's own terms. Terms go through the
    /// same normalisation as names, so `Bad Word`, `bad_word` and `b4dword`
    /// are one term. A term without Chinese characters and of at most
    /// [`SHORT_TERM_CHARS`] letters matches only as a whole word of a name;
    /// every other term matches anywhere in it. Blank terms are ignored.
    pub fn with_extra_terms(extra_blocked: &[String], extra_reserved: &[String]) -> Self {
        let mut policy = Self::shipped();
        policy.offensive.add_operator_terms(extra_blocked);
        policy.reserved.add_operator_terms(extra_reserved);
        policy
    }

    /// Checks a username for people signing up or renaming themselves:
    /// offensive terms first, then reserved names.
    pub fn check(&self, username: &Username) -> Result<(), PolicyViolation> {
        self.check_text(username.as_str(), true)
    }

    /// Checks a username for a staff account that the operator creates: it
    /// may use a reserved name (`admin`, `客服`), but never an offensive term.
    pub fn check_offensive_only(&self, username: &Username) -> Result<(), PolicyViolation> {
        self.check_text(username.as_str(), false)
    }

    fn check_text(&self, display: &str, include_reserved: bool) -> Result<(), PolicyViolation> {
        let name = NameForms::of(display);
        if self.offensive.matches(&name, &self.allowed) {
            return Err(PolicyViolation::Offensive);
        }
        if include_reserved && self.reserved.matches(&name, &self.allowed) {
            return Err(PolicyViolation::Reserved);
        }
        Ok(())
    }
}

impl Default for UsernamePolicy {
    fn default() -> Self {
        Self::shipped()
    }
}

impl fmt::Debug for UsernamePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only: the terms themselves are not for logs.
        f.debug_struct("UsernamePolicy")
            .field("offensive_terms", &self.offensive.len())
            .field("reserved_names", &self.reserved.len())
            .field("allowed_words", &self.allowed.len())
            .finish()
    }
}

/// [`UsernamePolicy::check`] as a function.
pub fn check_username(policy: &UsernamePolicy, username: &Username) -> Result<(), PolicyViolation> {
    policy.check(username)
}

/// [`UsernamePolicy::check_offensive_only`] as a function.
pub fn check_offensive_only(
    policy: &UsernamePolicy,
    username: &Username,
) -> Result<(), PolicyViolation> {
    policy.check_offensive_only(username)
}

/// The form names and terms are matched in: [`canonical`], then accents
/// dropped, look-alike letters and symbols read as the Latin letters they
/// imitate, `l` read as `i`, anything but letters and digits removed, and
/// digits next to a Latin letter read as letters (see the module notes).
pub fn skeleton(text: &str) -> String {
    skeleton_marked(text).into_iter().map(|(c, _)| c).collect()
}

/// The skeleton with, for each character, whether it was typed as a letter
/// (true) or as a digit (false, whether read as a letter or left a digit).
fn skeleton_marked(text: &str) -> Vec<(char, bool)> {
    // Separators end a word: they are kept as a mark until the digits are
    // read (`shi_7_tao` holds a number between two words, not `shit`), and
    // left out of the skeleton like every other separator.
    let marked: String = text
        .nfkc()
        .map(|c| if is_separator(c) { WORD_BREAK } else { c })
        .collect();
    let letters: Vec<char> = canonical(&marked)
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(look_alike)
        .filter(|c| c.is_alphanumeric() || *c == WORD_BREAK)
        .collect();
    let mut skeleton = Vec::with_capacity(letters.len());
    let mut at = 0;
    while let Some(&c) = letters.get(at) {
        if c == WORD_BREAK {
            at += 1;
            continue;
        }
        if !c.is_ascii_digit() {
            skeleton.push((c, true));
            at += 1;
            continue;
        }
        let start = at;
        while letters.get(at).is_some_and(char::is_ascii_digit) {
            at += 1;
        }
        let after = letters.get(at).is_some_and(char::is_ascii_alphabetic);
        // Digits stand for letters only inside a word or at its start,
        // with a letter after them (`sh1t`, `5hit`); a number that ends a
        // word is a number (`user_2455`, `shi_7`, `zhang2717`), and stays
        // a digit that separates the word before it (`nazi1488` holds the
        // word `nazi`).
        let read_as_letters = after;
        for &digit in letters.get(start..at).unwrap_or_default() {
            let read = if read_as_letters {
                digit_as_letter(digit)
            } else {
                digit
            };
            skeleton.push((read, false));
        }
    }
    skeleton
}

/// Stands for a separator while a skeleton is made: not a letter, digit or
/// separator, and left alone by the normal form.
const WORD_BREAK: char = '/';

/// The letter a digit imitates in "leet" spelling, or the digit itself.
fn digit_as_letter(digit: char) -> char {
    match digit {
        '0' => 'o',
        // `1` imitates both `i` and `l`; `l` is read as `i` everywhere.
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        other => other,
    }
}

/// Reads a lower-case character as the Latin letter it looks like. Symbols
/// are mapped even though the shape check refuses them in usernames, so the
/// skeleton stays right for any text (operator terms included).
fn look_alike(c: char) -> char {
    match c {
        // `l`, `1`, `i`, `|` and `!` are one letter.
        'l' | '|' | '!' => 'i',
        '@' => 'a',
        '$' => 's',
        // Cyrillic.
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        'і' | 'ї' | 'ӏ' => 'i',
        'ј' => 'j',
        'ԁ' => 'd',
        // Greek.
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        other => other,
    }
}

/// Splits a name as typed into words: at separators and other symbols, at a
/// change from lower to upper case (`BigAss`), before the last capital of a
/// run of capitals followed by a lower-case letter (`SBMaster`), and where
/// Chinese meets other letters (`我是sb`).
fn words(display: &str) -> Vec<String> {
    let chars: Vec<char> = display.nfkc().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (at, &c) in chars.iter().enumerate() {
        if is_separator(c) || !(c.is_alphanumeric() || matches!(c, '@' | '$' | '!' | '|')) {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            continue;
        }
        let previous = at.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let next = chars.get(at + 1).copied();
        let boundary = previous.is_some_and(|p| {
            is_han(p) != is_han(c)
                || (p.is_lowercase() && c.is_uppercase())
                || (p.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
        });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// The runs of a marked skeleton: each letter with how often it repeats,
/// and whether any of it was typed as a letter.
fn runs(skeleton: &[(char, bool)]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &(letter, lettered) in skeleton {
        match runs.last_mut() {
            Some(run) if run.letter == letter => {
                run.count += 1;
                run.lettered |= lettered;
            }
            _ => runs.push(Run {
                letter,
                count: 1,
                lettered,
            }),
        }
    }
    runs
}

/// The terms of a list file: one a line, `#` to the end of a line is a
/// comment, blank lines skipped.
fn list_entries(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> UsernamePolicy {
        UsernamePolicy::shipped()
    }

    /// The verdict on a name as the service would reach it: through the
    /// shape check. Names the shape check refuses (too short, like most
    /// two-character Chinese terms, or with symbols like `$`) are still run
    /// through the policy, which must refuse them on its own: it also
    /// guards renames and operator-created names, and the shape rules may
    /// change.
    fn verdict(policy: &UsernamePolicy, raw: &str) -> Result<(), PolicyViolation> {
        match Username::parse(raw) {
            Ok(name) => policy.check(&name),
            Err(_) => policy.check_text(raw, true),
        }
    }

    /// Checks every name and lists all the misses together, so that one run
    /// shows every one of them.
    fn assert_all(policy: &UsernamePolicy, names: &[&str], expected: Result<(), PolicyViolation>) {
        let wrong: Vec<String> = names
            .iter()
            .filter_map(|raw| {
                if expected.is_ok() {
                    // Accepted names must also be of acceptable shape, or
                    // the test would prove nothing.
                    if let Err(shape) = Username::parse(raw) {
                        return Some(format!("{raw:?}: refused by the shape check ({shape})"));
                    }
                }
                let got = verdict(policy, raw);
                (got != expected).then(|| format!("{raw:?}: got {got:?}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "expected {expected:?}:\n{}",
            wrong.join("\n")
        );
    }

    const OFFENSIVE: &[&str] = &[
        // English, plain and with separators.
        "fuck",
        "fuckyou",
        "FuckYou",
        "fuck_you_all",
        "f.u.c.k",
        "f-u-c-k-e-r",
        "motherfucker",
        "shit_head",
        "bullshit99",
        "cunt",
        "bitch",
        "son_of_a_bitch",
        "asshole",
        "ass_hole",
        "dumbass",
        "jackass_jim",
        "dickhead",
        "cocksucker",
        "twat",
        "wanker",
        "slut",
        "whore",
        "bastard",
        "idiot_king",
        "moron",
        "retard",
        "scumbag",
        "douchebag",
        "pussy",
        "big_dick",
        "porn_star",
        "blowjob",
        "gangbang",
        "dildo",
        "rapist",
        "rape_you",
        "pedophile",
        "nigger",
        "nigga",
        "faggot",
        "tranny",
        "wetback",
        "killyou",
        "kill_you",
        "i_will_kill_you",
        "killyourself",
        "go_hang_yourself",
        // Whole-word short terms.
        "ass",
        "big_ass",
        "BigAss",
        "ass69",
        "a.s.s",
        "cum",
        "tit",
        "tits",
        "sex",
        "anal",
        "fag",
        "kys",
        "stfu",
        "sb",
        "SB",
        "sb_123",
        "我是sb",
        "cnm",
        "tmd",
        // Digit and letter swaps.
        "fuk",
        "sh1t",
        "5h1t",
        "$hit_is_fine",
        "b1tch",
        "b!tch",
        "k1ll_y0u",
        "ki11you",
        "a55hole",
        "d1ckhead",
        "wh0re",
        "n1gger",
        "f4gg0t",
        "r4pist",
        "1d10t",
        // Elongated letters.
        "fuuuuck",
        "shiiiit",
        "biiitch",
        // Full width and zero width.
        "ｆｕｃｋ",
        "ＦＵＣＫ＿ｙｏｕ",
        "ｓｈｉｔ",
        "fu\u{200B}ck",
        "sh\u{200D}it",
        "傻\u{200B}逼",
        // Accents and look-alike scripts.
        "fück",
        "shìt",
        "аsshole",
        // Chinese, simplified.
        "傻逼",
        "傻B",
        "傻Ｂ",
        "傻b123",
        "大傻逼",
        "你是傻逼",
        "煞笔",
        "沙比",
        "二逼青年",
        "操你",
        "操你妈",
        "草泥马",
        "肏",
        "日你妈",
        "妈的",
        "他妈的",
        "你妈死了",
        "贱人",
        "贱货",
        "婊子",
        "绿茶婊",
        "骚货",
        "鸡巴",
        "滚蛋",
        "去死",
        "去死吧你",
        "杀了你",
        "砍死你",
        "杀你全家",
        "王八蛋",
        "狗日的",
        "畜生",
        "人渣",
        "脑残",
        "智障",
        "白痴",
        "强奸",
        "约炮",
        "黑鬼",
        "支那",
        "caonima",
        "nmsl",
        "tamade",
        // Chinese, traditional, Cantonese and Taiwanese.
        "幹你娘",
        "干你娘",
        "賤人",
        "賤貨",
        "婊",
        "操你媽",
        "他媽的",
        "媽的",
        "滾蛋",
        "殺了你",
        "腦殘",
        "白癡",
        "強姦",
        "雞巴",
        "屌你老母",
        "仆街",
        "撲街",
        "冚家鏟",
        "機掰",
        "閪",
        // Full width Chinese mixed with Latin.
        "ｓｂ＿客人",
        "傻逼_01",
    ];

    const RESERVED_NAMES: &[&str] = &[
        "admin",
        "Admin",
        "ADMIN",
        "Adm1n",
        "4dmin",
        "@dmin",
        "ａｄｍｉｎ",
        "adm\u{200B}in",
        "аdmin",
        "administrator",
        "admin_official",
        "the_admin",
        "admiiin",
        "root",
        "r00t",
        "Root_2026",
        "support",
        "support-team",
        "supp0rt",
        "customer.support",
        "official",
        "0fficial",
        "offic1al",
        "0ff1c1al",
        "staff",
        "st4ff",
        "system",
        "syst3m",
        "moderator",
        "mod",
        "mod.jane",
        "security",
        "security_team",
        "help",
        "help_desk",
        "helpdesk",
        "service",
        "webmaster",
        "noreply",
        "custos",
        "custos_team",
        "客服",
        "客服_01",
        "客服０１",
        "客服中心",
        "官方客服",
        "管理员",
        "管理員",
        "超级管理员",
        "官方",
        "官方账号",
        "系统",
        "系統",
        "系统通知",
        "版主",
        "站长",
        "站長",
        "工作人员",
        "客\u{200B}服",
        "ｓｕｐｐｏｒｔ",
    ];

    const ACCEPTED: &[&str] = &[
        // Ordinary names.
        "zhangsan",
        "Zhang_San",
        "li.si-2026",
        "alice",
        "bob_smith",
        "carol99",
        "dave.k",
        "eve_online",
        "frank_ocean",
        "grace.hopper",
        "heidi",
        "ivan_petrov",
        "judy2026",
        "mallory",
        "ninja_cat",
        "oscar.wilde",
        "peggy_sue",
        "trent",
        "victor_hugo",
        "walter.white",
        "x_ae_a12",
        "player_455",
        "user455",
        "agent007",
        "bob_1337",
        "coffee_lover",
        "bookkeeper",
        "balloon_boy",
        "mississippi",
        "good_night",
        // Classic false positives.
        "Scunthorpe",
        "scunthorpe_united",
        "classic",
        "classic_rock",
        "assistant",
        "assistant_lee",
        "data_analysis",
        "analyst",
        "grape",
        "grape_juice",
        "grapefruit",
        "cockpit",
        "cocktail_hour",
        "john_hancock",
        "peacock",
        "hitchcock_fan",
        "cockatoo",
        "bassist",
        "bassist99",
        "passion",
        "passion_fruit",
        "assess",
        "mass_effect",
        "glass_house",
        "class_of_2026",
        "shiitake",
        "shitake_fan",
        "dickens",
        "charles_dickens",
        "emily_dickinson",
        "therapist",
        "therapist_amy",
        "sussex",
        "essex",
        "middlesex",
        "arsenal",
        "arsenal_fan",
        "titanic",
        "title_holder",
        "cumberland",
        "document",
        "cucumber",
        "circumference",
        "canal_street",
        "penistone",
        "pussycat",
        "swanky",
        "snigger",
        "moroni",
        "rapper_mc",
        "trapper",
        "skyscraper",
        "parapet",
        "trapeze_artist",
        "drapery",
        "frappe",
        "rapeseed",
        "assassin",
        "spice_girl",
        "hello_kitty",
        "shell_scripts",
        "skill_up",
        "closer",
        "thorny_rose",
        "milford",
        "wasabi",
        "Shabir",
        "cao_wei",
        "fu_hua",
        "Hmong",
        // Reserved words inside ordinary words.
        "badminton",
        "badminton_pro",
        "beetroot",
        "roots_music",
        "helpful_hannah",
        "modern_art",
        "ecosystem",
        "staffordshire",
        "staffy_lover",
        // Chinese.
        "张三丰",
        "王小明",
        "李小华",
        "陈静怡",
        "張偉明",
        "林志明",
        "体操你好",
        "體操你好",
        "妈妈的宝贝",
        "媽媽的寶貝",
        "老妈的菜",
        "回到过去死磕",
        "生日快乐",
        "今日你好",
        "操场小子",
        "我操心你",
        "逼真画面",
        "杀手锏",
        "死神来了",
        "王八一",
        "我靠谱",
        "管理学",
        "服务生",
        "小客人",
        "废物利用",
        "二手书",
        "草莓酱",
        "日本料理",
        "马到成功",
        "春眠不觉晓",
        "ｚｈａｎｇｓａｎ",
        "張三_01",
        "小明2026",
    ];

    /// The table in `data/usernames/test-cases.tsv`: every row's name gets
    /// the row's verdict, through the shape check as the service runs it.
    #[test]
    fn the_table_of_refused_and_allowed_names_holds() {
        let policy = policy();
        let mut rows = 0;
        let mut wrong = Vec::new();
        for line in include_str!("../../data/usernames/test-cases.tsv").lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut columns = line.split('\t');
            let (Some(verdict), Some(name)) = (columns.next(), columns.next()) else {
                panic!("malformed row: {line:?}");
            };
            let expected = match verdict {
                "allowed" => Ok(()),
                "offensive" => Err(PolicyViolation::Offensive),
                "reserved" => Err(PolicyViolation::Reserved),
                other => panic!("unknown verdict {other:?} in {line:?}"),
            };
            rows += 1;
            let actual = Username::parse(name)
                .map_err(|shape| format!("shape: {shape}"))
                .map(|username| policy.check(&username).map_err(|v| format!("{v:?}")).err());
            let matches = match (&expected, &actual) {
                (Ok(()), Ok(None)) => true,
                (Err(violation), Ok(Some(found))) => format!("{violation:?}") == *found,
                _ => false,
            };
            if !matches {
                wrong.push(format!("{name:?}: expected {expected:?}, got {actual:?}"));
            }
        }
        assert!(rows >= 80, "only {rows} rows");
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    // Name parts for `names_with_numbers_are_almost_never_refused`.
    const SURNAMES: &[&str] = &[
        "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun",
        "ma", "zhu", "hu", "guo", "he", "lin", "luo", "gao", "zheng", "liang", "xie", "song",
        "tang", "han", "feng", "deng", "cao", "peng", "zeng", "xiao", "tian", "dong", "pan",
        "yuan", "cai", "jiang", "yu", "du", "ye", "cheng", "wei", "su", "lv", "ding", "ren",
        "shen", "yao", "lu", "fu", "zhong", "jin", "cui", "tan", "fan", "shi", "qian",
    ];
    const GIVEN: &[&str] = &[
        "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan",
        "jie", "tao", "ming", "chao", "xiuying", "xia", "hui", "hua", "ping", "gang", "fei", "dan",
        "ling", "yu", "xin", "hao", "yi", "bo", "kai", "jian", "xiaoming", "xiaohong", "zihan",
        "yuxuan", "haoran", "zixuan", "yichen", "ruoxi", "shuang", "mei", "lan", "qing", "long",
        "peng", "rui", "tian", "yue", "zhen", "ning", "jia", "hong",
    ];
    const ENGLISH: &[&str] = &[
        "james",
        "john",
        "robert",
        "michael",
        "william",
        "david",
        "richard",
        "joseph",
        "thomas",
        "charles",
        "chris",
        "daniel",
        "matthew",
        "anthony",
        "mark",
        "donald",
        "steven",
        "paul",
        "andrew",
        "joshua",
        "kevin",
        "brian",
        "george",
        "edward",
        "ryan",
        "jacob",
        "gary",
        "nicholas",
        "eric",
        "jonathan",
        "stephen",
        "larry",
        "justin",
        "scott",
        "brandon",
        "frank",
        "benjamin",
        "gregory",
        "samuel",
        "patrick",
        "alexander",
        "jack",
        "dennis",
        "jerry",
        "tyler",
        "aaron",
        "henry",
        "adam",
        "peter",
        "nathan",
        "zachary",
        "kyle",
        "walter",
        "harold",
        "jeremy",
        "ethan",
        "carl",
        "keith",
        "roger",
        "gerald",
        "mary",
        "patricia",
        "jennifer",
        "linda",
        "elizabeth",
        "barbara",
        "susan",
        "jessica",
        "sarah",
        "karen",
        "nancy",
        "lisa",
        "betty",
        "margaret",
        "sandra",
        "ashley",
        "kimberly",
        "emily",
        "donna",
        "michelle",
        "carol",
        "amanda",
        "melissa",
        "deborah",
        "stephanie",
        "rebecca",
        "laura",
        "sharon",
        "cynthia",
        "kathleen",
        "amy",
        "shirley",
        "angela",
        "helen",
        "anna",
        "brenda",
        "pamela",
        "nicole",
        "emma",
        "samantha",
        "katherine",
        "christine",
        "debra",
        "rachel",
        "catherine",
        "carolyn",
        "janet",
        "ruth",
        "maria",
        "heather",
        "diane",
        "virginia",
        "julie",
        "joyce",
        "victoria",
        "olivia",
        "kelly",
        "christina",
        "lauren",
        "joan",
        "evelyn",
        "judith",
        "megan",
        "cheryl",
        "andrea",
        "hannah",
        "martha",
        "jacqueline",
        "frances",
        "gloria",
        "ann",
        "teresa",
        "kathryn",
        "sara",
        "janice",
        "jean",
        "alice",
        "madison",
        "doris",
        "abigail",
        "julia",
        "judy",
        "grace",
        "denise",
        "amber",
        "marilyn",
        "beverly",
        "danielle",
        "theresa",
        "sophia",
        "marie",
        "diana",
        "brittany",
        "natalie",
        "isabella",
        "charlotte",
        "rose",
        "alexis",
        "kayla",
        "lucas",
        "leo",
        "max",
        "sam",
        "tom",
        "ben",
        "tim",
        "alex",
    ];
    const SEPARATORS: &[&str] = &["", "_", "-", "."];

    /// Common pinyin and English names with numbers of 1 to 6 digits, with
    /// and without separators, made reproducibly (a fixed linear
    /// congruential sequence): at most 0.1 % may be refused.
    #[test]
    fn names_with_numbers_are_almost_never_refused() {
        let policy = policy();
        let mut seed: u64 = 0x5eed_cafe;
        let mut next = move |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % bound as u64) as usize
        };
        let mut names = std::collections::BTreeSet::new();
        while names.len() < 12_000 {
            let base = match next(3) {
                0 => SURNAMES[next(SURNAMES.len())].to_owned(),
                1 => format!(
                    "{}{}{}",
                    SURNAMES[next(SURNAMES.len())],
                    SEPARATORS[next(SEPARATORS.len())],
                    GIVEN[next(GIVEN.len())]
                ),
                _ => ENGLISH[next(ENGLISH.len())].to_owned(),
            };
            let digits: String = (0..1 + next(6))
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let separator = SEPARATORS[next(SEPARATORS.len())];
            names.insert(format!("{base}{separator}{digits}"));
        }
        let refused: Vec<&String> = names
            .iter()
            .filter(|name| {
                Username::parse(name).map_or(true, |username| policy.check(&username).is_err())
            })
            .collect();
        assert!(
            refused.len() * 1000 <= names.len(),
            "{} of {} refused: {refused:?}",
            refused.len(),
            names.len()
        );
    }

    #[test]
    fn there_are_enough_cases() {
        assert!(OFFENSIVE.len() + RESERVED_NAMES.len() >= 100);
        assert!(OFFENSIVE.len() >= 100);
        assert!(ACCEPTED.len() >= 100);
    }

    #[test]
    fn offensive_names_are_refused() {
        assert_all(&policy(), OFFENSIVE, Err(PolicyViolation::Offensive));
    }

    #[test]
    fn reserved_names_and_look_alikes_are_refused() {
        assert_all(&policy(), RESERVED_NAMES, Err(PolicyViolation::Reserved));
    }

    #[test]
    fn ordinary_names_are_accepted() {
        assert_all(&policy(), ACCEPTED, Ok(()));
    }

    #[test]
    fn staff_may_use_reserved_names_but_not_offensive_ones() {
        let policy = policy();
        for raw in RESERVED_NAMES {
            assert_eq!(policy.check_text(raw, false), Ok(()), "{raw}");
        }
        let name = Username::parse("客服_01").unwrap();
        assert_eq!(check_offensive_only(&policy, &name), Ok(()));
        for raw in ["admin_fuck", "客服傻逼", "sb_admin"] {
            let name = Username::parse(raw).unwrap();
            assert_eq!(
                policy.check_offensive_only(&name),
                Err(PolicyViolation::Offensive),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_free_function_is_the_method() {
        let policy = policy();
        let name = Username::parse("Adm1n").unwrap();
        assert_eq!(
            check_username(&policy, &name),
            Err(PolicyViolation::Reserved)
        );
        let name = Username::parse("zhangsan").unwrap();
        assert_eq!(check_username(&policy, &name), Ok(()));
    }

    #[test]
    fn symbols_the_shape_check_refuses_are_still_read() {
        // `@`, `$`, `!` and `|` never reach the policy in a username, but the
        // skeleton reads them for any text.
        assert_eq!(skeleton("$h!t"), "shit");
        assert_eq!(skeleton("@dm1n"), "admin");
        assert_eq!(skeleton("k|ll"), "kiii");
        let policy = policy();
        for text in ["$hit", "@sshole", "b!tch", "@dm|n", "a$$hole", "a$$"] {
            assert!(policy.check_text(text, true).is_err(), "{text}");
        }
    }

    #[test]
    fn skeleton_examples() {
        assert_eq!(skeleton("ＡｄＭ１Ｎ"), "admin");
        assert_eq!(skeleton("0ff1c1al"), "officiai");
        assert_eq!(skeleton("official"), "officiai");
        assert_eq!(skeleton("Zhang_San"), "zhangsan");
        // A number that ends a word stays a number, even without a
        // separator; digits before a letter of their word are letters.
        assert_eq!(skeleton("player_455"), "piayer455");
        assert_eq!(skeleton("player455"), "piayer455");
        assert_eq!(skeleton("a55"), "a55");
        assert_eq!(skeleton("a55hole"), "asshoie");
        assert_eq!(skeleton("5h1t"), "shit");
        assert_eq!(skeleton("shi_7_tao"), "shi7tao");
        assert_eq!(skeleton("2026"), "2026");
        assert_eq!(skeleton("客服_01"), "客服01");
        assert_eq!(skeleton("fück"), "fuck");
        assert_eq!(skeleton("аdmin"), "admin");
        assert_eq!(skeleton("傻Ｂ"), "傻b");
    }

    #[test]
    fn words_split_where_a_reader_would() {
        assert_eq!(words("BigAss_69"), ["Big", "Ass", "69"]);
        assert_eq!(words("我是sb"), ["我是", "sb"]);
        assert_eq!(words("HTMLParser"), ["HTML", "Parser"]);
        assert_eq!(words("li.si-2026"), ["li", "si", "2026"]);
    }

    #[test]
    fn operator_terms_extend_the_lists() {
        let policy = UsernamePolicy::with_extra_terms(
            &[
                "Bad Word".to_owned(),
                "zz".to_owned(),
                "坏蛋".to_owned(),
                "  ".to_owned(),
            ],
            &["custos_ops".to_owned(), "老板".to_owned(), String::new()],
        );
        let check = |raw: &str| policy.check(&Username::parse(raw).unwrap());
        assert_eq!(check("my_badword"), Err(PolicyViolation::Offensive));
        assert_eq!(check("b4d_w0rd_99"), Err(PolicyViolation::Offensive));
        // Short operator terms match whole words only.
        assert_eq!(check("zz_top"), Err(PolicyViolation::Offensive));
        assert_eq!(check("pizzaman"), Ok(()));
        assert_eq!(check("大坏蛋"), Err(PolicyViolation::Offensive));
        assert_eq!(check("custosops"), Err(PolicyViolation::Reserved));
        assert_eq!(check("老板娘"), Err(PolicyViolation::Reserved));
        // Blank terms are ignored, not turned into "match everything".
        assert_eq!(check("zhangsan"), Ok(()));
        // The shipped lists are still there.
        assert_eq!(check("fuck"), Err(PolicyViolation::Offensive));
        assert_eq!(check("admin"), Err(PolicyViolation::Reserved));
        // The operator's terms leave the shipped policy alone.
        let shipped = UsernamePolicy::shipped();
        assert_eq!(
            shipped.check(&Username::parse("my_badword").unwrap()),
            Ok(())
        );
    }

    #[test]
    fn every_shipped_term_refuses_itself() {
        // A term that its own list does not refuse was mangled by the
        // normalisation (or shadowed by the allowlist).
        let policy = policy();
        let lists = [
            (OFFENSIVE_EN, PolicyViolation::Offensive),
            (OFFENSIVE_EN_TOKENS, PolicyViolation::Offensive),
            (OFFENSIVE_ZH_HANS, PolicyViolation::Offensive),
            (OFFENSIVE_ZH_HANT, PolicyViolation::Offensive),
            (RESERVED, PolicyViolation::Reserved),
            (RESERVED_TOKENS, PolicyViolation::Reserved),
        ];
        let mut wrong = Vec::new();
        for (list, expected) in lists {
            for term in list_entries(list) {
                let got = policy.check_text(term, true);
                if got != Err(expected) {
                    wrong.push(format!("{term}: {got:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_allowed_word_is_accepted() {
        let policy = policy();
        let wrong: Vec<&str> = list_entries(ALLOWED)
            .filter(|word| policy.check_text(word, true).is_err())
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");
    }

    #[test]
    fn the_reason_does_not_quote_the_term() {
        let message = PolicyViolation::Offensive.to_string();
        assert!(message.contains("insulting"));
        assert!(!message.contains("fuck"));
        assert!(
            PolicyViolation::Reserved
                .to_string()
                .contains("kept for the platform")
        );
    }

    #[test]
    fn debug_shows_counts_not_terms() {
        let shown = format!("{:?}", policy());
        assert!(shown.contains("offensive_terms"));
        assert!(!shown.contains("fuck"));
    }
}
