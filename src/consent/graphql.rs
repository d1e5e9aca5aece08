//! GraphQL types and resolvers for the policy.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use super::{
    consent_state::ConsentState,
    policy::{MajorChangeKind, PolicyDocument, PurposeDefinition},
    service::ConsentSource,
};
use crate::{
    graphql::{
        active_viewer,
        errors::{ApiError, ApiResult, ErrorCode},
        messages::{Key, Message},
        named_language,
        paging::{self, CONSENT_HISTORY, Cursors, Seq},
        request_language, state,
    },
    mail::Language,
};

/// A purpose of processing.
#[derive(SimpleObject)]
pub struct Purpose {
    code: String,
    title: String,
    description: String,
    required: bool,
    sensitive: bool,
    data_categories: Vec<String>,
}

impl Purpose {
    fn localized(purpose: &PurposeDefinition, language: Language) -> Self {
        Self {
            code: purpose.code.clone(),
            title: purpose.title.get(language).to_owned(),
            description: purpose.description.get(language).to_owned(),
            required: purpose.required,
            sensitive: purpose.sensitive,
            data_categories: purpose.data_categories.clone(),
        }
    }
}

/// The kinds of major policy change the policy itself lists.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "MajorChangeKind")]
pub enum MajorChangeKindValue {
    /// Purposes, categories of data or ways of use.
    ServiceModel,
    /// The owner or the organisation running the service.
    Ownership,
    /// Who data is shared with, transferred to or disclosed to.
    Recipients,
    /// The person's rights or how to exercise them.
    Rights,
    /// The responsible department, the contact or the complaint channel.
    Contact,
}

impl From<MajorChangeKindValue> for MajorChangeKind {
    fn from(kind: MajorChangeKindValue) -> Self {
        match kind {
            MajorChangeKindValue::ServiceModel => Self::ServiceModel,
            MajorChangeKindValue::Ownership => Self::Ownership,
            MajorChangeKindValue::Recipients => Self::Recipients,
            MajorChangeKindValue::Rights => Self::Rights,
            MajorChangeKindValue::Contact => Self::Contact,
        }
    }
}

impl From<MajorChangeKind> for MajorChangeKindValue {
    fn from(kind: MajorChangeKind) -> Self {
        match kind {
            MajorChangeKind::ServiceModel => Self::ServiceModel,
            MajorChangeKind::Ownership => Self::Ownership,
            MajorChangeKind::Recipients => Self::Recipients,
            MajorChangeKind::Rights => Self::Rights,
            MajorChangeKind::Contact => Self::Contact,
        }
    }
}

/// A published version of the privacy policy, in the caller's language.
#[derive(SimpleObject)]
pub struct PolicyVersion {
    version: String,
    published_at: DateTime<Utc>,
    major: bool,
    summary_of_changes: String,
    text: String,
    purposes: Vec<Purpose>,
    /// The kinds of major change this version makes; empty for a minor one.
    change_kinds: Vec<MajorChangeKindValue>,
    /// The language of the texts (`zh-CN` or `en`).
    language: String,
}

impl PolicyVersion {
    fn localized(policy: &PolicyDocument, language: Language) -> Self {
        Self {
            version: policy.version.clone(),
            published_at: policy.published_at,
            major: policy.major,
            summary_of_changes: policy.summary_of_changes.get(language).to_owned(),
            text: policy.text.get(language).to_owned(),
            purposes: policy
                .purposes
                .iter()
                .map(|p| Purpose::localized(p, language))
                .collect(),
            change_kinds: policy.change_kinds.iter().map(|&k| k.into()).collect(),
            language: language.as_tag().to_owned(),
        }
    }
}

/// Policy queries.
#[derive(Default)]
pub struct ConsentQuery;

#[Object]
impl ConsentQuery {
    /// The current privacy policy. Texts follow `language` when given
    /// (`zh-CN` or `en`; any other is BAD_USER_INPUT on `language`), else
    /// the request's language.
    async fn policy(
        &self,
        ctx: &Context<'_>,
        language: Option<String>,
    ) -> ApiResult<PolicyVersion> {
        let language = match language.as_deref() {
            Some(tag) => named_language(tag, "language")?,
            None => request_language(ctx),
        };
        let state = state(ctx)?;
        let current = state.policy().current(state.db()).await?;
        Ok(PolicyVersion::localized(&current.document, language))
    }

    /// Every published version, newest first: the policy page's public
    /// history. Texts follow `language` as for `policy`.
    async fn policy_versions(
        &self,
        ctx: &Context<'_>,
        language: Option<String>,
    ) -> ApiResult<Vec<PolicyVersion>> {
        let language = language
            .as_deref()
            .map(Language::from_tag)
            .unwrap_or_else(|| request_language(ctx));
        let versions = super::versions::all(state(ctx)?.db()).await?;
        Ok(versions
            .iter()
            .map(|published| PolicyVersion::localized(&published.document, language))
            .collect())
    }

