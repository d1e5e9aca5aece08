//! The account console's routes and the small API pieces it needs:
//! `setLanguage`, `revokeOtherSessions`, `policyVersions` and
//! `guardianConsentRequest`.

use serde_json::json;

use crate::helpers::{
    PASSWORD, TestApp, admin_token, current_purposes, error_code, last_link, login, minor,
    new_version, policy_version, publish, signed_in, signup_minor, signup_with, spawn_app,
    spawn_app_with, with_chinese,
};

/// Every path Custos puts in a mail.
const EMAILED_PATHS: &[&str] = &[
    "/verify-email?token=abc",
    "/reset-password?token=abc",
    "/confirm-deletion?token=abc",
    "/cancel-deletion?token=abc",
    "/guardian-consent?token=abc",
    "/privacy",
    "/settings/privacy",
];

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request sent")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_emailed_path_opens_the_console_under_a_strict_policy() {
    let app = spawn_app().await;
    for path in EMAILED_PATHS.iter().chain(&["/"]) {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let policy = header(&response, "content-security-policy").to_owned();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(
            header(&response, "referrer-policy"),
            "no-referrer",
            "{path}"
        );
        assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(r#"<script type="module" src="/console/main.js">"#),
            "{path}"
        );
    }
    let script = get(&app, "/console/main.js").await;
    assert_eq!(script.status(), 200);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let view = get(&app, "/console/views/links.js").await;
    assert_eq!(view.status(), 200);
    assert_eq!(get(&app, "/console/nothing.js").await.status(), 404);
    assert_eq!(get(&app, "/console/../Cargo.toml").await.status(), 404);
}

#[tokio::test]
async fn with_the_console_off_emailed_paths_say_where_to_go() {
    let app = spawn_app_with(|s| s.account_console = Some(false)).await;
    for path in EMAILED_PATHS {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let policy = header(&response, "content-security-policy").to_owned();
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains("CUSTOS_ACCOUNT_CONSOLE"), "{path}");
        assert!(body.contains("has not been used"), "{path}");
        assert!(!body.contains("<script"), "{path}");
    }
    assert_eq!(get(&app, "/console/main.js").await.status(), 404);
}

const SET_LANGUAGE: &str = "mutation($l: String!) { setLanguage(language: $l) { language } }";

