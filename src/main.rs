//! The `custos` binary: parses the command line and runs one of the
//! operator commands ([`custos::commands`]).

// Long functions are split into named steps (threshold in clippy.toml).
#![deny(clippy::too_many_lines)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use custos::{commands, settings::Settings};

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
            commands::print_schema();
            return ExitCode::SUCCESS;
        }
        Some(Command::Keys {
            command: KeysCommand::Generate { key_id },
        }) => return exit_code(commands::generate_keys(&key_id)),
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
            None | Some(Command::Serve) => commands::serve(settings).await,
            Some(Command::Migrate) => commands::migrate(settings).await,
            Some(Command::CreateAdmin {
                username, email, ..
            }) => commands::create_admin(settings, &username, &email).await,
            Some(Command::Audit {
                command: AuditCommand::Verify,
            }) => commands::verify_audit(settings).await,
            Some(Command::Purge { .. }) => commands::purge_once(settings).await,
            Some(Command::Keys {
                command: KeysCommand::Rotate,
            }) => commands::rotate_keys(settings).await,
            Some(Command::Schema) | Some(Command::Keys { .. }) => Ok(()),
        }
    });
    exit_code(outcome)
}

/// Success, or the message on standard error and a failure code.
fn exit_code(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("custos: {message}");
            ExitCode::FAILURE
        }
    }
}
