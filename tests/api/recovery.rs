//! Password recovery and the brute-force defences through HTTP: the reset
//! flow with mail read from the SMTP server, every INVALID_TOKEN case, the
//! no-enumeration answers, the per-login-name throttle, the per-client
//! limits (aliases included) and the new sign-in notice.

use std::net::IpAddr;

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::{Value, json};

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, PUBLIC_URL, REQUEST_RESET, RESET_PASSWORD, SIGN_IN, SIGNUP, TestApp,
    adult, assert_no_plaintext, client_from, error_code, gql_via, last_link, link_token, login,
    policy_version, request_reset, reset, reset_token, retry_after, sign_in, signed_in,
    signup_and_verify, spawn_app, spawn_app_with, verify_email,
};

fn reset_mails(app: &TestApp, email: &str) -> usize {
    app.mail_to(email)
        .iter()
        .filter(|m| m.subject() == "重置你的密码")
        .count()
}

#[tokio::test]
async fn reset_flow_end_to_end_ends_every_session() {
    let app = spawn_app().await;
    let first = signed_in(&app, "forgetful", "forgetful@example.org").await;
    let second = login(&app, "forgetful", PASSWORD).await;

    let body = request_reset(&app, "  Forgetful@Example.org ").await;
    assert_eq!(body, json!({ "data": { "requestPasswordReset": true } }));
    app.deliver_mail().await;
    let mail = app.last_mail_to("forgetful@example.org").unwrap();
    assert_eq!(mail.subject(), "重置你的密码");
    assert!(
        mail.decoded_text()
            .contains(&format!("{PUBLIC_URL}/reset-password?token=")),
        "{}",
        mail.decoded_text()
    );
    assert!(mail.decoded_text().contains("30 分钟"));
    let token = link_token(&mail, "/reset-password").unwrap();
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");
    // Only the hash of the token is stored.
    assert_no_plaintext(&app, &[&token]).await;

    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");

    // Every session is over, and nobody was signed in by the reset.
    for session in [&first, &second] {
        let me = app
            .gql_with_token(Some(session), "{ me { id } }", json!({}))
            .await;
        assert!(me["data"]["me"].is_null(), "{me}");
        let sessions = app
            .gql_with_token(Some(session), "{ mySessions { id } }", json!({}))
            .await;
        assert_eq!(error_code(&sessions), Some("UNAUTHENTICATED"));
    }

    // The notice went to the address.
    app.deliver_mail().await;
    let notice = app.last_mail_to("forgetful@example.org").unwrap();
    assert_eq!(notice.subject(), "你的密码已修改");
    assert!(notice.decoded_text().contains("forgetful"));

    let body = sign_in(&app, "forgetful", PASSWORD).await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
    let body = sign_in(&app, "forgetful@example.org", NEW_PASSWORD).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");

    // Single use.
    let body = reset(&app, &token, "yet another long passphrase").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
}

