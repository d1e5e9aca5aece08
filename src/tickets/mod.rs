//! The support desk: tickets for complaints, consultations, appeals and data
//! requests, so people can reach the platform and get an answer.
//!
//! Rules:
//! - Anyone may file a ticket. A signed-in person files with their account:
//!   the ticket carries the account, and replies go to the account's bound
//!   email as it is when the reply is written. Restricted accounts (a minor
//!   waiting for a guardian) may file too: reaching support is never gated.
//!   Guests may give a name and an address (`contactUsername`,
//!   `contactEmail`); a signed-in person may not give them (the account's
//!   own details are used).
//! - Whether a reply can be sent (`canReply`) is decided in one place
//!   ([`service::reply_check`]) and shown with the reason when it cannot: a
//!   guest gave no address; the account's address is not verified yet
//!   (replies are mailed once it is: earlier replies stay readable in
//!   `myTickets`); the account is scheduled for deletion (processing has
//!   stopped, so no ticket mail is sent). A guest ticket is a contact of its
//!   own and is answered at the address given on it.
//! - Subject, message bodies and guest contact details are stored only
//!   encrypted, bound to their table, column and row. A ticket keeps its
//!   `account_id` (its rows go with the account row) and, for guests, the
//!   `email` blind index of the address, so erasure finds a person's
//!   tickets either way.
//! - Every ticket has a short human reference (`T-` and six characters from
//!   an alphabet without 0/O or 1/I), random, unique by index; a collision
//!   is retried.
//! - Threads: the requester (the signed-in owner) and staff (SUPPORT,
//!   ADMIN) write messages; a staff message makes the ticket `ANSWERED` and
//!   mails the requester through the outbox with the reply text; a
//!   requester message makes it `OPEN` again. Either may close it; a closed
//!   ticket takes no more messages. Guests have no session, so their
//!   replies reach them only by email.
//! - Access: people see only their own tickets; anyone else's ticket, an
//!   unknown id and a malformed id are all `NOT_FOUND`, so ids reveal
//!   nothing. Reading tickets needs a session: anonymous callers get
//!   `UNAUTHENTICATED` (a guest's only channel back is email). Staff see
//!   every ticket, with the requester's username and a masked address; the
//!   full address needs `revealTicketContact`, which takes a reason and
//!   writes an audit entry in the same transaction.
//! - The queue lists data requests first, then the oldest tickets first.

pub mod graphql;
pub mod service;
pub mod store;
pub mod templates;

/// What a ticket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Something went wrong and the person objects.
    Complaint,
    /// A question.
    Consultation,
    /// A request to reconsider a decision.
    Appeal,
    /// Access, correction or deletion of personal data: first in the queue.
    DataRequest,
    /// Anything else.
    Other,
}

impl Category {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complaint => "COMPLAINT",
            Self::Consultation => "CONSULTATION",
            Self::Appeal => "APPEAL",
            Self::DataRequest => "DATA_REQUEST",
            Self::Other => "OTHER",
        }
    }

    /// Reads a stored category; unknown values read as `Other`.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "COMPLAINT" => Self::Complaint,
            "CONSULTATION" => Self::Consultation,
            "APPEAL" => Self::Appeal,
            "DATA_REQUEST" => Self::DataRequest,
            _ => Self::Other,
        }
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for staff.
    Open,
    /// Staff replied; waiting for the requester.
    Answered,
    /// Done: no more messages.
    Closed,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Answered => "ANSWERED",
            Self::Closed => "CLOSED",
        }
    }

    /// Reads a stored status; unknown values read as `Open`, so nothing
    /// drops out of the queue.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "ANSWERED" => Self::Answered,
            "CLOSED" => Self::Closed,
            _ => Self::Open,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// The person who filed the ticket.
    Requester,
    /// Support staff.
    Staff,
}

impl Author {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requester => "REQUESTER",
            Self::Staff => "STAFF",
        }
    }

    /// Reads a stored author; unknown values read as `Requester`.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "STAFF" => Self::Staff,
            _ => Self::Requester,
        }
    }
}
