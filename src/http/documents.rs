//! What the GraphQL endpoint learns from a query text before running it,
//! and a per-instance cache of it.
//!
//! A frontend sends the same few dozen query texts over and over, with its
//! values in variables. Parsing a text (async-graphql's grammar) was the
//! largest single cost of a signed-in read, so a parsed text is kept, with
//! the figures the endpoint's limits need (aliases, depth, whether it may
//! change a cached session).
//!
//! Rules:
//! - Only documents without a string literal anywhere are kept. What a
//!   person types (an address, a password, a ticket) then travels in
//!   variables, which are never kept; a document that inlines such text is
//!   parsed for its request and forgotten with it, so no personal data
//!   outlives its request here.
//! - Bounded in memory: at most [`MAX_ENTRIES`] documents, of at most
//!   [`MAX_TEXT_BYTES`] of text and [`MAX_DOCUMENT_BYTES`] parsed, and
//!   [`MAX_BYTES`] in all. A parsed document's size is estimated from its
//!   nodes (selections, arguments, values, directives, variables): a
//!   parsed field takes about 240 bytes, so 8 KiB of `{ a a a … }` is close
//!   to 1 MB parsed, and a count of texts alone would not bound the memory.
//!   When full, the least recently used quarter is dropped (again until
//!   the new one fits), so a stream of one-off texts costs an occasional
//!   sort, and the texts in use come back after one parse.
//! - A text that does not parse is not kept; the executor reports it.
//! - Each kept text is also found by its SHA-256: those are the automatic
//!   persisted queries ([`super::persisted`]), so they obey every rule
//!   above and go when their text goes.
//! - A text whose brackets, braces or parentheses nest deeper than
//!   [`MAX_NESTING`] is never parsed (see [`nests_too_deep`]): the parser
//!   recurses once a level, and about 2,000 levels (4 KB of `[[[…`)
//!   overflowed a worker's stack and aborted the process.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{
    Name, Positioned,
    parser::types::{Directive, ExecutableDocument, OperationType, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Value};
use sha2::{Digest, Sha256};

/// Most documents kept.
pub const MAX_ENTRIES: usize = 512;
/// Longest query text kept (GraphiQL's introspection query is about 2 KiB).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// Largest estimated size of one kept document, text and parse (about
/// 1,000 nodes; GraphiQL's introspection query has about 150).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Largest estimated size of all kept documents together.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Estimated bytes of one parsed node (measured: about 240 for a field).
const NODE_BYTES: usize = 256;
/// Estimated bytes of a text's entry by hash (the hash, a pointer, the
/// map's own overhead).
const HASH_ENTRY_BYTES: usize = 64;

/// The SHA-256 of a query text, as automatic persisted queries name it.
pub fn text_hash(query: &str) -> [u8; 32] {
    Sha256::digest(query.as_bytes()).into()
}

/// Deepest nesting of `[`, `{` and `(` (counted together) a query text may
/// have. The deepest useful documents stay far below it: application
/// fields nest at most [`crate::graphql::MAX_DEPTH`] deep, introspection
/// [`crate::graphql::MAX_INTROSPECTION_DEPTH`], and input values a few
/// levels more; the parser's stack use at this depth is small even in a
/// debug build.
pub const MAX_NESTING: usize = 64;

/// Whether `query` nests brackets, braces and parentheses (counted
/// together) deeper than [`MAX_NESTING`], by one pass over its bytes.
/// String literals, block strings and comments are skipped as the GraphQL
/// grammar reads them, so a bracket written in text does not count, and
/// none the parser would read as code is missed: where this scan and the
/// grammar could disagree (a raw line break ends a string here, which the
/// parser refuses) the scan counts more, never less. Closing more than was
/// opened does not lower the count below zero.
pub fn nests_too_deep(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return true;
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            b'#' => at = line_end(bytes, at),
            b'"' => {
                // A block string needs its closing quotes; without them the
                // grammar reads `""` as an empty string and goes on.
                at = match bytes[at..].starts_with(b"\"\"") {
                    true => {
                        block_string_end(bytes, at + 2).unwrap_or_else(|| string_end(bytes, at))
                    }
                    false => string_end(bytes, at),
                }
            }
            _ => {}
        }
    }
    false
}

