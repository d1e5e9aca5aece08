//! Field-level encryption of personal data with AES-256-GCM-SIV.
//!
//! Rules:
//! - Every stored value is `[key id length: u8][key id][12-byte nonce][ciphertext + 16-byte tag]`,
//!   so each row says which key it needs and rotation can proceed row by row.
//! - The first key of the [`Keyring`] encrypts; every key decrypts.
//! - The associated data binds a ciphertext to its format version, table,
//!   column and row id: a value copied to another place fails to decrypt
//!   instead of silently showing someone else's data.
//! - Nonces are random. GCM-SIV stays safe even if a nonce ever repeats, which
//!   is why it was chosen over plain GCM.
//! - Key bytes live in zeroizing buffers, are never printed, and never appear in
//!   error messages, not even when a setting is rejected.

use aes_gcm_siv::aead::AeadInOut;
use aes_gcm_siv::{Aes256GcmSiv, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use zeroize::Zeroizing;

use super::CryptoError;

/// The environment variable named in keyring errors.
const SETTING: &str = "CUSTOS_ENCRYPTION_KEYS";
/// Version of the stored layout and associated data; bump it when either changes.
const FORMAT_VERSION: u8 = 1;
/// Longest accepted key id; it must fit the one-byte length prefix with room to spare.
const MAX_KEY_ID_LEN: usize = 32;
/// How to write a key id, quoted in errors.
pub(super) const KEY_ID_RULE: &str = "a key id is 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One named 256-bit encryption key.
pub struct EncryptionKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl EncryptionKey {
    /// Wraps raw key bytes under an id of 1..=32 characters from `[A-Za-z0-9_-]`.
    pub fn new(id: &str, key: [u8; 32]) -> Result<Self, CryptoError> {
        // Wrap first so the bytes are wiped even when the id is rejected.
        let key = Zeroizing::new(key);
        if !is_valid_key_id(id) {
            return Err(bad_key(KEY_ID_RULE.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            key,
        })
    }

    /// The key's id, as written into every ciphertext it produces.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// An ordered, non-empty list of keys with unique ids; the first one is active.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<EncryptionKey>,
}

impl Keyring {
    /// Builds a keyring, rejecting an empty list and duplicate ids.
    pub fn new(keys: Vec<EncryptionKey>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(bad_key("at least one key is required".to_owned()));
        }
        for (index, key) in keys.iter().enumerate() {
            if keys[..index].iter().any(|earlier| earlier.id == key.id) {
                return Err(bad_key(format!(
                    "key id {:?} appears more than once",
                    key.id
                )));
            }
        }
        Ok(Self { keys })
    }

    /// Parses `id:base64(32 bytes)` entries separated by commas, active key first.
    ///
    /// Errors name `CUSTOS_ENCRYPTION_KEYS` and the entry's position; they quote
    /// an id only once it is known to be a well-formed id, so a pasted key can
    /// never end up in a log.
    pub fn parse(setting: &str) -> Result<Self, CryptoError> {
        if setting.trim().is_empty() {
            return Err(bad_key(
                "it is empty; expected comma-separated id:base64(32 bytes) entries".to_owned(),
            ));
        }
        let mut keys = Vec::new();
        for (index, entry) in setting.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(bad_key(format!("entry {position} is empty")));
            }
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(bad_key(format!(
                    "entry {position} has no ':' between key id and key"
                )));
            };
            let id = id.trim();
            if !is_valid_key_id(id) {
                return Err(bad_key(format!(
                    "entry {position} has an invalid key id; {KEY_ID_RULE}"
                )));
            }
            let key = decode_key(encoded.trim()).map_err(|problem| {
                bad_key(format!(
                    "the key for id {id:?} (entry {position}) {problem}"
                ))
            })?;
            keys.push(EncryptionKey {
                id: id.to_owned(),
                key,
            });
        }
        Self::new(keys)
    }

    /// The id of the key that encrypts new values.
    pub fn active_id(&self) -> &str {
        // `new` guarantees at least one key; the fallback is unreachable.
        self.keys.first().map_or("", |key| key.id.as_str())
    }

    /// The ids of every key, active first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }
}