#[tokio::test]
async fn set_language_changes_the_account_language_and_refuses_others() {
    let app = spawn_app().await;
    let token = signed_in(&app, "lang_user", "lang.user@example.org").await;
    let body = app
        .gql_with_token(Some(&token), SET_LANGUAGE, json!({ "l": "en" }))
        .await;
    assert_eq!(body["data"]["setLanguage"]["language"], "en", "{body}");
    let me = app
        .gql_with_token(Some(&token), "{ me { language } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["language"], "en");

    // The account's mail follows it.
    let body = app
        .gql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": "lang.user@example.org" }),
        )
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    app.deliver_mail().await;
    let mail = app.last_mail_to("lang.user@example.org").unwrap();
    let text = mail.decoded_text();
    assert!(
        text.contains("password") && !text.contains("密码"),
        "English mail: {text}"
    );

    for wrong in ["fr", "zh-TW", "EN-us", ""] {
        let body = app
            .gql_with_token(Some(&token), SET_LANGUAGE, json!({ "l": wrong }))
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{wrong}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "language");
    }
    let body = app
        .gql_with_token(Some(&token), SET_LANGUAGE, json!({ "l": "zh-CN" }))
        .await;
    assert_eq!(body["data"]["setLanguage"]["language"], "zh-CN", "{body}");

    let body = app.gql(SET_LANGUAGE, json!({ "l": "en" })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn revoke_other_sessions_keeps_only_the_callers() {
    let app = spawn_app().await;
    let first = signed_in(&app, "many_devices", "many.devices@example.org").await;
    let second = login(&app, "many_devices", PASSWORD).await;
    let third = login(&app, "many.devices@example.org", PASSWORD).await;
    let someone_else = signed_in(&app, "bystander", "bystander@example.org").await;
    // Each token is seen once, so the session cache holds them all.
    for token in [&first, &second, &third, &someone_else] {
        let me = app
            .gql_with_token(Some(token), "{ me { id } }", json!({}))
            .await;
        assert!(me["data"]["me"]["id"].is_string(), "{me}");
    }

    let body = app
        .gql_with_token(Some(&second), "mutation { revokeOtherSessions }", json!({}))
        .await;
    assert_eq!(body["data"]["revokeOtherSessions"], 2, "{body}");

    for gone in [&first, &third] {
        let me = app
            .gql_with_token(Some(gone), "{ me { id } }", json!({}))
            .await;
        assert!(me["data"]["me"].is_null(), "ended: {me}");
    }
    for kept in [&second, &someone_else] {
        let me = app
            .gql_with_token(Some(kept), "{ me { id } }", json!({}))
            .await;
        assert!(me["data"]["me"]["id"].is_string(), "kept: {me}");
    }
    let sessions = app
        .gql_with_token(Some(&second), "{ mySessions { current } }", json!({}))
        .await;
    assert_eq!(sessions["data"]["mySessions"], json!([{ "current": true }]));

    let body = app
        .gql_with_token(Some(&second), "mutation { revokeOtherSessions }", json!({}))
        .await;
    assert_eq!(
        body["data"]["revokeOtherSessions"], 0,
        "nothing left: {body}"
    );
    let body = app.gql("mutation { revokeOtherSessions }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

const VERSIONS: &str = "query($l: String) { policyVersions(language: $l) { version publishedAt major summaryOfChanges text purposes { code title } } }";

#[tokio::test]
async fn policy_versions_lists_every_version_newest_first() {
    let app = spawn_app().await;
    let body = app.gql(VERSIONS, json!({})).await;
    let versions = body["data"]["policyVersions"].as_array().unwrap().clone();
    // The two versions shipped with the crate, newest first.
    assert_eq!(versions.len(), 2, "{body}");
    let shipped = versions[0]["version"].clone();
    let first = versions[1]["version"].clone();

    let admin = admin_token(&app).await;
    let purposes = current_purposes(&app).await;
    let input = with_chinese(&app, new_version("2027-01-01", false, purposes, None)).await;
    let body = publish(&app, &admin, input).await;
    assert_eq!(
        body["data"]["publishPolicy"]["version"], "2027-01-01",
        "{body}"
    );

    // Public: no token.
    let body = app.gql(VERSIONS, json!({ "l": "en" })).await;
    let versions = body["data"]["policyVersions"].as_array().unwrap();
    let names: Vec<_> = versions.iter().map(|v| v["version"].clone()).collect();
    assert_eq!(names, vec![json!("2027-01-01"), shipped, first], "{body}");
    assert_eq!(
        versions[0]["summaryOfChanges"],
        "Adds nearby-friends suggestions"
    );
    assert_eq!(versions[0]["major"], false);
    assert!(versions[1]["text"].as_str().is_some_and(|t| !t.is_empty()));

    let body = app.gql(VERSIONS, json!({ "l": "zh-CN" })).await;
    assert_eq!(
        body["data"]["policyVersions"][0]["summaryOfChanges"],
        "新增附近好友推荐"
    );
}

const GUARDIAN_REQUEST: &str = "query($t: String!) { guardianConsentRequest(token: $t) { username purposes { code required } } }";

#[tokio::test]
async fn a_guardian_link_shows_the_minor_and_the_purposes_only_while_it_works() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let mut input = minor(
        &version,
        "young_reader",
        "young.reader@example.org",
        "parent.of.reader@example.org",
    );
    input["grantPurposes"] = json!(["product_updates"]);
    let body = signup_with(&app, input).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    let token = last_link(&app, "parent.of.reader@example.org", "/guardian-consent");

    let body = app
        .gql_with_token(None, GUARDIAN_REQUEST, json!({ "t": token }))
        .await;
    let request = &body["data"]["guardianConsentRequest"];
    assert_eq!(request["username"], "young_reader", "{body}");
    let codes: Vec<_> = request["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect();
    // The required purpose and the one the minor chose; not the others.
    assert_eq!(codes, vec!["account", "product_updates"], "{body}");

    let body = app
        .gql(GUARDIAN_REQUEST, json!({ "t": "not-a-token" }))
        .await;
    assert!(body["data"]["guardianConsentRequest"].is_null(), "{body}");
    assert!(body["errors"].is_null(), "{body}");

    let answer =
        "mutation($t: String!, $g: Boolean!) { confirmGuardianConsent(token: $t, granted: $g) }";
    let body = app.gql(answer, json!({ "t": token, "g": false })).await;
    assert_eq!(body["data"]["confirmGuardianConsent"], true, "{body}");
    let body = app.gql(GUARDIAN_REQUEST, json!({ "t": token })).await;
    assert!(
        body["data"]["guardianConsentRequest"].is_null(),
        "a used link shows nothing: {body}"
    );
}

#[tokio::test]
async fn an_expired_guardian_link_shows_nothing() {
    let app = spawn_app().await;
    signup_minor(
        &app,
        "late_reader",
        "late.reader@example.org",
        "late.parent@example.org",
    )
    .await;
    app.deliver_mail().await;
    let token = last_link(&app, "late.parent@example.org", "/guardian-consent");
    app.clock.advance(chrono::Duration::days(30));
    let body = app.gql(GUARDIAN_REQUEST, json!({ "t": token })).await;
    assert!(body["data"]["guardianConsentRequest"].is_null(), "{body}");
}
