//! Encrypted fields never reach the database in clear.

use secrecy::SecretString;

use crate::helpers::{assert_no_plaintext, spawn_app};

#[tokio::test]
async fn database_holds_no_plaintext_username_or_email() {
    let app = spawn_app().await;
    custos::accounts::service::create_admin(
        &app.state,
        "plainscan_admin",
        "plainscan.person@example.org",
        SecretString::from("a long enough passphrase".to_owned()),
    )
    .await
    .unwrap();
    assert_no_plaintext(
        &app,
        &[
            "plainscan_admin",
            "plainscan.person@example.org",
            "plainscan",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
    use custos::crypto::fields::FieldContext;
    let app = spawn_app().await;
    let cipher = app.state.cipher();
    let first = uuid::Uuid::new_v4();
    let second = uuid::Uuid::new_v4();
    let sealed = cipher
        .encrypt_str(
            &FieldContext {
                table: "accounts",
                column: "email",
                row_id: first,
            },
            "moved@example.org",
        )
        .unwrap();
    let moved = cipher.decrypt_str(
        &FieldContext {
            table: "accounts",
            column: "email",
            row_id: second,
        },
        &sealed,
    );
    assert!(moved.is_err());
    let other_column = cipher.decrypt_str(
        &FieldContext {
            table: "accounts",
            column: "username",
            row_id: first,
        },
        &sealed,
    );
    assert!(other_column.is_err());
}
