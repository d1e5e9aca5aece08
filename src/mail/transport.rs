//! How a built message leaves the process: an SMTP relay, `.eml` files in a
//! folder (development), or an in-memory stub (tests).
//!
//! Rules:
//! - The transport is passed in (never global), so tests choose where mail
//!   goes and read what was sent.
//! - A failed send is classified, not described: [`SendFailure`] says whether
//!   retrying can help and carries a short class such as `smtp 451` or
//!   `connection`. Relay replies are never copied, because they routinely
//!   quote the recipient address.
//! - The SMTP URL may hold credentials; it is never logged or put in an error.

use std::{fmt, path::Path};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    address::Envelope,
    transport::{
        smtp::response::{Category, Severity},
        stub::AsyncStubTransport,
    },
};
use secrecy::ExposeSecret;

use super::MailError;
use crate::settings::MailTransportSetting;

/// Where outgoing mail is handed over. Cheap to clone: clones share the SMTP
/// connection pool and the stub's capture log.
#[derive(Clone)]
pub struct MailTransport {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
    Stub(AsyncStubTransport),
}

/// Why a send failed, in words safe to log and store in `outbox.last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} failure: {class}", if *.permanent { "permanent" } else { "transient" })]
pub struct SendFailure {
    /// `true` when retrying the same message cannot succeed (the relay
    /// answered 5xx about the message or its recipient).
    pub permanent: bool,
    /// A short class such as `smtp 550`, `timeout` or `connection`; never
    /// the relay's text.
    pub class: String,
}

impl SendFailure {
    /// A failure that a later attempt may get past.
    pub fn transient(class: impl Into<String>) -> Self {
        Self {
            permanent: false,
            class: class.into(),
        }
    }

    /// A failure that no retry will fix.
    pub fn permanent(class: impl Into<String>) -> Self {
        Self {
            permanent: true,
            class: class.into(),
        }
    }
}

impl MailTransport {
    /// Builds the transport the settings ask for: SMTP when a URL is given,
    /// `.eml` files otherwise.
    pub fn from_setting(setting: &MailTransportSetting) -> Result<Self, MailError> {
        match setting {
            MailTransportSetting::Smtp(url) => Self::from_url(url.expose_secret()),
            MailTransportSetting::Files(folder) => Self::files(folder),
        }
    }

    /// An SMTP relay from a URL: `smtp://host:port` (no TLS, for a relay on
    /// the same host or a test server), `smtp://host:port?tls=required`
    /// (STARTTLS, refused if unavailable), `smtp://…?tls=opportunistic`, or
    /// `smtps://user:pass@host:port` (TLS from the first byte). Credentials
    /// in the URL are percent-decoded and used for AUTH.
    ///
    /// Must be called, and the transport dropped, inside a tokio runtime:
    /// lettre's connection pool runs as a task. Outside one this returns an
    /// error instead of letting lettre panic.
    pub fn from_url(url: &str) -> Result<Self, MailError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MailError::Transport(
                "the SMTP transport must be built inside the tokio runtime".to_owned(),
            ));
        }
        // lettre's parse errors are plain enough, but a URL error is never
        // echoed: the URL may carry a password.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
            MailError::Transport(
                "CUSTOS_SMTP_URL is not a usable smtp:// or smtps:// URL \
                 (tls may be `required` or `opportunistic`)"
                    .to_owned(),
            )
        })?;
        Ok(Self {
            inner: Inner::Smtp(builder.build()),
        })
    }

    /// Writes each message as `<random uuid>.eml` into `folder`, creating it.
    /// Development only: the mail reaches nobody.
    pub fn files(folder: &Path) -> Result<Self, MailError> {
        std::fs::create_dir_all(folder).map_err(|source| MailError::MailDir {
            path: folder.to_path_buf(),
            source,
        })?;
        Ok(Self {
            inner: Inner::Files(AsyncFileTransport::new(folder)),
        })
    }

    /// Accepts every message and keeps it in memory, for tests that are not
    /// about SMTP.
    pub fn stub() -> Self {
        Self {
            inner: Inner::Stub(AsyncStubTransport::new_ok()),
        }
    }

    /// Keeps every message in memory and reports each send as a transient
    /// failure, for tests of retries.
    pub fn stub_failing() -> Self {
        Self {
            inner: Inner::Stub(AsyncStubTransport::new_error()),
        }
    }

    /// What a stub transport was handed so far, as envelope and raw RFC 5322
    /// text, oldest first; empty for the other transports. A failing stub
    /// records attempts too.
    pub async fn stub_messages(&self) -> Vec<(Envelope, String)> {
        match &self.inner {
            Inner::Stub(stub) => stub.messages().await,
            Inner::Smtp(_) | Inner::Files(_) => Vec::new(),
        }
    }

    /// Hands one message over. `Ok` means the relay (or folder, or stub)
    /// accepted it.
    pub async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match &self.inner {
            Inner::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| classify_smtp(&e)),
            // A full disk or a missing folder can be fixed by the operator.
            Inner::Files(files) => files
                .send(message)
                .await
                .map(|_| ())
                .map_err(|_| SendFailure::transient("file write")),
            Inner::Stub(stub) => stub
                .send(message)
                .await
                .map_err(|_| SendFailure::transient("stub")),
        }
    }
}

