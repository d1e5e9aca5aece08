//! The consent ledger, policy versions, policy-change notices and the
//! features guarded by consent.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, PUBLISH, TestApp, admin_token, adult, current_purposes, error_code, login, my_id,
    new_version, policy_version, publish, signed_in, signed_in_in_english, signup_with, spawn_app,
    with_chinese,
};

/// The current version of the policy shipped with the crate.
const SHIPPED_CURRENT: &str = "2026-12-07";

const RECORD: &str = "mutation($p: String!, $g: Boolean!) { recordConsent(purpose: $p, granted: $g) { purpose granted policyVersion } }";
/// The same version naming `kinds` of major change.
fn with_kinds(mut input: Value, kinds: &[&str]) -> Value {
    input["changeKinds"] = json!(kinds);
    input
}

fn nearby_purpose() -> Value {
    json!({
        "code": "nearby_friends",
        "title": "Nearby friends",
        "description": "Suggests friends who are near you.",
        "required": false,
        "sensitive": false,
        "dataCategories": ["approximate_location"],
    })
}

#[tokio::test]
async fn grant_and_withdraw_are_one_call_each_and_both_stay_in_the_ledger() {
    let app = spawn_app().await;
    let token = signed_in(&app, "ledger_user", "ledger@example.org").await;
    let body = app
        .gql_with_token(
            Some(&token),
            RECORD,
            json!({ "p": "product_updates", "g": true }),
        )
        .await;
    assert_eq!(body["data"]["recordConsent"]["granted"], true, "{body}");
    let body = app
        .gql_with_token(
            Some(&token),
            RECORD,
            json!({ "p": "product_updates", "g": false }),
        )
        .await;
    assert_eq!(body["data"]["recordConsent"]["granted"], false);

    let body = app
        .gql_with_token(
            Some(&token),
            "{ myConsentHistory { nodes { purpose granted source } } me { consents { purpose granted } } }",
            json!({}),
        )
        .await;
    let history: Vec<(String, bool, String)> = body["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["purpose"] == "product_updates")
        .map(|e| {
            (
                e["purpose"].as_str().unwrap().to_owned(),
                e["granted"].as_bool().unwrap(),
                e["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("product_updates".into(), true, "SETTINGS".into()),
            ("product_updates".into(), false, "SETTINGS".into())
        ]
    );
    let state = body["data"]["me"]["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "product_updates")
        .unwrap()
        .clone();
    assert_eq!(state["granted"], false);

    // No operation of the API edits or deletes ledger entries.
    let sdl = custos::graphql::sdl();
    for word in [
        "deleteConsent",
        "updateConsent",
        "editConsent",
        "removeConsent",
    ] {
        assert!(!sdl.contains(word), "{word} must not exist");
    }
}

#[tokio::test]
async fn consent_refusals_have_contract_codes() {
    let app = spawn_app().await;
    let token = signed_in(&app, "refuser", "refuser@example.org").await;
    let body = app
        .gql_with_token(Some(&token), RECORD, json!({ "p": "account", "g": false }))
        .await;
    assert_eq!(error_code(&body), Some("REQUIRED_PURPOSE"));
    assert_eq!(
        body["errors"][0]["extensions"]["alternative"],
        "requestAccountDeletion"
    );
    let body = app
        .gql_with_token(Some(&token), RECORD, json!({ "p": "telepathy", "g": true }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "purpose");
    let body = app.gql(RECORD, json!({ "p": "support", "g": true })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    // Granting a required purpose again is harmless.
    let body = app
        .gql_with_token(Some(&token), RECORD, json!({ "p": "account", "g": true }))
        .await;
    assert_eq!(body["data"]["recordConsent"]["granted"], true);
}

#[tokio::test]
async fn a_major_version_with_a_new_purpose_starts_it_ungranted_and_tells_everyone() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let person = signed_in(&app, "policy_reader", "reader@example.org").await;
    // The person granted everything optional that existed.
    app.gql_with_token(
        Some(&person),
        RECORD,
        json!({ "p": "product_updates", "g": true }),
    )
    .await;
    app.deliver_mail().await;
    let before = app.mail_to("reader@example.org").len();

    let purposes = current_purposes(&app).await;
    let input = with_chinese(
        &app,
        new_version("2027-01-01", true, purposes, Some(nearby_purpose())),
    )
    .await;
    let body = publish(&app, &admin, with_kinds(input, &["SERVICE_MODEL"])).await;
    assert_eq!(
        body["data"]["publishPolicy"]["version"], "2027-01-01",
        "{body}"
    );

    let me = app
        .gql_with_token(Some(&person), "{ me { needsPolicyAcceptance acceptedPolicyVersion consents { purpose granted } } policy { version } }", json!({}))
        .await;
    assert_eq!(me["data"]["policy"]["version"], "2027-01-01");
    assert_eq!(me["data"]["me"]["needsPolicyAcceptance"], true);
    let consents = me["data"]["me"]["consents"].as_array().unwrap();
    let granted = |code: &str| {
        consents
            .iter()
            .find(|c| c["purpose"] == code)
            .map(|c| c["granted"].as_bool().unwrap())
    };
    assert_eq!(
        granted("nearby_friends"),
        Some(false),
        "new purposes start ungranted"
    );
    assert_eq!(
        granted("product_updates"),
        Some(true),
        "unchanged purposes keep their state"
    );

    app.deliver_mail().await;
    let mails = app.mail_to("reader@example.org");
    assert_eq!(mails.len(), before + 1);
    let notice = mails.last().unwrap();
    assert!(
        notice.subject().contains("2027-01-01"),
        "{}",
        notice.subject()
    );
    let text = notice.decoded_text();
    // The person signed up in Chinese (the default), so the notice is Chinese.
    assert!(text.contains("新增附近好友推荐"), "{text}");
    assert!(
        text.contains("Nearby friends"),
        "the new purpose is listed: {text}"
    );

    // Accepting: stale version refused, current accepted.
    let accept = "mutation($v: String!) { acceptPolicy(version: $v) { needsPolicyAcceptance acceptedPolicyVersion } }";
    let body = app
        .gql_with_token(Some(&person), accept, json!({ "v": "2026-11-01" }))
        .await;
    assert_eq!(error_code(&body), Some("POLICY_VERSION_MISMATCH"));
    let body = app
        .gql_with_token(Some(&person), accept, json!({ "v": "2027-01-01" }))
        .await;
    assert_eq!(
        body["data"]["acceptPolicy"]["needsPolicyAcceptance"], false,
        "{body}"
    );

    // Signup against the old version is refused.
    let body = signup_with(&app, adult("2026-11-01", "late_comer", "late@example.org")).await;
    assert_eq!(error_code(&body), Some("POLICY_VERSION_MISMATCH"));

    // The publication is in the audit trail.
    let log = app
        .gql_with_token(
            Some(&admin),
            "{ auditLog(first: 50) { nodes { action detail } } }",
            json!({}),
        )
        .await;
    assert!(
        log["data"]["auditLog"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "policy.publish")
    );
}

#[tokio::test]
async fn a_minor_version_needs_no_new_acceptance_and_mails_nobody() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let person = signed_in(&app, "calm_reader", "calm@example.org").await;
    app.deliver_mail().await;
    let before = app.smtp.messages().len();
    let purposes = current_purposes(&app).await;
    let body = publish(
        &app,
        &admin,
        new_version("2026-12-01", false, purposes, None),
    )
    .await;
    assert_eq!(body["data"]["publishPolicy"]["major"], false, "{body}");
    let me = app
        .gql_with_token(Some(&person), "{ me { needsPolicyAcceptance } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["needsPolicyAcceptance"], false);
    app.deliver_mail().await;
    assert_eq!(app.smtp.messages().len(), before);
}

#[tokio::test]
async fn publish_policy_is_for_admins_and_checks_its_input() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let person = signed_in(&app, "plain_user", "plain@example.org").await;
    let purposes = current_purposes(&app).await;
    let input = new_version("2027-02-01", false, purposes.clone(), None);

    let body = app.gql(PUBLISH, json!({ "input": input })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    let body = publish(&app, &person, input.clone()).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));

    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut bad = input.clone();
    bad["version"] = json!("2026-11-01");
    cases.push((bad, "version"));
    let mut bad = input.clone();
    bad["version"] = json!("has spaces");
    cases.push((bad, "version"));
    let mut bad = input.clone();
    bad["summaryOfChanges"] = json!("  ");
    cases.push((bad, "summaryOfChanges"));
    let mut bad = input.clone();
    bad["text"] = json!("");
    cases.push((bad, "text"));
    let without_account: Vec<Value> = purposes
        .iter()
        .filter(|p| p["code"] != "account")
        .cloned()
        .collect();
    cases.push((
        new_version("2027-03-01", false, without_account, None),
        "purposes",
    ));
    let mut sensitive_required = nearby_purpose();
    sensitive_required["required"] = json!(true);
    sensitive_required["sensitive"] = json!(true);
    cases.push((
        new_version(
            "2027-03-01",
            false,
            purposes.clone(),
            Some(sensitive_required),
        ),
        "purposes",
    ));
    for (input, field) in cases {
        let body = publish(&app, &admin, input).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    assert_eq!(
        policy_version(&app).await,
        SHIPPED_CURRENT,
        "nothing was published"
    );
}

#[tokio::test]
async fn product_updates_reach_only_verified_people_who_granted_them() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let keen = signed_in(&app, "keen_reader", "keen@example.org").await;
    app.gql_with_token(
        Some(&keen),
        RECORD,
        json!({ "p": "product_updates", "g": true }),
    )
    .await;
    let changed_mind = signed_in(&app, "changed_mind", "changed@example.org").await;
    app.gql_with_token(
        Some(&changed_mind),
        RECORD,
        json!({ "p": "product_updates", "g": true }),
    )
    .await;
    app.gql_with_token(
        Some(&changed_mind),
        RECORD,
        json!({ "p": "product_updates", "g": false }),
    )
    .await;
    signed_in(&app, "never_asked", "never@example.org").await;
    app.deliver_mail().await;

    let send = "mutation($s: String!, $b: String!) { sendProductUpdate(subject: $s, body: $b) }";
    let body = app
        .gql_with_token(
            Some(&keen),
            send,
            json!({ "s": "News", "b": "Something new" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    let body = app
        .gql_with_token(
            Some(&admin),
            send,
            json!({ "s": " ", "b": "Something new" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));

    let body = app
        .gql_with_token(
            Some(&admin),
            send,
            json!({ "s": "News of the month", "b": "Something new" }),
        )
        .await;
    assert_eq!(body["data"]["sendProductUpdate"], 1, "{body}");
    app.deliver_mail().await;
    let keen_mail = app.last_mail_to("keen@example.org").unwrap();
    assert_eq!(keen_mail.subject(), "News of the month");
    for other in ["changed@example.org", "never@example.org"] {
        assert!(
            app.mail_to(other)
                .iter()
                .all(|m| m.subject() != "News of the month")
        );
    }
}

#[tokio::test]
async fn processing_exceptions_are_staff_only_and_audited() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let person = signed_in(&app, "subject_person", "subject@example.org").await;
    let id = my_id(&app, &person).await;
    let record = "mutation($a: ID!, $b: LegalBasis!, $j: String!) { recordProcessingException(accountId: $a, basis: $b, justification: $j) { id action subjectId detail actorId } }";
    let args = json!({ "a": id, "b": "VITAL_INTERESTS", "j": "Emergency services asked to locate the account holder." });

    let body = app
        .gql_with_token(Some(&person), record, args.clone())
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    let body = app.gql(record, args.clone()).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    let body = app
        .gql_with_token(
            Some(&admin),
            record,
            json!({ "a": id, "b": "PUBLIC_SAFETY", "j": "short" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    let body = app
        .gql_with_token(Some(&admin), record, json!({ "a": uuid::Uuid::new_v4().to_string(), "b": "PUBLIC_SAFETY", "j": "A long enough justification here." }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));

    let body = app.gql_with_token(Some(&admin), record, args).await;
    let entry = &body["data"]["recordProcessingException"];
    assert_eq!(entry["action"], "processing_exception.record", "{body}");
    assert_eq!(entry["subjectId"], id.as_str());
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .contains("VITAL_INTERESTS")
    );
}

#[tokio::test]
async fn an_upgrade_publishes_the_shipped_version_without_support_and_ledgers_keep_it() {
    let app = spawn_app().await;
    // An installation from before the second shipped version: only the
    // first is published.
    entity::policy_version::Entity::delete_many()
        .filter(entity::policy_version::Column::Version.eq(SHIPPED_CURRENT))
        .exec(app.state.db())
        .await
        .unwrap();
    assert_eq!(policy_version(&app).await, "2026-11-01");
    let person = signed_in(&app, "old_timer", "old.timer@example.org").await;
    let body = app
        .gql_with_token(Some(&person), RECORD, json!({ "p": "support", "g": true }))
        .await;
    assert_eq!(body["data"]["recordConsent"]["granted"], true, "{body}");

    // The upgraded server starts: the shipped version is published, minor.
    let upgraded = app.another_instance().await;
    let body = upgraded
        .gql_with_token(
            Some(&person),
            "{ policy(language: \"en\") { version major changeKinds summaryOfChanges text purposes { code } } \
               me { needsPolicyAcceptance consents { purpose } } \
               myConsentHistory(first: 50) { nodes { purpose granted policyVersion } } }",
            json!({}),
        )
        .await;
    let policy = &body["data"]["policy"];
    assert_eq!(policy["version"], SHIPPED_CURRENT, "{body}");
    assert_eq!(policy["major"], false);
    assert_eq!(policy["changeKinds"], json!([]));
    assert!(
        policy["summaryOfChanges"]
            .as_str()
            .unwrap()
            .contains("Support replies")
    );
    assert!(
        policy["text"]
            .as_str()
            .unwrap()
            .contains("never waits for a consent")
    );
    assert!(
        policy["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["code"] != "support")
    );
    // Minor: nobody is asked to accept again, and nobody is mailed.
    assert_eq!(body["data"]["me"]["needsPolicyAcceptance"], false);
    assert!(
        body["data"]["me"]["consents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["purpose"] != "support")
    );
    // The ledger keeps the decision made under the earlier version.
    let history = body["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap();
    assert!(
        history.iter().any(|e| e["purpose"] == "support"
            && e["granted"] == true
            && e["policyVersion"] == "2026-11-01"),
        "{body}"
    );
}

#[tokio::test]
async fn a_major_version_names_its_kinds_and_is_refused_without_them() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let purposes = current_purposes(&app).await;
    let refusals = [
        // Major without kinds.
        new_version("2027-04-01", true, purposes.clone(), None),
        with_kinds(new_version("2027-04-01", true, purposes.clone(), None), &[]),
        // Minor naming kinds.
        with_kinds(
            new_version("2027-04-01", false, purposes.clone(), None),
            &["RIGHTS"],
        ),
        // A new purpose in a minor version, or in a major one without
        // SERVICE_MODEL.
        new_version(
            "2027-04-01",
            false,
            purposes.clone(),
            Some(nearby_purpose()),
        ),
        with_kinds(
            new_version("2027-04-01", true, purposes.clone(), Some(nearby_purpose())),
            &["RIGHTS", "CONTACT"],
        ),
    ];
    for input in refusals {
        let body = publish(&app, &admin, input).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "changeKinds",
            "{body}"
        );
    }
    // A data category added to an existing purpose is a new use too.
    let mut more_data = purposes.clone();
    for purpose in &mut more_data {
        if purpose["code"] == "product_updates" {
            purpose["dataCategories"] = json!(["email", "purchase_history"]);
        }
    }
    let body = publish(
        &app,
        &admin,
        new_version("2027-04-01", false, more_data.clone(), None),
    )
    .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "changeKinds");
    assert_eq!(policy_version(&app).await, SHIPPED_CURRENT);

    // A minor version may drop a category, and a major one with
    // SERVICE_MODEL may add one.
    let mut less_data = purposes.clone();
    for purpose in &mut less_data {
        if purpose["code"] == "account" {
            purpose["dataCategories"] = json!(["username", "email", "password_hash"]);
        }
    }
    let body = publish(
        &app,
        &admin,
        new_version("2027-04-01", false, less_data, None),
    )
    .await;
    assert_eq!(body["data"]["publishPolicy"]["major"], false, "{body}");
    let body = publish(
        &app,
        &admin,
        with_kinds(
            new_version("2027-05-01", true, more_data, None),
            &["SERVICE_MODEL", "RECIPIENTS", "SERVICE_MODEL"],
        ),
    )
    .await;
    assert_eq!(body["data"]["publishPolicy"]["major"], true, "{body}");
    let body = app
        .gql("{ policy { version changeKinds } }", json!({}))
        .await;
    assert_eq!(body["data"]["policy"]["version"], "2027-05-01");
    assert_eq!(
        body["data"]["policy"]["changeKinds"],
        json!(["SERVICE_MODEL", "RECIPIENTS"]),
        "stored once each, in the policy's order"
    );
    let row = entity::policy_version::Entity::find()
        .filter(entity::policy_version::Column::Version.eq("2027-05-01"))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.change_kinds, "SERVICE_MODEL,RECIPIENTS");
}

#[tokio::test]
async fn the_notice_and_announcement_name_each_kind_in_the_persons_language() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    signed_in(&app, "zh_reader", "zh.reader@example.org").await;
    signed_in_in_english(&app, "en_reader", "en.reader@example.org").await;
    app.deliver_mail().await;
    let purposes = current_purposes(&app).await;
    let input = with_chinese(&app, new_version("2027-06-01", true, purposes, None)).await;
    let body = publish(&app, &admin, with_kinds(input, &["OWNERSHIP", "CONTACT"])).await;
    assert!(body["errors"].is_null(), "{body}");
    app.deliver_mail().await;
    let zh = app
        .last_mail_to("zh.reader@example.org")
        .unwrap()
        .decoded_text();
    assert!(
        zh.contains("变更类型：服务的所有者或运营者；负责部门、联系方式或投诉渠道"),
        "{zh}"
    );
    let en = app
        .last_mail_to("en.reader@example.org")
        .unwrap()
        .decoded_text();
    assert!(
        en.contains("What kind of change: who owns or runs the service; the department responsible, how to contact us or where to complain"),
        "{en}"
    );
    assert!(!en.contains("变更类型"), "{en}");

    let body = app
        .gql("{ announcements { kind title body } }", json!({}))
        .await;
    let announcement = &body["data"]["announcements"][0];
    assert_eq!(announcement["kind"], "POLICY_UPDATE", "{body}");
    assert!(
        announcement["title"]
            .as_str()
            .unwrap()
            .contains("2027-06-01")
    );
    let text = announcement["body"].as_str().unwrap();
    for kind in [
        "服务的所有者或运营者",
        "负责部门、联系方式或投诉渠道",
        "who owns or runs the service",
        "the department responsible, how to contact us or where to complain",
    ] {
        assert!(text.contains(kind), "{text}");
    }
    assert!(
        text.contains("新增附近好友推荐") && text.contains("Adds nearby-friends suggestions"),
        "{text}"
    );
}

#[tokio::test]
async fn policy_versions_lists_what_publish_policy_published_with_its_kinds() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let purposes = current_purposes(&app).await;
    let input = new_version("2027-07-01", true, purposes, Some(nearby_purpose()));
    let body = publish(
        &app,
        &admin,
        with_kinds(input, &["SERVICE_MODEL", "RIGHTS"]),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql(
            "{ policyVersions { version major changeKinds purposes { code } } }",
            json!({}),
        )
        .await;
    let versions = body["data"]["policyVersions"].as_array().unwrap();
    let listed: Vec<(&str, bool, Value)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["major"].as_bool().unwrap(),
                v["changeKinds"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("2027-07-01", true, json!(["SERVICE_MODEL", "RIGHTS"])),
            (SHIPPED_CURRENT, false, json!([])),
            ("2026-11-01", true, json!([])),
        ],
        "{body}"
    );
    let codes = |at: usize| -> Vec<String> {
        versions[at]["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(codes(0).contains(&"nearby_friends".to_owned()));
    assert!(
        codes(2).contains(&"support".to_owned()),
        "the first version kept its purposes"
    );
    assert!(!codes(1).contains(&"support".to_owned()));
}

const HISTORY: &str = "query($first: Int, $after: String) {
  myConsentHistory(first: $first, after: $after) {
    edges { cursor node { id purpose granted source at policyVersion } }
    nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

#[tokio::test]
async fn the_consent_history_pages_in_order_and_its_cursors_are_the_owners_alone() {
    let app = spawn_app().await;
    let token = signed_in(&app, "ledger_li", "ledger.li@example.org").await;
    let signup_events = crate::helpers::paging::walk(
        &app,
        Some(&token),
        HISTORY,
        json!({}),
        "myConsentHistory",
        50,
    )
    .await;
    assert!(!signup_events.is_empty());
    assert!(signup_events.iter().all(|e| e["source"] == "SIGNUP"));
    for granted in [true, false, true, false, true] {
        app.clock.advance(chrono::Duration::seconds(1));
        let body = app
            .gql_with_token(
                Some(&token),
                RECORD,
                json!({ "p": "product_updates", "g": granted }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }

    let one_page = app
        .gql_with_token(Some(&token), HISTORY, json!({ "first": 200 }))
        .await;
    let all = crate::helpers::paging::nodes(&one_page, "myConsentHistory");
    assert_eq!(all.len(), signup_events.len() + 5);
    let info = &one_page["data"]["myConsentHistory"]["pageInfo"];
    assert_eq!(info["hasNextPage"], false, "{one_page}");
    assert_eq!(info["hasPreviousPage"], false, "{one_page}");
    // The order the decisions were made in, in pages of two just the same.
    let settings: Vec<(Value, Value)> = all[signup_events.len()..]
        .iter()
        .map(|e| (e["granted"].clone(), e["source"].clone()))
        .collect();
    assert_eq!(
        settings,
        [true, false, true, false, true].map(|g| (json!(g), json!("SETTINGS")))
    );
    let paged = crate::helpers::paging::walk(
        &app,
        Some(&token),
        HISTORY,
        json!({}),
        "myConsentHistory",
        2,
    )
    .await;
    assert_eq!(paged, all);
    crate::helpers::paging::assert_bounds_and_bad_cursors(
        &app,
        Some(&token),
        HISTORY,
        json!({}),
        "myConsentHistory",
    )
    .await;

    // Another person cannot use Li's cursors, even to page their own list.
    let other = signed_in(&app, "ledger_wu", "ledger.wu@example.org").await;
    let body = app
        .gql_with_token(Some(&token), HISTORY, json!({ "first": 1 }))
        .await;
    let cursor = body["data"]["myConsentHistory"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql_with_token(
            Some(&token),
            HISTORY,
            json!({ "first": 1, "after": cursor }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql_with_token(Some(&other), HISTORY, json!({ "after": cursor }))
        .await;
    crate::helpers::paging::assert_bad_cursor(&body);
    // A cursor survives a restart (it is sealed with the keyring, not kept).
    let settings = app.settings.clone();
    let app = app.restart_with(move |raw| *raw = settings).await;
    let body = app
        .gql_with_token(
            Some(&token),
            HISTORY,
            json!({ "first": 1, "after": cursor }),
        )
        .await;
    assert_eq!(
        crate::helpers::paging::nodes(&body, "myConsentHistory")[0]["id"],
        all[1]["id"],
        "{body}"
    );
}

#[tokio::test]
async fn an_undecided_purpose_has_no_decision_date() {
    let app = spawn_app().await;
    let token = signed_in(&app, "undecided_li", "undecided.li@example.org").await;
    let consents = |body: &Value| -> Vec<Value> {
        body["data"]["me"]["consents"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .clone()
    };
    let query = "{ me { consents { purpose granted updatedAt decidedAt policyVersion } } }";
    let body = app.gql_with_token(Some(&token), query, json!({})).await;
    let signed_up_at = crate::helpers::start_instant();
    for consent in consents(&body) {
        if consent["purpose"] == "product_updates" {
            assert_eq!(consent["granted"], false, "{consent}");
            assert!(consent["decidedAt"].is_null(), "{consent}");
            // The contract keeps updatedAt non-null: the state began with
            // the version, not with a decision.
            assert!(consent["updatedAt"].is_string(), "{consent}");
        } else if consent["granted"] == true {
            let at: chrono::DateTime<chrono::Utc> =
                consent["decidedAt"].as_str().unwrap().parse().unwrap();
            assert_eq!(at, signed_up_at, "{consent}");
            assert_eq!(consent["updatedAt"], consent["decidedAt"], "{consent}");
        }
    }
    // A refusal is a decision: it has a date.
    app.clock.advance(chrono::Duration::minutes(5));
    let body = app
        .gql_with_token(
            Some(&token),
            "mutation { recordConsent(purpose: \"product_updates\", granted: false) { granted updatedAt decidedAt } }",
            json!({}),
        )
        .await;
    let decided: chrono::DateTime<chrono::Utc> = body["data"]["recordConsent"]["updatedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .parse()
        .unwrap();
    assert_eq!(decided, app.clock.now());
    assert_eq!(
        body["data"]["recordConsent"]["decidedAt"],
        body["data"]["recordConsent"]["updatedAt"]
    );
    let body = app.gql_with_token(Some(&token), query, json!({})).await;
    let product_updates = consents(&body)
        .into_iter()
        .find(|c| c["purpose"] == "product_updates")
        .unwrap();
    assert_eq!(product_updates["granted"], false);
    assert!(
        product_updates["decidedAt"].is_string(),
        "{product_updates}"
    );
}

#[tokio::test]
async fn consent_decisions_are_limited_per_account_and_hour() {
    let app = spawn_app().await;
    let busy = signed_in(&app, "busy_toggler", "busy@example.org").await;
    let other = signed_in(&app, "calm_person", "calm@example.org").await;
    let limit = custos::consent::service::MAX_DECISIONS_PER_WINDOW;
    for i in 0..limit {
        let body = app
            .gql_with_token(
                Some(&busy),
                RECORD,
                json!({ "p": "product_updates", "g": i % 2 == 0 }),
            )
            .await;
        assert!(body["errors"].is_null(), "decision {i}: {body}");
        app.clock.advance(chrono::Duration::seconds(10));
    }
    let body = app
        .gql_with_token(
            Some(&busy),
            RECORD,
            json!({ "p": "product_updates", "g": true }),
        )
        .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    // The first decision leaves the hour 10 s × 60 = 600 s after it was
    // made, 3,000 s from now.
    let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert_eq!(retry, 3_000, "{body}");
    // Nothing was recorded, and another person is not held up.
    let history = app
        .gql_with_token(
            Some(&busy),
            "{ myConsentHistory(first: 100) { nodes { purpose source } } }",
            json!({}),
        )
        .await;
    let from_settings = history["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "SETTINGS")
        .count();
    assert_eq!(from_settings as u64, limit);
    let body = app
        .gql_with_token(
            Some(&other),
            RECORD,
            json!({ "p": "product_updates", "g": true }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // Once the oldest decision has left the hour, one more is taken.
    app.clock.advance(chrono::Duration::seconds(3_000));
    // (The session has been idle too long meanwhile: sign in again.)
    let busy = login(&app, "busy_toggler", PASSWORD).await;
    let body = app
        .gql_with_token(
            Some(&busy),
            RECORD,
            json!({ "p": "product_updates", "g": true }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
}

/// Grants (or withdraws) `product_updates` for every account in the
/// database straight in the ledger, as `recordConsent` would.
async fn decide_product_updates_for_all(app: &TestApp, granted: bool) {
    use sea_orm::{ActiveValue::NotSet, EntityTrait, QuerySelect, Set};
    let policy = custos::consent::versions::current(app.state.db())
        .await
        .unwrap()
        .document;
    let purpose = policy.purpose("product_updates").unwrap();
    let ids: Vec<uuid::Uuid> = entity::account::Entity::find()
        .select_only()
        .column(entity::account::Column::Id)
        .into_tuple()
        .all(app.state.db())
        .await
        .unwrap();
    for chunk in ids.chunks(500) {
        let events = chunk.iter().map(|id| entity::consent_event::ActiveModel {
            seq: NotSet,
            id: Set(uuid::Uuid::new_v4()),
            account_id: Set(*id),
            purpose: Set(purpose.code.clone()),
            purpose_hash: Set(custos::consent::service::purpose_hash(purpose)),
            policy_version: Set(policy.version.clone()),
            policy_text_hash: Set(custos::consent::service::policy_text_hash(&policy)),
            granted: Set(granted),
            source: Set("SETTINGS".into()),
            created_at: Set(app.clock.now()),
        });
        entity::consent_event::Entity::insert_many(events)
            .exec_without_returning(app.state.db())
            .await
            .unwrap();
    }
}

async fn product_updates_queued(app: &TestApp) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Kind.eq("product_update"))
        .count(app.state.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn product_news_goes_out_a_page_per_transaction_and_a_failure_keeps_the_pages_sent() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let page = usize::try_from(custos::consent::publication::MAIL_BATCH).unwrap();
    crate::notices::seed_accounts(&app, page * 2 + 10).await;
    // One person withdraws later: the newest decision counts.
    let withdrawn = signed_in(&app, "changed_mind", "changed.mind@example.org").await;
    decide_product_updates_for_all(&app, true).await;
    // The database fails once the first page is in.
    crate::helpers::refuse(
        app.state.db(),
        "refuse_news",
        "INSERT",
        "outbox",
        &format!(
            "NEW.kind = 'product_update' AND (SELECT count(*) FROM outbox WHERE kind = 'product_update') >= {page}"
        ),
    )
    .await;
    let send = "mutation($s: String!, $b: String!) { sendProductUpdate(subject: $s, body: $b) }";
    let body = app
        .gql_with_token(
            Some(&admin),
            send,
            json!({ "s": "News", "b": "Something new" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    // The first page committed on its own and will be sent.
    assert_eq!(product_updates_queued(&app).await, page as u64);
    let entries = entity::audit_entry::Entity::find()
        .filter(entity::audit_entry::Column::Action.eq("product_update.send"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].detail, format!("queued={page} stopped=true"));

    // Without the failure, every page goes out; withdrawals count.
    crate::helpers::lift_refusal(app.state.db(), "refuse_news", "outbox").await;
    entity::outbox::Entity::delete_many()
        .filter(entity::outbox::Column::Kind.eq("product_update"))
        .exec(app.state.db())
        .await
        .unwrap();
    decide_product_updates_for_all(&app, false).await;
    decide_product_updates_for_all(&app, true).await;
    let body = app
        .gql_with_token(
            Some(&withdrawn),
            RECORD,
            json!({ "p": "product_updates", "g": false }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql_with_token(
            Some(&admin),
            send,
            json!({ "s": "News", "b": "Something new" }),
        )
        .await;
    // Every seeded account and the admin; not the one who withdrew.
    let expected = (page * 2 + 10 + 1) as u64;
    assert_eq!(body["data"]["sendProductUpdate"], expected, "{body}");
    assert_eq!(product_updates_queued(&app).await, expected);
}
