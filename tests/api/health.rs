//! Health, readiness and the playground.

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db().close_by_ref().await.unwrap();
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn playground_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://"), "no CDN links in the page");
    for asset in [
        "react.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
    ] {
        assert!(html.contains(asset), "page loads {asset}");
        let response = app
            .client
            .get(format!("{}/graphql/assets/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn playground_is_off_when_disabled() {
    let app = crate::helpers::spawn_app_with(|s| s.playground = Some(false)).await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
}

#[tokio::test]
async fn internal_errors_carry_a_request_id_and_no_details() {
    let app = spawn_app().await;
    app.state.db().close_by_ref().await.unwrap();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&serde_json::json!({ "query": "{ policy { version } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a GraphQL error, never a 5xx");
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "INTERNAL", "{body}");
    assert_eq!(error["extensions"]["requestId"], header_id.as_str());
    let text = body.to_string().to_lowercase();
    for leak in ["sql", "select", "pool", "sqlite", "src/", "panicked"] {
        assert!(!text.contains(leak), "{leak} leaked: {body}");
    }
}

async fn status_of(app: &crate::helpers::TestApp, url: String) -> (u16, String) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_are_on_the_main_listener_unless_given_their_own() {
    let app = spawn_app().await;
    assert!(app.metrics_address.is_none());
    let (status, text) = status_of(&app, format!("{}/metrics", app.address)).await;
    assert_eq!(status, 200);
    assert!(text.contains("custos_"), "{text}");

    let app =
        crate::helpers::spawn_app_with(|raw| raw.metrics_bind = Some("127.0.0.1:0".into())).await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics, app.address);
    // The public listener no longer shows them, and serves the rest.
    let (status, _) = status_of(&app, format!("{}/metrics", app.address)).await;
    assert_eq!(status, 404);
    let (status, _) = status_of(&app, format!("{}/healthz", app.address)).await;
    assert_eq!(status, 200);
    // The metrics listener serves /metrics and nothing else.
    let (status, text) = status_of(&app, format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("custos_"), "{text}");
    for path in ["/healthz", "/graphql", "/"] {
        let (status, _) = status_of(&app, format!("{metrics}{path}")).await;
        assert_eq!(status, 404, "{path}");
    }
}
