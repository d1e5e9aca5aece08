//! Accounts through HTTP: signup, verification, login, sessions, profile
//! changes — each success and each failure code.

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, SIGNUP, TestApp, adult, assert_no_plaintext, error_code, follow_verify_link,
    last_link, link_token, login, policy_version, reset, reset_token, signed_in, signup,
    signup_with, spawn_app, spawn_app_with, verify_email,
};

const LOGIN: &str = "mutation($login: String!, $password: String!) {
  login(input: { login: $login, password: $password }) {
    token expiresAt account { id username email emailVerified role guardianConsent needsPolicyAcceptance consents { purpose granted } }
  }
}";

#[tokio::test]
async fn signup_verify_and_login_by_username_or_email() {
    let app = spawn_app().await;
    let body = signup(&app, "Zhang_San", "zhang.san@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");

    // Unverified accounts may sign in.
    let body = app
        .gql(LOGIN, json!({ "login": "zhangsan", "password": PASSWORD }))
        .await;
    let account = &body["data"]["login"]["account"];
    assert_eq!(account["username"], "Zhang_San");
    assert_eq!(account["email"], "zhang.san@example.org");
    assert_eq!(account["emailVerified"], false);
    assert_eq!(account["role"], "USER");
    assert_eq!(account["guardianConsent"], "NOT_NEEDED");
    assert_eq!(account["needsPolicyAcceptance"], false);
    let consents = account["consents"].as_array().unwrap();
    let account_purpose = consents.iter().find(|c| c["purpose"] == "account").unwrap();
    assert_eq!(account_purpose["granted"], true);
    let updates = consents
        .iter()
        .find(|c| c["purpose"] == "product_updates")
        .unwrap();
    assert_eq!(
        updates["granted"], false,
        "optional purposes are never pre-ticked"
    );

    app.deliver_mail().await;
    let mail = app.last_mail_to("zhang.san@example.org").unwrap();
    let token = link_token(&mail, "/verify-email").unwrap();
    let body = verify_email(&app, &token).await;
    assert_eq!(body["data"]["verifyEmail"], true);
    // The same link again (a page that calls twice) says the same.
    let body = verify_email(&app, &token).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");

    let token = login(&app, "ZHANG.SAN@example.org", PASSWORD).await;
    let me = app
        .gql_with_token(Some(&token), "{ me { username emailVerified } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], true);
    assert_eq!(me["data"]["me"]["username"], "Zhang_San");
}

#[tokio::test]
async fn signup_grants_only_the_purposes_asked_for() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let mut input = adult(&version, "grant_tester", "grant@example.org");
    input["grantPurposes"] = json!(["product_updates"]);
    let body = signup_with(&app, input).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let token = login(&app, "grant_tester", PASSWORD).await;
    let body = app
        .gql_with_token(Some(&token), "{ me { consents { purpose granted } } myConsentHistory { nodes { purpose granted source policyVersion } } }", json!({}))
        .await;
    let consents = body["data"]["me"]["consents"].as_array().unwrap();
    let granted: Vec<&str> = consents
        .iter()
        .filter(|c| c["granted"] == true)
        .map(|c| c["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(granted, vec!["account", "product_updates"]);
    let history = body["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap();
    assert!(
        history
            .iter()
            .all(|e| e["source"] == "SIGNUP" && e["policyVersion"] == version.as_str())
    );
}

#[tokio::test]
async fn signup_refusals_carry_contract_codes() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (
            adult(&version, "ab", "a@example.org"),
            "BAD_USER_INPUT",
            Some("username"),
        ),
        (
            adult(&version, "bad name!", "a@example.org"),
            "BAD_USER_INPUT",
            Some("username"),
        ),
        (
            adult(&version, "admin", "a@example.org"),
            "USERNAME_NOT_ALLOWED",
            Some("username"),
        ),
        (
            adult(&version, "Adm1n_official", "a@example.org"),
            "USERNAME_NOT_ALLOWED",
            Some("username"),
        ),
        (
            adult(&version, "sha_bi_傻逼", "a@example.org"),
            "USERNAME_NOT_ALLOWED",
            Some("username"),
        ),
        (
            adult(&version, "good_name", "not-an-email"),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            adult("1999-01-01", "good_name", "a@example.org"),
            "POLICY_VERSION_MISMATCH",
            Some("acceptPolicyVersion"),
        ),
    ];
    for (input, code, field) in cases {
        let body = signup_with(&app, input.clone()).await;
        assert_eq!(error_code(&body), Some(code), "{input} -> {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"].as_str(),
            field,
            "{body}"
        );
    }

    let mut weak = adult(&version, "good_name", "a@example.org");
    weak["password"] = json!("short");
    let body = signup_with(&app, weak).await;
    assert_eq!(error_code(&body), Some("WEAK_PASSWORD"));
    assert_eq!(body["errors"][0]["extensions"]["reason"], "TOO_SHORT");

    let mut common = adult(&version, "good_name", "a@example.org");
    common["password"] = json!("password123");
    let body = signup_with(&app, common).await;
    assert_eq!(error_code(&body), Some("WEAK_PASSWORD"), "{body}");

    let mut same = adult(&version, "good_name", "a@example.org");
    same["password"] = json!("a@example.org");
    let body = signup_with(&app, same).await;
    assert_eq!(error_code(&body), Some("WEAK_PASSWORD"));

    let mut unknown = adult(&version, "good_name", "a@example.org");
    unknown["grantPurposes"] = json!(["no_such_purpose"]);
    let body = signup_with(&app, unknown).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "grantPurposes");

    let mut minor = adult(&version, "young_one", "young@example.org");
    minor["age"] = json!("MINOR");
    let body = signup_with(&app, minor).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "guardianEmail");

    // Nothing was stored by any refused signup.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let accounts = entity::account::Entity::find()
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(accounts, 0);
}

