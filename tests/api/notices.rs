//! Security-incident notices and announcements through HTTP: refusals of
//! incomplete notices, mail in each person's language over SMTP, public
//! announcements, the threshold and failure fallbacks, the audit entry, and
//! the chunked fan-out.

use std::time::{Duration, Instant};

use custos::{
    accounts::{
        AccountStatus,
        service::{EMAIL_INDEX, USERNAME_INDEX, seal},
    },
    notices::{
        announcements::{AnnouncementKind, publish_announcement},
        fanout::MAIL_KIND,
    },
    settings::MAX_INCIDENT_WAIT_SECONDS,
};
use entity::{account, outbox};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, admin_token, audit_entries, error_code, error_fields, lift_refusal, my_id,
    new_account_key, signed_in, signed_in_in_english, spawn_app, spawn_app_with, staff,
};

const REPORT: &str = "mutation($input: SecurityIncidentInput!) {
  reportSecurityIncident(input: $input) {
    notified
    announcement { id kind title body publishedAt }
  }
}";

const ANNOUNCEMENTS: &str = "{ announcements { id kind title body publishedAt } }";

/// Everything a report tells, as the mutation and the query answer it.
const REPORT_FIELDS: &str =
    "id notified affected failed complete reportedAt completedAt announcement { id kind }";

const INCIDENT_REPORT: &str = "query($id: ID!) { incidentReport(id: $id) { \
    id notified affected failed complete reportedAt completedAt announcement { id kind } } }";

const BLOCKS: [(&str, &str); 5] = [
    (
        "whatHappened",
        "A database backup was readable from outside for two hours.",
    ),
    (
        "possibleImpact",
        "Encrypted email addresses and password hashes may have been copied.",
    ),
    (
        "measuresTaken",
        "We closed the access, rotated every key and called in auditors.",
    ),
    (
        "adviceToUsers",
        "Change your password and watch for phishing mail.",
    ),
    (
        "remedies",
        "Write to support for help; we cover reasonable costs you incur.",
    ),
];

fn incident(audience: &str, publish: bool) -> Value {
    let mut input = json!({
        "title": "Backup exposure on 29 November",
        "audience": audience,
        "publishAnnouncement": publish,
    });
    for (field, text) in BLOCKS {
        input[field] = json!(text);
    }
    input
}

async fn report(app: &TestApp, admin: &str, input: Value) -> Value {
    app.gql_with_token(Some(admin), REPORT, json!({ "input": input }))
        .await
}

/// Reports with every field of the answer.
async fn report_in_full(app: &TestApp, admin: &str, input: Value) -> Value {
    let query = format!(
        "mutation($input: SecurityIncidentInput!) {{ reportSecurityIncident(input: $input) {{ {REPORT_FIELDS} }} }}"
    );
    app.gql_with_token(Some(admin), &query, json!({ "input": input }))
        .await
}

/// `incidentReport(id:)` as `token` reads it.
async fn incident_report(app: &TestApp, token: Option<&str>, id: &str) -> Value {
    app.gql_with_token(token, INCIDENT_REPORT, json!({ "id": id }))
        .await
}

/// Follows report `id` until it is complete (at most a minute); its last
/// answer.
async fn until_complete(app: &TestApp, admin: &str, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        last = incident_report(app, Some(admin), id).await;
        if last["data"]["incidentReport"]["complete"] == true {
            return last["data"]["incidentReport"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the fan-out did not complete: {last}");
}

/// The account of every incident notice queued, each once: fails on a
/// notice queued twice for one account.
async fn notified_accounts(app: &TestApp) -> std::collections::HashSet<Uuid> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq(MAIL_KIND))
        .all(app.state.db())
        .await
        .unwrap();
    let mut accounts = std::collections::HashSet::new();
    for row in rows {
        let account = row.account_id.expect("a notice names its account");
        assert!(accounts.insert(account), "{account} was notified twice");
    }
    accounts
}

async fn incident_mails_queued(app: &TestApp) -> u64 {
    outbox::Entity::find()
        .filter(outbox::Column::Kind.eq(MAIL_KIND))
        .count(app.state.db())
        .await
        .unwrap()
}

