//! "Nothing accepted is ignored", checked over the whole catalogue: every key path the reader
//! accepts is enumerated, and each one either names where the engine implements it (and the
//! named source really contains it) or draws the diagnostic that says it has no effect.

use super::*;
use crate::spec::validate::{StaticCatalog, codes, validate};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// One step from the document root to a key.
#[derive(Debug, Clone)]
enum Segment {
    Key(&'static str),
    /// An entry of a free-name mapping.
    Name,
    /// An item of a list.
    Item,
    /// The block chosen by the mapping's `type`.
    Type(&'static str),
}

/// An accepted key path and the catalogue entry for its last key.
#[derive(Debug, Clone)]
struct Entry {
    segments: Vec<Segment>,
    name: &'static str,
    kind: Option<Kind>,
    effect: Effect,
    kneo: Option<&'static str>,
    has_children: bool,
    /// The effects of the enclosing keys, innermost last.
    ancestors: Vec<Effect>,
}

/// The name an `Open` block's other keys get in the walk.
const OTHER_KEY: &str = "any_other_key";

impl Entry {
    /// The diagnostic path of this key in the documents [`document`] builds.
    fn path(&self) -> String {
        let mut path = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Key(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Segment::Name => path.push_str(".k"),
                Segment::Item => path.push_str("[0]"),
                Segment::Type(_) => {}
            }
        }
        path
    }

    /// The path with the chosen workflow types, for messages.
    fn label(&self) -> String {
        let mut label = self.path();
        for segment in &self.segments {
            if let Segment::Type(name) = segment {
                label.push_str(&format!(" (type {name})"));
            }
        }
        label
    }
}

fn walk(
    block: &'static Block,
    prefix: &[Segment],
    ancestors: &[Effect],
    stack: &mut Vec<&'static str>,
    out: &mut Vec<Entry>,
) {
    if stack.contains(&block.name) {
        return;
    }
    stack.push(block.name);
    for key in block.keys {
        let mut segments = prefix.to_vec();
        segments.push(Segment::Key(key.name));
        let mut inner_ancestors = ancestors.to_vec();
        inner_ancestors.push(key.effect);
        let kind = match key.shape {
            Shape::Value(kind) => Some(kind),
            _ => None,
        };
        out.push(Entry {
            segments: segments.clone(),
            name: key.name,
            kind,
            effect: key.effect,
            kneo: key.kneo,
            has_children: kind.is_none(),
            ancestors: ancestors.to_vec(),
        });
        walk_shape(&key.shape, &segments, &inner_ancestors, stack, out);
    }
    stack.pop();
}

fn walk_shape(
    shape: &Shape,
    segments: &[Segment],
    ancestors: &[Effect],
    stack: &mut Vec<&'static str>,
    out: &mut Vec<Entry>,
) {
    let with = |segment: Segment| {
        let mut segments = segments.to_vec();
        segments.push(segment);
        segments
    };
    match shape {
        Shape::Value(_) => {}
        Shape::Block(block) => walk(block, segments, ancestors, stack, out),
        Shape::Named(inner) => walk_shape(inner, &with(Segment::Name), ancestors, stack, out),
        Shape::ListOf(inner) => walk_shape(inner, &with(Segment::Item), ancestors, stack, out),
        Shape::ByType(blocks) => {
            for (name, block) in *blocks {
                walk(block, &with(Segment::Type(name)), ancestors, stack, out);
            }
        }
        Shape::Open(block, other) => {
            walk(block, segments, ancestors, stack, out);
            let mut other_segments = segments.to_vec();
            other_segments.push(Segment::Key(OTHER_KEY));
            out.push(Entry {
                segments: other_segments,
                name: OTHER_KEY,
                kind: Some(Kind::Text),
                effect: **other,
                kneo: None,
                has_children: false,
                ancestors: ancestors.to_vec(),
            });
        }
    }
}

fn catalogue() -> Vec<Entry> {
    let mut out = Vec::new();
    walk(&SPEC, &[], &[], &mut Vec::new(), &mut out);
    out
}

/// A document with `leaf` at the entry's path (and the `type` of every chosen block).
fn document(entry: &Entry, leaf: Value) -> Value {
    fn place(segments: &[Segment], leaf: Value) -> Value {
        let Some((first, rest)) = segments.split_first() else {
            return leaf;
        };
        match first {
            Segment::Key(name) => {
                let mut map = Map::new();
                // A typed block's `type` is set by the parent; a leaf `type` keeps its sample.
                let inner = place(rest, leaf);
                map.insert((*name).to_owned(), inner);
                Value::Object(map)
            }
            Segment::Name => json!({"k": place(rest, leaf)}),
            Segment::Item => json!([place(rest, leaf)]),
            Segment::Type(name) => {
                let mut inner = place(rest, leaf);
                if let Value::Object(map) = &mut inner {
                    map.entry("type").or_insert_with(|| json!(name));
                } else {
                    inner = json!({"type": name});
                }
                inner
            }
        }
    }
    let mut document = place(&entry.segments, leaf);
    if let Value::Object(map) = &mut document {
        map.entry("version").or_insert_with(|| json!("v1"));
    }
    document
}

fn sample(kind: Kind) -> Value {
    match kind {
        Kind::Text | Kind::Any => json!("x"),
        Kind::Flag => json!(true),
        Kind::Count => json!(1),
        Kind::Number => json!(1.5),
        Kind::Texts => json!(["x"]),
        Kind::Mapping => json!({"k": "v"}),
    }
}

fn wrong(kind: Option<Kind>) -> Option<Value> {
    match kind {
        None => Some(json!(7)),
        Some(Kind::Text) => Some(json!({"not": "text"})),
        Some(Kind::Flag) => Some(json!("perhaps")),
        Some(Kind::Count) => Some(json!("many")),
        Some(Kind::Number) => Some(json!("much")),
        Some(Kind::Texts) => Some(json!(7)),
        Some(Kind::Mapping) => Some(json!("flat")),
        Some(Kind::Any) => None,
    }
}

fn diagnostics_of(document: &Value) -> Vec<crate::spec::Diagnostic> {
    validate(document, &StaticCatalog::default()).diagnostics
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Whether `symbol` occurs in `kneo-server/src/<location>` (a file, or any file below a
/// directory).
fn source_contains(location: &str, symbol: &str) -> bool {
    fn search(path: &Path, symbol: &str) -> bool {
        if path.is_dir() {
            return std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|entry| search(&entry.path(), symbol));
        }
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(symbol))
    }
    search(&source_root().join(location), symbol)
}

#[test]
fn the_catalogue_covers_every_block_the_reader_uses() {
    let entries = catalogue();
    // Sanity: the walk reaches the deep corners (recursive conditions, typed workflows,
    // component workflows, open blocks).
    let paths: Vec<String> = entries.iter().map(Entry::label).collect();
    for expected in [
        "version",
        "agent.model.extra.api_key",
        "agent.defaults.any_other_key",
        "agent.guardrails.input[0].config.patterns",
        "workflow.edges[0].condition.case_sensitive (type graph)",
        "workflow.edges[0].condition.conditions (type graph)",
        "components.workflows.k.participants[0].fallback_ref (type handoff)",
        "components.workflows.k.max_iterations (type group_chat)",
        "mcp_servers.k.client_key_ref",
    ] {
        assert!(
            paths.iter().any(|path| path == expected),
            "missing {expected}"
        );
    }
    assert!(entries.len() > 400, "{} key paths", entries.len());
}

#[test]
fn every_accepted_key_has_its_effect_or_says_it_has_none() {
    let mut problems = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for entry in catalogue() {
        let label = entry.label();
        let path = entry.path();
        let kind = match entry.effect {
            Effect::Runs { .. } => "runs",
            Effect::Shown { .. } => "shown",
            Effect::Governance { .. } => "governance",
            Effect::Checked { .. } => "checked",
            Effect::Structure => "structure",
            Effect::Part => "part",
            Effect::Ignored { .. } => "ignored",
            Effect::Information { .. } => "information",
        };
        *counts.entry(kind).or_default() += 1;
        match entry.effect {
            Effect::Runs { file, symbol } | Effect::Shown { file, symbol } => {
                if !source_contains(file, symbol) {
                    problems.push(format!(
                        "{label}: says it takes effect at {symbol:?} in kneo-server/src/{file}, which is not there"
                    ));
                }
            }
            Effect::Governance { code } => {
                if !source_contains("spec/validate/governance.rs", &format!("codes::{code}")) {
                    problems.push(format!("{label}: governance code {code} is never raised"));
                }
            }
            Effect::Checked { .. } => {}
            Effect::Structure => {
                if !entry.has_children {
                    problems.push(format!("{label}: a structure key without keys of its own"));
                }
            }
            Effect::Part => {
                let owner = entry
                    .ancestors
                    .iter()
                    .rev()
                    .find(|effect| **effect != Effect::Part && **effect != Effect::Structure);
                if !matches!(owner, Some(Effect::Ignored { .. })) {
                    problems.push(format!(
                        "{label}: part of an enclosing key, but no enclosing key says it has no effect ({owner:?})"
                    ));
                }
            }
            Effect::Ignored { .. } | Effect::Information { .. } => {
                let code = if matches!(entry.effect, Effect::Ignored { .. }) {
                    codes::W_SPEC_KEY_NO_EFFECT
                } else {
                    codes::I_SPEC_KEY_INFORMATIONAL
                };
                let leaf = entry.kind.map_or_else(|| json!({}), sample);
                let found = diagnostics_of(&document(&entry, leaf))
                    .iter()
                    .any(|d| d.code == code && d.path == path);
                if !found {
                    problems.push(format!(
                        "{label}: has no effect but draws no {code} at {path}"
                    ));
                }
            }
        }
        if entry.kneo.is_some() {
            let leaf = entry.kind.map_or_else(|| json!({}), sample);
            let found = diagnostics_of(&document(&entry, leaf))
                .iter()
                .any(|d| d.code == codes::I_SPEC_KNEO_EXTENSION && d.path == path);
            if !found {
                problems.push(format!(
                    "{label}: a kneo extension that draws no I_SPEC_KNEO_EXTENSION"
                ));
            }
        }
    }
    println!("key paths by effect: {counts:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_accepted_key_is_read() {
    // A key the catalogue accepts but the reader never looks at would be accepted and
    // ignored without a word: a wrong value must draw a finding at the key's own path.
    let mut problems = Vec::new();
    for entry in catalogue() {
        if entry.name == OTHER_KEY {
            continue;
        }
        let Some(bad) = wrong(entry.kind) else {
            continue;
        };
        let path = entry.path();
        let diagnostics = diagnostics_of(&document(&entry, bad));
        let read = diagnostics
            .iter()
            .any(|d| d.is_error() && (d.path == path || d.path.starts_with(&format!("{path}."))));
        if !read {
            problems.push(format!(
                "{}: a wrong value draws no error at {path}",
                entry.label()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
