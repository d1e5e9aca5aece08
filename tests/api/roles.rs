//! Staff roles through HTTP: `setRole`, the last-admin rule, its audit
//! entries, and a walk over the whole schema checking that every staff field
//! refuses people without the role.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, admin_token, audit_entries, error_code, my_id, signed_in, spawn_app, staff,
};

const SET_ROLE: &str = "mutation($id: ID!, $role: Role!) {
  setRole(accountId: $id, role: $role) { id username email role }
}";

#[tokio::test]
async fn an_admin_sets_roles_and_every_change_is_audited() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    let user = signed_in(&app, "li_si", "li.si@example.org").await;
    let user_id = my_id(&app, &user).await;

    let body = app
        .gql_with_token(
            Some(&admin),
            SET_ROLE,
            json!({ "id": user_id, "role": "SUPPORT" }),
        )
        .await;
    let account = &body["data"]["setRole"];
    assert_eq!(account["id"], user_id.as_str(), "{body}");
    assert_eq!(account["role"], "SUPPORT");
    assert_eq!(account["username"], "li_si");
    // The change applies to the subject's next request, same session.
    let me = app
        .gql_with_token(Some(&user), "{ me { role } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "SUPPORT");

    let body = app
        .gql_with_token(
            Some(&admin),
            SET_ROLE,
            json!({ "id": user_id, "role": "USER" }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");

    let entries: Vec<Value> = audit_entries(&app, &admin)
        .await
        .into_iter()
        .filter(|e| e["action"] == "role.set")
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["actorId"], admin_id.as_str());
        assert_eq!(entry["subjectId"], user_id.as_str());
    }
    assert_eq!(entries[0]["detail"], "USER -> SUPPORT");
    assert_eq!(entries[1]["detail"], "SUPPORT -> USER");
    // Details hold no personal data.
    assert!(!entries.iter().any(|e| {
        let detail = e["detail"].as_str().unwrap_or_default();
        detail.contains("li_si") || detail.contains("example.org")
    }));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;

    for role in ["USER", "SUPPORT"] {
        let body = app
            .gql_with_token(
                Some(&admin),
                SET_ROLE,
                json!({ "id": admin_id, "role": role }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "role");
    }
    // Re-stating the role is no demotion.
    let body = app
        .gql_with_token(
            Some(&admin),
            SET_ROLE,
            json!({ "id": admin_id, "role": "ADMIN" }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "ADMIN", "{body}");

    // With a second admin, the first may step down; then the second is last.
    let (second, second_id) = staff(&app, &admin, "wang_wu", "ADMIN").await;
    let body = app
        .gql_with_token(
            Some(&admin),
            SET_ROLE,
            json!({ "id": admin_id, "role": "USER" }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");
    let body = app
        .gql_with_token(
            Some(&second),
            SET_ROLE,
            json!({ "id": second_id, "role": "SUPPORT" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "role");
    // The former admin lost the role at once.
    let body = app
        .gql_with_token(
            Some(&admin),
            SET_ROLE,
            json!({ "id": second_id, "role": "USER" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let first = admin_token(&app).await;
    let first_id = my_id(&app, &first).await;
    let (second, second_id) = staff(&app, &first, "zhao_liu", "ADMIN").await;
    let (a, b) = tokio::join!(
        app.gql_with_token(
            Some(&first),
            SET_ROLE,
            json!({ "id": second_id, "role": "USER" })
        ),
        app.gql_with_token(
            Some(&second),
            SET_ROLE,
            json!({ "id": first_id, "role": "USER" })
        ),
    );
    let succeeded = [&a, &b]
        .iter()
        .filter(|body| body["data"]["setRole"]["role"] == "USER")
        .count();
    // Either one wins and the other is refused (or no longer an admin).
    assert_eq!(succeeded, 1, "{a}\n{b}");
    let admins = [&first, &second];
    let mut still_admin = 0;
    for token in admins {
        let me = app
            .gql_with_token(Some(token), "{ me { role } }", json!({}))
            .await;
        if me["data"]["me"]["role"] == "ADMIN" {
            still_admin += 1;
        }
    }
    assert_eq!(still_admin, 1);
}

#[tokio::test]
async fn set_role_on_unknown_or_malformed_ids_is_not_found() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    for id in [uuid::Uuid::new_v4().to_string(), "not-an-id".to_owned()] {
        let body = app
            .gql_with_token(
                Some(&admin),
                SET_ROLE,
                json!({ "id": id, "role": "SUPPORT" }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
}

#[tokio::test]
async fn set_role_needs_an_admin() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user = signed_in(&app, "qian_qi", "qian.qi@example.org").await;
    let user_id = my_id(&app, &user).await;
    let (support, _) = staff(&app, &admin, "sun_ba", "SUPPORT").await;
    let vars = json!({ "id": user_id, "role": "ADMIN" });
    let body = app.gql(SET_ROLE, vars.clone()).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    for token in [&user, &support] {
        let body = app
            .gql_with_token(Some(token), SET_ROLE, vars.clone())
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
    let me = app
        .gql_with_token(Some(&user), "{ me { role } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "USER");
}

// ---------------------------------------------------------------------------
// The schema walk.

/// Staff fields named in the shared contract. Each one that exists must be
/// marked as staff in its description, or the walk below would skip it.
const CONTRACT_STAFF_FIELDS: &[&str] = &[
    "supportQueue",
    "auditLog",
    "publishPolicy",
    "reportSecurityIncident",
    "sendProductUpdate",
    "setRole",
    "flagMinorWithoutGuardianConsent",
    "recordProcessingException",
    "findAccount",
];

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staff {
    AdminOnly,
    SupportOrAdmin,
}

struct StaffField {
    operation: &'static str,
    name: String,
    staff: Staff,
    arguments: Vec<Value>,
    return_type: Value,
}

async fn introspect(app: &TestApp, query: &str) -> Value {
    let body = app.gql(query, json!({})).await;
    assert!(body["errors"].is_null(), "introspection failed: {body}");
    body["data"]["__schema"].clone()
}

/// Every input object's fields and every enum's values, by type name.
async fn named_types(app: &TestApp) -> BTreeMap<String, Value> {
    let schema = introspect(
        app,
        &format!(
            "{{ __schema {{ types {{ kind name enumValues {{ name }} inputFields {{ name defaultValue type {{ {TYPE_REF} }} }} }} }} }}"
        ),
    )
    .await;
    schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

async fn staff_fields(app: &TestApp) -> (Vec<StaffField>, BTreeSet<String>) {
    let mut found = Vec::new();
    let mut all = BTreeSet::new();
    for (operation, root) in [("query", "queryType"), ("mutation", "mutationType")] {
        let schema = introspect(
            app,
            &format!(
                "{{ __schema {{ {root} {{ fields {{ name description type {{ {TYPE_REF} }} args {{ name defaultValue type {{ {TYPE_REF} }} }} }} }} }} }}"
            ),
        )
        .await;
        for field in schema[root]["fields"].as_array().unwrap() {
            let name = field["name"].as_str().unwrap().to_owned();
            all.insert(name.clone());
            let description = field["description"].as_str().unwrap_or_default();
            let staff = if description.starts_with("ADMIN.") {
                Staff::AdminOnly
            } else if description.starts_with("SUPPORT or ADMIN") {
                Staff::SupportOrAdmin
            } else {
                assert!(
                    !CONTRACT_STAFF_FIELDS.contains(&name.as_str()),
                    "{name} is a staff field in the contract, but its description does not start with \"ADMIN.\" or \"SUPPORT or ADMIN\""
                );
                continue;
            };
            found.push(StaffField {
                operation,
                name,
                staff,
                arguments: field["args"].as_array().unwrap().clone(),
                return_type: field["type"].clone(),
            });
        }
    }
    (found, all)
}

/// A GraphQL literal of the given type: the smallest valid value, built
/// from the schema itself so a new staff field is covered without anyone
/// writing its arguments. Panics (failing the test) on a type it cannot
/// build, naming the field.
fn literal(field: &str, ty: &Value, types: &BTreeMap<String, Value>) -> String {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" => literal(field, &ty["ofType"], types),
        "LIST" => format!("[{}]", literal(field, &ty["ofType"], types)),
        "SCALAR" => match ty["name"].as_str().unwrap() {
            "ID" => format!("\"{}\"", uuid::Uuid::new_v4()),
            "String" => "\"x\"".into(),
            "Int" => "1".into(),
            "Float" => "1.0".into(),
            "Boolean" => "true".into(),
            "DateTime" => "\"2026-12-01T00:00:00Z\"".into(),
            "JSON" => "{}".into(),
            other => panic!("{field}: no literal for scalar {other}; teach `literal` about it"),
        },
        "ENUM" => {
            let name = ty["name"].as_str().unwrap();
            types[name]["enumValues"][0]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{field}: enum {name} has no values"))
                .to_owned()
        }
        "INPUT_OBJECT" => {
            let name = ty["name"].as_str().unwrap();
            let fields = types[name]["inputFields"].as_array().unwrap();
            format!("{{ {} }}", required_arguments(field, fields, types))
        }
        other => panic!("{field}: cannot build an argument of kind {other}"),
    }
}

/// `name: literal` for every argument that must be given (non-null without
/// a default); optional ones are left out, which is the minimal call.
fn required_arguments(field: &str, arguments: &[Value], types: &BTreeMap<String, Value>) -> String {
    arguments
        .iter()
        .filter(|arg| arg["type"]["kind"] == "NON_NULL" && arg["defaultValue"].is_null())
        .map(|arg| {
            format!(
                "{}: {}",
                arg["name"].as_str().unwrap(),
                literal(field, &arg["type"], types)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{ __typename }` when the field returns an object, else nothing.
fn selection(ty: &Value) -> &'static str {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" | "LIST" => selection(&ty["ofType"]),
        "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
        _ => "",
    }
}

fn operation(field: &StaffField, types: &BTreeMap<String, Value>) -> String {
    let arguments = required_arguments(&field.name, &field.arguments, types);
    let arguments = if arguments.is_empty() {
        String::new()
    } else {
        format!("({arguments})")
    };
    format!(
        "{} {{ {}{arguments}{} }}",
        field.operation,
        field.name,
        selection(&field.return_type)
    )
}

#[tokio::test]
async fn every_staff_field_refuses_people_without_the_role() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user = signed_in(&app, "zhou_jiu", "zhou.jiu@example.org").await;
    let (support, _) = staff(&app, &admin, "wu_shi", "SUPPORT").await;

    let types = named_types(&app).await;
    let (fields, all) = staff_fields(&app).await;
    // The walk must not pass by finding nothing: these are built already.
    for name in ["auditLog", "setRole", "reportSecurityIncident"] {
        assert!(
            fields.iter().any(|f| f.name == name),
            "{name} was not found as a staff field"
        );
    }
    for name in CONTRACT_STAFF_FIELDS {
        if all.contains(*name) {
            assert!(
                fields.iter().any(|f| f.name == *name),
                "{name} escaped the walk"
            );
        }
    }

    for field in &fields {
        let document = operation(field, &types);
        let body = app.gql(&document, json!({})).await;
        assert_eq!(
            error_code(&body),
            Some("UNAUTHENTICATED"),
            "anonymous {document}: {body}"
        );
        let body = app.gql_with_token(Some(&user), &document, json!({})).await;
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "USER {document}: {body}"
        );
        let body = app
            .gql_with_token(Some(&support), &document, json!({}))
            .await;
        let code = error_code(&body);
        match field.staff {
            Staff::AdminOnly => {
                assert_eq!(code, Some("FORBIDDEN"), "SUPPORT {document}: {body}")
            }
            Staff::SupportOrAdmin => assert!(
                !matches!(code, Some("FORBIDDEN" | "UNAUTHENTICATED")),
                "SUPPORT {document}: {body}"
            ),
        }
    }
    // And the guard lets the role in: an admin is never refused for the role
    // (the made-up arguments may still be refused for what they are).
    for field in &fields {
        let document = operation(field, &types);
        let body = app.gql_with_token(Some(&admin), &document, json!({})).await;
        assert!(
            !matches!(error_code(&body), Some("FORBIDDEN" | "UNAUTHENTICATED")),
            "ADMIN {document}: {body}"
        );
    }
}
