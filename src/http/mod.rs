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
pub mod tls;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{ServerError, Value};
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler,
    http::{HeaderValue, StatusCode, header},
    web::Data,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    accounts::graphql::{SESSION_COOKIE, cleared_session_cookie},
    graphql::{
        CustosSchema, EndedSession, RequestLanguage, UserAgent,
        errors::{ApiError, ErrorCode},
        messages::{Key, Message},
    },
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

/// The HTTP layer's own data, shared by its listeners: request metrics
/// and the documents parsed by earlier requests. Cheap to clone.
#[derive(Clone, Default)]
pub struct HttpState(Arc<HttpInner>);

#[derive(Default)]
struct HttpInner {
    metrics: metrics::Metrics,
    documents: documents::DocumentCache,
}

impl HttpState {
    /// Request counts and latency per operation, rate-limit refusals.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// GraphQL documents parsed by earlier requests.
    pub fn documents(&self) -> &documents::DocumentCache {
        &self.0.documents
    }
}

/// The id of one HTTP request, in every log line and in `INTERNAL` errors.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

/// Builds every route of the service. Cross-origin calls are answered only
/// for `CUSTOS_ALLOWED_ORIGINS` (with credentials, so the session cookie
/// works); with no origins listed, browsers get no CORS headers at all.
pub fn routes(
    state: AppState,
    http: HttpState,
    schema: CustosSchema,
) -> poem::endpoint::BoxEndpoint<'static, Response> {
    let playground_enabled = state.settings().http.playground;
    let origins = state.settings().http.allowed_origins.clone();
    let hsts = state.settings().sends_hsts();
    let route = console::mount(Route::new(), state.settings().http.account_console)
        .at("/graphql", get(graphql_get).post(graphql_post))
        .nest("/graphql/assets", playground::assets())
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz));
    // With a listener of its own (`CUSTOS_METRICS_BIND`), `/metrics` is
    // not served here: the public listener answers 404 for it.
    let route = if state.settings().http.metrics_bind.is_none() {
        route.at("/metrics", get(metrics_text))
    } else {
        route
    };
    let route = route
        .data(schema)
        .data(state)
        .data(http)
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
        .around(move |endpoint, request| async move {
            Ok(with_request_id(endpoint, request, hsts).await)
        })
        .boxed()
}

/// The routes of the metrics listener (`CUSTOS_METRICS_BIND`): `/metrics`
/// and nothing else.
pub fn metrics_routes(
    state: AppState,
    http: HttpState,
) -> poem::endpoint::BoxEndpoint<'static, Response> {
    Route::new()
        .at("/metrics", get(metrics_text))
        .data(state)
        .data(http)
        .boxed()
}

#[derive(Clone, Copy)]
struct PlaygroundEnabled(bool);

/// How long browsers keep to HTTPS after an answer (a year), sent when the
/// service is reached over HTTPS.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Gives the request an id and a span, logs its outcome without personal
/// data, and sets the headers every answer carries (`hsts`: tell browsers
/// to use HTTPS only).
async fn with_request_id<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    mut request: Request,
    hsts: bool,
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
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request handled"
        );
    });
    response
}

/// The language `Accept-Language` asks for, when it names one of ours.
fn header_language(request: &Request) -> Option<Language> {
    request
        .header(header::ACCEPT_LANGUAGE)
        .and_then(Language::preferred)
}