impl fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the kind: the SMTP transport holds credentials.
        let kind = match &self.inner {
            Inner::Smtp(_) => "Smtp",
            Inner::Files(_) => "Files",
            Inner::Stub(_) => "Stub",
        };
        write!(f, "MailTransport::{kind}")
    }
}

/// Sorts an SMTP error into retry-or-give-up, keeping only the reply code.
fn classify_smtp(error: &lettre::transport::smtp::Error) -> SendFailure {
    if let Some(code) = error.status() {
        let class = format!("smtp {code}");
        return match (code.severity, code.category) {
            // 53x is about our authentication (530 required, 535 bad
            // credentials, 538 encryption required): a configuration fault
            // the operator can fix, so the mail waits instead of being lost.
            (Severity::PermanentNegativeCompletion, Category::Unspecified3) => {
                SendFailure::transient(class)
            }
            (Severity::PermanentNegativeCompletion, _) => SendFailure::permanent(class),
            _ => SendFailure::transient(class),
        };
    }
    let class = if error.is_timeout() {
        "timeout"
    } else if error.is_tls() {
        "tls"
    } else if error.is_transport_shutdown() {
        "transport shut down"
    } else if error.is_response() {
        "unreadable response"
    } else if error.is_client() {
        "client"
    } else {
        // Network and connection errors: refused, reset, DNS.
        "connection"
    };
    SendFailure::transient(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message::builder()
            .from("Custos <no-reply@localhost>".parse().unwrap())
            .to("someone@example.org".parse().unwrap())
            .subject("hello")
            .body(String::from("body"))
            .unwrap()
    }

    #[test]
    fn smtp_outside_a_runtime_is_an_error_not_a_panic() {
        let err = MailTransport::from_url("smtp://127.0.0.1:2525").err();
        assert!(matches!(err, Some(MailError::Transport(_))));
    }

    #[tokio::test]
    async fn urls_parse_without_echoing_secrets() {
        assert!(MailTransport::from_url("smtp://127.0.0.1:2525").is_ok());
        assert!(MailTransport::from_url("smtp://relay.example:587?tls=required").is_ok());
        assert!(MailTransport::from_url("smtps://user:p%40ss@relay.example:465").is_ok());
        let err = MailTransport::from_url("ftp://user:hunter2@relay.example").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("CUSTOS_SMTP_URL"));
        assert!(!text.contains("hunter2"));
        let smtp = MailTransport::from_url("smtps://user:hunter2@relay.example:465").unwrap();
        assert!(!format!("{smtp:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn stub_records_what_it_is_given() {
        let ok = MailTransport::stub();
        assert_eq!(ok.send(message()).await, Ok(()));
        let seen = ok.stub_messages().await;
        assert_eq!(seen.len(), 1);
        assert!(seen[0].1.contains("Subject: hello"));

        let failing = MailTransport::stub_failing();
        let failure = failing.send(message()).await.unwrap_err();
        assert!(!failure.permanent);
        assert_eq!(failing.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn files_land_in_a_created_folder() {
        let folder = std::env::temp_dir().join(format!("custos-mail-{}", uuid::Uuid::new_v4()));
        let files = MailTransport::files(&folder.join("nested")).unwrap();
        files.send(message()).await.unwrap();
        let written: Vec<_> = std::fs::read_dir(folder.join("nested"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .collect();
        assert_eq!(written.len(), 1);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[tokio::test]
    async fn refused_connection_is_transient_and_names_no_address() {
        // Bind then drop: nothing listens on this port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let smtp = MailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let failure = smtp.send(message()).await.unwrap_err();
        assert!(!failure.permanent, "{failure}");
        assert!(!failure.to_string().contains("someone@"));
    }

    #[test]
    fn failure_display_says_kind_and_class() {
        assert_eq!(
            SendFailure::permanent("smtp 550").to_string(),
            "permanent failure: smtp 550"
        );
        assert_eq!(
            SendFailure::transient("timeout").to_string(),
            "transient failure: timeout"
        );
    }
}
