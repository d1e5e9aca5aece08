//! Messages in the request's language, error codes that say who is wrong,
//! every invalid field at once, `usernameCheck` and `findAccount`.

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, SIGN_IN, SIGNUP, TestApp, admin_token, adult, audit_entries, error_code,
    error_fields, login, my_id, policy_version, signed_in, signup, signup_with, spawn_app,
    spawn_app_with, staff,
};

const CHECK: &str =
    "query($u: String!) { usernameCheck(username: $u) { allowed code message messageKey } }";
const FIND: &str = "query($l: String!) { findAccount(login: $l) { id username emailMasked role } }";

/// POSTs an operation with an optional token and `Accept-Language`.
async fn post(
    app: &TestApp,
    token: Option<&str>,
    language: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn first_error(body: &Value) -> &Value {
    &body["errors"][0]
}

fn message(body: &Value) -> &str {
    first_error(body)["message"].as_str().unwrap_or_default()
}

fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
}

#[tokio::test]
async fn errors_follow_accept_language_else_the_account_else_zh_cn() {
    let app = spawn_app().await;
    let wrong = json!({ "l": "nobody_here", "p": "not the password" });
    let en = post(&app, None, Some("en-US,en;q=0.9"), SIGN_IN, wrong.clone()).await;
    assert_eq!(error_code(&en), Some("INVALID_CREDENTIALS"));
    assert_eq!(message(&en), "The login or password is wrong.");
    assert_eq!(
        first_error(&en)["extensions"]["messageKey"],
        "auth.invalid_credentials"
    );
    let zh = post(&app, None, Some("zh-CN"), SIGN_IN, wrong.clone()).await;
    assert_eq!(message(&zh), "登录名或密码错误。");
    assert_eq!(
        first_error(&zh)["extensions"]["messageKey"],
        "auth.invalid_credentials"
    );
    // No header, or only languages we do not write: the default, zh-CN.
    for language in [None, Some("fr-FR, de;q=0.8")] {
        let body = post(&app, None, language, SIGN_IN, wrong.clone()).await;
        assert_eq!(message(&body), "登录名或密码错误。", "{language:?}");
    }

    // An account that signed up in English is answered in English when its
    // request names no language, and a header still wins.
    let version = policy_version(&app).await;
    let body = post(
        &app,
        None,
        Some("en"),
        SIGNUP,
        json!({ "input": adult(&version, "english_reader", "reader@example.org") }),
    )
    .await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let token = login(&app, "english_reader", PASSWORD).await;
    let change = "mutation { changePassword(currentPassword: \"wrong one\", newPassword: \"another fine passphrase\") }";
    let body = post(&app, Some(&token), None, change, json!({})).await;
    assert_eq!(error_code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    assert_eq!(first_error(&body)["extensions"]["field"], "currentPassword");
    assert_eq!(message(&body), "The login or password is wrong.");
    let body = post(&app, Some(&token), Some("zh-CN"), change, json!({})).await;
    assert_eq!(message(&body), "登录名或密码错误。");
}

#[tokio::test]
async fn arguments_are_worded_into_both_languages() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    let query = "mutation($s: String!) { createTicket(input: { category: OTHER, subject: $s, body: \"hello\" }) { id } }";
    let en = post(&app, None, Some("en"), query, json!({ "s": long })).await;
    assert_eq!(error_code(&en), Some("BAD_USER_INPUT"), "{en}");
    assert_eq!(first_error(&en)["extensions"]["field"], "subject");
    assert_eq!(message(&en), "A subject has at most 200 characters.");
    let zh = post(&app, None, Some("zh"), query, json!({ "s": long })).await;
    assert_eq!(message(&zh), "主题最多 200 个字符。");
    assert_eq!(
        first_error(&zh)["extensions"]["messageKey"],
        "ticket.subject_too_long"
    );
}