/// Where a comment that runs to the end of its line stops.
fn line_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| *b != b'\n' && *b != b'\r') {
        at += 1;
    }
    at
}

/// Just past the closing `"` of a string whose body starts at `at`, or at
/// the line break or end that cuts it short. `\` escapes the next byte.
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    // An escape as the last byte steps past the end.
    at.min(bytes.len())
}

/// Just past the closing `"""` of a block string whose body starts at
/// `at` (`\"""` inside it is an escaped quote); `None` if it never closes.
fn block_string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    while at < bytes.len() {
        if bytes[at..].starts_with(b"\\\"\"\"") {
            at += 4;
        } else if bytes[at..].starts_with(b"\"\"\"") {
            return Some(at + 3);
        } else {
            at += 1;
        }
    }
    None
}

/// A parsed query text and what the endpoint checks before running it.
#[derive(Debug)]
pub struct Document {
    /// The parsed text, handed to the executor so it does not parse again.
    pub parsed: ExecutableDocument,
    /// Aliased fields in every operation and fragment.
    pub aliases: usize,
    /// Deepest nesting of application fields.
    pub depth: usize,
    /// Most fields named in [`PASSWORD_CHECKS`] that one of its mutations
    /// runs (aliases and fragments included).
    pub password_checks: usize,
}

impl Document {
    /// Parses `query`; `None` if it does not parse.
    pub fn parse(query: &str) -> Option<Self> {
        let parsed = async_graphql::parser::parse_query(query).ok()?;
        Some(Self {
            aliases: count_aliases(&parsed),
            depth: application_depth(&parsed),
            password_checks: password_checks(&parsed),
            parsed,
        })
    }
}

/// Parsed documents by query text (see the module's rules).
#[derive(Debug, Default)]
pub struct DocumentCache {
    entries: RwLock<Entries>,
    /// Moves on every use; a slot remembers the tick of its last one.
    ticks: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_text: HashMap<Arc<str>, Slot>,
    /// The same texts by their SHA-256.
    by_hash: HashMap<[u8; 32], Arc<str>>,
    /// Estimated size of everything in `by_text` and `by_hash`.
    bytes: usize,
}

#[derive(Debug)]
struct Slot {
    document: Arc<Document>,
    last_used: AtomicU64,
    hash: [u8; 32],
    bytes: usize,
}

