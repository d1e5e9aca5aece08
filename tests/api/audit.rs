//! The audit trail: `auditLog` through HTTP (guard and paging) and
//! `custos audit verify` as an operator runs it, against the test's own
//! database.

use std::process::Output;

use entity::audit_entry;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set,
};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, admin_token, error_code, my_id, run_custos, signed_in, spawn_app, staff,
};

const AUDIT_LOG: &str = "query($first: Int, $after: String) {
  auditLog(first: $first, after: $after) {
    edges { cursor node { id at actorId action subjectId detail } }
    nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

/// Runs `custos audit verify` against the app's database, with nothing
/// else from this process's environment or working directory.
async fn audit_verify(app: &TestApp) -> Output {
    run_custos(app, &["audit", "verify"], &[]).await
}

/// Makes a few entries: role changes back and forth.
async fn some_entries(app: &TestApp, admin: &str) -> String {
    let (_, id) = staff(app, admin, "li_si", "SUPPORT").await;
    for role in ["USER", "SUPPORT", "USER"] {
        let body = app
            .gql_with_token(
                Some(admin),
                "mutation($id: ID!, $r: Role!) { setRole(accountId: $id, role: $r) { role } }",
                json!({ "id": id, "r": role }),
            )
            .await;
        assert_eq!(body["data"]["setRole"]["role"], role, "{body}");
    }
    id
}

fn entries(body: &Value) -> Vec<Value> {
    crate::helpers::paging::nodes(body, "auditLog")
}

#[tokio::test]
async fn audit_log_pages_oldest_first_for_admins_only() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let subject = some_entries(&app, &admin).await;

    let all = entries(
        &app.gql_with_token(Some(&admin), AUDIT_LOG, json!({ "first": 200 }))
            .await,
    );
    let role_changes: Vec<&str> = all
        .iter()
        .filter(|e| e["action"] == "role.set" && e["subjectId"] == subject.as_str())
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        role_changes,
        [
            "USER -> SUPPORT",
            "SUPPORT -> USER",
            "USER -> SUPPORT",
            "SUPPORT -> USER"
        ]
    );

    // Pages of two, following `after`, cover the whole trail in order.
    let paged =
        crate::helpers::paging::walk(&app, Some(&admin), AUDIT_LOG, json!({}), "auditLog", 2).await;
    assert_eq!(paged, all);
    crate::helpers::paging::assert_bounds_and_bad_cursors(
        &app,
        Some(&admin),
        AUDIT_LOG,
        json!({}),
        "auditLog",
    )
    .await;
    // Only this list's cursors open here: not one of a person's ledger.
    let user = signed_in(&app, "chen_qi", "chen.qi@example.org").await;
    let history = app
        .gql_with_token(
            Some(&user),
            "{ myConsentHistory(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let foreign = history["data"]["myConsentHistory"]["pageInfo"]["endCursor"].clone();
    assert!(foreign.is_string(), "{history}");
    let body = app
        .gql_with_token(Some(&admin), AUDIT_LOG, json!({ "after": foreign }))
        .await;
    crate::helpers::paging::assert_bad_cursor(&body);

    let body = app.gql(AUDIT_LOG, json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let user = signed_in(&app, "wang_wu", "wang.wu@example.org").await;
    let (support, _) = staff(&app, &admin, "zhao_liu", "SUPPORT").await;
    for token in [user, support] {
        let body = app.gql_with_token(Some(&token), AUDIT_LOG, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
}

#[tokio::test]
async fn audit_verify_passes_an_intact_chain_and_names_an_edited_entry() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    some_entries(&app, &admin).await;

    let output = audit_verify(&app).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "intact chain refused: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total = audit_entry::Entity::find()
        .count(app.state.db())
        .await
        .unwrap();
    assert!(total >= 4);
    assert!(
        stdout.contains(&format!("audit chain intact: {total} entries verified")),
        "{stdout}"
    );

    // Someone with database access rewrites who did the third entry.
    let third = audit_entry::Entity::find()
        .filter(audit_entry::Column::Seq.eq(3))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.actor_id.map(|a| a.to_string()), Some(admin_id));
    let mut edited = third.clone().into_active_model();
    edited.detail = Set("SUPPORT -> ADMIN".into());
    edited.update(app.state.db()).await.unwrap();

    let output = audit_verify(&app).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "edited chain accepted: {stderr}");
    assert!(stderr.contains(&third.id.to_string()), "{stderr}");
    assert!(stderr.contains("seq 3"), "{stderr}");
}
