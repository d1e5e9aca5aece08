//! The layers of `src/LAYERS.md`, checked against the code.
//!
//! Every `.rs` file under `src/` is read with its comments and string
//! literals blanked out; every path into the crate (`crate::…` in `use`
//! trees and inline, `super::…`, `self::…`, a child module's name, and
//! `custos::…` in the binary) is resolved to the file that defines it,
//! following `pub use` re-exports. The check fails on an import that runs
//! up a layer and on a circle between files, unless a row of the
//! exceptions table allows the import; an exception no import needs fails
//! too, so the table shrinks as the code mends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// A module: its path from the crate root (`[]` is `lib.rs`; the binary's
/// `main.rs` is `["main"]`).
type Module = Vec<String>;

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    }
}

// ---------------------------------------------------------------------------
// Comments and literals

/// The source with comments (line, block, doc) and string, byte-string,
/// raw-string and char literals replaced by spaces, newlines kept so line
/// numbers stay true.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        match skipped_until(&chars, i) {
            Some(end) => {
                let end = end.clamp(i + 1, chars.len());
                for &c in &chars[i..end] {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                }
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where the comment or literal that starts at `i` ends (exclusive), or
/// `None` when none starts there.
fn skipped_until(chars: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| chars.get(k).copied();
    let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (chars[i], at(i + 1)) {
        ('/', Some('/')) => Some(
            (i..chars.len())
                .find(|&k| chars[k] == '\n')
                .unwrap_or(chars.len()),
        ),
        ('/', Some('*')) => Some(block_comment_end(chars, i)),
        ('r', _) if !prev_ident => raw_string_end(chars, i + 1),
        ('b', Some('r')) if !prev_ident => raw_string_end(chars, i + 2),
        ('"', _) => Some(quoted_end(chars, i + 1, '"')),
        ('b', Some('"')) if !prev_ident => Some(quoted_end(chars, i + 2, '"')),
        // A char literal ('x', '\n', '\u{1F600}'), else a lifetime; past
        // a backslash, the character it escapes.
        ('\'', Some('\\')) => Some(quoted_end(chars, i + 3, '\'')),
        ('\'', _) if at(i + 2) == Some('\'') => Some(i + 3),
        _ => None,
    }
}

/// The end of a (nested) block comment starting at `i`.
fn block_comment_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

/// The end of a raw string whose hashes start at `j`, if one starts there.
fn raw_string_end(chars: &[char], mut j: usize) -> Option<usize> {
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

/// The end of a literal closed by `quote`, its body starting at `j`
/// (backslashes escape the next character).
fn quoted_end(chars: &[char], mut j: usize, quote: char) -> usize {
    while j < chars.len() && chars[j] != quote {
        j += if chars[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

// ---------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(clean: &str) -> Vec<Token> {
    let chars: Vec<char> = clean.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word.strip_prefix("r#").map(str::to_owned).unwrap_or(word);
            tokens.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(word)) => Some(word),
        _ => None,
    }
}

fn is(tokens: &[Token], i: usize, tok: &Tok) -> bool {
    tokens.get(i).map(|t| &t.tok) == Some(tok)
}

// ---------------------------------------------------------------------------
// Paths

/// One leaf of a `use` tree: the path as written and the name it binds.
#[derive(Debug, Clone, PartialEq)]
struct UseLeaf {
    path: Vec<String>,
    binds: Option<String>,
    line: usize,
}

/// Parses the use tree starting at `i` under `prefix`; returns the index
/// after it.
fn use_tree(tokens: &[Token], mut i: usize, prefix: &[String], leaves: &mut Vec<UseLeaf>) -> usize {
    let mut path = prefix.to_vec();
    let line = tokens.get(i).map_or(0, |t| t.line);
    if is(tokens, i, &Tok::PathSep) {
        i += 1;
    }
    loop {
        match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::Punct('{')) => {
                i += 1;
                while !is(tokens, i, &Tok::Punct('}')) && i < tokens.len() {
                    if is(tokens, i, &Tok::Punct(',')) {
                        i += 1;
                        continue;
                    }
                    i = use_tree(tokens, i, &path, leaves);
                }
                return i + 1;
            }
            Some(Tok::Punct('*')) => {
                leaves.push(UseLeaf {
                    path,
                    binds: None,
                    line,
                });
                return i + 1;
            }
            Some(Tok::Ident(word)) => {
                let word = word.clone();
                i += 1;
                if is(tokens, i, &Tok::PathSep) {
                    path.push(word);
                    i += 1;
                    continue;
                }
                let mut binds = if word == "self" {
                    path.last().cloned()
                } else {
                    path.push(word.clone());
                    Some(word)
                };
                if ident(tokens, i) == Some("as") {
                    binds = ident(tokens, i + 1).map(str::to_owned);
                    i += 2;
                }
                leaves.push(UseLeaf { path, binds, line });
                return i;
            }
            _ => return i,
        }
    }
}

