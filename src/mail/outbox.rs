//! The outbox: mail is queued in the database with the change that causes it
//! ([`super::queue`]) and sent later, with retries, by [`OutboxSender`]
//! ([`super::sender`]). This module gathers both under one path.

pub use super::queue::{
    BLIND_INDEX_FIELD, BODY_DRAFT, BODY_RENDERED, FORGOTTEN_AFTER_DELIVERY, MailQueue,
    OutboxStatus, OutgoingMail, SealedMail, enqueue, enqueue_sealed, failed_count, pending_count,
    queue, queue_in, queue_under, queued_since, seal,
};
pub use super::sender::{OutboxSender, SendReport, backoff};

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, Database, IntoActiveModel, TransactionTrait};

    use std::sync::Arc;

    use chrono::{TimeDelta, Utc};
    use entity::outbox;
    use sea_orm::{
        ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
        sea_query::Expr,
    };
    use uuid::Uuid;

    use super::*;
    use crate::clock::Clock;
    use crate::crypto::keystore::KeyStore;
    use crate::crypto::{BlindIndex, EncryptionKey, FieldCipher, FieldContext, Keyring};
    use crate::mail::test_smtp::TestSmtp;
    use crate::mail::{MailError, RenderedMail, transport::MailTransport};

    const TO: &str = "Alice.Example@Example.org";
    const SUBJECT: &str = "Secret subject 主题";

    struct Fixture {
        db: DatabaseConnection,
        cipher: Arc<FieldCipher>,
        blind: BlindIndex,
        clock: Clock,
    }

    async fn fixture() -> Fixture {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let keyring = Keyring::new(vec![EncryptionKey::new("t1", [1u8; 32]).unwrap()]).unwrap();
        let start = Utc
            .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .unwrap();
        Fixture {
            db,
            cipher: Arc::new(FieldCipher::new(keyring)),
            blind: BlindIndex::new([7u8; 32]),
            clock: Clock::manual(start),
        }
    }

    fn mail(html: bool) -> OutgoingMail {
        OutgoingMail {
            account_id: Some(Uuid::new_v4()),
            kind: "verify_email",
            to: TO.into(),
            content: RenderedMail {
                subject: SUBJECT.into(),
                text: "Your token is tok_PLAINTEXT_123".into(),
                html: html.then(|| "<p>Your token is tok_PLAINTEXT_123</p>".into()),
                draft: None,
            },
        }
    }

    impl Fixture {
        async fn enqueue(&self, mail: OutgoingMail) -> Uuid {
            enqueue(
                &self.db,
                &self.cipher,
                None,
                &self.blind,
                mail,
                self.clock.now(),
            )
            .await
            .unwrap()
        }

        /// Queues `mail(false)` for a new account whose key `keys` makes
        /// on `keys_db`, under that key.
        async fn enqueue_under_key(&self, keys: &KeyStore, keys_db: &DatabaseConnection) -> Uuid {
            let account = Uuid::new_v4();
            let key = keys
                .get_or_create(&self.cipher, keys_db, account, self.clock.now())
                .await
                .unwrap();
            let mut outgoing = mail(false);
            outgoing.account_id = Some(account);
            enqueue(
                &self.db,
                &self.cipher,
                Some(&key),
                &self.blind,
                outgoing,
                self.clock.now(),
            )
            .await
            .unwrap()
        }

        fn sender(&self, transport: MailTransport, max_attempts: u32) -> OutboxSender {
            OutboxSender::new(
                self.db.clone(),
                Arc::clone(&self.cipher),
                Arc::new(KeyStore::shared()),
                transport,
                "Custos <no-reply@custos.test>".parse().unwrap(),
                self.clock.clone(),
                50,
                max_attempts,
            )
        }

        async fn row(&self, id: Uuid) -> outbox::Model {
            outbox::Entity::find_by_id(id)
                .one(&self.db)
                .await
                .unwrap()
                .unwrap()
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        let haystack = String::from_utf8_lossy(haystack).to_lowercase();
        haystack.contains(&needle.to_lowercase())
    }

    #[tokio::test]
    async fn enqueue_stores_no_plaintext() {
        let f = fixture().await;
        let id = f.enqueue(mail(true)).await;
        let row = f.row(id).await;

        let mut stored = Vec::new();
        for column in [
            &row.recipient_ct,
            &row.recipient_bidx,
            &row.subject_ct,
            &row.body_text_ct,
            row.body_html_ct.as_ref().unwrap(),
        ] {
            stored.extend_from_slice(column);
        }
        stored.extend_from_slice(row.kind.as_bytes());
        for needle in [
            "alice",
            "example.org",
            "Secret subject",
            "主题",
            "tok_PLAINTEXT",
        ] {
            assert!(!contains(&stored, needle), "{needle:?} stored in clear");
        }

        assert_eq!(row.status, OutboxStatus::Pending.as_str());
        assert_eq!(row.attempts, 0);
        assert_eq!(row.next_attempt_at, f.clock.now());
        assert_eq!(
            row.recipient_bidx,
            f.blind.compute("email", "alice.example@example.org")
        );
        let ctx = FieldContext {
            table: "outbox",
            column: "recipient",
            row_id: id,
        };
        assert_eq!(f.cipher.decrypt_str(&ctx, &row.recipient_ct).unwrap(), TO);
        assert_eq!(pending_count(&f.db).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn enqueue_rolls_back_with_the_callers_transaction() {
        let f = fixture().await;
        let txn = f.db.begin().await.unwrap();
        enqueue(&txn, &f.cipher, None, &f.blind, mail(false), f.clock.now())
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn enqueue_refuses_an_invalid_address_without_naming_it() {
        let f = fixture().await;
        let mut bad = mail(false);
        bad.to = "not an address".into();
        let err = enqueue(&f.db, &f.cipher, None, &f.blind, bad, f.clock.now())
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Address));
        assert!(!err.to_string().contains("not an address"));
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn run_once_sends_and_marks_sent() {
        let f = fixture().await;
        let id = f.enqueue(mail(true)).await;
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);

        let report = sender.run_once().await.unwrap();
        assert_eq!(
            report,
            SendReport {
                sent: 1,
                retried: 0,
                failed: 0
            }
        );

        let sent = transport.stub_messages().await;
        assert_eq!(sent.len(), 1);
        let (envelope, raw) = &sent[0];
        assert_eq!(envelope.to().len(), 1);
        assert_eq!(envelope.to()[0].to_string(), TO);
        assert!(raw.contains(&format!("Message-ID: <{id}@custos>")), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");

        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Sent.as_str());
        assert_eq!(row.sent_at, Some(f.clock.now()));
        assert_eq!(row.claimed_until, None);
        assert_eq!(row.attempts, 1);
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);

        // Sent mail is not sent again.
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_drafted_mail_is_stored_as_its_draft_and_sent_rendered() {
        let f = fixture().await;
        let content = crate::mail::templates::Draft::new(super::super::Language::En, SUBJECT)
            .para("Your token is tokPLAINTEXT123 <b>")
            .link(
                "Open it",
                "https://custos.test/verify-email?token=tokLINK456",
            )
            .render();
        let id = f
            .enqueue(OutgoingMail {
                account_id: None,
                kind: "verify_email",
                to: TO.into(),
                content,
            })
            .await;
        let row = f.row(id).await;
        assert_eq!(row.body_format, BODY_DRAFT);
        assert_eq!(row.body_html_ct, None, "no second rendering is stored");
        for needle in ["tokPLAINTEXT", "tokLINK", "Open it"] {
            assert!(
                !contains(&row.body_text_ct, needle),
                "{needle:?} stored in clear"
            );
        }

        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        let sent = transport.stub_messages().await;
        let (_, raw) = &sent[0];
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("tokPLAINTEXT123"), "{raw}");
        assert!(raw.contains("tokLINK456"), "{raw}");
        assert!(raw.contains("&lt;b&gt;"), "the HTML part is escaped: {raw}");
    }

    #[tokio::test]
    async fn an_unreadable_draft_is_given_up_without_sending() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // A draft row whose body is not a draft.
        outbox::Entity::update_many()
            .col_expr(outbox::Column::BodyFormat, Expr::value(BODY_DRAFT))
            .filter(outbox::Column::Id.eq(id))
            .exec(&f.db)
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap().failed, 1);
        assert!(transport.stub_messages().await.is_empty());
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Failed.as_str());
        assert_eq!(row.last_error.as_deref(), Some("draft unreadable"));
    }

    #[tokio::test]
    async fn a_database_failure_while_recording_a_sent_mail_is_waited_out_not_resent() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // The database refuses to mark mail SENT while `outage` has a row.
        for sql in [
            "CREATE TABLE outage (x INTEGER)",
            "INSERT INTO outage VALUES (1)",
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox \
             WHEN NEW.status = 'SENT' AND EXISTS (SELECT 1 FROM outage) \
             BEGIN SELECT RAISE(ABORT, 'database unavailable'); END",
        ] {
            f.db.execute_unprepared(sql).await.unwrap();
        }
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        let run = tokio::spawn(async move { sender.run_once().await });
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(!run.is_finished(), "the run waits for the database");
        assert_eq!(transport.stub_messages().await.len(), 1, "the mail left");
        f.db.execute_unprepared("DELETE FROM outage").await.unwrap();

        let report = run.await.unwrap().unwrap();
        assert_eq!(report.sent, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Sent.as_str());
        assert_eq!(row.attempts, 1);
        // SENT is never claimed again: the mail went out exactly once.
        f.clock.advance(chrono::Duration::hours(1));
        let again = f.sender(transport.clone(), 5).run_once().await.unwrap();
        assert_eq!(again, SendReport::default());
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_key_read_waits_for_the_database_instead_of_failing_an_attempt() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let id = f.enqueue_under_key(&KeyStore::shared(), &f.db).await;
        // The keys cannot be read (as while the database is down); a fresh
        // sender has none cached.
        f.db.execute_unprepared("ALTER TABLE account_keys RENAME TO account_keys_away")
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        let run = tokio::spawn(async move { sender.run_once().await });
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(!run.is_finished(), "the run waits for the key");
        assert!(transport.stub_messages().await.is_empty());
        f.db.execute_unprepared("ALTER TABLE account_keys_away RENAME TO account_keys")
            .await
            .unwrap();

        let report = run.await.unwrap().unwrap();
        assert_eq!(report.sent, 1, "{report:?}");
        assert_eq!(report.retried, 0);
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Sent.as_str());
        assert_eq!(row.attempts, 1, "the outage cost no attempt");
        assert_eq!(transport.stub_messages().await.len(), 1);
    }

    #[tokio::test]
    async fn a_separate_key_store_that_does_not_answer_is_a_transient_failure() {
        use sea_orm::ConnectionTrait;
        let f = fixture().await;
        let store = Database::connect("sqlite::memory:").await.unwrap();
        migration::KeyStoreMigrator::up(&store, None).await.unwrap();
        let id = f
            .enqueue_under_key(&KeyStore::separate(store.clone()), &store)
            .await;
        store
            .execute_unprepared("ALTER TABLE account_keys RENAME TO account_keys_away")
            .await
            .unwrap();
        let transport = MailTransport::stub();
        let sender = OutboxSender::new(
            f.db.clone(),
            Arc::clone(&f.cipher),
            Arc::new(KeyStore::separate(store.clone())),
            transport.clone(),
            "Custos <no-reply@custos.test>".parse().unwrap(),
            f.clock.clone(),
            50,
            5,
        );
        // The main database is fine: the run does not wait, the row is
        // pushed back and other mail would go on.
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1, "{report:?}");
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Pending.as_str());
        assert_eq!(row.last_error.as_deref(), Some("key store"));
        assert!(transport.stub_messages().await.is_empty());
    }

    #[tokio::test]
    async fn transient_failure_backs_off_then_retries() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let sender = f.sender(MailTransport::stub_failing(), 5);
        let start = f.clock.now();

        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Pending.as_str());
        assert_eq!(row.attempts, 1);
        assert_eq!(row.next_attempt_at, start + TimeDelta::seconds(30));
        assert_eq!(row.claimed_until, None);
        assert_eq!(row.last_error.as_deref(), Some("stub"));

        // Not due yet: nothing happens.
        f.clock.advance(TimeDelta::seconds(29));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());

        f.clock.advance(TimeDelta::seconds(1));
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.attempts, 2);
        assert_eq!(row.next_attempt_at, f.clock.now() + TimeDelta::seconds(60));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let sender = f.sender(MailTransport::stub_failing(), 3);

        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        f.clock.advance(backoff(2));
        let report = sender.run_once().await.unwrap();
        assert_eq!(
            report,
            SendReport {
                sent: 0,
                retried: 0,
                failed: 1
            }
        );
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Failed.as_str());
        assert_eq!(row.attempts, 3);

        f.clock.advance(TimeDelta::days(1));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
    }

    #[tokio::test]
    async fn a_row_claimed_by_another_sender_is_left_alone_until_the_claim_runs_out() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        let mut row = f.row(id).await.into_active_model();
        row.claimed_until = Set(Some(f.clock.now() + TimeDelta::minutes(5)));
        row.update(&f.db).await.unwrap();

        let transport = MailTransport::stub();
        let sender = f.sender(transport.clone(), 5);
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert!(transport.stub_messages().await.is_empty());

        // The other sender crashed: its claim runs out and the mail goes.
        f.clock
            .advance(TimeDelta::minutes(5) + TimeDelta::seconds(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(id).await.status, OutboxStatus::Sent.as_str());
    }

    #[tokio::test]
    async fn claims_at_most_a_batch_oldest_first() {
        let f = fixture().await;
        let first = f.enqueue(mail(false)).await;
        f.clock.advance(TimeDelta::seconds(1));
        let second = f.enqueue(mail(false)).await;
        f.clock.advance(TimeDelta::seconds(1));
        let third = f.enqueue(mail(false)).await;

        let transport = MailTransport::stub();
        let mut sender = f.sender(transport.clone(), 5);
        sender.batch = 2;
        assert_eq!(sender.run_once().await.unwrap().sent, 2);
        assert_eq!(f.row(first).await.status, OutboxStatus::Sent.as_str());
        assert_eq!(f.row(second).await.status, OutboxStatus::Sent.as_str());
        assert_eq!(f.row(third).await.status, OutboxStatus::Pending.as_str());
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(transport.stub_messages().await.len(), 3);
    }

    #[tokio::test]
    async fn a_row_that_does_not_decrypt_is_given_up_without_sending() {
        let f = fixture().await;
        let id = f.enqueue(mail(false)).await;
        // Moved ciphertext: the subject's bytes in the recipient column no
        // longer authenticate.
        let mut row = f.row(id).await.into_active_model();
        let subject = f.row(id).await.subject_ct;
        row.recipient_ct = Set(subject);
        row.update(&f.db).await.unwrap();

        let transport = MailTransport::stub();
        let report = f.sender(transport.clone(), 5).run_once().await.unwrap();
        assert_eq!(report.failed, 1);
        assert!(transport.stub_messages().await.is_empty());
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Failed.as_str());
        assert_eq!(row.last_error.as_deref(), Some("undecryptable"));
    }

    #[test]
    fn backoff_doubles_from_thirty_seconds_and_is_capped_at_an_hour() {
        assert_eq!(backoff(0), TimeDelta::seconds(30));
        assert_eq!(backoff(1), TimeDelta::seconds(30));
        assert_eq!(backoff(2), TimeDelta::seconds(60));
        assert_eq!(backoff(3), TimeDelta::seconds(120));
        assert_eq!(backoff(7), TimeDelta::seconds(1920));
        assert_eq!(backoff(8), TimeDelta::hours(1));
        assert_eq!(backoff(u32::MAX), TimeDelta::hours(1));
        let mut previous = TimeDelta::zero();
        for attempts in 0..200 {
            let delay = backoff(attempts);
            assert!(delay >= previous, "backoff({attempts}) shrank");
            assert!(delay <= TimeDelta::hours(1));
            previous = delay;
        }
    }

    #[test]
    fn outgoing_mail_debug_redacts_recipient_and_content() {
        let printed = format!("{:?}", mail(true));
        assert!(printed.contains("verify_email"));
        for needle in ["Alice", "Secret", "tok_"] {
            assert!(!printed.contains(needle), "{printed}");
        }
    }

    /// Two senders race over the same due mail; each mail must be sent once.
    async fn two_senders_send_each_mail_once(f: &Fixture) {
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(f.enqueue(mail(false)).await);
        }
        let (left, right) = (MailTransport::stub(), MailTransport::stub());
        let (a, b) = (f.sender(left.clone(), 5), f.sender(right.clone(), 5));
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        assert_eq!(ra.unwrap().sent + rb.unwrap().sent, 20);

        let mut seen: Vec<String> = Vec::new();
        for (_, raw) in left
            .stub_messages()
            .await
            .into_iter()
            .chain(right.stub_messages().await)
        {
            let id = ids
                .iter()
                .find(|id| raw.contains(&format!("<{id}@custos>")));
            seen.push(id.map(Uuid::to_string).unwrap_or_default());
        }
        seen.sort();
        let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        expected.sort();
        assert_eq!(seen, expected, "every mail exactly once");
        assert_eq!(pending_count(&f.db).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_on_sqlite_send_each_mail_once() {
        two_senders_send_each_mail_once(&fixture().await).await;
    }

    /// Runs on PostgreSQL when `CUSTOS_TEST_DATABASE_URL` names a server
    /// where tests may create databases; passes trivially otherwise.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_on_postgres_skip_locked_rows() {
        crate::db::with_test_postgres(async |db| {
            let mut f = fixture().await;
            f.db = db.clone();
            two_senders_send_each_mail_once(&f).await;
        })
        .await;
    }

    #[tokio::test]
    async fn smtp_outage_delays_mail_and_loses_none() {
        let f = fixture().await;
        let smtp = TestSmtp::stopped();
        let transport = MailTransport::from_url(&smtp.url()).unwrap();
        let sender = f.sender(transport, 12);
        let id = f.enqueue(mail(true)).await;

        // The relay is down: the mail waits.
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.retried, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Pending.as_str());
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_error.as_deref(), Some("connection"));
        assert!(smtp.messages().is_empty());

        // The relay is back, but the back-off is respected.
        smtp.restart();
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert!(smtp.messages().is_empty());

        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        let row = f.row(id).await;
        assert_eq!(row.status, OutboxStatus::Sent.as_str());
        assert_eq!(row.attempts, 2);

        let captured = smtp.messages();
        assert_eq!(captured.len(), 1, "delivered exactly once");
        assert_eq!(captured[0].to, vec![TO.to_owned()]);
        assert_eq!(captured[0].from, "no-reply@custos.test");
        assert!(
            captured[0]
                .raw
                .contains(&format!("Message-ID: <{id}@custos>"))
        );

        f.clock.advance(TimeDelta::hours(2));
        assert_eq!(sender.run_once().await.unwrap(), SendReport::default());
        assert_eq!(smtp.messages().len(), 1);

        // Down again mid-life (pooled connections are cut too), then back.
        smtp.stop();
        let second = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        smtp.restart();
        f.clock.advance(backoff(1));
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(second).await.status, OutboxStatus::Sent.as_str());
        assert_eq!(smtp.messages().len(), 2);
    }

    #[tokio::test]
    async fn smtp_5xx_is_permanent_and_4xx_is_retried() {
        let f = fixture().await;
        let smtp = TestSmtp::start();
        let sender = f.sender(MailTransport::from_url(&smtp.url()).unwrap(), 12);

        smtp.reject_recipients(Some(451));
        let soft = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().retried, 1);
        let row = f.row(soft).await;
        assert_eq!(row.status, OutboxStatus::Pending.as_str());
        assert_eq!(row.last_error.as_deref(), Some("smtp 451"));

        smtp.reject_recipients(Some(550));
        f.clock.advance(backoff(1));
        let report = sender.run_once().await.unwrap();
        assert_eq!(report.failed, 1);
        let row = f.row(soft).await;
        assert_eq!(row.status, OutboxStatus::Failed.as_str());
        assert_eq!(row.last_error.as_deref(), Some("smtp 550"));
        assert!(!row.last_error.unwrap_or_default().contains("alice"));
        assert!(smtp.messages().is_empty());

        smtp.reject_recipients(None);
        let good = f.enqueue(mail(false)).await;
        assert_eq!(sender.run_once().await.unwrap().sent, 1);
        assert_eq!(f.row(good).await.status, OutboxStatus::Sent.as_str());
        assert_eq!(smtp.messages().len(), 1);
    }
}
