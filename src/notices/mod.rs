//! Security-incident notices and public announcements.
//!
//! Rules this module keeps:
//! - An incident report needs every content block (title, what happened,
//!   possible impact, measures taken, advice to users, remedies) non-empty;
//!   a notice that leaves one out does not tell people what the law and the
//!   policy promise them.
//! - Every affected ACTIVE account is told by email, in its own language,
//!   through the outbox, exactly once. The mailing (the fan-out) is a
//!   durable job: a row in `incident_fanouts` holds the notice, the
//!   audience, a keyset cursor over account ids and the counts. Each page
//!   of accounts is queued in one transaction together with the advance of
//!   the cursor, guarded by the driver's lease and the cursor it read, so
//!   neither a crash nor two instances can mail anyone twice or skip
//!   anyone. Memory stays at two pages whatever the audience.
//! - A report waits for its fan-out up to `CUSTOS_INCIDENT_WAIT_SECONDS`,
//!   then answers with the progress so far; `incidentReport` follows it.
//!   The fan-out goes on without the request, and the job runner resumes
//!   any fan-out whose driver's lease ran out (an instance died).
//! - When individual notice is impractical (asked for, more affected
//!   accounts than `CUSTOS_INCIDENT_ANNOUNCE_THRESHOLD`, or mail could not
//!   be queued for someone) a public SECURITY_INCIDENT announcement carries
//!   the same five blocks: published with the report when it is decided
//!   then, or when the fan-out ends with a failed notice.
//! - Announcements are public (anonymous callers read them, newest first)
//!   and hold no personal data. Policy publication writes POLICY_UPDATE
//!   announcements through [`announcements::publish_announcement`].
//! - Each report writes the audit entry `incident.report.start` when filed
//!   and `incident.report` when its fan-out ends (or stops on an error,
//!   with `stopped=true`), with counts and ids only.

pub mod announcements;
pub mod content;
pub mod error;
pub mod fanout;
pub mod graphql;
pub mod service;
pub mod store;
pub mod templates;
