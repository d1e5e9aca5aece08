//! The purge: erases each due account in one transaction and leaves an
//! erasure record without personal data. Runs on the scheduler and as
//! `custos purge --once`.
//!
//! Claiming: each erasure locks its request row (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so concurrent runners take different accounts; on SQLite one
//! process owns the jobs) and re-checks it is still due inside the same
//! transaction. A runner killed midway rolls back: the account stays whole
//! and the next run erases it. Runs catch up on everything overdue.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use entity::{
    account, account_token, audit_note, consent_event, deletion_request, erasure_record,
    login_throttle, outbox as outbox_row, session, ticket, ticket_message,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set, TransactionTrait, TryGetable,
    sea_query::{Expr, ExprTrait as _, IntoCondition, LockBehavior, LockType},
};
use uuid::Uuid;

use super::{
    service::{ErasureError, ErasureReason},
    store::RequestStatus,
    templates,
};
use crate::{
    accounts::service::{is_unreadable, open_with},
    audit::service::{self as audit, AuditRecord},
    crypto::blind_index::normalise_email,
    db::one_of,
    mail::outbox::{self, OutgoingMail},
    state::AppState,
};

/// What one run did, as counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Accounts erased.
    pub accounts: u64,
    /// Rows erased per table, summed over the accounts.
    pub rows: BTreeMap<&'static str, u64>,
    /// Requests still overdue after the run (should stay 0).
    pub overdue: u64,
}

pub use super::store::overdue_count;

/// Accounts claimed and erased per transaction on `backend`, unless
/// `CUSTOS_PURGE_BATCH` says otherwise. Each account's rows all go in the
/// same transaction; batching only saves round trips.
///
/// SQLite has one writer, so a batch there stays small enough (under half
/// a second) not to hold up sign-ups and logins for long; below that, the
/// checkpoint and statements of each transaction dominate (500 accounts a
/// batch took 61 s for 100,000 accounts, 1,000 took 45 s). PostgreSQL
/// only locks the batch's own rows, and there a batch's cost is mostly
/// per statement and per byte sent: sqlx 0.9.0 leaves Nagle's algorithm on
/// (its `TCP_NODELAY` fix is not released yet), so over TCP to a database
/// on the same host (loopback's 64 KiB MTU) a statement bigger than the
/// 16 KiB socket buffer can wait for a delayed ACK (about 40 ms). Fewer,
/// larger batches pay that less often: 100,000 accounts took 61 s in
/// batches of 2,000 and 36 s in batches of 5,000 (the most allowed), each
/// a transaction of about two seconds that locks only its own rows.
pub fn batch_size(backend: DbBackend) -> u64 {
    match backend {
        DbBackend::Postgres => crate::settings::MAX_PURGE_BATCH,
        _ => 1000,
    }
}

/// Where a run has got to in `(purge_after, id)` order.
type Cursor = Option<(DateTime<Utc>, Uuid)>;

/// Erases every due account, a batch per transaction, until none is due.
///
/// The run walks due requests in `(purge_after, id)` order and each batch
/// starts after the last request of the one before. Without that cursor
/// every claim began at the front of the index, where on PostgreSQL the
/// requests just completed still have (dead) entries until vacuum, so each
/// batch scanned everything done before it. A request skipped because
/// another runner holds it is that runner's; one that fell behind the
/// cursor (the other runner rolled back) is taken by the next run.
pub async fn run_once(state: &AppState) -> Result<PurgeReport, ErasureError> {
    // Keys a separate store did not delete last time go first.
    destroy_pending_keys(state).await;
    let mut report = PurgeReport::default();
    let mut cursor: Cursor = None;
    loop {
        let (erased, next) = erase_next_batch(state, cursor).await?;
        if erased.is_empty() {
            break;
        }
        // No session of an erased account may still be answered from memory.
        state.session_cache().forget_all();
        cursor = next;
        for counts in erased {
            report.accounts += 1;
            for (table, count) in counts {
                *report.rows.entry(table).or_default() += count;
            }
        }
    }
    report.overdue = overdue_count(state.db(), state.clock().now()).await?;
    if report.overdue > 0 {
        tracing::error!(
            overdue = report.overdue,
            "erasure requests are past their deadline"
        );
    }
    Ok(report)
}

