//! The baseline for `bench/load.sh`: a bare async-graphql + poem server
//! answering `{ hello }`, with nothing of Custos in it. Custos' `me` is
//! compared against it.
//!
//! Run: `cargo run --release --example bare_server -- 127.0.0.1:18790`

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use async_graphql_poem::GraphQL;
use poem::{Route, Server, listener::TcpListener, post};

struct Query;

#[Object]
impl Query {
    async fn hello(&self) -> &'static str {
        "world"
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18790".to_owned());
    let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
    let app = Route::new().at("/graphql", post(GraphQL::new(schema)));
    Server::new(TcpListener::bind(addr)).run(app).await
}
