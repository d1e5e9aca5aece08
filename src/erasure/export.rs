//! `myData`: everything held about the signed-in person, as one JSON
//! document — account fields (decrypted) and a new address waiting for
//! confirmation, the consent ledger, sessions, tickets and their messages
//! (those filed as a guest from the person's address too), deletion
//! requests, processing exceptions under a legal basis, staff reads of
//! their data, and the mail sent to them.
//!
//! Staff reads show the reader's role, the action, the ticket and when,
//! never who: a member of staff's identity is their own personal data,
//! and the person's question ("who at the company saw my data?") is
//! answered by role; the audit trail keeps the identity for inquiries.

use entity::{audit_entry, session};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::{
    accounts::{service as accounts, sessions::Viewer},
    consent::{publication::PROCESSING_EXCEPTION_ACTION, service as consent},
    crypto::fields::{AccountKey, FieldContext},
    mail::queue,
    state::AppState,
    tickets::service::TicketRecord,
};
use uuid::Uuid;

/// What can go wrong while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
    /// The account could not be read.
    #[error("account: {0}")]
    Account(#[from] crate::accounts::service::AccountError),
    /// Tickets could not be read.
    #[error("tickets: {0}")]
    Tickets(#[from] crate::tickets::service::TicketError),
}

crate::error::internal_causes!(ExportError);

/// Builds the export for the caller.
pub async fn my_data(state: &AppState, viewer: &Viewer) -> Result<Value, ExportError> {
    let db = state.db();
    let id = viewer.account_id;
    let row = entity::account::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(accounts::AccountError::NotFound)?;
    // The account's data key, for every field of its own (`None` while
    // they are all still under the keyring).
    let key = state.keys().cached(state.cipher(), db, id).await?;
    let key = key.as_deref();
    // An account whose data key is gone has nothing left to export.
    let Some(account) =
        accounts::absent_if_unreadable(state, id, accounts::open_with(state, &row, key))?
    else {
        return Err(accounts::AccountError::NotFound.into());
    };
    let guardian_email = accounts::guardian_email(state, &row, key)?;
    let ledger = consent_ledger(state, id).await?;
    let sessions = sessions(state, id, key).await?;
    let tickets: Vec<Value> = crate::tickets::service::mine(state, viewer)
        .await?
        .into_iter()
        .map(ticket_json)
        .collect();
    let guest_tickets: Vec<Value> =
        crate::tickets::service::filed_as_guest_from(state, &account.email)
            .await?
            .into_iter()
            .map(ticket_json)
            .collect();
    let pending_emails: Vec<Value> =
        accounts::pending_new_emails(state, id, state.clock().now())
            .await?
            .into_iter()
            .map(|(email, requested_at, expires_at)| {
                json!({ "email": email, "requestedAt": requested_at, "expiresAt": expires_at })
            })
            .collect();
    let staff_reads = staff_reads(state, id).await?;
    let deletion_requests = deletion_requests(state, id).await?;
    let exceptions = processing_exceptions(state, id).await?;
    let notices = notices(state, id, key).await?;

    Ok(json!({
        "exportedAt": state.clock().now(),
        "account": {
            "id": account.id, "username": account.username, "email": account.email,
            "emailVerified": account.email_verified, "role": account.role.as_str(),
            "language": account.language.as_tag(), "ageDeclaration": account.age_declaration,
            "guardianConsent": account.guardian_consent, "guardianEmail": guardian_email,
            "acceptedPolicyVersion": account.accepted_policy_version,
            "status": account.status, "createdAt": account.created_at,
            "pendingEmailChanges": pending_emails,
        },
        "consentLedger": ledger,
        "sessions": sessions,
        "tickets": tickets,
        "guestTickets": guest_tickets,
        "staffReads": staff_reads,
        "deletionRequests": deletion_requests,
        "processingExceptions": exceptions,
        "notices": notices,
    }))
}

/// The person's consent ledger, oldest first.
async fn consent_ledger(state: &AppState, id: Uuid) -> Result<Vec<Value>, ExportError> {
    Ok(consent::history(state.db(), id)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "purpose": e.purpose, "granted": e.granted,
                "policyVersion": e.policy_version, "source": e.source,
                "at": e.created_at, "purposeDefinitionSha256": hex::encode(&e.purpose_hash),
                "policyTextSha256": hex::encode(&e.policy_text_hash),
            })
        })
        .collect())
}

