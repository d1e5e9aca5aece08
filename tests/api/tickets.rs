//! The support desk through HTTP: guests and accounts file tickets, staff
//! answer them by mail, nobody sees anyone else's, and the database holds
//! none of it in clear.

use custos::tickets::service::{self as tickets, NewTicket, TicketError};
use entity::{account, audit_entry, outbox, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestApp, assert_no_plaintext, error_code, login, my_id, record_consent, signed_in,
    spawn_app,
};

const TICKET_FIELDS: &str = "id reference category subject status canReply cannotReplyReason \
    createdAt updatedAt requesterUsername requesterEmailMasked messages { id author body createdAt }";

fn create_query() -> String {
    format!(
        "mutation($input: CreateTicketInput!) {{ createTicket(input: $input) {{ {TICKET_FIELDS} }} }}"
    )
}

fn add_query() -> String {
    format!(
        "mutation($id: ID!, $body: String!) {{ addTicketMessage(ticketId: $id, body: $body) {{ {TICKET_FIELDS} }} }}"
    )
}

fn close_query() -> String {
    format!("mutation($id: ID!) {{ closeTicket(ticketId: $id) {{ {TICKET_FIELDS} }} }}")
}

fn get_query() -> String {
    format!("query($id: ID!) {{ ticket(id: $id) {{ {TICKET_FIELDS} }} }}")
}

fn mine_query() -> String {
    format!("{{ myTickets {{ {TICKET_FIELDS} }} }}")
}

fn queue_query() -> String {
    format!(
        "query($status: TicketStatus, $first: Int, $after: String) {{ supportQueue(status: $status, first: $first, after: $after) {{ \
         edges {{ cursor node {{ {TICKET_FIELDS} }} }} nodes {{ id }} \
         pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
    )
}

/// The tickets of a `supportQueue` answer.
fn queue_page(body: &Value) -> Vec<Value> {
    crate::helpers::paging::nodes(body, "supportQueue")
}

const REVEAL: &str =
    "mutation($id: ID!, $reason: String!) { revealTicketContact(ticketId: $id, reason: $reason) }";

fn input(category: &str, subject: &str, body: &str) -> Value {
    json!({ "category": category, "subject": subject, "body": body })
}

