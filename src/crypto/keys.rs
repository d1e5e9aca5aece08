//! Generating key material, and the development key file.
//!
//! Rules:
//! - Keys are 32 bytes from the operating system's CSPRNG, written as standard
//!   base64, in exactly the forms `CUSTOS_ENCRYPTION_KEYS` and
//!   `CUSTOS_BLIND_INDEX_KEY` expect.
//! - Generated material stays inside `SecretString`; it is printed only by the
//!   `keys generate` command that asked for it.
//! - The development key file is created once, owner-only (0600 on unix), and
//!   never overwritten: a second process that loses the race to create it reads
//!   the winner's keys instead, so data stays readable. Warning loudly that dev
//!   keys are in use is the caller's job.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

use super::CryptoError;
use super::blind_index::BlindIndex;
use super::fields::{KEY_ID_RULE, Keyring, bad_key, is_valid_key_id};
use super::tokens::random_bytes;

/// Key id of development keys.
const DEV_KEY_ID: &str = "dev1";
const ENCRYPTION_KEYS_VAR: &str = "CUSTOS_ENCRYPTION_KEYS";
const BLIND_INDEX_KEY_VAR: &str = "CUSTOS_BLIND_INDEX_KEY";
const DEV_FILE_WARNING: &str = "# Custos DEVELOPMENT keys, generated automatically. Never use them in production: anyone holding this file can read the data they protect.";
/// A process that finds the file mid-write waits this long per attempt...
const READ_PAUSE: Duration = Duration::from_millis(20);
/// ...for at most this many attempts (one second) before calling it broken.
const READ_ATTEMPTS: u32 = 50;

/// A fresh pair of settings, ready for the environment.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// The value for `CUSTOS_ENCRYPTION_KEYS`: `id:base64(32 bytes)`.
    pub encryption_keys: SecretString,
    /// The value for `CUSTOS_BLIND_INDEX_KEY`: `base64(32 bytes)`.
    pub blind_index_key: SecretString,
}

/// Generates a new encryption key named `key_id` and a new blind-index key.
pub fn generate(key_id: &str) -> Result<KeyMaterial, CryptoError> {
    if !is_valid_key_id(key_id) {
        return Err(bad_key(KEY_ID_RULE.to_owned()));
    }
    let encryption_key = Zeroizing::new(random_bytes::<32>()?);
    let blind_index_key = Zeroizing::new(random_bytes::<32>()?);
    let encoded_encryption_key = Zeroizing::new(STANDARD.encode(&encryption_key[..]));
    Ok(KeyMaterial {
        encryption_keys: SecretString::from(format!("{key_id}:{}", *encoded_encryption_key)),
        blind_index_key: SecretString::from(STANDARD.encode(&blind_index_key[..])),
    })
}

/// Reads the development keys at `path`, creating the file with fresh keys
/// (id `dev1`) if it does not exist. The flag says whether it was created.
pub fn load_or_create_dev_keys(path: &Path) -> Result<(KeyMaterial, bool), CryptoError> {
    // Generate before touching the file, so a random-source failure cannot
    // leave an empty key file behind.
    let material = generate(DEV_KEY_ID)?;

    let mut options = OpenOptions::new();
    // `create_new` fails if the file exists, so an existing file (and the data
    // encrypted under it) is never clobbered, even by a concurrent process.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let content = Zeroizing::new(format!(
                "{DEV_FILE_WARNING}\n{ENCRYPTION_KEYS_VAR}={}\n{BLIND_INDEX_KEY_VAR}={}\n",
                material.encryption_keys.expose_secret(),
                material.blind_index_key.expose_secret(),
            ));
            // One write, so a concurrent reader sees either a prefix or the
            // whole file; see `read_dev_keys`.
            let written = file
                .write_all(content.as_bytes())
                .and_then(|()| file.sync_all());
            if let Err(source) = written {
                // A half-written key file would fail every later start; remove it.
                let _ = std::fs::remove_file(path);
                return Err(file_error(path, source));
            }
            Ok((material, true))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            read_dev_keys(path).map(|material| (material, false))
        }
        Err(source) => Err(file_error(path, source)),
    }
}

/// Reads an existing key file, waiting briefly if another process is still
/// writing it.
fn read_dev_keys(path: &Path) -> Result<KeyMaterial, CryptoError> {
    for _ in 0..READ_ATTEMPTS {
        let content = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| file_error(path, source))?,
        );
        match parse_dev_keys(&content) {
            DevFile::Complete(material) => return validate(path, material),
            DevFile::Malformed(reason) => return Err(broken(path, reason)),
            DevFile::Incomplete => std::thread::sleep(READ_PAUSE),
        }
    }
    Err(broken(
        path,
        format!("it lacks {ENCRYPTION_KEYS_VAR} or {BLIND_INDEX_KEY_VAR}"),
    ))
}

/// What a read of the key file found.
enum DevFile {
    Complete(KeyMaterial),
    /// Possibly still being written by another process.
    Incomplete,
    /// Definitely wrong; the reason never quotes the file's content.
    Malformed(String),
}

