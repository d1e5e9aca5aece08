//! Schema assembly: per-domain query and mutation objects merged into the
//! roots, and the limits every request runs under.

use async_graphql::{EmptySubscription, MergedObject, Schema};

use super::errors::ErrorCode;
use crate::{
    accounts::graphql::{AccountMutation, AccountQuery, RoleMutation},
    audit::graphql::AuditQuery,
    consent::graphql::{
        ConsentLedgerQuery, ConsentMutation, ConsentQuery, GuardianMutation, PolicyMutation,
    },
    erasure::graphql::{ErasureMutation, ErasureQuery},
    notices::graphql::{NoticeMutation, NoticeQuery},
    ratelimit::RateLimits,
    recovery::graphql::RecoveryMutation,
    state::AppState,
    tickets::graphql::{TicketMutation, TicketQuery},
};

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
