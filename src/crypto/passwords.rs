//! Password hashing with argon2id.
//!
//! Rules:
//! - Parameters are explicit (m=19456 KiB, t=2, p=1, the OWASP floor), never the
//!   library's defaults, so a dependency upgrade cannot change them silently.
//! - Hashing runs on a fixed set of threads of its own, one per core, fed from
//!   one queue: each hash takes about 19 MiB and a core for tens of
//!   milliseconds, so the bound keeps a burst of logins from exhausting memory
//!   or starving the async runtime. Under load a thread takes the next hash as
//!   soon as it finishes one, without a wake-up or a hand-over between
//!   threads. With tokio's blocking pool and a semaphore instead, two cores
//!   hashing at once did about 10 % fewer hashes a second than two plain
//!   loops (bench/RESULTS.md, "Hashing threads"); with these threads, as many.
//! - Each thread allocates its 19 MiB of argon2 working memory once and keeps
//!   it. Allocating it per hash made glibc keep freed 19 MiB blocks in every
//!   thread's arena: the server grew from 22 MiB to over 700 MiB under
//!   signup/login load. Kept, it stays at threads × 19 MiB.
//! - A hash whose caller has gone (the request was dropped while it queued)
//!   is skipped: under overload, clients that gave up cost no hashing.
//! - Verifying an unknown account, or a stored hash that cannot be parsed, still
//!   does one full hash against a fixed dummy, so timing does not reveal
//!   whether an account exists.
//! - Passwords stay inside `SecretString`; nothing secret is logged.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret as _, SecretString};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::oneshot;

use super::CryptoError;

/// Memory cost in KiB (19 MiB).
const M_COST_KIB: u32 = 19_456;
/// Number of passes.
const T_COST: u32 = 2;
/// Lanes; 1 because concurrency comes from many requests, not one hash.
const P_COST: u32 = 1;
/// Output length in bytes.
const OUTPUT_LEN: usize = 32;
/// Salt length in bytes (the PHC format's recommendation).
const SALT_LEN: usize = 16;
/// What the unknown-account path verifies; no real password is compared to it
/// in a way that could succeed, since `verify(_, None)` always answers false.
const DUMMY_PASSWORD: &[u8] = b"custos dummy password for unknown accounts";

/// The dummy PHC string, hashed once on first need.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// One queued piece of hashing, run with the thread's working memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies passwords on `threads` threads of its own.
///
/// Cloning is cheap and clones share the threads and their memory; the
/// threads end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    queue: Sender<Job>,
    threads: usize,
    /// Bytes of working memory the threads keep, summed.
    retained: Arc<AtomicUsize>,
    /// Jobs queued and not yet taken by a thread.
    waiting: Arc<AtomicUsize>,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads; callers pass the CPU count
    /// (`std::thread::available_parallelism`), which bounds argon2's memory to
    /// about 19 MiB per core. Zero is treated as one. Fails only when the
    /// operating system refuses a thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let retained = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        for index in 0..threads {
            let jobs = Arc::clone(&jobs);
            let retained = Arc::clone(&retained);
            let waiting = Arc::clone(&waiting);
            std::thread::Builder::new()
                .name(format!("custos-argon2-{index}"))
                .spawn(move || hash_jobs(&jobs, &retained, &waiting))?;
        }
        Ok(Self {
            queue,
            threads,
            retained,
            waiting,
        })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: &SecretString) -> Result<String, CryptoError> {
        let password = password.clone();
        self.run(move |memory| hash_blocking(password.expose_secret().as_bytes(), memory))
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
        self.run(move |memory| {
            verify_blocking(password.expose_secret().as_bytes(), phc.as_deref(), memory)
        })
        .await?
    }

    /// How many hashes can run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Hashes queued and not yet started: above zero for long, sign-ups and
    /// sign-ins are waiting for a core (`/metrics`).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Bytes of argon2 working memory currently kept for reuse.
    pub fn retained_memory_bytes(&self) -> usize {
        self.retained.load(Ordering::Relaxed)
    }

    /// Queues `work` for the next free hashing thread and waits for its
    /// answer. Dropping the returned future before the work starts means
    /// the work never runs.
    async fn run<T, F>(&self, work: F) -> Result<T, CryptoError>
    where
        F: FnOnce(&mut Vec<Block>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            if answer.is_closed() {
                return;
            }
            // The caller may have gone meanwhile; then nobody needs it.
            let _ = answer.send(work(memory));
        });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(CryptoError::Hash);
        }
        answered.await.map_err(|_| CryptoError::Hash)
    }
}

