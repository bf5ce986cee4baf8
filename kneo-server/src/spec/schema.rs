//! Strict reading of an untyped spec document into the typed [`Spec`], with one diagnostic per
//! problem (unknown key, missing field, wrong type, bad enum value, out-of-range number) at the
//! exact path where it occurs.
//!
//! The reader is hand-written rather than a serde derive so that it keeps going after the first
//! problem and reports every one with a path and a fix. It distinguishes *structural* errors
//! (`E_SCHEMA`: the typed model would be wrong) from local value errors (a zero timeout, a
//! guardrail without `type`): after the latter the model is still sound enough for the semantic
//! checks to run, so the user sees everything in one pass.

use super::diagnostic::{Diagnostic, closest_match, index, join, quoted_list};
use super::model::{
    AgentSpec, CheckpointingDefaults, CommandSpec, Components, EdgeCondition, EdgeSpec,
    FunctionSpec, GuardrailAction, GuardrailConfig, GuardrailSpec, GuardrailType, Guardrails,
    HumanSpec, McpServerSpec, McpToolRef, MemorySpec, ModelSpec, Policies, PolicyDefaults,
    RuntimePreferences, SelectorSpec, SkillSpec, Spec, SpecEnum, StepSpec, StrategySpec,
    ToolInclude, ToolPermissions, ToolSelection, ToolSpec, TracingDefaults, WorkflowSpec,
};
use super::validate::codes;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

type Object = Map<String, Value>;

/// The largest number of seconds a timeout may name: kneo-serv reads timeouts as 64-bit
/// integers, so this is the largest it accepts, and every duration type here can hold it.
const MAX_SECONDS: f64 = i64::MAX as f64;

const SPEC_KEYS: &[&str] = &[
    "version",
    "agent",
    "workflow",
    "components",
    "tools",
    "mcp_servers",
    "skills",
    "policy_defaults",
];
const COMPONENT_KEYS: &[&str] = &["agents", "workflows", "functions", "humans"];
const AGENT_KEYS: &[&str] = &[
    "name",
    "description",
    "system_prompt",
    "model",
    "strategy",
    "runtime_preferences",
    "tools",
    "skills",
    "guardrails",
    "policies",
    "memory",
    "middleware",
    "as_agent",
];
const MODEL_KEYS: &[&str] = &["provider", "name", "temperature", "token_budget", "extra"];
const MODEL_EXTRA_STRING_KEYS: &[&str] = &["base_url", "api_key_ref", "api_key"];
const STRATEGY_KEYS: &[&str] = &["type", "max_iterations"];
const RUNTIME_KEYS: &[&str] = &["preferred_mode", "allowed_modes"];
const TOOL_INCLUDE_KEYS: &[&str] = &["include", "permissions"];
const PERMISSION_KEYS: &[&str] = &["allow", "deny", "network", "filesystem", "shell"];
const POLICY_KEYS: &[&str] = &["tool"];
const GUARDRAIL_STAGES: &[&str] = &["input", "output", "tool", "workflow"];
const GUARDRAIL_KEYS: &[&str] = &["id", "type", "action", "config"];
const GUARDRAIL_CONFIG_KEYS: &[&str] = &["patterns", "keywords"];
const TOOL_KEYS: &[&str] = &[
    "description",
    "parameters",
    "implementation",
    "mcp",
    "agent",
    "command",
    "env",
    "allowed_domains",
    "network",
    "shell",
    "filesystem_write",
];
const MCP_REF_KEYS: &[&str] = &["server", "name"];
const FUNCTION_KEYS: &[&str] = &["implementation", "command", "env"];
const HUMAN_KEYS: &[&str] = &[
    "description",
    "assignee",
    "timeout_seconds",
    "on_timeout",
    "request_type",
    "options",
    "default_option",
    "context",
    "response_role",
];
const MCP_SERVER_KEYS: &[&str] = &[
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "timeout",
    "sse_url",
    "message_url",
    "sse_read_timeout",
    "max_response_bytes",
    "verify",
    "ca_bundle",
    "client_cert",
    "client_key",
    "client_key_ref",
];
const SKILL_KEYS: &[&str] = &["source", "description"];
const POLICY_DEFAULTS_KEYS: &[&str] = &["checkpointing", "tracing"];
const CHECKPOINTING_KEYS: &[&str] = &["enabled", "mode"];
const TRACING_KEYS: &[&str] = &["enabled"];
const WORKFLOW_KEYS: &[&str] = &[
    "type",
    "name",
    "description",
    "steps",
    "start",
    "max_steps",
    "nodes",
    "edges",
    "participants",
    "selector",
    "rounds",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "kind",
    "ref",
    "on_error",
    "fallback_ref",
    "max_retries",
    "timeout_seconds",
    "disabled",
];
const EDGE_KEYS: &[&str] = &["from", "to", "condition"];
const CONDITION_KEYS: &[&str] = &["type", "value"];
const SELECTOR_KEYS: &[&str] = &["type", "sequence"];