/// A path into the crate found in one file.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    line: usize,
    /// Absolute, from the crate root.
    path: Vec<String>,
}

/// What one file says: the crate paths it names and the names its
/// top-level `pub use` items re-export.
#[derive(Debug, Default)]
struct FileRefs {
    references: Vec<Reference>,
    reexports: BTreeMap<String, Vec<String>>,
}

/// Resolves a path written in `scope` to one from the crate root; `None`
/// for paths outside the crate (std, dependencies, locals).
fn absolute(
    written: &[String],
    scope: &[String],
    binary: bool,
    child: &dyn Fn(&[String], &str) -> bool,
) -> Option<Vec<String>> {
    let first = written.first()?;
    match first.as_str() {
        "crate" => Some(written[1..].to_vec()),
        "custos" if binary => Some(written[1..].to_vec()),
        "self" => Some(scope.iter().chain(&written[1..]).cloned().collect()),
        "super" => {
            let ups = written.iter().take_while(|s| *s == "super").count();
            let base = scope.get(..scope.len().checked_sub(ups)?)?;
            Some(base.iter().chain(&written[ups..]).cloned().collect())
        }
        name if !binary && child(scope, name) => {
            Some(scope.iter().chain(written).cloned().collect())
        }
        _ => None,
    }
}

/// Every crate path `source` names, read as the file of `module`.
/// `child(m, name)` says whether module `m` has a child module file `name`.
fn file_references(
    source: &str,
    module: &[String],
    child: &dyn Fn(&[String], &str) -> bool,
) -> FileRefs {
    let binary = module == ["main"];
    let file_scope: Vec<String> = if binary { Vec::new() } else { module.to_vec() };
    let tokens = tokenize(&strip(source));
    let mut refs = FileRefs::default();
    // Inline modules open at brace depth: (depth, name).
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let scope: Vec<String> = file_scope
            .iter()
            .cloned()
            .chain(inline.iter().map(|(_, n)| n.clone()))
            .collect();
        match &tokens[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some(name), true) =
                    (ident(&tokens, i + 1), is(&tokens, i + 2, &Tok::Punct('{')))
                {
                    inline.push((depth + 1, name.to_owned()));
                }
                i += 1;
            }
            Tok::Ident(word) if word == "use" => {
                let reexport = inline.is_empty() && is_public(&tokens, i);
                let mut leaves = Vec::new();
                i = use_tree(&tokens, i + 1, &[], &mut leaves);
                for leaf in leaves {
                    if let Some(path) = absolute(&leaf.path, &scope, binary, child) {
                        add_use(&mut refs, leaf, path, &scope, reexport);
                    }
                }
            }
            Tok::Ident(_) => match written_path(&tokens, i) {
                Some((written, next)) => {
                    if let Some(path) = absolute(&written, &scope, binary, child) {
                        let line = tokens[i].line;
                        refs.references.push(Reference { line, path });
                    }
                    i = next;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    refs
}

/// Whether the `use` at `i` is `pub` or `pub(…)`.
fn is_public(tokens: &[Token], i: usize) -> bool {
    i >= 1
        && (ident(tokens, i - 1) == Some("pub")
            || (is(tokens, i - 1, &Tok::Punct(')'))
                && (1..=6).any(|k| i > k && ident(tokens, i - 1 - k) == Some("pub"))))
}

/// Records one leaf of a `use` item, resolved to `path`.
fn add_use(
    refs: &mut FileRefs,
    leaf: UseLeaf,
    path: Vec<String>,
    scope: &[String],
    reexport: bool,
) {
    if reexport {
        if let Some(name) = &leaf.binds {
            refs.reexports.insert(name.clone(), path.clone());
        }
        // A module presenting an item of its own children imports
        // nothing: the files that name the item through it are traced to
        // its file (see `target`).
        if path.len() > scope.len() && path.starts_with(scope) {
            return;
        }
    }
    refs.references.push(Reference {
        line: leaf.line,
        path,
    });
}

/// The path written from token `i` on (`a::b::c`) when one starts there,
/// with the index after it.
fn written_path(tokens: &[Token], i: usize) -> Option<(Vec<String>, usize)> {
    let word = ident(tokens, i)?;
    let starts_path = is(tokens, i + 1, &Tok::PathSep)
        && !(i >= 1 && is(tokens, i - 1, &Tok::PathSep))
        && !(i >= 1 && ident(tokens, i - 1) == Some("in"));
    if !starts_path || word == "Self" {
        return None;
    }
    let mut written = vec![word.to_owned()];
    let mut j = i + 1;
    while is(tokens, j, &Tok::PathSep) {
        match ident(tokens, j + 1) {
            Some(next) => {
                written.push(next.to_owned());
                j += 2;
            }
            None => break,
        }
    }
    Some((written, j))
}

// ---------------------------------------------------------------------------
// The crate's files

/// One source file: where it is, the module it defines, what it says.
struct SourceFile {
    path: String,
    module: Module,
    text: String,
}

fn module_of(relative: &str) -> Module {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_owned).collect();
    match parts.last().map(String::as_str) {
        Some("lib") if parts.len() == 1 => Vec::new(),
        Some("mod") => {
            parts.pop();
            parts
        }
        _ => parts,
    }
}

