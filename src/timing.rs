//! Answers whose timing must not tell what they found.
//!
//! Rules:
//! - A request that answers the same whether or not something exists (a
//!   password reset, a deletion request) must also take the same time:
//!   otherwise the extra work of the "found" path (a transaction, a token,
//!   a mail) shows in the answer's latency. Such a request answers no
//!   sooner than [`ANSWER_FLOOR`] after it began, on every path.
//! - The floor is real time, not the injected clock: it is what the
//!   caller measures. The work normally takes a few milliseconds, far
//!   below it; a request that outruns it is logged as a security event,
//!   since its timing may then differ between the paths.

use std::time::Duration;

/// How soon a request under the floor answers at the earliest.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(250);

/// Runs `work` and answers no sooner than [`ANSWER_FLOOR`] after the call;
/// `operation` names the request in the log line of one that outran it.
pub async fn with_answer_floor<F: Future>(operation: &'static str, work: F) -> F::Output {
    let started = tokio::time::Instant::now();
    let outcome = work.await;
    let elapsed = started.elapsed();
    if elapsed > ANSWER_FLOOR {
        tracing::warn!(
            target: "security",
            operation,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "request outran its answer floor: its timing may differ between what it found and did not"
        );
    }
    tokio::time::sleep_until(started + ANSWER_FLOOR).await;
    outcome
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quick_work_waits_for_the_floor_and_slow_work_does_not_wait_more() {
        let started = tokio::time::Instant::now();
        assert_eq!(with_answer_floor("test", async { 7 }).await, 7);
        let took = started.elapsed();
        assert!(took >= ANSWER_FLOOR && took < 2 * ANSWER_FLOOR, "{took:?}");

        let started = tokio::time::Instant::now();
        let slow = ANSWER_FLOOR + Duration::from_millis(100);
        with_answer_floor("test", tokio::time::sleep(slow)).await;
        let took = started.elapsed();
        assert!(took >= slow && took < slow + ANSWER_FLOOR, "{took:?}");
    }
}