impl DocumentCache {
    /// The document for `query`: kept, or parsed now (and kept when the
    /// rules allow). `None` if the text does not parse.
    pub fn get(&self, query: &str) -> Option<Arc<Document>> {
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.read().by_text.get(query) {
            slot.last_used.store(tick, Ordering::Relaxed);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(slot.document.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let document = Arc::new(Document::parse(query)?);
        let survey = Survey::of(&document.parsed);
        let bytes = query.len() + NODE_BYTES * survey.nodes + HASH_ENTRY_BYTES;
        if query.len() <= MAX_TEXT_BYTES && bytes <= MAX_DOCUMENT_BYTES && !survey.string_literal {
            let hash = text_hash(query);
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            while !entries.by_text.is_empty()
                && (entries.by_text.len() >= MAX_ENTRIES || entries.bytes + bytes > MAX_BYTES)
            {
                entries.drop_least_used_quarter();
            }
            let slot = Slot {
                document: document.clone(),
                last_used: AtomicU64::new(tick),
                hash,
                bytes,
            };
            let text: Arc<str> = query.into();
            if let Some(replaced) = entries.by_text.insert(text.clone(), slot) {
                // Parsed by two requests at once; the first copy goes.
                entries.bytes -= replaced.bytes;
            }
            entries.by_hash.insert(hash, text);
            entries.bytes += bytes;
        }
        Some(document)
    }

    /// The kept text whose SHA-256 is `hash`, if any (and it counts as a use).
    pub fn text_of(&self, hash: &[u8; 32]) -> Option<Arc<str>> {
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        let entries = self.read();
        let text = entries.by_hash.get(hash)?;
        if let Some(slot) = entries.by_text.get(text) {
            slot.last_used.store(tick, Ordering::Relaxed);
        }
        Some(text.clone())
    }

    /// Documents kept now.
    pub fn len(&self) -> usize {
        self.read().by_text.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated size of the kept documents.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Texts found kept, and texts parsed, since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl Entries {
    /// Drops the least recently used quarter (at least one).
    fn drop_least_used_quarter(&mut self) {
        let mut ticks: Vec<u64> = self
            .by_text
            .values()
            .map(|slot| slot.last_used.load(Ordering::Relaxed))
            .collect();
        if ticks.is_empty() {
            return;
        }
        let cut = (ticks.len() / 4).max(1);
        let threshold = *ticks.select_nth_unstable(cut - 1).1;
        self.by_text
            .retain(|_, slot| slot.last_used.load(Ordering::Relaxed) > threshold);
        let kept: std::collections::HashSet<[u8; 32]> =
            self.by_text.values().map(|slot| slot.hash).collect();
        self.by_hash.retain(|hash, _| kept.contains(hash));
        self.bytes = self.by_text.values().map(|slot| slot.bytes).sum();
    }
}

/// What the cache needs to know of a parsed document before keeping it,
/// from one walk over it.
#[derive(Debug, Default)]
struct Survey {
    /// Nodes: operations, fragments, variable definitions, selections,
    /// directives, arguments and their values (each list and object item).
    nodes: usize,
    /// Whether a string literal appears anywhere: an argument of a field
    /// or directive (inside lists and objects too) or a variable's default.
    string_literal: bool,
}

impl Survey {
    fn of(document: &ExecutableDocument) -> Self {
        let mut survey = Self::default();
        for (_, operation) in document.operations.iter() {
            let operation = &operation.node;
            survey.nodes += 1;
            for variable in &operation.variable_definitions {
                survey.nodes += 1;
                survey.directives(&variable.node.directives);
                if let Some(default) = &variable.node.default_value {
                    survey.constant(&default.node);
                }
            }
            survey.directives(&operation.directives);
            survey.selections(&operation.selection_set.node);
        }
        for fragment in document.fragments.values() {
            survey.nodes += 1;
            survey.directives(&fragment.node.directives);
            survey.selections(&fragment.node.selection_set.node);
        }
        survey
    }

    fn selections(&mut self, set: &SelectionSet) {
        for item in &set.items {
            self.nodes += 1;
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.arguments(&field.arguments);
                    self.directives(&field.directives);
                    self.selections(&field.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    self.directives(&fragment.node.directives);
                    self.selections(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => self.directives(&spread.node.directives),
            }
        }
    }

    fn directives(&mut self, directives: &[Positioned<Directive>]) {
        for directive in directives {
            self.nodes += 1;
            self.arguments(&directive.node.arguments);
        }
    }

    fn arguments(&mut self, arguments: &[(Positioned<Name>, Positioned<Value>)]) {
        for (_, value) in arguments {
            self.nodes += 1;
            self.value(&value.node);
        }
    }

    fn value(&mut self, value: &Value) {
        self.nodes += 1;
        match value {
            Value::String(_) | Value::Binary(_) => self.string_literal = true,
            Value::List(items) => items.iter().for_each(|item| self.value(item)),
            Value::Object(fields) => fields.values().for_each(|field| self.value(field)),
            Value::Variable(_)
            | Value::Null
            | Value::Number(_)
            | Value::Boolean(_)
            | Value::Enum(_) => {}
        }
    }

    fn constant(&mut self, value: &ConstValue) {
        self.nodes += 1;
        match value {
            ConstValue::String(_) | ConstValue::Binary(_) => self.string_literal = true,
            ConstValue::List(items) => items.iter().for_each(|item| self.constant(item)),
            ConstValue::Object(fields) => fields.values().for_each(|field| self.constant(field)),
            ConstValue::Null
            | ConstValue::Number(_)
            | ConstValue::Boolean(_)
            | ConstValue::Enum(_) => {}
        }
    }
}

/// The deepest nesting of application fields in a document. Introspection
/// (`__schema`, `__type`) is left out: GraphiQL's own introspection query
/// nests type references deeper than any application query should, and the
/// executor bounds it with [`crate::graphql::MAX_INTROSPECTION_DEPTH`].
fn application_depth(document: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet, document: &ExecutableDocument, spreads: &mut Vec<String>) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        0
                    } else {
                        1 + walk(&field.node.selection_set.node, document, spreads)
                    }
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set.node, document, spreads)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    // A fragment that spreads itself is invalid; the executor
                    // says so. Here it only must not loop.
                    if spreads.contains(&name) {
                        return 0;
                    }
                    let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        return 0;
                    };
                    spreads.push(name);
                    let depth = walk(&fragment.node.selection_set.node, document, spreads);
                    spreads.pop();
                    depth
                }
            })
            .max()
            .unwrap_or(0)
    }
    document
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node, document, &mut Vec::new()))
        .max()
        .unwrap_or(0)
}