fn read_tree(dir: &Path, root: &Path, files: &mut Vec<SourceFile>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot read an entry of {}: {e}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(&path, root, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .unwrap_or_else(|_| panic!("{} outside {}", path.display(), root.display()))
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            files.push(SourceFile {
                path: format!("src/{relative}"),
                module: module_of(&relative),
                text,
            });
        }
    }
}

// ---------------------------------------------------------------------------
// LAYERS.md

/// A module pattern: segments, `*` for any one segment; `lib` is the crate
/// root. It covers the module it names and everything under it.
#[derive(Debug, Clone)]
struct Pattern(Vec<String>);

impl Pattern {
    fn parse(text: &str) -> Self {
        let text = text.trim().trim_end_matches(".rs");
        if text == "lib" {
            Pattern(Vec::new())
        } else {
            Pattern(text.split("::").map(str::to_owned).collect())
        }
    }

    /// How closely this pattern names `module`: `None` when it does not
    /// cover it, else (segments, literal segments), more is closer.
    fn closeness(&self, module: &[String]) -> Option<(usize, usize)> {
        if self.0.is_empty() {
            return module.is_empty().then_some((0, 0));
        }
        if self.0.len() > module.len() {
            return None;
        }
        let mut literal = 0;
        for (p, m) in self.0.iter().zip(module) {
            if p == "*" {
                continue;
            }
            if p != m {
                return None;
            }
            literal += 1;
        }
        Some((self.0.len(), literal))
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display(&self.0))
    }
}