/// Deletes from a separate key store the keys of accounts already erased.
/// A store that does not answer leaves them queued: the erasure itself has
/// committed, and the next run tries again.
async fn destroy_pending_keys(state: &AppState) {
    match state.keys().destroy_pending(state.db()).await {
        Ok(0) => {}
        Ok(destroyed) => tracing::info!(destroyed, "account keys destroyed"),
        Err(err) => tracing::error!(
            error = %err,
            "key store did not destroy erased accounts' keys; retried next run"
        ),
    }
}

/// Claims up to [`batch_size`] due requests after `cursor` and erases their
/// accounts in one transaction; empty when nothing is due. Also answers
/// the cursor after the last request claimed.
async fn erase_next_batch(
    state: &AppState,
    cursor: Cursor,
) -> Result<(Vec<BTreeMap<&'static str, u64>>, Cursor), ErasureError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let backend = txn.get_database_backend();
    let mut query = deletion_request::Entity::find()
        .filter(deletion_request::Column::Status.eq(RequestStatus::Scheduled))
        .filter(deletion_request::Column::PurgeAfter.lte(now))
        .order_by_asc(deletion_request::Column::PurgeAfter)
        .order_by_asc(deletion_request::Column::Id)
        .limit(
            state
                .settings()
                .erasure
                .purge_batch
                .unwrap_or_else(|| batch_size(backend)),
        );
    if let Some((purge_after, id)) = cursor {
        query = query.filter(
            Expr::tuple([
                Expr::col(deletion_request::Column::PurgeAfter),
                Expr::col(deletion_request::Column::Id),
            ])
            .gt(Expr::tuple([
                Expr::value(Some(purge_after)),
                Expr::value(id),
            ])),
        );
    }
    if backend == DbBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let requests = query.all(&txn).await?;
    let next = requests
        .last()
        .and_then(|last| last.purge_after.map(|at| (at, last.id)));
    if requests.is_empty() {
        return Ok((Vec::new(), next));
    }
    let counts = erase_accounts(state, &txn, &requests, now).await?;
    let erased: Vec<Uuid> = requests.iter().map(|r| r.account_id).collect();
    // Recorded before the commit, so no erasure commits that the journal
    // does not name (a journal that does not answer fails the batch, and
    // the next run tries again).
    state.journal().record(&erased, now).await?;
    if let Err(err) = txn.commit().await {
        // Nothing was erased: an entry left behind would have these
        // accounts erased again later without their receipt.
        if let Err(withdraw) = state.journal().withdraw(&erased).await {
            tracing::error!(error = %withdraw, "erasure journal entries of a failed batch not withdrawn");
        }
        return Err(err.into());
    }
    destroy_pending_keys(state).await;
    for request in &requests {
        tracing::info!(request_id = %request.id, account_id = %request.account_id, "account erased");
    }
    Ok((counts, next))
}

/// Deletes the rows of `E` that match `condition` and answers, for each
/// row deleted, the value of `column` (`RETURNING`): one statement both
/// erases the rows and says whose they were, for the certificate's counts.
async fn delete_returning<E, C, T>(
    conn: &C,
    condition: impl IntoCondition,
    column: E::Column,
) -> Result<Vec<T>, sea_orm::DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
    T: TryGetable,
{
    let mut statement = E::delete_many().filter(condition).into_query();
    statement.returning_col(column);
    let rows = conn.query_all(&statement).await?;
    rows.iter().map(|row| row.try_get_by_index(0)).collect()
}

/// Deletes the rows of `E` whose `owner` column is one of `ids` and counts
/// them per account under `table`.
async fn erase_owned<E, C>(
    conn: &C,
    owner: E::Column,
    ids: &[Uuid],
    table: &'static str,
    counts: &mut BTreeMap<Uuid, BTreeMap<&'static str, u64>>,
) -> Result<(), sea_orm::DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let backend = conn.get_database_backend();
    let owners: Vec<Uuid> =
        delete_returning::<E, _, _>(conn, one_of(backend, owner, ids.to_vec()), owner).await?;
    tally(owners.into_iter().map(Some), table, counts);
    Ok(())
}

