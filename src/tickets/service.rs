//! Ticket rules and their transactions. Subject, bodies and guest contact
//! details are sealed and opened by [`super::store`] and nowhere else:
//! callers get [`TicketRecord`]s with plaintext, the database holds only
//! ciphertext.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{account, ticket};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

pub use super::store::QueuePosition;
use super::{
    Author, Category, Status,
    store::{self, NewMessage, NewTicketRow},
    templates,
};
use crate::{
    accounts::{
        AccountStatus, Role,
        email::Email,
        service::{self as accounts, AccountError},
        sessions::Viewer,
    },
    audit::{
        notes::{self, NoteSubject},
        service::{self as audit, AuditRecord},
    },
    crypto::{AccountKey, CryptoError, Sealer, random_bytes},
    mail::{
        Language,
        outbox::{self, OutgoingMail},
    },
    state::AppState,
};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;
/// Longest name a guest may give, in characters.
pub const MAX_CONTACT_USERNAME_CHARS: usize = 64;
/// Longest reason staff may give for revealing an address, in characters.
pub const MAX_REVEAL_REASON_CHARS: usize = 500;
/// Messages a thread holds at most; a longer conversation goes on in a
/// new ticket.
pub const MAX_MESSAGES_PER_TICKET: u64 = 200;
/// Messages a person may write (on all their tickets, first messages
/// included) within [`MESSAGE_WINDOW`]. Staff answers are not counted.
pub const MAX_REQUESTER_MESSAGES_PER_WINDOW: u64 = 30;
/// The window [`MAX_REQUESTER_MESSAGES_PER_WINDOW`] is counted over.
pub const MESSAGE_WINDOW: chrono::Duration = chrono::Duration::hours(1);
/// The audit action of [`reveal_contact`].
pub const REVEAL_CONTACT_ACTION: &str = "ticket.reveal_contact";
/// `audit_log.action` of staff reading someone else's ticket.
pub const READ_ACTION: &str = "ticket.read";
/// `audit_log.action` of staff reading a page of the support queue; the
/// detail lists the tickets shown.
pub const QUEUE_READ_ACTION: &str = "ticket.queue_read";

/// Characters of a reference: digits and capitals without 0/O and 1/I,
/// which people misread on the phone. 32 of them, so one random byte masked
/// to five bits picks one uniformly.
const REFERENCE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters after `T-`: 32^6, about a billion references.
const REFERENCE_LENGTH: usize = 6;
/// Collisions are rare; a run of them means something else is wrong.
const MAX_REFERENCE_ATTEMPTS: usize = 5;

/// What can go wrong with a ticket operation.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The subject is empty or too long.
    #[error("subject: {0}")]
    Subject(&'static str),
    /// A message body is empty or too long.
    #[error("body: {0}")]
    Body(&'static str),
    /// The guest's name is too long or has control characters.
    #[error("contact username")]
    ContactUsername,
    /// The guest's address is malformed.
    #[error("contact email")]
    ContactEmail,
    /// Several fields of one input are invalid: every one of them, in
    /// field order.
    #[error("{} invalid fields", .0.len())]
    Invalid(Vec<TicketError>),
    /// A signed-in person gave contact details (their account's are used).
    #[error("contact details are for guests only")]
    ContactForGuestsOnly(&'static str),
    /// Staff gave no reason, or too long a one, for revealing an address.
    #[error("reveal reason: {0}")]
    Reason(&'static str),
    /// The ticket is closed and takes no more messages.
    #[error("ticket closed")]
    Closed,
    /// The thread holds [`MAX_MESSAGES_PER_TICKET`] messages.
    #[error("ticket full")]
    ThreadFull,
    /// The person wrote too many messages lately; the next is possible
    /// after this many seconds.
    #[error("too many messages")]
    TooManyMessages(u64),
    /// No such ticket, or not one the caller may see.
    #[error("ticket not found")]
    NotFound,
    /// The ticket has no address to reveal.
    #[error("no contact email")]
    NoContactEmail,
    /// Every reference drawn was taken.
    #[error("no free reference after {MAX_REFERENCE_ATTEMPTS} attempts")]
    ReferencesExhausted,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(TicketError);

impl From<AccountError> for TicketError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Internal(err) => Self::Internal(err),
            // Loading an account can fail only as above or by its absence.
            _ => Self::NotFound,
        }
    }
}

/// Why no reply can be mailed for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotReply {
    /// A guest gave no address (or the filing account no longer exists).
    NoEmail,
    /// The account's address is not verified yet.
    EmailNotVerified,
    /// The account is scheduled for deletion: processing has stopped.
    DeletionScheduled,
}

