//! The most a sign-up+sign-in server could reach with its database on the
//! same cores: each request hashes (a sign-up) or verifies (a sign-in) a
//! password with Custos' hashing threads, then writes one row to
//! PostgreSQL and commits, and nothing else: no GraphQL, no encryption, no
//! limits, one round trip. It starts as `custos serve` does (`serve`,
//! `CUSTOS_DATABASE_URL`, `CUSTOS_BIND`, `/readyz`, the policy's version),
//! so `bench/compare.sh signup-login` runs it in turn with Custos binaries:
//!
//!   bench/compare.sh signup-login now=target/release/custos \
//!     floor=target/release/examples/hash_write_floor
//!
//! The gap between its ratio to the argon2 bound and 100 % is what the
//! hashes' slowdown beside PostgreSQL and one committed write a request
//! cost, before any of Custos' own work.

use std::sync::Arc;

use custos::crypto::passwords::PasswordHasher;
use poem::{EndpointExt, Route, Server, handler, listener::TcpListener, post, web::Data};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use secrecy::SecretString;

struct Floor {
    db: DatabaseConnection,
    hasher: PasswordHasher,
    phc: String,
    password: SecretString,
}

#[handler]
fn ready() -> &'static str {
    "ready"
}

#[handler]
async fn graphql(body: String, floor: Data<&Arc<Floor>>) -> poem::Result<String> {
    if body.contains("policy") {
        return Ok(r#"{"data":{"policy":{"version":"floor"}}}"#.to_owned());
    }
    let answer = if body.contains("signup") {
        floor
            .hasher
            .hash(&floor.password)
            .await
            .map_err(poem::error::InternalServerError)?;
        r#"{"data":{"signup":{"accepted":true}}}"#
    } else {
        let matched = floor
            .hasher
            .verify(&floor.password, Some(&floor.phc))
            .await
            .map_err(poem::error::InternalServerError)?;
        if !matched {
            return Err(poem::Error::from_status(poem::http::StatusCode::FORBIDDEN));
        }
        r#"{"data":{"login":{"token":"floor"}}}"#
    };
    floor
        .db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO hash_write_floor (id, at) VALUES ($1, now())",
            [uuid::Uuid::new_v4().into()],
        ))
        .await
        .map_err(poem::error::InternalServerError)?;
    Ok(answer.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() != Some("serve") {
        return Err("usage: CUSTOS_DATABASE_URL=postgres://… CUSTOS_BIND=127.0.0.1:port hash_write_floor serve".into());
    }
    let addr = std::env::var("CUSTOS_BIND").unwrap_or_else(|_| "127.0.0.1:18791".to_owned());
    let url = std::env::var("CUSTOS_DATABASE_URL")?;
    let db = Database::connect(&url).await?;
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS hash_write_floor (id uuid PRIMARY KEY, at timestamptz NOT NULL)",
    )
    .await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hasher = PasswordHasher::new(cores)?;
    let password = SecretString::from("a load test passphrase".to_owned());
    let phc = hasher.hash(&password).await?;
    let floor = Arc::new(Floor {
        db,
        hasher,
        phc,
        password,
    });
    let app = Route::new()
        .at("/graphql", post(graphql))
        .at("/readyz", poem::get(ready))
        .data(floor);
    Server::new(TcpListener::bind(addr)).run(app).await?;
    Ok(())
}
