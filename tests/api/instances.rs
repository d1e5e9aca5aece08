//! Several instances on one database: the per-IP limit counted for all of
//! them, the policy kept in memory and forgotten on every instance when
//! one publishes, and three instances that together behave as one
//! (sessions, erasure, mail, limits, the purge). PostgreSQL hosts several
//! instances; SQLite serves one, and there the single-instance half of
//! each rule is checked.

use std::time::Duration;

use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::{
    erasure::seed_due_accounts,
    helpers::{
        PASSWORD, SIGN_IN, TestApp, admin_token, adult, becomes_anonymous, count_rows,
        current_purposes, cut_change_listener, due_for_purge, error_code, eventually, lift_refusal,
        listening, new_version, policy_version, refuse, sees_policy, signed_in, signup_with,
        spawn_app_with, username, warm, with_chinese,
    },
};

const RESET: &str =
    "mutation($t: String!) { resetPassword(token: $t, newPassword: \"a new long passphrase\") }";

/// A sign-in with a name nobody has (a new one each time, so the per-name
/// throttle stays out of it): its error code.
async fn stranger_signs_in(app: &TestApp) -> (Option<String>, Value) {
    let name = format!("nobody_{}@example.org", uuid::Uuid::new_v4().simple());
    let body = app
        .gql(SIGN_IN, json!({ "l": name, "p": "not the password" }))
        .await;
    (error_code(&body).map(str::to_owned), body)
}

const ALLOWED: Option<&str> = Some("INVALID_CREDENTIALS");
const LIMITED: Option<&str> = Some("RATE_LIMITED");

#[tokio::test]
async fn the_per_ip_limit_is_counted_once_for_every_instance() {
    let one = spawn_app_with(|s| s.rate_limit_per_minute = 4).await;
    if !one.is_postgres() {
        // One instance: its memory sees every attempt, and nothing is
        // written per attempt.
        for _ in 0..4 {
            assert_eq!(stranger_signs_in(&one).await.0.as_deref(), ALLOWED);
        }
        assert_eq!(stranger_signs_in(&one).await.0.as_deref(), LIMITED);
        assert_eq!(count_rows(&one, "client_rate_windows").await, 0);
        return;
    }
    let two = one.another_instance().await;
    // Each instance's memory would allow four; together they allow four.
    for app in [&one, &one, &two, &two] {
        assert_eq!(stranger_signs_in(app).await.0.as_deref(), ALLOWED);
    }
    let (code, body) = stranger_signs_in(&two).await;
    assert_eq!(code.as_deref(), LIMITED, "{body}");
    let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry), "{body}");
    assert_eq!(stranger_signs_in(&one).await.0.as_deref(), LIMITED);
    // Another action has a count of its own.
    let body = one.gql(RESET, json!({ "t": "no such token" })).await;
    assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");

    // A minute on, the minute before still counts almost whole: no second
    // burst at the boundary.
    one.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(stranger_signs_in(&two).await.0.as_deref(), LIMITED);
    // Two minutes on, the window has rolled over (`one`'s memory, which
    // follows the wall clock, has an attempt left).
    one.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(stranger_signs_in(&one).await.0.as_deref(), ALLOWED);

    // The job runner prunes windows nobody reads any more.
    let before = count_rows(&one, "client_rate_windows").await;
    assert!(before >= 3, "{before} rows");
    one.clock.advance(chrono::Duration::seconds(180));
    custos::jobs::tick(&one.state, &custos::jobs::outbox_sender(&one.state)).await;
    assert_eq!(count_rows(&one, "client_rate_windows").await, 0);
}

#[tokio::test]
async fn an_attempt_the_database_cannot_count_is_decided_in_memory() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 2).await;
    if !app.is_postgres() {
        // Nothing is counted in the database on SQLite: refusing every
        // write to the table changes nothing.
        refuse(
            app.state.db(),
            "no_counts",
            "INSERT",
            "client_rate_windows",
            "1",
        )
        .await;
        assert_eq!(stranger_signs_in(&app).await.0.as_deref(), ALLOWED);
        return;
    }
    refuse(
        app.state.db(),
        "no_counts",
        "INSERT",
        "client_rate_windows",
        "true",
    )
    .await;
    // Not an internal error: the memory let it through, so it goes ahead.
    assert_eq!(stranger_signs_in(&app).await.0.as_deref(), ALLOWED);
    assert_eq!(count_rows(&app, "client_rate_windows").await, 0);
    lift_refusal(app.state.db(), "no_counts", "client_rate_windows").await;
    assert_eq!(stranger_signs_in(&app).await.0.as_deref(), ALLOWED);
    assert_eq!(count_rows(&app, "client_rate_windows").await, 1);
    // The memory still holds its own limit.
    assert_eq!(stranger_signs_in(&app).await.0.as_deref(), LIMITED);
}