/// Where a value lives; bound into its ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldContext<'a> {
    /// Database table holding the value.
    pub table: &'a str,
    /// Column holding the value.
    pub column: &'a str,
    /// Primary key of the row holding the value.
    pub row_id: uuid::Uuid,
}

impl FieldContext<'_> {
    /// Canonical associated data: version, then length-prefixed table and
    /// column, then the 16 row-id bytes. Length prefixes keep
    /// ("ab", "c") and ("a", "bc") apart.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(1 + 8 + self.table.len() + 8 + self.column.len() + 16);
        aad.push(FORMAT_VERSION);
        aad.extend_from_slice(&(self.table.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.table.as_bytes());
        aad.extend_from_slice(&(self.column.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.column.as_bytes());
        aad.extend_from_slice(self.row_id.as_bytes());
        aad
    }
}

/// The key id written into values encrypted under an account's own data
/// key. `@` is not allowed in keyring ids, so it can never name one.
pub const ACCOUNT_KEY_ID: &str = "@account";

/// One account's data key (crypto-shredding): the account's personal fields
/// are encrypted under it, and erasing the account destroys it. Only the
/// initialised cipher is kept; the raw bytes are wiped once it exists.
pub struct AccountKey {
    cipher: Aes256GcmSiv,
}

impl AccountKey {
    /// A fresh random key, and its raw bytes for wrapping.
    pub fn generate() -> Result<(Self, Zeroizing<[u8; 32]>), CryptoError> {
        let raw = Zeroizing::new(super::tokens::random_bytes::<32>()?);
        Ok((Self::from_bytes(&raw), raw))
    }

    fn from_bytes(raw: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256GcmSiv::new(raw.into()),
        }
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey([redacted])")
    }
}

/// Encrypts and decrypts field values with a [`Keyring`].
pub struct FieldCipher {
    /// Initialised ciphers in keyring order; index 0 is the active key. The raw
    /// key bytes are dropped (and wiped) once these exist.
    ciphers: Vec<(String, Aes256GcmSiv)>,
}

impl FieldCipher {
    /// Prepares one cipher per key in the keyring.
    pub fn new(keyring: Keyring) -> Self {
        let ciphers = keyring
            .keys
            .iter()
            .map(|key| (key.id.clone(), Aes256GcmSiv::new((&*key.key).into())))
            .collect();
        Self { ciphers }
    }

    /// The id of the key that encrypts new values.
    pub fn active_id(&self) -> &str {
        self.ciphers.first().map_or("", |(id, _)| id.as_str())
    }

    /// Encrypts `plaintext` under the active key for the place `ctx` names.
    pub fn encrypt(
        &self,
        ctx: &FieldContext<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (id, cipher) = self.ciphers.first().ok_or(CryptoError::Encrypt)?;
        seal(id, cipher, ctx, plaintext)
    }

    /// Encrypts `plaintext` under `key` when given (an account's own data
    /// key), else under the active key of the keyring.
    pub fn encrypt_under(
        &self,
        key: Option<&AccountKey>,
        ctx: &FieldContext<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        match key {
            Some(key) => seal(ACCOUNT_KEY_ID, &key.cipher, ctx, plaintext),
            None => self.encrypt(ctx, plaintext),
        }
    }

    /// Encrypts a UTF-8 string; see [`FieldCipher::encrypt_under`].
    pub fn encrypt_str_under(
        &self,
        key: Option<&AccountKey>,
        ctx: &FieldContext<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_under(key, ctx, plaintext.as_bytes())
    }