/// What staff see of who filed a ticket.
#[derive(Clone)]
pub struct RequesterView {
    /// The account's username, or the name a guest gave.
    pub username: Option<String>,
    /// The address with most of its local part hidden, e.g. `z***@example.com`.
    pub email_masked: Option<String>,
}

/// One decrypted message.
#[derive(Clone)]
pub struct MessageRecord {
    /// Random id.
    pub id: Uuid,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A decrypted ticket with its thread, as resolvers see it.
#[derive(Clone)]
pub struct TicketRecord {
    /// Random id.
    pub id: Uuid,
    /// Short human reference.
    pub reference: String,
    /// What it is about.
    pub category: Category,
    /// Where it stands.
    pub status: Status,
    /// The subject line.
    pub subject: String,
    /// `Ok` when a reply can be mailed, else why not.
    pub can_reply: Result<(), CannotReply>,
    /// When it was filed.
    pub created_at: DateTime<Utc>,
    /// Last message or status change.
    pub updated_at: DateTime<Utc>,
    /// The thread, oldest first.
    pub messages: Vec<MessageRecord>,
    /// Filled only for staff callers.
    pub requester: Option<RequesterView>,
}

impl std::fmt::Debug for TicketRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketRecord")
            .field("id", &self.id)
            .field("category", &self.category)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A new ticket as the person filed it.
pub struct NewTicket {
    /// What it is about.
    pub category: Category,
    /// Subject as typed.
    pub subject: String,
    /// First message as typed.
    pub body: String,
    /// Guests only: the name they gave.
    pub contact_username: Option<String>,
    /// Guests only: the address they gave.
    pub contact_email: Option<String>,
    /// Language of the request, used to mail a guest.
    pub language: Language,
}

fn is_staff(viewer: &Viewer) -> bool {
    matches!(viewer.role, Role::Support | Role::Admin)
}

/// Trims free text and checks it is non-empty and at most `max` characters.
fn checked_text(raw: &str, max: usize) -> Result<String, &'static str> {
    let text = raw.trim();
    if text.is_empty() {
        Err("empty")
    } else if text.chars().count() > max {
        Err("too long")
    } else {
        Ok(text.to_owned())
    }
}

/// A subject within the limits.
fn checked_subject(raw: &str) -> Result<String, TicketError> {
    checked_text(raw, MAX_SUBJECT_CHARS).map_err(TicketError::Subject)
}

/// A message body within the limits.
fn checked_body(raw: &str) -> Result<String, TicketError> {
    checked_text(raw, MAX_BODY_CHARS).map_err(TicketError::Body)
}

/// A guest's optional contact details: blank means not given.
fn checked_guest_contact(
    username: Option<&str>,
    email: Option<&str>,
    faults: &mut Vec<TicketError>,
) -> Option<(Option<String>, Option<Email>)> {
    let username = match username.map(str::trim).filter(|u| !u.is_empty()) {
        Some(name)
            if name.chars().count() > MAX_CONTACT_USERNAME_CHARS
                || name.chars().any(char::is_control) =>
        {
            faults.push(TicketError::ContactUsername);
            None
        }
        other => Some(other.map(str::to_owned)),
    };
    let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(raw) => match Email::parse(raw) {
            Ok(email) => Some(Some(email)),
            Err(_) => {
                faults.push(TicketError::ContactEmail);
                None
            }
        },
        None => Some(None),
    };
    Some((username?, email?))
}

/// One error for the invalid fields of an input: the only one, or all of
/// them as [`TicketError::Invalid`].
fn all_of(mut faults: Vec<TicketError>) -> TicketError {
    if faults.len() == 1 {
        faults.remove(0)
    } else {
        TicketError::Invalid(faults)
    }
}

