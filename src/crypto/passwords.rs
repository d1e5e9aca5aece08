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
//! - The queue is bounded and shared fairly, so one client cannot stall
//!   everyone's sign-ins. Every hash is queued for a [`Caller`]: the HTTP
//!   layer names the request's client network (an IPv4 address or an IPv6
//!   /64, as the per-IP limits count) for the whole request
//!   ([`as_caller`]); work outside a request is [`Caller::LOCAL`]. Callers
//!   take turns: a free thread takes the oldest hash of the caller whose
//!   turn it is, then that caller goes to the back of the line. So a hash
//!   queued behind a flood waits for about one hash per other waiting
//!   caller, not for the whole flood. One caller may have at most
//!   [`WAITING_PER_CALLER_PER_THREAD`] hashes waiting per thread, and all
//!   callers together [`WAITING_PER_THREAD`] per thread (at 20–70 ms a hash,
//!   about a second or two of work per core); past either bound a hash is
//!   refused at once with [`CryptoError::Busy`], answered `RATE_LIMITED`
//!   with a one-second wait. Refusing beats queueing: a request that would
//!   wait longer than a client's patience only costs memory and then the
//!   work of a hash nobody reads. The per-caller share means filling the
//!   queue takes many networks at once, and the per-IP limits and the
//!   per-name and per-account throttles bound each of them further; what
//!   remains is capacity, answered by more cores.
//! - Verifying an unknown account, or a stored hash that cannot be parsed, still
//!   does one full hash against a fixed dummy, so timing does not reveal
//!   whether an account exists.
//! - Passwords stay inside `SecretString`; nothing secret is logged.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
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

/// Most hashes waiting in all, per hashing thread.
pub const WAITING_PER_THREAD: usize = 32;
/// Most hashes one caller may have waiting, per hashing thread: room for
/// several people behind one address signing in at the same moment, and an
/// eighth of the queue.
pub const WAITING_PER_CALLER_PER_THREAD: usize = 4;

/// The dummy PHC string, hashed once on first need.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

tokio::task_local! {
    /// Whom the hashes of the running request are for.
    static CALLER: Caller;
}

/// Whose share of the queue a hash spends (see the module's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller(u128);

impl Caller {
    /// Work not done for a client: the command line, background jobs.
    pub const LOCAL: Self = Self(0);

    /// The caller named by `key`; distinct keys have distinct shares.
    pub const fn new(key: u128) -> Self {
        Self(key)
    }
}

/// Runs `work` with every hash it queues counted as `caller`'s.
pub async fn as_caller<F: Future>(caller: Caller, work: F) -> F::Output {
    CALLER.scope(caller, work).await
}

/// One queued piece of hashing, run with the thread's working memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The waiting hashes, by caller, and whose turn is next.
#[derive(Default)]
struct Queue {
    by_caller: HashMap<Caller, VecDeque<Job>>,
    /// Callers with hashes waiting, in the order they are served.
    turns: VecDeque<Caller>,
    waiting: usize,
    /// Set when the last `PasswordHasher` clone is dropped.
    closed: bool,
}

impl Queue {
    /// The next hash to run: the oldest of the caller whose turn it is.
    fn next(&mut self) -> Option<Job> {
        let caller = self.turns.pop_front()?;
        let own = self.by_caller.get_mut(&caller)?;
        let job = own.pop_front()?;
        if own.is_empty() {
            self.by_caller.remove(&caller);
        } else {
            self.turns.push_back(caller);
        }
        self.waiting -= 1;
        Some(job)
    }
}

