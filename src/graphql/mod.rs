//! The GraphQL layer's shared parts: the schema assembled from every
//! domain's roots ([`schema`]), and what the domains' resolvers use
//! ([`context`], [`errors`], [`messages`], [`paging`]). Resolvers import
//! from `context` and the others, never from `schema`.

pub mod context;
pub mod errors;
pub mod messages;
pub mod paging;
pub mod schema;

pub use context::{
    EndedSession, RequestLanguage, UserAgent, active_viewer, named_language, parse_id,
    request_language, require_role, state, viewer,
};
pub use schema::{
    CustosSchema, MAX_COMPLEXITY, MAX_DEPTH, MAX_DIRECTIVES, MAX_INTROSPECTION_DEPTH, MutationRoot,
    QueryRoot, SchemaOptions, build_schema, sdl,
};