fn parse_dev_keys(content: &str) -> DevFile {
    // The writer ends the file with a newline, so anything else is a partial write.
    if !content.ends_with('\n') {
        return DevFile::Incomplete;
    }
    let mut encryption_keys = None;
    let mut blind_index_key = None;
    for (index, line) in content.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let slot = match line.split_once('=') {
            Some((name, value)) if name.trim() == ENCRYPTION_KEYS_VAR => {
                (&mut encryption_keys, value)
            }
            Some((name, value)) if name.trim() == BLIND_INDEX_KEY_VAR => {
                (&mut blind_index_key, value)
            }
            _ => {
                return DevFile::Malformed(format!(
                    "line {} is not {ENCRYPTION_KEYS_VAR}=... or {BLIND_INDEX_KEY_VAR}=...",
                    index + 1
                ));
            }
        };
        let (target, value) = slot;
        if target.is_some() {
            return DevFile::Malformed(format!("line {} repeats a setting", index + 1));
        }
        *target = Some(SecretString::from(value.trim()));
    }
    match (encryption_keys, blind_index_key) {
        (Some(encryption_keys), Some(blind_index_key)) => DevFile::Complete(KeyMaterial {
            encryption_keys,
            blind_index_key,
        }),
        _ => DevFile::Incomplete,
    }
}

/// Rejects a file whose values the real parsers would refuse, so a broken
/// file is reported against its path rather than as a bad setting.
fn validate(path: &Path, material: KeyMaterial) -> Result<KeyMaterial, CryptoError> {
    Keyring::parse(material.encryption_keys.expose_secret())
        .and_then(|_| BlindIndex::parse(material.blind_index_key.expose_secret()))
        .map_err(|err| broken(path, err.to_string()))?;
    Ok(material)
}

fn broken(path: &Path, reason: String) -> CryptoError {
    file_error(
        path,
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{reason}; delete it to generate new development keys (data encrypted under the old ones becomes unreadable)"
            ),
        ),
    )
}

fn file_error(path: &Path, source: io::Error) -> CryptoError {
    CryptoError::DevKeyFile {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("custos-keys-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn generate_produces_parseable_settings() {
        let material = generate("k2026").unwrap();
        let keyring = Keyring::parse(material.encryption_keys.expose_secret()).unwrap();
        assert_eq!(keyring.active_id(), "k2026");
        BlindIndex::parse(material.blind_index_key.expose_secret()).unwrap();
        assert_eq!(material.blind_index_key.expose_secret().len(), 44);

        let other = generate("k2026").unwrap();
        assert_ne!(
            material.encryption_keys.expose_secret(),
            other.encryption_keys.expose_secret()
        );
        assert_ne!(
            material.blind_index_key.expose_secret(),
            other.blind_index_key.expose_secret()
        );
    }

    #[test]
    fn generate_rejects_bad_id() {
        assert!(matches!(
            generate("has space"),
            Err(CryptoError::BadKey { .. })
        ));
        assert!(generate("").is_err());
    }

    #[test]
    fn debug_hides_keys() {
        let material = generate("k1").unwrap();
        let shown = format!("{material:?}");
        assert!(
            !shown.contains(material.blind_index_key.expose_secret()),
            "{shown}"
        );
        assert!(
            !shown.contains(material.encryption_keys.expose_secret()),
            "{shown}"
        );
    }

    #[test]
    fn creates_then_rereads_dev_keys() {
        let dir = TempDir::new();
        let path = dir.0.join("custos.dev-keys");

        let (created, was_created) = load_or_create_dev_keys(&path).unwrap();
        assert!(was_created);
        let (reread, was_created_again) = load_or_create_dev_keys(&path).unwrap();
        assert!(!was_created_again);

        assert_eq!(
            created.encryption_keys.expose_secret(),
            reread.encryption_keys.expose_secret()
        );
        assert_eq!(
            created.blind_index_key.expose_secret(),
            reread.blind_index_key.expose_secret()
        );
        let keyring = Keyring::parse(reread.encryption_keys.expose_secret()).unwrap();
        assert_eq!(keyring.active_id(), "dev1");
        BlindIndex::parse(reread.blind_index_key.expose_secret()).unwrap();

        let content = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with('#') && lines[0].contains("DEVELOPMENT"));
        assert!(lines[1].starts_with("CUSTOS_ENCRYPTION_KEYS=dev1:"));
        assert!(lines[2].starts_with("CUSTOS_BLIND_INDEX_KEY="));
    }

    #[cfg(unix)]
    #[test]
    fn dev_key_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new();
        let path = dir.0.join("custos.dev-keys");
        load_or_create_dev_keys(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn concurrent_creators_agree() {
        let dir = TempDir::new();
        let path = dir.0.join("custos.dev-keys");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || load_or_create_dev_keys(&path).unwrap())
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let first = results[0].0.encryption_keys.expose_secret();
        assert!(
            results
                .iter()
                .all(|(m, _)| m.encryption_keys.expose_secret() == first)
        );
    }

    #[test]
    fn malformed_file_names_path_without_content() {
        let dir = TempDir::new();
        let path = dir.0.join("custos.dev-keys");
        std::fs::write(
            &path,
            "CUSTOS_ENCRYPTION_KEYS=dev1:c2VjcmV0\nCUSTOS_BLIND_INDEX_KEY=c2VjcmV0\n",
        )
        .unwrap();
        let message = load_or_create_dev_keys(&path).unwrap_err().to_string();
        assert!(message.contains("custos.dev-keys"), "{message}");
        assert!(message.contains("32 bytes"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");

        std::fs::write(&path, "SOMETHING=else\n").unwrap();
        let message = load_or_create_dev_keys(&path).unwrap_err().to_string();
        assert!(
            message.contains("line 1") && !message.contains("else"),
            "{message}"
        );
    }

    #[test]
    fn truncated_file_is_reported_after_waiting() {
        let dir = TempDir::new();
        let path = dir.0.join("custos.dev-keys");
        std::fs::write(&path, "# comment\nCUSTOS_ENCRYPTION_KEYS=dev1:abc\n").unwrap();
        let err = load_or_create_dev_keys(&path).unwrap_err();
        assert!(matches!(err, CryptoError::DevKeyFile { .. }), "{err:?}");
        assert!(err.to_string().contains("lacks"), "{err}");
    }
}