#[derive(Debug)]
struct Layer {
    name: String,
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Exception {
    from: Pattern,
    to: Pattern,
    reason: String,
}

#[derive(Debug)]
struct Layering {
    layers: Vec<Layer>,
    exceptions: Vec<Exception>,
}

/// The backticked words of a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Reads the two tables of LAYERS.md: under `## Layers` (top first; the
/// second column lists modules), under `## Exceptions` (from, to, why).
fn parse_layering(markdown: &str) -> Result<Layering, String> {
    let mut section = "";
    let mut layers = Vec::new();
    let mut exceptions = Vec::new();
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = if heading.trim().eq_ignore_ascii_case("layers") {
                "layers"
            } else if heading.trim().eq_ignore_ascii_case("exceptions") {
                "exceptions"
            } else {
                ""
            };
            continue;
        }
        let line = line.trim();
        if !line.starts_with('|') || line.starts_with("|-") || line.starts_with("| -") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        match section {
            "layers" => {
                let patterns: Vec<Pattern> = cells
                    .get(1)
                    .map(|c| ticked(c).iter().map(|t| Pattern::parse(t)).collect())
                    .unwrap_or_default();
                if patterns.is_empty() {
                    continue; // the header row
                }
                layers.push(Layer {
                    name: cells[0].trim_matches('*').to_owned(),
                    patterns,
                });
            }
            "exceptions" => {
                let from = cells.first().map(|c| ticked(c)).unwrap_or_default();
                let to = cells.get(1).map(|c| ticked(c)).unwrap_or_default();
                if from.len() != 1 || to.len() != 1 {
                    continue; // the header row
                }
                let reason = cells.get(2).copied().unwrap_or_default().to_owned();
                if reason.is_empty() {
                    return Err(format!("exception {} → {} gives no reason", from[0], to[0]));
                }
                exceptions.push(Exception {
                    from: Pattern::parse(&from[0]),
                    to: Pattern::parse(&to[0]),
                    reason,
                });
            }
            _ => {}
        }
    }
    if layers.is_empty() {
        return Err("LAYERS.md has no `## Layers` table".to_owned());
    }
    Ok(Layering { layers, exceptions })
}

impl Layering {
    /// The index (0 = top) of the layer that names `module` most closely.
    fn layer_of(&self, module: &[String]) -> Result<usize, String> {
        let mut best: Option<((usize, usize), usize)> = None;
        let mut tie = false;
        for (index, layer) in self.layers.iter().enumerate() {
            for pattern in &layer.patterns {
                if let Some(close) = pattern.closeness(module) {
                    match best {
                        Some((b, i)) if b == close && i != index => tie = true,
                        Some((b, _)) if b >= close => {}
                        _ => {
                            best = Some((close, index));
                            tie = false;
                        }
                    }
                }
            }
        }
        match best {
            None => Err(format!(
                "{} is in no layer of src/LAYERS.md",
                display(module)
            )),
            Some(_) if tie => Err(format!(
                "{} is named as closely by two layers of src/LAYERS.md",
                display(module)
            )),
            Some((_, index)) => Ok(index),
        }
    }

    fn exception(&self, from: &[String], to: &[String]) -> Option<usize> {
        self.exceptions
            .iter()
            .position(|e| e.from.closeness(from).is_some() && e.to.closeness(to).is_some())
    }
}

// ---------------------------------------------------------------------------
// The check

/// One import between two files.
#[derive(Debug, Clone)]
struct Edge {
    file: String,
    line: usize,
    to: Module,
}

/// The file module `path` lands in, following re-exports.
fn target(
    path: &[String],
    modules: &BTreeSet<Module>,
    reexports: &BTreeMap<Module, BTreeMap<String, Vec<String>>>,
) -> Module {
    let mut path = path.to_vec();
    for _ in 0..16 {
        let len = (0..=path.len())
            .rev()
            .find(|&n| modules.contains(&path[..n].to_vec()))
            .unwrap_or(0);
        let module = path[..len].to_vec();
        let next = path
            .get(len)
            .and_then(|name| reexports.get(&module)?.get(name));
        match next {
            Some(source) if *source != path => {
                path = source.iter().chain(&path[len + 1..]).cloned().collect();
            }
            _ => return module,
        }
    }
    path
}

/// Every problem with `files` under `layers_md`, one message each.
fn check(files: &[SourceFile], layers_md: &str) -> Vec<String> {
    let layering = match parse_layering(layers_md) {
        Ok(layering) => layering,
        Err(message) => return vec![message],
    };
    let mut found = imports(files, &layering);
    found.problems.extend(cycles(&found.graph));
    found
        .problems
        .extend(stale_exceptions(&layering, &found.graph, &found.excepted));
    found.problems
}

/// An import an exception allows: the exception, the importing module,
/// the import, whether it runs up a layer.
type Excepted = (usize, Module, Edge, bool);

