//! GraphQL types and thin resolvers for the support desk.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Author, Category, Status,
    service::{
        self, CannotReply, MessageRecord, NewTicket, QueuePosition, TicketError, TicketRecord,
    },
};
use crate::{
    accounts::{Role, sessions::Viewer},
    graphql::{
        errors::{ApiError, ApiResult, ErrorCode},
        messages::{Key, Message},
        paging::{self, Cursors, Position},
        parse_id, request_language, require_role, state, viewer,
    },
};

const STAFF: &[Role] = &[Role::Support, Role::Admin];

impl From<TicketError> for ApiError {
    fn from(err: TicketError) -> Self {
        match err {
            TicketError::Subject("empty") => {
                ApiError::bad_input("subject", Key::TicketSubjectEmpty)
            }
            TicketError::Subject(_) => ApiError::bad_input(
                "subject",
                Message::new(Key::TicketSubjectTooLong).arg("max", service::MAX_SUBJECT_CHARS),
            ),
            TicketError::Body("empty") => ApiError::bad_input("body", Key::TicketBodyEmpty),
            TicketError::Body(_) => ApiError::bad_input(
                "body",
                Message::new(Key::TicketBodyTooLong).arg("max", service::MAX_BODY_CHARS),
            ),
            TicketError::ContactUsername => ApiError::bad_input(
                "contactUsername",
                Message::new(Key::TicketContactUsername)
                    .arg("max", service::MAX_CONTACT_USERNAME_CHARS),
            ),
            TicketError::ContactEmail => ApiError::bad_input("contactEmail", Key::EmailInvalid),
            TicketError::ContactForGuestsOnly(field) => {
                ApiError::bad_input(field, Key::TicketContactForGuestsOnly)
            }
            TicketError::Reason("empty") => ApiError::bad_input("reason", Key::TicketReasonEmpty),
            TicketError::Reason(_) => ApiError::bad_input(
                "reason",
                Message::new(Key::TicketReasonTooLong).arg("max", service::MAX_REVEAL_REASON_CHARS),
            ),
            TicketError::Closed => ApiError::bad_input("ticketId", Key::TicketClosed),
            TicketError::Invalid(errors) => {
                ApiError::all_of(errors.into_iter().map(ApiError::from))
                    .unwrap_or_else(|| ApiError::internal(&"an empty list of invalid fields"))
            }
            TicketError::ThreadFull => ApiError::bad_input("ticketId", Key::TicketThreadFull),
            TicketError::TooManyMessages(seconds) => crate::ratelimit::rate_limited(seconds),
            TicketError::NotFound => ApiError::not_found(),
            TicketError::NoContactEmail => {
                ApiError::new(ErrorCode::NotFound, Key::TicketNoContactEmail)
            }
            TicketError::ReferencesExhausted => ApiError::internal(&err),
            TicketError::Internal(err) => err.into(),
        }
    }
}

