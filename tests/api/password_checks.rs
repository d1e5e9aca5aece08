//! Password checks behind a session (`changePassword`, `changeEmail`): the
//! per-account throttle, the per-client limit, and one check a request.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, client_from, error_code, gql_via, login, reset, reset_token, retry_after,
    signed_in, spawn_app_with,
};

const CHANGE_PASSWORD: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
const CHANGE_EMAIL: &str =
    "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }";
const NEW_PASSWORD: &str = "a much newer passphrase";

async fn change_password(app: &TestApp, token: &str, current: &str) -> Value {
    app.gql_with_token(
        Some(token),
        CHANGE_PASSWORD,
        json!({ "c": current, "n": NEW_PASSWORD }),
    )
    .await
}

#[tokio::test]
async fn password_checks_are_throttled_per_account_even_for_the_right_password() {
    // The per-client limit must not be what answers here.
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    let token = signed_in(&app, "session_holder", "holder@example.org").await;
    let bystander = signed_in(&app, "bystander", "bystander@example.org").await;

    // Five guesses, through either mutation, are answered.
    for guess in 0..5 {
        let body = if guess % 2 == 0 {
            change_password(&app, &token, &format!("guess number {guess}")).await
        } else {
            app.gql_with_token(
                Some(&token),
                CHANGE_EMAIL,
                json!({ "e": "elsewhere@example.org", "p": format!("guess number {guess}") }),
            )
            .await
        };
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    // Then they wait, and so does the right password until the wait ends.
    let body = change_password(&app, &token, "guess number 5").await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert_eq!(retry_after(&body), 1);
    let body = change_password(&app, &token, PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    // The refusals changed nothing: the password is the old one.
    login(&app, "session_holder", PASSWORD).await;

    // Another account's checks, and the sign-in, are counted apart.
    let body = change_password(&app, &bystander, "wrong for the bystander").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");

    // The waits double: the next guess after this wait waits two seconds.
    app.clock.advance(chrono::Duration::seconds(1));
    let body = change_password(&app, &token, "guess number 6").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    let body = change_password(&app, &token, PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert_eq!(retry_after(&body), 2);
    app.clock.advance(chrono::Duration::seconds(2));
    let body = change_password(&app, &token, PASSWORD).await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");

    // The right password cleared the count.
    let body = change_password(&app, &token, "wrong once more").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
}

#[tokio::test]
async fn a_completed_reset_ends_the_password_check_wait() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    let token = signed_in(&app, "reset_waiter", "waiter@example.org").await;
    for guess in 0..5 {
        change_password(&app, &token, &format!("guess number {guess}")).await;
    }
    let body = change_password(&app, &token, PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    let link = reset_token(&app, "waiter@example.org").await;
    let body = reset(&app, &link, "a passphrase from the link").await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let token = login(&app, "reset_waiter", "a passphrase from the link").await;
    let body = change_password(&app, &token, "a passphrase from the link").await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}

/// A client whose requests come from `ip` (any 127.0.0.0/8 address works
/// on loopback).
#[tokio::test]
async fn password_checks_have_a_per_client_limit() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 2).await;
    let token = signed_in(&app, "limited_holder", "limited@example.org").await;
    let guesser = client_from(IpAddr::from([127, 0, 3, 2]));
    for guess in 0..2 {
        let body = gql_via(
            &app,
            &guesser,
            Some(&token),
            CHANGE_PASSWORD,
            json!({ "c": format!("guess {guess}"), "n": NEW_PASSWORD }),
        )
        .await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    // The bucket is shared by both mutations.
    let body = gql_via(
        &app,
        &guesser,
        Some(&token),
        CHANGE_EMAIL,
        json!({ "e": "elsewhere@example.org", "p": PASSWORD }),
    )
    .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert!(retry_after(&body) >= 1, "{body}");
    // Another client's bucket is its own.
    let other = client_from(IpAddr::from([127, 0, 3, 3]));
    let body = gql_via(
        &app,
        &other,
        Some(&token),
        CHANGE_PASSWORD,
        json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}

#[tokio::test]
async fn a_request_may_check_the_password_once() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    let token = signed_in(&app, "alias_sender", "alias@example.org").await;
    app.deliver_mail().await;
    let mails = app.smtp.messages().len();
    let guesses: Vec<String> = (1..=5)
        .map(|i| {
            format!(
                "g{i}: changePassword(currentPassword: \"guess {i}\", newPassword: \"{NEW_PASSWORD}\")"
            )
        })
        .collect();
    let documents = [
        format!("mutation {{ {} }}", guesses.join(" ")),
        format!(
            "mutation {{ changePassword(currentPassword: \"{PASSWORD}\", newPassword: \"{NEW_PASSWORD}\") changeEmail(newEmail: \"twice@example.org\", password: \"{PASSWORD}\") }}"
        ),
        format!(
            "mutation {{ ...Check ... on MutationRoot {{ ...Check }} }} fragment Check on MutationRoot {{ changeEmail(newEmail: \"twice@example.org\", password: \"{PASSWORD}\") }}"
        ),
    ];
    for document in &documents {
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&token)
            .json(&json!({ "query": document }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{document}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            error_code(&body),
            Some("GRAPHQL_VALIDATION_FAILED"),
            "{body}"
        );
        assert!(body["data"].is_null(), "nothing ran: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("changePassword"), "{message}");
    }
    // Nothing ran: no guess counted, no change made, no mail.
    app.deliver_mail().await;
    assert_eq!(app.smtp.messages().len(), mails);
    for guess in 0..5 {
        let body = change_password(&app, &token, &format!("guess {guess}")).await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    // One check a request is fine, alongside other fields (an hour on,
    // when the guesses above no longer count, in a new session).
    app.clock.advance(chrono::Duration::hours(1));
    let token = login(&app, "alias_sender", PASSWORD).await;
    let body = app
        .gql_with_token(
            Some(&token),
            &format!(
                "mutation {{ changePassword(currentPassword: \"{PASSWORD}\", newPassword: \"{NEW_PASSWORD}\") changeUsername(username: \"alias_renamed\") {{ username }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}