#[tokio::test]
async fn a_published_policy_is_seen_at_once_by_every_instance() {
    let one = spawn_app_with(|_| {}).await;
    listening(&one).await;
    let admin = admin_token(&one).await;
    let person = signed_in(&one, "policy_watcher", "watcher@example.org").await;
    let shipped = policy_version(&one).await;
    // Kept in memory from the first read on.
    assert!(one.state.policy().is_held());
    let metrics = one.metrics().await;
    assert!(
        metrics.contains("custos_policy_cache_active 1"),
        "{metrics}"
    );
    let two = if one.is_postgres() {
        let two = one.another_instance().await;
        listening(&two).await;
        assert_eq!(policy_version(&two).await, shipped);
        assert!(two.state.policy().is_held());
        Some(two)
    } else {
        None
    };

    let purposes = current_purposes(&one).await;
    let mut input = with_chinese(&one, new_version("2027-03-01", true, purposes, None)).await;
    // A major version names the kinds of change it makes.
    input["changeKinds"] = json!(["RIGHTS"]);
    let body = one
        .gql_with_token(
            Some(&admin),
            "mutation($input: PublishPolicyInput!) { publishPolicy(input: $input) { version } }",
            json!({ "input": input }),
        )
        .await;
    assert_eq!(
        body["data"]["publishPolicy"]["version"], "2027-03-01",
        "{body}"
    );
    // The publishing instance answers with the new version at once.
    assert_eq!(policy_version(&one).await, "2027-03-01");
    let needs = "{ me { needsPolicyAcceptance } }";
    let body = one.gql_with_token(Some(&person), needs, json!({})).await;
    assert_eq!(body["data"]["me"]["needsPolicyAcceptance"], true, "{body}");
    if let Some(two) = two {
        // The other one as soon as the trigger's notification arrives, and
        // it answers as the database does.
        assert!(sees_policy(&two, "2027-03-01").await);
        let body = two.gql_with_token(Some(&person), needs, json!({})).await;
        assert_eq!(body["data"]["me"]["needsPolicyAcceptance"], true, "{body}");
        // The old version is no longer accepted at sign-up there either.
        let body = signup_with(&two, adult(&shipped, "late_comer", "late@example.org")).await;
        assert_eq!(error_code(&body), Some("POLICY_VERSION_MISMATCH"), "{body}");
    }
}

#[tokio::test]
async fn a_lost_listener_reads_the_policy_from_the_database() {
    let app = spawn_app_with(|_| {}).await;
    if !app.is_postgres() {
        // SQLite has no listener: the policy is kept from the start.
        policy_version(&app).await;
        assert!(app.state.policy().is_held());
        return;
    }
    listening(&app).await;
    policy_version(&app).await;
    assert!(app.state.policy().is_held());
    cut_change_listener(&app).await;
    let off = eventually(200, Duration::from_millis(10), || async {
        !app.state.policy().is_active()
    })
    .await;
    assert!(off, "the policy stayed in use without its listener");
    assert!(!app.state.policy().is_held());
    policy_version(&app).await;
    assert!(!app.state.policy().is_held(), "nothing is kept meanwhile");
    listening(&app).await;
    policy_version(&app).await;
    assert!(app.state.policy().is_held());
}

