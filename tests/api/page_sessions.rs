//! Sessions as a page sees them: an ended session is cleared and said so,
//! `logout` with one is done already, a scheduled deletion says when it
//! runs, and a verification link used twice answers the same twice.

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, SIGN_IN, TestApp, VERIFY_EMAIL, error_code, last_link, signed_in, signup, spawn_app,
    verify_email,
};

/// A request as a browser sends it: with a cookie and/or a bearer token.
/// Returns the `Set-Cookie` headers of the answer and its body.
async fn send(
    app: &TestApp,
    cookie: Option<&str>,
    bearer: Option<&str>,
    query: &str,
    variables: Value,
) -> (Vec<String>, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = cookie {
        request = request.header("cookie", format!("theme=dark; custos_session={token}"));
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (cookies, response.json().await.unwrap())
}

/// The attributes of a `Set-Cookie` value, without its value and max age.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.starts_with("Max-Age"))
        .collect()
}

/// Signs in as a browser does; the session token and its `Set-Cookie`.
async fn browser_login(app: &TestApp, login: &str) -> (String, String) {
    let (cookies, body) = send(
        app,
        None,
        None,
        SIGN_IN,
        json!({ "l": login, "p": PASSWORD }),
    )
    .await;
    let token = body["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with(&format!("custos_session={token};")));
    (token, cookies[0].clone())
}

fn assert_cleared(cookies: &[String], login_cookie: &str, body: &Value) {
    assert_eq!(body["extensions"]["session"], "EXPIRED", "{body}");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("custos_session=;"), "{cookies:?}");
    assert!(cookies[0].contains("Max-Age=0"), "{cookies:?}");
    assert_eq!(attributes(&cookies[0]), attributes(login_cookie));
}