/// A GraphQL-shaped error answer for requests refused before execution,
/// worded in the language `Accept-Language` asks for.
fn refusal(request: &Request, status: StatusCode, code: ErrorCode, key: Key) -> Response {
    let language = header_language(request).unwrap_or_default();
    let body = serde_json::json!({
        "errors": [{
            "message": Message::new(key).render(language),
            "extensions": { "code": code.as_str(), "messageKey": key.as_str() },
        }]
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
    http: &Request,
    documents: &documents::DocumentCache,
    request: &mut async_graphql::Request,
) -> Option<Response> {
    match persisted::requested(request, &request.query) {
        Ok(persisted::Persisted::Find(hash)) => match documents.text_of(&hash) {
            Some(text) => {
                request.query = text.to_string();
                None
            }
            None => Some(persisted_query_not_found()),
        },
        // A text sent with its hash is kept (or not) like any other.
        Ok(persisted::Persisted::Register(_) | persisted::Persisted::No) => None,
        Err(refused) => Some(bad_request_field(
            http,
            "extensions.persistedQuery",
            refused.message(),
        )),
    }
}

/// `PERSISTED_QUERY_NOT_FOUND`, with HTTP 200 (Apollo clients give up on
/// persisted queries for good after a 4xx) and the message Apollo's
/// clients match on, the same in every language; the key is the catalog's
/// convention for the code.
fn persisted_query_not_found() -> Response {
    let body = serde_json::json!({
        "errors": [{
            "message": "PersistedQueryNotFound",
            "extensions": {
                "code": ErrorCode::PersistedQueryNotFound.as_str(),
                "messageKey": "graphql.persisted_query_not_found",
            },
        }]
    });
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}

/// A `BAD_USER_INPUT` refusal naming the part of the request at fault,
/// worded in the request's language.
fn bad_request_field(http: &Request, field: &str, key: Key) -> Response {
    let language = header_language(http).unwrap_or_default();
    let body = serde_json::json!({
        "errors": [{
            "message": Message::new(key).render(language),
            "extensions": {
                "code": ErrorCode::BadUserInput.as_str(),
                "field": field,
                "messageKey": key.as_str(),
            },
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
            request,
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            Key::PostOnly,
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
    Data(http_state): Data<&HttpState>,
    Data(request_id): Data<&RequestId>,
) -> Response {
    let mut gql_request = match read_graphql_request(request, body).await {
        Ok(gql_request) => gql_request,
        Err(refused) => return refused,
    };
    if let Some(refused) =
        resolve_persisted_query(request, http_state.documents(), &mut gql_request)
    {
        return refused;
    }
    if let Some(refused) = check_query_text(request, &gql_request.query) {
        return refused;
    }
    // A parsed document is handed to the executor, so it does not parse it
    // again (and usually nobody parses it: see `documents`). One that does
    // not parse is answered here, in one line.
    let started = std::time::Instant::now();
    let Some(document) = http_state.documents().get(&gql_request.query) else {
        let language = header_language(request).unwrap_or_default();
        http_state.metrics().observe_request(
            gql_request.operation_name.as_deref(),
            false,
            started.elapsed(),
        );
        return answer(parse_failure(&gql_request.query, language), request);
    };
    if let Some(refused) = check_document(request, &document) {
        return refused;
    }
    gql_request.set_parsed_query(document.parsed.clone());
    let operation_name = gql_request.operation_name.clone();
    let client = client_ip(request, state);
    let gql_request = with_caller(gql_request.data(*request_id), request, client);
    let signed = match sign_in(request, state, gql_request).await {
        Ok(signed) => signed,
        Err(failed) => {
            return answer(
                finish_errors(failed, *request_id, Language::default()),
                request,
            );
        }
    };
    let language = signed.language;
    let response = execute(schema, signed.request, client, language).await;
    let mut response = finish_errors(response, *request_id, language);
    if signed.session_ended {
        say_session_ended(&mut response, state);
    }
    observe(
        http_state.metrics(),
        operation_name.as_deref(),
        &response,
        started,
    );
    answer(response, request)
}

/// Reads the body of `POST /graphql` into one GraphQL request: JSON only,
/// at most [`MAX_BODY_BYTES`], not a batch. A refusal is the answer to send.
async fn read_graphql_request(
    request: &Request,
    body: Body,
) -> Result<async_graphql::Request, Response> {
    let is_json = request
        .content_type()
        .map(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    let bad = |key| refusal(request, StatusCode::BAD_REQUEST, ErrorCode::BadRequest, key);
    if !is_json {
        return Err(refusal(
            request,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            Key::JsonOnly,
        ));
    }
    let Ok(bytes) = body.into_bytes_limit(MAX_BODY_BYTES).await else {
        return Err(refusal(
            request,
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            Key::BodyTooLarge,
        ));
    };
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(json) => json,
        // serde_json stops at 128 levels of nesting (its recursion limit),
        // so deep variables never reach anything that recurses further.
        Err(err) if err.to_string().starts_with("recursion limit exceeded") => {
            return Err(bad(Key::BodyNestedTooDeep));
        }
        Err(_) => return Err(bad(Key::BodyNotJson)),
    };
    if json.is_array() {
        // Batches multiply every limit by their length; one operation a request.
        return Err(bad(Key::Batched));
    }
    serde_json::from_value(json).map_err(|_| bad(Key::NotGraphqlRequest))
}

/// Refuses a query text too long, or nested too deep to parse safely.
fn check_query_text(request: &Request, query: &str) -> Option<Response> {
    if query.len() > MAX_QUERY_BYTES {
        return Some(refusal(
            request,
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            Key::QueryTooLong,
        ));
    }
    if documents::nests_too_deep(query) {
        // Neither the cache nor the executor may parse it: the parser
        // recurses once a level and would overflow the worker's stack.
        return Some(refusal(
            request,
            StatusCode::BAD_REQUEST,
            ErrorCode::GraphqlParseFailed,
            Key::NestedTooDeep,
        ));
    }
    None
}

/// Refuses a parsed document with too many aliases, more than one password
/// check, or too deep a selection.
fn check_document(request: &Request, document: &documents::Document) -> Option<Response> {
    let key = if document.aliases > MAX_ALIASES {
        Key::TooManyAliases
    } else if document.password_checks > 1 {
        Key::OnePasswordCheck
    } else if document.depth > crate::graphql::MAX_DEPTH {
        Key::TooDeep
    } else {
        return None;
    };
    Some(refusal(
        request,
        StatusCode::BAD_REQUEST,
        ErrorCode::GraphqlValidationFailed,
        key,
    ))
}

/// The caller's address: the TCP peer; X-Forwarded-For only through
/// proxies the operator named.
fn client_ip(request: &Request, state: &AppState) -> Option<std::net::IpAddr> {
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    crate::ratelimit::client_ip(
        request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        &forwarded_for,
        &state.settings().limits.trusted_proxies,
    )
}

/// Hands the resolvers the caller's user agent and address.
fn with_caller(
    mut gql_request: async_graphql::Request,
    request: &Request,
    client: Option<std::net::IpAddr>,
) -> async_graphql::Request {
    if let Some(agent) = request.header(header::USER_AGENT) {
        gql_request = gql_request.data(UserAgent(agent.to_owned()));
    }
    if let Some(ip) = client {
        gql_request = gql_request.data(crate::ratelimit::ClientIp(ip));
    }
    gql_request
}

/// A GraphQL request with its viewer (if the session is valid) and its
/// language.
struct SignedRequest {
    request: async_graphql::Request,
    language: Language,
    /// The request carried a session that is unknown or expired.
    session_ended: bool,
}

/// Signs the request's session in, if it carries one, and settles its
/// language: Accept-Language first, else the language the account chose.
/// A failed lookup is the response to send.
async fn sign_in(
    request: &Request,
    state: &AppState,
    mut gql_request: async_graphql::Request,
) -> Result<SignedRequest, async_graphql::Response> {
    let mut language = header_language(request);
    let mut session_ended = false;
    if let Some(token) = session_token(request) {
        match crate::accounts::sessions::authenticate(state, &token).await {
            Ok(Some(viewer)) => {
                language = language.or(Some(Language::from_tag(&viewer.account.language)));
                gql_request = gql_request.data(viewer);
            }
            // An unknown or expired token signs nobody in; the answer says
            // so, so a page can tell "signed out" from "never was".
            Ok(None) => {
                session_ended = true;
                gql_request = gql_request.data(EndedSession);
            }
            Err(err) => {
                return Err(lone_error(
                    ApiError::internal(&format!("session lookup failed: {err}")),
                    language.unwrap_or_default(),
                ));
            }
        }
    }
    let language = language.unwrap_or_default();
    Ok(SignedRequest {
        request: gql_request.data(RequestLanguage(language)),
        language,
        session_ended,
    })
}

/// Runs the request within [`REQUEST_TIMEOUT`]. Every password hash of the
/// request spends its client's share of the hashing queue, however deep in
/// a service it is asked for.
async fn execute(
    schema: &CustosSchema,
    gql_request: async_graphql::Request,
    client: Option<std::net::IpAddr>,
    language: Language,
) -> async_graphql::Response {
    let execution = crate::crypto::passwords::as_caller(
        crate::ratelimit::hash_caller(client),
        schema.execute(gql_request),
    );
    match tokio::time::timeout(REQUEST_TIMEOUT, execution).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("GraphQL request timed out");
            lone_error(ApiError::new(ErrorCode::Internal, Key::TimedOut), language)
        }
    }
}

/// Counts the request, and the rate-limit refusals in its answer.
fn observe(
    metrics: &metrics::Metrics,
    operation_name: Option<&str>,
    response: &async_graphql::Response,
    started: Instant,
) {
    metrics.observe_request(
        operation_name,
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
}

/// The HTTP answer for a GraphQL response: never cached, and in the
/// GraphQL-over-HTTP media type for clients that ask for it.
fn answer(response: async_graphql::Response, request: &Request) -> Response {
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

/// A response holding `error` alone, worded in `language`.
fn lone_error(error: ApiError, language: Language) -> async_graphql::Response {
    let mut response = async_graphql::Response::default();
    response.errors = error.server_errors(&ServerError::new("", None), language);
    response
}

/// `GRAPHQL_PARSE_FAILED` for a text that does not parse: one line in
/// `language`, the parser's expectation in `extensions.detail` (its last
/// line: never the echo of the text, which may hold what a person typed),
/// and where it stopped in `locations`.
fn parse_failure(query: &str, language: Language) -> async_graphql::Response {
    use async_graphql::parser::Error;
    let (detail, locations) = match async_graphql::parser::parse_query(query) {
        Err(err) => {
            let detail = match &err {
                Error::Syntax { message, .. } => message
                    .lines()
                    .rev()
                    .find_map(|line| line.trim().strip_prefix("= "))
                    .unwrap_or("syntax error")
                    .to_owned(),
                other => other.to_string(),
            };
            (detail, err.positions().collect())
        }
        // Only a text that failed to parse comes here.
        Ok(_) => ("syntax error".to_owned(), Vec::new()),
    };
    let mut template = ServerError::new("", None);
    template.locations = locations;
    let mut response = async_graphql::Response::default();
    response.errors = ApiError::new(ErrorCode::GraphqlParseFailed, Key::ParseFailed)
        .with_extension("detail", detail)
        .server_errors(&template, language);
    response
}

/// Words every error in `language` and gives it a contract code: an
/// [`ApiError`] becomes its errors (one per invalid field); an error of the
/// executor without a code (validation, limits, variables that do not fit
/// their types) becomes `GRAPHQL_VALIDATION_FAILED`, its own text kept in
/// `extensions.detail`. `INTERNAL` ones get the request id.
fn finish_errors(
    mut response: async_graphql::Response,
    request_id: RequestId,
    language: Language,
) -> async_graphql::Response {
    let errors = std::mem::take(&mut response.errors);
    for error in errors {
        if let Some(api) = error.source::<ApiError>() {
            response.errors.extend(api.server_errors(&error, language));
        } else if error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some())
        {
            response.errors.push(error);
        } else {
            let api = ApiError::new(ErrorCode::GraphqlValidationFailed, Key::ValidationFailed)
                .with_extension("detail", error.message.clone());
            response.errors.extend(api.server_errors(&error, language));
        }
    }
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code") == Some(&Value::from(ErrorCode::Internal.as_str())) {
            extensions.set("requestId", request_id.0.to_string());
        }
    }
    response
}

#[handler]
async fn metrics_text(Data(state): Data<&AppState>, Data(http): Data<&HttpState>) -> Response {
    match metrics::render(state, http.metrics(), http.documents()).await {
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