/// Writes `n` ACTIVE accounts straight into the database (encrypted like
/// real ones, every third in English), as fast as the database takes them.
pub async fn seed_accounts(app: &TestApp, n: usize) {
    let state = &app.state;
    let now = state.clock().now();
    let mut rows = Vec::with_capacity(500);
    let mut keys = Vec::with_capacity(500);
    for i in 0..n {
        let id = Uuid::new_v4();
        let username = format!("seeded_{i}");
        let email = format!("seeded.{i}@example.org");
        let (key, key_row) = new_account_key(app, id);
        keys.push(key_row);
        rows.push(account::ActiveModel {
            id: Set(id),
            username_ct: Set(seal(state, &key, "username", id, &username).unwrap()),
            username_bidx: Set(state.blind().active().compute(USERNAME_INDEX, &username)),
            email_ct: Set(seal(state, &key, "email", id, &email).unwrap()),
            email_bidx: Set(state.blind().active().compute(EMAIL_INDEX, &email)),
            email_verified: Set(true),
            password_hash: Set("$argon2id$seeded".into()),
            role: Set("USER".into()),
            language: Set(if i % 3 == 0 { "en" } else { "zh-CN" }.into()),
            age_declaration: Set("ADULT".into()),
            guardian_consent: Set("NOT_NEEDED".into()),
            guardian_email_ct: Set(None),
            accepted_policy_version: Set(None),
            status: Set(AccountStatus::Active.into()),
            created_at: Set(now),
            updated_at: Set(now),
        });
        if rows.len() == 500 || i + 1 == n {
            entity::account_key::Entity::insert_many(std::mem::take(&mut keys))
                .exec_without_returning(state.db())
                .await
                .unwrap();
            account::Entity::insert_many(std::mem::take(&mut rows))
                .exec_without_returning(state.db())
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn an_incident_missing_any_block_is_refused_naming_it() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    for field in [
        "title",
        "whatHappened",
        "possibleImpact",
        "measuresTaken",
        "adviceToUsers",
        "remedies",
    ] {
        for blank in ["", "   \n\t "] {
            let mut input = incident("ALL_ACCOUNTS", true);
            input[field] = json!(blank);
            let body = report(&app, &admin, input).await;
            assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{field}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        }
    }
    // Several blank blocks: one error each, in reading order.
    let mut input = incident("ALL_ACCOUNTS", true);
    input["remedies"] = json!(" ");
    input["title"] = json!("");
    let body = report(&app, &admin, input).await;
    let fields = error_fields(&body);
    assert_eq!(fields, ["title", "remedies"], "{body}");
    assert_eq!(incident_mails_queued(&app).await, 0);
    let body = app.gql(ANNOUNCEMENTS, json!({})).await;
    assert_eq!(body["data"]["announcements"], json!([]));
}

#[tokio::test]
async fn listed_accounts_must_be_given_and_must_exist() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    for ids in [
        None,
        Some(json!([])),
        Some(json!([admin_id, Uuid::new_v4().to_string()])),
        Some(json!([admin_id, "not-an-id"])),
    ] {
        let mut input = incident("LISTED_ACCOUNTS", false);
        if let Some(ids) = ids.clone() {
            input["accountIds"] = ids;
        }
        let body = report(&app, &admin, input).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{ids:?}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "accountIds");
    }
    assert_eq!(incident_mails_queued(&app).await, 0);
}