    /// Public: what the holder of a `/guardian-consent` link is asked to
    /// agree to. Null for an unknown, used or expired token.
    async fn guardian_consent_request(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<Option<GuardianConsentRequest>> {
        let language = request_language(ctx);
        let request = crate::erasure::guardian::request(state(ctx)?, &token).await?;
        Ok(request.map(|request| GuardianConsentRequest {
            username: request.username,
            purposes: request
                .purposes
                .iter()
                .map(|p| Purpose::localized(p, language))
                .collect(),
        }))
    }
}

/// What a guardian is asked to agree to, and nothing more about the minor.
#[derive(SimpleObject)]
pub struct GuardianConsentRequest {
    /// The minor's username.
    username: String,
    /// The purposes the minor's account would be used for: the required
    /// ones and the optional ones the minor chose.
    purposes: Vec<Purpose>,
}

/// Where a consent decision was made. The wire values are the strings the
/// contract documents for `ConsentEvent.source`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "ConsentSource")]
pub enum ConsentSourceValue {
    /// At signup.
    Signup,
    /// In the person's privacy settings.
    Settings,
    /// When accepting a new policy version.
    PolicyUpdate,
}

impl ConsentSourceValue {
    /// The wire name, as `ConsentEvent.source` carries it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "SIGNUP",
            Self::Settings => "SETTINGS",
            Self::PolicyUpdate => "POLICY_UPDATE",
        }
    }
}

impl From<ConsentSource> for ConsentSourceValue {
    fn from(source: ConsentSource) -> Self {
        match source {
            ConsentSource::Signup => Self::Signup,
            ConsentSource::Settings => Self::Settings,
            ConsentSource::PolicyUpdate => Self::PolicyUpdate,
        }
    }
}

/// One decision in the caller's consent ledger.
#[derive(SimpleObject)]
pub struct ConsentEvent {
    id: ID,
    purpose: String,
    granted: bool,
    policy_version: String,
    at: DateTime<Utc>,
    /// Where the decision was made: SIGNUP, SETTINGS or POLICY_UPDATE
    /// (the contract types it as a string; `sourceKind` is the same value
    /// as an enum, for clients that branch on it).
    source: String,
    /// Where the decision was made, as an enum.
    source_kind: ConsentSourceValue,
}

impl TryFrom<entity::consent_event::Model> for ConsentEvent {
    type Error = ApiError;

    fn try_from(event: entity::consent_event::Model) -> Result<Self, ApiError> {
        let source = ConsentSource::from_stored(&event.source).ok_or_else(|| {
            ApiError::internal(&format!("consent event {} has an unknown source", event.id))
        })?;
        Ok(Self {
            id: ID(event.id.to_string()),
            purpose: event.purpose,
            granted: event.granted,
            policy_version: event.policy_version,
            at: event.created_at,
            source: ConsentSourceValue::from(source).as_str().to_owned(),
            source_kind: source.into(),
        })
    }
}

impl From<super::service::ConsentError> for ApiError {
    fn from(err: super::service::ConsentError) -> Self {
        use super::service::ConsentError;
        match err {
            ConsentError::UnknownPurpose(_) => ApiError::bad_input("purpose", Key::PurposeUnknown),
            ConsentError::RequiredPurpose => {
                ApiError::new(ErrorCode::RequiredPurpose, Key::PurposeRequired)
                    .with_field("purpose")
                    .with_extension("alternative", "requestAccountDeletion")
            }
            ConsentError::TooManyDecisions(seconds) => crate::ratelimit::rate_limited(seconds),
            ConsentError::Internal(err) => err.into(),
        }
    }
}

/// Consent queries of the signed-in person.
#[derive(Default)]
pub struct ConsentLedgerQuery;

