//! The consent ledger: append-only decisions, current state derived from
//! the newest decision per purpose.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::consent_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::policy::{PolicyDocument, PurposeDefinition};
use crate::db::Writes;

/// Where a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentSource {
    /// At signup.
    Signup,
    /// In the person's settings.
    Settings,
    /// When accepting a new policy version.
    PolicyUpdate,
}

impl ConsentSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "SIGNUP",
            Self::Settings => "SETTINGS",
            Self::PolicyUpdate => "POLICY_UPDATE",
        }
    }

    /// The source a stored name stands for; `None` for a name no version
    /// of this code writes.
    pub fn from_stored(stored: &str) -> Option<Self> {
        [Self::Signup, Self::Settings, Self::PolicyUpdate]
            .into_iter()
            .find(|source| source.as_str() == stored)
    }
}

/// Decisions a person may record in settings within [`DECISION_WINDOW`]:
/// far more than anyone changes their mind, few enough that a script
/// cannot grow the ledger without bound.
pub const MAX_DECISIONS_PER_WINDOW: u64 = 60;
/// The window [`MAX_DECISIONS_PER_WINDOW`] is counted over.
pub const DECISION_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// Why a consent decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Too many decisions in the window; the next is possible after this
    /// many seconds.
    #[error("too many consent decisions")]
    TooManyDecisions(u64),
    /// The purpose is not in the current policy.
    #[error("unknown purpose")]
    UnknownPurpose(String),
    /// Required purposes cannot be withdrawn; deleting the account is the way.
    #[error("required purpose")]
    RequiredPurpose,
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(ConsentError);

/// The current state of one purpose for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    /// Purpose code.
    pub purpose: String,
    /// Whether it is granted now.
    pub granted: bool,
    /// The policy version of the newest decision (the current version
    /// while undecided).
    pub policy_version: String,
    /// When this state began: the newest decision, or the current
    /// version's publication while undecided (the contract keeps it
    /// non-null; `decided_at` tells the two apart).
    pub updated_at: DateTime<Utc>,
    /// When the newest decision was made; `None` while undecided.
    pub decided_at: Option<DateTime<Utc>>,
}

/// A fingerprint of what the person was shown for a purpose: a changed
/// definition is a different purpose, and consent never carries over to it.
pub fn purpose_hash(purpose: &PurposeDefinition) -> Vec<u8> {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    field(&purpose.code);
    field(if purpose.required {
        "required"
    } else {
        "optional"
    });
    field(if purpose.sensitive {
        "sensitive"
    } else {
        "ordinary"
    });
    for language in [crate::mail::Language::ZhCn, crate::mail::Language::En] {
        field(purpose.title.get(language));
        field(purpose.description.get(language));
    }
    for category in &purpose.data_categories {
        field(category);
    }
    hasher.finalize().to_vec()
}

/// SHA-256 of the policy text shown, in every language.
pub fn policy_text_hash(policy: &PolicyDocument) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for language in [crate::mail::Language::ZhCn, crate::mail::Language::En] {
        let text = policy.text.get(language);
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.finalize().to_vec()
}

/// Appends one decision (a [`decision`]) to the ledger, inside the
/// caller's transaction.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    decision: consent_event::ActiveModel,
) -> Result<consent_event::Model, sea_orm::DbErr> {
    decision.insert(conn).await
}

/// [`append`] as one of `writes` (an account's first consents, written
/// with the account).
pub fn append_in(writes: &mut Writes, decision: consent_event::ActiveModel) {
    writes.push(consent_event::Entity::insert(decision).into_query());
}

/// The ledger row of one decision on `purpose` of `policy`.
pub fn decision(
    account_id: Uuid,
    policy: &PolicyDocument,
    purpose: &PurposeDefinition,
    granted: bool,
    source: ConsentSource,
    now: DateTime<Utc>,
) -> consent_event::ActiveModel {
    consent_event::ActiveModel {
        seq: sea_orm::ActiveValue::NotSet,
        id: Set(Uuid::new_v4()),
        account_id: Set(account_id),
        purpose: Set(purpose.code.clone()),
        purpose_hash: Set(purpose_hash(purpose)),
        policy_version: Set(policy.version.clone()),
        policy_text_hash: Set(policy_text_hash(policy)),
        granted: Set(granted),
        source: Set(source.as_str().to_owned()),
        created_at: Set(now),
    }
}

/// Records a decision made in settings. Granting and withdrawing are the
/// same single call; a required purpose cannot be withdrawn.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    policy: &PolicyDocument,
    purpose_code: &str,
    granted: bool,
    now: DateTime<Utc>,
) -> Result<ConsentState, ConsentError> {
    let purpose = policy
        .purpose(purpose_code)
        .ok_or_else(|| ConsentError::UnknownPurpose(purpose_code.to_owned()))?;
    if purpose.required && !granted {
        return Err(ConsentError::RequiredPurpose);
    }
    check_decision_rate(conn, account_id, now).await?;
    let event = append(
        conn,
        decision(
            account_id,
            policy,
            purpose,
            granted,
            ConsentSource::Settings,
            now,
        ),
    )
    .await?;
    Ok(ConsentState {
        purpose: event.purpose,
        granted: event.granted,
        policy_version: event.policy_version,
        updated_at: event.created_at,
        decided_at: Some(event.created_at),
    })
}

