//! The per-instance session cache through HTTP: repeated requests are
//! answered from memory, and nothing a person or an admin changes is
//! served stale afterwards: not on this instance, and on PostgreSQL not on
//! another one either. SQLite serves one instance: there, a change made
//! behind the server's back is seen when the entry's lifetime ends.

use std::time::Duration;

use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, TestApp, admin_token, becomes_anonymous, cut_change_listener,
    due_for_purge, error_code, eventually, login, my_id, reset, reset_token, session_cache_ready,
    signed_in, signup, signup_minor, spawn_app, staff, username, warm,
};

/// `app`, which cached `token`'s session, stops answering for it after the
/// session ended outside it (in SQL, or on another instance): on
/// PostgreSQL once the trigger's notification arrives; on SQLite, which
/// serves one instance, only when the entry's lifetime ends.
async fn learns_of_the_sign_out(app: &TestApp, token: &str) {
    if app.is_postgres() {
        assert!(
            becomes_anonymous(app, token).await,
            "the instance still answers for a session that ended elsewhere"
        );
    } else {
        assert!(username(app, token).await.is_some());
        app.clock.advance(chrono::Duration::seconds(5));
        assert!(username(app, token).await.is_none());
    }
}

#[tokio::test]
async fn repeated_requests_are_answered_from_memory_for_a_few_seconds() {
    let app = spawn_app().await;
    session_cache_ready(&app).await;
    let token = signed_in(&app, "cached_caller", "cached@example.org").await;
    warm(&app, &token).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("custos_session_cache_active 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("custos_session_cache_lookups_total{result=\"hit\"}"),
        "{metrics}"
    );

    // Revoked behind the server's back, in SQL.
    app.state
        .db()
        .execute_unprepared("UPDATE sessions SET revoked_at = created_at")
        .await
        .unwrap();
    learns_of_the_sign_out(&app, &token).await;
}

