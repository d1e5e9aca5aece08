//! Storage of tickets and their messages: the one place their subject,
//! bodies and guest contact details are sealed and opened, and where the
//! queries over `tickets` and `ticket_messages` live. The rules (who may
//! act on a ticket, caps, mail) stay in [`super::service`].
//!
//! A signed-in requester's fields are sealed under their account's data
//! key; a guest's under the keyring (the sealer carries no key).

use chrono::{DateTime, Utc};
use entity::{ticket, ticket_message};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::{Author, Category, Status};
use crate::{
    accounts::service as accounts,
    crypto::{CryptoError, SealedField, Sealer, normalise_email},
    mail::Language,
    state::AppState,
};

/// `tickets.subject_ct`.
const SUBJECT: SealedField = SealedField::new("tickets", "subject");
/// `tickets.contact_username_ct`.
const CONTACT_USERNAME: SealedField = SealedField::new("tickets", "contact_username");
/// `tickets.contact_email_ct`.
const CONTACT_EMAIL: SealedField = SealedField::new("tickets", "contact_email");
/// `ticket_messages.body_ct`.
const MESSAGE_BODY: SealedField = SealedField::new("ticket_messages", "body");
/// The blind-index field of a guest's address, shared with account emails.
const EMAIL_INDEX: &str = accounts::EMAIL_INDEX;

/// The state's sealer, under the keyring until [`Sealer::under`] the
/// requester's data key.
pub fn sealer(state: &AppState) -> Sealer<'_> {
    Sealer::new(state.cipher(), state.blind())
}

/// A ticket about to be filed, in plaintext.
pub struct NewTicketRow<'a> {
    /// Its reference, drawn by the caller.
    pub reference: String,
    /// The filing account, or `None` for a guest.
    pub account_id: Option<Uuid>,
    /// What it is about.
    pub category: Category,
    /// The checked subject.
    pub subject: &'a str,
    /// A guest's name.
    pub contact_username: Option<&'a str>,
    /// A guest's address.
    pub contact_email: Option<&'a str>,
    /// The language to mail a guest in.
    pub language: Language,
    /// When it is filed.
    pub now: DateTime<Utc>,
}

/// Seals a new ticket into an open row with a fresh id, not yet written.
pub fn sealed_ticket(
    sealer: &Sealer<'_>,
    new: &NewTicketRow<'_>,
) -> Result<ticket::ActiveModel, CryptoError> {
    let id = Uuid::new_v4();
    Ok(ticket::ActiveModel {
        id: Set(id),
        reference: Set(new.reference.clone()),
        account_id: Set(new.account_id),
        category: Set(new.category.as_str().to_owned()),
        status: Set(Status::Open.as_str().to_owned()),
        subject_ct: Set(sealer.seal(SUBJECT.at(id), new.subject)?),
        contact_username_ct: Set(sealer.seal_opt(CONTACT_USERNAME.at(id), new.contact_username)?),
        contact_email_ct: Set(sealer.seal_opt(CONTACT_EMAIL.at(id), new.contact_email)?),
        contact_email_bidx: Set(new
            .contact_email
            .map(|email| sealer.index(EMAIL_INDEX, &normalise_email(email)))),
        language: Set(new.language.as_tag().to_owned()),
        created_at: Set(new.now),
        updated_at: Set(new.now),
    })
}

/// How many messages the thread of `ticket_id` holds.
pub async fn message_count<C: ConnectionTrait>(conn: &C, ticket_id: Uuid) -> Result<u64, DbErr> {
    ticket_message::Entity::find()
        .filter(ticket_message::Column::TicketId.eq(ticket_id))
        .count(conn)
        .await
}

