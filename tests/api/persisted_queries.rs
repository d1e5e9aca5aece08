//! Automatic persisted queries as Apollo's clients send them: a hash
//! alone, `PERSISTED_QUERY_NOT_FOUND`, the hash with its text, and the
//! rules of the parsed-document cache (limits, no string literal kept).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, error_code, signed_in, spawn_app};

fn hash_of(query: &str) -> String {
    hex::encode(Sha256::digest(query.as_bytes()))
}

/// POSTs `body` as JSON (with a bearer token if given): status and answer.
async fn post(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

fn assert_not_found(status: u16, body: &Value) {
    // 200, so that clients retry with the text instead of giving up.
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        error_code(body),
        Some("PERSISTED_QUERY_NOT_FOUND"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(body["data"].is_null(), "{body}");
}

#[tokio::test]
async fn an_unknown_hash_asks_for_the_text_which_is_then_known() {
    let app = spawn_app().await;
    let token = signed_in(&app, "apq_li", "apq.li@example.org").await;
    let query = "query History($first: Int) { me { username } myConsentHistory(first: $first) { nodes { source } } }";
    let hash = hash_of(query);

    let (status, body) = post(
        &app,
        Some(&token),
        json!({ "extensions": persisted(&hash), "variables": { "first": 1 } }),
    )
    .await;
    assert_not_found(status, &body);

    // The client's retry: the hash with the text. It runs.
    let (status, with_text) = post(
        &app,
        Some(&token),
        json!({ "query": query, "extensions": persisted(&hash), "variables": { "first": 1 } }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(with_text["data"]["me"]["username"], "apq_li", "{with_text}");
    // From now on the hash alone will do, with its own variables.
    let (status, by_hash) = post(
        &app,
        Some(&token),
        json!({ "extensions": persisted(&hash), "variables": { "first": 1 }, "operationName": "History" }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_hash, with_text);
    // Upper-case hex names the same text; the hash works for anyone.
    let (_, body) = post(
        &app,
        None,
        json!({ "extensions": persisted(&hash.to_uppercase()) }),
    )
    .await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert!(body["data"]["me"].is_null(), "{body}");
}

#[tokio::test]
async fn a_hash_that_is_not_its_texts_is_refused_and_nothing_runs() {
    let app = spawn_app().await;
    let token = signed_in(&app, "apq_wu", "apq.wu@example.org").await;
    let logout = "mutation { logout }";
    let (status, body) = post(
        &app,
        Some(&token),
        json!({ "query": logout, "extensions": persisted(&hash_of("{ me { id } }")) }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "extensions.persistedQuery"
    );
    // The session is still alive: logout did not run.
    let me = app
        .gql_with_token(Some(&token), "{ me { username } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["username"], "apq_wu", "{me}");

    for malformed in [
        json!({ "version": 2, "sha256Hash": hash_of(logout) }),
        json!({ "version": 1, "sha256Hash": "0123" }),
        json!({ "version": 1 }),
        json!("yes"),
    ] {
        let (status, body) = post(
            &app,
            Some(&token),
            json!({ "query": logout, "extensions": { "persistedQuery": malformed } }),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    let me = app
        .gql_with_token(Some(&token), "{ me { username } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["username"], "apq_wu", "{me}");
}

#[tokio::test]
async fn a_text_with_a_string_literal_is_run_but_never_persisted() {
    let app = spawn_app().await;
    let query = "{ policy(language: \"en\") { version } }";
    let hash = hash_of(query);
    let (status, body) = post(
        &app,
        None,
        json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["data"]["policy"]["version"].is_string(), "{body}");
    // It was not kept, so the hash alone is unknown, every time: the client
    // keeps sending its text, and nothing it typed stays in memory.
    for _ in 0..2 {
        let (status, body) = post(&app, None, json!({ "extensions": persisted(&hash) })).await;
        assert_not_found(status, &body);
    }
    assert!(
        app.http
            .documents()
            .text_of(&Sha256::digest(query).into())
            .is_none()
    );
}

#[tokio::test]
async fn a_persisted_query_meets_the_same_limits_as_its_text() {
    let app = spawn_app().await;
    let aliases: Vec<String> = (0..31).map(|i| format!("a{i}: __typename")).collect();
    let query = format!("{{ {} }}", aliases.join(" "));
    let hash = hash_of(&query);
    let (status, body) = post(
        &app,
        None,
        json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, again) = post(&app, None, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again, body);
}
