//! What every connection (`supportQueue`, `auditLog`, `myConsentHistory`)
//! must do, for the tests of each list: walk pages by `endCursor`, bound
//! `first`, and refuse every cursor it did not give out in one way.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// The nodes of a connection answer (from its edges), checking that
/// `nodes` and `pageInfo` agree with the edges when they were asked for.
pub fn nodes(body: &Value, field: &str) -> Vec<Value> {
    let connection = &body["data"][field];
    let edges = connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {body}"));
    let nodes: Vec<Value> = edges.iter().map(|edge| edge["node"].clone()).collect();
    if let Some(listed) = connection["nodes"].as_array() {
        let ids = |list: &[Value]| list.iter().map(|n| n["id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(listed), ids(&nodes), "nodes and edges differ: {body}");
    }
    let page_info = &connection["pageInfo"];
    if page_info.is_object() {
        assert_eq!(
            page_info["startCursor"],
            edges.first().map_or(Value::Null, |e| e["cursor"].clone()),
            "{body}"
        );
        assert_eq!(
            page_info["endCursor"],
            edges.last().map_or(Value::Null, |e| e["cursor"].clone()),
            "{body}"
        );
    }
    nodes
}

/// Every node of a list, walked `first` at a time by `endCursor` (with
/// `variables` besides), checking each page's `pageInfo` on the way.
pub async fn walk(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    field: &str,
    first: usize,
) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut vars = variables.clone();
        vars["first"] = json!(first);
        vars["after"] = after.clone();
        let body = app.gql_with_token(token, query, vars).await;
        assert!(body["errors"].is_null(), "{body}");
        let page = nodes(&body, field);
        let info = &body["data"][field]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], !after.is_null(), "{body}");
        assert!(page.len() <= first, "{body}");
        all.extend(page.iter().cloned());
        if info["hasNextPage"] == false {
            break;
        }
        assert_eq!(page.len(), first, "a page before the last is full: {body}");
        after = info["endCursor"].clone();
        assert!(after.is_string(), "{body}");
    }
    let mut ids: Vec<String> = all.iter().map(|n| n["id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "an item came twice");
    all
}

/// The answer to a cursor the list did not give out.
pub fn assert_bad_cursor(body: &Value) {
    assert_eq!(error_code(body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "after", "{body}");
    assert!(body["data"].is_null(), "{body}");
}

/// `first` beyond its bounds is refused, 0 shows nothing, and every
/// cursor but the list's own is refused alike: malformed, forged, cut.
/// The list must have at least two items.
pub async fn assert_bounds_and_bad_cursors(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    field: &str,
) {
    for first in [201, -1] {
        let mut vars = variables.clone();
        vars["first"] = json!(first);
        let body = app.gql_with_token(token, query, vars).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "first", "{body}");
    }
    let mut vars = variables.clone();
    vars["first"] = json!(0);
    let body = app.gql_with_token(token, query, vars).await;
    assert!(nodes(&body, field).is_empty(), "{body}");
    assert_eq!(
        body["data"][field]["pageInfo"]["hasNextPage"], true,
        "{body}"
    );

    let mut vars = variables.clone();
    vars["first"] = json!(1);
    let body = app.gql_with_token(token, query, vars).await;
    let cursor = body["data"][field]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let forged = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 64])
    };
    let mut messages = Vec::new();
    for bad in [
        "nonsense!".to_owned(),
        String::new(),
        uuid::Uuid::new_v4().to_string(),
        forged,
        cursor[..cursor.len() - 3].to_owned(),
        format!("{cursor}AA"),
    ] {
        let mut vars = variables.clone();
        vars["after"] = json!(bad);
        let body = app.gql_with_token(token, query, vars).await;
        assert_bad_cursor(&body);
        messages.push(body["errors"][0]["message"].clone());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one answer for every bad cursor: {messages:?}"
    );
}
