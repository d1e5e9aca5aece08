//! Staff free text of audit entries, kept beside the chain.
//!
//! Rules:
//! - The text is encrypted under the subject account's data key (made if
//!   needed), or under the keyring when the entry concerns no account; it
//!   is bound to `audit_notes.note` and the note's id.
//! - The entry's detail carries `note=<id> note_sha256=<hex>`, the hash
//!   being over a random salt stored with the note and the text: the chain
//!   proves the note was not changed while it exists, and once the purge
//!   has deleted the note (with the salt) the hash says nothing about it.
//! - The purge deletes the notes of erased accounts, and those of the
//!   guest tickets it erases with them (by `ticket_id`); the chain still
//!   verifies, since no entry changes.

use chrono::{DateTime, Utc};
use entity::audit_note;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    crypto::{AccountKey, CryptoError, SealedField, Sealer, random_bytes},
    state::AppState,
};

/// Whom a note concerns, which decides its key and how the purge finds it.
#[derive(Debug, Clone, Copy)]
pub enum NoteSubject {
    /// An account: under its data key, erased with it.
    Account(Uuid),
    /// A guest's ticket: under the keyring, erased with the ticket (the
    /// purge erases a guest's tickets with the account of their address).
    GuestTicket(Uuid),
    /// Nobody in particular.
    Nobody,
}

/// What can go wrong with a note.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// Storage failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Encryption failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// `audit_notes.note_ct`.
const NOTE: SealedField = SealedField::new("audit_notes", "note");

/// The state's sealer, under `key` (the subject account's data key) when
/// given, else the keyring.
fn sealer<'a>(state: &'a AppState, key: Option<&'a AccountKey>) -> Sealer<'a> {
    Sealer::new(state.cipher(), state.blind()).under(key)
}

/// The chained hash of a note: SHA-256 over the salt and the text.
fn note_hash(salt: &[u8], text: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt);
    hasher.update(text.as_bytes());
    hasher.finalize().to_vec()
}

/// Stores `text` as a note with `conn` (the transaction of the entry it
/// belongs to) and answers the detail fragment to chain instead of it:
/// `note=<id> note_sha256=<hex>`.
pub async fn seal<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    subject: NoteSubject,
    text: &str,
    now: DateTime<Utc>,
) -> Result<String, NoteError> {
    let id = Uuid::new_v4();
    let salt = random_bytes::<16>()?.to_vec();
    let key = match subject {
        NoteSubject::Account(account) => Some(state.write_key(conn, account).await?),
        NoteSubject::GuestTicket(_) | NoteSubject::Nobody => None,
    };
    let note_ct = sealer(state, key.as_deref()).seal(NOTE.at(id), text)?;
    let hash = note_hash(&salt, text);
    audit_note::ActiveModel {
        id: Set(id),
        subject_id: Set(match subject {
            NoteSubject::Account(account) => Some(account),
            _ => None,
        }),
        ticket_id: Set(match subject {
            NoteSubject::GuestTicket(ticket) => Some(ticket),
            _ => None,
        }),
        salt: Set(salt),
        note_ct: Set(note_ct),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(format!("note={id} note_sha256={}", hex::encode(hash)))
}

/// The note an entry's `detail` names, decrypted and checked against the
/// chained hash: `None` when the detail names none or it was erased.
pub async fn open<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    detail: &str,
) -> Result<Option<String>, NoteError> {
    let mut id = None;
    let mut chained = None;
    for part in detail.split_whitespace() {
        if let Some(value) = part.strip_prefix("note=") {
            id = Uuid::parse_str(value).ok();
        } else if let Some(value) = part.strip_prefix("note_sha256=") {
            chained = Some(value);
        }
    }
    let Some(id) = id else { return Ok(None) };
    let Some(row) = audit_note::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    let key = match row.subject_id {
        Some(account) => state.read_key_in(conn, account, &[&row.note_ct]).await?,
        None => None,
    };
    let text = sealer(state, key.as_deref()).open(NOTE.at(id), &row.note_ct)?;
    if chained != Some(hex::encode(note_hash(&row.salt, &text)).as_str()) {
        // A note swapped or edited beside the chain is not shown as true.
        tracing::error!(note_id = %id, "audit note does not match its entry");
        return Ok(None);
    }
    Ok(Some(text))
}
