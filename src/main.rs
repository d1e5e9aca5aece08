//! The `custos` binary: serve, migrate, print the schema, create an admin,
//! generate keys.

use std::{io::Read, process::ExitCode};

use clap::{Parser, Subcommand};
use custos::{
    app::{Application, shutdown_signal},
    settings::Settings,
    state::{AppState, Overrides},
};
use secrecy::{ExposeSecret, SecretString};

/// Custos: the GraphQL backend that keeps a platform's privacy promises.
#[derive(Parser)]
#[command(name = "custos", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run migrations, then serve HTTP and run the background jobs (default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the GraphQL SDL (the text of schema.graphql).
    Schema,
    /// Create a verified ADMIN account.
    CreateAdmin {
        /// The admin's username.
        #[arg(long)]
        username: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never
        /// go on the command line, where `ps` and shell history see them).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the purge job once and print what it erased, as counts.
    Purge {
        /// Run once and exit (the only mode: the scheduler runs it in `serve`).
        #[arg(long, required = true)]
        once: bool,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain; names the first broken entry.
    Verify,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh encryption key and blind-index key, ready for the environment.
    Generate {
        /// Id of the new encryption key.
        #[arg(long, default_value = "k1")]
        key_id: String,
    },
    /// Re-encrypt every encrypted field under the active (first) key, then
    /// recompute every blind index still under
    /// CUSTOS_BLIND_INDEX_PREVIOUS_KEY, in batches; safe to stop and run
    /// again.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Schema) => {
            print!("{}", custos::graphql::sdl());
            return ExitCode::SUCCESS;
        }
        Some(Command::Keys {
            command: KeysCommand::Generate { key_id },
        }) => return generate_keys(&key_id),
        _ => {}
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("custos: {err}");
            return ExitCode::from(2);
        }
    };
    custos::telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("custos: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => serve(settings).await,
            Some(Command::Migrate) => migrate(settings).await,
            Some(Command::CreateAdmin {
                username, email, ..
            }) => create_admin(settings, &username, &email).await,
            Some(Command::Audit {
                command: AuditCommand::Verify,
            }) => verify_audit(settings).await,
            Some(Command::Purge { .. }) => purge_once(settings).await,
            Some(Command::Keys {
                command: KeysCommand::Rotate,
            }) => rotate_keys(settings).await,
            Some(Command::Schema) | Some(Command::Keys { .. }) => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("custos: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| format!("server: {e}"))
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let db = custos::db::connect(&settings.database.url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    custos::db::migrate(&db)
        .await
        .map_err(|e| format!("migration: {e}"))?;
    if let Some(url) = &settings.database.key_store_url {
        let store = custos::db::connect(url)
            .await
            .map_err(|e| format!("key store: {e}"))?;
        custos::db::migrate_key_store(&store)
            .await
            .map_err(|e| format!("key store migration: {e}"))?;
    }
    if let Some(url) = &settings.database.erasure_journal_url {
        let journal = custos::db::connect(url)
            .await
            .map_err(|e| format!("erasure journal: {e}"))?;
        custos::db::migrate_erasure_journal(&journal)
            .await
            .map_err(|e| format!("erasure journal migration: {e}"))?;
    }
    println!("migrations applied");
    Ok(())
}

async fn create_admin(settings: Settings, username: &str, email: &str) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    // A trailing newline comes from `echo` or a heredoc, not from the person.
    let password = SecretString::from(password.trim_end_matches(['\r', '\n']).to_owned());
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let id = custos::accounts::service::create_admin(&state, username, email, password)
        .await
        .map_err(|e| e.to_string())?;
    println!("admin account created: {id}");
    Ok(())
}

async fn rotate_keys(settings: Settings) -> Result<(), String> {
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    println!("re-encrypting under key {}", state.cipher().active_id());
    let report = custos::rotation::rotate(&state, |table, column, so_far| {
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
    let report = custos::rotation::reindex(&state, |table, column, so_far| {
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

async fn purge_once(settings: Settings) -> Result<(), String> {
    let state = AppState::build(settings, Overrides::default())
        .await
        .map_err(|e| e.to_string())?;
    let reapplied = custos::erasure::reapply::run(&state)
        .await
        .map_err(|e| format!("re-applying recorded erasures: {e}"))?;
    if reapplied > 0 {
        println!("erasures re-applied after a restore: {reapplied}");
    }
    let report = custos::erasure::purge::run_once(&state)
        .await
        .map_err(|e| format!("purge: {e}"))?;
    println!("accounts erased: {}", report.accounts);
    for (table, count) in &report.rows {
        println!("  {table}: {count}");
    }
    println!("overdue after run: {}", report.overdue);
    // The receipts queued by the purge go out now, not at the next serve.
    let sent = custos::jobs::outbox_sender(&state)
        .run_once()
        .await
        .map_err(|e| format!("mail: {e}"))?;
    println!("mail sent: {}, to retry: {}", sent.sent, sent.retried);
    Ok(())
}

async fn verify_audit(settings: Settings) -> Result<(), String> {
    let db = custos::db::connect(&settings.database.url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    custos::db::migrate(&db)
        .await
        .map_err(|e| format!("migration: {e}"))?;
    match custos::audit::service::verify(&db).await {
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

fn generate_keys(key_id: &str) -> ExitCode {
    match custos::crypto::keys::generate(key_id) {
        Ok(material) => {
            println!(
                "CUSTOS_ENCRYPTION_KEYS={}",
                material.encryption_keys.expose_secret()
            );
            println!(
                "CUSTOS_BLIND_INDEX_KEY={}",
                material.blind_index_key.expose_secret()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("custos: {err}");
            ExitCode::FAILURE
        }
    }
}
