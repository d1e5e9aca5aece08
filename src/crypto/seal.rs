//! One way for every storage module to seal, open and index its fields.
//!
//! A [`Sealer`] bundles what a store needs to write and read personal data:
//! the field cipher, the account's data key when the value belongs to an
//! account (else the keyring's active key), and the blind-index keys. A
//! [`SealedField`] names a table and column once, so a store declares its
//! encrypted columns as constants and binds each value to its row with
//! [`SealedField::at`].
//!
//! Rules it keeps, on top of [`super::fields`] and [`super::blind_index`]:
//! - every value is bound to its table, column and row: moved anywhere
//!   else, it no longer opens;
//! - indexes are written under the active blind-index key only
//!   ([`Sealer::index`]) and searched under every key in use
//!   ([`Sealer::lookup`]), so a call site says which it is doing.

use zeroize::Zeroizing;

use super::{AccountKey, BlindIndex, BlindIndexKeys, CryptoError, FieldCipher, FieldContext};

/// An encrypted column: its table and column, bound into every value
/// stored there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedField {
    /// Database table.
    pub table: &'static str,
    /// Column within it.
    pub column: &'static str,
}

impl SealedField {
    /// Names the column `column` of `table`.
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }

    /// The place of this column in row `row_id`.
    pub fn at(self, row_id: uuid::Uuid) -> FieldContext<'static> {
        FieldContext {
            table: self.table,
            column: self.column,
            row_id,
        }
    }
}

/// Seals and opens field values and computes their blind indexes.
///
/// Cheap to copy: it only borrows the keys. [`Sealer::under`] picks the
/// key values are sealed under and opened with.
#[derive(Debug, Clone, Copy)]
pub struct Sealer<'a> {
    cipher: &'a FieldCipher,
    key: Option<&'a AccountKey>,
    active: &'a BlindIndex,
    previous: Option<&'a BlindIndex>,
}

impl<'a> Sealer<'a> {
    /// Seals under the keyring's active key and indexes with `blind`
    /// (lookups try the previous blind-index key too, while it is set).
    pub fn new(cipher: &'a FieldCipher, blind: &'a BlindIndexKeys) -> Self {
        Self {
            cipher,
            key: None,
            active: blind.active(),
            previous: blind.previous(),
        }
    }

    /// Seals under the keyring's active key and indexes with `active` alone:
    /// for writers that store indexes but never search them.
    pub fn with_active_index(cipher: &'a FieldCipher, active: &'a BlindIndex) -> Self {
        Self {
            cipher,
            key: None,
            active,
            previous: None,
        }
    }

    /// The same sealer, sealing under `key` (an account's data key) when
    /// given, else under the keyring; opening accepts either.
    #[must_use]
    pub fn under(self, key: Option<&'a AccountKey>) -> Self {
        Self { key, ..self }
    }

