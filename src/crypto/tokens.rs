//! Single-use tokens (password reset, email confirmation, sessions) and the
//! random source behind them.
//!
//! Rules:
//! - A token is 256 bits from the operating system's CSPRNG, sent to the user
//!   as unpadded URL-safe base64 (43 characters), safe in a query string.
//! - Only SHA-256 of the token string is stored. The token already carries 256
//!   bits of entropy, so a fast unsalted hash is enough: a database leak gives
//!   nothing that can be presented back.
//! - The token itself stays inside `SecretString` until it is put into a link.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// A freshly issued token: the secret to hand out and the hash to store.
pub struct IssuedToken {
    /// The token to send to the user (URL-safe base64 without padding).
    pub token: SecretString,
    /// SHA-256 of the token string's bytes; the only form that is stored.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &self.token)
            .field("hash", &hex::encode(&self.hash))
            .finish()
    }
}

/// Issues a new random token together with its stored hash.
pub fn issue() -> Result<IssuedToken, CryptoError> {
    let bytes = Zeroizing::new(random_bytes::<TOKEN_BYTES>()?);
    let token = SecretString::from(URL_SAFE_NO_PAD.encode(&bytes[..]));
    let hash = hash_token(token.expose_secret());
    Ok(IssuedToken { token, hash })
}

/// The stored form of a presented token: SHA-256 of its bytes.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let issued = issue().unwrap();
        let token = issued.token.expose_secret();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(token).unwrap().len(), 32);
    }

    #[test]
    fn hash_matches_token() {
        let issued = issue().unwrap();
        assert_eq!(issued.hash, hash_token(issued.token.expose_secret()));
        assert_eq!(issued.hash.len(), 32);
        // Known answer: SHA-256("abc").
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_differ() {
        let first = issue().unwrap();
        let second = issue().unwrap();
        assert_ne!(first.token.expose_secret(), second.token.expose_secret());
        assert_ne!(first.hash, second.hash);
    }

    #[test]
    fn debug_hides_token() {
        let issued = issue().unwrap();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(issued.token.expose_secret()), "{shown}");
    }

    #[test]
    fn random_bytes_vary() {
        assert_ne!(random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
    }
}