/// What the hashing threads and the handles share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a hash is queued or the queue closes.
    ready: Condvar,
    max_waiting: usize,
    max_waiting_per_caller: usize,
    /// Bytes of working memory the threads keep, summed.
    retained: AtomicUsize,
    /// Hashes queued and not yet taken by a thread (mirrors the queue's
    /// count, for reads without the lock).
    waiting: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` for `caller`, or refuses it: `Busy` past a bound.
    fn submit(&self, caller: Caller, job: Job) -> Result<(), CryptoError> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(CryptoError::Hash);
        }
        let own = queue.by_caller.get(&caller).map_or(0, VecDeque::len);
        if queue.waiting >= self.max_waiting || own >= self.max_waiting_per_caller {
            drop(queue);
            tracing::info!(
                target: "security",
                event = "password_queue_full",
                caller_full = own >= self.max_waiting_per_caller,
                "password hash refused: the queue or the caller's share is full"
            );
            return Err(CryptoError::Busy);
        }
        queue.by_caller.entry(caller).or_default().push_back(job);
        if own == 0 {
            queue.turns.push_back(caller);
        }
        queue.waiting += 1;
        self.waiting.store(queue.waiting, Ordering::Relaxed);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for the next hash; `None` once the queue is closed.
    fn take(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if queue.closed {
                return None;
            }
            if let Some(job) = queue.next() {
                self.waiting.store(queue.waiting, Ordering::Relaxed);
                return Some(job);
            }
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Closes the queue when the last `PasswordHasher` clone goes, which ends
/// the threads.
struct Owner {
    shared: Arc<Shared>,
    threads: usize,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Hashes and verifies passwords on `threads` threads of its own.
///
/// Cloning is cheap and clones share the threads and their memory; the
/// threads end when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("threads", &self.owner.threads)
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl PasswordHasher {
    /// Starts `threads` hashing threads; callers pass the CPU count
    /// (`std::thread::available_parallelism`), which bounds argon2's memory to
    /// about 19 MiB per core. Zero is treated as one. The queue takes
    /// [`WAITING_PER_THREAD`] and [`WAITING_PER_CALLER_PER_THREAD`] hashes
    /// per thread. Fails only when the operating system refuses a thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        Self::with_bounds(
            threads,
            WAITING_PER_THREAD * threads,
            WAITING_PER_CALLER_PER_THREAD * threads,
        )
    }

    /// Starts `threads` hashing threads (at least one) with at most
    /// `max_waiting` hashes waiting, `max_waiting_per_caller` of them for
    /// one caller (each at least one).
    pub fn with_bounds(
        threads: usize,
        max_waiting: usize,
        max_waiting_per_caller: usize,
    ) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            max_waiting: max_waiting.max(1),
            max_waiting_per_caller: max_waiting_per_caller.max(1),
            retained: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        });
        for index in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("custos-argon2-{index}"))
                .spawn(move || hash_jobs(&shared))?;
        }
        Ok(Self {
            owner: Arc::new(Owner { shared, threads }),
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
        self.owner.threads
    }

    /// Hashes queued and not yet started: above zero for long, sign-ups and
    /// sign-ins are waiting for a core (`/metrics`).
    pub fn waiting(&self) -> usize {
        self.owner.shared.waiting.load(Ordering::Relaxed)
    }

    /// Bytes of argon2 working memory currently kept for reuse.
    pub fn retained_memory_bytes(&self) -> usize {
        self.owner.shared.retained.load(Ordering::Relaxed)
    }

    /// Queues `work` for the next free hashing thread, as the current
    /// caller's (see [`as_caller`]), and waits for its answer. `Busy` at
    /// once when the queue or the caller's share of it is full. Dropping
    /// the returned future before the work starts means the work never
    /// runs.
    async fn run<T, F>(&self, work: F) -> Result<T, CryptoError>
    where
        F: FnOnce(&mut Vec<Block>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let caller = CALLER.try_with(|caller| *caller).unwrap_or(Caller::LOCAL);
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            if answer.is_closed() {
                return;
            }
            // The caller may have gone meanwhile; then nobody needs it.
            let _ = answer.send(work(memory));
        });
        self.owner.shared.submit(caller, job)?;
        answered.await.map_err(|_| CryptoError::Hash)
    }
}

/// A hashing thread: runs queued jobs in its own working memory until the
/// queue closes (every `PasswordHasher` clone is gone).
fn hash_jobs(shared: &Shared) {
    let mut memory = Vec::new();
    while let Some(job) = shared.take() {
        let before = memory.len();
        // A job cannot panic by the crate's lints; were one to, its caller
        // gets an error (the answer is dropped) and the thread goes on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
        // The buffer only grows, to our parameters' size at most.
        let grown = memory.len().saturating_sub(before) * Block::SIZE;
        shared.retained.fetch_add(grown, Ordering::Relaxed);
    }
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

    /// Occupies the only thread of `hasher` until the returned sender is
    /// used (or dropped).
    async fn hold_the_thread(
        hasher: &PasswordHasher,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), CryptoError>>,
    ) {
        let (started, wait_started) = std::sync::mpsc::channel::<()>();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(move |_| {
                        started.send(()).unwrap();
                        let _ = wait_release.recv();
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || wait_started.recv().unwrap())
            .await
            .unwrap();
        (release, busy)
    }

    /// Polls `work` once: its answer if it has one already (a refusal
    /// does), else `None` with the work queued.
    async fn poll_once<F: Future + Unpin>(work: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = work => Some(out),
            () = std::future::ready(()) => None,
        }
    }

    type Queued = std::pin::Pin<Box<dyn Future<Output = Result<(), CryptoError>> + Send>>;

    /// Queues, as `caller`, work that notes `name` in `ran` when it runs.
    async fn queue_as(
        hasher: &PasswordHasher,
        caller: Caller,
        name: &'static str,
        ran: &Arc<Mutex<Vec<&'static str>>>,
    ) -> Result<Queued, CryptoError> {
        let ran = Arc::clone(ran);
        let hasher = hasher.clone();
        let mut work: Queued = Box::pin(as_caller(caller, async move {
            hasher.run(move |_| ran.lock().unwrap().push(name)).await
        }));
        match poll_once(&mut work).await {
            None => Ok(work),
            Some(Err(refused)) => Err(refused),
            Some(Ok(())) => panic!("{name} ran while the thread was held"),
        }
    }

    const FLOODER: Caller = Caller::new(1);
    const SOMEONE: Caller = Caller::new(2);
    const THIRD: Caller = Caller::new(3);

    /// One caller past its share is refused at once; another still gets in.
    #[tokio::test]
    async fn one_caller_cannot_take_more_than_its_share() {
        let hasher = PasswordHasher::with_bounds(1, 10, 2).unwrap();
        let (release, busy) = hold_the_thread(&hasher).await;
        let ran = Arc::new(Mutex::new(Vec::new()));
        let first = queue_as(&hasher, FLOODER, "flood 1", &ran).await.unwrap();
        let second = queue_as(&hasher, FLOODER, "flood 2", &ran).await.unwrap();
        for _ in 0..5 {
            let refused = queue_as(&hasher, FLOODER, "flood more", &ran).await;
            assert!(matches!(refused, Err(CryptoError::Busy)));
        }
        assert_eq!(hasher.waiting(), 2, "refusals queue nothing");
        let other = queue_as(&hasher, SOMEONE, "someone", &ran).await.unwrap();
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for work in [first, second, other] {
            work.await.unwrap();
        }
        assert!(!ran.lock().unwrap().contains(&"flood more"));
        assert_eq!(hasher.waiting(), 0);
        // The share is of waiting hashes: once served, the caller may queue again.
        let hash = as_caller(FLOODER, hasher.hash(&secret("pw")))
            .await
            .unwrap();
        assert!(
            as_caller(FLOODER, hasher.verify(&secret("pw"), Some(&hash)))
                .await
                .unwrap()
        );
    }

    /// A hash queued behind a flood waits for one of the flood's hashes,
    /// not for all of them: callers take turns.
    #[tokio::test]
    async fn callers_take_turns_so_a_flood_does_not_stall_others() {
        let hasher = PasswordHasher::with_bounds(1, 16, 8).unwrap();
        let (release, busy) = hold_the_thread(&hasher).await;
        let ran = Arc::new(Mutex::new(Vec::new()));
        let mut queued = Vec::new();
        for name in ["flood 1", "flood 2", "flood 3", "flood 4"] {
            queued.push(queue_as(&hasher, FLOODER, name, &ran).await.unwrap());
        }
        queued.push(queue_as(&hasher, SOMEONE, "someone", &ran).await.unwrap());
        queued.push(queue_as(&hasher, THIRD, "third", &ran).await.unwrap());
        queued.push(
            queue_as(&hasher, SOMEONE, "someone again", &ran)
                .await
                .unwrap(),
        );
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for work in queued {
            work.await.unwrap();
        }
        assert_eq!(
            *ran.lock().unwrap(),
            vec![
                "flood 1",
                "someone",
                "third",
                "flood 2",
                "someone again",
                "flood 3",
                "flood 4"
            ]
        );
    }

    /// Past the bound on the whole queue, every caller is refused at once
    /// (and answered `RATE_LIMITED`), rather than queued behind seconds of
    /// work; room made by the threads is given out again.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let hasher = PasswordHasher::with_bounds(1, 3, 2).unwrap();
        let (release, busy) = hold_the_thread(&hasher).await;
        let ran = Arc::new(Mutex::new(Vec::new()));
        let mut queued = vec![
            queue_as(&hasher, FLOODER, "flood 1", &ran).await.unwrap(),
            queue_as(&hasher, FLOODER, "flood 2", &ran).await.unwrap(),
            queue_as(&hasher, SOMEONE, "someone", &ran).await.unwrap(),
        ];
        let refused = queue_as(&hasher, THIRD, "third", &ran).await;
        assert!(matches!(refused, Err(CryptoError::Busy)));
        let refused = as_caller(THIRD, hasher.verify(&secret("pw"), None)).await;
        assert!(matches!(refused, Err(CryptoError::Busy)));
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for work in queued.drain(..) {
            work.await.unwrap();
        }
        assert!(
            !as_caller(THIRD, hasher.verify(&secret("pw"), None))
                .await
                .unwrap()
        );
    }

    /// Work outside any request is the local caller's, with a share of its own.
    #[tokio::test]
    async fn work_outside_a_request_is_the_local_callers() {
        let hasher = PasswordHasher::with_bounds(1, 10, 1).unwrap();
        let (release, busy) = hold_the_thread(&hasher).await;
        let ran = Arc::new(Mutex::new(Vec::new()));
        let local = queue_as(&hasher, Caller::LOCAL, "local", &ran)
            .await
            .unwrap();
        let mut unnamed = Box::pin(hasher.run(|_| ()));
        assert!(matches!(
            poll_once(&mut unnamed).await,
            Some(Err(CryptoError::Busy))
        ));
        let client = queue_as(&hasher, SOMEONE, "client", &ran).await.unwrap();
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        local.await.unwrap();
        client.await.unwrap();
    }

    /// Dropping the last handle ends the threads, even while they wait.
    #[tokio::test]
    async fn the_threads_end_with_the_last_handle() {
        let hasher = PasswordHasher::new(2).unwrap();
        let shared = Arc::clone(&hasher.owner.shared);
        let copy = hasher.clone();
        drop(hasher);
        assert!(!shared.lock().closed, "a clone still holds it");
        copy.hash(&secret("pw")).await.unwrap();
        drop(copy);
        assert!(shared.lock().closed);
        // Each thread held the shared state; they let go as they end.
        for _ in 0..500 {
            if Arc::strong_count(&shared) == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the hashing threads did not end");
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
