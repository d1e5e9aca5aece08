//! Every table of the database, and what the purge does with it. A test
//! lists the tables a fresh database really has and fails when one is not
//! here, so a migration cannot add personal data the purge forgets.

/// What happens to a table when an account is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The purge deletes the account's rows (how it finds them is noted).
    Erased(&'static str),
    /// The table holds no personal data (why is noted).
    NoPersonalData(&'static str),
}

/// The inventory: table name and coverage.
pub const INVENTORY: &[(&str, Coverage)] = &[
    ("accounts", Coverage::Erased("the account row")),
    ("sessions", Coverage::Erased("by account_id")),
    ("account_tokens", Coverage::Erased("by account_id")),
    ("consent_events", Coverage::Erased("by account_id")),
    (
        "outbox",
        Coverage::Erased(
            "by account_id (mail to a guardian about the account included), and mail about no \
             account by the recipient blind index of the account's own address",
        ),
    ),
    (
        "audit_notes",
        Coverage::Erased(
            "by subject_id, and notes on erased guest tickets by ticket_id; the chain keeps only a salted hash",
        ),
    ),
    (
        "tickets",
        Coverage::Erased("by account_id, and guest tickets by the contact email's blind index"),
    ),
    (
        "ticket_messages",
        Coverage::Erased("every message of an erased ticket"),
    ),
    (
        "login_throttle",
        Coverage::Erased("by the throttle subjects derived from the username and email indexes"),
    ),
    (
        "account_keys",
        Coverage::Erased(
            "the account's data key, by id: in the purge's transaction, or right after it when \
             the keys are in a separate store (see pending_key_destruction)",
        ),
    ),
    (
        "pending_key_destruction",
        Coverage::NoPersonalData(
            "random ids of erased accounts whose key a separate store still holds",
        ),
    ),
    (
        "deletion_requests",
        Coverage::NoPersonalData("random ids, times and token hashes (cleared when completed)"),
    ),
    (
        "erasure_records",
        Coverage::NoPersonalData("the certificate: ids, times and row counts"),
    ),
    (
        "audit_log",
        Coverage::NoPersonalData(
            "random ids of actors and subjects; details carry no personal data",
        ),
    ),
    (
        "client_rate_windows",
        Coverage::NoPersonalData(
            "attempt counts per action and minute, by a keyed hash of the client's address \
             (never the address); pruned after two minutes",
        ),
    ),
    (
        "policy_versions",
        Coverage::NoPersonalData("published policy texts"),
    ),
    ("announcements", Coverage::NoPersonalData("public notices")),
    (
        "incident_fanouts",
        Coverage::NoPersonalData(
            "an incident's description, counts and random ids (the reporting admin; listed \
             accounts, cleared when the fan-out is done)",
        ),
    ),
    (
        "seaql_migrations",
        Coverage::NoPersonalData("migration bookkeeping"),
    ),
];

/// The coverage of `table`, if the inventory knows it.
pub fn coverage(table: &str) -> Option<Coverage> {
    INVENTORY
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, coverage)| *coverage)
}
