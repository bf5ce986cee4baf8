//! Strict reading of a migrated, expanded spec document into the typed [`Spec`], with one
//! diagnostic per problem (unknown key, missing field, wrong type, bad enum value, out-of-range
//! number) at the exact path where it occurs.
//!
//! The reader is hand-written rather than a serde derive so that it keeps going after the first
//! problem and reports every one with a path and a fix. It distinguishes *structural* errors
//! (`E_SCHEMA`: the typed model would be wrong) from local value errors (a zero `max_steps`, a
//! guardrail without `type`): after the latter the model is still sound enough for the semantic
//! checks to run, so the user sees everything in one pass.
//!
//! The keys each block accepts come from [`super::keys`]; so do the diagnostics for keys that
//! have no effect (`W_SPEC_KEY_NO_EFFECT`), are information only (`I_SPEC_KEY_INFORMATIONAL`) or
//! are kneo extensions (`I_SPEC_KNEO_EXTENSION`).
//!
//! - `agent.rs`: agents, models, strategies, runtime preferences, tool selections, guardrails,
//!   memory.
//! - `resources.rs`: tools, MCP servers, functions, humans, skills.
//! - `workflow.rs`: the five workflow types, steps, edges and their conditions.

mod agent;
mod resources;
mod workflow;

use super::diagnostic::{Diagnostic, closest_match, index, join, quoted_list};
use super::keys::{self, Block, Effect, Key};
use super::model::{Components, Spec, SpecEnum};
use super::validate::codes;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

type Object = Map<String, Value>;

/// The largest number of seconds a timeout may name: kneo-serv reads timeouts as 64-bit
/// integers, so this is the largest it accepts, and every duration type here can hold it.
const MAX_SECONDS: f64 = i64::MAX as f64;

/// What [`read_spec`] found.
pub(crate) struct SchemaOutcome {
    pub diagnostics: Vec<Diagnostic>,
    /// `None` when a structural (`E_SCHEMA`) error makes the typed model unreliable.
    pub spec: Option<Spec>,
    /// A guardrail item could not be read (and was reported): positions in the typed lists no
    /// longer match the document, so checks that name items by position are skipped.
    pub guardrails_incomplete: bool,
}

/// Reads `value` (a migrated, expanded spec document) into the typed model; `source_version`
/// is the version the caller wrote.
pub(crate) fn read_spec(value: &Value, source_version: Option<String>) -> SchemaOutcome {
    let mut reader = Reader::default();
    let spec = reader.spec(value, source_version);
    SchemaOutcome {
        spec: (!reader.structural).then_some(spec),
        diagnostics: reader.diagnostics,
        guardrails_incomplete: reader.guardrails_incomplete,
    }
}

/// The value kinds a field can expect, for messages and fixes.
#[derive(Clone, Copy)]
enum Expected {
    String,
    Boolean,
    Integer,
    Number,
    List,
    Mapping,
    Command,
}

impl Expected {
    fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Boolean => "true or false",
            Self::Integer => "a whole number",
            Self::Number => "a number",
            Self::List => "a list",
            Self::Mapping => "a mapping",
            Self::Command => "a list [program, args...] or a command string",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Self::String => "Write it as text; quote it if it looks like a number or boolean.",
            Self::Boolean => "Write true or false.",
            Self::Integer => "Write a whole number without quotes or decimals.",
            Self::Number => "Write a number without quotes.",
            Self::List => "Write it as a list, e.g. [a, b] or one '- item' per line.",
            Self::Mapping => "Write it as 'key: value' pairs.",
            Self::Command => "Write command: [program, arg, ...] or command: \"program arg\".",
        }
    }
}