/// Accounts seeded for the three-instance purge.
const SEEDED: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_instances_on_one_database_behave_as_one() {
    let one = spawn_app_with(|s| {
        s.rate_limit_per_minute = 8;
        s.purge_batch = Some(7);
    })
    .await;
    if !one.is_postgres() {
        // SQLite serves one instance (CI runs this on PostgreSQL).
        return;
    }
    let two = one.another_instance().await;
    let three = one.another_instance().await;
    for app in [&one, &two, &three] {
        listening(app).await;
    }

    // A session revoked on one is refused by the others at once.
    let stayer = signed_in(&one, "three_places", "three.places@example.org").await;
    for app in [&one, &two, &three] {
        warm(app, &stayer).await;
    }
    let body = one
        .gql_with_token(Some(&stayer), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert!(username(&one, &stayer).await.is_none());
    assert!(
        becomes_anonymous(&two, &stayer).await,
        "two still serves it"
    );
    assert!(
        becomes_anonymous(&three, &stayer).await,
        "three still serves it"
    );

    // An account erased by one instance's purge is gone for all; the purge
    // runs once per due account with all three running jobs, and each
    // queued mail is sent once.
    signed_in(&one, "leaving_soon", "leaving.soon@example.org").await;
    due_for_purge(&one, "leaving_soon", "leaving.soon@example.org").await;
    let emails =
        seed_due_accounts(&one, SEEDED, one.clock.now() - chrono::Duration::hours(1)).await;
    for app in [&two, &three] {
        let body = app
            .gql(SIGN_IN, json!({ "l": "leaving_soon", "p": PASSWORD }))
            .await;
        assert_eq!(
            error_code(&body),
            Some("ACCOUNT_DELETION_SCHEDULED"),
            "{body}"
        );
    }
    let mail_before = one.smtp.messages().len();
    let (o1, o2, o3) = (
        custos::jobs::outbox_sender(&one.state),
        custos::jobs::outbox_sender(&two.state),
        custos::jobs::outbox_sender(&three.state),
    );
    tokio::join!(
        custos::jobs::tick(&one.state, &o1),
        custos::jobs::tick(&two.state, &o2),
        custos::jobs::tick(&three.state, &o3),
    );
    let records = entity::erasure_record::Entity::find()
        .all(one.state.db())
        .await
        .unwrap();
    let requests: std::collections::BTreeSet<_> = records.iter().map(|r| r.request_id).collect();
    assert_eq!(records.len(), SEEDED + 1, "one certificate per due account");
    assert_eq!(requests.len(), SEEDED + 1, "no account erased twice");
    assert_eq!(count_rows(&one, "accounts").await, 1, "only the stayer's");
    // Gone for every instance: no account answers to the name.
    for app in [&one, &two, &three] {
        let body = app
            .gql(SIGN_IN, json!({ "l": "leaving_soon", "p": PASSWORD }))
            .await;
        assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    // Mail left while the ticks ran; the rest on the next ones.
    tokio::join!(
        custos::jobs::tick(&one.state, &o1),
        custos::jobs::tick(&two.state, &o2),
        custos::jobs::tick(&three.state, &o3),
    );
    let pending = count_rows(&one, "outbox WHERE status = 'PENDING'").await;
    assert_eq!(pending, 0, "every mail sent");
    let sent = one.smtp.messages();
    // Each outbox row went once: its Message-ID is the row's id.
    let ids: std::collections::BTreeSet<_> = sent
        .iter()
        .map(|mail| mail.header("Message-ID").expect("a Message-ID"))
        .collect();
    assert_eq!(ids.len(), sent.len(), "a mail went twice");
    let mut receipts = std::collections::BTreeMap::new();
    for mail in &sent[mail_before..] {
        for to in &mail.to {
            *receipts.entry(to.to_lowercase()).or_insert(0u32) += 1;
        }
    }
    for email in &emails {
        assert_eq!(receipts.get(email), Some(&1), "receipts to {email}");
    }
    assert!(
        receipts.contains_key("leaving.soon@example.org"),
        "{receipts:?}"
    );
    assert_eq!(receipts.len(), SEEDED + 1, "{receipts:?}");
    // The name and address are free again, on any instance.
    signed_in(&three, "leaving_soon", "leaving.soon@example.org").await;

    // The per-IP limit holds across the three: eight attempts in all, not
    // eight on each.
    for app in [&one, &two, &three, &one, &two, &three, &one, &two] {
        let body = app.gql(RESET, json!({ "t": "no such token" })).await;
        assert_eq!(error_code(&body), Some("INVALID_TOKEN"), "{body}");
    }
    for app in [&three, &one] {
        let body = app.gql(RESET, json!({ "t": "no such token" })).await;
        assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    }
}
