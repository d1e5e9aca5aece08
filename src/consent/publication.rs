//! Publishing a new policy version, accepting it, and the features that
//! mail people on the strength of their consent.
//!
//! Rules: a new or changed purpose starts ungranted for everybody (consent
//! is tied to the purpose definition, see `service::purpose_hash`). A major
//! version is mailed to every active account, announced publicly, and asks
//! everyone to accept it again. Product news goes only to verified, active
//! accounts that granted `product_updates`.

use chrono::{DateTime, Utc};
use entity::account;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::{
    policy::{Localized, MajorChangeKind, PolicyDocument, PurposeDefinition},
    service::{self as ledger, ConsentSource},
    templates::{self, NamedPurpose},
    versions,
};
use crate::{
    accounts::{
        AccountStatus,
        service::{AccountError, AccountRecord, find, needs_account_key, open_with},
    },
    audit::service::{self as audit, AuditRecord},
    mail::{
        Language,
        outbox::{self, OutgoingMail},
    },
    notices::announcements::{AnnouncementKind, publish_announcement},
    state::AppState,
};

/// Accounts read per batch when mailing everybody.
pub const MAIL_BATCH: u64 = 500;
/// The purpose product news needs.
pub const PRODUCT_UPDATES: &str = "product_updates";

/// What can go wrong when publishing or accepting.
#[derive(Debug, thiserror::Error)]
pub enum PublicationError {
    /// A field of the new version is unusable.
    #[error("invalid {field}: {rule:?}")]
    Invalid {
        /// The input field at fault.
        field: &'static str,
        /// The rule it breaks.
        rule: Rule,
    },
    /// The version accepted is not the current one.
    #[error("policy version mismatch")]
    VersionMismatch,
    /// The account behind the request is gone.
    #[error("account: {0}")]
    Account(#[from] AccountError),
    /// Storage, crypto or mail failed (ours, not the person's).
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

crate::error::internal_causes!(PublicationError);

/// The rules a submission to this module can break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A version is 1 to 64 letters, digits, `.`, `-` or `_`.
    VersionShape,
    /// A version is published once.
    VersionPublished,
    /// A version says what changed.
    SummaryMissing,
    /// A version has a text.
    TextEmpty,
    /// Purpose codes use a-z, 0-9 and `_`.
    PurposeCode,
    /// Every purpose has a title and a description.
    PurposeTexts,
    /// The purposes fit together (no code twice, nothing both required and
    /// sensitive, the `account` purpose required); the admin's detail.
    PurposeSet(String),
    /// Every translated purpose has a title and a description.
    TranslationPurposeTexts,
    /// A translation has its summary and text.
    TranslationTexts,
    /// A translation is in another language than the main texts.
    TranslationRepeatsMain,
    /// A major version names the kinds of major change it makes.
    MajorWithoutKinds,
    /// A version that names a kind of major change is major.
    KindsWithoutMajor,
    /// A version that adds a purpose or a data category is major with
    /// `SERVICE_MODEL`.
    NewUseNotServiceModel,
    /// A product update's subject has 1 to [`MAX_UPDATE_SUBJECT_CHARS`] characters.
    SubjectLength,
    /// A product update's body has 1 to [`MAX_UPDATE_BODY_CHARS`] characters.
    BodyLength,
    /// A justification has [`MIN_JUSTIFICATION_CHARS`] to
    /// [`MAX_JUSTIFICATION_CHARS`] characters.
    JustificationLength,
}

/// Longest subject of a product update.
pub const MAX_UPDATE_SUBJECT_CHARS: usize = 200;
/// Longest body of a product update.
pub const MAX_UPDATE_BODY_CHARS: usize = 20_000;
/// Shortest justification of a processing exception.
pub const MIN_JUSTIFICATION_CHARS: usize = 10;
/// Longest justification of a processing exception.
pub const MAX_JUSTIFICATION_CHARS: usize = 2_000;

fn invalid(field: &'static str, rule: Rule) -> PublicationError {
    PublicationError::Invalid { field, rule }
}

/// A purpose as an admin submits it.
pub struct PurposeSubmission {
    /// Stable code.
    pub code: String,
    /// Short name.
    pub title: String,
    /// What the data is used for.
    pub description: String,
    /// Needed to run the account.
    pub required: bool,
    /// Sensitive personal information.
    pub sensitive: bool,
    /// Kinds of data used.
    pub data_categories: Vec<String>,
}

/// The texts of a version in one more language.
pub struct TranslationSubmission {
    /// Which language.
    pub language: Language,
    /// What changed.
    pub summary_of_changes: String,
    /// The policy text.
    pub text: String,
    /// Purpose titles and descriptions by code.
    pub purposes: Vec<(String, String, String)>,
}

/// A new version as an admin submits it.
pub struct PolicySubmission {
    /// The language the main texts are written in; every other language
    /// falls back to them unless translated.
    pub language: Language,
    /// Texts in further languages.
    pub translations: Vec<TranslationSubmission>,
    /// Version label.
    pub version: String,
    /// Whether it is a major change.
    pub major: bool,
    /// What changed.
    pub summary_of_changes: String,
    /// The policy text.
    pub text: String,
    /// Its purposes.
    pub purposes: Vec<PurposeSubmission>,
    /// The kinds of major change it makes: at least one when major, none
    /// when minor.
    pub change_kinds: Vec<MajorChangeKind>,
}

fn check_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Turns a submission into a document, checking every rule.
fn document(
    submission: PolicySubmission,
    now: DateTime<Utc>,
) -> Result<PolicyDocument, PublicationError> {
    let version = submission.version.trim().to_owned();
    if version.is_empty()
        || version.len() > 64
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(invalid("version", Rule::VersionShape));
    }
    if submission.summary_of_changes.trim().is_empty() {
        return Err(invalid("summaryOfChanges", Rule::SummaryMissing));
    }
    if submission.text.trim().is_empty() {
        return Err(invalid("text", Rule::TextEmpty));
    }
    let mut change_kinds = submission.change_kinds;
    change_kinds.sort();
    change_kinds.dedup();
    if submission.major && change_kinds.is_empty() {
        return Err(invalid("changeKinds", Rule::MajorWithoutKinds));
    }
    if !submission.major && !change_kinds.is_empty() {
        return Err(invalid("changeKinds", Rule::KindsWithoutMajor));
    }
    let purposes = purposes(submission.purposes, &submission.translations)?;
    let mut summary_of_changes = Localized::uniform(submission.summary_of_changes.trim());
    let mut text = Localized::uniform(&submission.text);
    for translation in &submission.translations {
        if translation.summary_of_changes.trim().is_empty() || translation.text.trim().is_empty() {
            return Err(invalid("translations", Rule::TranslationTexts));
        }
        if translation.language == submission.language {
            return Err(invalid("translations", Rule::TranslationRepeatsMain));
        }
        summary_of_changes.set(translation.language, translation.summary_of_changes.trim());
        text.set(translation.language, &translation.text);
    }
    let document = PolicyDocument {
        version,
        published_at: now,
        major: submission.major,
        summary_of_changes,
        text,
        purposes,
        change_kinds,
    };
    document
        .check()
        .map_err(|e| invalid("purposes", Rule::PurposeSet(e.detail().to_owned())))?;
    Ok(document)
}