/// How a value looks, for "but it is ..." messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) if text.chars().count() > 40 => {
            format!(
                "the string '{}...'",
                text.chars().take(40).collect::<String>()
            )
        }
        Value::String(text) => format!("the string '{text}'"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// A field's value, treating an explicit `null` (a YAML key with nothing after it) as absent.
fn get<'v>(map: &'v Object, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// Names the container for messages: the document root reads as "the spec".
fn container(path: &str) -> String {
    if path.is_empty() {
        "the spec".to_owned()
    } else {
        path.to_owned()
    }
}

/// Names the container at the start of a sentence; paths stay as written.
fn subject(path: &str) -> String {
    if path.is_empty() {
        "The spec".to_owned()
    } else {
        path.to_owned()
    }
}

/// Whether a caller-supplied path uses `~` or has a `..` segment (with `/` or `\` separators),
/// the shapes kneo-serv 1.2 refuses at validation for skill sources and MCP file paths.
fn traversal_problem(path: &str) -> Option<&'static str> {
    if path.starts_with('~') {
        return Some("must not use '~' home-directory expansion");
    }
    if path.split(['/', '\\']).any(|segment| segment == "..") {
        return Some("must not contain parent-directory ('..') segments");
    }
    None
}

#[derive(Default)]
struct Reader {
    diagnostics: Vec<Diagnostic>,
    structural: bool,
    guardrails_incomplete: bool,
}

impl Reader {
    // ---- diagnostics -------------------------------------------------------------------

    fn schema_error(&mut self, path: String, message: String, suggestion: String) {
        self.structural = true;
        self.diagnostics
            .push(Diagnostic::error(codes::E_SCHEMA, path, message).suggest(suggestion));
    }

    fn wrong_type(&mut self, path: &str, value: &Value, expected: Expected) {
        self.schema_error(
            path.to_owned(),
            format!(
                "{} must be {}, but it is {}.",
                subject(path),
                expected.describe(),
                describe(value)
            ),
            expected.fix().to_owned(),
        );
    }

    fn missing(&mut self, path: &str, key: &str, expected: Expected) {
        let fix = if path.is_empty() {
            format!(
                "Add '{key}' ({}) at the top level of the spec.",
                expected.describe()
            )
        } else {
            format!("Add '{key}' ({}) to {path}.", expected.describe())
        };
        self.schema_error(
            join(path, key),
            format!("{} is missing the required key '{key}'.", subject(path)),
            fix,
        );
    }

    fn unknown_key(&mut self, path: &str, key: &str, known: &[&str]) {
        let suggestion = match closest_match(key, known) {
            Some(candidate) => format!("Did you mean '{candidate}'?"),
            None => format!(
                "Remove it; the keys allowed in {} are {}.",
                container(path),
                quoted_list(known)
            ),
        };
        self.schema_error(
            join(path, key),
            format!("Unknown key '{key}' in {}.", container(path)),
            suggestion,
        );
    }

    /// A value error that leaves the model sound (not `E_SCHEMA`).
    fn value_error(&mut self, code: &str, path: String, message: String, fix: &str) {
        self.diagnostics
            .push(Diagnostic::error(code, path, message).suggest(fix));
    }

    /// The diagnostics a present key draws from its catalogue entry.
    fn note_key(&mut self, path: &str, entry: &Key) {
        self.note_effect(path, &entry.effect);
        if let Some(note) = entry.kneo {
            self.diagnostics.push(
                Diagnostic::info(
                    codes::I_SPEC_KNEO_EXTENSION,
                    path,
                    format!(
                        "{path} is a kneo extension: kneo runs it, kneo-serv 1.2 refuses the spec."
                    ),
                )
                .suggest(format!(
                    "Keep it on kneo; for a spec both services run, {note}."
                )),
            );
        }
    }

    fn note_effect(&mut self, path: &str, effect: &Effect) {
        match effect {
            Effect::Ignored { why } => self.diagnostics.push(
                Diagnostic::warning(
                    codes::W_SPEC_KEY_NO_EFFECT,
                    path,
                    format!("{path} has no effect: {why}."),
                )
                .suggest("Remove it, or keep it knowing that runs do not read it (docs/service_api.md, spec keys)."),
            ),
            Effect::Information { why } => self.diagnostics.push(Diagnostic::info(
                codes::I_SPEC_KEY_INFORMATIONAL,
                path,
                format!("{path} is kept as information: {why}."),
            )),
            _ => {}
        }
    }