/// Mutation fields that check the signed-in person's password. A request
/// may hold one of them at most (the HTTP layer refuses more before
/// anything runs): each is a guess at the password and costs a hash, and
/// aliases would otherwise make one request many guesses. Their per-IP
/// and per-account limits count each guess besides.
pub const PASSWORD_CHECKS: &[&str] = &["changePassword", "changeEmail"];

/// The most fields named in [`PASSWORD_CHECKS`] that one mutation of
/// `document` runs at its root, through inline fragments and fragment
/// spreads too (a spread seen twice on one path counts once there: the
/// executor refuses such cycles anyway).
fn password_checks(document: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet, document: &ExecutableDocument, spreads: &mut Vec<Name>) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(PASSWORD_CHECKS.contains(&field.node.name.node.as_str()))
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set.node, document, spreads)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(fragment) = document.fragments.get(name) else {
                        return 0;
                    };
                    if spreads.contains(name) {
                        return 0;
                    }
                    spreads.push(name.clone());
                    let count = walk(&fragment.node.selection_set.node, document, spreads);
                    spreads.pop();
                    count
                }
            })
            .sum()
    }
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Mutation)
        .map(|(_, operation)| {
            walk(
                &operation.node.selection_set.node,
                document,
                &mut Vec::new(),
            )
        })
        .max()
        .unwrap_or(0)
}

