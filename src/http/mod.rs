//! HTTP routes: the GraphQL endpoint, the playground, health checks.
//!
//! Rules: `POST /graphql` takes `application/json` only — refusing
//! `text/plain` and form bodies is the CSRF guard for cookie sessions, since
//! browsers send those cross-site without a preflight. No operation runs
//! over GET. Array batches are refused. Every response carries a request id
//! and `nosniff`; API answers are never cached.

pub mod metrics;
pub mod playground;

use std::time::{Duration, Instant};

use async_graphql::{ErrorExtensionValues, ServerError, Value};
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler,
    http::{HeaderValue, StatusCode, header},
    web::Data,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    accounts::graphql::SESSION_COOKIE,
    graphql::{CustosSchema, RequestLanguage, UserAgent, errors::ErrorCode},
    mail::Language,
    state::AppState,
};

/// Largest request body accepted on `/graphql`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// How long one GraphQL request may run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most aliased fields accepted in one document. Aliases let one request
/// run the same field many times (`a1: login(...) a2: login(...)`), so they
/// are bounded on their own, besides complexity.
pub const MAX_ALIASES: usize = 30;

/// The id of one HTTP request, in every log line and in `INTERNAL` errors.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

/// Builds every route of the service. Cross-origin calls are answered only
/// for `CUSTOS_ALLOWED_ORIGINS` (with credentials, so the session cookie
/// works); with no origins listed, browsers get no CORS headers at all.
pub fn routes(
    state: AppState,
    schema: CustosSchema,
) -> poem::endpoint::BoxEndpoint<'static, Response> {
    let playground_enabled = state.settings().playground;
    let origins = state.settings().allowed_origins.clone();
    let route = Route::new()
        .at("/graphql", get(graphql_get).post(graphql_post))
        .nest("/graphql/assets", playground::assets())
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_text))
        .data(schema)
        .data(state)
        .data(PlaygroundEnabled(playground_enabled));
    let route = if origins.is_empty() {
        route.boxed()
    } else {
        route
            .with(
                poem::middleware::Cors::new()
                    .allow_origins(origins)
                    .allow_credentials(true)
                    .allow_methods([poem::http::Method::GET, poem::http::Method::POST])
                    .allow_headers(["content-type", "authorization", "accept-language"])
                    .max_age(600),
            )
            .boxed()
    };
    route
        .around(|endpoint, request| async move { Ok(with_request_id(endpoint, request).await) })
        .boxed()
}

#[derive(Clone, Copy)]
struct PlaygroundEnabled(bool);

/// Gives the request an id and a span, logs its outcome without personal
/// data, and sets the headers every answer carries.
async fn with_request_id<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    mut request: Request,
) -> Response {
    let id = RequestId(Uuid::new_v4());
    request.extensions_mut().insert(id);
    let span = tracing::info_span!(
        "request",
        request_id = %id.0,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = match endpoint.call(request).instrument(span.clone()).await {
        Ok(response) => response.into_response(),
        Err(err) => err.into_response(),
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id.0.to_string()) {
        headers.insert("x-request-id", value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request handled"
        );
    });
    response
}

/// A GraphQL-shaped error answer for requests refused before execution.
fn refusal(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}

#[handler]
async fn graphql_get(request: &Request, Data(enabled): Data<&PlaygroundEnabled>) -> Response {
    let query = request.uri().query().unwrap_or_default();
    if query.split('&').any(|pair| pair.starts_with("query=")) {
        // Running operations from a URL would let any page trigger them
        // with the person's cookie.
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "GraphQL operations are accepted only as POST with application/json.",
        )
        .with_header(header::ALLOW, "POST")
        .into_response();
    }
    if !enabled.0 {
        return StatusCode::NOT_FOUND.into_response();
    }
    playground::page()
}