    // ---- primitive readers -------------------------------------------------------------

    /// Checks that `value` is a mapping with only the keys of `block`, noting each present key.
    fn mapping<'v>(&mut self, value: &'v Value, path: &str, block: &Block) -> Option<&'v Object> {
        let Value::Object(map) = value else {
            self.wrong_type(path, value, Expected::Mapping);
            return None;
        };
        for (name, item) in map {
            match block.get(name) {
                None => self.unknown_key(path, name, &block.names()),
                Some(entry) if !item.is_null() => self.note_key(&join(path, name), entry),
                Some(_) => {}
            }
        }
        Some(map)
    }

    /// An open mapping: the keys of `block` are noted as usual, any other key with `other`.
    fn open_block<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        block: &Block,
        other: &Effect,
    ) -> Option<&'v Object> {
        let Value::Object(map) = value else {
            self.wrong_type(path, value, Expected::Mapping);
            return None;
        };
        for (name, item) in map {
            if item.is_null() {
                continue;
            }
            match block.get(name) {
                Some(entry) => self.note_key(&join(path, name), entry),
                None => self.note_effect(&join(path, name), other),
            }
        }
        Some(map)
    }

    /// A mapping whose keys are free (named components, data blocks).
    fn open_mapping<'v>(&mut self, map: &'v Object, path: &str, key: &str) -> Option<&'v Object> {
        let value = get(map, key)?;
        match value {
            Value::Object(inner) => Some(inner),
            other => {
                self.wrong_type(&join(path, key), other, Expected::Mapping);
                None
            }
        }
    }

    /// Entries of a name → spec mapping, such as `tools` or `components.agents`.
    fn named<'v>(&mut self, map: &'v Object, path: &str, key: &str) -> Vec<(String, &'v Value)> {
        self.open_mapping(map, path, key)
            .map(|inner| {
                inner
                    .iter()
                    .map(|(name, value)| (name.clone(), value))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads a name → spec mapping with `read` applied to each entry.
    fn named_specs<T>(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        read: fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let field = join(path, key);
        self.named(map, path, key)
            .into_iter()
            .filter_map(|(name, value)| {
                read(self, value, &join(&field, &name)).map(|spec| (name, spec))
            })
            .collect()
    }

    fn list<'v>(&mut self, map: &'v Object, path: &str, key: &str) -> Vec<&'v Value> {
        match get(map, key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => {
                self.wrong_type(&join(path, key), other, Expected::List);
                Vec::new()
            }
        }
    }

    /// A list that must be present (it may be empty).
    fn required_list<'v>(&mut self, map: &'v Object, path: &str, key: &str) -> Vec<&'v Value> {
        if get(map, key).is_none() {
            self.missing(path, key, Expected::List);
        }
        self.list(map, path, key)
    }

    fn string(&mut self, map: &Object, path: &str, key: &str) -> Option<String> {
        match get(map, key)? {
            Value::String(text) => Some(text.clone()),
            other => {
                self.wrong_type(&join(path, key), other, Expected::String);
                None
            }
        }
    }

    /// A required, non-empty string (names, ids and refs are never blank).
    fn required_string(&mut self, map: &Object, path: &str, key: &str) -> String {
        if get(map, key).is_none() {
            self.missing(path, key, Expected::String);
            return String::new();
        }
        let text = self.string(map, path, key).unwrap_or_default();
        if text.trim().is_empty() && matches!(get(map, key), Some(Value::String(_))) {
            self.schema_error(
                join(path, key),
                format!("{} is an empty string.", join(path, key)),
                format!("Give '{key}' a non-empty value."),
            );
        }
        text
    }

    fn boolean(&mut self, map: &Object, path: &str, key: &str) -> Option<bool> {
        match get(map, key)? {
            Value::Bool(flag) => Some(*flag),
            other => {
                self.wrong_type(&join(path, key), other, Expected::Boolean);
                None
            }
        }
    }

    fn integer(&mut self, map: &Object, path: &str, key: &str) -> Option<i128> {
        let value = get(map, key)?;
        let integer = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from));
        if integer.is_none() {
            self.wrong_type(&join(path, key), value, Expected::Integer);
        }
        integer
    }

    fn number(&mut self, map: &Object, path: &str, key: &str) -> Option<f64> {
        let value = get(map, key)?;
        let number = value.as_f64();
        if number.is_none() {
            self.wrong_type(&join(path, key), value, Expected::Number);
        }
        number
    }

    /// An integer in `min..=max`; outside it, `code` with `fix` (`E_SCHEMA` codes are
    /// structural).
    fn integer_in_range(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        (min, max): (i128, i128),
        code: &str,
        fix: &str,
    ) -> Option<i128> {
        let value = self.integer(map, path, key)?;
        let field = join(path, key);
        let problem = if value < min && min == 1 {
            "it must be greater than 0"
        } else if value < min {
            "it must not be negative"
        } else if value > max {
            "it is too large"
        } else {
            return Some(value);
        };
        let message = format!("{field} is {value}; {problem}.");
        if code == codes::E_SCHEMA {
            self.schema_error(field, message, fix.to_owned());
        } else {
            self.value_error(code, field, message, fix);
        }
        None
    }

    fn positive_u32(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        code: &str,
        fix: &str,
    ) -> Option<u32> {
        self.integer_in_range(map, path, key, (1, i128::from(u32::MAX)), code, fix)
            .and_then(|value| u32::try_from(value).ok())
    }

    fn positive_u64(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        code: &str,
        fix: &str,
    ) -> Option<u64> {
        self.integer_in_range(map, path, key, (1, i128::from(u64::MAX)), code, fix)
            .and_then(|value| u64::try_from(value).ok())
    }

    /// A whole number ≥ 0.
    fn count(&mut self, map: &Object, path: &str, key: &str, fix: &str) -> Option<u64> {
        self.integer_in_range(
            map,
            path,
            key,
            (0, i128::from(u64::MAX)),
            codes::E_VALUE_RANGE,
            fix,
        )
        .and_then(|value| u64::try_from(value).ok())
    }

    /// A number of seconds in `(0, MAX_SECONDS]`.
    fn positive_number(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        code: &str,
        fix: &str,
    ) -> Option<f64> {
        let value = self.number(map, path, key)?;
        if value > 0.0 && value <= MAX_SECONDS {
            return Some(value);
        }
        let field = join(path, key);
        let problem = if value > 0.0 {
            format!("{field} is {value}; it must be at most {MAX_SECONDS} seconds.")
        } else {
            format!("{field} is {value}; it must be greater than 0.")
        };
        self.value_error(code, field.clone(), problem, fix);
        None
    }

    fn string_list(&mut self, map: &Object, path: &str, key: &str) -> Vec<String> {
        let field = join(path, key);
        let items = self.list(map, path, key);
        self.strings_of(&items, &field)
    }

    fn strings_of(&mut self, items: &[&Value], field: &str) -> Vec<String> {
        let mut strings = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text.clone()),
                other => self.wrong_type(&index(field, position), other, Expected::String),
            }
        }
        strings
    }

    /// `env`/`headers` maps. Unquoted numbers and booleans are accepted and kept as written
    /// (`PORT: 8080`), since these values always end up as strings.
    fn string_map(&mut self, map: &Object, path: &str, key: &str) -> BTreeMap<String, String> {
        let field = join(path, key);
        let mut strings = BTreeMap::new();
        let Some(inner) = self.open_mapping(map, path, key) else {
            return strings;
        };
        for (name, value) in inner {
            match value {
                Value::String(text) => {
                    strings.insert(name.clone(), text.clone());
                }
                Value::Number(number) => {
                    strings.insert(name.clone(), number.to_string());
                }
                Value::Bool(flag) => {
                    strings.insert(name.clone(), flag.to_string());
                }
                other => self.wrong_type(&join(&field, name), other, Expected::String),
            }
        }
        strings
    }

    fn enum_value<E: SpecEnum>(&mut self, value: &Value, field: &str) -> Option<E> {
        let Value::String(text) = value else {
            self.schema_error(
                field.to_owned(),
                format!(
                    "{field} must be one of {}, but it is {}.",
                    quoted_list(E::VARIANTS),
                    describe(value)
                ),
                format!("Use one of {}.", quoted_list(E::VARIANTS)),
            );
            return None;
        };
        let parsed = E::from_name(text);
        if parsed.is_none() {
            let suggestion = match closest_match(text, E::VARIANTS) {
                Some(candidate) => format!("Did you mean '{candidate}'?"),
                None => format!("Use one of {}.", quoted_list(E::VARIANTS)),
            };
            self.schema_error(
                field.to_owned(),
                format!(
                    "{field} is '{text}', which is not one of {}.",
                    quoted_list(E::VARIANTS)
                ),
                suggestion,
            );
        }
        parsed
    }

    fn enumeration<E: SpecEnum>(&mut self, map: &Object, path: &str, key: &str) -> Option<E> {
        let value = get(map, key)?;
        self.enum_value(value, &join(path, key))
    }

    fn required_enumeration<E: SpecEnum + Default>(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
    ) -> E {
        if get(map, key).is_none() {
            self.schema_error(
                join(path, key),
                format!("{} is missing the required key '{key}'.", subject(path)),
                format!(
                    "Add '{key}' to {}: one of {}.",
                    container(path),
                    quoted_list(E::VARIANTS)
                ),
            );
            return E::default();
        }
        self.enumeration(map, path, key).unwrap_or_default()
    }

    /// A caller-supplied file path that kneo-serv 1.2 refuses with `..` or a leading `~`.
    fn confined_path(
        &mut self,
        map: &Object,
        path: &str,
        key: &str,
        label: &str,
    ) -> Option<String> {
        let text = self.string(map, path, key)?;
        if let Some(problem) = traversal_problem(&text) {
            self.schema_error(
                join(path, key),
                format!("{label} {problem}: {} is '{text}'.", join(path, key)),
                "Write the path without '..' or '~'; skill sources resolve inside the spec root."
                    .to_owned(),
            );
        }
        Some(text)
    }

    // ---- the document ------------------------------------------------------------------

    fn spec(&mut self, value: &Value, source_version: Option<String>) -> Spec {
        let Some(map) = self.mapping(value, "", &keys::SPEC) else {
            return Spec::default();
        };
        let agent = match get(map, "agent") {
            Some(agent) => self.agent(agent, "agent").unwrap_or_default(),
            None => {
                self.missing("", "agent", Expected::Mapping);
                Default::default()
            }
        };
        Spec {
            version: source_version,
            metadata: self
                .open_mapping(map, "", "metadata")
                .cloned()
                .unwrap_or_default(),
            agent,
            workflow: get(map, "workflow").and_then(|workflow| self.workflow(workflow, "workflow")),
            components: get(map, "components")
                .and_then(|components| self.components(components, "components"))
                .unwrap_or_default(),
            tools: self.named_specs(map, "", "tools", Self::tool),
            mcp_servers: self.named_specs(map, "", "mcp_servers", Self::mcp_server),
            skills: self.named_specs(map, "", "skills", Self::skill),
            policies: self
                .open_mapping(map, "", "policies")
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn components(&mut self, value: &Value, path: &str) -> Option<Components> {
        let map = self.mapping(value, path, &keys::COMPONENTS)?;
        Some(Components {
            agents: self.named_specs(map, path, "agents", Self::agent),
            workflows: self.named_specs(map, path, "workflows", Self::workflow),
            functions: self.named_specs(map, path, "functions", Self::function),
            humans: self.named_specs(map, path, "humans", Self::human),
        })
    }
}

#[cfg(test)]
mod tests;
