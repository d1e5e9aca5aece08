//! What every resolver is handed: the request's state, caller and
//! language, taken from the GraphQL context, and the small checks built on
//! them (signed in, holding a role, a well-formed id or language).

use async_graphql::{Context, ID};
use uuid::Uuid;

use super::{
    errors::{ApiError, ApiResult, ErrorCode},
    messages,
};
use crate::{
    accounts::{GuardianConsent, Role, sessions::Viewer},
    mail::Language,
    state::AppState,
};

/// The `User-Agent` of the request, kept with a new session.
#[derive(Debug, Clone)]
pub struct UserAgent(pub String);

/// Request data: the request came with a session token that no longer
/// signs anyone in (unknown, revoked, idle, expired, or its account not
/// active). The request runs as anonymous; the HTTP layer removes the
/// cookie and says `"session": "EXPIRED"` in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct EndedSession;

/// The language a request is answered in: `Accept-Language` when it names
/// a supported one, else the signed-in account's language, else zh-CN.
#[derive(Debug, Clone, Copy)]
pub struct RequestLanguage(pub Language);

/// The service state attached to the schema.
pub fn state<'a>(ctx: &Context<'a>) -> ApiResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| ApiError::internal(&"schema built without state"))
}

/// The language of the current request (see [`RequestLanguage`]).
pub fn request_language(ctx: &Context<'_>) -> Language {
    ctx.data_opt::<RequestLanguage>()
        .map(|l| l.0)
        .unwrap_or_default()
}

/// The signed-in caller, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &Context<'a>) -> ApiResult<&'a Viewer> {
    ctx.data_opt::<Viewer>()
        .ok_or_else(ApiError::unauthenticated)
}

/// The signed-in caller whose account may be used: a minor's account
/// answers `GUARDIAN_CONSENT_PENDING` until the guardian agrees.
pub fn active_viewer<'a>(ctx: &Context<'a>) -> ApiResult<&'a Viewer> {
    let viewer = viewer(ctx)?;
    let consent = &viewer.account.guardian_consent;
    if GuardianConsent::Pending.is(consent) || GuardianConsent::Refused.is(consent) {
        return Err(ApiError::new(
            ErrorCode::GuardianConsentPending,
            messages::Key::GuardianConsentPending,
        ));
    }
    Ok(viewer)
}

/// A language a caller named in `field`: `BAD_USER_INPUT` on that field
/// when it is not one the platform writes in, never a silent fallback.
pub fn named_language(tag: &str, field: &'static str) -> ApiResult<Language> {
    Language::parse(tag)
        .ok_or_else(|| ApiError::bad_input(field, messages::Key::UnsupportedLanguage))
}

/// Parses an `ID` argument; a malformed id is `NOT_FOUND`, like an unknown one.
pub fn parse_id(id: &ID, _field: &'static str) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| ApiError::not_found())
}

/// The signed-in caller if they hold one of `roles`: `UNAUTHENTICATED` for
/// anonymous callers, `FORBIDDEN` for people without the role.
pub fn require_role<'a>(ctx: &Context<'a>, roles: &[Role]) -> ApiResult<&'a Viewer> {
    let viewer = viewer(ctx)?;
    if roles.contains(&viewer.role) {
        Ok(viewer)
    } else {
        Err(ApiError::forbidden())
    }
}