/// Files a ticket and returns it, failing the test on any error. Nobody
/// grants anything first: filing needs no optional purpose.
async fn file(app: &TestApp, token: Option<&str>, input: Value) -> Value {
    let body = app
        .gql_with_token(token, &create_query(), json!({ "input": input }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createTicket"].clone()
}

/// Adds a message and returns the ticket, failing the test on any error.
async fn reply(app: &TestApp, token: &str, id: &Value, text: &str) -> Value {
    let body = app
        .gql_with_token(Some(token), &add_query(), json!({ "id": id, "body": text }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["addTicketMessage"].clone()
}

async fn update_account(app: &TestApp, id: Uuid, change: impl FnOnce(&mut account::ActiveModel)) {
    let row = account::Entity::find_by_id(id)
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    let mut update = row.into_active_model();
    change(&mut update);
    update.update(app.state.db()).await.unwrap();
    // Written behind the server's back: on SQLite the server would go on
    // answering from its session cache until the entry's lifetime ends (on
    // PostgreSQL a notification arrives, a moment later), so tell it now.
    app.state.session_cache().forget_account(id);
}

/// The account id of a signed-in caller.
async fn my_uuid(app: &TestApp, token: &str) -> Uuid {
    Uuid::parse_str(&my_id(app, token).await).unwrap()
}

/// A signed-in member of staff with `role` (`SUPPORT` or `ADMIN`).
async fn staff(app: &TestApp, role: &str, username: &str, email: &str) -> (String, Uuid) {
    let token = signed_in(app, username, email).await;
    let id = my_uuid(app, &token).await;
    let role = role.to_owned();
    update_account(app, id, |a| a.role = Set(role)).await;
    (token, id)
}

async fn ticket_replies_queued(app: &TestApp) -> u64 {
    outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("ticket_reply"))
        .count(app.state.db())
        .await
        .unwrap()
}

fn assert_bad_input(body: &Value, field: &str) {
    assert_eq!(error_code(body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
}

fn is_reference(reference: &str) -> bool {
    reference.len() == 8
        && reference.starts_with("T-")
        && reference[2..]
            .bytes()
            .all(|b| b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ".contains(&b))
}

#[tokio::test]
async fn a_guest_with_an_email_is_answered_by_mail() {
    let app = spawn_app().await;
    let mut guest = input("COMPLAINT", "My order vanished", "It was there yesterday.");
    guest["contactUsername"] = json!("Wang Wu");
    guest["contactEmail"] = json!(" Wang.Wu@Example.org ");
    let ticket = file(&app, None, guest).await;
    assert_eq!(ticket["canReply"], true, "{ticket}");
    assert!(ticket["cannotReplyReason"].is_null());
    assert_eq!(ticket["status"], "OPEN");
    assert_eq!(ticket["category"], "COMPLAINT");
    assert_eq!(ticket["subject"], "My order vanished");
    assert_eq!(ticket["messages"][0]["author"], "REQUESTER");
    assert_eq!(ticket["messages"][0]["body"], "It was there yesterday.");
    // A guest is not staff: no requester fields.
    assert!(ticket["requesterUsername"].is_null());
    let reference = ticket["reference"].as_str().unwrap().to_owned();
    assert!(is_reference(&reference), "{reference}");

    // Stored without an account, findable by the address's blind index.
    let id = Uuid::parse_str(ticket["id"].as_str().unwrap()).unwrap();
    let row = ticket::Entity::find_by_id(id)
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert!(row.account_id.is_none());
    assert_eq!(
        row.contact_email_bidx,
        Some(app.state.blind().active().compute(
            "email",
            &custos::crypto::normalise_email("wang.wu@example.org")
        ))
    );

    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let seen = app
        .gql_with_token(Some(&support), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(
        seen["data"]["ticket"]["requesterUsername"], "Wang Wu",
        "{seen}"
    );
    assert_eq!(
        seen["data"]["ticket"]["requesterEmailMasked"],
        "W***@Example.org"
    );

    let answered = reply(
        &app,
        &support,
        &ticket["id"],
        "We found it: it ships today.",
    )
    .await;
    assert_eq!(answered["status"], "ANSWERED");
    app.deliver_mail().await;
    let mail = app
        .last_mail_to("wang.wu@example.org")
        .expect("reply mailed to the guest");
    assert!(mail.subject().contains(&reference), "{}", mail.subject());
    assert!(
        mail.decoded_text().contains("We found it: it ships today."),
        "{}",
        mail.decoded_text()
    );
}

#[tokio::test]
async fn a_guest_without_an_email_is_stored_but_told_no_reply_can_come() {
    let app = spawn_app().await;
    let mut guest = input("CONSULTATION", "Opening hours", "When are you open?");
    guest["contactUsername"] = json!("Zhao");
    let ticket = file(&app, None, guest).await;
    assert_eq!(ticket["canReply"], false, "{ticket}");
    assert!(
        ticket["cannotReplyReason"]
            .as_str()
            .unwrap()
            .contains("No email address"),
        "{ticket}"
    );
    assert!(is_reference(ticket["reference"].as_str().unwrap()));

    // Staff may still answer in the thread, but no mail is queued.
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let answered = reply(&app, &support, &ticket["id"], "Nine to five.").await;
    assert_eq!(answered["status"], "ANSWERED");
    assert_eq!(answered["requesterEmailMasked"], Value::Null);
    assert_eq!(ticket_replies_queued(&app).await, 0);

    // There is no address to reveal.
    let body = app
        .gql_with_token(
            Some(&support),
            REVEAL,
            json!({ "id": ticket["id"], "reason": "call back" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
}

#[tokio::test]
async fn contact_details_are_validated_and_for_guests_only() {
    let app = spawn_app().await;
    let mut bad = input("OTHER", "Hello", "Hi");
    bad["contactEmail"] = json!("not-an-address");
    let body = app.gql(&create_query(), json!({ "input": bad })).await;
    assert_bad_input(&body, "contactEmail");

    let mut long_name = input("OTHER", "Hello", "Hi");
    long_name["contactUsername"] = json!("n".repeat(65));
    let body = app
        .gql(&create_query(), json!({ "input": long_name }))
        .await;
    assert_bad_input(&body, "contactUsername");

    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let mut own = input("OTHER", "Hello", "Hi");
    own["contactEmail"] = json!("someone.else@example.org");
    let body = app
        .gql_with_token(Some(&alice), &create_query(), json!({ "input": own }))
        .await;
    assert_bad_input(&body, "contactEmail");

    // Nothing was stored by the refused requests.
    assert_eq!(
        ticket::Entity::find().count(app.state.db()).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn subject_and_body_limits_are_enforced_with_the_field_named() {
    let app = spawn_app().await;
    let cases = [
        (input("OTHER", &"s".repeat(201), "body"), "subject"),
        (input("OTHER", "", "body"), "subject"),
        (input("OTHER", "   ", "body"), "subject"),
        (input("OTHER", "subject", &"b".repeat(10_001)), "body"),
        (input("OTHER", "subject", ""), "body"),
        (input("OTHER", "subject", " \n "), "body"),
    ];
    for (input, field) in cases {
        let body = app.gql(&create_query(), json!({ "input": input })).await;
        assert_bad_input(&body, field);
    }
    assert_eq!(
        ticket::Entity::find().count(app.state.db()).await.unwrap(),
        0
    );

    // The limits themselves are allowed, counted in characters.
    let ticket = file(
        &app,
        None,
        input("OTHER", &"字".repeat(200), &"b".repeat(10_000)),
    )
    .await;
    assert_eq!(ticket["subject"].as_str().unwrap().chars().count(), 200);

    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let own = file(&app, Some(&alice), input("OTHER", "Mine", "First")).await;
    for text in ["", "  ", &"b".repeat(10_001)] {
        let body = app
            .gql_with_token(
                Some(&alice),
                &add_query(),
                json!({ "id": own["id"], "body": text }),
            )
            .await;
        assert_bad_input(&body, "body");
    }
}

#[tokio::test]
async fn people_see_only_their_own_tickets_and_staff_see_all() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "zhang.alice@example.com").await;
    let bob = signed_in(&app, "bob_t", "bob.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    let ticket = file(
        &app,
        Some(&alice),
        input("APPEAL", "Unban me", "I did nothing wrong."),
    )
    .await;
    assert_eq!(ticket["canReply"], true, "{ticket}");
    assert!(
        ticket["requesterUsername"].is_null(),
        "owners get no staff fields"
    );
    let guest = file(&app, None, input("OTHER", "Guest", "Guest text")).await;

    // The owner sees it.
    let mine = app
        .gql_with_token(Some(&alice), &mine_query(), json!({}))
        .await;
    let mine = mine["data"]["myTickets"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], ticket["id"]);
    let own = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(own["data"]["ticket"]["subject"], "Unban me", "{own}");

    // Another user: nothing. Reading says null, as for a ticket that does
    // not exist; acting is NOT_FOUND, never FORBIDDEN.
    let theirs = app
        .gql_with_token(Some(&bob), &mine_query(), json!({}))
        .await;
    assert_eq!(theirs["data"]["myTickets"], json!([]), "{theirs}");
    for id in [
        ticket["id"].clone(),
        guest["id"].clone(),
        json!(Uuid::new_v4().to_string()),
        json!("not-a-uuid"),
    ] {
        let body = app
            .gql_with_token(Some(&bob), &get_query(), json!({ "id": id }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        assert!(body["data"]["ticket"].is_null(), "{body}");
        let body = app
            .gql_with_token(
                Some(&bob),
                &add_query(),
                json!({ "id": id, "body": "mine now" }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
        let body = app
            .gql_with_token(Some(&bob), &close_query(), json!({ "id": id }))
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    // Bob's attempts changed nothing.
    let own = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(own["data"]["ticket"]["status"], "OPEN");
    assert_eq!(
        own["data"]["ticket"]["messages"].as_array().unwrap().len(),
        1
    );

    // Anonymous callers must sign in.
    let body = app.gql(&get_query(), json!({ "id": ticket["id"] })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let body = app.gql(&mine_query(), json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let body = app
        .gql(&add_query(), json!({ "id": ticket["id"], "body": "x" }))
        .await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");

    // Staff see any ticket, with the username and a masked address only.
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let seen = app
        .gql_with_token(Some(&support), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    let seen = &seen["data"]["ticket"];
    assert_eq!(seen["requesterUsername"], "alice_t", "{seen}");
    assert_eq!(seen["requesterEmailMasked"], "z***@example.com");
    let queue = app
        .gql_with_token(Some(&support), &queue_query(), json!({}))
        .await;
    assert_eq!(queue_page(&queue).len(), 2, "{queue}");

    let row = ticket::Entity::find_by_id(Uuid::parse_str(ticket["id"].as_str().unwrap()).unwrap())
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.account_id, Some(alice_id));
    assert!(row.contact_email_ct.is_none() && row.contact_email_bidx.is_none());
}

#[tokio::test]
async fn a_thread_moves_open_answered_open_closed_and_closed_takes_nothing() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let (support, support_id) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let ticket = file(
        &app,
        Some(&alice),
        input("COMPLAINT", "Broken", "It broke."),
    )
    .await;
    let reference = ticket["reference"].as_str().unwrap().to_owned();
    assert_eq!(ticket["status"], "OPEN");

    app.clock.advance(chrono::Duration::minutes(5));
    let answered = reply(&app, &support, &ticket["id"], "Please restart it.").await;
    assert_eq!(answered["status"], "ANSWERED");
    assert_ne!(answered["updatedAt"], ticket["updatedAt"]);
    app.deliver_mail().await;
    let mail = app.last_mail_to("alice.t@example.org").expect("reply mail");
    assert!(mail.subject().contains(&reference), "{}", mail.subject());
    assert!(
        mail.decoded_text().contains("Please restart it."),
        "{}",
        mail.decoded_text()
    );
    let message = entity::ticket_message::Entity::find()
        .filter(entity::ticket_message::Column::Author.eq("STAFF"))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.staff_id, Some(support_id));

    let reopened = reply(&app, &alice, &ticket["id"], "Still broken.").await;
    assert_eq!(reopened["status"], "OPEN");
    let authors: Vec<&str> = reopened["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["REQUESTER", "STAFF", "REQUESTER"]);
    // Only staff replies are mailed.
    assert_eq!(ticket_replies_queued(&app).await, 1);

    let closed = app
        .gql_with_token(Some(&alice), &close_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(
        closed["data"]["closeTicket"]["status"], "CLOSED",
        "{closed}"
    );
    for token in [&alice, &support] {
        let body = app
            .gql_with_token(
                Some(token),
                &add_query(),
                json!({ "id": ticket["id"], "body": "more" }),
            )
            .await;
        assert_bad_input(&body, "ticketId");
    }
    // Closing again changes nothing; staff may close too.
    let again = app
        .gql_with_token(
            Some(&support),
            &close_query(),
            json!({ "id": ticket["id"] }),
        )
        .await;
    assert_eq!(again["data"]["closeTicket"]["status"], "CLOSED", "{again}");
    assert_eq!(
        again["data"]["closeTicket"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Staff close another ticket.
    let other = file(&app, Some(&alice), input("OTHER", "Other", "Other text")).await;
    let closed = app
        .gql_with_token(Some(&support), &close_query(), json!({ "id": other["id"] }))
        .await;
    assert_eq!(
        closed["data"]["closeTicket"]["status"], "CLOSED",
        "{closed}"
    );
}

#[tokio::test]
async fn the_queue_and_reveal_are_for_staff_only() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Hi", "Hello")).await;

    let body = app
        .gql_with_token(Some(&alice), &queue_query(), json!({}))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app.gql(&queue_query(), json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");

    let vars = json!({ "id": ticket["id"], "reason": "curious" });
    let body = app.gql_with_token(Some(&alice), REVEAL, vars.clone()).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app.gql(REVEAL, vars).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");

    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    for reason in ["", "   "] {
        let body = app
            .gql_with_token(
                Some(&support),
                REVEAL,
                json!({ "id": ticket["id"], "reason": reason }),
            )
            .await;
        assert_bad_input(&body, "reason");
    }
    let body = app
        .gql_with_token(
            Some(&support),
            REVEAL,
            json!({ "id": ticket["id"], "reason": "r".repeat(501) }),
        )
        .await;
    assert_bad_input(&body, "reason");
    for id in [json!(Uuid::new_v4().to_string()), json!("nope")] {
        let body = app
            .gql_with_token(
                Some(&support),
                REVEAL,
                json!({ "id": id, "reason": "call back" }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    for first in [-1, 201] {
        let body = app
            .gql_with_token(Some(&support), &queue_query(), json!({ "first": first }))
            .await;
        assert_bad_input(&body, "first");
    }
    let body = app
        .gql_with_token(Some(&support), &queue_query(), json!({ "after": "nope" }))
        .await;
    crate::helpers::paging::assert_bad_cursor(&body);
    // None of the refused reveals left an audit entry.
    let entries = audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq("ticket.reveal_contact"))
        .count(app.state.db())
        .await
        .unwrap();
    assert_eq!(entries, 0);
}

#[tokio::test]
async fn revealing_an_address_returns_it_and_writes_an_audit_entry() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    let ticket = file(
        &app,
        Some(&alice),
        input("DATA_REQUEST", "My data", "Send it"),
    )
    .await;
    let mut guest = input("OTHER", "Guest", "Guest text");
    guest["contactEmail"] = json!("guest.g@example.org");
    let guest = file(&app, None, guest).await;

    let admin_id = custos::accounts::service::create_admin(
        &app.state,
        "root_admin",
        "root.admin@example.org",
        secrecy::SecretString::from("a long admin passphrase".to_owned()),
    )
    .await
    .unwrap();
    let login = app
        .gql(
            "mutation { login(input: { login: \"root_admin\", password: \"a long admin passphrase\" }) { token } }",
            json!({}),
        )
        .await;
    let admin = login["data"]["login"]["token"].as_str().unwrap().to_owned();

    let body = app
        .gql_with_token(
            Some(&admin),
            REVEAL,
            json!({ "id": ticket["id"], "reason": "requester asked for a call" }),
        )
        .await;
    assert_eq!(
        body["data"]["revealTicketContact"], "alice.t@example.org",
        "{body}"
    );
    let body = app
        .gql_with_token(
            Some(&admin),
            REVEAL,
            json!({ "id": guest["id"], "reason": "bounce check" }),
        )
        .await;
    assert_eq!(
        body["data"]["revealTicketContact"], "guest.g@example.org",
        "{body}"
    );

    let entries = audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq("ticket.reveal_contact"))
        .all(app.state.db())
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let account_entry = entries
        .iter()
        .find(|e| e.subject_id == Some(alice_id))
        .expect("entry about alice");
    assert_eq!(account_entry.actor_id, Some(admin_id));
    assert!(
        account_entry
            .detail
            .contains(ticket["id"].as_str().unwrap())
    );
    // The reason is staff free text: beside the chain, not in it.
    assert!(!account_entry.detail.contains("requester asked for a call"));
    assert_eq!(
        custos::audit::notes::open(&app.state, app.state.db(), &account_entry.detail)
            .await
            .unwrap()
            .as_deref(),
        Some("requester asked for a call")
    );
    assert!(!account_entry.detail.contains("alice.t@example.org"));
    let guest_entry = entries
        .iter()
        .find(|e| e.subject_id.is_none())
        .expect("guest entry");
    assert!(guest_entry.detail.contains(guest["id"].as_str().unwrap()));
    assert!(!guest_entry.detail.contains("guest.g@example.org"));
    assert_eq!(
        custos::audit::service::verify(app.state.db())
            .await
            .unwrap(),
        Ok(2)
    );
}

#[tokio::test]
async fn the_queue_puts_data_requests_first_then_oldest_and_pages() {
    let app = spawn_app().await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let mut ids = Vec::new();
    for (category, subject) in [
        ("COMPLAINT", "first complaint"),
        ("DATA_REQUEST", "first data request"),
        ("CONSULTATION", "a question"),
        ("DATA_REQUEST", "second data request"),
    ] {
        let ticket = file(&app, None, input(category, subject, "text")).await;
        ids.push(ticket["id"].clone());
        app.clock.advance(chrono::Duration::minutes(1));
    }
    let expected = [
        "first data request",
        "second data request",
        "first complaint",
        "a question",
    ];

    let body = app
        .gql_with_token(Some(&support), &queue_query(), json!({}))
        .await;
    let subjects: Vec<String> = queue_page(&body)
        .iter()
        .map(|t| t["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects, expected, "{body}");

    // One at a time, each page after the last one seen.
    let paged: Vec<String> = crate::helpers::paging::walk(
        &app,
        Some(&support),
        &queue_query(),
        json!({}),
        "supportQueue",
        1,
    )
    .await
    .iter()
    .map(|t| t["subject"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(paged, expected);

    // Tickets of one creation instant still page without loss or repeats,
    // in the order of their ids.
    for subject in ["same time a", "same time b", "same time c"] {
        file(&app, None, input("OTHER", subject, "text")).await;
    }
    let whole = queue_page(
        &app.gql_with_token(Some(&support), &queue_query(), json!({}))
            .await,
    );
    assert_eq!(whole.len(), 7);
    let same_time: Vec<String> = whole[4..]
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let mut by_id = same_time.clone();
    by_id.sort();
    assert_eq!(same_time, by_id);
    for first in [2, 3] {
        let seen = crate::helpers::paging::walk(
            &app,
            Some(&support),
            &queue_query(),
            json!({}),
            "supportQueue",
            first,
        )
        .await;
        assert_eq!(seen, whole);
    }
    crate::helpers::paging::assert_bounds_and_bad_cursors(
        &app,
        Some(&support),
        &queue_query(),
        json!({}),
        "supportQueue",
    )
    .await;

    // The status filter.
    reply(&app, &support, &ids[2], "Answer.").await;
    let body = app
        .gql_with_token(
            Some(&support),
            &queue_query(),
            json!({ "status": "ANSWERED" }),
        )
        .await;
    let answered = queue_page(&body);
    assert_eq!(answered.len(), 1, "{body}");
    assert_eq!(answered[0]["id"], ids[2]);
    let body = app
        .gql_with_token(Some(&support), &queue_query(), json!({ "status": "OPEN" }))
        .await;
    assert_eq!(queue_page(&body).len(), 6, "{body}");
}

#[tokio::test]
async fn an_unverified_address_gets_replies_only_once_verified() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    update_account(&app, alice_id, |a| a.email_verified = Set(false)).await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Hi", "Hello")).await;
    assert_eq!(ticket["canReply"], false, "{ticket}");
    assert!(
        ticket["cannotReplyReason"]
            .as_str()
            .unwrap()
            .contains("not verified"),
        "{ticket}"
    );

    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    reply(&app, &support, &ticket["id"], "First answer.").await;
    assert_eq!(ticket_replies_queued(&app).await, 0);

    update_account(&app, alice_id, |a| a.email_verified = Set(true)).await;
    let now = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(now["data"]["ticket"]["canReply"], true, "{now}");
    reply(&app, &support, &ticket["id"], "Second answer.").await;
    app.deliver_mail().await;
    let mail = app.last_mail_to("alice.t@example.org").expect("reply mail");
    assert!(mail.decoded_text().contains("Second answer."));
    assert!(!mail.decoded_text().contains("First answer."));
}

#[tokio::test]
async fn no_ticket_mail_once_deletion_is_scheduled() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    let ticket = file(
        &app,
        Some(&alice),
        input("DATA_REQUEST", "Delete me", "Please."),
    )
    .await;
    app.deliver_mail().await;
    let before = app.mail_to("alice.t@example.org").len();

    update_account(&app, alice_id, |a| {
        a.status = Set(custos::accounts::AccountStatus::DeletionScheduled.into())
    })
    .await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let answered = reply(&app, &support, &ticket["id"], "Done soon.").await;
    assert_eq!(answered["canReply"], false, "{answered}");
    assert!(
        answered["cannotReplyReason"]
            .as_str()
            .unwrap()
            .contains("scheduled for deletion")
    );
    app.deliver_mail().await;
    assert_eq!(ticket_replies_queued(&app).await, 0);
    assert_eq!(app.mail_to("alice.t@example.org").len(), before);
}

#[tokio::test]
async fn the_database_holds_no_ticket_text_or_contact_in_clear() {
    let app = spawn_app().await;
    let mut guest = input(
        "COMPLAINT",
        "Subjectneedle about my parcel",
        "Bodyneedle: the parcel never came.",
    );
    guest["contactUsername"] = json!("Guestnameneedle");
    guest["contactEmail"] = json!("guestmailneedle@example.org");
    let ticket = file(&app, None, guest).await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let own = file(
        &app,
        Some(&alice),
        input("OTHER", "Ownsubjectneedle", "Ownbodyneedle"),
    )
    .await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    reply(
        &app,
        &support,
        &ticket["id"],
        "Replyneedle: it is on its way.",
    )
    .await;
    reply(&app, &support, &own["id"], "Secondreplyneedle").await;
    reply(&app, &alice, &own["id"], "Followupneedle").await;
    app.deliver_mail().await;
    assert_no_plaintext(
        &app,
        &[
            "Subjectneedle",
            "Bodyneedle",
            "Guestnameneedle",
            "guestmailneedle",
            "Replyneedle",
            "Ownsubjectneedle",
            "Ownbodyneedle",
            "Secondreplyneedle",
            "Followupneedle",
        ],
    )
    .await;
}

fn new_ticket(subject: &str) -> NewTicket {
    NewTicket {
        category: custos::tickets::Category::Other,
        subject: subject.to_owned(),
        body: "text".to_owned(),
        contact_username: None,
        contact_email: None,
        language: custos::mail::Language::En,
    }
}

#[tokio::test]
async fn a_reference_collision_draws_another_and_endless_collisions_fail() {
    let app = spawn_app().await;
    let first = tickets::create_with_references(&app.state, None, new_ticket("first"), || {
        Ok("T-AAAAAA".to_owned())
    })
    .await
    .unwrap();
    assert_eq!(first.reference, "T-AAAAAA");

    let mut drawn = ["T-AAAAAA", "T-BBBBBB"].into_iter();
    let second = tickets::create_with_references(&app.state, None, new_ticket("second"), || {
        Ok(drawn.next().unwrap_or("T-CCCCCC").to_owned())
    })
    .await
    .unwrap();
    assert_eq!(second.reference, "T-BBBBBB");
    assert_eq!(second.subject, "second");

    let stuck = tickets::create_with_references(&app.state, None, new_ticket("third"), || {
        Ok("T-AAAAAA".to_owned())
    })
    .await;
    assert!(
        matches!(stuck, Err(TicketError::ReferencesExhausted)),
        "{stuck:?}"
    );
    // Neither the collisions nor the failure left rows behind.
    assert_eq!(
        ticket::Entity::find().count(app.state.db()).await.unwrap(),
        2
    );
    assert_eq!(
        entity::ticket_message::Entity::find()
            .count(app.state.db())
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn complaints_and_data_requests_need_no_optional_purpose_to_be_filed_and_answered() {
    let app = spawn_app().await;
    let token = signed_in(&app, "private_person", "private@example.org").await;
    // The person switched on no optional purpose; the policy has no
    // `support` purpose any more, and nothing about tickets can be granted.
    let body = app
        .gql_with_token(
            Some(&token),
            "{ me { consents { purpose granted } } policy { purposes { code } } }",
            json!({}),
        )
        .await;
    let consents = body["data"]["me"]["consents"].as_array().unwrap();
    assert!(
        consents
            .iter()
            .all(|c| c["purpose"] == "account" || c["granted"] == false),
        "{body}"
    );
    assert!(
        body["data"]["policy"]["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["code"] != "support"),
        "{body}"
    );
    let body = record_consent(&app, &token, "support", true).await;
    assert_bad_input(&body, "purpose");

    let (support, _) = staff(&app, "SUPPORT", "helper_zhou", "helper.zhou@example.org").await;
    for (category, subject, answer) in [
        ("COMPLAINT", "I object", "We are sorry: it is fixed."),
        (
            "DATA_REQUEST",
            "Send me my data",
            "Your export is attached to your account.",
        ),
    ] {
        let ticket = file(&app, Some(&token), input(category, subject, "Please.")).await;
        assert_eq!(ticket["category"], category);
        assert_eq!(ticket["canReply"], true, "{ticket}");
        // The requester writes again in their own ticket.
        let again = reply(&app, &token, &ticket["id"], "Any news?").await;
        assert_eq!(again["status"], "OPEN");
        let answered = reply(&app, &support, &ticket["id"], answer).await;
        assert_eq!(answered["status"], "ANSWERED");
        app.deliver_mail().await;
        let mail = app
            .last_mail_to("private@example.org")
            .expect("the answer is mailed to the account's address");
        assert!(
            mail.subject()
                .contains(ticket["reference"].as_str().unwrap()),
            "{}",
            mail.subject()
        );
        assert!(
            mail.decoded_text().contains(answer),
            "{}",
            mail.decoded_text()
        );
    }
    let body = app
        .gql_with_token(Some(&token), "{ myTickets { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["myTickets"].as_array().unwrap().len(), 2);
}

async fn audit_entries(app: &TestApp, action: &str) -> Vec<audit_entry::Model> {
    audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq(action))
        .all(app.state.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn staff_reads_of_tickets_are_audit_logged_and_owners_reads_are_not() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    let first = file(&app, Some(&alice), input("OTHER", "First", "One")).await;
    let mut guest = input("OTHER", "Guest", "Guest text");
    guest["contactEmail"] = json!("guest.g@example.org");
    let second = file(&app, None, guest).await;
    let (support, support_id) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;

    // The owner reading her own ticket is not a staff read.
    let body = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": first["id"] }))
        .await;
    assert_eq!(body["data"]["ticket"]["id"], first["id"], "{body}");
    assert!(audit_entries(&app, tickets::READ_ACTION).await.is_empty());

    let body = app
        .gql_with_token(Some(&support), &queue_query(), json!({}))
        .await;
    assert_eq!(queue_page(&body).len(), 2, "{body}");
    let queue_reads = audit_entries(&app, tickets::QUEUE_READ_ACTION).await;
    assert_eq!(queue_reads.len(), 1);
    assert_eq!(queue_reads[0].actor_id, Some(support_id));
    for ticket in [&first, &second] {
        let id = ticket["id"].as_str().unwrap();
        assert!(
            queue_reads[0].detail.contains(id),
            "{}",
            queue_reads[0].detail
        );
    }
    // An empty page shows nobody's data and is not logged.
    let body = app
        .gql_with_token(
            Some(&support),
            &queue_query(),
            json!({ "status": "CLOSED" }),
        )
        .await;
    assert_eq!(queue_page(&body), Vec::<Value>::new(), "{body}");
    assert_eq!(
        audit_entries(&app, tickets::QUEUE_READ_ACTION).await.len(),
        1
    );

    for ticket in [&first, &second] {
        let body = app
            .gql_with_token(Some(&support), &get_query(), json!({ "id": ticket["id"] }))
            .await;
        assert_eq!(body["data"]["ticket"]["id"], ticket["id"], "{body}");
    }
    let reads = audit_entries(&app, tickets::READ_ACTION).await;
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|e| e.actor_id == Some(support_id)));
    assert_eq!(
        reads[0].subject_id,
        Some(alice_id),
        "the owner is the subject"
    );
    assert_eq!(reads[1].subject_id, None, "a guest has no account");
    assert!(reads[1].detail.contains(second["id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_staff_read_that_cannot_be_logged_shows_nothing() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Private", "Secret text")).await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    // From here on the audit trail refuses every entry.
    let db = app.state.db();
    crate::helpers::refuse(db, "refuse_audit", "INSERT", "audit_log", "TRUE").await;

    for (query, vars) in [
        (queue_query(), json!({})),
        (get_query(), json!({ "id": ticket["id"] })),
        (add_query(), json!({ "id": ticket["id"], "body": "Answer" })),
        (close_query(), json!({ "id": ticket["id"] })),
    ] {
        let body = app.gql_with_token(Some(&support), &query, vars).await;
        assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
        assert!(!body.to_string().contains("Secret text"), "{body}");
        assert!(!body.to_string().contains("Private"), "{body}");
    }
    // The owner still reads her own ticket: nothing to log. The refused
    // answer and close changed nothing.
    let body = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(body["data"]["ticket"]["subject"], "Private", "{body}");
    assert_eq!(body["data"]["ticket"]["status"], "OPEN", "{body}");
    assert_eq!(
        body["data"]["ticket"]["messages"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
}

#[tokio::test]
async fn staff_answers_and_closes_are_audit_logged_reads_even_of_a_closed_ticket() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let alice_id = my_uuid(&app, &alice).await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Mine", "Help")).await;
    let (support, support_id) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;

    // The owner's own writes read nothing of anyone else's.
    reply(&app, &alice, &ticket["id"], "More detail").await;
    assert!(audit_entries(&app, tickets::READ_ACTION).await.is_empty());

    let answered = reply(&app, &support, &ticket["id"], "Answer").await;
    assert_eq!(answered["requesterUsername"], "alice_t", "{answered}");
    assert_eq!(audit_entries(&app, tickets::READ_ACTION).await.len(), 1);
    for _ in 0..2 {
        // The second close changes nothing but still shows the thread.
        let body = app
            .gql_with_token(
                Some(&support),
                &close_query(),
                json!({ "id": ticket["id"] }),
            )
            .await;
        assert_eq!(body["data"]["closeTicket"]["status"], "CLOSED", "{body}");
        assert_eq!(
            body["data"]["closeTicket"]["messages"]
                .as_array()
                .map(Vec::len),
            Some(3),
            "{body}"
        );
    }
    let reads = audit_entries(&app, tickets::READ_ACTION).await;
    assert_eq!(reads.len(), 3);
    let id = ticket["id"].as_str().unwrap();
    for read in &reads {
        assert_eq!(read.actor_id, Some(support_id));
        assert_eq!(read.subject_id, Some(alice_id), "the owner is the subject");
        assert!(read.detail.contains(id), "{}", read.detail);
    }
    // The owner closing her closed ticket again is not a staff read.
    let body = app
        .gql_with_token(Some(&alice), &close_query(), json!({ "id": ticket["id"] }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(audit_entries(&app, tickets::READ_ACTION).await.len(), 3);
    assert_eq!(
        custos::audit::service::verify(app.state.db())
            .await
            .unwrap(),
        Ok(audit_entry::Entity::find()
            .count(app.state.db())
            .await
            .unwrap())
    );
}

#[tokio::test]
async fn a_queue_cursor_outlives_its_ticket_and_a_page_logs_only_what_it_shows() {
    let app = spawn_app().await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let mut filed = Vec::new();
    for subject in ["one", "two", "three"] {
        filed.push(file(&app, None, input("OTHER", subject, "text")).await["id"].clone());
        app.clock.advance(chrono::Duration::minutes(1));
    }
    let body = app
        .gql_with_token(Some(&support), &queue_query(), json!({ "first": 1 }))
        .await;
    assert_eq!(queue_page(&body)[0]["id"], filed[0], "{body}");
    assert_eq!(
        body["data"]["supportQueue"]["pageInfo"]["hasNextPage"],
        true
    );
    // The row read to know that a next page exists was neither shown nor logged.
    let reads = audit_entries(&app, tickets::QUEUE_READ_ACTION).await;
    assert_eq!(reads.len(), 1);
    assert_eq!(
        reads[0].detail,
        format!("tickets={}", filed[0].as_str().unwrap())
    );

    // The first ticket goes (its requester's account was erased, say):
    // its cursor still says where the next page starts.
    let cursor = body["data"]["supportQueue"]["pageInfo"]["endCursor"].clone();
    ticket::Entity::delete_by_id(Uuid::parse_str(filed[0].as_str().unwrap()).unwrap())
        .exec(app.state.db())
        .await
        .unwrap();
    let body = app
        .gql_with_token(
            Some(&support),
            &queue_query(),
            json!({ "first": 5, "after": cursor }),
        )
        .await;
    let rest: Vec<Value> = queue_page(&body).iter().map(|t| t["id"].clone()).collect();
    assert_eq!(rest, filed[1..], "{body}");
    let info = &body["data"]["supportQueue"]["pageInfo"];
    assert_eq!(info["hasNextPage"], false, "{body}");
    assert_eq!(info["hasPreviousPage"], true, "{body}");
}

#[tokio::test]
async fn a_missing_or_hidden_ticket_reads_as_null_on_both_sides() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Mine", "text")).await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    for token in [&alice, &support] {
        for id in [json!(Uuid::new_v4().to_string()), json!("not-a-uuid")] {
            let body = app
                .gql_with_token(Some(token), &get_query(), json!({ "id": id }))
                .await;
            assert_eq!(body["data"], json!({ "ticket": null }), "{body}");
            assert!(body["errors"].is_null(), "{body}");
        }
    }
    // Nothing was shown, so no staff read was logged.
    assert!(audit_entries(&app, tickets::READ_ACTION).await.is_empty());
    let body = app
        .gql_with_token(Some(&support), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(body["data"]["ticket"]["id"], ticket["id"], "{body}");
}

#[tokio::test]
async fn a_person_writes_a_bounded_number_of_messages_an_hour() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Chatty", "First")).await;
    let limit = tickets::MAX_REQUESTER_MESSAGES_PER_WINDOW;
    // The first message counts: limit − 1 more are taken.
    for i in 1..limit {
        reply(&app, &alice, &ticket["id"], &format!("Message {i}")).await;
        app.clock.advance(chrono::Duration::seconds(60));
    }
    let body = app
        .gql_with_token(
            Some(&alice),
            &add_query(),
            json!({ "id": ticket["id"], "body": "One too many" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    // The first message was written (limit − 1) minutes ago.
    let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert_eq!(retry, 3_600 - (limit - 1) * 60, "{body}");
    // Staff answers are not counted against anyone.
    let answered = reply(&app, &support, &ticket["id"], "Answer").await;
    assert_eq!(
        answered["messages"].as_array().map(Vec::len),
        Some(limit as usize + 1)
    );
    app.clock
        .advance(chrono::Duration::seconds(i64::try_from(retry).unwrap()));
    // (The session has been idle too long meanwhile: sign in again.)
    let alice = login(&app, "alice_t", PASSWORD).await;
    reply(&app, &alice, &ticket["id"], "Later").await;
}

#[tokio::test]
async fn a_thread_holds_a_bounded_number_of_messages() {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice_t", "alice.t@example.org").await;
    let (support, _) = staff(&app, "SUPPORT", "helper_li", "helper.li@example.org").await;
    let ticket = file(&app, Some(&alice), input("OTHER", "Long", "First")).await;
    let ticket_id = Uuid::parse_str(ticket["id"].as_str().unwrap()).unwrap();
    let cap = tickets::MAX_MESSAGES_PER_TICKET;
    // Fill the thread to one below the cap straight in the database, as an
    // hour-by-hour conversation would over weeks.
    let key = app
        .state
        .keys()
        .cached(
            app.state.cipher(),
            app.state.db(),
            my_uuid(&app, &alice).await,
        )
        .await
        .unwrap()
        .unwrap();
    let rows = (2..cap).map(|seq| {
        let id = Uuid::new_v4();
        entity::ticket_message::ActiveModel {
            id: Set(id),
            ticket_id: Set(ticket_id),
            seq: Set(i32::try_from(seq).unwrap()),
            author: Set("REQUESTER".into()),
            staff_id: Set(None),
            body_ct: Set(app
                .state
                .cipher()
                .encrypt_str_under(
                    Some(&key),
                    &custos::crypto::FieldContext {
                        table: "ticket_messages",
                        column: "body",
                        row_id: id,
                    },
                    "Earlier",
                )
                .unwrap()),
            created_at: Set(app.clock.now() - chrono::Duration::days(30)),
        }
    });
    entity::ticket_message::Entity::insert_many(rows)
        .exec_without_returning(app.state.db())
        .await
        .unwrap();
    let full = reply(&app, &support, &ticket["id"], "The last one").await;
    assert_eq!(
        full["messages"].as_array().map(Vec::len),
        Some(cap as usize)
    );
    for token in [&alice, &support] {
        let body = app
            .gql_with_token(
                Some(token),
                &add_query(),
                json!({ "id": ticket["id"], "body": "Still more" }),
            )
            .await;
        assert_bad_input(&body, "ticketId");
    }
    // The refused messages changed nothing: the ticket is still answered.
    let body = app
        .gql_with_token(Some(&alice), &get_query(), json!({ "id": ticket["id"] }))
        .await;
    assert_eq!(body["data"]["ticket"]["status"], "ANSWERED", "{body}");
    assert_eq!(
        body["data"]["ticket"]["messages"].as_array().map(Vec::len),
        Some(cap as usize)
    );
}