/// The submitted purposes, checked, with their translations.
fn purposes(
    submitted: Vec<PurposeSubmission>,
    translations: &[TranslationSubmission],
) -> Result<Vec<PurposeDefinition>, PublicationError> {
    let mut purposes = Vec::with_capacity(submitted.len());
    for purpose in submitted {
        if !check_code(&purpose.code) {
            return Err(invalid("purposes", Rule::PurposeCode));
        }
        if purpose.title.trim().is_empty() || purpose.description.trim().is_empty() {
            return Err(invalid("purposes", Rule::PurposeTexts));
        }
        let mut title = Localized::uniform(purpose.title.trim());
        let mut description = Localized::uniform(purpose.description.trim());
        for translation in translations {
            if let Some((_, t, d)) = translation
                .purposes
                .iter()
                .find(|(code, _, _)| *code == purpose.code)
            {
                if t.trim().is_empty() || d.trim().is_empty() {
                    return Err(invalid("translations", Rule::TranslationPurposeTexts));
                }
                title.set(translation.language, t.trim());
                description.set(translation.language, d.trim());
            }
        }
        purposes.push(PurposeDefinition {
            code: purpose.code,
            title,
            description,
            required: purpose.required,
            sensitive: purpose.sensitive,
            data_categories: purpose.data_categories,
        });
    }
    Ok(purposes)
}

