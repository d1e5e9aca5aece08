//! Single-use links used twice at once: exactly one use goes through, on
//! SQLite and PostgreSQL alike, and a confirmation racing a cancellation
//! leaves the request and the account agreeing.

use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, SIGN_IN, TestApp, VERIFY_EMAIL, error_code, last_link, link_token, request_deletion,
    signup, signup_minor, spawn_app,
};

const CONFIRM: &str = "mutation($t: String!) { confirmAccountDeletion(token: $t) { status } }";
const CANCEL: &str = "mutation($t: String!) { cancelAccountDeletion(token: $t) { status } }";
const GUARDIAN: &str =
    "mutation($t: String!, $g: Boolean!) { confirmGuardianConsent(token: $t, granted: $g) }";

/// Rounds per test: each is a fresh pair of uses at once, so a race that
/// only sometimes interleaves is still met.
const ROUNDS: usize = 4;

/// How many of `answers` succeeded, asserting the others are
/// `INVALID_TOKEN` (never an internal error).
fn successes(answers: &[&Value]) -> usize {
    answers
        .iter()
        .filter(|body| {
            if body["errors"].is_null() {
                return true;
            }
            assert_eq!(error_code(body), Some("INVALID_TOKEN"), "{body}");
            false
        })
        .count()
}

#[tokio::test]
async fn a_verification_link_used_twice_at_once_verifies_once() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let email = format!("twice{round}@example.org");
        signup(&app, &format!("twice_{round}"), &email).await;
        app.deliver_mail().await;
        let token = last_link(&app, &email, "/verify-email");
        let vars = json!({ "t": token });
        let (a, b) = tokio::join!(
            app.gql(VERIFY_EMAIL, vars.clone()),
            app.gql(VERIFY_EMAIL, vars.clone())
        );
        // A link that verified the address answers true again; neither
        // use fails, and the token is spent once.
        assert_eq!(successes(&[&a, &b]), 2, "round {round}: {a} {b}");
        assert_eq!(a["data"]["verifyEmail"], true);
        assert_eq!(b["data"]["verifyEmail"], true);
    }
    let used = entity::account_token::Entity::find()
        .all(app.state.db())
        .await
        .unwrap()
        .into_iter()
        .filter(|token| token.purpose == "VERIFY_EMAIL" && token.used_at.is_some())
        .count();
    assert_eq!(used, ROUNDS);
}

/// Signs up a minor; the guardian's consent token.
async fn guardian_token(app: &TestApp, name: &str, guardian: &str) -> String {
    let body = signup_minor(app, name, &format!("{name}@example.org"), guardian).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    last_link(app, guardian, "/guardian-consent")
}

#[tokio::test]
async fn a_guardian_answering_twice_at_once_is_heard_once() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let name = format!("kid_{round}");
        let token = guardian_token(&app, &name, &format!("parent{round}@example.org")).await;
        let (grant, refuse) = tokio::join!(
            app.gql(GUARDIAN, json!({ "t": token, "g": true })),
            app.gql(GUARDIAN, json!({ "t": token, "g": false })),
        );
        assert_eq!(
            successes(&[&grant, &refuse]),
            1,
            "round {round}: {grant} {refuse}"
        );
        // The account is in the state the one answer heard puts it in.
        let login = app
            .gql(
                "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { account { guardianConsent } } }",
                json!({ "l": name, "p": PASSWORD }),
            )
            .await;
        if grant["errors"].is_null() {
            assert_eq!(
                login["data"]["login"]["account"]["guardianConsent"], "GRANTED",
                "{login}"
            );
        } else {
            assert_eq!(
                error_code(&login),
                Some("ACCOUNT_DELETION_SCHEDULED"),
                "{login}"
            );
        }
    }
}

/// Signs up an account and asks for its deletion; the mailed confirm and
/// cancel tokens.
async fn new_account_deletion_tokens(app: &TestApp, name: &str) -> (String, String) {
    let email = format!("{name}@example.org");
    signup(app, name, &email).await;
    let body = request_deletion(app, name, &email).await;
    assert_eq!(body["data"]["requestAccountDeletion"], true, "{body}");
    app.deliver_mail().await;
    // The verification mail may arrive after it.
    let mail = app
        .mail_to(&email)
        .into_iter()
        .find(|mail| link_token(mail, "/confirm-deletion").is_some())
        .unwrap();
    (
        link_token(&mail, "/confirm-deletion").unwrap(),
        link_token(&mail, "/cancel-deletion").unwrap(),
    )
}

#[tokio::test]
async fn a_deletion_confirmed_twice_at_once_is_scheduled_once() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let name = format!("leaving_{round}");
        let (confirm, _) = new_account_deletion_tokens(&app, &name).await;
        let vars = json!({ "t": confirm });
        let (a, b) = tokio::join!(
            app.gql(CONFIRM, vars.clone()),
            app.gql(CONFIRM, vars.clone())
        );
        assert_eq!(successes(&[&a, &b]), 1, "round {round}: {a} {b}");
        app.deliver_mail().await;
        let scheduled = app
            .mail_to(&format!("{name}@example.org"))
            .iter()
            .filter(|mail| link_token(mail, "/cancel-deletion").is_some())
            .count();
        assert_eq!(scheduled, 2, "the request's mail and one notice");
    }
}

#[tokio::test]
async fn a_confirmation_racing_a_cancellation_leaves_one_outcome() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let name = format!("undecided_{round}");
        let (confirm, cancel) = new_account_deletion_tokens(&app, &name).await;
        let (confirmed, cancelled) = tokio::join!(
            app.gql(CONFIRM, json!({ "t": confirm })),
            app.gql(CANCEL, json!({ "t": cancel })),
        );
        assert_eq!(
            successes(&[&confirmed, &cancelled]),
            1,
            "round {round}: {confirmed} {cancelled}"
        );
        // The request and the account agree with the one that went through.
        let requests = entity::deletion_request::Entity::find()
            .all(app.state.db())
            .await
            .unwrap();
        let login = app.gql(SIGN_IN, json!({ "l": name, "p": PASSWORD })).await;
        let accounts = entity::account::Entity::find()
            .all(app.state.db())
            .await
            .unwrap();
        let statuses: Vec<&str> = requests.iter().map(|r| r.status.as_str()).collect();
        if confirmed["errors"].is_null() {
            assert!(statuses.contains(&"SCHEDULED"), "{statuses:?}");
            assert_eq!(error_code(&login), Some("ACCOUNT_DELETION_SCHEDULED"));
        } else {
            assert!(login["data"]["login"]["token"].is_string(), "{login}");
        }
        // Never a cancelled request with its account still stopped, nor a
        // scheduled one whose account runs.
        for request in &requests {
            let account = accounts
                .iter()
                .find(|a| a.id == request.account_id)
                .unwrap();
            let stopped = account.status == "DELETION_SCHEDULED";
            assert_eq!(stopped, request.status == "SCHEDULED", "{statuses:?}");
        }
    }
}