/// Counts rows per owner, from `(row key, owner)` pairs.
fn tally<K>(
    owners: impl IntoIterator<Item = Option<K>>,
    table: &'static str,
    counts: &mut BTreeMap<K, BTreeMap<&'static str, u64>>,
) where
    K: Ord,
{
    for owner in owners.into_iter().flatten() {
        *counts.entry(owner).or_default().entry(table).or_default() += 1;
    }
}

/// What [`erase_rows`] did: rows erased per account and table, and the
/// receipt each readable account is owed (id, address, language).
pub struct Erased {
    /// Rows erased per account, per table.
    pub counts: BTreeMap<Uuid, BTreeMap<&'static str, u64>>,
    /// Where each readable account's receipt goes.
    pub receipts: Vec<(Uuid, String, crate::mail::Language)>,
}

/// Erases every row of the accounts `ids` (whose account rows, read in
/// `txn`, are `rows`) and destroys their data keys, inside `txn`. An
/// account whose key is already gone is erased by its ids and stored
/// indexes alone, and gets no receipt.
pub async fn erase_rows<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    ids: &[Uuid],
    rows: &[account::Model],
    now: DateTime<Utc>,
) -> Result<Erased, ErasureError> {
    let mut counts: BTreeMap<Uuid, BTreeMap<&'static str, u64>> = BTreeMap::new();
    // The accounts' data keys, read for the last time and destroyed with
    // the rest (crypto-shredding: without its key, no copy of an account's
    // rows, a backup or a replica, can be read again).
    let keys = state
        .keys()
        .take_for_erasure(state.cipher(), txn, ids, now)
        .await?;
    let owners = owners(state, rows, &keys)?;
    let ticket_owner = ticket_owners(txn, ids, &owners.of_address).await?;
    erase_tickets(txn, &ticket_owner, &mut counts).await?;
    erase_account_rows(txn, ids, &owners.of_subject, &mut counts).await?;
    erase_mail(txn, ids, &owners.of_address, &mut counts).await?;
    erase_notes(txn, ids, &ticket_owner, &mut counts).await?;

    account::Entity::delete_many()
        .filter(one_of(
            txn.get_database_backend(),
            account::Column::Id,
            ids.to_vec(),
        ))
        .exec(txn)
        .await?;
    tally(rows.iter().map(|r| Some(r.id)), "accounts", &mut counts);
    // A separate key store deletes them after the commit (`run_once`).
    tally(keys.keys().map(|id| Some(*id)), "account_keys", &mut counts);
    Ok(Erased {
        counts,
        receipts: owners.receipts,
    })
}

/// Rows erased per account, per table.
type Counts = BTreeMap<Uuid, BTreeMap<&'static str, u64>>;

/// Which account an address index, or a throttle subject, belongs to, and
/// the receipt each readable account is owed.
struct Owners {
    of_address: BTreeMap<Vec<u8>, Uuid>,
    of_subject: BTreeMap<Vec<u8>, Uuid>,
    receipts: Vec<(Uuid, String, crate::mail::Language)>,
}

/// The owners of the accounts `rows`, opened with their data keys `keys`.
/// Indexes are computed from the decrypted addresses under every
/// blind-index key in use: while a rotation runs, a person's tickets and
/// mail may be indexed under either key, and both must go. Only the
/// account's own address counts: a guardian's address is someone else's
/// (mail to it about this account carries the account's id), and that
/// person's own mail must survive the purge.
fn owners(
    state: &AppState,
    rows: &[account::Model],
    keys: &std::collections::HashMap<Uuid, std::sync::Arc<crate::crypto::AccountKey>>,
) -> Result<Owners, ErasureError> {
    let mut owners = Owners {
        of_address: BTreeMap::new(),
        of_subject: BTreeMap::new(),
        receipts: Vec::new(),
    };
    for row in rows {
        owners.of_address.insert(row.email_bidx.clone(), row.id);
        let key = keys.get(&row.id).map(|key| &**key);
        let person = match open_with(state, row, key) {
            Ok(person) => person,
            // Its key is gone (a restored backup of an account erased
            // since): what the stored index names still goes, and there
            // is nobody to send a receipt to.
            Err(err) if is_unreadable(&err) => continue,
            Err(err) => return Err(err.into()),
        };
        owners
            .receipts
            .push((row.id, person.email.clone(), person.language));
        for index in state
            .blind()
            .lookup("email", &normalise_email(&person.email))
        {
            owners.of_address.insert(index, row.id);
        }
        for subject in crate::accounts::sessions::throttle_subjects(state, &person) {
            owners.of_subject.insert(subject, row.id);
        }
    }
    Ok(owners)
}

