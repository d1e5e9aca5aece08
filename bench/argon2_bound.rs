//! Measures one argon2id hash at Custos' parameters on this machine, for
//! the signup/login bound in `bench/load.sh`: at most `cores / hash time`
//! password operations a second can ever complete.
//!
//! Run: `cargo run --release --example argon2_bound`

use std::time::Instant;

use secrecy::SecretString;

/// Hashes each core does in the "at once" run.
const PER_CORE: usize = 50;

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The "at once" run queues every hash before any finishes, from one
    // caller: its queue must hold them all (a server's queue would refuse
    // the surplus as Busy, which is not what is measured here).
    let at_once_most = cores * PER_CORE;
    let (Ok(hasher), Ok(parallel)) = (
        custos::crypto::passwords::PasswordHasher::new(1),
        custos::crypto::passwords::PasswordHasher::with_bounds(cores, at_once_most, at_once_most),
    ) else {
        eprintln!("cannot start the hashing threads");
        std::process::exit(1);
    };
    let password = SecretString::from("a benchmark passphrase".to_owned());
    // Warm up once, then time a few.
    let Ok(phc) = hasher.hash(&password).await else {
        eprintln!("hashing failed");
        std::process::exit(1);
    };
    // About two seconds of hashing: ten hashes (the first version) were
    // a sixth of a second, short enough for a neighbour's burst to move
    // the bound by a tenth.
    let runs = 100;
    let started = Instant::now();
    for _ in 0..runs {
        if hasher.verify(&password, Some(&phc)).await.is_err() {
            eprintln!("verifying failed");
            std::process::exit(1);
        }
    }
    let per_hash = started.elapsed().as_secs_f64() / f64::from(runs);
    println!(
        "argon2id m=19456 t=2 p=1: {:.1} ms per hash; bound = {cores} cores / hash = {:.1} password operations/s",
        per_hash * 1000.0,
        cores as f64 / per_hash
    );

    // What the hardware really gives when every core hashes at once
    // (argon2 is memory-bound; cores that share caches or a physical core
    // slow each other down). Reported beside the bound, not instead of it.
    let at_once = |count: usize| {
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let parallel = parallel.clone();
                let password = password.clone();
                let phc = phc.clone();
                tokio::spawn(async move { parallel.verify(&password, Some(&phc)).await })
            })
            .collect();
        async move {
            for task in tasks {
                if !matches!(task.await, Ok(Ok(true))) {
                    eprintln!("verifying failed");
                    std::process::exit(1);
                }
            }
        }
    };
    // Warm every thread's buffer first, as a running server's are: the
    // first hash on a fresh 19 MiB buffer also pays its page faults.
    at_once(cores * 2).await;
    let started = Instant::now();
    at_once(cores * PER_CORE).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "argon2id with {cores} hashes at once: {:.1} password operations/s",
        (cores * PER_CORE) as f64 / elapsed
    );
}
