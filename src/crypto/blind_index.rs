//! Blind indexes: keyed HMAC-SHA256 digests that let the database look up and
//! enforce uniqueness on encrypted fields without seeing their values.
//!
//! Rules:
//! - Each field gets its own key, HMAC-SHA256(master, "custos/blind-index/v1/" + field),
//!   so equal values in different fields never share an index.
//! - This module does not normalise: callers pass the value's normal form
//!   (for emails, [`normalise_email`]), and must pass the same form when
//!   writing and when looking up.
//! - The master key lives in a zeroizing buffer and never appears in `Debug`
//!   or in an error message.
//! - During a blind-index key rotation there are two keys ([`BlindIndexKeys`]):
//!   writes store the active key's index only, lookups try both, and
//!   `custos keys rotate` recomputes what is still under the previous key.
//!   The pair offers no `compute`, so a call site must say which it is doing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

use super::CryptoError;

/// The environment variable named in errors.
const SETTING: &str = "CUSTOS_BLIND_INDEX_KEY";
/// The setting that holds the key being rotated away from.
pub const PREVIOUS_SETTING: &str = "CUSTOS_BLIND_INDEX_PREVIOUS_KEY";
/// Domain-separation prefix for per-field keys; bump the version to re-key every index.
const FIELD_KEY_PREFIX: &[u8] = b"custos/blind-index/v1/";

type HmacSha256 = Hmac<Sha256>;

/// Computes blind indexes from a 256-bit master key.
pub struct BlindIndex {
    master: Zeroizing<[u8; 32]>,
}

impl BlindIndex {
    /// Uses `master` as the blind-index master key.
    pub fn new(master: [u8; 32]) -> Self {
        Self {
            master: Zeroizing::new(master),
        }
    }

    /// Parses the `CUSTOS_BLIND_INDEX_KEY` setting: standard base64 of 32 bytes.
    pub fn parse(setting_base64: &str) -> Result<Self, CryptoError> {
        Self::parse_setting(SETTING, setting_base64)
    }

    /// Parses a key in the `CUSTOS_BLIND_INDEX_KEY` format held by
    /// `setting`, which errors name (the previous key has the same format
    /// but must be reported under its own name).
    pub fn parse_setting(setting: &'static str, setting_base64: &str) -> Result<Self, CryptoError> {
        let bad_key = |reason: &str| CryptoError::BadKey {
            setting,
            reason: reason.to_owned(),
        };
        let decoded = Zeroizing::new(STANDARD.decode(setting_base64.trim()).map_err(|_| {
            bad_key("it is not valid standard base64 (expected base64 of 32 random bytes)")
        })?);
        let mut master = Zeroizing::new([0u8; 32]);
        if decoded.len() != master.len() {
            return Err(bad_key("it does not decode to exactly 32 bytes"));
        }
        master.copy_from_slice(&decoded);
        Ok(Self { master })
    }

    /// The blind index of `normalised_value` in `field` (32 bytes).
    pub fn compute(&self, field: &str, normalised_value: &str) -> Vec<u8> {
        let field_key = Zeroizing::new(hmac_sha256(
            &self.master,
            &[FIELD_KEY_PREFIX, field.as_bytes()],
        ));
        hmac_sha256(&field_key, &[normalised_value.as_bytes()]).to_vec()
    }
}

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndex")
            .field("master", &"[redacted]")
            .finish()
    }
}

/// The active blind-index key and, while a rotation is under way, the
/// previous one (`CUSTOS_BLIND_INDEX_PREVIOUS_KEY`).
///
/// An index under one key matches nothing under another, so a new key alone
/// would make every stored index unfindable (and every uniqueness check
/// blind) until `custos keys rotate` has recomputed them. With the previous
/// key set, [`lookup`](Self::lookup) gives both indexes for an `IN (...)`
/// query, while writes take [`active`](Self::active) only: rows under the
/// previous key can then only become fewer.
#[derive(Debug)]
pub struct BlindIndexKeys {
    active: BlindIndex,
    previous: Option<BlindIndex>,
}

impl BlindIndexKeys {
    /// Pairs the active key with the key being rotated away from, if any.
    pub fn new(active: BlindIndex, previous: Option<BlindIndex>) -> Self {
        Self { active, previous }
    }

    /// The key every stored index is written under.
    pub fn active(&self) -> &BlindIndex {
        &self.active
    }

    /// The key being rotated away from, while it is set.
    pub fn previous(&self) -> Option<&BlindIndex> {
        self.previous.as_ref()
    }

    /// Every key in use, the active one first.
    pub fn each(&self) -> impl Iterator<Item = &BlindIndex> {
        std::iter::once(&self.active).chain(self.previous.as_ref())
    }