#[tokio::test]
async fn taken_email_and_new_email_get_byte_identical_answers() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let first = signup(&app, "first_person", "owner@example.org").await;
    assert_eq!(first["data"]["signup"]["accepted"], true, "{first}");
    app.deliver_mail().await;
    let before = app.mail_to("owner@example.org").len();

    let raw = |input: Value| {
        let client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        async move {
            client
                .post(url)
                .json(&json!({ "query": SIGNUP, "variables": { "input": input } }))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    let taken = raw(adult(&version, "second_person", "Owner@Example.org")).await;
    let fresh = raw(adult(&version, "third_person", "fresh@example.org")).await;
    assert_eq!(
        taken, fresh,
        "the answer must not reveal which address exists"
    );

    app.deliver_mail().await;
    let owner_mail = app.mail_to("owner@example.org");
    assert_eq!(owner_mail.len(), before + 1, "the owner is told");
    assert!(link_token(owner_mail.last().unwrap(), "/verify-email").is_none());
    // No second account for the taken address.
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(
        entity::account::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn username_taken_is_said() {
    let app = spawn_app().await;
    signup(&app, "popular", "one@example.org").await;
    let body = signup(&app, "Popular", "two@example.org").await;
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"));
    let body = signup(&app, "ｐｏｐｕｌａｒ", "two@example.org").await;
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"));
}

/// Sends every sign-up of `inputs` at once, each from an address of its
/// own (one client sending twenty hashes at once would be past its share
/// of the hashing queue); their answers, none a 5xx.
async fn signups_at_once(app: &TestApp, inputs: Vec<Value>) -> Vec<Value> {
    let mut tasks = Vec::new();
    for (i, input) in (0u8..).zip(inputs) {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 4, i + 2]))
            .build()
            .unwrap();
        let url = format!("{}/graphql", app.address);
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({ "query": SIGNUP, "variables": { "input": input } }))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "no 5xx: {}",
                response.status()
            );
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn twenty_concurrent_signups_with_one_username_make_one_account() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let inputs = (0..20)
        .map(|i| adult(&version, "contested", &format!("racer{i}@example.org")))
        .collect();
    let mut accepted = 0;
    let mut taken = 0;
    for body in signups_at_once(&app, inputs).await {
        if body["data"]["signup"]["accepted"] == true {
            accepted += 1;
        } else {
            assert_eq!(error_code(&body), Some("USERNAME_TAKEN"), "{body}");
            taken += 1;
        }
    }
    assert_eq!((accepted, taken), (1, 19));
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(
        entity::account::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        1
    );
}