    /// Wraps an account's raw data key under the active key, bound to the
    /// account (`account_keys.wrapped_key` of row `account_id`).
    pub fn wrap_account_key(
        &self,
        account_id: uuid::Uuid,
        raw: &Zeroizing<[u8; 32]>,
    ) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(&wrapped_key_context(account_id), raw.as_slice())
    }

    /// Unwraps what [`FieldCipher::wrap_account_key`] stored for `account_id`.
    pub fn unwrap_account_key(
        &self,
        account_id: uuid::Uuid,
        stored: &[u8],
    ) -> Result<AccountKey, CryptoError> {
        let raw = self.decrypt(&wrapped_key_context(account_id), stored)?;
        let bytes: &[u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        Ok(AccountKey::from_bytes(bytes))
    }

    /// Decrypts a stored value written for the place `ctx` names, with whichever
    /// key of the keyring it names. A value under an account's own key
    /// answers [`CryptoError::AccountKeyNeeded`]; see [`FieldCipher::decrypt_under`].
    pub fn decrypt(
        &self,
        ctx: &FieldContext<'_>,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.decrypt_under(None, ctx, stored)
    }

    /// Decrypts a stored value: one under an account key with `key` (which
    /// must be that account's), any other with the keyring key it names.
    /// An account-key value without `key` is [`CryptoError::AccountKeyNeeded`].
    pub fn decrypt_under(
        &self,
        key: Option<&AccountKey>,
        ctx: &FieldContext<'_>,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parts = split_stored(stored).ok_or(CryptoError::Malformed)?;
        let cipher = if parts.key_id == ACCOUNT_KEY_ID {
            &key.ok_or(CryptoError::AccountKeyNeeded)?.cipher
        } else {
            self.ciphers
                .iter()
                .find(|(id, _)| id == parts.key_id)
                .map(|(_, cipher)| cipher)
                .ok_or_else(|| CryptoError::UnknownKeyId(parts.key_id.to_owned()))?
        };

        let nonce = Nonce::try_from(parts.nonce).map_err(|_| CryptoError::Malformed)?;
        let tag = Tag::try_from(parts.tag).map_err(|_| CryptoError::Malformed)?;
        // Decrypt in a zeroizing buffer so the plaintext is wiped when dropped.
        let mut plaintext = Zeroizing::new(parts.ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(
                &nonce,
                &ctx.associated_data(),
                plaintext.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plaintext)
    }

    /// Decrypts a value that must be UTF-8; see [`FieldCipher::decrypt_under`].
    pub fn decrypt_str_under(
        &self,
        key: Option<&AccountKey>,
        ctx: &FieldContext<'_>,
        stored: &[u8],
    ) -> Result<String, CryptoError> {
        let plaintext = self.decrypt_under(key, ctx, stored)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| CryptoError::Malformed)?;
        Ok(text.to_owned())
    }

    /// Encrypts a UTF-8 string; see [`FieldCipher::encrypt`].
    pub fn encrypt_str(
        &self,
        ctx: &FieldContext<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(ctx, plaintext.as_bytes())
    }

    /// Decrypts a value that must be UTF-8; anything else is [`CryptoError::Malformed`].
    pub fn decrypt_str(
        &self,
        ctx: &FieldContext<'_>,
        stored: &[u8],
    ) -> Result<String, CryptoError> {
        self.decrypt_str_under(None, ctx, stored)
    }

    /// Whether a stored value should be re-encrypted under the active key.
    ///
    /// A malformed value also answers `true`, so a rotation pass tries it and
    /// reports the error rather than skipping it silently. A value under an
    /// account key never does: rotation re-wraps that key instead.
    pub fn needs_rotation(&self, stored: &[u8]) -> bool {
        let id = key_id_of(stored);
        id != Some(self.active_id()) && id != Some(ACCOUNT_KEY_ID)
    }
}

impl fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldCipher")
            .field(
                "key_ids",
                &self.ciphers.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Whether a stored value is under an account's own data key.
pub fn is_under_account_key(stored: &[u8]) -> bool {
    key_id_of(stored) == Some(ACCOUNT_KEY_ID)
}

/// Where an account's wrapped data key is stored; bound into the wrapping.
fn wrapped_key_context(account_id: uuid::Uuid) -> FieldContext<'static> {
    FieldContext {
        table: "account_keys",
        column: "wrapped_key",
        row_id: account_id,
    }
}

