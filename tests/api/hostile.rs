//! Hostile documents and variables: nesting no parser should be handed,
//! refused before anything parses it, anonymously, and the server stays up.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, policy_version, spawn_app};
use custos::http::{MAX_QUERY_BYTES, documents::MAX_NESTING};

/// Where nested values go: as the argument of a field.
const ARGUMENT: (&str, &str) = ("{ policy(language: ", ") { version } }");

/// `inner` wrapped in `levels` of `open` and `close`, inside `frame`.
fn nested(frame: (&str, &str), open: &str, inner: &str, close: &str, levels: usize) -> String {
    format!(
        "{}{}{inner}{}{}",
        frame.0,
        open.repeat(levels),
        close.repeat(levels),
        frame.1
    )
}

/// The server still answers an ordinary query.
async fn still_serves(app: &TestApp) {
    // Panics with the answer unless it names a version.
    policy_version(app).await;
}

#[tokio::test]
async fn deep_nesting_is_refused_unparsed_and_the_server_stays_up() {
    let app = spawn_app().await;
    // Lists, input objects, parentheses and selection sets, from just past
    // the bound to the deepest a query text of the longest accepted length
    // holds (about 8,000 levels of lists). Without the bound, a few hundred
    // levels of objects got through the parser's own stack check and
    // overflowed the stack of the code that walks the parsed value.
    let mut answers = Vec::new();
    for (kind, frame, open, inner, close) in [
        ("lists", ARGUMENT, "[", "\"en\"", "]"),
        ("objects", ARGUMENT, "{a:", "1", "}"),
        ("parentheses", ARGUMENT, "(", "1", ")"),
        ("selections", ("{ ", " }"), "a{", "a", "}"),
    ] {
        let frame_bytes = nested(frame, open, inner, close, 0).len();
        let deepest = (MAX_QUERY_BYTES - frame_bytes) / (open.len() + close.len());
        for levels in [
            MAX_NESTING + 1,
            100,
            200,
            300,
            400,
            500,
            1_000,
            2_000,
            4_000,
            deepest,
        ] {
            let query = nested(frame, open, inner, close, levels);
            if query.len() > MAX_QUERY_BYTES {
                continue;
            }
            answers.push((kind, levels, app.post_query(&query).await));
        }
        let longest = nested(frame, open, inner, close, deepest).len();
        assert!(
            longest <= MAX_QUERY_BYTES && longest + 4 > MAX_QUERY_BYTES,
            "{kind}"
        );
        still_serves(&app).await;
    }
    // Checked once all were sent, so that a server without the bound is
    // seen to crash rather than to answer the first one wrongly.
    for (kind, levels, (status, body)) in answers {
        assert_eq!(status, 400, "{kind} at {levels}: {body}");
        assert_eq!(error_code(&body), Some("GRAPHQL_PARSE_FAILED"), "{kind}");
        assert_eq!(
            body["errors"][0]["extensions"]["messageKey"], "graphql.nested_too_deep",
            "{kind}: {body}"
        );
    }
}

#[tokio::test]
async fn nesting_up_to_the_bound_is_parsed_and_answered() {
    let app = spawn_app().await;
    // The bound itself is safe to parse: the executor answers (the value
    // has the wrong type), it is not refused unread.
    let levels = MAX_NESTING - 2;
    let query = nested(ARGUMENT, "[", "\"en\"", "]", levels);
    let (status, body) = app.post_query(&query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
    assert_ne!(
        body["errors"][0]["extensions"]["messageKey"], "graphql.nested_too_deep",
        "{body}"
    );
    // One more level is refused before parsing.
    let query = nested(ARGUMENT, "[", "\"en\"", "]", levels + 1);
    let (status, _) = app.post_query(&query).await;
    assert_eq!(status, 400);
    // Brackets inside a string are text, however many.
    let text = "[".repeat(4_000);
    let body = app
        .gql(
            &format!("{{ policy(language: \"{text}\") {{ version }} }}"),
            json!({}),
        )
        .await;
    // Parsed and run: the resolver, not the nesting guard, refuses it.
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "language",
        "{body}"
    );
}

/// Posts a raw JSON body; the status and decoded answer.
async fn post_body(app: &TestApp, body: String) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let query = r#"query($l: String) { policy(language: $l) { version } }"#;
    // Far past serde_json's recursion limit, as deep as the body allows.
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let levels = 60 * 1024 / (open.len() + close.len());
        let body = format!(
            r#"{{"query":"{query}","variables":{{"l":{}1{}}}}}"#,
            open.repeat(levels),
            close.repeat(levels)
        );
        let (status, answer) = post_body(&app, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(error_code(&answer), Some("BAD_REQUEST"), "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["messageKey"], "request.body_nested_too_deep",
            "{answer}"
        );
        still_serves(&app).await;
    }
    // Just inside the limit: read, and refused by type, not by a crash.
    let levels = 120;
    let body = format!(
        r#"{{"query":"{query}","variables":{{"l":{}1{}}}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    );
    let (status, answer) = post_body(&app, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        error_code(&answer),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{answer}"
    );
    still_serves(&app).await;
}