#[tokio::test]
async fn every_active_account_gets_the_notice_in_its_language_over_smtp() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let admin_id = my_id(&app, &admin).await;
    signed_in(&app, "zhang_san", "zhang.san@example.org").await;
    signed_in_in_english(&app, "jane_doe", "jane.doe@example.org").await;
    // An account whose deletion is confirmed gets no mail but the receipt.
    let leaving = signed_in(&app, "li_si", "li.si@example.org").await;
    let leaving_id = Uuid::parse_str(&my_id(&app, &leaving).await).unwrap();
    let mut row: account::ActiveModel = account::Entity::find_by_id(leaving_id)
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap()
        .into();
    row.status = Set(AccountStatus::DeletionScheduled.into());
    row.update(app.state.db()).await.unwrap();

    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let result = &body["data"]["reportSecurityIncident"];
    assert_eq!(result["notified"], 3, "{body}");
    assert!(result["announcement"].is_null(), "{body}");
    let report = app.deliver_mail().await;
    assert_eq!(report.sent, 3);

    let zh = app.last_mail_to("zhang.san@example.org").unwrap();
    assert!(zh.subject().contains("安全事件通知"), "{}", zh.subject());
    let en = app.last_mail_to("jane.doe@example.org").unwrap();
    assert!(
        en.subject().starts_with("Security incident notice"),
        "{}",
        en.subject()
    );
    let zh_text = zh.decoded_text();
    let en_text = en.decoded_text();
    for heading in [
        "发生了什么",
        "可能造成的影响",
        "我们已经采取的措施",
        "建议你采取的措施",
        "补救措施",
    ] {
        assert!(zh_text.contains(heading), "{heading}\n{zh_text}");
    }
    for heading in [
        "What happened",
        "What it may mean for you",
        "What we have done",
        "What we advise you to do",
        "Remedies available to you",
    ] {
        assert!(en_text.contains(heading), "{heading}\n{en_text}");
    }
    for (_, text) in BLOCKS {
        assert!(zh_text.contains(text), "{text}\n{zh_text}");
        assert!(en_text.contains(text), "{text}\n{en_text}");
        assert!(zh.decoded_html().unwrap().contains(text));
    }
    assert!(zh_text.contains("Backup exposure on 29 November"));
    assert!(
        app.mail_to("li.si@example.org")
            .iter()
            .all(|m| !m.subject().contains("安全事件"))
    );

    // The audit entry names the admin and counts, nothing personal.
    let log = audit_entries(&app, &admin).await;
    let entry = log
        .iter()
        .find(|e| e["action"] == "incident.report")
        .cloned()
        .unwrap_or_else(|| panic!("no incident.report entry: {log:?}"));
    assert_eq!(entry["actorId"], admin_id.as_str());
    assert_eq!(
        entry["detail"],
        "audience=ALL_ACCOUNTS affected=3 notified=3 failed=0 announcement=none"
    );
}

#[tokio::test]
async fn listed_accounts_alone_are_told() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let listed = signed_in(&app, "wang_wu", "wang.wu@example.org").await;
    let listed_id = my_id(&app, &listed).await;
    signed_in(&app, "zhao_liu", "zhao.liu@example.org").await;
    let mut input = incident("LISTED_ACCOUNTS", false);
    // Listed twice: told once.
    input["accountIds"] = json!([listed_id, listed_id]);
    let body = report(&app, &admin, input).await;
    assert_eq!(
        body["data"]["reportSecurityIncident"]["notified"], 1,
        "{body}"
    );
    app.deliver_mail().await;
    assert!(
        app.last_mail_to("wang.wu@example.org")
            .unwrap()
            .subject()
            .contains("安全事件通知")
    );
    assert!(
        app.mail_to("zhao.liu@example.org")
            .iter()
            .all(|m| !m.subject().contains("安全事件通知"))
    );
}

#[tokio::test]
async fn announcements_are_public_and_newest_first() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let body = report(&app, &admin, incident("ALL_ACCOUNTS", true)).await;
    let first = body["data"]["reportSecurityIncident"]["announcement"].clone();
    assert_eq!(first["kind"], "SECURITY_INCIDENT", "{body}");
    assert_eq!(first["title"], "Backup exposure on 29 November");
    let text = first["body"].as_str().unwrap();
    for (_, block) in BLOCKS {
        assert!(text.contains(block), "{text}");
    }
    assert!(text.contains("发生了什么 / What happened"));

    // Policy publication announces through the same function.
    app.clock.advance(chrono::Duration::minutes(5));
    let policy = publish_announcement(
        app.state.db(),
        AnnouncementKind::PolicyUpdate,
        "Privacy policy 2.0",
        "What changed.",
        app.clock.now(),
    )
    .await
    .unwrap();

    // Anonymous callers read them, newest first.
    let body = app.gql(ANNOUNCEMENTS, json!({})).await;
    let list = body["data"]["announcements"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    assert_eq!(list[0]["id"], policy.id.to_string());
    assert_eq!(list[0]["kind"], "POLICY_UPDATE");
    assert_eq!(list[1], first);
}