/// The imports between files: those the exceptions allow apart.
struct Imports {
    graph: BTreeMap<Module, Vec<Edge>>,
    excepted: Vec<Excepted>,
    problems: Vec<String>,
}

/// Resolves every reference of `files`, reporting the ones that run up a
/// layer or land in no layer.
fn imports(files: &[SourceFile], layering: &Layering) -> Imports {
    let modules: BTreeSet<Module> = files
        .iter()
        .filter(|f| f.module != ["main"])
        .map(|f| f.module.clone())
        .collect();
    let child = |parent: &[String], name: &str| {
        let mut m = parent.to_vec();
        m.push(name.to_owned());
        modules.contains(&m)
    };
    let mut per_file = Vec::new();
    let mut reexports = BTreeMap::new();
    for file in files {
        let refs = file_references(&file.text, &file.module, &child);
        reexports.insert(file.module.clone(), refs.reexports);
        per_file.push(refs.references);
    }
    let mut found = Imports {
        graph: BTreeMap::new(),
        excepted: Vec::new(),
        problems: Vec::new(),
    };
    for (file, references) in files.iter().zip(per_file) {
        let from_layer = match layering.layer_of(&file.module) {
            Ok(layer) => layer,
            Err(message) => {
                found.problems.push(format!("{}: {message}", file.path));
                continue;
            }
        };
        let mut seen = BTreeSet::new();
        for reference in references {
            let to = target(&reference.path, &modules, &reexports);
            if to == file.module || !seen.insert((to.clone(), reference.line)) {
                continue;
            }
            let to_layer = match layering.layer_of(&to) {
                Ok(layer) => layer,
                Err(message) => {
                    let at = format!("{}:{}", file.path, reference.line);
                    found.problems.push(format!("{at}: {message}"));
                    continue;
                }
            };
            let edge = Edge {
                file: file.path.clone(),
                line: reference.line,
                to: to.clone(),
            };
            let upward = to_layer < from_layer;
            if let Some(index) = layering.exception(&file.module, &to) {
                found
                    .excepted
                    .push((index, file.module.clone(), edge, upward));
                continue;
            }
            if upward {
                found.problems.push(format!(
                    "{}:{} → crate::{}: up from layer \"{}\" to layer \"{}\"",
                    file.path,
                    reference.line,
                    reference.path.join("::"),
                    layering.layers[from_layer].name,
                    layering.layers[to_layer].name,
                ));
            }
            found
                .graph
                .entry(file.module.clone())
                .or_default()
                .push(edge);
        }
    }
    found
}

/// The exceptions no import needs: none they allow runs up a layer or
/// closes a circle.
fn stale_exceptions(
    layering: &Layering,
    graph: &BTreeMap<Module, Vec<Edge>>,
    excepted: &[Excepted],
) -> Vec<String> {
    let mut whole = graph.clone();
    for (_, from, edge, _) in excepted {
        whole.entry(from.clone()).or_default().push(edge.clone());
    }
    let circles = groups(&whole);
    let mut used = vec![false; layering.exceptions.len()];
    for (index, from, edge, upward) in excepted {
        let circular = circles
            .iter()
            .any(|group| group.contains(from) && group.contains(&edge.to));
        if *upward || circular {
            used[*index] = true;
        }
    }
    layering
        .exceptions
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(exception, _)| {
            format!(
                "src/LAYERS.md: the exception {} → {} ({}) is needed by no import running up or closing a circle: remove it",
                exception.from, exception.to, exception.reason
            )
        })
        .collect()
}

