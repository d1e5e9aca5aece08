//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery = { version: 1, sha256Hash }` with or
//! without the query text, over POST.
//!
//! Rules:
//! - The hash alone: the text is the kept document with that SHA-256
//!   ([`super::documents`]); none is `PERSISTED_QUERY_NOT_FOUND`, and the
//!   client sends the hash again with the text. The message is
//!   `PersistedQueryNotFound`, the string older Apollo clients match, and
//!   the HTTP status 200: some clients stop using persisted queries for
//!   good after a 400.
//! - The hash with the text: the hash must be the text's SHA-256 (64 hex
//!   digits), else `BAD_USER_INPUT` and nothing runs; the text then runs
//!   and is kept like any other.
//! - The persisted queries are exactly the kept documents, under the same
//!   bounds, and a text with a string literal is never kept, so it is never
//!   found by hash: such a client keeps sending its text, and no personal
//!   data is held here.
//! - Any other `version` is `BAD_USER_INPUT`.
//!
//! async-graphql's `apollo_persisted_queries` extension is not used: it
//! runs inside the executor, after this layer's checks (aliases, depth,
//! the session cache's), and keeps every text in a cache of its own, with
//! string literals too.

use async_graphql::Value;

use super::documents::text_hash;

/// What a request asked of persisted queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// Nothing: a plain request.
    No,
    /// The text with this hash; the request has no text of its own.
    Find([u8; 32]),
    /// Keep the request's text under this hash (checked to be its hash).
    Register([u8; 32]),
}

/// Why a persisted-query request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not `{ version: 1, sha256Hash: "<64 hex digits>" }`.
    Malformed,
    /// The hash is not the SHA-256 of the text sent with it.
    HashMismatch,
}

impl Refused {
    /// What the client is told, from the message catalog.
    pub fn message(self) -> crate::graphql::messages::Key {
        use crate::graphql::messages::Key;
        match self {
            Self::Malformed => Key::PersistedQueryMalformed,
            Self::HashMismatch => Key::PersistedQueryHashMismatch,
        }
    }
}

/// Reads `extensions.persistedQuery` of a request with text `query`.
pub fn requested(request: &async_graphql::Request, query: &str) -> Result<Persisted, Refused> {
    let Some(persisted) = request.extensions.get("persistedQuery") else {
        return Ok(Persisted::No);
    };
    let Value::Object(fields) = persisted else {
        return Err(Refused::Malformed);
    };
    let version_one =
        matches!(fields.get("version"), Some(Value::Number(n)) if n.as_i64() == Some(1));
    let hash = match fields.get("sha256Hash") {
        Some(Value::String(hex_hash)) => parse_hash(hex_hash),
        _ => None,
    };
    let (true, Some(hash)) = (version_one, hash) else {
        return Err(Refused::Malformed);
    };
    if query.is_empty() {
        Ok(Persisted::Find(hash))
    } else if text_hash(query) == hash {
        Ok(Persisted::Register(hash))
    } else {
        Err(Refused::HashMismatch)
    }
}

fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut hash).ok()?;
    Some(hash)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> async_graphql::Request {
        serde_json::from_value(body).unwrap()
    }

    const QUERY: &str = "{ me { id } }";

    fn hex_of(query: &str) -> String {
        hex::encode(text_hash(query))
    }

    #[test]
    fn a_hash_alone_asks_for_the_kept_text_and_with_its_text_registers_it() {
        let plain = request(json!({ "query": QUERY }));
        assert_eq!(requested(&plain, QUERY), Ok(Persisted::No));
        let pq = json!({ "persistedQuery": { "version": 1, "sha256Hash": hex_of(QUERY) } });
        let hash_only = request(json!({ "extensions": pq }));
        assert_eq!(
            requested(&hash_only, ""),
            Ok(Persisted::Find(text_hash(QUERY)))
        );
        let with_text = request(json!({ "query": QUERY, "extensions": pq }));
        assert_eq!(
            requested(&with_text, QUERY),
            Ok(Persisted::Register(text_hash(QUERY)))
        );
        // Upper-case hex names the same hash.
        let upper = json!({ "persistedQuery": { "version": 1, "sha256Hash": hex_of(QUERY).to_uppercase() } });
        let upper = request(json!({ "query": QUERY, "extensions": upper }));
        assert_eq!(
            requested(&upper, QUERY),
            Ok(Persisted::Register(text_hash(QUERY)))
        );
    }

    #[test]
    fn a_wrong_hash_or_shape_is_refused() {
        let pq = json!({ "persistedQuery": { "version": 1, "sha256Hash": hex_of("{ other }") } });
        let mismatch = request(json!({ "query": QUERY, "extensions": pq }));
        assert_eq!(requested(&mismatch, QUERY), Err(Refused::HashMismatch));
        for malformed in [
            json!("yes"),
            json!({ "version": 2, "sha256Hash": hex_of(QUERY) }),
            json!({ "sha256Hash": hex_of(QUERY) }),
            json!({ "version": 1 }),
            json!({ "version": 1, "sha256Hash": "abc" }),
            json!({ "version": 1, "sha256Hash": "z".repeat(64) }),
            json!({ "version": 1, "sha256Hash": 7 }),
        ] {
            let body =
                request(json!({ "query": QUERY, "extensions": { "persistedQuery": malformed } }));
            assert_eq!(requested(&body, QUERY), Err(Refused::Malformed), "{body:?}");
        }
    }
}