#[tokio::test]
async fn more_accounts_than_the_threshold_are_also_told_publicly() {
    let app = spawn_app_with(|raw| raw.incident_announce_threshold = 2).await;
    let admin = admin_token(&app).await;
    signed_in(&app, "sun_ba", "sun.ba@example.org").await;
    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let result = &body["data"]["reportSecurityIncident"];
    assert_eq!(result["notified"], 2, "{body}");
    assert!(
        result["announcement"].is_null(),
        "2 is not more than 2: {body}"
    );

    signed_in(&app, "zhou_jiu", "zhou.jiu@example.org").await;
    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let result = &body["data"]["reportSecurityIncident"];
    assert_eq!(result["notified"], 3, "{body}");
    assert_eq!(
        result["announcement"]["kind"], "SECURITY_INCIDENT",
        "{body}"
    );
    let body = app.gql(ANNOUNCEMENTS, json!({})).await;
    assert_eq!(body["data"]["announcements"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_notice_that_cannot_be_queued_makes_the_incident_public() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    signed_in(&app, "wu_shi", "wu.shi@example.org").await;
    let broken = signed_in(&app, "qian_qi", "qian.qi@example.org").await;
    let broken_id = Uuid::parse_str(&my_id(&app, &broken).await).unwrap();
    // An address that no longer decrypts (e.g. a lost key).
    let mut row: account::ActiveModel = account::Entity::find_by_id(broken_id)
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap()
        .into();
    row.email_ct = Set(vec![2, b'z', b'z', 0, 1, 2, 3]);
    row.update(app.state.db()).await.unwrap();

    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let result = &body["data"]["reportSecurityIncident"];
    assert_eq!(result["notified"], 2, "{body}");
    assert_eq!(
        result["announcement"]["kind"], "SECURITY_INCIDENT",
        "{body}"
    );
    app.deliver_mail().await;
    assert!(
        app.last_mail_to("wu.shi@example.org")
            .unwrap()
            .subject()
            .contains("安全事件通知")
    );
}

#[tokio::test]
async fn reporting_needs_an_admin_and_announcements_need_nobody() {
    let app = spawn_app().await;
    let user = signed_in(&app, "zheng_yi", "zheng.yi@example.org").await;
    let input = json!({ "input": incident("ALL_ACCOUNTS", true) });
    let body = app.gql(REPORT, input.clone()).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let body = app.gql_with_token(Some(&user), REPORT, input).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(incident_mails_queued(&app).await, 0);
    let body = app.gql(ANNOUNCEMENTS, json!({})).await;
    assert_eq!(body["data"]["announcements"], json!([]), "{body}");
}

#[tokio::test]
async fn the_fan_out_crosses_chunk_boundaries_without_losing_anyone() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    // Two full chunks and a partial one.
    seed_accounts(&app, 2_345).await;
    let body = report_in_full(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    // Followed to the end: a slow build may answer before it (the wait
    // has tests of its own).
    let id = body["data"]["reportSecurityIncident"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let done = until_complete(&app, &admin, &id).await;
    assert_eq!(done["notified"], 2_346, "{done}");
    assert_eq!(incident_mails_queued(&app).await, 2_346);
    // One notice per account: no page was read twice.
    let distinct: std::collections::HashSet<Option<Uuid>> = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq(MAIL_KIND))
        .all(app.state.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.account_id)
        .collect();
    assert_eq!(distinct.len(), 2_346);
}

/// The fan-out benchmark behind `bench/incident_fanout.sh`: seeds
/// `BENCH_ACCOUNTS` accounts (default 100,000) and times the whole fan-out:
/// `reportSecurityIncident`, then `incidentReport` followed until it is
/// complete. Run it in release against PostgreSQL; it fails above 30
/// seconds per 100,000 accounts, and prints the process's resident memory.
#[tokio::test]
#[ignore = "benchmark: run through bench/incident_fanout.sh"]
async fn incident_fanout_benchmark() {
    let accounts: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let seeding = Instant::now();
    seed_accounts(&app, accounts).await;
    println!("seeded {accounts} accounts in {:.1?}", seeding.elapsed());
    // 30 s for 100,000, and linear beyond: 300 s for 1,000,000.
    let limit = Duration::from_secs_f64(30.0 * (accounts as f64 / 100_000.0).max(1.0));
    // Memory is measured from here: the fan-out's, not the seeding's (the
    // server runs in this process).
    crate::helpers::ResidentMemory::reset_peak();
    let resident_at_start = crate::helpers::ResidentMemory::current_mib();
    let started = Instant::now();
    let body = report_in_full(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let answered = started.elapsed();
    let id = body["data"]["reportSecurityIncident"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let mut last = body["data"]["reportSecurityIncident"].clone();
    while last["complete"] != true && started.elapsed() <= limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = incident_report(&app, Some(&admin), &id).await["data"]["incidentReport"].clone();
    }
    let elapsed = started.elapsed();
    let resident_peak = crate::helpers::ResidentMemory::peak_mib();
    let notified = last["notified"].as_u64().unwrap_or_default();
    println!(
        "BENCH incident fan-out: {notified} notices queued in {:.2} s ({:.0} per second; \
         answered after {:.2} s); resident {resident_at_start:.0} MiB at the start, \
         peak {resident_peak:.0} MiB during the fan-out",
        elapsed.as_secs_f64(),
        notified as f64 / elapsed.as_secs_f64(),
        answered.as_secs_f64(),
    );
    assert_eq!(last["complete"], true, "took over {limit:?}: {last}");
    assert_eq!(notified, accounts as u64 + 1, "{last}");
    assert_eq!(incident_mails_queued(&app).await, accounts as u64 + 1);
    assert!(elapsed <= limit, "took {elapsed:?}, limit {limit:?}");
    assert!(
        resident_peak <= 256.0,
        "peak resident memory {resident_peak:.0} MiB, limit 256 MiB"
    );
}

/// Makes the outbox refuse incident notices once `limit` of them are in,
/// as a database that fails partway through a fan-out would.
async fn refuse_incident_mail_after(app: &TestApp, limit: u64) {
    crate::helpers::refuse(
        app.state.db(),
        "refuse_notices",
        "INSERT",
        "outbox",
        &format!(
            "NEW.kind = '{MAIL_KIND}' AND (SELECT count(*) FROM outbox WHERE kind = '{MAIL_KIND}') >= {limit}"
        ),
    )
    .await;
}

#[tokio::test]
async fn a_fan_out_that_stops_midway_records_how_far_it_got() {
    // The longest wait: the stop must come within it, even on a slow build.
    let app = spawn_app_with(|raw| raw.incident_wait_seconds = MAX_INCIDENT_WAIT_SECONDS).await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 2_345).await;
    refuse_incident_mail_after(&app, 1_000).await;

    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    // The first page was queued and will be sent.
    assert_eq!(incident_mails_queued(&app).await, 1_000);
    let entries = entity::audit_entry::Entity::find()
        .filter(entity::audit_entry::Column::Action.eq("incident.report"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "one entry for the stopped fan-out");
    let detail = &entries[0].detail;
    assert!(
        detail.contains("affected=2346") && detail.contains("notified=1000"),
        "{detail}"
    );
    assert!(detail.contains("stopped=true"), "{detail}");
}

#[tokio::test]
async fn a_report_answers_before_its_fan_out_ends_and_the_query_follows_it() {
    let app = spawn_app_with(|raw| raw.incident_wait_seconds = 0).await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 2_345).await;

    let body = report_in_full(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let answer = &body["data"]["reportSecurityIncident"];
    assert_eq!(answer["complete"], false, "{body}");
    assert_eq!(answer["affected"], 2_346, "{body}");
    assert_eq!(answer["notified"], 0, "{body}");
    assert_eq!(answer["failed"], 0, "{body}");
    assert!(answer["completedAt"].is_null(), "{body}");
    assert!(answer["announcement"].is_null(), "{body}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let done = until_complete(&app, &admin, &id).await;
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["affected"], 2_346, "{done}");
    assert_eq!(done["notified"], 2_346, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(done["reportedAt"], answer["reportedAt"]);
    assert!(done["completedAt"].is_string(), "{done}");
    assert!(done["announcement"].is_null(), "{done}");
    // Exactly one notice per ACTIVE account.
    assert_eq!(notified_accounts(&app).await.len(), 2_346);

    // Filed, then finished: both in the audit log, counts and ids only.
    let log = audit_entries(&app, &admin).await;
    let started = log
        .iter()
        .find(|e| e["action"] == "incident.report.start")
        .unwrap_or_else(|| panic!("no start entry: {log:?}"));
    assert_eq!(
        started["detail"],
        format!("audience=ALL_ACCOUNTS affected=2346 fanout={id} announcement=none")
    );
    let finished = log
        .iter()
        .find(|e| e["action"] == "incident.report")
        .unwrap_or_else(|| panic!("no final entry: {log:?}"));
    assert_eq!(
        finished["detail"],
        "audience=ALL_ACCOUNTS affected=2346 notified=2346 failed=0 announcement=none"
    );
}

#[tokio::test]
async fn a_listed_fan_out_mails_only_the_listed_active_accounts_after_the_answer() {
    let app = spawn_app_with(|raw| raw.incident_wait_seconds = 0).await;
    let admin = admin_token(&app).await;
    let told = signed_in(&app, "he_yi", "he.yi@example.org").await;
    let told_id = my_id(&app, &told).await;
    signed_in(&app, "lu_er", "lu.er@example.org").await;
    let mut input = incident("LISTED_ACCOUNTS", false);
    input["accountIds"] = json!([told_id]);
    let body = report_in_full(&app, &admin, input).await;
    let answer = &body["data"]["reportSecurityIncident"];
    assert_eq!(answer["affected"], 1, "{body}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let done = until_complete(&app, &admin, &id).await;
    assert_eq!(done["notified"], 1, "{done}");
    let accounts = notified_accounts(&app).await;
    assert_eq!(
        accounts.into_iter().collect::<Vec<_>>(),
        [Uuid::parse_str(&told_id).unwrap()]
    );
    // The list served its purpose: a finished fan-out keeps no ids.
    let row = custos::notices::store::find(app.state.db(), Uuid::parse_str(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.listed_ids, None);
}

/// A fan-out as a dead instance leaves it: running, its lease held by a
/// driver that no longer exists, the first `handled` accounts (in id
/// order) handled and counted, their notices queued by then.
async fn fan_out_left_by_a_dead_instance(app: &TestApp, admin: &str, handled: u64) -> Uuid {
    use custos::notices::{
        content::IncidentContent,
        store::{self, NewFanout, StoredAudience},
    };
    let db = app.state.db();
    let affected = account::Entity::find()
        .filter(account::Column::Status.eq(AccountStatus::Active))
        .count(db)
        .await
        .unwrap();
    let content = IncidentContent {
        title: "Backup exposure on 29 November".into(),
        what_happened: BLOCKS[0].1.into(),
        possible_impact: BLOCKS[1].1.into(),
        measures_taken: BLOCKS[2].1.into(),
        advice_to_users: BLOCKS[3].1.into(),
        remedies: BLOCKS[4].1.into(),
    };
    let row = store::insert(
        db,
        NewFanout {
            id: Uuid::new_v4(),
            actor_id: Uuid::parse_str(&my_id(app, admin).await).unwrap(),
            audience: StoredAudience::AllAccounts,
            listed_ids: None,
            content: &content,
            publish_announcement: false,
            affected,
            announcement_id: None,
            owner: Uuid::new_v4(),
        },
        app.clock.now(),
    )
    .await
    .unwrap();
    if handled > 0 {
        // What the dead driver committed: its pages' mail, cursor and count.
        let first: Vec<account::Model> = account::Entity::find()
            .filter(account::Column::Status.eq(AccountStatus::Active))
            .order_by_asc(account::Column::Id)
            .limit(handled)
            .all(db)
            .await
            .unwrap();
        // Already sent: the outbox leaves them be, and they count.
        let sent = first.iter().map(|account| outbox::ActiveModel {
            id: Set(Uuid::new_v4()),
            account_id: Set(Some(account.id)),
            kind: Set(MAIL_KIND.into()),
            recipient_ct: Set(vec![0]),
            recipient_bidx: Set(vec![0]),
            subject_ct: Set(vec![0]),
            body_text_ct: Set(vec![0]),
            body_html_ct: Set(None),
            body_format: Set("rendered".into()),
            status: Set("SENT".into()),
            attempts: Set(1),
            next_attempt_at: Set(app.clock.now()),
            claimed_until: Set(None),
            last_error: Set(None),
            created_at: Set(app.clock.now()),
            sent_at: Set(Some(app.clock.now())),
        });
        outbox::Entity::insert_many(sent)
            .exec_without_returning(db)
            .await
            .unwrap();
        let mut row: entity::incident_fanout::ActiveModel = row.clone().into();
        row.last_account_id = Set(first.last().map(|account| account.id));
        row.notified = Set(handled as i64);
        row.update(db).await.unwrap();
    }
    row.id
}

#[tokio::test]
async fn the_job_runner_finishes_a_fan_out_a_dead_instance_left_halfway() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 2_345).await;
    let id = fan_out_left_by_a_dead_instance(&app, &admin, 1_000).await;
    let outbox = custos::jobs::outbox_sender(&app.state);

    // While the dead driver's lease runs, nobody takes over.
    custos::jobs::tick(&app.state, &outbox).await;
    let body = incident_report(&app, Some(&admin), &id.to_string()).await;
    assert_eq!(body["data"]["incidentReport"]["complete"], false, "{body}");
    assert_eq!(body["data"]["incidentReport"]["notified"], 1_000, "{body}");
    assert_eq!(incident_mails_queued(&app).await, 1_000);

    app.clock
        .advance(custos::notices::store::LEASE + chrono::Duration::seconds(1));
    custos::jobs::tick(&app.state, &outbox).await;
    let done = until_complete(&app, &admin, &id.to_string()).await;
    assert_eq!(done["notified"], 2_346, "{done}");
    assert_eq!(done["affected"], 2_346, "{done}");
    // The first thousand were not mailed again; everybody else was, once.
    assert_eq!(notified_accounts(&app).await.len(), 2_346);
    let entries = entity::audit_entry::Entity::find()
        .filter(entity::audit_entry::Column::Action.eq("incident.report"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].detail,
        "audience=ALL_ACCOUNTS affected=2346 notified=2346 failed=0 announcement=none"
    );
}

#[tokio::test]
async fn a_stopped_fan_out_is_resumed_by_the_job_runner_where_it_stopped() {
    let app = spawn_app_with(|raw| raw.incident_wait_seconds = MAX_INCIDENT_WAIT_SECONDS).await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 2_345).await;
    refuse_incident_mail_after(&app, 1_000).await;
    let body = report(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    lift_refusal(app.state.db(), "refuse_notices", "outbox").await;
    let stopped = entity::audit_entry::Entity::find()
        .filter(entity::audit_entry::Column::Action.eq("incident.report"))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    // The stop names the fan-out, so it can be followed.
    let id = stopped
        .detail
        .split_once("fanout=")
        .map(|(_, id)| id.to_owned())
        .unwrap_or_else(|| panic!("{}", stopped.detail));

    // What the job runner does once the stopped driver's lease ran out
    // (the whole tick would also send the thousand notices queued).
    let resumed = custos::notices::fanout::resume_expired(&app.state).await;
    assert_eq!(resumed.unwrap(), 0, "the stopped driver's lease still runs");
    app.clock
        .advance(custos::notices::store::LEASE + chrono::Duration::seconds(1));
    let resumed = custos::notices::fanout::resume_expired(&app.state).await;
    assert_eq!(resumed.unwrap(), 1);
    let done = until_complete(&app, &admin, &id).await;
    assert_eq!(done["notified"], 2_346, "{done}");
    assert_eq!(notified_accounts(&app).await.len(), 2_346);
}

#[tokio::test]
async fn two_drivers_of_one_fan_out_mail_each_account_once() {
    use custos::notices::fanout::{DriveEnd, drive};
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 2_345).await;
    let id = fan_out_left_by_a_dead_instance(&app, &admin, 0).await;
    let row = custos::notices::store::find(app.state.db(), id)
        .await
        .unwrap()
        .unwrap();
    // Both believe they hold the lease (one of them wrongly, as a driver
    // that stalled past its lease would): the cursor guard decides.
    let owner = row.lease_owner.unwrap();
    let (one, two) = tokio::join!(drive(&app.state, id, owner), drive(&app.state, id, owner));
    let ends = [one.unwrap(), two.unwrap()];
    let done = ends
        .iter()
        .filter(|end| matches!(end, DriveEnd::Done(_)))
        .count();
    assert_eq!(done, 1, "{ends:?}");
    assert_eq!(notified_accounts(&app).await.len(), 2_346);
    let body = incident_report(&app, Some(&admin), &id.to_string()).await;
    assert_eq!(body["data"]["incidentReport"]["notified"], 2_346, "{body}");

    // A driver whose lease was taken over changes nothing.
    let late = drive(&app.state, id, Uuid::new_v4()).await.unwrap();
    assert!(matches!(late, DriveEnd::Lost), "{late:?}");
    assert_eq!(incident_mails_queued(&app).await, 2_346);
}

#[tokio::test]
async fn one_instance_at_a_time_takes_over_an_abandoned_fan_out() {
    use custos::notices::fanout::resume_expired;
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    seed_accounts(&app, 1_500).await;
    let id = fan_out_left_by_a_dead_instance(&app, &admin, 0).await;
    app.clock
        .advance(custos::notices::store::LEASE + chrono::Duration::seconds(1));
    // PostgreSQL serves several instances; SQLite one process with one
    // connection, so there the race is between two runners of one state.
    let other = if app.is_postgres() {
        Some(app.another_instance().await)
    } else {
        None
    };
    let other_state = other.as_ref().map_or(&app.state, |other| &other.state);
    let (one, two) = tokio::join!(resume_expired(&app.state), resume_expired(other_state));
    assert_eq!(one.unwrap() + two.unwrap(), 1, "exactly one took it over");
    let done = until_complete(&app, &admin, &id.to_string()).await;
    assert_eq!(done["notified"], 1_501, "{done}");
    assert_eq!(notified_accounts(&app).await.len(), 1_501);
}

#[tokio::test]
async fn following_a_report_needs_an_admin_and_an_unknown_one_is_null() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let body = report_in_full(&app, &admin, incident("ALL_ACCOUNTS", false)).await;
    let answer = body["data"]["reportSecurityIncident"].clone();
    assert_eq!(answer["complete"], true, "{body}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let body = incident_report(&app, Some(&admin), &id).await;
    assert_eq!(body["data"]["incidentReport"], answer, "{body}");

    let body = incident_report(&app, None, &id).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let user = signed_in(&app, "feng_qi", "feng.qi@example.org").await;
    let (support, _) = staff(&app, &admin, "chen_ba", "SUPPORT").await;
    for token in [&user, &support] {
        let body = incident_report(&app, Some(token), &id).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        assert!(body["data"]["incidentReport"].is_null(), "{body}");
    }

    for unknown in [Uuid::new_v4().to_string(), "not-an-id".to_owned()] {
        let body = incident_report(&app, Some(&admin), &unknown).await;
        assert!(body["errors"].is_null(), "{body}");
        assert!(body["data"]["incidentReport"].is_null(), "{body}");
    }
}