/// A hashing thread: runs queued jobs in its own working memory until every
/// `PasswordHasher` clone (and with them the queue's sender) is gone.
fn hash_jobs(jobs: &Mutex<Receiver<Job>>, retained: &AtomicUsize, waiting: &AtomicUsize) {
    let mut memory = Vec::new();
    while let Some(job) = next_job(jobs) {
        waiting.fetch_sub(1, Ordering::Relaxed);
        let before = memory.len();
        // A job cannot panic by the crate's lints; were one to, its caller
        // gets an error (the answer is dropped) and the thread goes on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
        // The buffer only grows, to our parameters' size at most.
        let grown = memory.len().saturating_sub(before) * Block::SIZE;
        retained.fetch_add(grown, Ordering::Relaxed);
    }
}

/// Waits for the next job; `None` once the queue is closed. The lock is
/// held only while waiting, so one idle thread waits on the queue and the
/// others on the lock.
fn next_job(jobs: &Mutex<Receiver<Job>>) -> Option<Job> {
    jobs.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .recv()
        .ok()
}

fn our_params() -> Result<Params, CryptoError> {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|_| CryptoError::Hash)
}

/// Runs argon2 into `out`, in `memory` when the parameters need no more
/// than ours (the buffer grows to that once), else in memory of its own
/// that is freed afterwards (only hashes stored with larger parameters).
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), CryptoError> {
    let blocks = params.block_count();
    let ours = our_params()?.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let result = if blocks <= ours {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        let buffer = memory.get_mut(..blocks).ok_or(CryptoError::Hash)?;
        argon2.hash_password_into_with_memory(password, salt, out, buffer)
    } else {
        argon2.hash_password_into(password, salt, out)
    };
    result.map_err(|_| CryptoError::Hash)
}

fn hash_blocking(password: &[u8], memory: &mut Vec<Block>) -> Result<String, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|_| CryptoError::Hash)?;
    let params = our_params()?;
    let mut out = [0u8; OUTPUT_LEN];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password,
        &salt,
        &mut out,
        memory,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| CryptoError::Hash)?,
        salt: Some(Salt::new(&salt).map_err(|_| CryptoError::Hash)?),
        hash: Some(Output::new(&out).map_err(|_| CryptoError::Hash)?),
    };
    Ok(phc.to_string())
}

/// Why a stored hash cannot be checked.
enum Unusable {
    Parse,
    Parameters,
}

fn verify_blocking(
    password: &[u8],
    phc: Option<&str>,
    memory: &mut Vec<Block>,
) -> Result<bool, CryptoError> {
    let Some(phc) = phc else {
        burn_dummy(password, memory)?;
        return Ok(false);
    };
    match check(password, phc, memory)? {
        Ok(matches) => Ok(matches),
        Err(Unusable::Parse) => unusable_hash(password, "could not be parsed", memory),
        // Algorithm and parameter errors fail before any hashing.
        Err(Unusable::Parameters) => unusable_hash(
            password,
            "names an unsupported algorithm or parameters",
            memory,
        ),
    }
}

/// Hashes `password` with the stored hash's own algorithm, version,
/// parameters and salt, and compares in constant time (`Output`'s `==`).
fn check(
    password: &[u8],
    phc: &str,
    memory: &mut Vec<Block>,
) -> Result<Result<bool, Unusable>, CryptoError> {
    // A hash without salt or output would be "verified" instantly as a
    // mismatch, so it counts as unusable and gets the dummy work too.
    let parsed = match PasswordHash::new(phc) {
        Ok(parsed) => parsed,
        Err(_) => return Ok(Err(Unusable::Parse)),
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Ok(Err(Unusable::Parse));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str());
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let params = Params::try_from(&parsed);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, params) else {
        return Ok(Err(Unusable::Parameters));
    };
    let mut out = vec![0u8; expected.len()];
    if compute(
        algorithm,
        version,
        params,
        password,
        salt.as_ref(),
        &mut out,
        memory,
    )
    .is_err()
    {
        return Ok(Err(Unusable::Parameters));
    }
    let computed = Output::new(&out).map_err(|_| CryptoError::Hash)?;
    Ok(Ok(&computed == expected))
}

/// Answers a mismatch for a stored hash that cannot be checked, after the
/// dummy work so the timing looks like a real mismatch.
fn unusable_hash(
    password: &[u8],
    problem: &'static str,
    memory: &mut Vec<Block>,
) -> Result<bool, CryptoError> {
    // Only the kind of problem is logged, never the hash or the password.
    tracing::warn!(
        problem,
        "stored password hash is unusable; treating it as a mismatch"
    );
    burn_dummy(password, memory)?;
    Ok(false)
}

/// One full verification against the dummy hash, result ignored.
fn burn_dummy(password: &[u8], memory: &mut Vec<Block>) -> Result<(), CryptoError> {
    let dummy = dummy_hash(memory)?;
    // The outcome is irrelevant; only the time spent matters.
    let _ = check(password, dummy, memory)?;
    Ok(())
}