#[tokio::test]
async fn an_ended_session_is_cleared_and_said_to_have_expired() {
    let app = spawn_app().await;
    signed_in(&app, "page_li", "page.li@example.org").await;
    let (token, login_cookie) = browser_login(&app, "page_li").await;
    let me = "{ me { id } }";

    // Alive: nothing to say.
    let (cookies, body) = send(&app, Some(&token), None, me, json!({})).await;
    assert!(body["data"]["me"]["id"].is_string(), "{body}");
    assert!(body["extensions"].is_null(), "{body}");
    assert!(cookies.is_empty(), "{cookies:?}");

    // Idle past its limit: `me` is null as for anyone, but the answer says
    // why, and the cookie (HttpOnly, out of the page's reach) goes.
    app.clock.advance(chrono::Duration::minutes(31));
    let (cookies, body) = send(&app, Some(&token), None, me, json!({})).await;
    assert!(body["data"]["me"].is_null(), "{body}");
    assert_cleared(&cookies, &login_cookie, &body);
    // The same for a bearer token, and for one that never existed.
    let (cookies, body) = send(&app, None, Some(&token), me, json!({})).await;
    assert_cleared(&cookies, &login_cookie, &body);
    let (cookies, body) = send(&app, Some("made-up"), None, me, json!({})).await;
    assert_cleared(&cookies, &login_cookie, &body);
    // A call that needs a session is refused and says so too.
    let (cookies, body) = send(&app, Some(&token), None, "{ mySessions { id } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert_cleared(&cookies, &login_cookie, &body);

    // Never signed in: nothing to clear, nothing to say.
    let (cookies, body) = send(&app, None, None, me, json!({})).await;
    assert!(body["data"]["me"].is_null());
    assert!(body["extensions"].is_null(), "{body}");
    assert!(cookies.is_empty(), "{cookies:?}");

    // Signing in again with the dead cookie still sent: the new cookie
    // stands alone, and nothing says "expired".
    let (cookies, body) = send(
        &app,
        Some(&token),
        None,
        SIGN_IN,
        json!({ "l": "page_li", "p": PASSWORD }),
    )
    .await;
    let fresh = body["data"]["login"]["token"].as_str().unwrap().to_owned();
    assert!(body["extensions"].is_null(), "{body}");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with(&format!("custos_session={fresh};")));
    // A failed sign-in with it clears it.
    let (cookies, body) = send(
        &app,
        Some(&token),
        None,
        SIGN_IN,
        json!({ "l": "page_li", "p": "wrong password!" }),
    )
    .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    assert_cleared(&cookies, &login_cookie, &body);

    // Revoked from another device: the same.
    let body = app
        .gql_with_token(Some(&fresh), "{ mySessions { id current } }", json!({}))
        .await;
    let session = body["data"]["mySessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .map(|s| s["id"].clone())
        .unwrap_or_else(|| panic!("{body}"));
    let (other, _) = browser_login(&app, "page_li").await;
    let body = app
        .gql_with_token(
            Some(&other),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": session }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
    let (cookies, body) = send(&app, Some(&fresh), None, me, json!({})).await;
    assert_cleared(&cookies, &login_cookie, &body);
}

#[tokio::test]
async fn logout_with_an_ended_session_is_done_already() {
    let app = spawn_app().await;
    signed_in(&app, "leaver_li", "leaver.li@example.org").await;
    let (token, login_cookie) = browser_login(&app, "leaver_li").await;
    let logout = "mutation { logout }";

    // A live session: ended, cookie cleared with the login's attributes.
    let (cookies, body) = send(&app, Some(&token), None, logout, json!({})).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert!(body["extensions"].is_null(), "{body}");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("custos_session=;"));
    assert_eq!(attributes(&cookies[0]), attributes(&login_cookie));

    // The page calls logout again with the cookie it could not remove.
    let (cookies, body) = send(&app, Some(&token), None, logout, json!({})).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    assert_cleared(&cookies, &login_cookie, &body);
    // An expired one, the same.
    let (expiring, _) = browser_login(&app, "leaver_li").await;
    app.clock.advance(chrono::Duration::hours(13));
    let (cookies, body) = send(&app, Some(&expiring), None, logout, json!({})).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_cleared(&cookies, &login_cookie, &body);

    // No session at all: the page sent no credentials, which is its bug.
    let (cookies, body) = send(&app, None, None, logout, json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert!(cookies.is_empty(), "{cookies:?}");
}

#[tokio::test]
async fn a_verification_link_used_twice_answers_true_twice_and_acts_once() {
    let app = spawn_app().await;
    let body = signup(&app, "twice_li", "twice.li@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    let link = last_link(&app, "twice.li@example.org", "/verify-email");

    // Twice at once, as React's StrictMode does: both true.
    let (first, second) = tokio::join!(
        app.gql(VERIFY_EMAIL, json!({ "t": link })),
        app.gql(VERIFY_EMAIL, json!({ "t": link }))
    );
    assert_eq!(first["data"]["verifyEmail"], true, "{first}");
    assert_eq!(second["data"]["verifyEmail"], true, "{second}");
    let row = |app: &TestApp| {
        let db = app.state.db().clone();
        async move {
            use sea_orm::EntityTrait;
            entity::account::Entity::find()
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let verified = row(&app).await;
    assert!(verified.email_verified);
    // Later, again: true, and nothing written.
    app.clock.advance(chrono::Duration::hours(23));
    let body = verify_email(&app, &link).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(row(&app).await, verified);
    // Once the link has expired it is just invalid.
    app.clock.advance(chrono::Duration::hours(2));
    let body = verify_email(&app, &link).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
    assert_eq!(row(&app).await, verified);
    // A link that never was: invalid.
    let body = verify_email(&app, "never-issued").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
}

#[tokio::test]
async fn only_the_link_that_verified_the_current_address_answers_again() {
    let app = spawn_app().await;
    let body = signup(&app, "links_li", "links.li@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    let old_link = last_link(&app, "links.li@example.org", "/verify-email");
    let body = app
        .gql(SIGN_IN, json!({ "l": "links_li", "p": PASSWORD }))
        .await;
    let token = body["data"]["login"]["token"].as_str().unwrap().to_owned();

    // A newer link voids the first; the newer one verifies.
    let body = app
        .gql_with_token(
            Some(&token),
            "mutation { resendVerificationEmail }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["resendVerificationEmail"], true, "{body}");
    app.deliver_mail().await;
    let new_link = last_link(&app, "links.li@example.org", "/verify-email");
    assert_ne!(new_link, old_link);
    let body = verify_email(&app, &new_link).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    // The voided link did not verify anything: it stays invalid.
    let body = verify_email(&app, &old_link).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
    let body = verify_email(&app, &new_link).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");

    // A new address proven by its own link: that link answers again, the
    // one that proved the old address no longer does.
    let body = app
        .gql_with_token(
            Some(&token),
            "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }",
            json!({ "e": "links.new@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let change_link = last_link(&app, "links.new@example.org", "/verify-email");
    for _ in 0..2 {
        let body = verify_email(&app, &change_link).await;
        assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    }
    let body = app
        .gql_with_token(Some(&token), "{ me { email emailVerified } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"]["email"], "links.new@example.org",
        "{body}"
    );
    let body = verify_email(&app, &new_link).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
}