/// Tickets filed by the accounts, or as guests from their addresses, with
/// the account each belongs to. Two index-friendly reads, not one OR (see
/// [`erase_mail`]).
async fn ticket_owners<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
    owner_of_address: &BTreeMap<Vec<u8>, Uuid>,
) -> Result<BTreeMap<Uuid, Uuid>, ErasureError> {
    let addresses: Vec<Vec<u8>> = owner_of_address.keys().cloned().collect();
    let backend = txn.get_database_backend();
    // Looked up once per ticket: a batch names up to 5,000 accounts.
    let erased: BTreeSet<Uuid> = ids.iter().copied().collect();
    let mut ticket_owner: BTreeMap<Uuid, Uuid> = BTreeMap::new();
    for condition in [
        one_of(backend, ticket::Column::AccountId, ids.to_vec()),
        one_of(backend, ticket::Column::ContactEmailBidx, addresses),
    ] {
        let found: Vec<(Uuid, Option<Uuid>, Option<Vec<u8>>)> = ticket::Entity::find()
            .select_only()
            .columns([
                ticket::Column::Id,
                ticket::Column::AccountId,
                ticket::Column::ContactEmailBidx,
            ])
            .filter(condition)
            .into_tuple()
            .all(txn)
            .await?;
        for (ticket_id, account_id, contact) in found {
            let owner = account_id.filter(|a| erased.contains(a)).or_else(|| {
                contact
                    .as_ref()
                    .and_then(|c| owner_of_address.get(c).copied())
            });
            if let Some(owner) = owner {
                ticket_owner.insert(ticket_id, owner);
            }
        }
    }
    Ok(ticket_owner)
}

/// Erases the tickets `ticket_owner` names, their messages first.
async fn erase_tickets<C: ConnectionTrait>(
    txn: &C,
    ticket_owner: &BTreeMap<Uuid, Uuid>,
    counts: &mut Counts,
) -> Result<(), ErasureError> {
    let ticket_ids: Vec<Uuid> = ticket_owner.keys().copied().collect();
    let backend = txn.get_database_backend();
    // Children first, so foreign keys never see an orphan. Each delete
    // answers whose rows it took, which the certificate counts.
    let messages: Vec<Uuid> = delete_returning::<ticket_message::Entity, _, _>(
        txn,
        one_of(
            backend,
            ticket_message::Column::TicketId,
            ticket_ids.clone(),
        ),
        ticket_message::Column::TicketId,
    )
    .await?;
    tally(
        messages.iter().map(|t| ticket_owner.get(t).copied()),
        "ticket_messages",
        counts,
    );
    ticket::Entity::delete_many()
        .filter(one_of(backend, ticket::Column::Id, ticket_ids))
        .exec(txn)
        .await?;
    tally(ticket_owner.values().map(|o| Some(*o)), "tickets", counts);

    Ok(())
}

/// Erases the accounts' sessions, tokens, consent events and login
/// throttles.
async fn erase_account_rows<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
    owner_of_subject: &BTreeMap<Vec<u8>, Uuid>,
    counts: &mut Counts,
) -> Result<(), ErasureError> {
    erase_owned::<session::Entity, _>(txn, session::Column::AccountId, ids, "sessions", counts)
        .await?;
    erase_owned::<account_token::Entity, _>(
        txn,
        account_token::Column::AccountId,
        ids,
        "account_tokens",
        counts,
    )
    .await?;
    erase_owned::<consent_event::Entity, _>(
        txn,
        consent_event::Column::AccountId,
        ids,
        "consent_events",
        counts,
    )
    .await?;
    let throttled: Vec<Vec<u8>> = delete_returning::<login_throttle::Entity, _, _>(
        txn,
        one_of(
            txn.get_database_backend(),
            login_throttle::Column::SubjectBidx,
            owner_of_subject.keys().cloned().collect(),
        ),
        login_throttle::Column::SubjectBidx,
    )
    .await?;
    tally(
        throttled.iter().map(|s| owner_of_subject.get(s).copied()),
        "login_throttle",
        counts,
    );

    Ok(())
}