/// A fresh random reference such as `T-7K3Q9M`.
pub fn new_reference() -> Result<String, CryptoError> {
    let bytes = random_bytes::<REFERENCE_LENGTH>()?;
    let mut reference = String::with_capacity(2 + REFERENCE_LENGTH);
    reference.push_str("T-");
    for byte in bytes {
        reference.push(char::from(REFERENCE_ALPHABET[usize::from(byte & 0x1f)]));
    }
    Ok(reference)
}

/// `z***@example.com`: the first character of the local part and the domain.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Whether a reply to `row` can be mailed. `account` is the filing account
/// row when the ticket has one. The one place this is decided: `canReply`
/// shows it and [`add_message`] obeys it.
pub fn reply_check(
    row: &ticket::Model,
    account: Option<&account::Model>,
) -> Result<(), CannotReply> {
    match (row.account_id, account) {
        (Some(_), Some(account)) if AccountStatus::DeletionScheduled.is(&account.status) => {
            Err(CannotReply::DeletionScheduled)
        }
        (Some(_), Some(account)) if !account.email_verified => Err(CannotReply::EmailNotVerified),
        (Some(_), Some(_)) => Ok(()),
        (Some(_), None) => Err(CannotReply::NoEmail),
        (None, _) if row.contact_email_ct.is_some() => Ok(()),
        (None, _) => Err(CannotReply::NoEmail),
    }
}

/// Decrypts tickets with their threads, loading their accounts and
/// messages in one query each. `staff` adds what staff see of the requester.
async fn records<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    rows: Vec<ticket::Model>,
    staff: bool,
) -> Result<Vec<TicketRecord>, TicketError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let account_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.account_id).collect();
    let keys = state
        .keys()
        .find_many(state.cipher(), conn, &account_ids)
        .await?;
    let owners = Owners {
        keys: &keys,
        accounts: owning_accounts(conn, account_ids).await?,
        sealer: store::sealer(state),
    };
    let rows = readable(state, &owners, rows);
    let mut threads = threads(conn, &owners, &rows).await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let account = row.account_id.and_then(|id| owners.accounts.get(&id));
        let requester = if staff {
            Some(requester_view(state, &owners, &row, account)?)
        } else {
            None
        };
        records.push(TicketRecord {
            id: row.id,
            subject: store::open_subject(&owners.sealer_of(row.account_id), &row)?,
            can_reply: reply_check(&row, account),
            messages: threads.remove(&row.id).unwrap_or_default(),
            reference: row.reference,
            category: Category::from_stored(&row.category),
            status: Status::from_stored(&row.status),
            created_at: row.created_at,
            updated_at: row.updated_at,
            requester,
        });
    }
    Ok(records)
}

/// The accounts that filed some tickets, with their data keys.
struct Owners<'a> {
    keys: &'a HashMap<Uuid, std::sync::Arc<AccountKey>>,
    accounts: HashMap<Uuid, account::Model>,
    sealer: Sealer<'a>,
}

impl<'a> Owners<'a> {
    /// The sealer for a ticket filed by `owner`: under its data key, or
    /// the keyring for a guest's ticket.
    fn sealer_of(&self, owner: Option<Uuid>) -> Sealer<'a> {
        let keys: &'a HashMap<Uuid, std::sync::Arc<AccountKey>> = self.keys;
        self.sealer
            .under(owner.and_then(|id| keys.get(&id)).map(|key| &**key))
    }
}

