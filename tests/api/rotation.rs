//! Key rotation: every encrypted field moves to the new key and stays
//! readable; the old key can then be retired.

use custos::{
    settings::{KeySource, Settings},
    state::{AppState, Overrides},
};
use sea_orm::EntityTrait;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{accounts::signed_in, helpers::spawn_app};

async fn state_with_keys(app: &crate::helpers::TestApp, keys: &str) -> AppState {
    let mut raw =
        crate::helpers::test_settings(app.state.settings().database_url.expose_secret(), &app.smtp);
    raw.encryption_keys = Some(keys.to_owned());
    if let KeySource::Given {
        blind_index_key, ..
    } = &app.state.settings().keys
    {
        raw.blind_index_key = Some(blind_index_key.expose_secret().to_owned());
    }
    AppState::build(
        Settings::validate(raw).unwrap(),
        Overrides {
            clock: Some(app.clock.clone()),
            transport: None,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rotation_moves_every_field_to_the_active_key_and_keeps_it_readable() {
    let app = spawn_app().await;
    let token = signed_in(&app, "rotating_person", "rotating@example.org").await;
    app.gql_with_token(
        Some(&token),
        "mutation { recordConsent(purpose: \"support\", granted: true) { granted } }",
        json!({}),
    )
    .await;
    app.gql_with_token(
        Some(&token),
        "mutation { createTicket(input: { category: CONSULTATION, subject: \"Rotating subject\", body: \"Rotating body\" }) { id } }",
        json!({}),
    )
    .await;
    let KeySource::Given {
        encryption_keys, ..
    } = &app.state.settings().keys
    else {
        panic!("test apps use given keys")
    };
    let old = encryption_keys.expose_secret().to_owned();
    let fresh = custos::crypto::keys::generate("k2").unwrap();
    let both = format!("{},{old}", fresh.encryption_keys.expose_secret());

    let rotating = state_with_keys(&app, &both).await;
    let columns = custos::rotation::encrypted_columns(rotating.db())
        .await
        .unwrap();
    for expected in [
        ("accounts", "email_ct"),
        ("tickets", "subject_ct"),
        ("ticket_messages", "body_ct"),
        ("outbox", "recipient_ct"),
    ] {
        assert!(
            columns
                .iter()
                .any(|(t, c)| t == expected.0 && c == expected.1),
            "{expected:?}"
        );
    }
    let report = custos::rotation::rotate(&rotating, |_, _, _| {})
        .await
        .unwrap();
    assert!(report.rotated >= 6, "{report:?}");
    assert_eq!(report.raced, 0);
    let again = custos::rotation::rotate(&rotating, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(again.rotated, 0, "a second run has nothing left to do");

    // The new key alone reads everything.
    let only_new = state_with_keys(&app, fresh.encryption_keys.expose_secret()).await;
    let account = entity::account::Entity::find()
        .one(only_new.db())
        .await
        .unwrap()
        .unwrap();
    let record = custos::accounts::service::open(&only_new, &account).unwrap();
    assert_eq!(record.email, "rotating@example.org");
    assert_eq!(
        custos::crypto::fields::key_id_of(&account.email_ct),
        Some("k2")
    );
    let _ = token;
}
