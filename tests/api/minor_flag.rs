//! Staff flags on minors without guardian consent: never on staff, with a
//! reason, processing stopped at once, erasure only after the window, and
//! an admin's lift of a mistaken flag.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, admin_token, audit_entries, consented_minor, error_code, login, my_id,
    sign_in, signed_in, spawn_app, staff,
};

const FLAG: &str = "mutation($a: ID!, $r: String) { flagMinorWithoutGuardianConsent(accountId: $a, reason: $r) { id status purgeAfter } }";
/// The call as the contract shows it, without a reason.
const FLAG_BARE: &str =
    "mutation($a: ID!) { flagMinorWithoutGuardianConsent(accountId: $a) { status } }";
const LIFT: &str =
    "mutation($a: ID!, $r: String!) { liftMinorFlag(accountId: $a, reason: $r) { id status } }";

fn field(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["field"].as_str()
}

/// Audit entries of `action`, newest first, as the admin reads them.
async fn audit_of(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    audit_entries(app, admin)
        .await
        .into_iter()
        .filter(|entry| entry["action"] == action)
        .collect()
}

#[tokio::test]
async fn staff_accounts_are_never_flagged_and_a_reason_is_required() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    let (support, support_id) = staff(&app, &admin, "agent_one", "SUPPORT").await;
    let (_, other_support_id) = staff(&app, &admin, "agent_two", "SUPPORT").await;
    let person = signed_in(&app, "plain_person", "plain@example.org").await;
    let person_id = my_id(&app, &person).await;

    for (caller, target) in [
        (&support, &admin_id),
        (&support, &other_support_id),
        (&support, &support_id),
        (&admin, &support_id),
        (&admin, &admin_id),
    ] {
        let body = app
            .gql_with_token(
                Some(caller),
                FLAG,
                json!({ "a": target, "r": "looks young" }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(field(&body), Some("accountId"), "{body}");
    }
    // The staff are untouched: signed in and able to sign in.
    let body = app
        .gql_with_token(Some(&admin), "{ me { role } }", json!({}))
        .await;
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body}");
    assert!(sign_in(&app, "agent_two", PASSWORD).await["data"]["login"]["token"].is_string());

    // No reason, a blank one, or one too long: refused, nothing changes.
    let body = app
        .gql_with_token(Some(&support), FLAG_BARE, json!({ "a": person_id }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(field(&body), Some("reason"));
    for reason in ["   ", &"x".repeat(501)] {
        let body = app
            .gql_with_token(Some(&support), FLAG, json!({ "a": person_id, "r": reason }))
            .await;
        assert_eq!(field(&body), Some("reason"), "{body}");
    }
    let body = app
        .gql_with_token(Some(&person), "{ me { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["me"]["id"], person_id.as_str(), "{body}");
    assert!(audit_of(&app, &admin, "minor.flag").await.is_empty());
}

#[tokio::test]
async fn a_flag_stops_processing_at_once_and_erases_only_after_the_window() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (support, support_id) = staff(&app, &admin, "agent_one", "SUPPORT").await;
    // Declared an adult: still flaggable.
    let person = signed_in(&app, "young_looking", "young.looking@example.org").await;
    let person_id = my_id(&app, &person).await;
    let second = login(&app, "young_looking", PASSWORD).await;
    // Cached on this instance before the flag.
    let body = app
        .gql_with_token(Some(&second), "{ me { id } }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let body = app
        .gql_with_token(
            Some(&support),
            FLAG,
            json!({ "a": person_id, "r": "said in ticket T-1 they are 13" }),
        )
        .await;
    let flagged = &body["data"]["flagMinorWithoutGuardianConsent"];
    assert_eq!(flagged["status"], "SCHEDULED", "{body}");
    let purge_after: DateTime<Utc> = flagged["purgeAfter"].as_str().unwrap().parse().unwrap();
    // Monday 10:00 in Beijing plus three working days.
    assert_eq!(
        purge_after,
        app.clock.now() + chrono::Duration::days(3),
        "the normal working-day window"
    );

    // Every session ended, sign-in refused.
    for token in [&person, &second] {
        let body = app
            .gql_with_token(Some(token), "{ me { id } }", json!({}))
            .await;
        assert!(body["data"]["me"].is_null(), "signed out: {body}");
    }
    assert_eq!(
        error_code(&sign_in(&app, "young_looking", PASSWORD).await),
        Some("ACCOUNT_DELETION_SCHEDULED")
    );

    // The account is told what happens, when and how to contest it.
    app.deliver_mail().await;
    let mail = app
        .last_mail_to("young.looking@example.org")
        .expect("flag notice");
    let text = mail.decoded_text();
    assert!(text.contains("young_looking"), "{text}");
    assert!(text.contains("2026-12-03 10:00"), "{text}");

    // Audited with the staff member and the subject; the reason is a
    // note beside the chain (its hash chained), not chained text.
    let entries = audit_of(&app, &admin, "minor.flag").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actorId"], support_id.as_str());
    assert_eq!(entries[0]["subjectId"], person_id.as_str());
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(!detail.contains("said in ticket T-1"), "{detail}");
    assert!(detail.contains("note_sha256="), "{detail}");
    let note = custos::audit::notes::open(&app.state, app.state.db(), detail)
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("said in ticket T-1 they are 13"));

    // Not erased before the window ends; erased after.
    let purge = || custos::erasure::purge::run_once(&app.state);
    assert_eq!(purge().await.unwrap().accounts, 0);
    app.clock.set(purge_after - chrono::Duration::seconds(1));
    assert_eq!(purge().await.unwrap().accounts, 0);
    app.clock.set(purge_after + chrono::Duration::seconds(1));
    assert_eq!(purge().await.unwrap().accounts, 1);
    assert_eq!(
        error_code(&sign_in(&app, "young_looking", PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn an_admin_lifts_a_mistaken_flag_and_support_cannot() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    let (support, _) = staff(&app, &admin, "agent_one", "SUPPORT").await;
    let minor = consented_minor(&app, "teen_person", "parent@example.org").await;
    let minor_id = my_id(&app, &minor).await;
    let body = app
        .gql_with_token(
            Some(&support),
            FLAG,
            json!({ "a": minor_id, "r": "consent looked forged" }),
        )
        .await;
    let request_id = body["data"]["flagMinorWithoutGuardianConsent"]["id"].clone();
    assert!(request_id.is_string(), "{body}");
    app.deliver_mail().await;
    // The guardian is told too.
    for address in ["teen_person@example.org", "parent@example.org"] {
        let text = app.last_mail_to(address).unwrap().decoded_text();
        assert!(text.contains("teen_person"), "{address}: {text}");
        assert!(text.contains("2026-12-03 10:00"), "{address}: {text}");
    }

    // Support cannot lift; nor anyone without a reason.
    let body = app
        .gql_with_token(Some(&support), LIFT, json!({ "a": minor_id, "r": "sorry" }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app
        .gql_with_token(Some(&admin), LIFT, json!({ "a": minor_id, "r": " " }))
        .await;
    assert_eq!(field(&body), Some("reason"), "{body}");
    let body = app
        .gql_with_token(
            Some(&admin),
            LIFT,
            json!({ "a": uuid::Uuid::new_v4().to_string(), "r": "checked" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");

    let body = app
        .gql_with_token(
            Some(&admin),
            LIFT,
            json!({ "a": minor_id, "r": "guardian consent verified by phone" }),
        )
        .await;
    assert_eq!(
        body["data"]["liftMinorFlag"]["status"], "CANCELLED",
        "{body}"
    );
    assert_eq!(body["data"]["liftMinorFlag"]["id"], request_id);
    // Processing resumes: the minor signs in again.
    let again = sign_in(&app, "teen_person", PASSWORD).await;
    assert!(again["data"]["login"]["token"].is_string(), "{again}");
    let entries = audit_of(&app, &admin, "minor.lift").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actorId"], admin_id.as_str());
    assert_eq!(entries[0]["subjectId"], minor_id.as_str());
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(!detail.contains("verified by phone"), "{detail}");
    let note = custos::audit::notes::open(&app.state, app.state.db(), detail)
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("guardian consent verified by phone"));
    app.deliver_mail().await;
    for address in ["teen_person@example.org", "parent@example.org"] {
        let mail = app.last_mail_to(address).unwrap();
        assert!(
            mail.decoded_text().contains("lifted") || mail.decoded_text().contains("撤销"),
            "{address}"
        );
    }

    // Nothing left to lift, and nothing erased after the window.
    let body = app
        .gql_with_token(Some(&admin), LIFT, json!({ "a": minor_id, "r": "again" }))
        .await;
    assert_eq!(field(&body), Some("accountId"), "{body}");
    app.clock.advance(chrono::Duration::days(10));
    let report = custos::erasure::purge::run_once(&app.state).await.unwrap();
    assert_eq!(report.accounts, 0);
    assert!(sign_in(&app, "teen_person", PASSWORD).await["data"]["login"]["token"].is_string());
}