/// The accounts `ids`, by id.
async fn owning_accounts<C: ConnectionTrait>(
    conn: &C,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, account::Model>, TicketError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(account::Entity::find()
        .filter(account::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect())
}

/// The tickets that can still be read: those of an account whose data key
/// is gone are nobody's, and skipped.
fn readable(state: &AppState, owners: &Owners<'_>, rows: Vec<ticket::Model>) -> Vec<ticket::Model> {
    rows.into_iter()
        .filter(|row| {
            let unreadable = row
                .account_id
                .and_then(|id| owners.accounts.get(&id))
                .is_some_and(|account| {
                    accounts::needs_account_key(account) && !owners.keys.contains_key(&account.id)
                });
            if let (true, Some(owner)) = (unreadable, row.account_id) {
                state.account_unreadable(owner);
            }
            !unreadable
        })
        .collect()
}

/// The decrypted threads of `rows`, by ticket, oldest message first.
async fn threads<C: ConnectionTrait>(
    conn: &C,
    owners: &Owners<'_>,
    rows: &[ticket::Model],
) -> Result<HashMap<Uuid, Vec<MessageRecord>>, TicketError> {
    let owner_of: HashMap<Uuid, Option<Uuid>> = rows.iter().map(|r| (r.id, r.account_id)).collect();
    let mut threads: HashMap<Uuid, Vec<MessageRecord>> = HashMap::new();
    for message in store::messages_of(conn, rows.iter().map(|r| r.id)).await? {
        let owner = owner_of.get(&message.ticket_id).copied().flatten();
        let body = store::open_body(&owners.sealer_of(owner), &message)?;
        threads
            .entry(message.ticket_id)
            .or_default()
            .push(MessageRecord {
                id: message.id,
                author: Author::from_stored(&message.author),
                body,
                created_at: message.created_at,
            });
    }
    Ok(threads)
}

/// What staff see of who filed `row`: the account's username and masked
/// address, or the name and masked address a guest gave.
fn requester_view(
    state: &AppState,
    owners: &Owners<'_>,
    row: &ticket::Model,
    account: Option<&account::Model>,
) -> Result<RequesterView, TicketError> {
    if let Some(account) = account {
        let key = owners.sealer_of(row.account_id).key();
        let account = accounts::open_with(state, account, key)?;
        return Ok(RequesterView {
            username: Some(account.username),
            email_masked: Some(mask_email(&account.email)),
        });
    }
    Ok(RequesterView {
        username: store::open_contact_username(&owners.sealer, row)?,
        email_masked: store::open_contact_email(&owners.sealer, row)?.map(|e| mask_email(&e)),
    })
}

/// Decrypts one ticket for `viewer`.
async fn record<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: ticket::Model,
    viewer: Option<&Viewer>,
) -> Result<TicketRecord, TicketError> {
    records(state, conn, vec![row], viewer.is_some_and(is_staff))
        .await?
        .pop()
        .ok_or(TicketError::NotFound)
}

/// Loads a ticket the viewer may act on, with the role they act in: the
/// owner as requester, else staff; anyone else gets `NotFound`, like an
/// unknown id. So does a ticket of an account whose data key is gone: it
/// is nobody's any more, and writing to it would make the account a key.
async fn accessible<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<(ticket::Model, Author), TicketError> {
    let row = store::find(conn, id).await?.ok_or(TicketError::NotFound)?;
    if let Some(owner) = row.account_id
        && let Some(account) = account::Entity::find_by_id(owner).one(conn).await?
        && !accounts::is_readable_in(state, conn, &account).await?
    {
        return Err(TicketError::NotFound);
    }
    if row.account_id == Some(viewer.account_id) {
        Ok((row, Author::Requester))
    } else if is_staff(viewer) {
        Ok((row, Author::Staff))
    } else {
        Err(TicketError::NotFound)
    }
}

/// Files a ticket: from the viewer's account when signed in, else as a
/// guest with the contact details given.
pub async fn create(
    state: &AppState,
    viewer: Option<&Viewer>,
    request: NewTicket,
) -> Result<TicketRecord, TicketError> {
    create_with_references(state, viewer, request, new_reference).await
}

