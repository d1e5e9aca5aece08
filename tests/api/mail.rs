//! The outbox keeps mail through an SMTP outage and delivers it after.

use custos::mail::{
    RenderedMail,
    outbox::{self, OutgoingMail},
};

use crate::helpers::{eventually, signup, spawn_app};

async fn queue(app: &crate::helpers::TestApp, to: &str, subject: &str) {
    outbox::enqueue(
        app.state.db(),
        app.state.cipher(),
        None,
        app.state.blind().active(),
        OutgoingMail {
            account_id: None,
            kind: "test",
            to: to.to_owned(),
            content: RenderedMail {
                subject: subject.to_owned(),
                text: "Hello from the outbox test.".to_owned(),
                html: None,
                draft: None,
            },
        },
        app.clock.now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_is_delivered_once_after_it_returns() {
    let app = spawn_app().await;
    app.smtp.stop();
    queue(&app, "outage@example.org", "Outage test").await;

    let report = app.deliver_mail().await;
    assert_eq!(report.sent, 0);
    assert_eq!(report.retried, 1);
    assert_eq!(outbox::pending_count(app.state.db()).await.unwrap(), 1);
    assert!(app.smtp.messages().is_empty());

    // Still down, and not due yet: nothing is lost, nothing is sent.
    let report = app.deliver_mail().await;
    assert_eq!(report.sent, 0);
    assert_eq!(outbox::pending_count(app.state.db()).await.unwrap(), 1);

    app.smtp.restart();
    app.clock.advance(chrono::Duration::hours(2));
    let report = app.deliver_mail().await;
    assert_eq!(report.sent, 1);
    assert_eq!(outbox::pending_count(app.state.db()).await.unwrap(), 0);

    // Another tick sends nothing again.
    let report = app.deliver_mail().await;
    assert_eq!(report.sent, 0);
    let received = app.mail_to("outage@example.org");
    assert_eq!(received.len(), 1, "delivered exactly once");
    assert_eq!(received[0].subject(), "Outage test");
}

#[tokio::test]
async fn the_scheduler_sends_mail_on_its_own() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.run_jobs = true;
        s.scheduler_interval_secs = 1;
    })
    .await;
    queue(&app, "scheduled@example.org", "Scheduled").await;
    let sent = eventually(50, std::time::Duration::from_millis(100), || async {
        !app.mail_to("scheduled@example.org").is_empty()
    })
    .await;
    assert!(sent, "the job runner did not send the queued mail");
}

#[tokio::test]
async fn mail_queued_by_a_request_leaves_without_waiting_for_the_tick() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.run_jobs = true;
        s.scheduler_interval_secs = 3600;
    })
    .await;
    // The runner's first tick comes at once; after it, the next is an hour
    // away, so only the wake-up of the signup can send its mail.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    signup(&app, "zhao_liu", "zhao@example.org").await;
    let queued = std::time::Instant::now();
    while app.mail_to("zhao@example.org").is_empty() {
        assert!(
            queued.elapsed() < std::time::Duration::from_secs(5),
            "the verification mail waited for the next tick"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
