//! Per-client limits as resolvers meet them: the check each limited
//! resolver calls first, answering `RATE_LIMITED` ([`rate_limited`]).

use async_graphql::Context;

use super::{Action, ClientIp, RateLimits};
pub use crate::graphql::errors::rate_limited;
use crate::graphql::{
    context::state,
    errors::{ApiError, ApiResult},
};

/// Takes one attempt of `action` from the bucket of the request's client
/// (and, on PostgreSQL, counts it for every instance): call it first thing
/// in every resolver the limit applies to (so each alias counts).
/// `RATE_LIMITED` when the limit is reached.
pub async fn check(ctx: &Context<'_>, action: Action) -> ApiResult<()> {
    let limits = ctx
        .data::<RateLimits>()
        .map_err(|_| ApiError::internal(&"schema built without rate limits"))?;
    let state = state(ctx)?;
    let ip = ctx.data_opt::<ClientIp>().map(|client| client.0);
    limits.admit(state, action, ip).await.map_err(|retry| {
        tracing::info!(
            target: "security",
            event = "rate_limited",
            action = action.as_str(),
            "per-client rate limit reached"
        );
        rate_limited(retry.seconds())
    })
}