/// [`create`] with the source of references passed in, so a collision can
/// be forced in tests. A reference that is taken fails the insert on the
/// unique index; the whole transaction is then retried with a new one
/// (PostgreSQL aborts a transaction at its first error).
pub async fn create_with_references(
    state: &AppState,
    viewer: Option<&Viewer>,
    request: NewTicket,
    mut next_reference: impl FnMut() -> Result<String, CryptoError>,
) -> Result<TicketRecord, TicketError> {
    let checked = checked_new_ticket(viewer, &request)?;
    // A signed-in requester's ticket is theirs: under their data key.
    let key = match viewer {
        Some(viewer) => Some(state.write_key(state.db(), viewer.account_id).await?),
        None => None,
    };
    let sealer = store::sealer(state).under(key.as_deref());
    for _ in 0..MAX_REFERENCE_ATTEMPTS {
        let now = state.clock().now();
        let row = store::sealed_ticket(
            &sealer,
            &NewTicketRow {
                reference: next_reference()?,
                account_id: viewer.map(|v| v.account_id),
                category: request.category,
                subject: &checked.subject,
                contact_username: checked.contact_username.as_deref(),
                contact_email: checked.contact_email.as_ref().map(Email::as_str),
                language: request.language,
                now,
            },
        )?;
        let Some(inserted) = file(state, &sealer, row, &checked.body, now).await? else {
            continue;
        };
        tracing::info!(
            ticket_id = %inserted.id,
            account_id = ?inserted.account_id,
            category = inserted.category.as_str(),
            "ticket filed"
        );
        return record(state, state.db(), inserted, viewer).await;
    }
    Err(TicketError::ReferencesExhausted)
}

/// A new ticket's fields, checked.
struct CheckedTicket {
    subject: String,
    body: String,
    contact_username: Option<String>,
    contact_email: Option<Email>,
}

/// Checks every field of a new ticket, reporting every invalid one in the
/// order of the input. A signed-in person gives no contact details.
fn checked_new_ticket(
    viewer: Option<&Viewer>,
    request: &NewTicket,
) -> Result<CheckedTicket, TicketError> {
    let mut faults = Vec::new();
    let subject = checked_subject(&request.subject)
        .map_err(|err| faults.push(err))
        .ok();
    let body = checked_body(&request.body)
        .map_err(|err| faults.push(err))
        .ok();
    let contact = match viewer {
        Some(_) => {
            let given =
                |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
            if given(&request.contact_username) {
                faults.push(TicketError::ContactForGuestsOnly("contactUsername"));
            }
            if given(&request.contact_email) {
                faults.push(TicketError::ContactForGuestsOnly("contactEmail"));
            }
            Some((None, None))
        }
        None => checked_guest_contact(
            request.contact_username.as_deref(),
            request.contact_email.as_deref(),
            &mut faults,
        ),
    };
    let (Some(subject), Some(body), Some((contact_username, contact_email)), true) =
        (subject, body, contact, faults.is_empty())
    else {
        return Err(all_of(faults));
    };
    Ok(CheckedTicket {
        subject,
        body,
        contact_username,
        contact_email,
    })
}