fn dummy_hash(memory: &mut Vec<Block>) -> Result<&'static str, CryptoError> {
    if let Some(hash) = DUMMY_HASH.get() {
        return Ok(hash);
    }
    // Two first callers may both compute it; one result wins and both are valid.
    let computed = hash_blocking(DUMMY_PASSWORD, memory)?;
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
        let hasher = PasswordHasher::new(2).unwrap();
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
        let hasher = PasswordHasher::new(2).unwrap();
        let first = hasher.hash(&secret("pw")).await.unwrap();
        let second = hasher.hash(&secret("pw")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn unknown_account_is_false() {
        let hasher = PasswordHasher::new(1).unwrap();
        assert!(!hasher.verify(&secret("anything"), None).await.unwrap());
        // Even the dummy's own password never matches an unknown account.
        let dummy = std::str::from_utf8(DUMMY_PASSWORD).unwrap();
        assert!(!hasher.verify(&secret(dummy), None).await.unwrap());
        assert!(
            dummy_hash(&mut Vec::new())
                .unwrap()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[tokio::test]
    async fn malformed_hash_is_false() {
        let hasher = PasswordHasher::new(1).unwrap();
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

    #[tokio::test]
    async fn working_memory_is_reused_not_regrown() {
        let hasher = PasswordHasher::new(2).unwrap();
        let phc = hasher.hash(&secret("pw")).await.unwrap();
        let mut checks = Vec::new();
        for _ in 0..8 {
            let hasher = hasher.clone();
            let phc = phc.clone();
            checks.push(tokio::spawn(async move {
                hasher.verify(&secret("pw"), Some(&phc)).await.unwrap()
            }));
        }
        for check in checks {
            assert!(check.await.unwrap());
        }
        // Never more buffers than threads, each exactly our memory cost.
        let per_hash = usize::try_from(M_COST_KIB).unwrap() * 1024;
        let retained = hasher.retained_memory_bytes();
        assert!(
            retained >= per_hash && retained <= 2 * per_hash,
            "{retained}"
        );
    }

    /// Hashes made by the library's own API (other parameters included)
    /// verify here, and ours verify there: the PHC strings are standard.
    #[tokio::test]
    async fn interoperates_with_the_library_api() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1).unwrap();
        for (m, t) in [(8_192, 1), (M_COST_KIB, T_COST), (32_768, 3)] {
            let params = Params::new(m, t, 1, None).unwrap();
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"shared secret")
                .unwrap()
                .to_string();
            assert!(
                hasher
                    .verify(&secret("shared secret"), Some(&theirs))
                    .await
                    .unwrap(),
                "m={m} t={t}"
            );
            assert!(
                !hasher
                    .verify(&secret("other secret"), Some(&theirs))
                    .await
                    .unwrap()
            );
        }
        let ours = hasher.hash(&secret("shared secret")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"shared secret", &parsed)
                .is_ok()
        );
        // The larger hash used memory of its own; the kept buffer is ours.
        let per_hash = usize::try_from(M_COST_KIB).unwrap() * 1024;
        assert_eq!(hasher.retained_memory_bytes(), per_hash);
    }

    #[tokio::test]
    async fn zero_threads_still_makes_progress() {
        let hasher = PasswordHasher::new(0).unwrap();
        assert_eq!(hasher.threads(), 1);
        let phc = hasher.hash(&secret("pw")).await.unwrap();
        assert!(hasher.verify(&secret("pw"), Some(&phc)).await.unwrap());
    }

    /// Work that panics fails its own caller only; the thread goes on.
    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_the_thread_goes_on() {
        let hasher = PasswordHasher::new(1).unwrap();
        let failed = hasher.run(|_| -> u8 { panic!("inside a hash") }).await;
        assert!(matches!(failed, Err(CryptoError::Hash)));
        let phc = hasher.hash(&secret("pw")).await.unwrap();
        assert!(hasher.verify(&secret("pw"), Some(&phc)).await.unwrap());
        assert_eq!(hasher.waiting(), 0);
    }

    /// A hash queued for a request that has gone is not computed.
    #[tokio::test]
    async fn work_whose_caller_left_is_skipped() {
        use std::sync::atomic::AtomicBool;
        let hasher = PasswordHasher::new(1).unwrap();
        // Hold the only thread until the abandoned work is queued.
        let (started, wait_started) = std::sync::mpsc::channel::<()>();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(move |_| {
                        started.send(()).unwrap();
                        wait_release.recv().unwrap();
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || wait_started.recv().unwrap())
            .await
            .unwrap();

        let ran = Arc::new(AtomicBool::new(false));
        let mut abandoned = Box::pin(hasher.run({
            let ran = Arc::clone(&ran);
            move |_| ran.store(true, Ordering::SeqCst)
        }));
        // One poll queues it; then its caller goes away.
        tokio::select! {
            biased;
            _ = &mut abandoned => panic!("the thread is still busy"),
            () = std::future::ready(()) => {}
        }
        assert_eq!(hasher.waiting(), 1);
        drop(abandoned);

        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // Jobs run in order: once this one is done, the abandoned one was seen.
        let after = hasher.run(|_| 7).await.unwrap();
        assert_eq!(after, 7);
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(hasher.waiting(), 0);
    }
}
