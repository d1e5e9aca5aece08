//! Password hashing with argon2id.
//!
//! Rules:
//! - Parameters are explicit (m=19456 KiB, t=2, p=1, the OWASP floor), never the
//!   library's defaults, so a dependency upgrade cannot change them silently.
//! - Hashing runs on tokio's blocking pool while holding a semaphore permit:
//!   each hash takes about 19 MiB and a core for tens of milliseconds, so the
//!   bound keeps a burst of logins from exhausting memory or starving the runtime.
//! - Verifying an unknown account, or a stored hash that cannot be parsed, still
//!   does one full hash against a fixed dummy, so timing does not reveal
//!   whether an account exists.
//! - Passwords stay inside `SecretString`; nothing secret is logged.

use argon2::password_hash::Error as PhcError;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

use super::CryptoError;

/// Memory cost in KiB (19 MiB).
const M_COST_KIB: u32 = 19_456;
/// Number of passes.
const T_COST: u32 = 2;
/// Lanes; 1 because concurrency comes from many requests, not one hash.
const P_COST: u32 = 1;
/// Output length in bytes.
const OUTPUT_LEN: usize = 32;
/// What the unknown-account path verifies; no real password is compared to it
/// in a way that could succeed, since `verify(_, None)` always answers false.
const DUMMY_PASSWORD: &[u8] = b"custos dummy password for unknown accounts";

/// The dummy PHC string, hashed once on first need.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// Hashes and verifies passwords, at most `max_concurrent` at a time.
///
/// Cloning is cheap and clones share the same bound.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    /// Allows `max_concurrent` hashes at once; callers pass the CPU count
    /// (`std::thread::available_parallelism`), which bounds argon2's memory to
    /// about 19 MiB per core. Zero is treated as one.
    pub fn new(max_concurrent: usize) -> Self {
        let permits = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: &SecretString) -> Result<String, CryptoError> {
        let password = password.clone();
        self.run_blocking(move || hash_blocking(password.expose_secret().as_bytes()))
            .await?
    }

    /// Whether `password` matches the stored `phc` hash.
    ///
    /// `None` (no such account) and an unparseable hash both answer `Ok(false)`
    /// after the same amount of work as a real check.
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<bool, CryptoError> {
        let password = password.clone();
        let phc = phc.map(str::to_owned);
        self.run_blocking(move || {
            verify_blocking(password.expose_secret().as_bytes(), phc.as_deref())
        })
        .await?
    }

    /// Runs `work` on the blocking pool under a permit. The permit moves into
    /// the task, so the bound holds even if the caller's future is dropped
    /// while the hash is still running.
    async fn run_blocking<T, F>(&self, work: F) -> Result<T, CryptoError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| CryptoError::Hash)?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|_| CryptoError::Hash)
    }
}

fn argon2() -> Result<Argon2<'static>, CryptoError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|_| CryptoError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String, CryptoError> {
    // `hash_password` draws a fresh 16-byte salt from the OS.
    let hash = argon2()?
        .hash_password(password)
        .map_err(|_| CryptoError::Hash)?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &[u8], phc: Option<&str>) -> Result<bool, CryptoError> {
    let Some(phc) = phc else {
        burn_dummy(password)?;
        return Ok(false);
    };
    // A hash without salt or output would be "verified" instantly as a
    // mismatch, so it counts as unusable and gets the dummy work too.
    let parsed = match PasswordHash::new(phc) {
        Ok(parsed) if parsed.salt.is_some() && parsed.hash.is_some() => parsed,
        _ => return unusable_hash(password, "could not be parsed"),
    };
    match argon2()?.verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::PasswordInvalid) => Ok(false),
        // Algorithm and parameter errors fail before any hashing.
        Err(_) => unusable_hash(password, "names an unsupported algorithm or parameters"),
    }
}

/// Answers a mismatch for a stored hash that cannot be checked, after the
/// dummy work so the timing looks like a real mismatch.
fn unusable_hash(password: &[u8], problem: &'static str) -> Result<bool, CryptoError> {
    // Only the kind of problem is logged, never the hash or the password.
    tracing::warn!(
        problem,
        "stored password hash is unusable; treating it as a mismatch"
    );
    burn_dummy(password)?;
    Ok(false)
}

/// One full verification against the dummy hash, result ignored.
fn burn_dummy(password: &[u8]) -> Result<(), CryptoError> {
    let dummy = dummy_hash()?;
    let parsed = PasswordHash::new(dummy).map_err(|_| CryptoError::Hash)?;
    // The outcome is irrelevant; only the time spent matters.
    let _ = argon2()?.verify_password(password, &parsed);
    Ok(())
}

fn dummy_hash() -> Result<&'static str, CryptoError> {
    if let Some(hash) = DUMMY_HASH.get() {
        return Ok(hash);
    }
    // Two first callers may both compute it; one result wins and both are valid.
    let computed = hash_blocking(DUMMY_PASSWORD)?;
    Ok(DUMMY_HASH.get_or_init(|| computed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2);
        let phc = hasher.hash(&secret("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            hasher
                .verify(&secret("correct horse"), Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&secret("wrong horse"), Some(&phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn same_password_gets_fresh_salt() {
        let hasher = PasswordHasher::new(2);
        let first = hasher.hash(&secret("pw")).await.unwrap();
        let second = hasher.hash(&secret("pw")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn unknown_account_is_false() {
        let hasher = PasswordHasher::new(1);
        assert!(!hasher.verify(&secret("anything"), None).await.unwrap());
        // Even the dummy's own password never matches an unknown account.
        let dummy = std::str::from_utf8(DUMMY_PASSWORD).unwrap();
        assert!(!hasher.verify(&secret(dummy), None).await.unwrap());
        assert!(
            dummy_hash()
                .unwrap()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[tokio::test]
    async fn malformed_hash_is_false() {
        let hasher = PasswordHasher::new(1);
        for phc in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$md5$abc$def",
        ] {
            assert!(
                !hasher.verify(&secret("pw"), Some(phc)).await.unwrap(),
                "{phc}"
            );
        }
    }

    #[test]
    fn zero_concurrency_still_makes_progress() {
        let hasher = PasswordHasher::new(0);
        assert_eq!(hasher.permits.available_permits(), 1);
    }
}