#[Object]
impl ConsentLedgerQuery {
    /// The caller's consent decisions in the order they were made;
    /// `first` (0–200, default 50) decisions after the cursor `after`.
    async fn my_consent_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, ConsentEvent>> {
        let viewer = active_viewer(ctx)?;
        let first = paging::page_size(first)?;
        let state = state(ctx)?;
        let cursors = Cursors::owned_by(state.cipher(), viewer.account_id);
        let position = cursors.open::<Seq<CONSENT_HISTORY>>(after.as_deref())?;
        let events = super::service::history_page(
            state.db(),
            viewer.account_id,
            first + 1,
            position.map(|seq| seq.0),
        )
        .await?;
        let (events, more) = paging::split_page(events, first);
        let items = events
            .into_iter()
            .map(|event| {
                Ok((
                    Seq::<CONSENT_HISTORY>(event.seq),
                    ConsentEvent::try_from(event)?,
                ))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        cursors.connection(items, more, position.is_some())
    }
}

/// Consent mutations.
#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Grants or withdraws one purpose: the same single call either way.
    async fn record_consent(
        &self,
        ctx: &Context<'_>,
        purpose: String,
        granted: bool,
    ) -> ApiResult<ConsentState> {
        let viewer = active_viewer(ctx)?;
        let state = state(ctx)?;
        let current = state.policy().current(state.db()).await?;
        let recorded = super::service::record(
            state.db(),
            viewer.account_id,
            &current.document,
            &purpose,
            granted,
            state.clock().now(),
        )
        .await?;
        tracing::info!(account_id = %viewer.account_id, purpose = %recorded.purpose, granted, "consent recorded");
        Ok(recorded.into())
    }
}

/// The consent guard: a feature that needs `purpose` calls this first and
/// answers `CONSENT_REQUIRED` (with `extensions.purpose`) when the caller
/// has not granted it under its current definition. Refusing an optional
/// purpose so turns off only the feature that needs it.
pub async fn require_consent(
    ctx: &Context<'_>,
    account_id: uuid::Uuid,
    purpose: &str,
) -> ApiResult<()> {
    let state = state(ctx)?;
    let current = state.policy().current(state.db()).await?;
    if super::service::is_granted(state.db(), account_id, &current.document, purpose).await? {
        Ok(())
    } else {
        Err(
            ApiError::new(ErrorCode::ConsentRequired, Key::ConsentRequired)
                .with_extension("purpose", purpose.to_owned()),
        )
    }
}

impl From<super::publication::PublicationError> for ApiError {
    fn from(err: super::publication::PublicationError) -> Self {
        use super::publication::PublicationError;
        match err {
            PublicationError::Invalid { field, rule } => {
                ApiError::bad_input(field, rule_message(rule))
            }
            PublicationError::VersionMismatch => {
                ApiError::new(ErrorCode::PolicyVersionMismatch, Key::PolicyNotCurrent)
                    .with_field("version")
            }
            PublicationError::Account(err) => err.into(),
            PublicationError::Internal(err) => err.into(),
        }
    }
}

/// What a person is told about a broken publication rule.
fn rule_message(rule: super::publication::Rule) -> Message {
    use super::publication::{self as publication, Rule};
    match rule {
        Rule::VersionShape => Key::PolicyVersionShape.into(),
        Rule::VersionPublished => Key::PolicyVersionPublished.into(),
        Rule::SummaryMissing => Key::PolicySummaryMissing.into(),
        Rule::TextEmpty => Key::PolicyTextEmpty.into(),
        Rule::PurposeCode => Key::PolicyPurposeCode.into(),
        Rule::PurposeTexts => Key::PolicyPurposeTexts.into(),
        Rule::PurposeSet(detail) => Message::new(Key::PolicyPurposeSet).arg("detail", detail),
        Rule::TranslationPurposeTexts => Key::PolicyTranslationPurposeTexts.into(),
        Rule::TranslationTexts => Key::PolicyTranslationTexts.into(),
        Rule::TranslationRepeatsMain => Key::PolicyTranslationRepeatsMain.into(),
        Rule::MajorWithoutKinds => Key::PolicyMajorWithoutKinds.into(),
        Rule::KindsWithoutMajor => Key::PolicyKindsWithoutMajor.into(),
        Rule::NewUseNotServiceModel => Key::PolicyNewUseNotServiceModel.into(),
        Rule::SubjectLength => Message::new(Key::ProductUpdateSubject)
            .arg("max", publication::MAX_UPDATE_SUBJECT_CHARS),
        Rule::BodyLength => {
            Message::new(Key::ProductUpdateBody).arg("max", publication::MAX_UPDATE_BODY_CHARS)
        }
        Rule::JustificationLength => Message::new(Key::JustificationLength)
            .arg("min", publication::MIN_JUSTIFICATION_CHARS)
            .arg("max", publication::MAX_JUSTIFICATION_CHARS),
    }
}

/// A purpose as an admin submits it.
#[derive(async_graphql::InputObject)]
pub struct PurposeInput {
    code: String,
    title: String,
    description: String,
    required: bool,
    sensitive: bool,
    data_categories: Vec<String>,
}

/// A purpose's title and description in another language.
#[derive(async_graphql::InputObject)]
pub struct PurposeTranslationInput {
    code: String,
    title: String,
    description: String,
}

/// A policy version's texts in another language.
#[derive(async_graphql::InputObject)]
pub struct PolicyTranslationInput {
    /// `zh-CN` or `en`.
    language: String,
    summary_of_changes: String,
    text: String,
    purposes: Vec<PurposeTranslationInput>,
}

/// A new policy version.
#[derive(async_graphql::InputObject)]
pub struct PublishPolicyInput {
    version: String,
    major: bool,
    summary_of_changes: String,
    text: String,
    purposes: Vec<PurposeInput>,
    /// The language of the texts above (`zh-CN` or `en`).
    #[graphql(default_with = "\"zh-CN\".to_string()")]
    language: String,
    /// The texts in further languages; untranslated texts fall back to the main ones.
    #[graphql(default)]
    translations: Vec<PolicyTranslationInput>,
    /// The kinds of major change this version makes; at least one when major.
    change_kinds: Option<Vec<MajorChangeKindValue>>,
}

/// Legal bases for processing without consent.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
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

/// Policy publication and consent-based features.
#[derive(Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// ADMIN. Publishes a new policy version; a major one is mailed to everybody and needs acceptance.
    async fn publish_policy(
        &self,
        ctx: &Context<'_>,
        input: PublishPolicyInput,
    ) -> ApiResult<PolicyVersion> {
        let admin = crate::graphql::require_role(ctx, &[crate::accounts::Role::Admin])?;
        let language = named_language(&input.language, "language")?;
        let mut translations = Vec::with_capacity(input.translations.len());
        for t in input.translations {
            translations.push(super::publication::TranslationSubmission {
                language: named_language(&t.language, "translations")?,
                summary_of_changes: t.summary_of_changes,
                text: t.text,
                purposes: t
                    .purposes
                    .into_iter()
                    .map(|p| (p.code, p.title, p.description))
                    .collect(),
            });
        }
        let document = super::publication::publish(
            state(ctx)?,
            admin.account_id,
            super::publication::PolicySubmission {
                language,
                translations,
                version: input.version,
                major: input.major,
                summary_of_changes: input.summary_of_changes,
                text: input.text,
                purposes: input
                    .purposes
                    .into_iter()
                    .map(|p| super::publication::PurposeSubmission {
                        code: p.code,
                        title: p.title,
                        description: p.description,
                        required: p.required,
                        sensitive: p.sensitive,
                        data_categories: p.data_categories,
                    })
                    .collect(),
                change_kinds: input
                    .change_kinds
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            },
        )
        .await?;
        Ok(PolicyVersion::localized(&document, request_language(ctx)))
    }