/// Refuses a settings decision when the person made
/// [`MAX_DECISIONS_PER_WINDOW`] in the last [`DECISION_WINDOW`], saying
/// when the oldest of them leaves the window. Counted in the database, so
/// every instance sees the same count.
async fn check_decision_rate<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ConsentError> {
    let recent = || {
        consent_event::Entity::find()
            .filter(consent_event::Column::AccountId.eq(account_id))
            .filter(consent_event::Column::Source.eq(ConsentSource::Settings.as_str()))
            .filter(consent_event::Column::CreatedAt.gt(now - DECISION_WINDOW))
    };
    if recent().count(conn).await? < MAX_DECISIONS_PER_WINDOW {
        return Ok(());
    }
    let oldest: Option<DateTime<Utc>> = recent()
        .select_only()
        .column(consent_event::Column::CreatedAt)
        .order_by_asc(consent_event::Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    let wait = oldest.map_or(DECISION_WINDOW, |at| at + DECISION_WINDOW - now);
    Err(ConsentError::TooManyDecisions(
        u64::try_from(wait.num_seconds()).unwrap_or(0).max(1),
    ))
}

/// Which of `accounts` have `purpose` granted now, by the same rule as
/// [`current_states`], reading only that purpose's decisions: for mailing
/// a page of accounts without loading each one's whole history.
pub async fn granted_among<C: ConnectionTrait>(
    conn: &C,
    accounts: &[Uuid],
    policy: &PolicyDocument,
    purpose: &str,
) -> Result<HashSet<Uuid>, sea_orm::DbErr> {
    let Some(definition) = policy.purpose(purpose) else {
        return Ok(HashSet::new());
    };
    if accounts.is_empty() {
        return Ok(HashSet::new());
    }
    let decisions: Vec<(Uuid, bool, Vec<u8>)> = consent_event::Entity::find()
        .select_only()
        .columns([
            consent_event::Column::AccountId,
            consent_event::Column::Granted,
            consent_event::Column::PurposeHash,
        ])
        .filter(consent_event::Column::AccountId.is_in(accounts.iter().copied()))
        .filter(consent_event::Column::Purpose.eq(purpose))
        .order_by_asc(consent_event::Column::Seq)
        .into_tuple()
        .all(conn)
        .await?;
    let mut newest: HashMap<Uuid, (bool, Vec<u8>)> = HashMap::new();
    for (account, granted, hash) in decisions {
        newest.insert(account, (granted, hash));
    }
    let wanted = purpose_hash(definition);
    Ok(newest
        .into_iter()
        .filter(|(_, (granted, hash))| *granted && *hash == wanted)
        .map(|(account, _)| account)
        .collect())
}

/// Every decision of a person, oldest first.
pub async fn history<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
) -> Result<Vec<consent_event::Model>, sea_orm::DbErr> {
    consent_event::Entity::find()
        .filter(consent_event::Column::AccountId.eq(account_id))
        .order_by_asc(consent_event::Column::Seq)
        .all(conn)
        .await
}

/// A page of a person's decisions in the order they were made: `limit`
/// decisions after the one at ledger sequence number `after`.
pub async fn history_page<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    limit: u64,
    after: Option<i64>,
) -> Result<Vec<consent_event::Model>, sea_orm::DbErr> {
    let mut query = consent_event::Entity::find()
        .filter(consent_event::Column::AccountId.eq(account_id))
        .order_by_asc(consent_event::Column::Seq);
    if let Some(after) = after {
        query = query.filter(consent_event::Column::Seq.gt(after));
    }
    query.limit(limit).all(conn).await
}

/// The current state of every purpose of the current policy. A purpose
/// counts as granted only when the newest decision granted it AND was made
/// for the same purpose definition: a changed purpose starts ungranted.
pub async fn current_states<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    policy: &PolicyDocument,
) -> Result<Vec<ConsentState>, sea_orm::DbErr> {
    let events = history(conn, account_id).await?;
    let mut newest: BTreeMap<&str, &consent_event::Model> = BTreeMap::new();
    for event in &events {
        newest.insert(event.purpose.as_str(), event);
    }
    Ok(policy
        .purposes
        .iter()
        .map(|purpose| match newest.get(purpose.code.as_str()) {
            Some(event) if event.purpose_hash == purpose_hash(purpose) => ConsentState {
                purpose: purpose.code.clone(),
                granted: event.granted,
                policy_version: event.policy_version.clone(),
                updated_at: event.created_at,
                decided_at: Some(event.created_at),
            },
            _ => ConsentState {
                purpose: purpose.code.clone(),
                granted: false,
                policy_version: policy.version.clone(),
                // Nobody decided anything about this purpose (as defined
                // now): the state is the one the version began with.
                updated_at: policy.published_at,
                decided_at: None,
            },
        })
        .collect())
}

/// Whether `purpose` is granted now.
pub async fn is_granted<C: ConnectionTrait>(
    conn: &C,
    account_id: Uuid,
    policy: &PolicyDocument,
    purpose: &str,
) -> Result<bool, sea_orm::DbErr> {
    Ok(current_states(conn, account_id, policy)
        .await?
        .iter()
        .any(|state| state.purpose == purpose && state.granted))
}
