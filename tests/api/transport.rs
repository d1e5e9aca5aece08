//! The transport rules of `/graphql`: JSON only, no GET operations, no
//! batches, bounded bodies, contract error codes.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app, spawn_app_with};

#[tokio::test]
async fn json_post_answers_and_is_not_cached() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "QueryRoot");
}

#[tokio::test]
async fn text_plain_and_form_posts_are_refused_with_415() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("content-type", content_type)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), Some("BAD_REQUEST"));
    }
}

#[tokio::test]
async fn operations_over_get_are_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql?query=%7B__typename%7D", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn batches_are_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_REQUEST"));
}

#[tokio::test]
async fn oversized_bodies_and_queries_are_refused() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ __typename }", "variables": { "pad": padding } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let long_query = format!("{{ __typename {} }}", "__typename ".repeat(2000));
    let (status, body) = app.post_query(&long_query).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("BAD_REQUEST"));
}

#[tokio::test]
async fn malformed_json_and_bad_queries_get_contract_codes() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let body = app.gql("{ noSuchField }", json!({})).await;
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));
}

/// The introspection query GraphiQL sends to draw its docs and autocomplete.
const GRAPHIQL_INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

#[tokio::test]
async fn deep_queries_are_refused_but_graphiql_introspection_works() {
    let app = spawn_app().await;
    let body = app.gql(GRAPHIQL_INTROSPECTION, json!({})).await;
    assert!(
        body["errors"].is_null(),
        "the playground can introspect: {body}"
    );
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 20);

    // Application fields deeper than 10 are refused before execution.
    let mut deep = String::from("x");
    for level in 0..11 {
        deep = format!("f{level} {{ {deep} }}");
    }
    let (status, body) = app.post_query(&format!("{{ {deep} }}")).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));

    // Introspection nesting is bounded too.
    let mut chain = String::from("name");
    for _ in 0..25 {
        chain = format!("ofType {{ {chain} }}");
    }
    let body = app
        .gql(
            &format!("{{ __type(name: \"Account\") {{ {chain} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
}

#[tokio::test]
async fn introspection_is_off_in_production_unless_asked_for() {
    let app = spawn_app_with(|s| {
        s.introspection = Some(false);
    })
    .await;
    let body = app
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        body["errors"].is_array() || body["data"]["__schema"].is_null(),
        "{body}"
    );
}

#[tokio::test]
async fn policy_is_served_in_the_requested_language() {
    let app = spawn_app().await;
    let body = app
        .gql(
            "{ policy { version major purposes { code required sensitive } } en: policy(language: \"en\") { text } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let purposes = body["data"]["policy"]["purposes"].as_array().unwrap();
    let codes: Vec<&str> = purposes
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    for code in ["account", "support", "product_updates"] {
        assert!(codes.contains(&code), "{code}");
    }
    assert!(
        body["data"]["en"]["text"]
            .as_str()
            .unwrap()
            .contains("working days")
    );
}

#[tokio::test]
async fn a_hundred_aliases_are_refused_and_a_few_are_fine() {
    let app = spawn_app().await;
    let many: String = (0..100).map(|i| format!("a{i}: __typename ")).collect();
    let (status, body) = app.post_query(&format!("{{ {many} }}")).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));
    // The same text again is found parsed, and refused again.
    let (status, body) = app.post_query(&format!("{{ {many} }}")).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));
    assert!(
        app.metrics()
            .await
            .contains("custos_graphql_documents_total{result=\"cached\"} 1")
    );
    // Aliases hidden in fragments count too.
    let fragment = format!("query {{ ...F }} fragment F on QueryRoot {{ {many} }}");
    let (status, body) = app.post_query(&fragment).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));
    let body = app.gql("{ a: __typename b: __typename }", json!({})).await;
    assert_eq!(body["data"]["b"], "QueryRoot");
}

#[tokio::test]
async fn query_texts_are_parsed_once_unless_they_carry_literal_text() {
    let app = spawn_app().await;
    let counts = || async {
        let text = app.metrics().await;
        let count = |line: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(line))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        };
        (
            count("custos_graphql_documents_total{result=\"cached\"}"),
            count("custos_graphql_documents_total{result=\"parsed\"}"),
            count("custos_graphql_documents_cached"),
        )
    };
    let (cached, parsed, kept) = counts().await;
    let login = "mutation($i: LoginInput!) { login(input: $i) { token } }";
    for _ in 0..3 {
        let body = app
            .gql(
                login,
                json!({ "i": { "login": "nobody", "password": "not a password" } }),
            )
            .await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    assert_eq!(counts().await, (cached + 2, parsed + 1, kept + 1));
    // The same sign-in with its values written into the text: parsed for
    // each request, kept for none.
    let inline =
        r#"mutation { login(input: { login: "nobody", password: "not a password" }) { token } }"#;
    for _ in 0..2 {
        let body = app.gql(inline, json!({})).await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    assert_eq!(counts().await, (cached + 2, parsed + 3, kept + 1));
}

#[tokio::test]
async fn the_graphql_response_media_type_is_honoured() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header(
            "accept",
            "application/graphql-response+json, application/json;q=0.9",
        )
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
}

#[tokio::test]
async fn metrics_report_requests_and_queues() {
    let app = spawn_app().await;
    app.client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "query PolicyVersion { policy { version } }", "operationName": "PolicyVersion" }))
        .send()
        .await
        .unwrap();
    let text = app.metrics().await;
    assert!(
        text.contains(
            "custos_graphql_requests_total{operation=\"PolicyVersion\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "custos_graphql_request_duration_seconds_bucket{operation=\"PolicyVersion\",le=\"+Inf\"} 1"
    ));
    for gauge in [
        "custos_outbox_pending 0",
        "custos_erasures_overdue 0",
        "custos_rate_limited_total 0",
        "custos_password_hashes_waiting 0",
        "custos_password_hash_threads ",
    ] {
        assert!(text.contains(gauge), "{gauge}");
    }
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins() {
    let app = spawn_app_with(|s| s.allowed_origins = "https://app.example.org".into()).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.org").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let closed = spawn_app().await;
    let response = closed
        .client
        .post(format!("{}/graphql", closed.address))
        .header("origin", "https://app.example.org")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