/// Twenty sign-ups with one address at once, each under a name of its own:
/// one account, and every other caller answered as a registered address
/// is (accepted, the owner told), whether its look-up found the account
/// or its insert met it.
#[tokio::test]
async fn twenty_concurrent_signups_with_one_address_make_one_account_and_tell_its_owner() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let inputs = (0..20)
        .map(|i| adult(&version, &format!("claimant{i}"), "shared@example.org"))
        .collect();
    for body in signups_at_once(&app, inputs).await {
        assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    }
    let db = app.state.db();
    assert_eq!(entity::account::Entity::find().count(db).await.unwrap(), 1);
    let queued = |kind: &'static str| {
        entity::outbox::Entity::find()
            .filter(entity::outbox::Column::Kind.eq(kind))
            .count(db)
    };
    assert_eq!(queued("verify_email").await.unwrap(), 1);
    assert_eq!(
        queued("signup_attempt_on_existing_account").await.unwrap(),
        19
    );
}

#[tokio::test]
async fn login_failures_are_all_invalid_credentials() {
    let app = spawn_app().await;
    signup(&app, "login_tester", "login@example.org").await;
    for (login_name, password) in [
        ("login_tester", "wrong password here"),
        ("nobody_here", PASSWORD),
        ("nobody@example.org", PASSWORD),
        ("x", PASSWORD),
    ] {
        let body = app
            .gql(LOGIN, json!({ "login": login_name, "password": password }))
            .await;
        assert_eq!(
            error_code(&body),
            Some("INVALID_CREDENTIALS"),
            "{login_name}"
        );
    }
}

#[tokio::test]
async fn verification_tokens_expire_and_resend_voids_the_old_one() {
    let app = spawn_app().await;
    signup(&app, "slow_reader", "slow@example.org").await;
    app.deliver_mail().await;
    let first = last_link(&app, "slow@example.org", "/verify-email");
    let token = login(&app, "slow_reader", PASSWORD).await;

    let body = app
        .gql_with_token(
            Some(&token),
            "mutation { resendVerificationEmail }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["resendVerificationEmail"], true);
    app.deliver_mail().await;
    let second = last_link(&app, "slow@example.org", "/verify-email");
    assert_ne!(first, second);
    let body = verify_email(&app, &first).await;
    assert_eq!(
        error_code(&body),
        Some("INVALID_TOKEN"),
        "the old link is void"
    );

    app.clock.advance(chrono::Duration::hours(25));
    let body = verify_email(&app, &second).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "expired");

    let body = verify_email(&app, "not-a-token").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"));
}

#[tokio::test]
async fn resend_is_limited_silently() {
    let app = spawn_app().await;
    signup(&app, "impatient", "impatient@example.org").await;
    let token = login(&app, "impatient", PASSWORD).await;
    for _ in 0..5 {
        let body = app
            .gql_with_token(
                Some(&token),
                "mutation { resendVerificationEmail }",
                json!({}),
            )
            .await;
        assert_eq!(body["data"]["resendVerificationEmail"], true);
    }
    app.deliver_mail().await;
    // One at signup, then resends up to three an hour in all.
    assert_eq!(app.mail_to("impatient@example.org").len(), 3);
}