/// The person's sessions, oldest first, with their user agents.
async fn sessions(
    state: &AppState,
    id: Uuid,
    key: Option<&AccountKey>,
) -> Result<Vec<Value>, ExportError> {
    let mut sessions = Vec::new();
    for s in session::Entity::find()
        .filter(session::Column::AccountId.eq(id))
        .order_by_asc(session::Column::CreatedAt)
        .all(state.db())
        .await?
    {
        let user_agent = match &s.user_agent_ct {
            Some(ct) => Some(state.cipher().decrypt_str_under(
                key,
                &FieldContext {
                    table: "sessions",
                    column: "user_agent",
                    row_id: s.id,
                },
                ct,
            )?),
            None => None,
        };
        sessions.push(json!({
            "id": s.id, "createdAt": s.created_at, "lastSeenAt": s.last_seen_at,
            "expiresAt": s.expires_at, "revokedAt": s.revoked_at, "userAgent": user_agent,
        }));
    }
    Ok(sessions)
}

/// One ticket with its messages.
fn ticket_json(t: TicketRecord) -> Value {
    json!({
        "id": t.id, "reference": t.reference, "category": t.category.as_str(),
        "status": t.status.as_str(), "subject": t.subject,
        "createdAt": t.created_at, "updatedAt": t.updated_at,
        "messages": t.messages.into_iter().map(|m| json!({
            "id": m.id, "author": m.author.as_str(), "body": m.body, "createdAt": m.created_at,
        })).collect::<Vec<_>>(),
    })
}

/// The person's deletion requests, oldest first.
async fn deletion_requests(state: &AppState, id: Uuid) -> Result<Vec<Value>, ExportError> {
    Ok(super::store::of_account(state.db(), id)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "status": r.status, "reason": r.reason,
                "requestedAt": r.requested_at, "confirmedAt": r.confirmed_at,
                "purgeAfter": r.purge_after, "cancelledAt": r.cancelled_at,
            })
        })
        .collect())
}

/// Processing of the person's data under a legal basis despite a refusal,
/// with the recorded justification, oldest first.
async fn processing_exceptions(state: &AppState, id: Uuid) -> Result<Vec<Value>, ExportError> {
    let db = state.db();
    let mut exceptions = Vec::new();
    for e in audit_entry::Entity::find()
        .filter(audit_entry::Column::SubjectId.eq(id))
        .filter(audit_entry::Column::Action.eq(PROCESSING_EXCEPTION_ACTION))
        .order_by_asc(audit_entry::Column::Seq)
        .all(db)
        .await?
    {
        // The justification is kept beside the chain (crate::audit::notes).
        let justification = crate::audit::notes::open(state, db, &e.detail).await?;
        exceptions.push(json!({
            "id": e.id, "at": e.at, "byStaff": e.actor_id, "detail": e.detail,
            "justification": justification,
        }));
    }
    Ok(exceptions)
}

/// The mail queued to the person, oldest first, with its subject.
async fn notices(
    state: &AppState,
    id: Uuid,
    key: Option<&AccountKey>,
) -> Result<Vec<Value>, ExportError> {
    let mut notices = Vec::new();
    for m in queue::of_account(state.db(), id).await? {
        let subject = queue::open_subject(state.cipher(), key, &m)?;
        notices.push(json!({
            "id": m.id, "kind": m.kind, "subject": subject, "status": m.status,
            "queuedAt": m.created_at, "sentAt": m.sent_at,
        }));
    }
    Ok(notices)
}

/// Staff reads of the person's data (audit entries naming them as the
/// subject), oldest first: the reader's role now (`STAFF` when the
/// reader's account is gone), what was read and when.
async fn staff_reads(state: &AppState, id: uuid::Uuid) -> Result<Vec<Value>, ExportError> {
    use crate::tickets::service::{READ_ACTION, REVEAL_CONTACT_ACTION};
    let entries = audit_entry::Entity::find()
        .filter(audit_entry::Column::SubjectId.eq(id))
        .filter(audit_entry::Column::Action.is_in([READ_ACTION, REVEAL_CONTACT_ACTION]))
        .order_by_asc(audit_entry::Column::Seq)
        .all(state.db())
        .await?;
    let readers: Vec<uuid::Uuid> = entries.iter().filter_map(|e| e.actor_id).collect();
    let roles: std::collections::HashMap<uuid::Uuid, String> = entity::account::Entity::find()
        .filter(entity::account::Column::Id.is_in(readers))
        .all(state.db())
        .await?
        .into_iter()
        .map(|a| (a.id, a.role))
        .collect();
    Ok(entries
        .into_iter()
        .map(|e| {
            let role = e
                .actor_id
                .and_then(|actor| roles.get(&actor).cloned())
                .unwrap_or_else(|| "STAFF".to_owned());
            // Details start with `ticket=<id>`; the rest (a reason) is the
            // staff member's, not the person's.
            let ticket = e
                .detail
                .split_whitespace()
                .next()
                .and_then(|first| first.strip_prefix("ticket="))
                .map(str::to_owned);
            let what = match e.action.as_str() {
                REVEAL_CONTACT_ACTION => "your email address on a ticket",
                _ => "a ticket with your details",
            };
            json!({ "at": e.at, "byRole": role, "action": e.action, "what": what, "ticket": ticket })
        })
        .collect())
}