/// What a ticket is about.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "TicketCategory")]
pub enum TicketCategoryValue {
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

impl From<TicketCategoryValue> for Category {
    fn from(value: TicketCategoryValue) -> Self {
        match value {
            TicketCategoryValue::Complaint => Self::Complaint,
            TicketCategoryValue::Consultation => Self::Consultation,
            TicketCategoryValue::Appeal => Self::Appeal,
            TicketCategoryValue::DataRequest => Self::DataRequest,
            TicketCategoryValue::Other => Self::Other,
        }
    }
}

impl From<Category> for TicketCategoryValue {
    fn from(value: Category) -> Self {
        match value {
            Category::Complaint => Self::Complaint,
            Category::Consultation => Self::Consultation,
            Category::Appeal => Self::Appeal,
            Category::DataRequest => Self::DataRequest,
            Category::Other => Self::Other,
        }
    }
}

/// Where a ticket stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "TicketStatus")]
pub enum TicketStatusValue {
    /// Waiting for staff.
    Open,
    /// Staff replied; waiting for the requester.
    Answered,
    /// Done: no more messages.
    Closed,
}

impl From<TicketStatusValue> for Status {
    fn from(value: TicketStatusValue) -> Self {
        match value {
            TicketStatusValue::Open => Self::Open,
            TicketStatusValue::Answered => Self::Answered,
            TicketStatusValue::Closed => Self::Closed,
        }
    }
}

impl From<Status> for TicketStatusValue {
    fn from(value: Status) -> Self {
        match value {
            Status::Open => Self::Open,
            Status::Answered => Self::Answered,
            Status::Closed => Self::Closed,
        }
    }
}

/// Who wrote a message.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "TicketAuthor")]
pub enum TicketAuthorValue {
    /// The person who filed the ticket.
    Requester,
    /// Support staff.
    Staff,
}

impl From<Author> for TicketAuthorValue {
    fn from(value: Author) -> Self {
        match value {
            Author::Requester => Self::Requester,
            Author::Staff => Self::Staff,
        }
    }
}

/// A new ticket.
#[derive(InputObject)]
pub struct CreateTicketInput {
    category: TicketCategoryValue,
    /// 1 to 200 characters.
    subject: String,
    /// The first message: 1 to 10,000 characters.
    body: String,
    /// Guests only: how to reach them. Without an email no reply can be sent.
    contact_username: Option<String>,
    /// Guests only: the address replies are mailed to.
    contact_email: Option<String>,
}

/// One message of a ticket's thread.
#[derive(SimpleObject)]
pub struct TicketMessage {
    id: ID,
    author: TicketAuthorValue,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<MessageRecord> for TicketMessage {
    fn from(message: MessageRecord) -> Self {
        Self {
            id: ID(message.id.to_string()),
            author: message.author.into(),
            body: message.body,
            created_at: message.created_at,
        }
    }
}

/// A support ticket with its thread.
#[derive(SimpleObject)]
pub struct Ticket {
    id: ID,
    /// Short human reference, e.g. for a phone call.
    reference: String,
    category: TicketCategoryValue,
    subject: String,
    status: TicketStatusValue,
    /// False when nobody can be told of a reply (a guest without email).
    can_reply: bool,
    /// Why no reply can be mailed, when `canReply` is false.
    cannot_reply_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The thread, oldest first.
    messages: Vec<TicketMessage>,
    /// Staff only (null for others): the account's username, or the name a guest gave.
    requester_username: Option<String>,
    /// Staff only (null for others): the address with its local part hidden, e.g. `z***@example.com`.
    requester_email_masked: Option<String>,
}

fn cannot_reply_reason(reason: CannotReply) -> &'static str {
    match reason {
        CannotReply::NoEmail => {
            "No email address was given, so no reply can be sent. Keep the reference to ask about this request."
        }
        CannotReply::EmailNotVerified => {
            "The account's email address is not verified yet: replies are emailed once it is, and can be read here meanwhile."
        }
        CannotReply::DeletionScheduled => {
            "The account is scheduled for deletion, so no more mail is sent."
        }
    }
}

impl From<TicketRecord> for Ticket {
    fn from(record: TicketRecord) -> Self {
        let (requester_username, requester_email_masked) = match record.requester {
            Some(requester) => (requester.username, requester.email_masked),
            None => (None, None),
        };
        Self {
            id: ID(record.id.to_string()),
            reference: record.reference,
            category: record.category.into(),
            subject: record.subject,
            status: record.status.into(),
            can_reply: record.can_reply.is_ok(),
            cannot_reply_reason: record
                .can_reply
                .err()
                .map(|reason| cannot_reply_reason(reason).to_owned()),
            created_at: record.created_at,
            updated_at: record.updated_at,
            messages: record
                .messages
                .into_iter()
                .map(TicketMessage::from)
                .collect(),
            requester_username,
            requester_email_masked,
        }
    }
}

fn tickets(records: Vec<TicketRecord>) -> Vec<Ticket> {
    records.into_iter().map(Ticket::from).collect()
}

/// Ticket queries.
#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// The caller's own tickets, newest first.
    async fn my_tickets(&self, ctx: &Context<'_>) -> ApiResult<Vec<Ticket>> {
        let viewer = viewer(ctx)?;
        Ok(tickets(service::mine(state(ctx)?, viewer).await?))
    }