/// Encrypts `plaintext` with `cipher` into the stored layout naming `id`.
fn seal(
    id: &str,
    cipher: &Aes256GcmSiv,
    ctx: &FieldContext<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let id_len = u8::try_from(id.len()).map_err(|_| CryptoError::Encrypt)?;
    let nonce_bytes = super::tokens::random_bytes::<NONCE_LEN>()?;

    let body_start = 1 + id.len() + NONCE_LEN;
    // Exact capacity: the buffer never reallocates, so no stray copy of the
    // plaintext is left behind in freed memory.
    let mut stored = Vec::with_capacity(body_start + plaintext.len() + TAG_LEN);
    stored.push(id_len);
    stored.extend_from_slice(id.as_bytes());
    stored.extend_from_slice(&nonce_bytes);
    stored.extend_from_slice(plaintext);

    let nonce = Nonce::from(nonce_bytes);
    let tag = cipher
        .encrypt_inout_detached(
            &nonce,
            &ctx.associated_data(),
            (&mut stored[body_start..]).into(),
        )
        .map_err(|_| CryptoError::Encrypt)?;
    stored.extend_from_slice(&tag);
    Ok(stored)
}

/// The key id a stored value names, or `None` when the value is malformed.
pub fn key_id_of(stored: &[u8]) -> Option<&str> {
    split_stored(stored).map(|parts| parts.key_id)
}

/// The pieces of a stored value, borrowed from it.
struct StoredParts<'a> {
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

/// Splits a stored value, checking lengths and that the key id is well-formed
/// (so a corrupted id is reported as malformed, not echoed into logs).
fn split_stored(stored: &[u8]) -> Option<StoredParts<'_>> {
    let (&id_len, rest) = stored.split_first()?;
    let id_len = usize::from(id_len);
    let (id_bytes, rest) = rest.split_at_checked(id_len)?;
    let key_id = std::str::from_utf8(id_bytes).ok()?;
    if key_id != ACCOUNT_KEY_ID && !is_valid_key_id(key_id) {
        return None;
    }
    let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
    let ciphertext_len = rest.len().checked_sub(TAG_LEN)?;
    let (ciphertext, tag) = rest.split_at(ciphertext_len);
    Some(StoredParts {
        key_id,
        nonce,
        ciphertext,
        tag,
    })
}

/// Key ids are short and plain so they fit the one-byte length prefix and are
/// safe to print in logs and errors.
pub(super) fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decodes standard base64 into exactly 32 bytes; the error is a phrase that
/// never quotes the input.
fn decode_key(encoded: &str) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    let decoded = Zeroizing::new(
        STANDARD
            .decode(encoded)
            .map_err(|_| "is not valid standard base64")?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if decoded.len() != key.len() {
        return Err("does not decode to exactly 32 bytes");
    }
    key.copy_from_slice(&decoded);
    Ok(key)
}

