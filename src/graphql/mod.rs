//! Schema assembly: per-domain query and mutation objects merged into the
//! roots, the limits every request runs under, and context helpers.

pub mod errors;
pub mod messages;
pub mod paging;

use async_graphql::{Context, EmptySubscription, ID, MergedObject, Schema};
use uuid::Uuid;

use crate::{
    accounts::{
        graphql::{AccountMutation, AccountQuery, RoleMutation},
        service::guardian,
        sessions::Viewer,
    },
    audit::graphql::AuditQuery,
    consent::graphql::{
        ConsentLedgerQuery, ConsentMutation, ConsentQuery, GuardianMutation, PolicyMutation,
    },
    erasure::graphql::{ErasureMutation, ErasureQuery},
    mail::Language,
    notices::graphql::{NoticeMutation, NoticeQuery},
    ratelimit::RateLimits,
    recovery::graphql::RecoveryMutation,
    state::AppState,
    tickets::graphql::{TicketMutation, TicketQuery},
};
use errors::{ApiError, ApiResult, ErrorCode};

/// The query root, merged from each domain's queries. Named `Query` in the
/// schema, as GraphQL clients and tools expect.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    AccountQuery,
    ConsentQuery,
    ConsentLedgerQuery,
    AuditQuery,
    NoticeQuery,
    TicketQuery,
    ErasureQuery,
);

/// The mutation root, merged from each domain's mutations. Named
/// `Mutation` in the schema.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    AccountMutation,
    ConsentMutation,
    PolicyMutation,
    RoleMutation,
    NoticeMutation,
    TicketMutation,
    RecoveryMutation,
    ErasureMutation,
    GuardianMutation,
);

/// The schema type served at `/graphql`.
pub type CustosSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest nesting of application fields accepted (checked by the HTTP
/// layer, which leaves introspection out).
pub const MAX_DEPTH: usize = 10;
/// Deepest nesting accepted by the executor, introspection included: enough
/// for GraphiQL's introspection query (its type references nest 13 deep),
/// with room to spare but bounded.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// Highest complexity accepted (each field counts, aliases included).
pub const MAX_COMPLEXITY: usize = 300;
/// Most directives accepted in one document.
pub const MAX_DIRECTIVES: usize = 50;

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

/// Options that shape the schema, taken from settings.
#[derive(Debug, Clone, Copy)]
pub struct SchemaOptions {
    /// Answer introspection queries.
    pub introspection: bool,
}

/// Builds the schema with limits applied; `state` is absent only when
/// printing the SDL.
pub fn build_schema(state: Option<AppState>, options: SchemaOptions) -> CustosSchema {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .register_output_type::<ErrorCode>()
    // Values of error extensions that clients branch on, so codegen sees them.
    .register_output_type::<crate::accounts::graphql::WeakPasswordReason>()
    .limit_depth(MAX_INTROSPECTION_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_directives(MAX_DIRECTIVES)
    .limit_recursive_depth(32);
    if !options.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    if let Some(state) = state {
        // One set of per-client buckets per running schema (per app); on
        // PostgreSQL, counted for every instance in the database too.
        let mut limits = RateLimits::new(state.settings().limits.per_minute);
        if state.settings().database.kind == crate::settings::DatabaseKind::Postgres {
            limits = limits.shared_by_instances();
        }
        builder = builder.data(limits).data(state);
    }
    builder.finish()
}

/// The SDL of the public API, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    build_schema(
        None,
        SchemaOptions {
            introspection: true,
        },
    )
    .sdl()
}

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
    if viewer.account.guardian_consent == guardian::PENDING
        || viewer.account.guardian_consent == guardian::REFUSED
    {
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
pub fn require_role<'a>(
    ctx: &Context<'a>,
    roles: &[crate::accounts::Role],
) -> ApiResult<&'a Viewer> {
    let viewer = viewer(ctx)?;
    if roles.contains(&viewer.role) {
        Ok(viewer)
    } else {
        Err(ApiError::forbidden())
    }
}