/// The strongly connected groups of `graph` with more than one module,
/// each sorted (Tarjan's algorithm).
fn groups(graph: &BTreeMap<Module, Vec<Edge>>) -> Vec<Vec<Module>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<Module, Vec<Edge>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on_stack: BTreeSet<Module>,
        groups: Vec<Vec<Module>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, node: &Module) {
            let n = self.index.len();
            self.index.insert(node.clone(), n);
            self.low.insert(node.clone(), n);
            self.stack.push(node.clone());
            self.on_stack.insert(node.clone());
            let graph = self.graph;
            for edge in graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(&edge.to) {
                    self.visit(&edge.to);
                    let low = self.low[node].min(self.low[&edge.to]);
                    self.low.insert(node.clone(), low);
                } else if self.on_stack.contains(&edge.to) {
                    let low = self.low[node].min(self.index[&edge.to]);
                    self.low.insert(node.clone(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(&member);
                    let done = member == *node;
                    group.push(member);
                    if done {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.groups.push(group);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.groups
}

/// The circles of `graph`, one message each: the shortest circle through
/// the first module of each strongly connected group.
fn cycles(graph: &BTreeMap<Module, Vec<Edge>>) -> Vec<String> {
    let mut messages = Vec::new();
    for group in &groups(graph) {
        let members: BTreeSet<&Module> = group.iter().collect();
        let start = &group[0];
        // Breadth first from `start` back to it, inside the group.
        let mut came_from: BTreeMap<&Module, (&Module, &Edge)> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(node) = queue.pop_front() {
            for edge in graph.get(node).into_iter().flatten() {
                if !members.contains(&edge.to) {
                    continue;
                }
                if edge.to == *start {
                    closing = Some((node, edge));
                    break 'search;
                }
                if !came_from.contains_key(&edge.to) {
                    came_from.insert(&edge.to, (node, edge));
                    queue.push_back(&edge.to);
                }
            }
        }
        let mut steps = Vec::new();
        if let Some((mut node, edge)) = closing {
            steps.push(edge);
            while node != start {
                let (previous, edge) = came_from[node];
                steps.push(edge);
                node = previous;
            }
        }
        steps.reverse();
        let path: Vec<String> = steps
            .iter()
            .map(|e| format!("{}:{} → {}", e.file, e.line, display(&e.to)))
            .collect();
        messages.push(format!(
            "circle between {}: {}",
            group
                .iter()
                .map(|m| display(m))
                .collect::<Vec<_>>()
                .join(", "),
            path.join(", ")
        ));
    }
    messages
}

#[test]
fn src_keeps_the_layers_of_layers_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = std::fs::read_to_string(root.join("LAYERS.md"))
        .unwrap_or_else(|e| panic!("cannot read src/LAYERS.md: {e}"));
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    assert!(
        files.len() > 50,
        "read only {} files under src/",
        files.len()
    );
    let problems = check(&files, &layers);
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The checker's own tests: it must see what it is meant to see.

fn no_children(_: &[String], _: &str) -> bool {
    false
}

fn paths(source: &str, module: &[&str]) -> Vec<String> {
    let module: Module = module.iter().map(|s| (*s).to_owned()).collect();
    file_references(source, &module, &no_children)
        .references
        .into_iter()
        .map(|r| format!("{}:{}", r.line, r.path.join("::")))
        .collect()
}

#[test]
fn grouped_use_trees_expand_to_every_leaf() {
    let source = "use crate::{a::{b, c::D as E}, d, e::{self, *}};\nuse std::fmt;";
    assert_eq!(
        paths(source, &["x"]),
        ["1:a::b", "1:a::c::D", "1:d", "1:e", "1:e"]
    );
}

#[test]
fn inline_paths_are_found() {
    let source = "fn f() {\n    let x = crate::mail::outbox::queue(1);\n    foo::crate_like();\n}";
    assert_eq!(paths(source, &["x"]), ["2:mail::outbox::queue"]);
}

#[test]
fn comments_are_ignored() {
    let source = "// use crate::a;\n/// crate::b::c\n/* crate::d /* nested crate::e */ crate::f */\n//! crate::g\nuse crate::h;";
    assert_eq!(paths(source, &["x"]), ["5:h"]);
}

#[test]
fn strings_and_chars_are_ignored() {
    let source = "const A: &str = \"crate::a \\\" crate::b\";\nconst B: &str = r#\"crate::c \" crate::d\"#;\nconst C: &[u8] = b\"crate::e\";\nconst D: char = '\"';\nfn f<'a>(x: &'a str) -> &'a str { crate::g::h(x) }";
    assert_eq!(paths(source, &["x"]), ["5:g::h"]);
}

#[test]
fn escaped_quotes_in_char_literals_end_them() {
    let source = "const Q: char = '\\'';\nconst B: char = '\\\\';\nconst S: &str = \"crate::a\";\nuse crate::b;";
    assert_eq!(paths(source, &["x"]), ["4:b"]);
}

#[test]
fn super_resolves_to_the_enclosing_module() {
    let source = "use super::b;\nmod tests {\n    use super::*;\n    use super::super::c;\n}\nfn g() { super::d::e(); }";
    assert_eq!(
        paths(source, &["p", "q"]),
        ["1:p::b", "3:p::q", "4:p::c", "6:p::d::e"]
    );
}

#[test]
fn the_binary_names_the_library_by_its_crate_name() {
    let source = "use custos::{app::Application, settings::Settings};\nfn main() { custos::graphql::sdl(); }";
    assert_eq!(
        paths(source, &["main"]),
        [
            "1:app::Application",
            "1:settings::Settings",
            "2:graphql::sdl"
        ]
    );
}

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: format!("src/{path}"),
        module: module_of(path),
        text: text.to_owned(),
    }
}

const PLANTED_LAYERS: &str = "\
## Layers
| Layer | Modules |
|---|---|
| top | `lib`, `http` |
| middle | `accounts` |
| bottom | `db` |

## Exceptions
| From | To | Why |
|---|---|---|
";

#[test]
fn a_planted_upward_import_is_reported() {
    let files = [
        file("lib.rs", "pub mod accounts; pub mod db; pub mod http;"),
        file("http/mod.rs", "use crate::accounts::Account;"),
        file("accounts/mod.rs", "use crate::db::connect;"),
        file("db.rs", "fn f() { let _ = crate::http::serve(); }"),
    ];
    let problems = check(&files, PLANTED_LAYERS);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("src/db.rs:1 → crate::http::serve: up from layer \"bottom\"")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("circle between")),
        "{problems:?}"
    );
}