/// Whether `next` adds a use of data to `previous`: a purpose whose code is
/// new, or a data category new to a purpose. Such a version must be major
/// with `SERVICE_MODEL` among its kinds, so a new use of data is never
/// published silently.
fn adds_a_use(previous: &PolicyDocument, next: &PolicyDocument) -> bool {
    next.purposes
        .iter()
        .any(|purpose| match previous.purpose(&purpose.code) {
            None => true,
            Some(before) => purpose
                .data_categories
                .iter()
                .any(|category| !before.data_categories.contains(category)),
        })
}

/// Decrypts one page of active accounts, ordered by id, after `after`;
/// also answers the last id read (the next page's `after`; `None` at the
/// end), since accounts whose data key is gone are left out of the page.
async fn active_accounts_page<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    after: Option<Uuid>,
    verified_only: bool,
) -> Result<(Vec<AccountRecord>, Option<Uuid>), PublicationError> {
    let mut query = account::Entity::find()
        .filter(account::Column::Status.eq(AccountStatus::Active))
        .order_by_asc(account::Column::Id)
        .limit(MAIL_BATCH);
    if verified_only {
        query = query.filter(account::Column::EmailVerified.eq(true));
    }
    if let Some(after) = after {
        query = query.filter(account::Column::Id.gt(after));
    }
    let rows = query.all(conn).await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let keys = state.keys().find_many(state.cipher(), conn, &ids).await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = keys.get(&row.id).map(|key| &**key);
        // An account whose data key is gone is nobody to tell.
        if key.is_none() && needs_account_key(row) {
            state.account_unreadable(row.id);
            continue;
        }
        records.push(open_with(state, row, key)?);
    }
    Ok((records, rows.last().map(|row| row.id)))
}

/// Mails a major version's notice to every active account, in `txn`,
/// naming the purposes new in it; returns how many were queued.
async fn notify_major_version<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    document: &PolicyDocument,
    new_purposes: &[&PurposeDefinition],
    now: DateTime<Utc>,
) -> Result<u64, PublicationError> {
    let mut notified = 0u64;
    let link = format!("{}/privacy", state.settings().http.public_url);
    let mut after = None;
    loop {
        let (page, last) = active_accounts_page(state, txn, after, false).await?;
        let Some(last) = last else { break };
        after = Some(last);
        for person in &page {
            let lang = person.language;
            let named: Vec<NamedPurpose<'_>> = new_purposes
                .iter()
                .map(|p| NamedPurpose {
                    title: p.title.get(lang),
                    description: p.description.get(lang),
                })
                .collect();
            outbox::queue(
                state,
                txn,
                OutgoingMail {
                    account_id: Some(person.id),
                    kind: "policy_update",
                    to: person.email.clone(),
                    content: templates::policy_update_notice(
                        lang,
                        &document.version,
                        document.summary_of_changes.get(lang),
                        &document.change_kinds,
                        &named,
                        &link,
                    ),
                },
                now,
            )
            .await?;
            notified += 1;
        }
    }
    Ok(notified)
}