/// Erases the mail about the accounts, and the mail to their addresses
/// that concerns no account.
async fn erase_mail<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
    owner_of_address: &BTreeMap<Vec<u8>, Uuid>,
    counts: &mut Counts,
) -> Result<(), ErasureError> {
    let addresses: Vec<Vec<u8>> = owner_of_address.keys().cloned().collect();
    // Two index-friendly deletes instead of one `a IN (..) OR b IN (..)`:
    // PostgreSQL planned the OR as a scan of the whole outbox, which grows
    // by a receipt per erased account (nine minutes for 100,000 accounts).
    // A row matching both goes with the first and is counted once. By
    // address, only mail that concerns no account goes (replies to the
    // person's guest tickets): a row about another account is that
    // account's, whatever address it is going to.
    //
    // Every erased account leaves a receipt here with no account, so the
    // rows the second delete may match are most of the outbox while a large
    // purge runs. `idx_outbox_unowned_recipient` indexes exactly those rows
    // by address, and with the addresses as one array (see [`one_of`]) the
    // delete is one index probe per address however many receipts wait:
    // not a read of every `account_id IS NULL` row, which the planner chose
    // when its statistics predated the receipts.
    erase_owned::<outbox_row::Entity, _>(txn, outbox_row::Column::AccountId, ids, "outbox", counts)
        .await?;
    let to_addresses: Vec<Vec<u8>> = delete_returning::<outbox_row::Entity, _, _>(
        txn,
        unowned_mail_to(txn.get_database_backend(), addresses),
        outbox_row::Column::RecipientBidx,
    )
    .await?;
    tally(
        to_addresses
            .iter()
            .map(|bidx| owner_of_address.get(bidx).copied()),
        "outbox",
        counts,
    );

    Ok(())
}

/// The mail to `addresses` that concerns no account: what [`erase_mail`]
/// deletes besides the accounts' own.
///
/// On PostgreSQL the addresses are looked up in the partial index
/// `idx_outbox_unowned_recipient`. SQLite would read `account_id IS NULL`
/// as an equality on `idx_outbox_account` and walk every receipt instead,
/// with or without that index; a unary `+` keeps the column off any index
/// there, so the addresses are looked up in `idx_outbox_recipient_bidx`.
pub fn unowned_mail_to(backend: DbBackend, addresses: Vec<Vec<u8>>) -> Expr {
    let no_account = match backend {
        DbBackend::Postgres => outbox_row::Column::AccountId.is_null(),
        _ => Expr::cust(r#"+"account_id""#).is_null(),
    };
    one_of(backend, outbox_row::Column::RecipientBidx, addresses).and(no_account)
}

/// Erases staff notes about the accounts and about their guest tickets;
/// the audit entries naming them stay, and the chain still verifies.
async fn erase_notes<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
    ticket_owner: &BTreeMap<Uuid, Uuid>,
    counts: &mut Counts,
) -> Result<(), ErasureError> {
    erase_owned::<audit_note::Entity, _>(
        txn,
        audit_note::Column::SubjectId,
        ids,
        "audit_notes",
        counts,
    )
    .await?;
    let guest_notes: Vec<Uuid> = delete_returning::<audit_note::Entity, _, _>(
        txn,
        one_of(
            txn.get_database_backend(),
            audit_note::Column::TicketId,
            ticket_owner.keys().copied().collect(),
        ),
        audit_note::Column::TicketId,
    )
    .await?;
    tally(
        guest_notes.iter().map(|t| ticket_owner.get(t).copied()),
        "audit_notes",
        counts,
    );

    Ok(())
}