#[handler]
async fn graphql_post(
    request: &Request,
    body: Body,
    Data(schema): Data<&CustosSchema>,
    Data(state): Data<&AppState>,
    Data(request_id): Data<&RequestId>,
) -> Response {
    let is_json = request
        .content_type()
        .map(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "Send GraphQL requests as application/json.",
        );
    }
    let bytes = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadUserInput,
                "The request body is too large.",
            );
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(json) => json,
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "The request body is not valid JSON.",
            );
        }
    };
    if json.is_array() {
        // Batches multiply every limit by their length; one operation a request.
        return refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "Batched requests are not accepted: send one operation per request.",
        );
    }
    let mut gql_request: async_graphql::Request = match serde_json::from_value(json) {
        Ok(req) => req,
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "The body must be a GraphQL request: {\"query\": \"...\", \"variables\": {...}}.",
            );
        }
    };
    if gql_request.query.len() > MAX_QUERY_BYTES {
        return refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "The query text is too long.",
        );
    }
    // A document that does not parse is left to the executor's own error.
    // One that does is kept in the request, so the executor does not parse
    // it again.
    let mut forgets_sessions = false;
    if let Ok(document) = gql_request.parsed_query() {
        forgets_sessions = may_change_sessions(document);
        if count_aliases(document) > MAX_ALIASES {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "Too many aliased fields in one request.",
            );
        }
        if application_depth(document) > crate::graphql::MAX_DEPTH {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "The query is nested too deep.",
            );
        }
    }
    let operation_name = gql_request.operation_name.clone();
    let started = std::time::Instant::now();
    let language = request
        .header(header::ACCEPT_LANGUAGE)
        .map(Language::from_accept_language)
        .unwrap_or_default();
    let mut gql_request = gql_request
        .data(RequestLanguage(language))
        .data(*request_id);
    if let Some(agent) = request.header(header::USER_AGENT) {
        gql_request = gql_request.data(UserAgent(agent.to_owned()));
    }
    // The TCP peer; X-Forwarded-For only through proxies the operator named.
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if let Some(ip) = crate::ratelimit::client_ip(
        request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        &forwarded_for,
        &state.settings().trusted_proxies,
    ) {
        gql_request = gql_request.data(crate::ratelimit::ClientIp(ip));
    }
    if let Some(token) = session_token(request) {
        match crate::accounts::sessions::authenticate(state, &token).await {
            Ok(Some(viewer)) => gql_request = gql_request.data(viewer),
            // An unknown or expired token is treated as no token at all.
            Ok(None) => {}
            Err(err) => {
                tracing::error!(error = %err, "session lookup failed");
                let mut failed = async_graphql::Response::default();
                failed.errors.push(coded_error(
                    ErrorCode::Internal,
                    "Something went wrong on our side. Quote the request id if you contact support.",
                ));
                let failed = finish_errors(failed, *request_id);
                let mut http = async_graphql_poem::GraphQLResponse(failed).into_response();
                http.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return http;
            }
        }
    }

    let response = match tokio::time::timeout(REQUEST_TIMEOUT, schema.execute(gql_request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("GraphQL request timed out");
            let mut timed_out = async_graphql::Response::default();
            timed_out.errors.push(coded_error(
                ErrorCode::Internal,
                "The request took too long.",
            ));
            timed_out
        }
    };
    if forgets_sessions {
        // Whatever the mutation changed (a session, a role, an address), no
        // request after it on this instance is answered from older rows.
        state.session_cache().forget_all();
    }
    let response = finish_errors(response, *request_id);
    let metrics = state.metrics();
    metrics.observe_request(
        operation_name.as_deref(),
        response.errors.is_empty(),
        started.elapsed(),
    );
    let rate_limited = response
        .errors
        .iter()
        .filter(|e| {
            e.extensions.as_ref().and_then(|x| x.get("code"))
                == Some(&Value::from(ErrorCode::RateLimited.as_str()))
        })
        .count();
    if rate_limited > 0 {
        metrics.count_rate_limited(rate_limited as u64);
    }
    let mut http = async_graphql_poem::GraphQLResponse(response).into_response();
    http.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Clients that ask for the GraphQL-over-HTTP media type get it.
    let wants_graphql_response = request
        .header(header::ACCEPT)
        .is_some_and(|accept| accept.contains("application/graphql-response+json"));
    if wants_graphql_response {
        http.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/graphql-response+json"),
        );
    }
    http
}

/// The deepest nesting of application fields in a document. Introspection
/// (`__schema`, `__type`) is left out: GraphiQL's own introspection query
/// nests type references deeper than any application query should, and the
/// executor bounds it with [`crate::graphql::MAX_INTROSPECTION_DEPTH`].
fn application_depth(document: &async_graphql::parser::types::ExecutableDocument) -> usize {
    use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
    fn walk(set: &SelectionSet, document: &ExecutableDocument, spreads: &mut Vec<String>) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        0
                    } else {
                        1 + walk(&field.node.selection_set.node, document, spreads)
                    }
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set.node, document, spreads)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    // A fragment that spreads itself is invalid; the executor
                    // says so. Here it only must not loop.
                    if spreads.contains(&name) {
                        return 0;
                    }
                    let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        return 0;
                    };
                    spreads.push(name);
                    let depth = walk(&fragment.node.selection_set.node, document, spreads);
                    spreads.pop();
                    depth
                }
            })
            .max()
            .unwrap_or(0)
    }
    document
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node, document, &mut Vec::new()))
        .max()
        .unwrap_or(0)
}