pub(super) fn bad_key(reason: String) -> CryptoError {
    CryptoError::BadKey {
        setting: SETTING,
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn cipher(setting: &str) -> FieldCipher {
        FieldCipher::new(Keyring::parse(setting).unwrap())
    }

    fn ctx(row_id: uuid::Uuid) -> FieldContext<'static> {
        FieldContext {
            table: "accounts",
            column: "email",
            row_id,
        }
    }

    fn reason(err: CryptoError) -> String {
        match err {
            CryptoError::BadKey { setting, reason } => {
                assert_eq!(setting, "CUSTOS_ENCRYPTION_KEYS");
                reason
            }
            other => panic!("expected BadKey, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let stored = cipher.encrypt_str(&ctx, "ada@example.org").unwrap();
        assert_eq!(
            cipher.decrypt_str(&ctx, &stored).unwrap(),
            "ada@example.org"
        );
        assert_eq!(key_id_of(&stored), Some("k1"));
        assert_eq!(stored.len(), 1 + 2 + 12 + "ada@example.org".len() + 16);
    }

    #[test]
    fn empty_plaintext_roundtrips() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let stored = cipher.encrypt(&ctx, b"").unwrap();
        assert!(cipher.decrypt(&ctx, &stored).unwrap().is_empty());
    }

    #[test]
    fn moved_ciphertext_fails() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let here = ctx(uuid::Uuid::new_v4());
        let stored = cipher.encrypt_str(&here, "secret").unwrap();

        let other_row = ctx(uuid::Uuid::new_v4());
        let other_column = FieldContext {
            column: "username",
            ..here
        };
        let other_table = FieldContext {
            table: "recovery",
            ..here
        };
        // Same concatenation, different split: the length prefixes must tell them apart.
        let resplit = FieldContext {
            table: "accountse",
            column: "mail",
            ..here
        };
        for elsewhere in [other_row, other_column, other_table, resplit] {
            assert!(matches!(
                cipher.decrypt(&elsewhere, &stored),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn tampered_byte_fails() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let stored = cipher.encrypt_str(&ctx, "secret").unwrap();
        // Flip one bit in the nonce, the ciphertext and the tag in turn.
        for index in 3..stored.len() {
            let mut tampered = stored.clone();
            tampered[index] ^= 0x01;
            assert!(
                matches!(cipher.decrypt(&ctx, &tampered), Err(CryptoError::Decrypt)),
                "byte {index}"
            );
        }
    }

    #[test]
    fn truncated_value_is_malformed() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let stored = cipher.encrypt_str(&ctx, "").unwrap();
        assert!(matches!(
            cipher.decrypt(&ctx, &stored[..stored.len() - 1]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            cipher.decrypt(&ctx, &[]),
            Err(CryptoError::Malformed)
        ));
        assert_eq!(key_id_of(&[]), None);
        assert_eq!(key_id_of(&[5, b'a']), None);
    }

    #[test]
    fn same_value_encrypts_differently() {
        let cipher = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let first = cipher.encrypt_str(&ctx, "same").unwrap();
        let second = cipher.encrypt_str(&ctx, "same").unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn rotation_decrypts_old_and_encrypts_new() {
        let old_only = cipher(&format!("old:{KEY_A}"));
        let rotated = cipher(&format!("new:{KEY_B}, old:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());

        let legacy = old_only.encrypt_str(&ctx, "kept").unwrap();
        assert!(rotated.needs_rotation(&legacy));
        assert!(!old_only.needs_rotation(&legacy));
        assert_eq!(rotated.decrypt_str(&ctx, &legacy).unwrap(), "kept");

        let fresh = rotated.encrypt_str(&ctx, "kept").unwrap();
        assert_eq!(rotated.active_id(), "new");
        assert_eq!(key_id_of(&fresh), Some("new"));
        assert!(!rotated.needs_rotation(&fresh));
        assert!(rotated.needs_rotation(b"garbage"));
    }

    #[test]
    fn unknown_key_id_is_reported() {
        let writer = cipher(&format!("gone:{KEY_A}"));
        let reader = cipher(&format!("k1:{KEY_A}"));
        let ctx = ctx(uuid::Uuid::new_v4());
        let stored = writer.encrypt_str(&ctx, "x").unwrap();
        match reader.decrypt(&ctx, &stored) {
            Err(CryptoError::UnknownKeyId(id)) => assert_eq!(id, "gone"),
            other => panic!("expected UnknownKeyId, got {other:?}"),
        }
    }

    #[test]
    fn account_key_values_need_that_accounts_key() {
        let c = cipher(&format!("a:{KEY_A}"));
        let id = uuid::Uuid::new_v4();
        let (key, _) = AccountKey::generate().unwrap();
        let (other, _) = AccountKey::generate().unwrap();
        let stored = c
            .encrypt_str_under(Some(&key), &ctx(id), "x@example.org")
            .unwrap();
        assert_eq!(key_id_of(&stored), Some(ACCOUNT_KEY_ID));
        assert!(is_under_account_key(&stored));
        assert_eq!(
            c.decrypt_str_under(Some(&key), &ctx(id), &stored).unwrap(),
            "x@example.org"
        );
        // The keyring alone, another account's key, another row: all fail.
        assert!(matches!(
            c.decrypt(&ctx(id), &stored),
            Err(CryptoError::AccountKeyNeeded)
        ));
        assert!(matches!(
            c.decrypt_under(Some(&other), &ctx(id), &stored),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            c.decrypt_under(Some(&key), &ctx(uuid::Uuid::new_v4()), &stored),
            Err(CryptoError::Decrypt)
        ));
        // Keyring values still read with a key given, and rotation leaves
        // account-key values alone.
        let plain = c.encrypt_str(&ctx(id), "y").unwrap();
        assert_eq!(
            c.decrypt_str_under(Some(&key), &ctx(id), &plain).unwrap(),
            "y"
        );
        assert!(!c.needs_rotation(&stored));
        assert!(!cipher(&format!("b:{KEY_B},a:{KEY_A}")).needs_rotation(&stored));
    }

    #[test]
    fn wrapped_account_keys_are_bound_to_their_account() {
        let c = cipher(&format!("a:{KEY_A}"));
        let account = uuid::Uuid::new_v4();
        let (key, raw) = AccountKey::generate().unwrap();
        let wrapped = c.wrap_account_key(account, &raw).unwrap();
        assert_eq!(key_id_of(&wrapped), Some("a"));
        assert!(!wrapped.windows(32).any(|w| w == raw.as_slice()));
        let unwrapped = c.unwrap_account_key(account, &wrapped).unwrap();
        let stored = c.encrypt_str_under(Some(&key), &ctx(account), "z").unwrap();
        assert_eq!(
            c.decrypt_str_under(Some(&unwrapped), &ctx(account), &stored)
                .unwrap(),
            "z"
        );
        assert!(matches!(
            c.unwrap_account_key(uuid::Uuid::new_v4(), &wrapped),
            Err(CryptoError::Decrypt)
        ));
        // After a rotation the old keyring key still unwraps, the new one
        // wraps.
        let rotated = cipher(&format!("b:{KEY_B},a:{KEY_A}"));
        assert!(rotated.unwrap_account_key(account, &wrapped).is_ok());
        assert!(rotated.needs_rotation(&wrapped));
        assert_eq!(format!("{key:?}"), "AccountKey([redacted])");
    }

    #[test]
    fn the_account_key_id_cannot_name_a_keyring_key() {
        assert!(Keyring::parse(&format!("{ACCOUNT_KEY_ID}:{KEY_A}")).is_err());
        assert!(EncryptionKey::new(ACCOUNT_KEY_ID, [0; 32]).is_err());
    }

    #[test]
    fn parse_accepts_order_and_spaces() {
        let keyring = Keyring::parse(&format!(" a:{KEY_A} , b_2-x:{KEY_B}")).unwrap();
        assert_eq!(keyring.active_id(), "a");
        assert_eq!(keyring.ids().collect::<Vec<_>>(), ["a", "b_2-x"]);
    }

    #[test]
    fn parse_errors_explain_without_key_material() {
        let cases: [(String, &str); 9] = [
            (String::new(), "empty"),
            ("   ".to_owned(), "empty"),
            (format!("k1:{KEY_A},"), "entry 2 is empty"),
            (KEY_A.to_owned(), "no ':'"),
            (format!(":{KEY_A}"), "invalid key id"),
            (format!("{KEY_B}:{KEY_A}"), "invalid key id"),
            ("k1:not*base64".to_owned(), "not valid standard base64"),
            ("k1:AAEC".to_owned(), "exactly 32 bytes"),
            (format!("k1:{KEY_A},k1:{KEY_B}"), "more than once"),
        ];
        for (setting, expected) in cases {
            let err = Keyring::parse(&setting).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("CUSTOS_ENCRYPTION_KEYS"), "{message}");
            let reason = reason(err);
            assert!(reason.contains(expected), "{setting:?} gave {reason:?}");
            for secret in [KEY_A, KEY_B, "not*base64", "AAEC"] {
                assert!(!reason.contains(secret), "{reason:?} leaks key material");
            }
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let keyring = Keyring::parse(&format!("k1:{KEY_A}")).unwrap();
        let shown = format!("{keyring:?}");
        assert!(
            shown.contains("k1") && shown.contains("redacted"),
            "{shown}"
        );
        assert!(!shown.contains("[0, 1, 2"), "{shown}");
        let cipher = FieldCipher::new(keyring);
        assert!(format!("{cipher:?}").contains("k1"));
    }

    #[test]
    fn encryption_key_new_validates_id() {
        assert!(EncryptionKey::new("ok", [7; 32]).is_ok());
        assert!(EncryptionKey::new("not ok", [7; 32]).is_err());
        assert!(EncryptionKey::new(&"x".repeat(33), [7; 32]).is_err());
        assert!(Keyring::new(Vec::new()).is_err());
    }
}