#[test]
fn a_circle_inside_one_layer_is_reported_and_an_exception_excuses_it() {
    let files = [
        file("accounts/mod.rs", "pub mod a; pub mod b;"),
        file("accounts/a.rs", "use super::b::B;"),
        file("accounts/b.rs", "use crate::accounts::a::A;"),
    ];
    let problems = check(&files, PLANTED_LAYERS);
    assert_eq!(
        problems,
        [
            "circle between accounts::a, accounts::b: src/accounts/a.rs:1 → accounts::b, src/accounts/b.rs:1 → accounts::a"
        ]
    );
    let excused = format!("{PLANTED_LAYERS}| `accounts::b` | `accounts::a` | being mended |\n");
    assert_eq!(check(&files, &excused), Vec::<String>::new());
    let stale = format!("{excused}| `db` | `http` | no longer needed |\n");
    assert_eq!(check(&files, &stale).len(), 1);
    let mended = [
        file("accounts/mod.rs", "pub mod a; pub mod b;"),
        file("accounts/a.rs", ""),
        file("accounts/b.rs", "use crate::accounts::a::A;"),
    ];
    assert_eq!(
        check(&mended, &excused).len(),
        1,
        "{:?}",
        check(&mended, &excused)
    );
}

#[test]
fn reexports_lead_to_the_defining_file() {
    let files = [
        file("accounts/mod.rs", "mod roles;\npub use roles::Role;"),
        file("accounts/roles.rs", "pub enum Role {}"),
        file("http/mod.rs", "use crate::accounts::Role;"),
    ];
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    let child = |parent: &[String], name: &str| {
        let mut m = parent.to_vec();
        m.push(name.to_owned());
        modules.contains(&m)
    };
    let reexports: BTreeMap<Module, _> = files
        .iter()
        .map(|f| {
            (
                f.module.clone(),
                file_references(&f.text, &f.module, &child).reexports,
            )
        })
        .collect();
    let path = ["accounts".to_owned(), "Role".to_owned()];
    assert_eq!(target(&path, &modules, &reexports), ["accounts", "roles"]);
}

#[test]
fn a_module_in_no_layer_is_reported() {
    let files = [
        file("jobs.rs", "use crate::db::connect;"),
        file("db.rs", ""),
    ];
    let problems = check(&files, PLANTED_LAYERS);
    assert_eq!(
        problems,
        ["src/jobs.rs: jobs is in no layer of src/LAYERS.md"]
    );
}