/// A message about to be written, in plaintext.
pub struct NewMessage<'a> {
    /// The ticket it belongs to.
    pub ticket_id: Uuid,
    /// Its position in the thread, from 1.
    pub seq: i32,
    /// Who wrote it.
    pub author: Author,
    /// The member of staff who wrote it, if staff did.
    pub staff_id: Option<Uuid>,
    /// The checked text.
    pub body: &'a str,
    /// When it was written.
    pub now: DateTime<Utc>,
}

/// Seals one message into a row with a fresh id, not yet written.
pub fn sealed_message(
    sealer: &Sealer<'_>,
    new: NewMessage<'_>,
) -> Result<ticket_message::ActiveModel, CryptoError> {
    let id = Uuid::new_v4();
    Ok(ticket_message::ActiveModel {
        id: Set(id),
        ticket_id: Set(new.ticket_id),
        seq: Set(new.seq),
        author: Set(new.author.as_str().to_owned()),
        staff_id: Set(new.staff_id),
        body_ct: Set(sealer.seal(MESSAGE_BODY.at(id), new.body)?),
        created_at: Set(new.now),
    })
}

/// Writes a sealed ticket and returns it.
pub async fn insert_ticket<C: ConnectionTrait>(
    conn: &C,
    row: ticket::ActiveModel,
) -> Result<ticket::Model, DbErr> {
    row.insert(conn).await
}

/// Writes a sealed message.
pub async fn insert_message<C: ConnectionTrait>(
    conn: &C,
    row: ticket_message::ActiveModel,
) -> Result<(), DbErr> {
    row.insert(conn).await?;
    Ok(())
}