    /// One of the caller's tickets (staff: any ticket); null for anyone
    /// else's, and for an unknown or malformed id.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Ticket>> {
        let viewer = viewer(ctx)?;
        let Ok(id) = parse_id(&id, "id") else {
            return Ok(None);
        };
        match service::get(state(ctx)?, viewer, id).await {
            Ok(record) => Ok(Some(record.into())),
            Err(TicketError::NotFound) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// SUPPORT or ADMIN. Data requests first, then oldest first (ties by
    /// id); `first` (0–200, default 50) tickets after the cursor `after`;
    /// all statuses unless `status` is given.
    async fn support_queue(
        &self,
        ctx: &Context<'_>,
        status: Option<TicketStatusValue>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, Ticket>> {
        let staff = require_role(ctx, STAFF)?;
        let first = paging::page_size(first)?;
        let state = state(ctx)?;
        let cursors = Cursors::shared(state.cipher());
        let position = cursors.open::<QueueCursor>(after.as_deref())?;
        let (records, more) = service::queue(
            state,
            staff,
            status.map(Status::from),
            first,
            position.map(|cursor| cursor.0),
        )
        .await?;
        let items = records
            .into_iter()
            .map(|record| {
                (
                    QueueCursor(QueuePosition::of(&record)),
                    Ticket::from(record),
                )
            })
            .collect();
        cursors.connection(items, more, position.is_some())
    }
}

/// A position in the staff queue, as its cursors carry it: the group
/// (1 byte), the filing instant (seconds and nanoseconds, 12 bytes, so it
/// compares equal to the stored one) and the id (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueCursor(QueuePosition);

impl Position for QueueCursor {
    const LIST: &'static str = "support_queue";

    fn to_bytes(&self) -> Vec<u8> {
        let position = &self.0;
        let mut bytes = Vec::with_capacity(29);
        bytes.push(u8::from(position.data_request));
        bytes.extend_from_slice(&position.created_at.timestamp().to_be_bytes());
        bytes.extend_from_slice(&position.created_at.timestamp_subsec_nanos().to_be_bytes());
        bytes.extend_from_slice(position.id.as_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&group, rest) = bytes.split_first()?;
        let (secs, rest) = rest.split_first_chunk::<8>()?;
        let (nanos, id) = rest.split_first_chunk::<4>()?;
        let data_request = match group {
            0 => false,
            1 => true,
            _ => return None,
        };
        let created_at =
            DateTime::from_timestamp(i64::from_be_bytes(*secs), u32::from_be_bytes(*nanos))?;
        Some(Self(QueuePosition {
            data_request,
            created_at,
            id: Uuid::from_slice(id).ok()?,
        }))
    }
}

/// Ticket mutations.
#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Files a ticket: from the caller's account when signed in, else as a
    /// guest with the contact details given.
    async fn create_ticket(
        &self,
        ctx: &Context<'_>,
        input: CreateTicketInput,
    ) -> ApiResult<Ticket> {
        crate::ratelimit::check(ctx, crate::ratelimit::Action::CreateTicket).await?;
        // No consent is asked: handling and answering what a person files,
        // at their account's address when signed in, is necessary for the
        // request itself (PIPL art. 50), so it never hangs on an optional
        // purpose.
        let record = service::create(
            state(ctx)?,
            ctx.data_opt::<Viewer>(),
            NewTicket {
                category: input.category.into(),
                subject: input.subject,
                body: input.body,
                contact_username: input.contact_username,
                contact_email: input.contact_email,
                language: request_language(ctx),
            },
        )
        .await?;
        Ok(record.into())
    }

    /// Adds a message: by the requester (the ticket opens again) or by staff
    /// (the ticket is answered and the requester is mailed the reply).
    async fn add_ticket_message(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
    ) -> ApiResult<Ticket> {
        let viewer = viewer(ctx)?;
        let ticket_id = parse_id(&ticket_id, "ticketId")?;
        Ok(service::add_message(state(ctx)?, viewer, ticket_id, &body)
            .await?
            .into())
    }

    /// Closes a ticket, by its requester or by staff.
    async fn close_ticket(&self, ctx: &Context<'_>, ticket_id: ID) -> ApiResult<Ticket> {
        let viewer = viewer(ctx)?;
        let ticket_id = parse_id(&ticket_id, "ticketId")?;
        Ok(service::close(state(ctx)?, viewer, ticket_id).await?.into())
    }

    /// SUPPORT or ADMIN: the requester's full email address. The reason is
    /// written to the audit trail with the caller and the ticket.
    async fn reveal_ticket_contact(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        reason: String,
    ) -> ApiResult<String> {
        let staff = require_role(ctx, STAFF)?;
        let ticket_id = parse_id(&ticket_id, "ticketId")?;
        Ok(service::reveal_contact(state(ctx)?, staff, ticket_id, &reason).await?)
    }
}