#[tokio::test]
async fn a_named_language_we_do_not_write_is_bad_user_input() {
    let app = spawn_app().await;
    let body = post(
        &app,
        None,
        Some("en"),
        "{ policy(language: \"fr\") { version } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(first_error(&body)["extensions"]["field"], "language");
    assert_eq!(
        first_error(&body)["extensions"]["messageKey"],
        "common.unsupported_language"
    );
    assert!(message(&body).contains("zh-CN or en"), "{body}");
    // The two we write are taken under their usual names.
    for (tag, language) in [("en-GB", "en"), ("zh-CN", "zh-CN"), ("zh", "zh-CN")] {
        let body = app
            .gql(
                "query($l: String) { policy(language: $l) { language } }",
                json!({ "l": tag }),
            )
            .await;
        assert_eq!(body["data"]["policy"]["language"], language, "{body}");
    }

    // So is an admin publishing texts in one.
    let admin = admin_token(&app).await;
    let publish = "mutation($l: String!, $t: String!) { publishPolicy(input: {
        version: \"2099-01\", major: false, summaryOfChanges: \"s\", text: \"t\", language: $l,
        purposes: [{ code: \"account\", title: \"a\", description: \"d\", required: true, sensitive: false, dataCategories: [] }],
        translations: [{ language: $t, summaryOfChanges: \"s\", text: \"t\", purposes: [] }]
    }) { version } }";
    let body = app
        .gql_with_token(Some(&admin), publish, json!({ "l": "klingon", "t": "en" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(first_error(&body)["extensions"]["field"], "language");
    let body = app
        .gql_with_token(Some(&admin), publish, json!({ "l": "zh-CN", "t": "fr" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(first_error(&body)["extensions"]["field"], "translations");
    assert_ne!(policy_version(&app).await, "2099-01");
}

#[tokio::test]
async fn a_document_that_does_not_parse_is_one_line_with_its_location() {
    let app = spawn_app().await;
    for (language, expected) in [
        (Some("en"), "The query text does not parse."),
        (None, "查询文本无法解析。"),
    ] {
        let body = post(&app, None, language, "{ me { id ", json!({})).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_PARSE_FAILED"), "{body}");
        let error = first_error(&body);
        assert_eq!(error["message"], expected);
        assert_eq!(error["extensions"]["messageKey"], "graphql.parse_failed");
        assert_eq!(error["locations"][0]["line"], 1, "{body}");
        assert!(error["locations"][0]["column"].as_u64().unwrap() >= 10);
        let detail = error["extensions"]["detail"].as_str().unwrap();
        assert!(
            !detail.contains('\n') && detail.contains("expected"),
            "{detail}"
        );
        assert!(body["data"].is_null());
    }
    // The parser's echo of the text (which may hold what a person typed)
    // is never sent back.
    let body = post(
        &app,
        None,
        None,
        "mutation { login(input: { login: \"ann\", password: \"hunter22 secret\" } { token } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&body), Some("GRAPHQL_PARSE_FAILED"), "{body}");
    assert!(!body.to_string().contains("hunter22"), "{body}");
    // Each counts as a failed request.
    assert!(
        app.metrics()
            .await
            .contains("custos_graphql_requests_total{operation=\"anonymous\",outcome=\"error\"} 3")
    );
}

#[tokio::test]
async fn a_document_that_does_not_fit_the_schema_is_a_validation_failure() {
    let app = spawn_app().await;
    let token = signed_in(&app, "typo_maker", "typo@example.org").await;
    let body = post(
        &app,
        Some(&token),
        Some("en"),
        "{ me { id usernme } }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
    let error = first_error(&body);
    assert_eq!(
        error["message"],
        "The query does not match the API's schema."
    );
    assert!(error["extensions"]["field"].is_null());
    assert!(
        error["extensions"]["detail"]
            .as_str()
            .unwrap()
            .contains("usernme")
    );
    assert_eq!(error["locations"][0]["line"], 1);
    let body = post(
        &app,
        Some(&token),
        Some("zh-CN"),
        "{ me { id usernme } }",
        json!({}),
    )
    .await;
    assert_eq!(message(&body), "查询与接口定义不符。");
    // A variable of the wrong type is the developer's error too.
    let body = app
        .gql(
            "query($l: Int) { policy(language: $l) { version } }",
            json!({ "l": 3 }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
}

#[tokio::test]
async fn refusals_before_execution_say_bad_request_in_the_request_language() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "text/plain")
        .header("accept-language", "en")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_REQUEST"));
    assert_eq!(message(&body), "Send GraphQL requests as application/json.");
    assert_eq!(
        first_error(&body)["extensions"]["messageKey"],
        "request.json_only"
    );
    let (status, body) = app.post_query(&"{ __typename }".repeat(2000)).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some("BAD_REQUEST"));
    assert_eq!(message(&body), "查询文本过长。");
}

#[tokio::test]
async fn signup_reports_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let version = policy_version(&app).await;
    let input = json!({ "input": {
        "username": "a", "email": "not an address", "password": "short",
        "acceptPolicyVersion": version, "age": "ADULT",
    } });
    for (language, username_message) in [
        (
            "en",
            "A username has 3 to 32 characters, not counting _, - and .; a Chinese character counts as two toward the minimum.",
        ),
        (
            "zh-CN",
            "用户名须为 3 到 32 个字符（_、- 和 . 不计入；计算最短长度时，一个汉字算两个字符）。",
        ),
    ] {
        let body = post(&app, None, Some(language), SIGNUP, input.clone()).await;
        assert!(body["data"].is_null(), "{body}");
        let errors = body["errors"].as_array().unwrap();
        let seen: Vec<(&str, &str, &str)> = errors
            .iter()
            .map(|e| {
                (
                    e["extensions"]["code"].as_str().unwrap(),
                    e["extensions"]["field"].as_str().unwrap(),
                    e["extensions"]["messageKey"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("BAD_USER_INPUT", "username", "username.length"),
                ("BAD_USER_INPUT", "email", "email.invalid"),
                ("WEAK_PASSWORD", "password", "password.too_short"),
            ],
            "{body}"
        );
        assert_eq!(errors[0]["message"], username_message);
        for error in errors {
            assert_eq!(error["path"], json!(["signup"]), "{body}");
            assert_eq!(
                has_chinese(error["message"].as_str().unwrap()),
                language == "zh-CN"
            );
        }
        assert_eq!(errors[2]["extensions"]["reason"], "TOO_SHORT");
    }
    // Nothing was created, nothing was mailed.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let accounts = entity::account::Entity::find()
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(accounts, 0);
    assert!(app.smtp.messages().is_empty());

    // A minor without a guardian and a stale policy: both fields named.
    let body = app
        .gql(
            SIGNUP,
            json!({ "input": {
                "username": "young_one", "email": "young@example.org", "password": PASSWORD,
                "acceptPolicyVersion": "0.0-old", "age": "MINOR",
            } }),
        )
        .await;
    let fields = error_fields(&body);
    assert_eq!(fields, ["acceptPolicyVersion", "guardianEmail"], "{body}");
    assert_eq!(error_code(&body), Some("POLICY_VERSION_MISMATCH"));
}

#[tokio::test]
async fn a_taken_username_is_reported_with_the_other_invalid_fields() {
    let app = spawn_app().await;
    let body = signup(&app, "Zhang_San", "zhang@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let version = policy_version(&app).await;
    let body = signup_with(&app, adult(&version, "zhangsan", "nope")).await;
    let codes: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["extensions"]["code"].as_str().unwrap(),
                e["extensions"]["field"].as_str().unwrap(),
            )
        })
        .collect();
    // The address first, as a lone error always named it; the taken name after.
    assert_eq!(
        codes,
        [("BAD_USER_INPUT", "email"), ("USERNAME_TAKEN", "username")],
        "{body}"
    );
    // A single invalid field is a single error, as before.
    let body = signup(&app, "zhangsan", "other@example.org").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(error_code(&body), Some("USERNAME_TAKEN"));
}

#[tokio::test]
async fn username_check_answers_what_signup_would() {
    let app = spawn_app().await;
    let body = signup(&app, "Zhang_San", "zhang@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
    let check = |name: &'static str, language: &'static str| {
        let app = &app;
        async move { post(app, None, Some(language), CHECK, json!({ "u": name })).await }
    };
    let body = check("li.si", "en").await;
    assert_eq!(
        body["data"]["usernameCheck"],
        json!({ "allowed": true, "code": null, "message": null, "messageKey": null }),
        "{body}"
    );
    // A look-alike of a taken name (case, separators, full width) is taken.
    for name in ["zhangsan", "ZHANG-SAN", "ｚｈａｎｇｓａｎ"] {
        let body = check(name, "en").await;
        let answer = &body["data"]["usernameCheck"];
        assert_eq!(answer["allowed"], false, "{name}: {body}");
        assert_eq!(answer["code"], "USERNAME_TAKEN", "{name}");
        assert_eq!(answer["message"], "This username is taken.");
        assert_eq!(answer["messageKey"], "username.taken");
    }
    let body = check("zhangsan", "zh-CN").await;
    assert_eq!(
        body["data"]["usernameCheck"]["message"],
        "此用户名已被占用。"
    );
    // Reserved and refused names, and names of the wrong shape.
    let body = check("admin", "en").await;
    assert_eq!(
        body["data"]["usernameCheck"]["code"],
        "USERNAME_NOT_ALLOWED"
    );
    // Separators do not count toward the length.
    let body = check("a_b", "zh-CN").await;
    let answer = &body["data"]["usernameCheck"];
    assert_eq!(answer["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(answer["messageKey"], "username.length");
    assert!(has_chinese(answer["message"].as_str().unwrap()));
    let body = check("no spaces!", "en").await;
    assert_eq!(
        body["data"]["usernameCheck"]["messageKey"],
        "username.characters"
    );

    // And sign-up agrees with each answer.
    for (name, code) in [
        ("ZHANG-SAN", "USERNAME_TAKEN"),
        ("admin", "USERNAME_NOT_ALLOWED"),
        ("a_b", "BAD_USER_INPUT"),
    ] {
        let body = signup(&app, name, "fresh@example.org").await;
        assert_eq!(error_code(&body), Some(code), "{name}: {body}");
    }
}

#[tokio::test]
async fn username_checks_are_rate_limited_in_their_own_bucket() {
    let app = spawn_app_with(|s| s.rate_limit_per_minute = 3).await;
    for _ in 0..3 {
        let body = post(&app, None, Some("en"), CHECK, json!({ "u": "free_name" })).await;
        assert_eq!(body["data"]["usernameCheck"]["allowed"], true, "{body}");
    }
    let body = post(&app, None, Some("en"), CHECK, json!({ "u": "free_name" })).await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    let seconds = first_error(&body)["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert!(seconds >= 1);
    assert_eq!(
        message(&body),
        format!("Too many attempts. Please wait {seconds} seconds and try again.")
    );
    // Sign-up still has its attempts.
    let body = signup(&app, "free_name", "free@example.org").await;
    assert_eq!(body["data"]["signup"]["accepted"], true, "{body}");
}

#[tokio::test]
async fn staff_find_an_account_by_exact_username_or_email_and_it_is_audited() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (support, _) = staff(&app, &admin, "desk_helper", "SUPPORT").await;
    let person = signed_in(&app, "Wang_Wu", "wang.wu@example.org").await;
    let person_id = my_id(&app, &person).await;

    for (token, login) in [
        (&support, "wangwu"),
        (&admin, "Wang.Wu@Example.org"),
        (&support, " Wang_Wu "),
    ] {
        let body = app
            .gql_with_token(Some(token), FIND, json!({ "l": login }))
            .await;
        assert_eq!(
            body["data"]["findAccount"],
            json!({ "id": person_id, "username": "Wang_Wu", "emailMasked": "w***@example.org", "role": "USER" }),
            "{login}: {body}"
        );
    }
    // Only exact matches: a part of a name or address finds nothing.
    for login in ["wang", "wu@example.org", "nobody@example.org"] {
        let body = app
            .gql_with_token(Some(&support), FIND, json!({ "l": login }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        assert!(body["data"]["findAccount"].is_null(), "{login}: {body}");
    }
    let body = app
        .gql_with_token(Some(&support), FIND, json!({ "l": "not a name!" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(first_error(&body)["extensions"]["field"], "login");

    // People and guests may not search.
    let body = app
        .gql_with_token(Some(&person), FIND, json!({ "l": "wangwu" }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app.gql(FIND, json!({ "l": "wangwu" })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");

    // Every search is in the audit trail, found or not, without the value searched.
    let log = audit_entries(&app, &admin).await;
    let finds: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "account.find")
        .collect();
    assert_eq!(finds.len(), 6, "{log:?}");
    assert_eq!(
        finds
            .iter()
            .filter(|e| e["subjectId"] == person_id.as_str())
            .count(),
        3
    );
    for entry in finds {
        let detail = entry["detail"].as_str().unwrap();
        assert!(!detail.to_lowercase().contains("wang"), "{detail}");
    }
}

#[tokio::test]
async fn a_search_that_cannot_be_audited_shows_nothing() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    signed_in(&app, "hidden_one", "hidden@example.org").await;
    crate::helpers::refuse(
        app.state.db(),
        "no_find_audit",
        "INSERT",
        "audit_log",
        "NEW.action = 'account.find'",
    )
    .await;
    let body = app
        .gql_with_token(Some(&admin), FIND, json!({ "l": "hidden_one" }))
        .await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    assert!(first_error(&body)["extensions"]["requestId"].is_string());
    assert!(!body.to_string().contains("hidden"), "{body}");
}

#[tokio::test]
async fn a_ticket_reports_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let create = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }";
    let input = json!({ "i": {
        "category": "OTHER", "subject": " ", "body": "b".repeat(10_001),
        "contactUsername": "n".repeat(65), "contactEmail": "not-an-address",
    } });
    for language in ["en", "zh-CN"] {
        let body = post(&app, None, Some(language), create, input.clone()).await;
        let seen: Vec<(&str, &str)> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["extensions"]["field"].as_str().unwrap(),
                    e["extensions"]["messageKey"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("subject", "ticket.subject_empty"),
                ("body", "ticket.body_too_long"),
                ("contactUsername", "ticket.contact_username"),
                ("contactEmail", "email.invalid"),
            ],
            "{body}"
        );
        for error in body["errors"].as_array().unwrap() {
            assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
            let text = error["message"].as_str().unwrap();
            assert_eq!(has_chinese(text), language == "zh-CN", "{text}");
        }
    }
    // A signed-in requester giving both contact fields hears of both.
    let token = signed_in(&app, "member_one", "member@example.org").await;
    let body = app
        .gql_with_token(
            Some(&token),
            create,
            json!({ "i": {
                "category": "OTHER", "subject": "s", "body": "b",
                "contactUsername": "x", "contactEmail": "x@example.org",
            } }),
        )
        .await;
    let fields = error_fields(&body);
    assert_eq!(fields, ["contactUsername", "contactEmail"], "{body}");
    use sea_orm::{EntityTrait, PaginatorTrait};
    let tickets = entity::ticket::Entity::find()
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(tickets, 0);
}
