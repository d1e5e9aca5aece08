//! HTTPS served by the binary (`CUSTOS_TLS_CERT` / `CUSTOS_TLS_KEY`), with a
//! certificate made in the test: the API answers over TLS with HSTS and a
//! Secure session cookie, plain HTTP gets no answer on that port, and bad
//! files stop the start with the setting named.

use std::{path::PathBuf, sync::Arc};

use custos::{
    app::{Application, StartError},
    settings::Settings,
    state::Overrides,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

use crate::helpers::{smtp::TestSmtp, spawn_app_with, test_settings};

/// A self-signed certificate for `localhost`, written as PEM files.
struct TestCertificate {
    dir: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCertificate {
    fn make() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!("custos-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).unwrap();
        Self {
            dir,
            der: made.cert.der().clone(),
        }
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for TestCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one HTTP/1.1 request over TLS, trusting only `trusted`, and
/// returns the whole answer as text.
async fn https_request(port: u16, trusted: &TestCertificate, request: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.der.clone()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn post_graphql(body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn https_answers_with_hsts_and_a_secure_session_cookie() {
    let certificate = TestCertificate::make();
    let (cert, key) = (certificate.cert(), certificate.key());
    // Development, and an http public URL: only TLS makes HSTS and Secure.
    let app = spawn_app_with(move |raw| {
        raw.tls_cert = Some(cert);
        raw.tls_key = Some(key);
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let password = "a passphrase for the tls test";
    custos::accounts::service::create_admin(
        &app.state,
        "tls_person",
        "tls.person@example.org",
        secrecy::SecretString::from(password.to_owned()),
    )
    .await
    .unwrap();

    let answer = https_request(
        port,
        &certificate,
        &post_graphql(&json!({
            "query": "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }",
            "variables": { "l": "tls_person", "p": password },
        })),
    )
    .await;
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{answer}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
    let cookie = head
        .lines()
        .find(|line| line.starts_with("set-cookie: custos_session="))
        .unwrap_or_else(|| panic!("no session cookie: {answer}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("; httponly"), "{cookie}");
    assert!(answer.contains("\"token\""), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn tls_settings_come_in_pairs_and_bad_files_stop_the_start() {
    let smtp = TestSmtp::start();
    let mut raw = test_settings("sqlite::memory:", &smtp);
    raw.tls_cert = Some("/nowhere/cert.pem".into());
    let err = Settings::validate(raw.clone()).err().map(|e| e.setting);
    assert_eq!(err, Some("CUSTOS_TLS_KEY"));
    raw.tls_cert = None;
    raw.tls_key = Some("/nowhere/key.pem".into());
    let err = Settings::validate(raw.clone()).err().map(|e| e.setting);
    assert_eq!(err, Some("CUSTOS_TLS_CERT"));

    let certificate = TestCertificate::make();
    let garbage = certificate.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let other = TestCertificate::make();
    for (cert, key, setting) in [
        (
            garbage.display().to_string(),
            certificate.key(),
            "CUSTOS_TLS_CERT",
        ),
        (
            "/nowhere/cert.pem".to_owned(),
            certificate.key(),
            "CUSTOS_TLS_CERT",
        ),
        (
            certificate.cert(),
            garbage.display().to_string(),
            "CUSTOS_TLS_KEY",
        ),
        // A key that is not the certificate's.
        (certificate.cert(), other.key(), "CUSTOS_TLS_KEY"),
    ] {
        raw.tls_cert = Some(cert);
        raw.tls_key = Some(key);
        let settings = Settings::validate(raw.clone()).unwrap();
        match Application::build(settings, Overrides::default()).await {
            Err(StartError::Tls(err)) => assert_eq!(err.setting, setting, "{err}"),
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("started with bad TLS files"),
        }
    }
}