    /// The indexes a stored row may hold for `normalised_value`: the active
    /// key's first, then the previous key's (left out when it is equal, as it
    /// is when both settings name the same key).
    pub fn lookup(&self, field: &str, normalised_value: &str) -> Vec<Vec<u8>> {
        let mut indexes = Vec::with_capacity(2);
        for key in self.each() {
            let index = key.compute(field, normalised_value);
            if !indexes.contains(&index) {
                indexes.push(index);
            }
        }
        indexes
    }
}

/// The normal form of an email address for blind indexing: trimmed and lower-cased.
pub fn normalise_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// HMAC-SHA256 over the concatenation of `parts`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC zero-pads keys shorter than the 64-byte block, so padding here is
    // exactly HMAC under the 32-byte key, and the fixed size makes it infallible.
    let mut block_key = Zeroizing::new([0u8; 64]);
    block_key[..key.len()].copy_from_slice(key);
    let mut mac = HmacSha256::new((&*block_key).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn deterministic() {
        let index = BlindIndex::new([1; 32]);
        let first = index.compute("email", "ada@example.org");
        assert_eq!(first.len(), 32);
        assert_eq!(first, index.compute("email", "ada@example.org"));
        assert_ne!(first, index.compute("email", "bob@example.org"));
    }

    #[test]
    fn fields_are_separated() {
        let index = BlindIndex::new([1; 32]);
        assert_ne!(
            index.compute("email", "ada"),
            index.compute("username", "ada")
        );
    }

    #[test]
    fn keys_are_separated() {
        assert_ne!(
            BlindIndex::new([1; 32]).compute("email", "ada"),
            BlindIndex::new([2; 32]).compute("email", "ada")
        );
    }

    #[test]
    fn matches_plain_hmac_construction() {
        // Pins the derivation so a refactor cannot silently orphan stored indexes.
        let master = [9u8; 32];
        let mut mac = HmacSha256::new_from_slice(&master).unwrap();
        mac.update(b"custos/blind-index/v1/email");
        let field_key = mac.finalize().into_bytes();
        let mut mac = HmacSha256::new_from_slice(&field_key).unwrap();
        mac.update(b"ada@example.org");
        let expected = mac.finalize().into_bytes().to_vec();
        assert_eq!(
            BlindIndex::new(master).compute("email", "ada@example.org"),
            expected
        );
    }

    #[test]
    fn parse_accepts_base64_and_rejects_bad_input() {
        let encoded = STANDARD.encode([3u8; 32]);
        let parsed = BlindIndex::parse(&encoded).unwrap();
        assert_eq!(
            parsed.compute("email", "x"),
            BlindIndex::new([3; 32]).compute("email", "x")
        );
        for bad in ["", "not base64!", "AAEC"] {
            let message = BlindIndex::parse(bad).unwrap_err().to_string();
            assert!(message.starts_with("CUSTOS_BLIND_INDEX_KEY"), "{message}");
            assert!(bad.is_empty() || !message.contains(bad), "{message}");
        }
    }

    #[test]
    fn previous_key_errors_name_their_own_setting() {
        let message = BlindIndex::parse_setting(PREVIOUS_SETTING, "AAEC")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("CUSTOS_BLIND_INDEX_PREVIOUS_KEY"),
            "{message}"
        );
    }

    #[test]
    fn lookup_gives_active_then_previous() {
        let keys = BlindIndexKeys::new(BlindIndex::new([1; 32]), Some(BlindIndex::new([2; 32])));
        assert_eq!(
            keys.lookup("email", "ada"),
            vec![
                BlindIndex::new([1; 32]).compute("email", "ada"),
                BlindIndex::new([2; 32]).compute("email", "ada"),
            ]
        );
        assert_eq!(
            keys.active().compute("email", "ada"),
            BlindIndex::new([1; 32]).compute("email", "ada")
        );

        let alone = BlindIndexKeys::new(BlindIndex::new([1; 32]), None);
        assert_eq!(alone.lookup("email", "ada").len(), 1);
        assert!(alone.previous().is_none());
        let same = BlindIndexKeys::new(BlindIndex::new([1; 32]), Some(BlindIndex::new([1; 32])));
        assert_eq!(same.lookup("email", "ada").len(), 1);
    }

    #[test]
    fn debug_redacts() {
        let shown = format!("{:?}", BlindIndex::new([1; 32]));
        assert!(
            shown.contains("redacted") && !shown.contains('1'),
            "{shown}"
        );
    }

    #[test]
    fn email_normal_form() {
        assert_eq!(normalise_email("  Ada@Example.ORG\n"), "ada@example.org");
    }
}