#[tokio::test]
async fn sessions_can_be_listed_revoked_and_logged_out() {
    let app = spawn_app().await;
    let first = signed_in(&app, "many_devices", "devices@example.org").await;
    let second = login(&app, "many_devices", PASSWORD).await;
    assert_ne!(first, second, "a new token at every login");

    let body = app
        .gql_with_token(Some(&first), "{ mySessions { id current } }", json!({}))
        .await;
    let sessions = body["data"]["mySessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].clone();

    let body = app
        .gql_with_token(
            Some(&first),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": other }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"], true);
    let me = app
        .gql_with_token(Some(&second), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "revoked session is anonymous");

    // Someone else's session id, or a malformed one, is NOT_FOUND.
    let stranger = signed_in(&app, "stranger_x", "stranger@example.org").await;
    let body = app
        .gql_with_token(Some(&first), "{ mySessions { id } }", json!({}))
        .await;
    let mine = body["data"]["mySessions"][0]["id"].clone();
    let body = app
        .gql_with_token(
            Some(&stranger),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": mine }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    let body = app
        .gql_with_token(
            Some(&stranger),
            "mutation { revokeSession(id: \"nope\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));

    let body = app
        .gql_with_token(Some(&first), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true);
    let me = app
        .gql_with_token(Some(&first), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null());
    // Logging out again with the ended session: done already, and said so.
    let body = app
        .gql_with_token(Some(&first), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_eq!(body["extensions"]["session"], "EXPIRED", "{body}");
    // Without any session there is nothing to log out of.
    let body = app.gql("mutation { logout }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    let body = app.gql("{ mySessions { id } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn sessions_end_after_idle_time_and_lifetime() {
    let app = spawn_app().await;
    let token = signed_in(&app, "sleepy_user", "sleepy@example.org").await;
    app.clock.advance(chrono::Duration::minutes(29));
    let me = app
        .gql_with_token(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_object(), "still live: {me}");
    app.clock.advance(chrono::Duration::minutes(31));
    let me = app
        .gql_with_token(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "idle too long");

    let token = login(&app, "sleepy_user", PASSWORD).await;
    for _ in 0..25 {
        app.clock.advance(chrono::Duration::minutes(29));
        let _ = app
            .gql_with_token(Some(&token), "{ me { id } }", json!({}))
            .await;
    }
    let me = app
        .gql_with_token(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "past the absolute lifetime");
}

#[tokio::test]
async fn login_sets_an_http_only_cookie_that_authenticates() {
    let app = spawn_app().await;
    signed_in(&app, "cookie_user", "cookie@example.org").await;
    let response = app
        .browser
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": LOGIN, "variables": { "login": "cookie_user", "password": PASSWORD } }))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("custos_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    // The browser keeps cookies: no bearer token needed now.
    let me: Value = app
        .browser
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ me { username } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["me"]["username"], "cookie_user");
}

#[tokio::test]
async fn change_password_ends_other_sessions_and_mails_a_notice() {
    let app = spawn_app().await;
    let current = signed_in(&app, "pw_changer", "pw@example.org").await;
    let other = login(&app, "pw_changer", PASSWORD).await;
    let mutation = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

    let body = app
        .gql_with_token(
            Some(&current),
            mutation,
            json!({ "c": "wrong one entirely", "n": "another fine passphrase" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
    let body = app
        .gql_with_token(
            Some(&current),
            mutation,
            json!({ "c": PASSWORD, "n": "short" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("WEAK_PASSWORD"));
    let body = app
        .gql(
            mutation,
            json!({ "c": PASSWORD, "n": "another fine passphrase" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));

    let body = app
        .gql_with_token(
            Some(&current),
            mutation,
            json!({ "c": PASSWORD, "n": "another fine passphrase" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let me = app
        .gql_with_token(Some(&other), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"].is_null(), "other sessions ended");
    let me = app
        .gql_with_token(Some(&current), "{ me { id } }", json!({}))
        .await;
    assert!(
        me["data"]["me"].is_object(),
        "the caller's own sign-in stays"
    );

    login(&app, "pw_changer", "another fine passphrase").await;
    let body = app
        .gql(
            LOGIN,
            json!({ "login": "pw_changer", "password": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));

    app.deliver_mail().await;
    let notice = app.last_mail_to("pw@example.org").unwrap();
    assert!(link_token(&notice, "/verify-email").is_none());
    assert!(!notice.decoded_text().contains("another fine passphrase"));
}

#[tokio::test]
async fn change_username_applies_policy_and_uniqueness() {
    let app = spawn_app().await;
    let token = signed_in(&app, "old_name", "rename@example.org").await;
    signup(&app, "occupied", "occupied@example.org").await;
    let mutation = "mutation($u: String!) { changeUsername(username: $u) { username } }";
    let body = app
        .gql_with_token(Some(&token), mutation, json!({ "u": "New.Name" }))
        .await;
    assert_eq!(body["data"]["changeUsername"]["username"], "New.Name");
    let body = app
        .gql_with_token(Some(&token), mutation, json!({ "u": "OCCUPIED" }))
        .await;
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"));
    let body = app
        .gql_with_token(Some(&token), mutation, json!({ "u": "support_team" }))
        .await;
    assert_eq!(error_code(&body), Some("USERNAME_NOT_ALLOWED"));
    let body = app
        .gql_with_token(Some(&token), mutation, json!({ "u": "x" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    let body = app.gql(mutation, json!({ "u": "anonymous_try" })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    login(&app, "new_name", PASSWORD).await;
}

#[tokio::test]
async fn change_email_needs_the_password_and_the_new_address_proven() {
    let app = spawn_app().await;
    let token = signed_in(&app, "mover", "old.home@example.org").await;
    let mutation = "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }";

    let body = app
        .gql_with_token(
            Some(&token),
            mutation,
            json!({ "e": "new.home@example.org", "p": "not my password" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
    let body = app
        .gql_with_token(
            Some(&token),
            mutation,
            json!({ "e": "nonsense", "p": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "newEmail");
    let body = app
        .gql_with_token(
            Some(&token),
            mutation,
            json!({ "e": "OLD.home@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));

    let body = app
        .gql_with_token(
            Some(&token),
            mutation,
            json!({ "e": "new.home@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    // Nothing changes until the new address is proven.
    let me = app
        .gql_with_token(Some(&token), "{ me { email } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["email"], "old.home@example.org");

    app.deliver_mail().await;
    assert!(
        app.last_mail_to("old.home@example.org").is_some(),
        "notice to the old address"
    );
    follow_verify_link(&app, "new.home@example.org").await;
    let me = app
        .gql_with_token(Some(&token), "{ me { email emailVerified } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["email"], "new.home@example.org");
    login(&app, "new.home@example.org", PASSWORD).await;
    let body = app
        .gql(
            LOGIN,
            json!({ "login": "old.home@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"));
}

const CHANGE_EMAIL: &str =
    "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }";
const CHANGE_PASSWORD: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
/// Subject of the notice an email change sends to the old address.
const EMAIL_CHANGE_NOTICE: &str = "你的账号申请了更换邮箱地址";
/// Subject of the notice a registered address gets instead of a link.
const REGISTERED_ADDRESS_NOTICE: &str = "有人想把另一个账号的邮箱改为你的地址";

fn with_subject(app: &TestApp, address: &str, subject: &str) -> Vec<String> {
    app.mail_to(address)
        .iter()
        .filter(|m| m.subject() == subject)
        .map(|m| m.decoded_text())
        .collect()
}

/// Whoever knew the old password may have started moving the account to
/// their own address, or asked for a reset link: changing the password,
/// as the notices advise, ends both.
#[tokio::test]
async fn a_password_change_voids_pending_email_change_and_reset_links() {
    let app = spawn_app().await;
    let session = signed_in(&app, "wary_person", "wary@example.org").await;
    let body = app
        .gql_with_token(
            Some(&session),
            CHANGE_EMAIL,
            json!({ "e": "intruder@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let move_link = last_link(&app, "intruder@example.org", "/verify-email");
    let reset_link = reset_token(&app, "wary@example.org").await;

    let body = app
        .gql_with_token(
            Some(&session),
            CHANGE_PASSWORD,
            json!({ "c": PASSWORD, "n": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");

    let body = verify_email(&app, &move_link).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
    let body = reset(&app, &reset_link, "an intruder's passphrase").await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
    let me = app
        .gql_with_token(Some(&session), "{ me { email } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["email"], "wary@example.org");
    login(&app, "wary_person", "a brand new passphrase").await;
}

/// An email change to a registered address looks, to the caller and in
/// the old address's mail, exactly like one to a free address: only the
/// new address's owner hears, without a link.
#[tokio::test]
async fn an_email_change_to_a_registered_address_looks_like_any_other() {
    let app = spawn_app().await;
    let token = signed_in(&app, "prober", "prober@example.org").await;
    signed_in(&app, "resident", "resident@example.org").await;
    app.deliver_mail().await;
    let resident_mail = app.mail_to("resident@example.org").len();

    let to_registered = app
        .gql_with_token(
            Some(&token),
            CHANGE_EMAIL,
            json!({ "e": "Resident@Example.org", "p": PASSWORD }),
        )
        .await;
    let to_free = app
        .gql_with_token(
            Some(&token),
            CHANGE_EMAIL,
            json!({ "e": "vacant@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(to_registered, to_free);
    assert_eq!(to_free, json!({ "data": { "changeEmail": true } }));

    app.deliver_mail().await;
    // The old address heard of both, in the same words.
    let notices = with_subject(&app, "prober@example.org", EMAIL_CHANGE_NOTICE);
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(notices[0], notices[1]);
    // The registered address was told, with no link and no name.
    let told = app.mail_to("resident@example.org");
    assert_eq!(told.len(), resident_mail + 1);
    let notice = told.last().unwrap();
    assert_eq!(notice.subject(), REGISTERED_ADDRESS_NOTICE);
    assert!(link_token(notice, "/verify-email").is_none());
    assert!(!notice.decoded_text().contains("prober"));
    // The free address got its link, which works.
    follow_verify_link(&app, "vacant@example.org").await;
    let me = app
        .gql_with_token(Some(&token), "{ me { email } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["email"], "vacant@example.org");
}

/// The hourly cap counts every email change, whatever its target: probing
/// registered addresses spends it as links do.
#[tokio::test]
async fn the_email_change_cap_counts_attempts_not_links() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 1000).await;
    let token = signed_in(&app, "busy_mover", "busy@example.org").await;
    signed_in(&app, "occupant", "occupant@example.org").await;
    app.deliver_mail().await;
    for _ in 0..3 {
        let body = app
            .gql_with_token(
                Some(&token),
                CHANGE_EMAIL,
                json!({ "e": "occupant@example.org", "p": PASSWORD }),
            )
            .await;
        assert_eq!(body["data"]["changeEmail"], true, "{body}");
    }
    // Past the cap: the same answer, and nothing sent anywhere.
    for target in ["occupant@example.org", "elsewhere@example.org"] {
        let body = app
            .gql_with_token(
                Some(&token),
                CHANGE_EMAIL,
                json!({ "e": target, "p": PASSWORD }),
            )
            .await;
        assert_eq!(body, json!({ "data": { "changeEmail": true } }));
    }
    app.deliver_mail().await;
    assert!(app.mail_to("elsewhere@example.org").is_empty());
    assert_eq!(
        with_subject(&app, "occupant@example.org", REGISTERED_ADDRESS_NOTICE).len(),
        3
    );
    assert_eq!(
        with_subject(&app, "busy@example.org", EMAIL_CHANGE_NOTICE).len(),
        3
    );

    // A new hour, a new allowance (and a new session: the old one idled out).
    app.clock.advance(chrono::Duration::minutes(61));
    let token = login(&app, "busy_mover", PASSWORD).await;
    let body = app
        .gql_with_token(
            Some(&token),
            CHANGE_EMAIL,
            json!({ "e": "elsewhere@example.org", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["changeEmail"], true, "{body}");
    app.deliver_mail().await;
    let mail = app.last_mail_to("elsewhere@example.org").unwrap();
    assert!(link_token(&mail, "/verify-email").is_some());
}

#[tokio::test]
async fn minors_wait_for_their_guardian() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let mut input = adult(&version, "young_reader", "young@example.org");
    input["age"] = json!("MINOR");
    input["guardianEmail"] = json!("parent@example.org");
    let body = signup_with(&app, input).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    app.deliver_mail().await;
    assert!(
        link_token(
            &app.last_mail_to("parent@example.org").unwrap(),
            "/guardian-consent"
        )
        .is_some()
    );

    let token = login(&app, "young_reader", PASSWORD).await;
    let me = app
        .gql_with_token(Some(&token), "{ me { guardianConsent } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["guardianConsent"], "PENDING");
    let body = app
        .gql_with_token(Some(&token), "{ mySessions { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), Some("GUARDIAN_CONSENT_PENDING"));
}

#[tokio::test]
async fn database_holds_no_plaintext_after_signup() {
    let app = spawn_app().await;
    signed_in(&app, "hidden_person", "hidden.person@example.org").await;
    assert_no_plaintext(&app, &["hidden_person", "hidden.person", "hidden"]).await;
}

#[tokio::test]
async fn two_chinese_characters_make_a_name_and_two_character_insults_are_refused() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    for (name, email) in [
        ("王芳", "wang.fang@example.org"),
        ("小雨", "xiao.yu@example.org"),
    ] {
        let body = signup_with(&app, adult(&version, name, email)).await;
        assert_eq!(body["data"]["signup"]["accepted"], true, "{name}: {body}");
    }
    app.deliver_mail().await;
    let token = last_link(&app, "wang.fang@example.org", "/verify-email");
    verify_email(&app, &token).await;
    let body = app
        .gql(LOGIN, json!({ "login": "王芳", "password": PASSWORD }))
        .await;
    assert_eq!(
        body["data"]["login"]["account"]["username"], "王芳",
        "{body}"
    );

    // What the length rule used to stop, the word lists stop now; hate
    // terms too, in both languages.
    for name in [
        "傻逼",
        "垃圾",
        "笨蛋",
        "王八",
        "卧槽",
        "操b",
        "纳粹",
        "nazi_1488",
    ] {
        let body = signup_with(&app, adult(&version, name, "someone@example.org")).await;
        assert_eq!(
            error_code(&body),
            Some("USERNAME_NOT_ALLOWED"),
            "{name}: {body}"
        );
    }
    // One Chinese character is still too short.
    let body = signup_with(&app, adult(&version, "王", "someone@example.org")).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    // A trailing number is a number.
    let body = signup_with(&app, adult(&version, "user_2455", "user.2455@example.org")).await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
}
