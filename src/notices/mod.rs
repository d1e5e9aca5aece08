//! Security-incident notices and public announcements.
//!
//! Rules this module keeps:
//! - An incident report needs every content block (title, what happened,
//!   possible impact, measures taken, advice to users, remedies) non-empty;
//!   a notice that leaves one out does not tell people what the law and the
//!   policy promise them.
//! - Every affected ACTIVE account is told by email, in its own language,
//!   through the outbox. Mail is queued in chunks, each chunk in one
//!   transaction with multi-row inserts, so a fan-out to 100,000 accounts
//!   takes seconds instead of holding one enormous transaction.
//! - When individual notice is impractical (asked for, more affected
//!   accounts than `CUSTOS_INCIDENT_ANNOUNCE_THRESHOLD`, or mail could not
//!   be queued for someone) a public SECURITY_INCIDENT announcement carries
//!   the same five blocks.
//! - Announcements are public (anonymous callers read them, newest first)
//!   and hold no personal data. Policy publication writes POLICY_UPDATE
//!   announcements through [`service::publish_announcement`].
//! - Each report writes the audit entry `incident.report` with counts and
//!   the announcement id only.

pub mod content;
pub mod graphql;
pub mod service;
pub mod templates;