/// Mutation fields that change no existing account or session row, so the
/// session cache may outlive them: `signup` inserts a new account (no
/// cached session can belong to it) or only mails the owner of a taken
/// address; `login` inserts a new session (under a new token) and writes
/// only the sign-in throttle and the outbox besides. A field is added here
/// only with such a reason; every other mutation empties the cache.
const LEAVES_SESSIONS_ALONE: &[&str] = &["signup", "login", "__typename"];

/// Whether running `document` may change a row the session cache holds:
/// it has a mutation with a root selection other than a plain field named
/// in [`LEAVES_SESSIONS_ALONE`] (aliases allowed; fragments are not looked
/// into, and count as changing).
fn may_change_sessions(document: &async_graphql::parser::types::ExecutableDocument) -> bool {
    use async_graphql::parser::types::{OperationType, Selection};
    document.operations.iter().any(|(_, operation)| {
        operation.node.ty == OperationType::Mutation
            && operation.node.selection_set.node.items.iter().any(|item| {
                !matches!(&item.node, Selection::Field(field)
                    if LEAVES_SESSIONS_ALONE.contains(&field.node.name.node.as_str()))
            })
    })
}

/// Aliased fields in every operation and fragment of a document.
fn count_aliases(document: &async_graphql::parser::types::ExecutableDocument) -> usize {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + walk(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    document
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .chain(
            document
                .fragments
                .values()
                .map(|fragment| walk(&fragment.node.selection_set.node)),
        )
        .sum()
}

/// The session token of a request: `Authorization: Bearer …` first, else
/// the `custos_session` cookie.
fn session_token(request: &Request) -> Option<String> {
    if let Some(value) = request.header(header::AUTHORIZATION) {
        let (scheme, token) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Some(token.trim().to_owned());
        }
    }
    let cookies = request.header(header::COOKIE)?;
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

fn coded_error(code: ErrorCode, message: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    error.extensions = Some(extensions);
    error
}

/// Gives every error a contract code (parse and validation errors become
/// `BAD_USER_INPUT`) and puts the request id on `INTERNAL` ones.
fn finish_errors(
    mut response: async_graphql::Response,
    request_id: RequestId,
) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        let code = match extensions.get("code") {
            Some(Value::String(code)) => code.clone(),
            _ => {
                extensions.set("code", ErrorCode::BadUserInput.as_str());
                ErrorCode::BadUserInput.as_str().to_owned()
            }
        };
        if code == ErrorCode::Internal.as_str() {
            extensions.set("requestId", request_id.0.to_string());
        }
    }
    response
}

#[handler]
async fn metrics_text(Data(state): Data<&AppState>) -> Response {
    match crate::http::metrics::render(state).await {
        Ok(text) => Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "metrics unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable").into_response()
        }
    }
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(Data(state): Data<&AppState>) -> Response {
    let answers = |db: &sea_orm::DatabaseConnection| {
        let db = db.clone();
        async move {
            matches!(
                tokio::time::timeout(Duration::from_secs(2), db.ping()).await,
                Ok(Ok(()))
            )
        }
    };
    if !answers(state.db()).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
    }
    // Without its key store no account's fields can be read or written.
    if let Some(store) = state.keys().separate_db()
        && !answers(store).await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "key store unavailable").into_response();
    }
    "ready".into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::may_change_sessions;

    fn changes(query: &str) -> bool {
        may_change_sessions(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn only_sign_ups_and_sign_ins_leave_the_session_cache_alone() {
        assert!(!changes("{ me { id } }"));
        assert!(!changes("query Q { policy { version } }"));
        assert!(!changes(
            r#"mutation { signup(input: { username: "a" }) { accepted } }"#
        ));
        assert!(!changes(
            r#"mutation { first: login(input: { login: "a", password: "b" }) { token } }"#
        ));
        assert!(!changes(
            r#"mutation { login(input: { login: "a", password: "b" }) { token } __typename }"#
        ));
        // Anything else, alone or beside them, empties it.
        assert!(changes("mutation { logout }"));
        assert!(changes(
            r#"mutation { login(input: { login: "a", password: "b" }) { token } logout }"#
        ));
        assert!(changes(r#"mutation { login: logout }"#));
        assert!(changes(
            "mutation { ...F } fragment F on MutationRoot { login { token } }"
        ));
        assert!(changes(
            "mutation { ... on MutationRoot { signup { accepted } } }"
        ));
        // Every mutation of a document counts, not only the one that runs.
        assert!(changes(
            r#"mutation A { login(input: { login: "a", password: "b" }) { token } } mutation B { logout }"#
        ));
    }
}