#[tokio::test]
async fn a_mutation_forgets_only_the_account_it_changed() {
    let app = spawn_app().await;
    session_cache_ready(&app).await;
    let token = signed_in(&app, "steady_caller", "steady@example.org").await;
    warm(&app, &token).await;

    // Sign-ups (new, and one with a taken address) and sign-ins change no
    // cached row: the next request is still answered from memory.
    let body = signup(&app, "newcomer", "newcomer@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let body = signup(&app, "copycat", "steady@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let other = login(&app, "newcomer", PASSWORD).await;
    let (hits, misses) = app.state.session_cache().counts();
    assert!(username(&app, &token).await.is_some());
    assert_eq!(app.state.session_cache().counts(), (hits + 1, misses));

    // Another person's sign-out forgets their account, at once, and
    // leaves this caller's entry in memory.
    warm(&app, &other).await;
    let body = app
        .gql_with_token(Some(&other), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    let (hits, misses) = app.state.session_cache().counts();
    assert!(username(&app, &token).await.is_some());
    assert_eq!(app.state.session_cache().counts(), (hits + 1, misses));
    assert!(username(&app, &other).await.is_none());
}

#[tokio::test]
async fn a_cache_of_zero_seconds_reads_the_database_every_time() {
    let app = crate::helpers::spawn_app_with(|s| s.session_cache_seconds = 0).await;
    let token = signed_in(&app, "uncached_caller", "uncached@example.org").await;
    assert!(username(&app, &token).await.is_some());
    assert!(username(&app, &token).await.is_some());
    assert_eq!(app.state.session_cache().counts(), (0, 0));
    assert!(app.state.session_cache().is_empty());
    app.state
        .db()
        .execute_unprepared("UPDATE sessions SET revoked_at = created_at")
        .await
        .unwrap();
    assert!(username(&app, &token).await.is_none());
}

#[tokio::test]
async fn changes_through_the_api_are_never_served_stale() {
    let app = spawn_app().await;
    session_cache_ready(&app).await;
    let first = signed_in(&app, "changing_person", "changing@example.org").await;
    let second = login(&app, "changing_person", PASSWORD).await;
    let third = login(&app, "changing_person", PASSWORD).await;

    // A new name shows at once.
    warm(&app, &first).await;
    let body = app
        .gql_with_token(
            Some(&first),
            "mutation { changeUsername(username: \"changed_person\") { username } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["changeUsername"]["username"], "changed_person",
        "{body}"
    );
    assert_eq!(
        username(&app, &first).await.as_deref(),
        Some("changed_person")
    );

    // A session revoked from another ends at once.
    let mine = my_session(&app, &second).await;
    warm(&app, &second).await;
    let body = app
        .gql_with_token(
            Some(&first),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": mine }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
    assert!(username(&app, &second).await.is_none());

    // Signing out ends the session at once.
    warm(&app, &third).await;
    let body = app
        .gql_with_token(Some(&third), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert!(username(&app, &third).await.is_none());

    // A password reset, asked for by someone not signed in, ends the rest.
    let token = reset_token(&app, "changing@example.org").await;
    warm(&app, &first).await;
    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    assert!(username(&app, &first).await.is_none());
}

async fn my_session(app: &TestApp, token: &str) -> serde_json::Value {
    let body = app
        .gql_with_token(Some(token), "{ mySessions { id current } }", json!({}))
        .await;
    body["data"]["mySessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .clone()
}

#[tokio::test]
async fn a_role_taken_away_is_refused_at_once() {
    let app = spawn_app().await;
    session_cache_ready(&app).await;
    let admin = admin_token(&app).await;
    let (support, support_id) = staff(&app, &admin, "helper_one", "SUPPORT").await;
    let queue = "{ supportQueue(first: 5) { nodes { id } } }";
    let body = app.gql_with_token(Some(&support), queue, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    warm(&app, &support).await;
    let body = app
        .gql_with_token(
            Some(&admin),
            "mutation($id: ID!) { setRole(accountId: $id, role: USER) { role } }",
            json!({ "id": support_id }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");
    let body = app.gql_with_token(Some(&support), queue, json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    assert_eq!(my_id(&app, &support).await, support_id);
}

#[tokio::test]
async fn a_minor_whose_guardian_never_answered_is_signed_out_by_the_job() {
    let app = spawn_app().await;
    session_cache_ready(&app).await;
    let body = signup_minor(
        &app,
        "unanswered_minor",
        "unanswered@example.org",
        "silent.parent@example.org",
    )
    .await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let token = login(&app, "unanswered_minor", PASSWORD).await;
    // Signed up long ago, as far as the job can tell; on SQLite this change
    // does not reach the cache, so only the job's own invalidation can.
    let long_ago = app.clock.now() - chrono::Duration::days(365);
    entity::account::Entity::update_many()
        .col_expr(
            entity::account::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(long_ago),
        )
        .exec(app.state.db())
        .await
        .unwrap();
    if app.is_postgres() {
        // The trigger already told the cache; warm it again.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    warm(&app, &token).await;
    let expired = custos::erasure::guardian::expire_unanswered(&app.state)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert!(username(&app, &token).await.is_none());
}

#[tokio::test]
async fn another_instance_learns_of_a_sign_out() {
    let one = spawn_app().await;
    let two = one.another_instance().await;
    session_cache_ready(&one).await;
    session_cache_ready(&two).await;
    let token = signed_in(&one, "two_places", "two.places@example.org").await;
    warm(&one, &token).await;
    warm(&two, &token).await;
    let body = one
        .gql_with_token(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert!(username(&one, &token).await.is_none());
    learns_of_the_sign_out(&two, &token).await;
}

#[tokio::test]
async fn a_lost_change_listener_turns_the_cache_off_until_it_is_back() {
    let app = spawn_app().await;
    if !app.is_postgres() {
        // SQLite has no listener: the cache is on from the start.
        assert!(app.state.session_cache().is_active());
        return;
    }
    session_cache_ready(&app).await;
    let token = signed_in(&app, "listener_lost", "listener.lost@example.org").await;
    warm(&app, &token).await;
    // Cut the listener's connection, as a database restart or a network
    // failure would.
    cut_change_listener(&app).await;
    let off = eventually(200, Duration::from_millis(10), || async {
        !app.state.session_cache().is_active()
    })
    .await;
    assert!(off, "the cache stayed in use without its listener");
    // Meanwhile every request reads the database, and nothing is kept.
    let (hits, _) = app.state.session_cache().counts();
    assert!(username(&app, &token).await.is_some());
    assert!(username(&app, &token).await.is_some());
    assert_eq!(app.state.session_cache().counts().0, hits);
    assert!(app.state.session_cache().is_empty());
    // It listens again, and only then answers from memory, afresh.
    session_cache_ready(&app).await;
    assert!(app.state.session_cache().is_empty());
    warm(&app, &token).await;
}

#[tokio::test]
async fn an_account_erased_on_one_instance_leaves_no_key_in_anothers_cache() {
    let one = spawn_app().await;
    if !one.is_postgres() {
        // SQLite serves one instance: the purging instance forgets the keys
        // itself (the key store's unit tests).
        return;
    }
    let two = one.another_instance().await;
    session_cache_ready(&one).await;
    session_cache_ready(&two).await;
    let token = signed_in(&one, "erased_elsewhere", "erased.elsewhere@example.org").await;
    let id = uuid::Uuid::parse_str(&my_id(&one, &token).await).unwrap();
    // The second instance reads the person's data: their key is unwrapped
    // and kept there.
    assert_eq!(
        username(&two, &token).await.as_deref(),
        Some("erased_elsewhere")
    );
    let key = two
        .state
        .keys()
        .cached(two.state.cipher(), two.state.db(), id)
        .await
        .unwrap();
    assert!(key.is_some());
    assert!(two.state.keys().holds(id));

    due_for_purge(&one, "erased_elsewhere", "erased.elsewhere@example.org").await;
    let report = custos::erasure::purge::run_once(&one.state).await.unwrap();
    assert_eq!(report.accounts, 1);
    let forgotten = eventually(80, Duration::from_millis(25), || async {
        !two.state.keys().holds(id)
    })
    .await;
    assert!(
        forgotten,
        "another instance still holds the erased account's key"
    );
}

#[tokio::test]
async fn keys_are_not_kept_while_the_change_listener_is_away() {
    let app = spawn_app().await;
    if !app.is_postgres() {
        return;
    }
    session_cache_ready(&app).await;
    let token = signed_in(&app, "listener_keys", "listener.keys@example.org").await;
    let id = uuid::Uuid::parse_str(&my_id(&app, &token).await).unwrap();
    assert!(username(&app, &token).await.is_some());
    let keys = app.state.keys();
    keys.cached(app.state.cipher(), app.state.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert!(keys.holds(id));
    cut_change_listener(&app).await;
    let dropped = eventually(200, Duration::from_millis(10), || async {
        !app.state.session_cache().is_active()
    })
    .await;
    assert!(dropped, "the listener never noticed");
    // An erasure could have been missed meanwhile: every key is forgotten.
    assert!(!keys.holds(id));
}
