//! The operator commands of the `custos` binary, one function each: the
//! binary parses its arguments and calls one of these. Each prints what it
//! did and answers the message to print on failure.

pub mod rotation;

use std::io::Read;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    app::{Application, shutdown_signal},
    settings::Settings,
    state::{AppState, Overrides},
};

/// `custos schema`: the GraphQL SDL, the text of `schema.graphql`.
pub fn print_schema() {
    print!("{}", crate::graphql::sdl());
}

/// `custos serve`: runs migrations, then serves HTTP and runs the
/// background jobs until a shutdown signal.
pub async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| format!("server: {e}"))
}

/// `custos migrate`: applies pending migrations (of the key store and the
/// erasure journal too, when they have databases of their own).
pub async fn migrate(settings: Settings) -> Result<(), String> {
    let db = crate::db::connect(&settings.database.url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    crate::db::migrate(&db)
        .await
        .map_err(|e| format!("migration: {e}"))?;
    if let Some(url) = &settings.database.key_store_url {
        let store = crate::db::connect(url)
            .await
            .map_err(|e| format!("key store: {e}"))?;
        crate::db::migrate_key_store(&store)
            .await
            .map_err(|e| format!("key store migration: {e}"))?;
    }
    if let Some(url) = &settings.database.erasure_journal_url {
        let journal = crate::db::connect(url)
            .await
            .map_err(|e| format!("erasure journal: {e}"))?;
        crate::db::migrate_erasure_journal(&journal)
            .await
            .map_err(|e| format!("erasure journal migration: {e}"))?;
    }
    println!("migrations applied");
    Ok(())
}

/// `custos create-admin`: creates a verified ADMIN account, the password
/// read from standard input.
pub async fn create_admin(settings: Settings, username: &str, email: &str) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    // A trailing newline comes from `echo` or a heredoc, not from the person.
    let password = SecretString::from(password.trim_end_matches(['\r', '\n']).to_owned());
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let id = crate::accounts::service::create_admin(&state, username, email, password)
        .await
        .map_err(|e| e.to_string())?;
    println!("admin account created: {id}");
    Ok(())
}

/// `custos keys rotate`: re-encrypts under the active key, then
/// recomputes the blind indexes still under the previous key.
pub async fn rotate_keys(settings: Settings) -> Result<(), String> {
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    println!("re-encrypting under key {}", state.cipher().active_id());
    let report = rotation::rotate(&state, |table, column, so_far| {
        eprintln!(
            "  {table}.{column}: {} examined, {} rotated so far",
            so_far.examined, so_far.rotated
        );
    })
    .await
    .map_err(|e| format!("rotation: {e}"))?;
    println!(
        "done: {} values examined, {} re-encrypted, {} changed meanwhile (run again to finish them)",
        report.examined, report.rotated, report.raced
    );

    if state.blind().previous().is_none() {
        println!("blind indexes: no CUSTOS_BLIND_INDEX_PREVIOUS_KEY set, nothing to recompute");
        return Ok(());
    }
    println!("recomputing blind indexes still under the previous blind-index key");
    let report = rotation::reindex(&state, |table, column, so_far| {
        eprintln!(
            "  {table}.{column}: {} examined, {} recomputed so far",
            so_far.examined, so_far.reindexed
        );
    })
    .await
    .map_err(|e| format!("blind-index rotation: {e}"))?;
    println!(
        "done: {} indexes examined, {} recomputed, {} changed meanwhile (run again to finish them), \
         {} under neither key and {} clashing with another row (left alone, row ids in the log), \
         {} sign-in throttle counters dropped",
        report.examined,
        report.reindexed,
        report.raced,
        report.unmatched,
        report.conflicts,
        report.throttle_dropped
    );
    if report.raced == 0 && report.unmatched == 0 && report.conflicts == 0 {
        println!(
            "every blind index is under the active key: CUSTOS_BLIND_INDEX_PREVIOUS_KEY may be unset"
        );
    }
    Ok(())
}

/// `custos purge --once`: re-applies recorded erasures, runs the purge
/// once and sends the receipts it queued, printing counts.
pub async fn purge_once(settings: Settings) -> Result<(), String> {
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let reapplied = crate::erasure::reapply::run(&state)
        .await
        .map_err(|e| format!("re-applying recorded erasures: {e}"))?;
    if reapplied > 0 {
        println!("erasures re-applied after a restore: {reapplied}");
    }
    let report = crate::erasure::purge::run_once(&state)
        .await
        .map_err(|e| format!("purge: {e}"))?;
    println!("accounts erased: {}", report.accounts);
    for (table, count) in &report.rows {
        println!("  {table}: {count}");
    }
    println!("overdue after run: {}", report.overdue);
    // The receipts queued by the purge go out now, not at the next serve.
    let sent = crate::jobs::outbox_sender(&state)
        .run_once()
        .await
        .map_err(|e| format!("mail: {e}"))?;
    println!("mail sent: {}, to retry: {}", sent.sent, sent.retried);
    Ok(())
}

/// `custos audit verify`: checks the whole hash chain.
pub async fn verify_audit(settings: Settings) -> Result<(), String> {
    let db = crate::db::connect(&settings.database.url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    crate::db::migrate(&db)
        .await
        .map_err(|e| format!("migration: {e}"))?;
    match crate::audit::service::verify(&db).await {
        Ok(Ok(count)) => {
            println!("audit chain intact: {count} entries verified");
            Ok(())
        }
        Ok(Err(broken)) => Err(format!(
            "audit chain broken at entry {} (seq {}): {}",
            broken.id, broken.seq, broken.reason
        )),
        Err(e) => Err(format!("database: {e}")),
    }
}

/// `custos keys generate`: prints a fresh encryption key and blind-index
/// key, ready for the environment.
pub fn generate_keys(key_id: &str) -> Result<(), String> {
    let material = crate::crypto::keys::generate(key_id).map_err(|err| err.to_string())?;
    println!(
        "CUSTOS_ENCRYPTION_KEYS={}",
        material.encryption_keys.expose_secret()
    );
    println!(
        "CUSTOS_BLIND_INDEX_KEY={}",
        material.blind_index_key.expose_secret()
    );
    Ok(())
}