/// Moves a ticket to `status` unless it is closed; `false` when it was
/// closed (also by a concurrent request: the condition is in the update).
pub async fn set_status_unless_closed<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    status: Status,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = ticket::Entity::update_many()
        .col_expr(ticket::Column::Status, Expr::value(status.as_str()))
        .col_expr(ticket::Column::UpdatedAt, Expr::value(now))
        .filter(ticket::Column::Id.eq(id))
        .filter(ticket::Column::Status.ne(Status::Closed.as_str()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The ticket `id`, if it exists.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<Option<ticket::Model>, DbErr> {
    ticket::Entity::find_by_id(id).one(conn).await
}

/// The tickets of `account`, newest first.
pub async fn of_account<C: ConnectionTrait>(
    conn: &C,
    account: Uuid,
) -> Result<Vec<ticket::Model>, DbErr> {
    ticket::Entity::find()
        .filter(ticket::Column::AccountId.eq(account))
        .order_by_desc(ticket::Column::CreatedAt)
        .order_by_desc(ticket::Column::Id)
        .all(conn)
        .await
}

/// Tickets filed as a guest from `email` (matched by its blind index
/// under every key in use), newest first.
pub async fn filed_as_guest_from<C: ConnectionTrait>(
    conn: &C,
    sealer: &Sealer<'_>,
    email: &str,
) -> Result<Vec<ticket::Model>, DbErr> {
    ticket::Entity::find()
        .filter(ticket::Column::AccountId.is_null())
        .filter(
            ticket::Column::ContactEmailBidx
                .is_in(sealer.lookup(EMAIL_INDEX, &normalise_email(email))),
        )
        .order_by_desc(ticket::Column::CreatedAt)
        .order_by_desc(ticket::Column::Id)
        .all(conn)
        .await
}

/// Where a ticket stands in the staff queue: data requests first, then
/// oldest first, ties broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePosition {
    /// Whether the ticket is a data request (the first group).
    pub data_request: bool,
    /// When it was filed.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// Up to `limit` tickets of the staff queue after the position `after`
/// (which need not be a ticket that still exists), optionally of one
/// status: data requests first, then oldest first.
pub async fn queue_page<C: ConnectionTrait>(
    conn: &C,
    status: Option<Status>,
    limit: u64,
    after: Option<QueuePosition>,
) -> Result<Vec<ticket::Model>, DbErr> {
    let data_request = || ticket::Column::Category.eq(Category::DataRequest.as_str());
    let other_category = || ticket::Column::Category.ne(Category::DataRequest.as_str());
    let mut query = ticket::Entity::find();
    if let Some(status) = status {
        query = query.filter(ticket::Column::Status.eq(status.as_str()));
    }
    if let Some(cursor) = after {
        // Everything that sorts after the cursor: later in its own group,
        // or in the later group when the cursor is a data request.
        let later_in_group = Condition::any()
            .add(ticket::Column::CreatedAt.gt(cursor.created_at))
            .add(
                Condition::all()
                    .add(ticket::Column::CreatedAt.eq(cursor.created_at))
                    .add(ticket::Column::Id.gt(cursor.id)),
            );
        query = if cursor.data_request {
            query.filter(
                Condition::any()
                    .add(other_category())
                    .add(Condition::all().add(data_request()).add(later_in_group)),
            )
        } else {
            query.filter(other_category()).filter(later_in_group)
        };
    }
    let group: Expr = Expr::case(data_request(), 0).finally(1).into();
    query
        .order_by(group, Order::Asc)
        .order_by_asc(ticket::Column::CreatedAt)
        .order_by_asc(ticket::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// The messages of the tickets `ids`, by ticket, each thread oldest first.
pub async fn messages_of<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<Vec<ticket_message::Model>, DbErr> {
    ticket_message::Entity::find()
        .filter(ticket_message::Column::TicketId.is_in(ids))
        .order_by_asc(ticket_message::Column::TicketId)
        .order_by_asc(ticket_message::Column::Seq)
        .all(conn)
        .await
}

/// The requester's messages on the tickets of `account` written after
/// `since`.
fn requester_messages_since(
    account: Uuid,
    since: DateTime<Utc>,
) -> sea_orm::Select<ticket_message::Entity> {
    ticket_message::Entity::find()
        .filter(ticket_message::Column::Author.eq(Author::Requester.as_str()))
        .filter(ticket_message::Column::CreatedAt.gt(since))
        .filter(
            ticket_message::Column::TicketId.in_subquery(
                ticket::Entity::find()
                    .select_only()
                    .column(ticket::Column::Id)
                    .filter(ticket::Column::AccountId.eq(account))
                    .into_query(),
            ),
        )
}

/// How many messages the requester wrote on the tickets of `account`
/// after `since`.
pub async fn requester_message_count<C: ConnectionTrait>(
    conn: &C,
    account: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    requester_messages_since(account, since).count(conn).await
}

/// When the oldest message the requester wrote on the tickets of
/// `account` after `since` was written.
pub async fn oldest_requester_message<C: ConnectionTrait>(
    conn: &C,
    account: Uuid,
    since: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    requester_messages_since(account, since)
        .select_only()
        .column(ticket_message::Column::CreatedAt)
        .order_by_asc(ticket_message::Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await
}

/// The subject of a ticket.
pub fn open_subject(sealer: &Sealer<'_>, row: &ticket::Model) -> Result<String, CryptoError> {
    sealer.open(SUBJECT.at(row.id), &row.subject_ct)
}

/// The name a guest gave, if any.
pub fn open_contact_username(
    sealer: &Sealer<'_>,
    row: &ticket::Model,
) -> Result<Option<String>, CryptoError> {
    sealer.open_opt(
        CONTACT_USERNAME.at(row.id),
        row.contact_username_ct.as_deref(),
    )
}

/// The address a guest gave, if any.
pub fn open_contact_email(
    sealer: &Sealer<'_>,
    row: &ticket::Model,
) -> Result<Option<String>, CryptoError> {
    sealer.open_opt(CONTACT_EMAIL.at(row.id), row.contact_email_ct.as_deref())
}

/// The text of a message.
pub fn open_body(
    sealer: &Sealer<'_>,
    message: &ticket_message::Model,
) -> Result<String, CryptoError> {
    sealer.open(MESSAGE_BODY.at(message.id), &message.body_ct)
}
