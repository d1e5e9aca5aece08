//! Prometheus metrics: request counts and latency per GraphQL operation,
//! rate-limit refusals, purge runs, erasures re-applied after a restore
//! and accounts met with their data key gone counted in process; outbox depth,
//! given-up mail and due/overdue erasures read from the database at each
//! scrape, so every instance reports the shared truth; password hashes
//! waiting for this instance's hashing threads.
//!
//! Operation names come from clients, so they are bounded: a name that is
//! not a plain identifier, or beyond the first [`MAX_OPERATIONS`] seen, is
//! counted as `other`.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

use super::documents::DocumentCache;
use crate::state::{AppState, JobCounts};

/// Distinct operation names tracked before the rest count as `other`.
pub const MAX_OPERATIONS: usize = 200;
/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
    rate_limited: u64,
}

/// The HTTP layer's in-process metrics.
#[derive(Default)]
pub struct Metrics(Mutex<Inner>);

fn operation_label(inner: &Inner, name: Option<&str>) -> String {
    let Some(name) = name else {
        return "anonymous".into();
    };
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return "other".into();
    }
    if inner.latency.contains_key(name) || inner.latency.len() < MAX_OPERATIONS {
        name.to_owned()
    } else {
        "other".into()
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one GraphQL request: its operation, outcome and duration.
    pub fn observe_request(&self, operation: Option<&str>, ok: bool, elapsed: Duration) {
        let mut inner = self.lock();
        let label = operation_label(&inner, operation);
        let outcome = if ok { "ok" } else { "error" };
        *inner.requests.entry((label.clone(), outcome)).or_default() += 1;
        let histogram = inner.latency.entry(label).or_default();
        let seconds = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.counts[i] += 1;
            }
        }
        histogram.sum += seconds;
        histogram.total += 1;
    }

    /// Counts refusals answered `RATE_LIMITED`.
    pub fn count_rate_limited(&self, refusals: u64) {
        self.lock().rate_limited += refusals;
    }

    /// Writes the counts kept here and the jobs' counts.
    fn render_local(&self, jobs: JobCounts, out: &mut String) {
        let inner = self.lock();
        let _ = writeln!(
            out,
            "# HELP custos_graphql_requests_total GraphQL requests by operation and outcome."
        );
        let _ = writeln!(out, "# TYPE custos_graphql_requests_total counter");
        for ((operation, outcome), count) in &inner.requests {
            let _ = writeln!(
                out,
                "custos_graphql_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custos_graphql_request_duration_seconds GraphQL request latency."
        );
        let _ = writeln!(
            out,
            "# TYPE custos_graphql_request_duration_seconds histogram"
        );
        for (operation, histogram) in &inner.latency {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "custos_graphql_request_duration_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {}",
                    histogram.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "custos_graphql_request_duration_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}",
                histogram.total
            );
            let _ = writeln!(
                out,
                "custos_graphql_request_duration_seconds_sum{{operation=\"{operation}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "custos_graphql_request_duration_seconds_count{{operation=\"{operation}\"}} {}",
                histogram.total
            );
        }
        let counters = [
            (
                "custos_rate_limited_total",
                "Requests refused with RATE_LIMITED.",
                inner.rate_limited,
            ),
            ("custos_purge_runs_total", "Purge runs.", jobs.purge_runs),
            (
                "custos_purged_accounts_total",
                "Accounts erased by the purge.",
                jobs.purged_accounts,
            ),
            (
                "custos_erasures_reapplied_total",
                "Accounts the erasure journal names that a restored database still held, erased again.",
                jobs.reapplied_erasures,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custos_purge_last_duration_seconds Duration of the last purge run.\n# TYPE custos_purge_last_duration_seconds gauge\ncustos_purge_last_duration_seconds {}",
            jobs.last_purge_seconds
        );
    }
}

/// The whole exposition: in-process counters plus gauges read now.
pub async fn render(
    state: &AppState,
    metrics: &Metrics,
    documents: &DocumentCache,
) -> Result<String, sea_orm::DbErr> {
    let shared = SharedGauges::read(state.db(), state.clock().now()).await?;
    let mut out = String::new();
    metrics.render_local(state.job_counts(), &mut out);
    for (name, help, value) in gauges(state, documents, &shared) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    render_caches(state, documents, &mut out);
    Ok(out)
}

/// The gauges read from the database, the same on every instance.
struct SharedGauges {
    pending: u64,
    failed: u64,
    due: u64,
    overdue: u64,
}

impl SharedGauges {
    async fn read(
        db: &sea_orm::DatabaseConnection,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Self, sea_orm::DbErr> {
        use crate::{erasure::store as erasures, mail::outbox};
        let pending = outbox::pending_count(db).await?;
        let failed = outbox::failed_count(db).await?;
        let due = erasures::scheduled_count(db).await?;
        let overdue = erasures::overdue_count(db, now).await?;
        Ok(Self {
            pending,
            failed,
            due,
            overdue,
        })
    }
}

/// Every gauge: name, help and value.
fn gauges(
    state: &AppState,
    documents: &DocumentCache,
    shared: &SharedGauges,
) -> [(&'static str, &'static str, u64); 7] {
    let hashing = state.passwords();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    [
        (
            "custos_outbox_pending",
            "Mail waiting in the outbox.",
            shared.pending,
        ),
        (
            "custos_outbox_failed",
            "Mail given up after every attempt.",
            shared.failed,
        ),
        (
            "custos_erasures_scheduled",
            "Confirmed deletions waiting for the purge.",
            shared.due,
        ),
        (
            "custos_erasures_overdue",
            "Scheduled deletions past their deadline (should stay 0).",
            shared.overdue,
        ),
        (
            "custos_password_hashes_waiting",
            "Password hashes (sign-ups, sign-ins, password changes) queued for a hashing thread.",
            count(hashing.waiting()),
        ),
        (
            "custos_password_hash_threads",
            "Threads hashing passwords, one per core.",
            count(hashing.threads()),
        ),
        (
            "custos_graphql_documents_cached",
            "Parsed query texts kept for later requests.",
            count(documents.len()),
        ),
    ]
}

/// The session and policy caches, unreadable accounts and cached documents.
fn render_caches(state: &AppState, documents: &DocumentCache, out: &mut String) {
    let cache = state.session_cache();
    let (hits, misses) = cache.counts();
    let _ = writeln!(
        out,
        "# HELP custos_session_cache_lookups_total Session checks by where they were answered.\n\
         # TYPE custos_session_cache_lookups_total counter\n\
         custos_session_cache_lookups_total{{result=\"hit\"}} {hits}\n\
         custos_session_cache_lookups_total{{result=\"miss\"}} {misses}\n\
         # HELP custos_session_cache_active Whether session checks may be answered from memory (0 while off or while the PostgreSQL change listener is down).\n\
         # TYPE custos_session_cache_active gauge\n\
         custos_session_cache_active {}",
        u8::from(cache.is_active())
    );
    let reads = state.session_reads().counts();
    let _ = writeln!(
        out,
        "# HELP custos_session_reads_total Database reads of sessions the cache did not answer; each answers every request waiting for one.\n\
         # TYPE custos_session_reads_total counter\n\
         custos_session_reads_total {}\n\
         # HELP custos_session_read_requests_total Requests answered by those reads (their ratio is the mean batch).\n\
         # TYPE custos_session_read_requests_total counter\n\
         custos_session_read_requests_total {}",
        reads.reads, reads.requests
    );
    let _ = writeln!(
        out,
        "# HELP custos_policy_cache_active Whether the current policy may be answered from memory (0 while the PostgreSQL change listener is down).\n\
         # TYPE custos_policy_cache_active gauge\n\
         custos_policy_cache_active {}",
        u8::from(state.policy().is_active())
    );
    let _ = writeln!(
        out,
        "# HELP custos_unreadable_accounts_total Times an account whose data key is gone was met and treated as absent.\n\
         # TYPE custos_unreadable_accounts_total counter\n\
         custos_unreadable_accounts_total {}",
        state.unreadable_accounts()
    );
    let (cached, parsed) = documents.hits_and_misses();
    let _ = writeln!(
        out,
        "# HELP custos_graphql_documents_total GraphQL query texts by whether they were found parsed or parsed for the request.\n\
         # TYPE custos_graphql_documents_total counter\n\
         custos_graphql_documents_total{{result=\"cached\"}} {cached}\n\
         custos_graphql_documents_total{{result=\"parsed\"}} {parsed}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let metrics = Metrics::default();
        metrics.observe_request(Some("Me"), true, Duration::from_millis(3));
        metrics.observe_request(Some("bad name\"}"), false, Duration::from_millis(3));
        metrics.observe_request(None, true, Duration::from_secs(20));
        for i in 0..(MAX_OPERATIONS + 10) {
            metrics.observe_request(Some(&format!("Op{i}")), true, Duration::from_millis(1));
        }
        let mut out = String::new();
        metrics.render_local(JobCounts::default(), &mut out);
        assert!(out.contains("operation=\"Me\",outcome=\"ok\"} 1"));
        assert!(out.contains("operation=\"other\",outcome=\"error\"} 1"));
        assert!(out.contains("operation=\"anonymous\",le=\"+Inf\"} 1"));
        assert!(!out.contains("bad name"));
        assert!(
            out.lines()
                .filter(|l| l.starts_with("custos_graphql_requests_total"))
                .count()
                <= MAX_OPERATIONS + 2
        );
    }
}
