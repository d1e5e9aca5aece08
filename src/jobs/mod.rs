//! Background jobs run on an interval: erasures re-applied after a
//! restore (see [`crate::erasure::reapply`]), guardian-consent expiry, the
//! expiry of sign-ups never verified, the purge of due accounts, the
//! resumption of security-incident fan-outs whose driver's lease ran out
//! (taken over and driven on tasks of their own, so a long fan-out never
//! holds up the tick; see [`crate::notices::fanout::resume_expired`]), the
//! mail outbox (last, so an erasure receipt leaves in the same tick), and
//! the pruning of sign-in throttles and of shared rate-limit windows. The
//! outbox also runs as soon as this instance queues mail. A failing tick is
//! logged and retried at the next one; it never stops the runner. On
//! shutdown the tick in flight finishes before the runner returns.

use tokio::{sync::watch, task::JoinHandle};

use crate::{mail::outbox::OutboxSender, state::AppState};

/// Builds the outbox sender for this state.
pub fn outbox_sender(state: &AppState) -> OutboxSender {
    let settings = state.settings();
    OutboxSender::new(
        state.db().clone(),
        state.cipher().clone(),
        state.keys().clone(),
        state.transport().clone(),
        settings.mail.from.clone(),
        state.clock().clone(),
        settings.mail.outbox_batch,
        settings.mail.outbox_max_attempts,
    )
}

/// Runs every job once, in order: what the scheduler does each tick.
pub async fn tick(state: &AppState, outbox: &OutboxSender) {
    match crate::erasure::reapply::run(state).await {
        Ok(reapplied) => state.count_reapplied(reapplied),
        Err(err) => tracing::error!(error = %err, "re-applying recorded erasures failed"),
    }
    match crate::erasure::guardian::expire_unanswered(state).await {
        Ok(0) => {}
        Ok(expired) => tracing::info!(
            expired,
            "minors without guardian consent scheduled for erasure"
        ),
        Err(err) => tracing::error!(error = %err, "guardian expiry failed"),
    }
    match crate::erasure::unverified::expire_unverified(state).await {
        Ok(0) => {}
        Ok(expired) => tracing::info!(expired, "unverified sign-ups scheduled for erasure"),
        Err(err) => tracing::error!(error = %err, "unverified sign-up expiry failed"),
    }
    let started = std::time::Instant::now();
    let purged = crate::erasure::purge::run_once(state).await;
    if let Ok(report) = &purged {
        state.observe_purge(report.accounts, started.elapsed());
    }
    match purged {
        Ok(report) if report.accounts > 0 => {
            tracing::info!(
                accounts = report.accounts,
                overdue = report.overdue,
                "purge tick"
            );
        }
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, "purge tick failed"),
    }
    match crate::notices::fanout::resume_expired(state).await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(resumed, "incident fan-outs resumed"),
        Err(err) => tracing::error!(error = %err, "resuming incident fan-outs failed"),
    }
    send_mail(outbox).await;
    match crate::ratelimit::login::prune(state.db(), state.clock().now()).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "login throttle pruned"),
        Err(err) => tracing::error!(error = %err, "login throttle prune failed"),
    }
    match crate::ratelimit::shared::prune(state.db(), state.clock().now()).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "shared rate-limit windows pruned"),
        Err(err) => tracing::error!(error = %err, "shared rate-limit prune failed"),
    }
}

/// Runs the outbox once: what a tick does for mail, and what a wake-up
/// after [`AppState::mail_queued`] does.
async fn send_mail(outbox: &OutboxSender) {
    match outbox.run_once().await {
        Ok(report) if report != Default::default() => {
            tracing::info!(
                sent = report.sent,
                retried = report.retried,
                failed = report.failed,
                "outbox tick"
            );
        }
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, "outbox tick failed"),
    }
}

/// How long a wake-up waits before sending: mail is queued inside the
/// transaction of the change that causes it, which commits just after.
/// Wake-ups in the meantime are folded into one run.
const MAIL_WAKE_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Starts the job runner; it stops when `shutdown` turns true. Besides the
/// interval, mail queued on this instance wakes the outbox at once, so a
/// verification or reset link arrives in about a second, not a minute.
pub fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let outbox = outbox_sender(&state);
        let mut interval = tokio::time::interval(state.settings().jobs.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => tick(&state, &outbox).await,
                () = state.mail_wake().notified() => {
                    tokio::time::sleep(MAIL_WAKE_DELAY).await;
                    send_mail(&outbox).await;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        tracing::info!("job runner stopped");
    })
}
