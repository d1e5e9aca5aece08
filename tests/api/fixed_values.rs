//! Values clients branch on are enums in the schema, and the answers stay
//! within them: the password `reason` of `WEAK_PASSWORD` and the `source`
//! of a consent decision.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, record_consent, signed_in, spawn_app};

async fn enum_values(app: &TestApp, name: &str) -> BTreeSet<String> {
    let body = app
        .gql(
            "query($n: String!) { __type(name: $n) { kind enumValues { name } } }",
            json!({ "n": name }),
        )
        .await;
    assert_eq!(body["data"]["__type"]["kind"], "ENUM", "{body}");
    body["data"]["__type"]["enumValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The values of an enum as the SDL (`schema.graphql`) declares it: types
/// reached from no field, like the values of error extensions, are in the
/// SDL for codegen but not in introspection.
fn sdl_enum_values(name: &str) -> BTreeSet<String> {
    let sdl = custos::graphql::sdl();
    let start = sdl
        .find(&format!("enum {name} {{"))
        .unwrap_or_else(|| panic!("no enum {name} in the SDL"));
    let body = &sdl[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    let mut values = BTreeSet::new();
    let mut in_description = false;
    for line in body.lines().map(str::trim) {
        if line.starts_with("\"\"\"") {
            in_description = !(in_description || line.len() > 3 && line.ends_with("\"\"\""));
            continue;
        }
        if !in_description && !line.is_empty() {
            values.insert(line.to_owned());
        }
    }
    values
}

#[tokio::test]
async fn every_password_refusal_names_a_reason_of_its_enum() {
    let app = spawn_app().await;
    let reasons = sdl_enum_values("WeakPasswordReason");
    let token = signed_in(&app, "reason_li", "reason.li@example.org").await;
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let mut seen = BTreeSet::new();
    for (password, reason) in [
        ("short".to_owned(), "TOO_SHORT"),
        ("x".repeat(129), "TOO_LONG"),
        ("reason_li".to_owned(), "SAME_AS_IDENTITY"),
        ("password123".to_owned(), "COMMON"),
    ] {
        let body = app
            .gql_with_token(
                Some(&token),
                change,
                json!({ "c": PASSWORD, "n": password }),
            )
            .await;
        assert_eq!(error_code(&body), Some("WEAK_PASSWORD"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["reason"], reason, "{body}");
        seen.insert(reason.to_owned());
    }
    assert_eq!(seen, reasons);
}

#[tokio::test]
async fn consent_sources_have_an_enum_beside_the_contracts_string() {
    let app = spawn_app().await;
    assert_eq!(
        enum_values(&app, "ConsentSource").await,
        ["SIGNUP", "SETTINGS", "POLICY_UPDATE"]
            .map(str::to_owned)
            .into()
    );
    let body = app
        .gql(
            "{ __type(name: \"ConsentEvent\") { fields { name type { kind ofType { kind name } } } } }",
            json!({}),
        )
        .await;
    let field_type = |name: &str| {
        body["data"]["__type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["type"].clone())
            .unwrap_or(Value::Null)
    };
    // The contract types `source` as a string; `sourceKind` is the enum.
    assert_eq!(
        field_type("source"),
        json!({ "kind": "NON_NULL", "ofType": { "kind": "SCALAR", "name": "String" } })
    );
    assert_eq!(
        field_type("sourceKind"),
        json!({ "kind": "NON_NULL", "ofType": { "kind": "ENUM", "name": "ConsentSource" } })
    );
    let token = signed_in(&app, "source_li", "source.li@example.org").await;
    let body = record_consent(&app, &token, "product_updates", true).await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app
        .gql_with_token(
            Some(&token),
            "{ myConsentHistory { nodes { source sourceKind } } }",
            json!({}),
        )
        .await;
    for event in body["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap()
    {
        assert_eq!(event["source"], event["sourceKind"], "{event}");
    }
    let sources: BTreeSet<&str> = body["data"]["myConsentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, BTreeSet::from(["SIGNUP", "SETTINGS"]), "{body}");
}
