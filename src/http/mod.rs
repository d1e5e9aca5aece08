//! HTTP routes: the GraphQL endpoint, the playground, the account console,
//! health checks.
//!
//! Rules: `POST /graphql` takes `application/json` only — refusing
//! `text/plain` and form bodies is the CSRF guard for cookie sessions, since
//! browsers send those cross-site without a preflight. No operation runs
//! over GET. Array batches are refused. Every response carries a request id
//! and `nosniff`; API answers are never cached.

pub mod console;
pub mod documents;
pub mod metrics;
pub mod persisted;
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
    accounts::graphql::{SESSION_COOKIE, cleared_session_cookie},
    graphql::{CustosSchema, EndedSession, RequestLanguage, UserAgent, errors::ErrorCode},
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
    let route = console::mount(Route::new(), state.settings().account_console)
        .at("/graphql", get(graphql_get).post(graphql_post))
        .nest("/graphql/assets", playground::assets())
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz));
    // With a listener of its own (`CUSTOS_METRICS_BIND`), `/metrics` is
    // not served here: the public listener answers 404 for it.
    let route = if state.settings().metrics_bind.is_none() {
        route.at("/metrics", get(metrics_text))
    } else {
        route
    };
    let route = route
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

/// The routes of the metrics listener (`CUSTOS_METRICS_BIND`): `/metrics`
/// and nothing else.
pub fn metrics_routes(state: AppState) -> poem::endpoint::BoxEndpoint<'static, Response> {
    Route::new()
        .at("/metrics", get(metrics_text))
        .data(state)
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

/// Automatic persisted queries: gives a request that sent a hash alone the
/// kept text with that hash. Answers the refusal to send instead when the
/// hash is unknown, not its text's, or not in Apollo's form.
fn resolve_persisted_query(
    state: &AppState,
    request: &mut async_graphql::Request,
) -> Option<Response> {
    match persisted::requested(request, &request.query) {
        Ok(persisted::Persisted::Find(hash)) => match state.documents().text_of(&hash) {
            Some(text) => {
                request.query = text.to_string();
                None
            }
            None => Some(refusal(
                StatusCode::OK,
                ErrorCode::PersistedQueryNotFound,
                "PersistedQueryNotFound",
            )),
        },
        // A text sent with its hash is kept (or not) like any other.
        Ok(persisted::Persisted::Register(_) | persisted::Persisted::No) => None,
        Err(refused) => Some(bad_request_field(
            "extensions.persistedQuery",
            refused.message(),
        )),
    }
}

/// A `BAD_USER_INPUT` refusal naming the part of the request at fault.
fn bad_request_field(field: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{
            "message": message,
            "extensions": { "code": ErrorCode::BadUserInput.as_str(), "field": field },
        }]
    });
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
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
    if let Some(refused) = resolve_persisted_query(state, &mut gql_request) {
        return refused;
    }
    if gql_request.query.len() > MAX_QUERY_BYTES {
        return refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "The query text is too long.",
        );
    }
    // A document that does not parse is left to the executor's own error.
    // One that does is handed to the executor, so it does not parse it
    // again (and usually nobody parses it: see `documents`).
    let mut forgets_sessions = false;
    if let Some(document) = state.documents().get(&gql_request.query) {
        forgets_sessions = document.may_change_sessions;
        if document.aliases > MAX_ALIASES {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "Too many aliased fields in one request.",
            );
        }
        if document.password_checks > 1 {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "One request may check the password once: send changePassword and changeEmail in requests of their own, without aliases.",
            );
        }
        if document.depth > crate::graphql::MAX_DEPTH {
            return refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "The query is nested too deep.",
            );
        }
        gql_request.set_parsed_query(document.parsed.clone());
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
    let client = crate::ratelimit::client_ip(
        request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        &forwarded_for,
        &state.settings().trusted_proxies,
    );
    if let Some(ip) = client {
        gql_request = gql_request.data(crate::ratelimit::ClientIp(ip));
    }
    let mut session_ended = false;
    if let Some(token) = session_token(request) {
        match crate::accounts::sessions::authenticate(state, &token).await {
            Ok(Some(viewer)) => gql_request = gql_request.data(viewer),
            // An unknown or expired token signs nobody in; the answer says
            // so (below), so a page can tell "signed out" from "never was".
            Ok(None) => {
                session_ended = true;
                gql_request = gql_request.data(EndedSession);
            }
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

    // Every password hash of the request spends its client's share of the
    // hashing queue, however deep in a service it is asked for.
    let execution = crate::crypto::passwords::as_caller(
        crate::ratelimit::hash_caller(client),
        schema.execute(gql_request),
    );
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, execution).await {
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
    let mut response = finish_errors(response, *request_id);
    if session_ended {
        say_session_ended(&mut response, state);
    }
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

/// Tells the client that the session it sent has ended: removes the
/// cookie (HttpOnly, so the page cannot) and puts `"session": "EXPIRED"`
/// in the response's extensions. Not when the request signed in anew
/// (`login` set a fresh cookie): that answer stands on its own.
fn say_session_ended(response: &mut async_graphql::Response, state: &AppState) {
    let fresh_cookie = format!("{SESSION_COOKIE}=");
    let signed_in = response
        .http_headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value.starts_with(&fresh_cookie) && !value.starts_with(&format!("{fresh_cookie};"))
        });
    if signed_in {
        return;
    }
    response
        .extensions
        .insert("session".to_owned(), Value::from("EXPIRED"));
    if let Ok(cleared) = HeaderValue::from_str(&cleared_session_cookie(state.settings())) {
        response.http_headers.append(header::SET_COOKIE, cleared);
    }
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