#[tokio::test]
async fn links_are_built_from_the_public_url_not_the_host_header() {
    let app = spawn_app().await;
    signed_in(&app, "hosted", "hosted@example.org").await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({ "query": REQUEST_RESET, "variables": { "email": "hosted@example.org" } }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    app.deliver_mail().await;
    let mail = app.last_mail_to("hosted@example.org").unwrap();
    assert!(!mail.raw.contains("evil.example"));
    assert!(link_token(&mail, "/reset-password").is_some());
}

#[tokio::test]
async fn a_weak_password_does_not_use_up_the_token() {
    let app = spawn_app().await;
    signed_in(&app, "picky_user", "picky@example.org").await;
    let token = reset_token(&app, "picky@example.org").await;
    for weak in ["short", "password123", "picky_user", "picky@example.org"] {
        let body = reset(&app, &token, weak).await;
        assert_eq!(error_code(&body), Some("WEAK_PASSWORD"), "{weak}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "newPassword");
        assert!(body["errors"][0]["extensions"]["reason"].is_string());
    }
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[tokio::test]
async fn unknown_used_and_expired_tokens_are_all_invalid() {
    let app = spawn_app().await;
    signed_in(&app, "clockwatcher", "clock@example.org").await;

    for bogus in ["", "not-a-token", &"A".repeat(43)] {
        let body = reset(&app, bogus, NEW_PASSWORD).await;
        assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{bogus:?}");
    }

    // Expired: 30 minutes and a second after the request.
    let expired = reset_token(&app, "clock@example.org").await;
    app.clock.advance(chrono::Duration::minutes(30));
    app.clock.advance(chrono::Duration::seconds(1));
    let body = reset(&app, &expired, NEW_PASSWORD).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));

    // Still good just before its end.
    let fresh = reset_token(&app, "clock@example.org").await;
    app.clock.advance(chrono::Duration::minutes(29));
    let body = reset(&app, &fresh, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let body = reset(&app, &fresh, "a third long passphrase").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "used");
}

#[tokio::test]
async fn a_newer_request_voids_the_older_link() {
    let app = spawn_app().await;
    signed_in(&app, "twice_asked", "twice@example.org").await;
    let older = reset_token(&app, "twice@example.org").await;
    let newer = reset_token(&app, "twice@example.org").await;
    assert_ne!(older, newer);
    let body = reset(&app, &older, NEW_PASSWORD).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
    let body = reset(&app, &newer, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[tokio::test]
async fn the_token_lifetime_is_a_setting() {
    let app = spawn_app_with(|s| s.reset_token_minutes = 5).await;
    signed_in(&app, "quick_one", "quick@example.org").await;
    let token = reset_token(&app, "quick@example.org").await;
    let mail = app.last_mail_to("quick@example.org").unwrap();
    assert!(mail.decoded_text().contains("5 分钟"));
    app.clock.advance(chrono::Duration::minutes(5));
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
}

/// POSTs a reset request and returns the raw body bytes and the time taken.
async fn raw_request(app: &TestApp, email: &str) -> (Vec<u8>, std::time::Duration) {
    let started = std::time::Instant::now();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": REQUEST_RESET, "variables": { "email": email } }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let bytes = response.bytes().await.unwrap().to_vec();
    (bytes, started.elapsed())
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_no_mail() {
    let app = spawn_app().await;
    signed_in(&app, "known_person", "known@example.org").await;
    let mails_before = app.smtp.messages().len();

    let (known, known_took) = raw_request(&app, "known@example.org").await;
    let (unknown, unknown_took) = raw_request(&app, "stranger@example.org").await;
    assert_eq!(
        known,
        unknown,
        "byte-identical bodies: {}",
        String::from_utf8_lossy(&unknown)
    );
    assert_eq!(known, br#"{"data":{"requestPasswordReset":true}}"#);
    // Both wait for the same floor, so neither answers early.
    let floor = custos::timing::ANSWER_FLOOR;
    assert!(known_took >= floor, "{known_took:?}");
    assert!(unknown_took >= floor, "{unknown_took:?}");

    app.deliver_mail().await;
    assert!(app.mail_to("stranger@example.org").is_empty());
    assert_eq!(
        app.smtp.messages().len(),
        mails_before + 1,
        "only the known address"
    );
    assert_eq!(reset_mails(&app, "known@example.org"), 1);
}

#[tokio::test]
async fn a_malformed_address_is_bad_user_input() {
    let app = spawn_app().await;
    for bad in ["", "not an email", "a@localhost", "@example.org"] {
        let body = request_reset(&app, bad).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{bad:?}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "email");
    }
}

#[tokio::test]
async fn at_most_three_reset_mails_an_hour_reach_one_account() {
    let app = spawn_app().await;
    signed_in(&app, "popular_target", "target@example.org").await;
    for _ in 0..5 {
        let body = request_reset(&app, "target@example.org").await;
        assert_eq!(body, json!({ "data": { "requestPasswordReset": true } }));
    }
    app.deliver_mail().await;
    assert_eq!(reset_mails(&app, "target@example.org"), 3);

    // The newest link that was sent still works: the capped requests did
    // not void it.
    let token = last_link(&app, "target@example.org", "/reset-password");
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");

    app.clock.advance(chrono::Duration::minutes(61));
    request_reset(&app, "target@example.org").await;
    app.deliver_mail().await;
    assert_eq!(reset_mails(&app, "target@example.org"), 4, "a new hour");
}

async fn set_status(app: &TestApp, email: &str, status: &str) {
    let bidx = app.state.blind().active().compute(
        custos::accounts::service::EMAIL_INDEX,
        &custos::crypto::blind_index::normalise_email(email),
    );
    let row = entity::account::Entity::find()
        .filter(entity::account::Column::EmailBidx.eq(bidx))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    let mut update = row.into_active_model();
    update.status = Set(status.to_owned());
    update.update(app.state.db()).await.unwrap();
}

#[tokio::test]
async fn an_account_scheduled_for_deletion_cannot_be_reset() {
    let app = spawn_app().await;
    signed_in(&app, "leaving_soon", "leaving@example.org").await;
    let token = reset_token(&app, "leaving@example.org").await;
    set_status(&app, "leaving@example.org", "DELETION_SCHEDULED").await;

    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
    let body = request_reset(&app, "leaving@example.org").await;
    assert_eq!(body["data"]["requestPasswordReset"], true);
    app.deliver_mail().await;
    assert_eq!(reset_mails(&app, "leaving@example.org"), 1, "no new mail");
}

#[tokio::test]
async fn a_reset_kills_a_pending_email_change_and_an_email_change_kills_reset_links() {
    let app = spawn_app().await;
    let session = signed_in(&app, "hijacked", "owner@example.org").await;
    // Someone holding the session starts moving the account away.
    let body = app
        .gql_with_token(
            Some(&session),
            "mutation($p: String!) { changeEmail(newEmail: \"thief@example.org\", password: $p) }",
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let change = last_link(&app, "thief@example.org", "/verify-email");
    // The owner resets the password: the move is off.
    let token = reset_token(&app, "owner@example.org").await;
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let body = verify_email(&app, &change).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));

    // The other way round: a reset link sent to the old address dies when
    // the address changes.
    let stale = reset_token(&app, "owner@example.org").await;
    let session = login(&app, "hijacked", NEW_PASSWORD).await;
    let body = app
        .gql_with_token(
            Some(&session),
            "mutation($p: String!) { changeEmail(newEmail: \"moved@example.org\", password: $p) }",
            json!({ "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let moved = last_link(&app, "moved@example.org", "/verify-email");
    let body = verify_email(&app, &moved).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    let body = reset(&app, &stale, "a third long passphrase").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
}

/// A client whose requests come from `ip` (any 127.0.0.0/8 address works
/// on loopback), so tests can be many clients at once.
#[tokio::test]
async fn two_hundred_guesses_from_many_addresses_end_in_rate_limited_for_that_account_only() {
    // The per-client limit stays at its default: twenty addresses sending
    // ten guesses each never reach it, so only the account throttle acts.
    let app = spawn_app().await;
    signed_in(&app, "guessed_at", "guessed@example.org").await;
    signed_in(&app, "bystander", "bystander@example.org").await;

    let mut invalid = 0;
    let mut limited = 0;
    let mut last = Value::Null;
    for i in 0..200u32 {
        let ip = IpAddr::from([127, 0, 1, u8::try_from(i % 20 + 2).unwrap()]);
        let client = client_from(ip);
        // Both names of the account are guessed at.
        let name = if i % 2 == 0 {
            "guessed_at"
        } else {
            "guessed@example.org"
        };
        last = gql_via(
            &app,
            &client,
            None,
            SIGN_IN,
            json!({ "l": name, "p": format!("guess number {i}") }),
        )
        .await;
        match error_code(&last) {
            Some("INVALID_CREDENTIALS") => invalid += 1,
            Some("RATE_LIMITED") => limited += 1,
            other => panic!("unexpected {other:?}: {last}"),
        }
    }
    // Five free attempts per name, then nothing but waiting.
    assert_eq!((invalid, limited), (10, 190));
    assert!((1..=900).contains(&retry_after(&last)), "{last}");

    // The other account is untouched.
    let body = sign_in(&app, "bystander", PASSWORD).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");

    // The guesses all came from one /24 (127.0.1.0/24): the owner, from
    // another network (127.0.0.1), is not held up at all.
    let body = sign_in(&app, "guessed_at", PASSWORD).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
    // From the guessers' network the right password waits like a guess:
    // delayed, not shut out; after the wait it works, and that network's
    // count starts over.
    let guessers = client_from(IpAddr::from([127, 0, 1, 2]));
    let owner_there = |password: &'static str, name: &'static str| {
        gql_via(
            &app,
            &guessers,
            None,
            SIGN_IN,
            json!({ "l": name, "p": password }),
        )
    };
    let body = owner_there(PASSWORD, "guessed_at").await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"));
    app.clock.advance(chrono::Duration::seconds(
        i64::try_from(retry_after(&body)).unwrap(),
    ));
    let body = owner_there(PASSWORD, "guessed_at").await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
    let body = owner_there("wrong again", "guessed_at").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
    let body = owner_there("wrong again", "guessed@example.org").await;
    assert_eq!(
        error_code(&body),
        Some("INVALID_CREDENTIALS"),
        "the email name was cleared too"
    );
}

/// A sign-in as the client at `forwarded` behind the trusted proxy.
async fn login_via(app: &TestApp, forwarded: &str, name: &str, password: &str) -> Value {
    app.client
        .post(format!("{}/graphql", app.address))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "query": SIGN_IN, "variables": { "l": name, "p": password } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stranger_backed_off_on_one_network_does_not_keep_the_owner_out() {
    let app = spawn_app_with(|s| s.trusted_proxies = "127.0.0.1".into()).await;
    signed_in(&app, "kept_out", "kept.out@example.org").await;
    // A stranger guesses from one network until it is backed off, again
    // at every wait, for half of the counting window.
    let stranger = "198.51.100.7";
    for _ in 0..5 {
        let body = login_via(&app, stranger, "kept_out", "a wrong guess").await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    let started = app.clock.now();
    let mut backed_off = 0;
    while app.clock.now() < started + chrono::Duration::minutes(30) {
        let body = login_via(&app, stranger, "kept_out", "a wrong guess").await;
        match error_code(&body) {
            Some("RATE_LIMITED") => {
                backed_off += 1;
                let wait = i64::try_from(retry_after(&body)).unwrap();
                // The owner, from another network, signs in meanwhile.
                let owner = login_via(&app, "203.0.113.20", "kept_out", PASSWORD).await;
                assert!(owner["data"]["login"]["token"].is_string(), "{owner}");
                app.clock.advance(chrono::Duration::seconds(wait));
            }
            Some("INVALID_CREDENTIALS") => {}
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    assert!(backed_off > 5, "{backed_off}");
    // The owner's sign-ins did not clear the stranger's network: once it
    // guesses again, its whole /24 waits.
    let body = login_via(&app, stranger, "kept_out", "a wrong guess").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    let body = login_via(&app, "198.51.100.200", "kept_out", "another guess").await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    let body = login_via(&app, "198.51.100.200", "kept_out", PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_past_the_count() {
    let app = spawn_app().await;
    signed_in(&app, "raced_at", "raced@example.org").await;
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let client = client_from(IpAddr::from([127, 0, 2, i + 2]));
        let url = format!("{}/graphql", app.address);
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({ "query": SIGN_IN, "variables": {
                    "l": "raced_at", "p": format!("parallel guess {i}") } }))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut invalid = 0;
    let mut limited = 0;
    for task in tasks {
        let body = task.await.unwrap();
        match error_code(&body) {
            Some("INVALID_CREDENTIALS") => invalid += 1,
            Some("RATE_LIMITED") => limited += 1,
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    // Every attempt is counted before its password is checked.
    assert_eq!((invalid, limited), (5, 15));
}

#[tokio::test]
async fn the_back_off_doubles_and_stops_at_fifteen_minutes() {
    // All from 127.0.0.1: the per-client limit must not be what answers.
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    signed_in(&app, "patient_person", "patient@example.org").await;
    let wrong = || sign_in(&app, "patient@example.org", "not the password");
    for attempt in 1..=5 {
        let body = wrong().await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{attempt}");
    }
    let mut waits = Vec::new();
    for _ in 0..12 {
        let body = wrong().await;
        assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
        let wait = retry_after(&body);
        waits.push(wait);
        app.clock
            .advance(chrono::Duration::seconds(i64::try_from(wait).unwrap()));
        let body = wrong().await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
    // The owner is delayed by the cap at most, then gets in.
    let body = sign_in(&app, "patient@example.org", PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"));
    assert_eq!(retry_after(&body), 900, "{body}");
    app.clock.advance(chrono::Duration::seconds(900));
    let body = sign_in(&app, "patient@example.org", PASSWORD).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test]
async fn unknown_names_are_throttled_exactly_like_known_ones() {
    // All from 127.0.0.1: the per-client limit must not be what answers.
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    signed_in(&app, "real_person", "real@example.org").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        known.push(sign_in(&app, "real@example.org", "wrong guess here").await);
        unknown.push(sign_in(&app, "ghost@example.org", "wrong guess here").await);
    }
    assert_eq!(
        known, unknown,
        "identical answers, including retryAfterSeconds"
    );
    assert_eq!(error_code(&known[4]), Some("INVALID_CREDENTIALS"));
    assert_eq!(error_code(&known[5]), Some("RATE_LIMITED"));
    // Names that cannot be accounts at all are counted too.
    for i in 0..6 {
        let body = sign_in(&app, "not a name!", "wrong guess here").await;
        let expected = if i < 5 {
            "INVALID_CREDENTIALS"
        } else {
            "RATE_LIMITED"
        };
        assert_eq!(error_code(&body), Some(expected), "{i}: {body}");
    }
}

#[tokio::test]
async fn a_completed_reset_clears_the_sign_in_throttle() {
    // All from 127.0.0.1: the per-client limit must not be what answers.
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    signed_in(&app, "locked_out", "locked@example.org").await;
    for _ in 0..5 {
        sign_in(&app, "locked_out", "wrong guess here").await;
    }
    let body = sign_in(&app, "locked_out", PASSWORD).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"));
    let token = reset_token(&app, "locked@example.org").await;
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let body = sign_in(&app, "locked_out", NEW_PASSWORD).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test]
async fn an_alias_flood_counts_every_alias() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 5).await;
    // Twenty different names, so the per-name throttle stays out of it.
    let fields: Vec<String> = (1..=20)
        .map(|i| {
            format!(
                "a{i}: login(input: {{ login: \"flood{i}@example.org\", password: \"wrong guess {i}\" }}) {{ token }}"
            )
        })
        .collect();
    let query = format!("mutation {{ {} }}", fields.join(" "));
    let body = app.gql(&query, json!({})).await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20, "{body}");
    for error in errors {
        let alias = error["path"][0].as_str().unwrap();
        let n: u32 = alias.trim_start_matches('a').parse().unwrap();
        let code = error["extensions"]["code"].as_str().unwrap();
        if n <= 5 {
            assert_eq!(code, "INVALID_CREDENTIALS", "{alias}");
        } else {
            assert_eq!(code, "RATE_LIMITED", "{alias}");
            assert!(error["extensions"]["retryAfterSeconds"].as_u64().unwrap() >= 1);
        }
    }
    // The flood used up this client's logins: a fresh request is refused too.
    let body = sign_in(&app, "someone", "whatever it is").await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn every_limited_action_answers_rate_limited_past_its_limit() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1).await;
    let version = policy_version(&app).await;
    let input =
        |name: &str| json!({ "input": adult(&version, name, &format!("{name}@example.org")) });
    let first = app.gql(SIGNUP, input("first_comer")).await;
    assert_eq!(first["data"]["signup"]["accepted"], true, "{first}");
    let cases = [
        (SIGNUP, input("second_comer")),
        (REQUEST_RESET, json!({ "email": "first_comer@example.org" })),
        (REQUEST_RESET, json!({ "email": "first_comer@example.org" })),
        (
            RESET_PASSWORD,
            json!({ "token": "whatever", "password": NEW_PASSWORD }),
        ),
        (
            RESET_PASSWORD,
            json!({ "token": "whatever", "password": NEW_PASSWORD }),
        ),
        (SIGN_IN, json!({ "l": "first_comer", "p": PASSWORD })),
        (SIGN_IN, json!({ "l": "first_comer", "p": PASSWORD })),
    ];
    let mut codes = Vec::new();
    for (query, variables) in cases {
        let body = app.gql(query, variables).await;
        codes.push(error_code(&body).map(str::to_owned));
        if error_code(&body) == Some("RATE_LIMITED") {
            assert!(retry_after(&body) >= 1);
        }
    }
    let limited = Some("RATE_LIMITED".to_owned());
    assert_eq!(
        codes,
        vec![
            limited.clone(),
            None,
            limited.clone(),
            Some("INVALID_TOKEN".to_owned()),
            limited.clone(),
            None,
            limited,
        ]
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_through_trusted_proxies() {
    let query = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    let send = |app: &TestApp, forwarded: &'static str| {
        let request = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "query": query, "variables": { "e": "x@example.org" } }));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            error_code(&body).map(str::to_owned)
        }
    };

    // Not trusted: the header is ignored, every request is 127.0.0.1's.
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1).await;
    assert_eq!(send(&app, "198.51.100.1").await, None);
    assert_eq!(
        send(&app, "198.51.100.2").await.as_deref(),
        Some("RATE_LIMITED")
    );

    // Trusted: each forwarded client has its own bucket, and a forged
    // entry left of the real one changes nothing.
    let app = spawn_app_with(|s| {
        s.rate_limit_per_minute = 1;
        s.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    assert_eq!(send(&app, "198.51.100.1").await, None);
    assert_eq!(send(&app, "198.51.100.2").await, None);
    assert_eq!(
        send(&app, "203.0.113.9, 198.51.100.1").await.as_deref(),
        Some("RATE_LIMITED")
    );
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_told_when_asked_for() {
    const NOTICE: &str = "你的账号在新的设备或浏览器上登录";
    let browser_login = |app: &TestApp, agent: &'static str| {
        let request = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("user-agent", agent)
            .json(&json!({ "query": SIGN_IN, "variables": { "l": "traveller", "p": PASSWORD } }));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            assert!(body["data"]["login"]["token"].is_string(), "{body}");
        }
    };
    let notices = |app: &TestApp| {
        app.mail_to("traveller@example.org")
            .iter()
            .filter(|m| m.subject() == NOTICE)
            .count()
    };

    let app = spawn_app_with(|s| s.notify_new_signin = true).await;
    signup_and_verify(&app, "traveller", "traveller@example.org").await;
    // The first sign-in ever is no news to the owner.
    browser_login(&app, "Firefox/140 (first device)").await;
    browser_login(&app, "Firefox/140 (first device)").await;
    app.deliver_mail().await;
    assert_eq!(notices(&app), 0);

    browser_login(&app, "Chrome/150 <b>new</b>").await;
    app.deliver_mail().await;
    assert_eq!(notices(&app), 1);
    let mail = app.last_mail_to("traveller@example.org").unwrap();
    assert_eq!(mail.subject(), NOTICE);
    assert!(mail.decoded_text().contains("Chrome/150 <b>new</b>"));
    assert!(!mail.decoded_html().unwrap().contains("<b>new</b>"));
    assert!(mail.decoded_text().contains("traveller"));

    browser_login(&app, "Chrome/150 <b>new</b>").await;
    browser_login(&app, "Firefox/140 (first device)").await;
    app.deliver_mail().await;
    assert_eq!(notices(&app), 1, "known agents are not news");

    // Off by default.
    let app = spawn_app().await;
    signup_and_verify(&app, "traveller", "traveller@example.org").await;
    browser_login(&app, "Chrome/150").await;
    browser_login(&app, "Safari/20").await;
    app.deliver_mail().await;
    assert_eq!(notices(&app), 0);
}

#[tokio::test]
async fn spent_throttle_rows_are_pruned() {
    use sea_orm::PaginatorTrait;
    let app = spawn_app().await;
    for _ in 0..6 {
        sign_in(&app, "someone@example.org", "wrong guess here").await;
    }
    sign_in(&app, "somebody_else", "wrong guess here").await;
    let rows = || entity::login_throttle::Entity::find().count(app.state.db());
    // Per name, and per name and network.
    assert_eq!(rows().await.unwrap(), 4);
    // No name is stored, only blind indexes.
    assert_no_plaintext(&app, &["someone@example.org", "somebody_else"]).await;

    app.clock.advance(chrono::Duration::minutes(59));
    let pruned = custos::ratelimit::login::prune(app.state.db(), app.state.clock().now())
        .await
        .unwrap();
    assert_eq!(pruned, 0, "windows still open");
    app.clock.advance(chrono::Duration::minutes(1));
    let pruned = custos::ratelimit::login::prune(app.state.db(), app.state.clock().now())
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    assert_eq!(rows().await.unwrap(), 0);
    // A fresh start for the name.
    let body = sign_in(&app, "someone@example.org", "wrong guess here").await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
}