/// Writes a sealed ticket and its first message in one transaction; `None`
/// when its reference is taken (the unique index refused it), so the
/// caller draws another.
async fn file(
    state: &AppState,
    sealer: &Sealer<'_>,
    row: ticket::ActiveModel,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Option<ticket::Model>, TicketError> {
    let txn = state.db().begin().await?;
    let inserted = match store::insert_ticket(&txn, row).await {
        Ok(inserted) => inserted,
        Err(err) if crate::db::is_unique_violation(&err) => {
            tracing::info!("ticket reference collision, drawing another");
            txn.rollback().await?;
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let first = (Author::Requester, None);
    append_message(&txn, sealer, inserted.id, first, body, now).await?;
    match txn.commit().await {
        Ok(()) => Ok(Some(inserted)),
        Err(err) if crate::db::is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Appends a message at the end of the thread, by `author` (with the
/// staff member's id when staff wrote it). Callers first update the
/// ticket row in the same transaction, which on PostgreSQL locks it until
/// commit, so two messages never draw the same position.
async fn append_message<C: ConnectionTrait>(
    conn: &C,
    sealer: &Sealer<'_>,
    ticket_id: Uuid,
    (author, staff_id): (Author, Option<Uuid>),
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    let count = store::message_count(conn, ticket_id).await?;
    if count >= MAX_MESSAGES_PER_TICKET {
        return Err(TicketError::ThreadFull);
    }
    let seq = i32::try_from(count + 1).map_err(|_| TicketError::ThreadFull)?;
    let message = NewMessage {
        ticket_id,
        seq,
        author,
        staff_id,
        body,
        now,
    };
    store::insert_message(conn, store::sealed_message(sealer, message)?).await?;
    Ok(())
}

/// The viewer's own tickets, newest first.
pub async fn mine(state: &AppState, viewer: &Viewer) -> Result<Vec<TicketRecord>, TicketError> {
    let rows = store::of_account(state.db(), viewer.account_id).await?;
    records(state, state.db(), rows, is_staff(viewer)).await
}

/// Tickets filed as a guest from `email` (matched by its blind index
/// under every key in use), newest first: a person's export includes what
/// they sent before, or without, signing in.
pub async fn filed_as_guest_from(
    state: &AppState,
    email: &str,
) -> Result<Vec<TicketRecord>, TicketError> {
    let rows = store::filed_as_guest_from(state.db(), &store::sealer(state), email).await?;
    records(state, state.db(), rows, false).await
}

/// One ticket: the owner's, or any for staff; otherwise `NotFound`.
pub async fn get(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<TicketRecord, TicketError> {
    let (row, author) = accessible(state, state.db(), viewer, id).await?;
    let owner = row.account_id;
    let record = record(state, state.db(), row, Some(viewer)).await?;
    if matches!(author, Author::Staff) {
        log_staff_read(state, viewer, READ_ACTION, owner, format!("ticket={id}")).await?;
    }
    Ok(record)
}

/// Writes the audit entry of a staff read of personal data before the
/// data is handed out: a read that cannot be logged fails.
async fn log_staff_read(
    state: &AppState,
    staff: &Viewer,
    action: &'static str,
    subject_id: Option<Uuid>,
    detail: String,
) -> Result<(), TicketError> {
    audit::append_alone(
        state.db(),
        AuditRecord {
            actor_id: Some(staff.account_id),
            action,
            subject_id,
            detail,
        },
        state.clock().now(),
    )
    .await?;
    Ok(())
}

/// Writes the `ticket.read` entry of a staff member's write that answers
/// with the ticket (its thread and the requester's details), inside that
/// write's transaction: the answer is given only if the entry commits.
async fn log_staff_read_in<C: ConnectionTrait>(
    txn: &C,
    staff: &Viewer,
    owner: Option<Uuid>,
    ticket_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    audit::append(
        txn,
        AuditRecord {
            actor_id: Some(staff.account_id),
            action: READ_ACTION,
            subject_id: owner,
            detail: format!("ticket={ticket_id}"),
        },
        now,
    )
    .await?;
    Ok(())
}

impl QueuePosition {
    /// The position of a ticket.
    pub fn of(ticket: &TicketRecord) -> Self {
        Self {
            data_request: ticket.category == Category::DataRequest,
            created_at: ticket.created_at,
            id: ticket.id,
        }
    }
}

/// The staff queue: data requests first, then oldest first; `first`
/// tickets after the position `after` (which need not be a ticket that
/// still exists), optionally of one status, and whether more follow.
/// Callers check that the viewer is staff. Each page read is audit-logged
/// with the tickets it showed.
pub async fn queue(
    state: &AppState,
    staff: &Viewer,
    status: Option<Status>,
    first: u64,
    after: Option<QueuePosition>,
) -> Result<(Vec<TicketRecord>, bool), TicketError> {
    let mut rows = store::queue_page(state.db(), status, first.saturating_add(1), after).await?;
    // One row more than the page says whether another follows; it is not
    // shown, so neither decrypted nor logged.
    let page = usize::try_from(first).unwrap_or(usize::MAX);
    let more = rows.len() > page;
    rows.truncate(page);
    let shown = records(state, state.db(), rows, true).await?;
    if !shown.is_empty() {
        let ids: Vec<String> = shown.iter().map(|t| t.id.to_string()).collect();
        let detail = format!("tickets={}", ids.join(","));
        log_staff_read(state, staff, QUEUE_READ_ACTION, None, detail).await?;
    }
    Ok((shown, more))
}

/// Adds a message by the owner (the ticket opens again) or by staff (the
/// ticket is answered, and the requester is mailed the reply when a reply
/// can be sent). A closed ticket takes none.
pub async fn add_message(
    state: &AppState,
    viewer: &Viewer,
    ticket_id: Uuid,
    body: &str,
) -> Result<TicketRecord, TicketError> {
    let body = checked_body(body)?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let (row, author) = accessible(state, &txn, viewer, ticket_id).await?;
    let status = match author {
        Author::Requester => {
            check_requester_rate(&txn, viewer.account_id, now).await?;
            Status::Open
        }
        Author::Staff => Status::Answered,
    };
    if !store::set_status_unless_closed(&txn, ticket_id, status, now).await? {
        return Err(TicketError::Closed);
    }
    let staff_id = (author == Author::Staff).then_some(viewer.account_id);
    let key = match row.account_id {
        Some(owner) => Some(state.write_key(&txn, owner).await?),
        None => None,
    };
    let sealer = store::sealer(state).under(key.as_deref());
    append_message(&txn, &sealer, ticket_id, (author, staff_id), &body, now).await?;
    if author == Author::Staff {
        mail_reply(state, &txn, &row, &body, now).await?;
    }
    let updated = store::find(&txn, ticket_id)
        .await?
        .ok_or(TicketError::NotFound)?;
    let record = record(state, &txn, updated, Some(viewer)).await?;
    if author == Author::Staff {
        // The answer carries the whole thread and the requester's details.
        log_staff_read_in(&txn, viewer, row.account_id, ticket_id, now).await?;
    }
    txn.commit().await?;
    tracing::info!(ticket_id = %ticket_id, author = author.as_str(), "ticket message added");
    Ok(record)
}

/// Refuses a requester's message when `account` wrote
/// [`MAX_REQUESTER_MESSAGES_PER_WINDOW`] on its tickets in the last
/// [`MESSAGE_WINDOW`], saying when the oldest of them leaves the window.
/// Counted in the database, so every instance sees the same count.
async fn check_requester_rate<C: ConnectionTrait>(
    conn: &C,
    account: Uuid,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    let since = now - MESSAGE_WINDOW;
    if store::requester_message_count(conn, account, since).await?
        < MAX_REQUESTER_MESSAGES_PER_WINDOW
    {
        return Ok(());
    }
    let oldest = store::oldest_requester_message(conn, account, since).await?;
    let wait = oldest.map_or(MESSAGE_WINDOW, |at| at + MESSAGE_WINDOW - now);
    Err(TicketError::TooManyMessages(
        u64::try_from(wait.num_seconds()).unwrap_or(0).max(1),
    ))
}

/// Queues the reply mail in the caller's transaction when a reply can be
/// sent: to the account's current address, or to the guest's.
async fn mail_reply<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    row: &ticket::Model,
    reply: &str,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    let account = match row.account_id {
        Some(id) => account::Entity::find_by_id(id).one(conn).await?,
        None => None,
    };
    if let Err(reason) = reply_check(row, account.as_ref()) {
        tracing::info!(ticket_id = %row.id, reason = ?reason, "ticket reply not mailed");
        return Ok(());
    }
    let (to, language) = match (&account, &row.contact_email_ct) {
        (Some(account), _) => {
            let Some(account) = accounts::open_readable_in(state, conn, account).await? else {
                return Ok(());
            };
            (account.email, account.language)
        }
        (None, Some(_)) => match store::open_contact_email(&store::sealer(state), row)? {
            Some(email) => (email, Language::from_tag(&row.language)),
            None => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    outbox::queue(
        state,
        conn,
        OutgoingMail {
            account_id: row.account_id,
            kind: "ticket_reply",
            to,
            content: templates::ticket_reply(
                language,
                &row.reference,
                reply,
                row.account_id.is_some(),
            ),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Closes a ticket, by its owner or by staff. Closing a closed ticket
/// changes nothing, but staff still read the thread it answers with: that
/// read is audit-logged like any other.
pub async fn close(
    state: &AppState,
    viewer: &Viewer,
    ticket_id: Uuid,
) -> Result<TicketRecord, TicketError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let (row, author) = accessible(state, &txn, viewer, ticket_id).await?;
    store::set_status_unless_closed(&txn, ticket_id, Status::Closed, now).await?;
    let updated = store::find(&txn, ticket_id)
        .await?
        .ok_or(TicketError::NotFound)?;
    let record = record(state, &txn, updated, Some(viewer)).await?;
    if author == Author::Staff {
        log_staff_read_in(&txn, viewer, row.account_id, ticket_id, now).await?;
    }
    txn.commit().await?;
    tracing::info!(ticket_id = %ticket_id, "ticket closed");
    Ok(record)
}

/// Staff only (callers check): the requester's full address, with an audit
/// entry naming the staff member, the requester's account (if any), the
/// ticket and the reason, written in the same transaction as the read.
pub async fn reveal_contact(
    state: &AppState,
    staff: &Viewer,
    ticket_id: Uuid,
    reason: &str,
) -> Result<String, TicketError> {
    let reason = checked_text(reason, MAX_REVEAL_REASON_CHARS).map_err(TicketError::Reason)?;
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let row = store::find(&txn, ticket_id)
        .await?
        .ok_or(TicketError::NotFound)?;
    let email = match row.account_id {
        Some(account_id) => accounts::find(state, &txn, account_id).await?.email,
        None => store::open_contact_email(&store::sealer(state), &row)?
            .ok_or(TicketError::NoContactEmail)?,
    };
    // The reason is staff free text: kept beside the chain, erasable.
    let subject = match row.account_id {
        Some(account) => NoteSubject::Account(account),
        None => NoteSubject::GuestTicket(row.id),
    };
    let note = notes::seal(state, &txn, subject, &reason, now).await?;
    audit::append(
        &txn,
        AuditRecord {
            actor_id: Some(staff.account_id),
            action: REVEAL_CONTACT_ACTION,
            subject_id: row.account_id,
            detail: format!("ticket={} {note}", row.id),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(ticket_id = %row.id, staff_id = %staff.account_id, "ticket contact revealed");
    Ok(email)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn references_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let reference = new_reference().unwrap();
            assert_eq!(reference.len(), 8, "{reference}");
            assert!(reference.starts_with("T-"), "{reference}");
            assert!(
                reference[2..]
                    .bytes()
                    .all(|b| REFERENCE_ALPHABET.contains(&b)),
                "{reference}"
            );
            assert!(
                !reference[2..].contains(['0', 'O', '1', 'I']),
                "{reference}"
            );
        }
        assert_ne!(new_reference().unwrap(), new_reference().unwrap());
    }

    #[test]
    fn emails_are_masked_to_first_character_and_domain() {
        assert_eq!(mask_email("zhang.san@example.com"), "z***@example.com");
        assert_eq!(mask_email("z@example.com"), "z***@example.com");
        assert_eq!(mask_email("张三@例子.中国"), "张***@例子.中国");
        assert_eq!(mask_email("not an address"), "***");
    }

    #[test]
    fn text_limits_count_characters_after_trimming() {
        assert_eq!(checked_text("  hi  ", 5), Ok("hi".to_owned()));
        assert_eq!(checked_text(" \n\t ", 5), Err("empty"));
        assert_eq!(checked_text(&"字".repeat(5), 5), Ok("字".repeat(5)));
        assert_eq!(checked_text(&"字".repeat(6), 5), Err("too long"));
    }

    #[test]
    fn guest_contact_blank_means_not_given() {
        let mut faults = Vec::new();
        let (name, email) = checked_guest_contact(Some("  "), Some(" "), &mut faults).unwrap();
        assert!(name.is_none() && email.is_none());
        let (name, email) =
            checked_guest_contact(Some(" Li "), Some(" li@example.org "), &mut faults).unwrap();
        assert_eq!(name.as_deref(), Some("Li"));
        assert_eq!(email.unwrap().as_str(), "li@example.org");
        assert!(faults.is_empty());
        assert!(checked_guest_contact(None, Some("nope"), &mut faults).is_none());
        assert!(matches!(faults.as_slice(), [TicketError::ContactEmail]));
        faults.clear();
        assert!(checked_guest_contact(Some("a\u{0}b"), None, &mut faults).is_none());
        assert!(checked_guest_contact(Some(&"n".repeat(65)), None, &mut faults).is_none());
        assert!(matches!(
            faults.as_slice(),
            [TicketError::ContactUsername, TicketError::ContactUsername]
        ));
        // Both at fault: both reported.
        faults.clear();
        assert!(checked_guest_contact(Some(&"n".repeat(65)), Some("nope"), &mut faults).is_none());
        assert!(matches!(
            faults.as_slice(),
            [TicketError::ContactUsername, TicketError::ContactEmail]
        ));
    }
}