/// Aliased fields in every operation and fragment of a document.
fn count_aliases(document: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + walk(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    document
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .chain(
            document
                .fragments
                .values()
                .map(|fragment| walk(&fragment.node.selection_set.node)),
        )
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn nesting_past_the_bound_is_found_in_every_kind_of_bracket() {
        let nested = |open: &str, close: &str, levels: usize| {
            format!("{}x{}", open.repeat(levels), close.repeat(levels))
        };
        for (open, close) in [
            ("[", "]"),
            ("{a:", "}"),
            ("(", ")"),
            ("{a", "}"),
            ("[{(", ")}]"),
        ] {
            let per_level = open.matches(['[', '{', '(']).count();
            let at_bound = MAX_NESTING / per_level;
            assert!(!nests_too_deep(&nested(open, close, at_bound)), "{open}");
            assert!(nests_too_deep(&nested(open, close, at_bound + 1)), "{open}");
        }
        // Siblings do not add up; closing more than was opened does not
        // make room for more.
        assert!(!nests_too_deep(&"[[]]".repeat(10_000)));
        let unbalanced = format!("{}{}", "]})".repeat(100), "[".repeat(MAX_NESTING + 1));
        assert!(nests_too_deep(&unbalanced));
    }

    #[test]
    fn brackets_in_text_and_comments_do_not_count_and_nothing_hides_code() {
        let deep = "[".repeat(MAX_NESTING + 1);
        // Text the grammar reads as a string, a block string or a comment.
        for hidden in [
            format!(r#"{{ a(x: "{deep}") }}"#),
            format!(r#"{{ a(x: "\"{deep}") }}"#),
            format!(r#"{{ a(x: "\\\"{deep}") }}"#),
            format!("{{ a(x: \"\"\"\n{deep}\n\"\"\") }}"),
            format!(r#"{{ a(x: """ \""" {deep} """) }}"#),
            format!("{{ a # {deep}\n }}"),
            format!("{{ a # {deep}\r b }}"),
        ] {
            assert!(!nests_too_deep(&hidden), "{hidden}");
        }
        // Text the grammar reads as code, though it looks like text.
        for code in [
            // A line break ends a string (the parser refuses it).
            format!("{{ a(x: \"ab\n{deep}"),
            // `\\` is an escaped backslash, so the quote after it closes.
            format!(r#"{{ a(x: "\\" {deep}"#),
            // A block string never closed is read as `""` and a string.
            format!(r#"{{ a(x: ["""x" {deep}"#),
            // A comment ends at a carriage return too.
            format!("# note\r{deep}"),
            // An escape as the very last byte.
            format!("{deep}\"\\"),
        ] {
            assert!(nests_too_deep(&code), "{code}");
        }
        for short in ["\"\\", "\"\"\"", "\"\"\"\\", "\"", "#"] {
            assert!(!nests_too_deep(short), "{short}");
        }
    }

    fn checks(query: &str) -> usize {
        Document::parse(query).unwrap().password_checks
    }

    #[test]
    fn password_checks_are_counted_through_aliases_and_fragments() {
        let one = "mutation($p: String!, $n: String!) { changePassword(currentPassword: $p, newPassword: $n) }";
        assert_eq!(checks(one), 1);
        assert_eq!(
            checks(
                "mutation($p: String!) { a: changeEmail(newEmail: $p, password: $p) b: changeEmail(newEmail: $p, password: $p) }"
            ),
            2
        );
        assert_eq!(
            checks(
                "mutation($p: String!) { changeEmail(newEmail: $p, password: $p) changePassword(currentPassword: $p, newPassword: $p) }"
            ),
            2
        );
        // Fragments: spread twice, and inline.
        assert_eq!(
            checks(
                "mutation($p: String!) { ...F ...F } fragment F on MutationRoot { changeEmail(newEmail: $p, password: $p) }"
            ),
            2
        );
        assert_eq!(
            checks(
                "mutation($p: String!) { ... on MutationRoot { a: changePassword(currentPassword: $p, newPassword: $p) } b: changePassword(currentPassword: $p, newPassword: $p) }"
            ),
            2
        );
        // A fragment that spreads itself cannot loop the count.
        assert_eq!(
            checks(
                "mutation($p: String!) { ...F } fragment F on MutationRoot { ...F changeEmail(newEmail: $p, password: $p) }"
            ),
            1
        );
        // Only one operation of a document runs: the largest counts.
        assert_eq!(
            checks(
                "mutation A($p: String!) { changeEmail(newEmail: $p, password: $p) } mutation B($p: String!) { changeEmail(newEmail: $p, password: $p) }"
            ),
            1
        );
        // Fields of the same names elsewhere are not password checks.
        assert_eq!(checks("{ me { id } }"), 0);
        assert_eq!(
            checks("query { ...F } fragment F on QueryRoot { me { id } }"),
            0
        );
        assert_eq!(checks("mutation { logout }"), 0);
    }

    #[test]
    fn the_figures_the_limits_need_are_worked_out_with_the_parse() {
        let document =
            Document::parse("query { a: me { b: id } ...F } fragment F on Query { c: __typename }")
                .unwrap();
        assert_eq!(document.aliases, 3);
        assert_eq!(document.depth, 2);
        let introspection =
            Document::parse("{ __schema { types { fields { type { ofType { name } } } } } }")
                .unwrap();
        assert_eq!(introspection.depth, 0);
        assert!(Document::parse("{ me { ").is_none());
    }

    #[test]
    fn a_text_is_parsed_once_and_then_found() {
        let cache = DocumentCache::default();
        let query = "query Me($x: Boolean = true) { me @include(if: $x) { id username } }";
        let first = cache.get(query).unwrap();
        let second = cache.get(query).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.hits_and_misses(), (1, 1));
        assert_eq!(cache.len(), 1);
        // Variables, enums, numbers, booleans and null are not literal text.
        for kept in [
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            "{ auditLog(first: 10, after: null) { edges { node { id } } } }",
            "{ consents(purposes: [MARKETING, ANALYTICS]) { purpose } }",
        ] {
            cache.get(kept).unwrap();
        }
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn a_text_with_a_string_literal_is_never_kept() {
        let cache = DocumentCache::default();
        for literal in [
            r#"mutation { login(input: { login: "ann", password: "secret" }) { token } }"#,
            r#"{ lookup(names: ["ann"]) { id } }"#,
            r#"{ lookup(filter: { inner: { name: "ann" } }) { id } }"#,
            r#"{ me { id @tag(note: "ann") } }"#,
            r#"{ me { ... on Account @tag(note: "ann") { id } } }"#,
            r#"{ me { ...F @tag(note: "ann") } } fragment F on Account { id }"#,
            r#"{ me { ...F } } fragment F on Account { tickets(subject: "ann") { id } }"#,
            r#"query($x: String = "ann") { me { id } }"#,
            r#"query($x: Filter = { names: ["ann"] }) { me { id } }"#,
            r#"query($x: Int @tag(note: "ann")) { me { id } }"#,
            r#"query @tag(note: "ann") { me { id } }"#,
            r#"query { me { id } } fragment F on Account @tag(note: "ann") { id }"#,
        ] {
            // Parsed for its request all the same, every time.
            assert!(cache.get(literal).is_some(), "{literal}");
            assert!(cache.get(literal).is_some(), "{literal}");
            assert!(cache.is_empty(), "kept: {literal}");
        }
        assert_eq!(cache.hits_and_misses(), (0, 24));
    }

    #[test]
    fn long_and_broken_texts_are_not_kept() {
        let cache = DocumentCache::default();
        let long = format!("{{ me {{ id }} }}{}", " ".repeat(MAX_TEXT_BYTES));
        assert!(cache.get(&long).is_some());
        assert!(cache.get("{ me { ").is_none());
        assert!(cache.is_empty());
        assert_eq!(cache.hits_and_misses(), (0, 2));
    }

    #[test]
    fn nodes_are_counted_wherever_they_are() {
        let count =
            |query: &str| Survey::of(&async_graphql::parser::parse_query(query).unwrap()).nodes;
        // Operation, field.
        assert_eq!(count("{ a }"), 2);
        // Operation, variable with a default list of two, field with an
        // argument holding an object of one, a directive with an argument,
        // a child field; a fragment with one field, spread once.
        assert_eq!(
            count(
                "query($v: [Int] = [1, 2]) { a(x: { y: 1 }) @skip(if: $v) { b ...F } } fragment F on T { c }"
            ),
            1 + (1 + 3) + (1 + (1 + 2) + (1 + 2) + 1 + 1) + (1 + 1)
        );
    }

    #[test]
    fn a_document_too_big_once_parsed_is_not_kept() {
        let cache = DocumentCache::default();
        // Short text, over a thousand fields: about 280 KB parsed.
        let wide = format!("{{ {} }}", "a ".repeat(1_100));
        assert!(wide.len() < MAX_TEXT_BYTES);
        assert!(cache.get(&wide).is_some());
        assert!(cache.is_empty());
        let narrower = format!("{{ {} }}", "a ".repeat(900));
        cache.get(&narrower).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.bytes(),
            narrower.len() + NODE_BYTES * 901 + HASH_ENTRY_BYTES
        );
    }

    #[test]
    fn the_kept_documents_stay_within_their_memory_budget() {
        let cache = DocumentCache::default();
        // Each about 200 KiB parsed: twenty fit in the budget, not more.
        let text = |i: usize| format!("query Q{i} {{ {} }}", "a ".repeat(800));
        for i in 0..40 {
            cache.get(&text(i)).unwrap();
            assert!(cache.bytes() <= MAX_BYTES, "{} after {i}", cache.bytes());
        }
        assert!(cache.len() < 21, "{}", cache.len());
        // The last one is kept; the first went.
        let (hits, misses) = cache.hits_and_misses();
        cache.get(&text(39)).unwrap();
        cache.get(&text(0)).unwrap();
        assert_eq!(cache.hits_and_misses(), (hits + 1, misses + 1));
    }

    #[test]
    fn a_full_cache_drops_its_least_used_quarter() {
        let cache = DocumentCache::default();
        let text = |i: usize| format!("query Q{i} {{ me {{ id }} }}");
        for i in 0..MAX_ENTRIES {
            cache.get(&text(i)).unwrap();
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // The first text is in use again; the second is now the least used.
        cache.get(&text(0)).unwrap();
        cache.get(&text(MAX_ENTRIES)).unwrap();
        assert_eq!(cache.len(), MAX_ENTRIES - MAX_ENTRIES / 4 + 1);
        let (hits, misses) = cache.hits_and_misses();
        cache.get(&text(0)).unwrap();
        cache.get(&text(MAX_ENTRIES)).unwrap();
        assert_eq!(cache.hits_and_misses(), (hits + 2, misses));
        cache.get(&text(1)).unwrap();
        cache.get(&text(MAX_ENTRIES / 4 + 1)).unwrap();
        assert_eq!(cache.hits_and_misses(), (hits + 3, misses + 1));
    }

    #[test]
    fn a_kept_text_is_found_by_its_hash_until_it_goes() {
        let cache = DocumentCache::default();
        let query = "query Me { me { id } }";
        assert_eq!(cache.text_of(&text_hash(query)), None);
        cache.get(query).unwrap();
        assert_eq!(cache.text_of(&text_hash(query)).as_deref(), Some(query));
        // A text with a literal is run, never kept, so never found by hash.
        let literal = r#"{ usernameCheck(username: "ann") { allowed } }"#;
        cache.get(literal).unwrap();
        assert_eq!(cache.text_of(&text_hash(literal)), None);
        // When the text goes, its hash goes with it.
        let text = |i: usize| format!("query Q{i} {{ me {{ id }} }}");
        for i in 0..MAX_ENTRIES {
            cache.get(&text(i)).unwrap();
        }
        assert_eq!(cache.text_of(&text_hash(query)), None);
        let entries = cache.read();
        assert_eq!(entries.by_hash.len(), entries.by_text.len());
    }

    #[test]
    fn a_hash_in_use_keeps_its_text() {
        let cache = DocumentCache::default();
        let text = |i: usize| format!("query Q{i} {{ me {{ id }} }}");
        for i in 0..MAX_ENTRIES {
            cache.get(&text(i)).unwrap();
            // The first text is used by hash alone, as a persisted query.
            assert!(cache.text_of(&text_hash(&text(0))).is_some(), "{i}");
        }
        cache.get(&text(MAX_ENTRIES)).unwrap();
        assert!(cache.text_of(&text_hash(&text(0))).is_some());
        assert!(cache.text_of(&text_hash(&text(1))).is_none());
    }
}