/// Publishes a new version (ADMIN). A major version is mailed to every
/// active account in the same transaction, and announced.
pub async fn publish(
    state: &AppState,
    admin_id: Uuid,
    submission: PolicySubmission,
) -> Result<PolicyDocument, PublicationError> {
    let now = state.clock().now();
    let document = document(submission, now)?;
    let txn = state.db().begin().await?;
    let previous = versions::current(&txn).await?.document;
    if versions::seq_of(&txn, &document.version).await?.is_some() {
        return Err(invalid("version", Rule::VersionPublished));
    }
    if adds_a_use(&previous, &document)
        && !document
            .change_kinds
            .contains(&MajorChangeKind::ServiceModel)
    {
        return Err(invalid("changeKinds", Rule::NewUseNotServiceModel));
    }
    let published = versions::insert(&txn, &document, Some(admin_id)).await?;
    let document = published.document;

    // Purposes nobody has seen in this form start ungranted; list them.
    let previous_hashes: Vec<Vec<u8>> =
        previous.purposes.iter().map(ledger::purpose_hash).collect();
    let new_purposes: Vec<&PurposeDefinition> = document
        .purposes
        .iter()
        .filter(|p| !previous_hashes.contains(&ledger::purpose_hash(p)))
        .collect();

    let mut notified = 0u64;
    if document.major {
        let announcement = templates::policy_update_announcement(&document);
        publish_announcement(
            &txn,
            AnnouncementKind::PolicyUpdate,
            &announcement.title,
            &announcement.body,
            now,
        )
        .await?;
        notified = notify_major_version(state, &txn, &document, &new_purposes, now).await?;
    }
    audit::append(
        &txn,
        AuditRecord {
            actor_id: Some(admin_id),
            action: "policy.publish",
            subject_id: None,
            detail: format!(
                "version={} major={} change_kinds={} new_purposes={} notified={notified}",
                document.version,
                document.major,
                MajorChangeKind::join(&document.change_kinds),
                new_purposes.len()
            ),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    // Committed: no request here is answered from the older policy (other
    // instances hear of it from the trigger, see `policy_cache`).
    state.policy().forget();
    tracing::info!(admin_id = %admin_id, version = %document.version, notified, "policy published");
    Ok(document)
}

/// Accepts the current version: required purposes are recorded against it
/// (optional ones stay as the person set them; new ones stay off).
pub async fn accept(
    state: &AppState,
    account_id: Uuid,
    version: &str,
) -> Result<AccountRecord, PublicationError> {
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    let current = versions::current(&txn).await?.document;
    if version != current.version {
        return Err(PublicationError::VersionMismatch);
    }
    let row = account::Entity::find_by_id(account_id)
        .one(&txn)
        .await?
        .ok_or(AccountError::NotFound)?;
    let mut update = row.into_active_model();
    update.accepted_policy_version = Set(Some(current.version.clone()));
    update.updated_at = Set(now);
    update.update(&txn).await?;
    for purpose in current.purposes.iter().filter(|p| p.required) {
        let decision = ledger::decision(
            account_id,
            &current,
            purpose,
            true,
            ConsentSource::PolicyUpdate,
            now,
        );
        ledger::append(&txn, decision).await?;
    }
    let record = find(state, &txn, account_id).await?;
    txn.commit().await?;
    // The session cache holds the account row: a request after this one
    // must see the change.
    state.session_cache().forget_account(account_id);
    tracing::info!(account_id = %account_id, version = %current.version, "policy accepted");
    Ok(record)
}

/// Mails product news to every verified, active account that granted
/// `product_updates` under its current definition; returns how many.
///
/// A page of accounts per transaction, each page's consent read in one
/// query of that purpose's decisions: no transaction spans every account,
/// and nobody's whole history is read. When a page fails, the pages before
/// it are queued and will be sent: the audit entry says how many
/// (`stopped=true`), since sending again would mail those people twice.
pub async fn send_product_update(
    state: &AppState,
    admin_id: Uuid,
    subject: &str,
    body: &str,
) -> Result<u64, PublicationError> {
    let subject = subject.trim();
    let body = body.trim();
    if subject.is_empty() || subject.chars().count() > MAX_UPDATE_SUBJECT_CHARS {
        return Err(invalid("subject", Rule::SubjectLength));
    }
    if body.is_empty() || body.chars().count() > MAX_UPDATE_BODY_CHARS {
        return Err(invalid("body", Rule::BodyLength));
    }
    let now = state.clock().now();
    let policy = versions::current(state.db()).await?.document;
    let news = ProductNews {
        subject,
        body,
        link: format!("{}/settings/privacy", state.settings().http.public_url),
    };
    let mut queued = 0u64;
    let mut after = None;
    loop {
        match product_update_page(state, &policy, &news, after, now).await {
            Ok(Some((last, page_queued))) => {
                queued += page_queued;
                after = Some(last);
            }
            Ok(None) => break,
            Err(err) => {
                tracing::error!(queued, error = %err, "product update stopped");
                let record =
                    product_update_record(admin_id, format!("queued={queued} stopped=true"));
                if let Err(audit_err) = audit::append_alone(state.db(), record, now).await {
                    tracing::error!(error = %audit_err, "the stopped product update could not be audited");
                }
                return Err(err);
            }
        }
    }
    let record = product_update_record(admin_id, format!("queued={queued}"));
    audit::append_alone(state.db(), record, now).await?;
    tracing::info!(admin_id = %admin_id, queued, "product update queued");
    Ok(queued)
}

/// What a product update says.
struct ProductNews<'a> {
    subject: &'a str,
    body: &'a str,
    link: String,
}

/// The audit entry of a product update, finished or stopped.
fn product_update_record(admin_id: Uuid, detail: String) -> AuditRecord {
    AuditRecord {
        actor_id: Some(admin_id),
        action: "product_update.send",
        subject_id: None,
        detail,
    }
}

/// Queues the news for one page of accounts after `after`, in a
/// transaction of its own: the page's last id and how many were queued,
/// or `None` past the last account.
async fn product_update_page(
    state: &AppState,
    policy: &PolicyDocument,
    news: &ProductNews<'_>,
    after: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, u64)>, PublicationError> {
    let txn = state.db().begin().await?;
    // `last` is the page's last row, readable or not, so a page of
    // accounts whose keys are gone still moves the cursor on.
    let (page, last) = active_accounts_page(state, &txn, after, true).await?;
    let Some(last) = last else {
        return Ok(None);
    };
    let ids: Vec<Uuid> = page.iter().map(|person| person.id).collect();
    let granted = ledger::granted_among(&txn, &ids, policy, PRODUCT_UPDATES).await?;
    let mut queued = 0u64;
    for person in page.iter().filter(|person| granted.contains(&person.id)) {
        outbox::queue(
            state,
            &txn,
            OutgoingMail {
                account_id: Some(person.id),
                kind: "product_update",
                to: person.email.clone(),
                content: templates::product_update(
                    person.language,
                    news.subject,
                    news.body,
                    &news.link,
                ),
            },
            now,
        )
        .await?;
        queued += 1;
    }
    txn.commit().await?;
    Ok(Some((last, queued)))
}

/// Legal bases for processing without consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalBasis {
    /// Public safety.
    PublicSafety,
    /// Public health.
    PublicHealth,
    /// Someone's vital interests.
    VitalInterests,
    /// A legal obligation.
    LegalObligation,
    /// Another legal ground.
    OtherLegal,
}