    /// Accepts the current policy version.
    async fn accept_policy(
        &self,
        ctx: &Context<'_>,
        version: String,
    ) -> ApiResult<crate::accounts::graphql::Account> {
        let viewer = active_viewer(ctx)?;
        let record = super::publication::accept(state(ctx)?, viewer.account_id, &version).await?;
        Ok(crate::accounts::graphql::Account::from(record))
    }

    /// ADMIN. Emails only accounts that granted the product_updates purpose; returns how many were queued.
    async fn send_product_update(
        &self,
        ctx: &Context<'_>,
        subject: String,
        body: String,
    ) -> ApiResult<i32> {
        let admin = crate::graphql::require_role(ctx, &[crate::accounts::Role::Admin])?;
        let queued =
            super::publication::send_product_update(state(ctx)?, admin.account_id, &subject, &body)
                .await?;
        Ok(i32::try_from(queued).unwrap_or(i32::MAX))
    }

    /// SUPPORT or ADMIN: processing without consent under a legal exception, recorded with its justification.
    async fn record_processing_exception(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        basis: LegalBasis,
        justification: String,
    ) -> ApiResult<crate::audit::graphql::AuditEntry> {
        use crate::accounts::Role;
        let staff = crate::graphql::require_role(ctx, &[Role::Support, Role::Admin])?;
        let account_id = crate::graphql::parse_id(&account_id, "accountId")?;
        let basis = match basis {
            LegalBasis::PublicSafety => super::publication::LegalBasis::PublicSafety,
            LegalBasis::PublicHealth => super::publication::LegalBasis::PublicHealth,
            LegalBasis::VitalInterests => super::publication::LegalBasis::VitalInterests,
            LegalBasis::LegalObligation => super::publication::LegalBasis::LegalObligation,
            LegalBasis::OtherLegal => super::publication::LegalBasis::OtherLegal,
        };
        let entry = super::publication::record_processing_exception(
            state(ctx)?,
            staff.account_id,
            account_id,
            basis,
            &justification,
        )
        .await?;
        Ok(entry.into())
    }
}

/// A guardian's answer for a minor.
#[derive(Default)]
pub struct GuardianMutation;

#[Object]
impl GuardianMutation {
    /// Records a guardian's answer with the token of a `/guardian-consent` link; a refusal schedules the minor's account for erasure at once.
    async fn confirm_guardian_consent(
        &self,
        ctx: &Context<'_>,
        token: String,
        granted: bool,
    ) -> ApiResult<bool> {
        crate::erasure::guardian::confirm(state(ctx)?, &token, granted).await?;
        Ok(true)
    }
}