/// Erases the accounts of `requests` inside `txn` and completes the
/// requests, returning per-account row counts in request order. The caller
/// commits; a process killed before that rolls everything back.
pub async fn erase_accounts<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    requests: &[deletion_request::Model],
    now: DateTime<Utc>,
) -> Result<Vec<BTreeMap<&'static str, u64>>, ErasureError> {
    let ids: Vec<Uuid> = requests.iter().map(|r| r.account_id).collect();
    let backend = txn.get_database_backend();
    let rows = account::Entity::find()
        .filter(one_of(backend, account::Column::Id, ids.clone()))
        .all(txn)
        .await?;
    let Erased {
        mut counts,
        mut receipts,
    } = erase_rows(state, txn, &ids, &rows, now).await?;
    // Nobody proved an unverified sign-up's address theirs: it may be a
    // stranger's, who is not mailed a receipt.
    let unverified: BTreeSet<Uuid> = requests
        .iter()
        .filter(|r| r.reason == ErasureReason::UnverifiedSignup.as_str())
        .map(|r| r.account_id)
        .collect();
    receipts.retain(|(id, _, _)| !unverified.contains(id));

    complete_requests(
        txn,
        one_of(
            backend,
            deletion_request::Column::Id,
            requests.iter().map(|r| r.id).collect(),
        ),
        now,
    )
    .await?;

    let per_request = certify(txn, requests, &mut counts, now).await?;
    queue_receipts(state, txn, receipts, &per_request, now).await?;
    Ok(per_request
        .into_iter()
        .map(|(_, _, counts)| counts)
        .collect())
}

/// What each erased request got: its account, its certificate and the rows
/// erased per table.
type Certified = Vec<(Uuid, Uuid, BTreeMap<&'static str, u64>)>;

/// Writes an erasure certificate and an audit entry for each request, in
/// request order, with the rows erased for its account.
async fn certify<C: ConnectionTrait>(
    txn: &C,
    requests: &[deletion_request::Model],
    counts: &mut Counts,
    now: DateTime<Utc>,
) -> Result<Certified, ErasureError> {
    let mut certificates = Vec::with_capacity(requests.len());
    let mut audit_records = Vec::with_capacity(requests.len());
    let mut per_request = Vec::with_capacity(requests.len());
    for request in requests {
        let account_counts = counts.remove(&request.account_id).unwrap_or_default();
        let certificate_id = Uuid::new_v4();
        certificates.push(erasure_record::ActiveModel {
            id: Set(certificate_id),
            request_id: Set(request.id),
            reason: Set(request.reason.clone()),
            requested_at: Set(request.requested_at),
            confirmed_at: Set(request.confirmed_at),
            deadline: Set(request.purge_after),
            completed_at: Set(now),
            table_counts: Set(
                serde_json::to_string(&account_counts).unwrap_or_else(|_| "{}".into())
            ),
        });
        audit_records.push(AuditRecord {
            actor_id: None,
            action: "account.purge",
            subject_id: Some(request.account_id),
            detail: format!("request={} certificate={certificate_id}", request.id),
        });
        per_request.push((request.account_id, certificate_id, account_counts));
    }
    // Eight parameters a row: far below both databases' caps.
    for chunk in certificates.chunks(2000) {
        erasure_record::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    audit::append_many(txn, audit_records, now).await?;
    Ok(per_request)
}

/// Queues the receipts, the last mail to each person; its row is deleted
/// once sent or given up.
async fn queue_receipts<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    receipts: Vec<(Uuid, String, crate::mail::Language)>,
    per_request: &Certified,
    now: DateTime<Utc>,
) -> Result<(), ErasureError> {
    let completed = super::service::local_time(state, now);
    // The first certificate of each account, looked up once per receipt.
    let mut certificate_of: BTreeMap<Uuid, Uuid> = BTreeMap::new();
    for (account, certificate, _) in per_request {
        certificate_of.entry(*account).or_insert(*certificate);
    }
    let mut sealed = Vec::with_capacity(receipts.len());
    for (account_id, email, language) in receipts {
        let certificate = certificate_of
            .get(&account_id)
            .map(Uuid::to_string)
            .unwrap_or_default();
        sealed.push(outbox::seal(
            state.cipher(),
            None,
            state.blind().active(),
            &OutgoingMail {
                account_id: None,
                kind: "erasure_receipt",
                to: email,
                content: templates::erased(language, &completed, &certificate),
            },
            now,
        )?);
    }
    while !sealed.is_empty() {
        let rest = sealed.split_off(sealed.len().min(1000));
        outbox::enqueue_sealed(txn, sealed).await?;
        sealed = rest;
    }
    Ok(())
}

/// Marks the deletion requests `which` selects as completed at `now`,
/// their claim released and their links voided: what the purge does for
/// the requests it served, and what a re-applied erasure does for a
/// restored copy's open ones.
pub async fn complete_requests<C: ConnectionTrait>(
    txn: &C,
    which: impl sea_orm::sea_query::IntoCondition,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    super::store::complete(txn, which, now).await
}