    /// The account key values are sealed under, if any.
    pub fn key(&self) -> Option<&'a AccountKey> {
        self.key
    }

    /// The field cipher underneath.
    pub fn cipher(&self) -> &'a FieldCipher {
        self.cipher
    }

    /// Encrypts `value` for the place `at` names.
    pub fn seal(&self, at: FieldContext<'_>, value: &str) -> Result<Vec<u8>, CryptoError> {
        self.seal_bytes(at, value.as_bytes())
    }

    /// Encrypts raw bytes for the place `at` names.
    pub fn seal_bytes(&self, at: FieldContext<'_>, value: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.cipher.encrypt_under(self.key, &at, value)
    }

    /// Encrypts `value` when there is one.
    pub fn seal_opt(
        &self,
        at: FieldContext<'_>,
        value: Option<&str>,
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        value.map(|value| self.seal(at, value)).transpose()
    }

    /// Decrypts a UTF-8 value stored at the place `at` names. A value under
    /// an account key needs this sealer to be [`under`](Self::under) it.
    pub fn open(&self, at: FieldContext<'_>, stored: &[u8]) -> Result<String, CryptoError> {
        self.cipher.decrypt_str_under(self.key, &at, stored)
    }

    /// Decrypts raw bytes stored at the place `at` names.
    pub fn open_bytes(
        &self,
        at: FieldContext<'_>,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.cipher.decrypt_under(self.key, &at, stored)
    }

    /// Decrypts a UTF-8 value when there is one.
    pub fn open_opt(
        &self,
        at: FieldContext<'_>,
        stored: Option<&[u8]>,
    ) -> Result<Option<String>, CryptoError> {
        stored.map(|stored| self.open(at, stored)).transpose()
    }

    /// The blind index of `normalised` in `field` under the active key:
    /// what is stored.
    pub fn index(&self, field: &str, normalised: &str) -> Vec<u8> {
        self.active.compute(field, normalised)
    }

    /// Every index a stored row may hold for `normalised` in `field`, the
    /// active key's first (both keys while a blind-index rotation is under
    /// way): what is searched, and what uniqueness is checked against.
    pub fn lookup(&self, field: &str, normalised: &str) -> Vec<Vec<u8>> {
        let mut indexes = vec![self.index(field, normalised)];
        if let Some(previous) = self.previous {
            let index = previous.compute(field, normalised);
            if !indexes.contains(&index) {
                indexes.push(index);
            }
        }
        indexes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;
    use uuid::Uuid;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const EMAIL: SealedField = SealedField::new("accounts", "email");
    const USERNAME: SealedField = SealedField::new("accounts", "username");

    fn cipher() -> FieldCipher {
        FieldCipher::new(Keyring::parse(&format!("k1:{KEY_A}")).unwrap())
    }

    fn blind(previous: Option<[u8; 32]>) -> BlindIndexKeys {
        BlindIndexKeys::new(BlindIndex::new([7; 32]), previous.map(BlindIndex::new))
    }

    #[test]
    fn a_value_opens_where_it_was_sealed() {
        let (cipher, blind) = (cipher(), blind(None));
        let sealer = Sealer::new(&cipher, &blind);
        let id = Uuid::new_v4();
        let stored = sealer.seal(EMAIL.at(id), "ada@example.org").unwrap();
        assert_eq!(
            sealer.open(EMAIL.at(id), &stored).unwrap(),
            "ada@example.org"
        );
        assert_eq!(
            sealer
                .open_opt(EMAIL.at(id), Some(&stored))
                .unwrap()
                .as_deref(),
            Some("ada@example.org")
        );
        assert_eq!(sealer.open_opt(EMAIL.at(id), None).unwrap(), None);
        assert_eq!(sealer.seal_opt(EMAIL.at(id), None).unwrap(), None);
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_does_not_open() {
        let (cipher, blind) = (cipher(), blind(None));
        let sealer = Sealer::new(&cipher, &blind);
        let id = Uuid::new_v4();
        let stored = sealer.seal(EMAIL.at(id), "ada@example.org").unwrap();
        assert!(matches!(
            sealer.open(EMAIL.at(Uuid::new_v4()), &stored),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            sealer.open(USERNAME.at(id), &stored),
            Err(CryptoError::Decrypt)
        ));
        let other_table = SealedField::new("outbox", "email");
        assert!(matches!(
            sealer.open(other_table.at(id), &stored),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn a_value_under_an_account_key_opens_only_with_that_key() {
        let (cipher, blind) = (cipher(), blind(None));
        let (key, _) = AccountKey::generate().unwrap();
        let (other, _) = AccountKey::generate().unwrap();
        let keyring = Sealer::new(&cipher, &blind);
        let sealer = keyring.under(Some(&key));
        let id = Uuid::new_v4();
        let stored = sealer.seal_bytes(USERNAME.at(id), b"ada").unwrap();
        assert_eq!(
            sealer
                .open_bytes(USERNAME.at(id), &stored)
                .unwrap()
                .as_slice(),
            b"ada"
        );
        assert!(matches!(
            keyring.open(USERNAME.at(id), &stored),
            Err(CryptoError::AccountKeyNeeded)
        ));
        assert!(matches!(
            keyring.under(Some(&other)).open(USERNAME.at(id), &stored),
            Err(CryptoError::Decrypt)
        ));
        // A keyring value still opens with an account key at hand.
        let plain = keyring.seal(USERNAME.at(id), "ada").unwrap();
        assert_eq!(sealer.open(USERNAME.at(id), &plain).unwrap(), "ada");
    }

    #[test]
    fn indexes_are_written_under_the_active_key_and_searched_under_both() {
        let cipher = cipher();
        let single = blind(None);
        let rotating = blind(Some([9; 32]));
        let sealer = Sealer::new(&cipher, &rotating);
        let stored = sealer.index("email", "ada@example.org");
        assert_eq!(stored, single.active().compute("email", "ada@example.org"));
        assert_eq!(
            sealer.lookup("email", "ada@example.org"),
            rotating.lookup("email", "ada@example.org")
        );
        assert_eq!(sealer.lookup("email", "ada@example.org").len(), 2);
        assert_ne!(stored, sealer.index("username", "ada@example.org"));

        let same = blind(Some([7; 32]));
        assert_eq!(
            Sealer::new(&cipher, &same).lookup("email", "ada@example.org"),
            vec![stored.clone()]
        );
        let writer = Sealer::with_active_index(&cipher, single.active());
        assert_eq!(writer.lookup("email", "ada@example.org"), vec![stored]);
    }
}