impl LegalBasis {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicSafety => "PUBLIC_SAFETY",
            Self::PublicHealth => "PUBLIC_HEALTH",
            Self::VitalInterests => "VITAL_INTERESTS",
            Self::LegalObligation => "LEGAL_OBLIGATION",
            Self::OtherLegal => "OTHER_LEGAL",
        }
    }
}

/// The audit action of processing exceptions (the export looks for it).
pub const PROCESSING_EXCEPTION_ACTION: &str = "processing_exception.record";

/// Records processing without consent under a legal exception (SUPPORT or
/// ADMIN), with its justification, in the audit trail.
pub async fn record_processing_exception(
    state: &AppState,
    staff_id: Uuid,
    account_id: Uuid,
    basis: LegalBasis,
    justification: &str,
) -> Result<entity::audit_entry::Model, PublicationError> {
    let justification = justification.trim();
    let length = justification.chars().count();
    if !(MIN_JUSTIFICATION_CHARS..=MAX_JUSTIFICATION_CHARS).contains(&length) {
        return Err(invalid("justification", Rule::JustificationLength));
    }
    let now = state.clock().now();
    let txn = state.db().begin().await?;
    account::Entity::find_by_id(account_id)
        .one(&txn)
        .await?
        .ok_or(AccountError::NotFound)?;
    // The justification is staff free text about the person: kept beside
    // the chain under their data key, erased with them.
    let note = crate::audit::notes::seal(
        state,
        &txn,
        crate::audit::notes::NoteSubject::Account(account_id),
        justification,
        now,
    )
    .await?;
    let entry = audit::append(
        &txn,
        AuditRecord {
            actor_id: Some(staff_id),
            action: PROCESSING_EXCEPTION_ACTION,
            subject_id: Some(account_id),
            detail: format!("basis={} {note}", basis.as_str()),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(staff_id = %staff_id, account_id = %account_id, basis = basis.as_str(), "processing exception recorded");
    Ok(entry)
}