/// What [`read_spec`] found.
pub(crate) struct SchemaOutcome {
    pub diagnostics: Vec<Diagnostic>,
    /// `None` when a structural (`E_SCHEMA`) error makes the typed model unreliable.
    pub spec: Option<Spec>,
}

/// Reads `value` (a parsed spec document) into the typed model.
pub(crate) fn read_spec(value: &Value) -> SchemaOutcome {
    let mut reader = Reader::default();
    let spec = reader.spec(value);
    SchemaOutcome {
        spec: (!reader.structural).then_some(spec),
        diagnostics: reader.diagnostics,
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
    ToolSelection,
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
            Self::ToolSelection => "a list of tool names or a mapping with 'include'",
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
            Self::ToolSelection => {
                "Write tools: [name, ...] or tools: {include: [name, ...], permissions: {...}}."
            }
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

#[derive(Default)]
struct Reader {
    diagnostics: Vec<Diagnostic>,
    structural: bool,
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

    fn range_error(&mut self, code: &str, path: String, message: String, fix: &str) {
        self.diagnostics
            .push(Diagnostic::error(code, path, message).suggest(fix));
    }

    // ---- primitive readers -------------------------------------------------------------

    /// Checks that `value` is a mapping with only `known` keys.
    fn mapping<'v>(&mut self, value: &'v Value, path: &str, known: &[&str]) -> Option<&'v Object> {
        let Value::Object(map) = value else {
            self.wrong_type(path, value, Expected::Mapping);
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.unknown_key(path, key, known);
            }
        }
        Some(map)
    }

    /// A mapping whose keys are free (named components, open settings blocks).
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

    /// An integer in `min..=max`; outside it, `code` (not `E_SCHEMA`) with `fix`.
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
        self.range_error(
            code,
            field.clone(),
            format!("{field} is {value}; {problem}."),
            fix,
        );
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
        self.range_error(code, field.clone(), problem, fix);
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

    // ---- spec sections -----------------------------------------------------------------

    fn spec(&mut self, value: &Value) -> Spec {
        let Some(map) = self.mapping(value, "", SPEC_KEYS) else {
            return Spec::default();
        };
        self.version(map);
        let agent = match get(map, "agent") {
            Some(agent) => self.agent(agent, "agent").unwrap_or_default(),
            None => {
                self.missing("", "agent", Expected::Mapping);
                AgentSpec::default()
            }
        };
        Spec {
            version: get(map, "version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            agent,
            workflow: get(map, "workflow").and_then(|workflow| self.workflow(workflow, "workflow")),
            components: get(map, "components")
                .and_then(|components| self.components(components, "components"))
                .unwrap_or_default(),
            tools: self.named_specs(map, "", "tools", Self::tool),
            mcp_servers: self.named_specs(map, "", "mcp_servers", Self::mcp_server),
            skills: self.named_specs(map, "", "skills", Self::skill),
            policy_defaults: get(map, "policy_defaults")
                .and_then(|defaults| self.policy_defaults(defaults)),
        }
    }

    /// `version` is checked here (not as `E_SCHEMA`) because an old version is still readable
    /// enough to report everything else.
    fn version(&mut self, map: &Object) {
        match get(map, "version") {
            None => self.diagnostics.push(
                Diagnostic::warning(
                    codes::W_SPEC_VERSION_MISSING,
                    "version",
                    "The spec has no 'version'; it is read as 'v1'.",
                )
                .suggest("Add 'version: v1' at the top of the spec."),
            ),
            Some(Value::String(version)) if version == "v1" => {}
            Some(other) => self.diagnostics.push(
                Diagnostic::error(
                    codes::E_SPEC_VERSION,
                    "version",
                    format!(
                        "version is {}, but this server supports only 'v1'.",
                        describe(other)
                    ),
                )
                .suggest(
                    "Set 'version: v1' (older specs can be converted with 'kneo spec migrate').",
                ),
            ),
        }
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

    fn components(&mut self, value: &Value, path: &str) -> Option<Components> {
        let map = self.mapping(value, path, COMPONENT_KEYS)?;
        Some(Components {
            agents: self.named_specs(map, path, "agents", Self::agent),
            workflows: self.named_specs(map, path, "workflows", Self::workflow),
            functions: self.named_specs(map, path, "functions", Self::function),
            humans: self.named_specs(map, path, "humans", Self::human),
        })
    }

    fn agent(&mut self, value: &Value, path: &str) -> Option<AgentSpec> {
        let map = self.mapping(value, path, AGENT_KEYS)?;
        Some(AgentSpec {
            name: self.required_string(map, path, "name"),
            description: self.string(map, path, "description"),
            system_prompt: self.string(map, path, "system_prompt"),
            model: get(map, "model").and_then(|model| self.model(model, &join(path, "model"))),
            strategy: get(map, "strategy")
                .and_then(|strategy| self.strategy(strategy, &join(path, "strategy"))),
            runtime_preferences: get(map, "runtime_preferences").and_then(|preferences| {
                self.runtime_preferences(preferences, &join(path, "runtime_preferences"))
            }),
            tools: get(map, "tools")
                .and_then(|tools| self.tool_selection(tools, &join(path, "tools"))),
            skills: self.string_list(map, path, "skills"),
            guardrails: get(map, "guardrails")
                .and_then(|guardrails| self.guardrails(guardrails, &join(path, "guardrails"))),
            policies: get(map, "policies")
                .and_then(|policies| self.policies(policies, &join(path, "policies"))),
            memory: get(map, "memory")
                .and_then(|memory| self.memory(memory, &join(path, "memory"))),
            middleware: get(map, "middleware").cloned(),
            as_agent: self.string(map, path, "as_agent"),
        })
    }

    fn model(&mut self, value: &Value, path: &str) -> Option<ModelSpec> {
        let map = self.mapping(value, path, MODEL_KEYS)?;
        let extra = self.open_mapping(map, path, "extra").cloned();
        if let Some(extra) = &extra {
            let extra_path = join(path, "extra");
            for key in MODEL_EXTRA_STRING_KEYS {
                self.string(extra, &extra_path, key);
            }
        }
        Some(ModelSpec {
            provider: self.required_string(map, path, "provider"),
            name: self.required_string(map, path, "name"),
            temperature: get(map, "temperature").cloned(),
            token_budget: self.positive_u64(
                map,
                path,
                "token_budget",
                codes::E_MODEL_TOKEN_BUDGET_INVALID,
                "Set a positive token budget, or remove it to use KNEO_SERV_TOKEN_BUDGET.",
            ),
            extra,
        })
    }

    fn strategy(&mut self, value: &Value, path: &str) -> Option<StrategySpec> {
        let map = self.mapping(value, path, STRATEGY_KEYS)?;
        Some(StrategySpec {
            strategy_type: self.enumeration(map, path, "type"),
            max_iterations: self.positive_u32(
                map,
                path,
                "max_iterations",
                codes::E_VALUE_RANGE,
                "Set max_iterations to at least 1 (examples use 4 to 12).",
            ),
        })
    }

    fn runtime_preferences(&mut self, value: &Value, path: &str) -> Option<RuntimePreferences> {
        let map = self.mapping(value, path, RUNTIME_KEYS)?;
        let modes_path = join(path, "allowed_modes");
        let allowed_modes = self
            .list(map, path, "allowed_modes")
            .into_iter()
            .enumerate()
            .filter_map(|(position, mode)| self.enum_value(mode, &index(&modes_path, position)))
            .collect();
        Some(RuntimePreferences {
            preferred_mode: self.enumeration(map, path, "preferred_mode"),
            allowed_modes,
        })
    }

    fn tool_selection(&mut self, value: &Value, path: &str) -> Option<ToolSelection> {
        match value {
            Value::Array(items) => {
                let items: Vec<&Value> = items.iter().collect();
                Some(ToolSelection::Short(self.strings_of(&items, path)))
            }
            Value::Object(_) => {
                let map = self.mapping(value, path, TOOL_INCLUDE_KEYS)?;
                Some(ToolSelection::Long(ToolInclude {
                    include: self.string_list(map, path, "include"),
                    permissions: get(map, "permissions").and_then(|permissions| {
                        self.permissions(permissions, &join(path, "permissions"))
                    }),
                }))
            }
            other => {
                self.wrong_type(path, other, Expected::ToolSelection);
                None
            }
        }
    }

    fn permissions(&mut self, value: &Value, path: &str) -> Option<ToolPermissions> {
        let map = self.mapping(value, path, PERMISSION_KEYS)?;
        Some(ToolPermissions {
            allow: self.string_list(map, path, "allow"),
            deny: self.string_list(map, path, "deny"),
            network: self.boolean(map, path, "network"),
            filesystem: self.boolean(map, path, "filesystem"),
            shell: self.boolean(map, path, "shell"),
        })
    }

    fn policies(&mut self, value: &Value, path: &str) -> Option<Policies> {
        let map = self.mapping(value, path, POLICY_KEYS)?;
        Some(Policies {
            tool: get(map, "tool").and_then(|tool| self.permissions(tool, &join(path, "tool"))),
        })
    }

    fn guardrails(&mut self, value: &Value, path: &str) -> Option<Guardrails> {
        let map = self.mapping(value, path, GUARDRAIL_STAGES)?;
        let stage = |reader: &mut Self, key: &str| -> Vec<GuardrailSpec> {
            let stage_path = join(path, key);
            reader
                .list(map, path, key)
                .into_iter()
                .enumerate()
                .filter_map(|(position, item)| {
                    reader.guardrail(item, &index(&stage_path, position), key)
                })
                .collect()
        };
        Some(Guardrails {
            input: stage(self, "input"),
            output: stage(self, "output"),
            tool: stage(self, "tool"),
            workflow: stage(self, "workflow"),
        })
    }

    fn guardrail(&mut self, value: &Value, path: &str, stage: &str) -> Option<GuardrailSpec> {
        let map = self.mapping(value, path, GUARDRAIL_KEYS)?;
        let missing: Vec<&str> = ["id", "type"]
            .into_iter()
            .filter(|key| get(map, key).is_none())
            .collect();
        let config = match get(map, "config") {
            Some(config) => self
                .mapping(config, &join(path, "config"), GUARDRAIL_CONFIG_KEYS)
                .map(|config_map| {
                    let config_path = join(path, "config");
                    GuardrailConfig {
                        patterns: self.string_list(config_map, &config_path, "patterns"),
                        keywords: self.string_list(config_map, &config_path, "keywords"),
                    }
                }),
            None => Some(Default::default()),
        };
        let action = self.enumeration(map, path, "action").unwrap_or_default();
        if !missing.is_empty() {
            // Upstream reports these with their own code rather than as a schema error.
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_GUARDRAIL_FIELDS,
                    path,
                    format!("Guardrail {path} is missing {}.", quoted_list(&missing)),
                )
                .suggest("Give every guardrail an 'id' and a 'type' ('regex' or 'keyword')."),
            );
            return None;
        }
        let id = self.required_string(map, path, "id");
        let guardrail_type = self.enumeration(map, path, "type")?;
        let guardrail = GuardrailSpec {
            id,
            guardrail_type,
            action,
            config: config.unwrap_or_default(),
        };
        self.guardrail_semantics(&guardrail, path, stage);
        Some(guardrail)
    }

    /// Checks local to one guardrail, done here so paths keep the item's original index.
    fn guardrail_semantics(&mut self, guardrail: &GuardrailSpec, path: &str, stage: &str) {
        let (needed, present) = match guardrail.guardrail_type {
            GuardrailType::Regex => ("patterns", !guardrail.config.patterns.is_empty()),
            GuardrailType::Keyword => ("keywords", !guardrail.config.keywords.is_empty()),
        };
        if !present {
            let kind = guardrail.guardrail_type.as_str();
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_GUARDRAIL_CONFIG,
                    join(path, "config"),
                    format!(
                        "Guardrail '{}' has type '{kind}' but no config.{needed}.",
                        guardrail.id
                    ),
                )
                .suggest(format!("Add config: {{{needed}: [...]}} to the guardrail.")),
            );
        }
        let honoured_at_output = [
            GuardrailAction::Warn,
            GuardrailAction::Block,
            GuardrailAction::Revise,
        ];
        if stage == "output" && !honoured_at_output.contains(&guardrail.action) {
            self.diagnostics.push(
                Diagnostic::warning(
                    codes::W_GUARDRAIL_ACTION_IGNORED,
                    join(path, "action"),
                    format!(
                        "Guardrail '{}' uses action '{}', which the output stage does not honour.",
                        guardrail.id,
                        guardrail.action.as_str()
                    ),
                )
                .suggest("Use 'warn', 'block' or 'revise' at the output stage."),
            );
        }
    }

    fn memory(&mut self, value: &Value, path: &str) -> Option<MemorySpec> {
        let Value::Object(map) = value else {
            self.wrong_type(path, value, Expected::Mapping);
            return None;
        };
        let Some(policy) = get(map, "policy") else {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_MEMORY_POLICY_REQUIRED,
                    path,
                    format!("{path} has no 'policy'; memory must declare how it is retained."),
                )
                .suggest(format!(
                    "Add 'policy' to {path}, or remove the memory block."
                )),
            );
            return None;
        };
        let mut settings = map.clone();
        settings.remove("policy");
        Some(MemorySpec {
            policy: policy.clone(),
            settings,
        })
    }

    fn command(&mut self, map: &Object, path: &str) -> Option<CommandSpec> {
        let field = join(path, "command");
        match get(map, "command")? {
            Value::String(line) => Some(CommandSpec::Line(line.clone())),
            Value::Array(items) => {
                let items: Vec<&Value> = items.iter().collect();
                Some(CommandSpec::Argv(self.strings_of(&items, &field)))
            }
            other => {
                self.wrong_type(&field, other, Expected::Command);
                None
            }
        }
    }

    fn tool(&mut self, value: &Value, path: &str) -> Option<ToolSpec> {
        let map = self.mapping(value, path, TOOL_KEYS)?;
        Some(ToolSpec {
            description: self.string(map, path, "description"),
            parameters: self.open_mapping(map, path, "parameters").cloned(),
            implementation: self.string(map, path, "implementation"),
            mcp: get(map, "mcp").and_then(|mcp| self.mcp_ref(mcp, &join(path, "mcp"))),
            agent: self.string(map, path, "agent"),
            command: self.command(map, path),
            env: self.string_map(map, path, "env"),
            allowed_domains: self.string_list(map, path, "allowed_domains"),
            network: self.boolean(map, path, "network").unwrap_or(false),
            shell: self.boolean(map, path, "shell").unwrap_or(false),
            filesystem_write: self.boolean(map, path, "filesystem_write").unwrap_or(false),
        })
    }

    fn mcp_ref(&mut self, value: &Value, path: &str) -> Option<McpToolRef> {
        let map = self.mapping(value, path, MCP_REF_KEYS)?;
        Some(McpToolRef {
            server: self.required_string(map, path, "server"),
            name: self.string(map, path, "name"),
        })
    }

    fn function(&mut self, value: &Value, path: &str) -> Option<FunctionSpec> {
        let map = self.mapping(value, path, FUNCTION_KEYS)?;
        Some(FunctionSpec {
            implementation: self.string(map, path, "implementation"),
            command: self.command(map, path),
            env: self.string_map(map, path, "env"),
        })
    }

    fn human(&mut self, value: &Value, path: &str) -> Option<HumanSpec> {
        let map = self.mapping(value, path, HUMAN_KEYS)?;
        Some(HumanSpec {
            description: self.required_string(map, path, "description"),
            assignee: self.string(map, path, "assignee"),
            timeout_seconds: self.positive_u64(
                map,
                path,
                "timeout_seconds",
                codes::E_HUMAN_TIMEOUT_INVALID,
                "Set timeout_seconds to a positive number of seconds, or remove it for no deadline.",
            ),
            on_timeout: self.enumeration(map, path, "on_timeout").unwrap_or_default(),
            request_type: self.enumeration(map, path, "request_type").unwrap_or_default(),
            options: self.string_list(map, path, "options"),
            default_option: self.string(map, path, "default_option"),
            context: self.open_mapping(map, path, "context").cloned().unwrap_or_default(),
            response_role: self.string(map, path, "response_role"),
        })
    }

    fn mcp_server(&mut self, value: &Value, path: &str) -> Option<McpServerSpec> {
        let map = self.mapping(value, path, MCP_SERVER_KEYS)?;
        let timeout_fix = "Use a positive number of seconds, or remove it for the default.";
        Some(McpServerSpec {
            transport: self.required_enumeration(map, path, "transport"),
            command: self.string(map, path, "command"),
            args: self.string_list(map, path, "args"),
            env: self.string_map(map, path, "env"),
            cwd: self.string(map, path, "cwd"),
            url: self.string(map, path, "url"),
            headers: self.string_map(map, path, "headers"),
            timeout: self.positive_number(map, path, "timeout", codes::E_VALUE_RANGE, timeout_fix),
            sse_url: self.string(map, path, "sse_url"),
            message_url: self.string(map, path, "message_url"),
            sse_read_timeout: self.positive_number(
                map,
                path,
                "sse_read_timeout",
                codes::E_VALUE_RANGE,
                timeout_fix,
            ),
            max_response_bytes: self.positive_u64(
                map,
                path,
                "max_response_bytes",
                codes::E_VALUE_RANGE,
                "Use a positive byte count such as 1048576.",
            ),
            verify: self.boolean(map, path, "verify"),
            ca_bundle: self.string(map, path, "ca_bundle"),
            client_cert: self.string(map, path, "client_cert"),
            client_key: self.string(map, path, "client_key"),
            client_key_ref: self.string(map, path, "client_key_ref"),
        })
    }

    fn skill(&mut self, value: &Value, path: &str) -> Option<SkillSpec> {
        let map = self.mapping(value, path, SKILL_KEYS)?;
        Some(SkillSpec {
            source: self.required_string(map, path, "source"),
            description: self.string(map, path, "description"),
        })
    }

    fn policy_defaults(&mut self, value: &Value) -> Option<PolicyDefaults> {
        let path = "policy_defaults";
        let map = self.mapping(value, path, POLICY_DEFAULTS_KEYS)?;
        let checkpointing_path = join(path, "checkpointing");
        let tracing_path = join(path, "tracing");
        Some(PolicyDefaults {
            checkpointing: get(map, "checkpointing").and_then(|checkpointing| {
                let inner = self.mapping(checkpointing, &checkpointing_path, CHECKPOINTING_KEYS)?;
                Some(CheckpointingDefaults {
                    enabled: self.boolean(inner, &checkpointing_path, "enabled"),
                    mode: self.enumeration(inner, &checkpointing_path, "mode"),
                })
            }),
            tracing: get(map, "tracing").and_then(|tracing| {
                let inner = self.mapping(tracing, &tracing_path, TRACING_KEYS)?;
                Some(TracingDefaults {
                    enabled: self.boolean(inner, &tracing_path, "enabled"),
                })
            }),
        })
    }

    fn workflow(&mut self, value: &Value, path: &str) -> Option<WorkflowSpec> {
        let map = self.mapping(value, path, WORKFLOW_KEYS)?;
        let steps_path = join(path, "steps");
        let participants_path = join(path, "participants");
        let edges_path = join(path, "edges");
        let steps = self
            .list(map, path, "steps")
            .into_iter()
            .enumerate()
            .filter_map(|(position, step)| self.step(step, &index(&steps_path, position)))
            .collect();
        let participants = self
            .list(map, path, "participants")
            .into_iter()
            .enumerate()
            .filter_map(|(position, step)| self.step(step, &index(&participants_path, position)))
            .collect();
        let edges = self
            .list(map, path, "edges")
            .into_iter()
            .enumerate()
            .filter_map(|(position, edge)| self.edge(edge, &index(&edges_path, position)))
            .collect();
        Some(WorkflowSpec {
            workflow_type: self.required_enumeration(map, path, "type"),
            name: self.string(map, path, "name"),
            description: self.string(map, path, "description"),
            steps,
            start: self.string(map, path, "start"),
            max_steps: self.positive_u32(
                map,
                path,
                "max_steps",
                codes::E_GRAPH_MAX_STEPS_INVALID,
                "Set max_steps to the most node executions a run may take (at least 1).",
            ),
            nodes: self.named_specs(map, path, "nodes", Self::step),
            edges,
            participants,
            selector: get(map, "selector")
                .and_then(|selector| self.selector(selector, &join(path, "selector"))),
            rounds: self.positive_u32(
                map,
                path,
                "rounds",
                codes::E_WORKFLOW_ROUNDS_INVALID,
                "Set rounds to 1 or more; each round gives every participant one turn.",
            ),
        })
    }

    fn step(&mut self, value: &Value, path: &str) -> Option<StepSpec> {
        let map = self.mapping(value, path, STEP_KEYS)?;
        Some(StepSpec {
            id: self.required_string(map, path, "id"),
            kind: self.required_enumeration(map, path, "kind"),
            reference: self.required_string(map, path, "ref"),
            on_error: self.enumeration(map, path, "on_error").unwrap_or_default(),
            fallback_ref: self.string(map, path, "fallback_ref"),
            max_retries: self
                .integer_in_range(
                    map,
                    path,
                    "max_retries",
                    (0, i128::from(u32::MAX)),
                    codes::E_STEP_MAX_RETRIES_INVALID,
                    "Set max_retries to 0 or more.",
                )
                .and_then(|value| u32::try_from(value).ok()),
            timeout_seconds: self.positive_number(
                map,
                path,
                "timeout_seconds",
                codes::E_STEP_TIMEOUT_INVALID,
                "Set timeout_seconds to a positive number of seconds, or remove it for no per-attempt timeout.",
            ),
            disabled: self.boolean(map, path, "disabled").unwrap_or(false),
        })
    }

    fn edge(&mut self, value: &Value, path: &str) -> Option<EdgeSpec> {
        let map = self.mapping(value, path, EDGE_KEYS)?;
        let condition_path = join(path, "condition");
        Some(EdgeSpec {
            from: self.required_string(map, path, "from"),
            to: self.required_string(map, path, "to"),
            condition: get(map, "condition").and_then(|condition| {
                let inner = self.mapping(condition, &condition_path, CONDITION_KEYS)?;
                Some(EdgeCondition {
                    condition_type: self.required_enumeration(inner, &condition_path, "type"),
                    value: self.required_string(inner, &condition_path, "value"),
                })
            }),
        })
    }

    fn selector(&mut self, value: &Value, path: &str) -> Option<SelectorSpec> {
        let map = self.mapping(value, path, SELECTOR_KEYS)?;
        Some(SelectorSpec {
            selector_type: self.required_enumeration(map, path, "type"),
            sequence: self.string_list(map, path, "sequence"),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> SchemaOutcome {
        read_spec(&value)
    }

    fn only(outcome: &SchemaOutcome) -> &Diagnostic {
        assert_eq!(outcome.diagnostics.len(), 1, "{:#?}", outcome.diagnostics);
        &outcome.diagnostics[0]
    }

    #[test]
    fn minimal_spec_reads_cleanly() {
        let outcome = read(json!({"version": "v1", "agent": {"name": "a"}}));
        assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
        assert_eq!(outcome.spec.unwrap().agent.name, "a");
    }

    #[test]
    fn unknown_key_names_the_path_and_the_closest_key() {
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a", "modle": {"provider": "dummy", "name": "m"}}}),
        );
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.code, "E_SCHEMA");
        assert_eq!(diagnostic.path, "agent.modle");
        assert_eq!(diagnostic.message, "Unknown key 'modle' in agent.");
        assert_eq!(
            diagnostic.suggestion.as_deref(),
            Some("Did you mean 'model'?")
        );
        assert!(outcome.spec.is_none());
    }

    #[test]
    fn unknown_key_without_a_close_match_lists_the_allowed_keys() {
        let outcome = read(json!({"version": "v1", "agent": {"name": "a"}, "zzzzzzzzzz": 1}));
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.path, "zzzzzzzzzz");
        assert_eq!(diagnostic.message, "Unknown key 'zzzzzzzzzz' in the spec.");
        assert!(
            diagnostic
                .suggestion
                .as_deref()
                .unwrap()
                .contains("'policy_defaults'")
        );
    }

    #[test]
    fn unknown_keys_are_found_at_every_level() {
        let outcome = read(json!({
            "version": "v1",
            "agent": {"name": "a", "tools": {"include": [], "permisions": {}}},
            "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent", "ref": "a", "retries": 1}]},
            "components": {"humans": {"h": {"description": "d", "optoins": []}}},
            "tools": {"t": {"implementation": "x", "mcp": {"server": "s", "tool": "y"}}},
        }));
        let paths: Vec<&str> = outcome
            .diagnostics
            .iter()
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(
            paths,
            vec![
                "agent.tools.permisions",
                "workflow.steps[0].retries",
                "components.humans.h.optoins",
                "tools.t.mcp.tool"
            ]
        );
        assert!(outcome.diagnostics.iter().all(|d| d.code == "E_SCHEMA"));
    }

    #[test]
    fn missing_required_fields_are_reported() {
        let outcome = read(json!({"version": "v1"}));
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.path, "agent");
        assert_eq!(
            diagnostic.message,
            "The spec is missing the required key 'agent'."
        );

        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent"}]}}),
        );
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.path, "workflow.steps[0].ref");
        assert_eq!(
            diagnostic.message,
            "workflow.steps[0] is missing the required key 'ref'."
        );
    }

    #[test]
    fn wrong_types_are_reported_with_what_was_found() {
        let outcome = read(json!({"version": "v1", "agent": {"name": 3}}));
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.path, "agent.name");
        assert_eq!(
            diagnostic.message,
            "agent.name must be a string, but it is the number 3."
        );
    }

    #[test]
    fn bad_enum_values_suggest_the_closest_spelling() {
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "sequental", "steps": []}}),
        );
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.path, "workflow.type");
        assert!(
            diagnostic
                .message
                .starts_with("workflow.type is 'sequental', which is not one of 'sequential'")
        );
        assert_eq!(
            diagnostic.suggestion.as_deref(),
            Some("Did you mean 'sequential'?")
        );
    }

    #[test]
    fn version_rules() {
        let outcome = read(json!({"agent": {"name": "a"}}));
        let diagnostic = only(&outcome);
        assert_eq!(
            (diagnostic.code.as_str(), diagnostic.path.as_str()),
            ("W_SPEC_VERSION_MISSING", "version")
        );
        assert!(outcome.spec.is_some());

        let outcome = read(json!({"version": "v2", "agent": {"name": "a"}}));
        let diagnostic = only(&outcome);
        assert_eq!(
            (diagnostic.code.as_str(), diagnostic.is_error()),
            ("E_SPEC_VERSION", true)
        );
    }

    #[test]
    fn nulls_read_as_absent_for_optional_fields() {
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a", "description": null, "tools": null}}),
        );
        assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    }

    #[test]
    fn range_errors_are_not_structural() {
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a", "model": {"provider": "dummy", "name": "m", "token_budget": 0}}}),
        );
        let diagnostic = only(&outcome);
        assert_eq!(diagnostic.code, "E_MODEL_TOKEN_BUDGET_INVALID");
        assert_eq!(diagnostic.path, "agent.model.token_budget");
        assert_eq!(
            diagnostic.message,
            "agent.model.token_budget is 0; it must be greater than 0."
        );
        assert!(outcome.spec.is_some());
    }

    #[test]
    fn both_tool_selection_forms_read() {
        let outcome = read(json!({"version": "v1", "agent": {"name": "a", "tools": ["x", "y"]}}));
        assert_eq!(outcome.spec.unwrap().agent.tool_names(), ["x", "y"]);
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a", "tools": {"include": ["x"], "permissions": {"network": false}}}}),
        );
        let spec = outcome.spec.unwrap();
        assert_eq!(spec.agent.tool_names(), ["x"]);
        assert_eq!(
            spec.agent.tools.unwrap().permissions().unwrap().network,
            Some(false)
        );
        let outcome = read(json!({"version": "v1", "agent": {"name": "a", "tools": "x"}}));
        assert_eq!(only(&outcome).path, "agent.tools");
    }

    #[test]
    fn group_chat_alias_is_accepted() {
        let outcome = read(
            json!({"version": "v1", "agent": {"name": "a"}, "workflow": {"type": "group_chat", "rounds": 2, "participants": []}}),
        );
        assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    }
}
