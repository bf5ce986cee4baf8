//! Reading agents: model, strategy, runtime preferences, tool selection and permissions,
//! guardrails, memory and defaults.

use super::{Expected, Object, Reader, get};
use crate::spec::diagnostic::{Diagnostic, index, join, quoted_list};
use crate::spec::keys;
use crate::spec::model::{
    AgentDefaults, AgentSpec, ComponentRef, GuardrailAction, GuardrailConfig, GuardrailSpec,
    GuardrailStage, GuardrailType, Guardrails, MemoryPolicy, MemorySpec, ModelSpec, Policies,
    RuntimePreferences, SpecEnum, StrategySpec, ToolPermissions, ToolSelection,
};
use crate::spec::validate::codes;
use serde_json::Value;

/// The only guardrail `mode` kneo-serv 1.2 attaches.
const GUARDRAIL_MODE: &str = "middleware";

impl Reader {
    pub(super) fn agent(&mut self, value: &Value, path: &str) -> Option<AgentSpec> {
        let map = self.mapping(value, path, &keys::AGENT)?;
        let name = self.required_string(map, path, "name");
        Some(AgentSpec {
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
            guardrails: get(map, "guardrails").and_then(|guardrails| {
                self.guardrails(guardrails, &join(path, "guardrails"), &name)
            }),
            policies: get(map, "policies")
                .and_then(|policies| self.policies(policies, &join(path, "policies"))),
            memory: get(map, "memory")
                .and_then(|memory| self.memory(memory, &join(path, "memory"), &name)),
            history: self.open_mapping(map, path, "history").cloned(),
            middleware: self.string_list(map, path, "middleware"),
            defaults: get(map, "defaults")
                .and_then(|defaults| self.defaults(defaults, &join(path, "defaults")))
                .unwrap_or_default(),
            as_agent: self.string(map, path, "as_agent"),
            name,
        })
    }

    fn defaults(&mut self, value: &Value, path: &str) -> Option<AgentDefaults> {
        let map = self.open_block(
            value,
            path,
            &keys::AGENT_DEFAULTS,
            &keys::AGENT_DEFAULTS_OTHER,
        )?;
        let mut other = map.clone();
        other.remove("append_mode");
        Some(AgentDefaults {
            append_mode: self.enumeration(map, path, "append_mode"),
            other,
        })
    }

    fn model(&mut self, value: &Value, path: &str) -> Option<ModelSpec> {
        let map = self.mapping(value, path, &keys::MODEL)?;
        let extra = match get(map, "extra") {
            Some(extra) => {
                let extra_path = join(path, "extra");
                let inner = self.open_block(
                    extra,
                    &extra_path,
                    &keys::MODEL_EXTRA,
                    &keys::MODEL_EXTRA_OTHER,
                );
                if let Some(inner) = inner {
                    for known in keys::MODEL_EXTRA.names() {
                        self.string(inner, &extra_path, known);
                    }
                }
                inner.cloned()
            }
            None => None,
        };
        Some(ModelSpec {
            provider: self.required_string(map, path, "provider"),
            name: self.required_string(map, path, "name"),
            temperature: get(map, "temperature")
                .and_then(|temperature| self.temperature(temperature, &join(path, "temperature"))),
            max_tokens: self.positive_u64(
                map,
                path,
                "max_tokens",
                codes::E_VALUE_RANGE,
                "Set max_tokens to the most output tokens one model call may produce, or remove it.",
            ),
            token_budget: self.positive_u64(
                map,
                path,
                "token_budget",
                codes::E_SCHEMA,
                "Set a positive token budget, or remove it to use KNEO_SERV_TOKEN_BUDGET.",
            ),
            timeout_seconds: self.positive_u64(
                map,
                path,
                "timeout_seconds",
                codes::E_VALUE_RANGE,
                "Set timeout_seconds to the whole seconds one model call may take, or remove it.",
            ),
            extra,
        })
    }

    /// A temperature as kneo-serv reads one: a number, a numeric string or a boolean.
    fn temperature(&mut self, value: &Value, path: &str) -> Option<Value> {
        let number = match value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            Value::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
            _ => None,
        };
        match number.filter(|number| number.is_finite()) {
            Some(number) => Some(serde_json::json!(number)),
            None => {
                self.wrong_type(path, value, Expected::Number);
                None
            }
        }
    }

    fn strategy(&mut self, value: &Value, path: &str) -> Option<StrategySpec> {
        let map = self.mapping(value, path, &keys::STRATEGY)?;
        Some(StrategySpec {
            strategy_type: self.required_enumeration(map, path, "type"),
            max_iterations: self.positive_u32(
                map,
                path,
                "max_iterations",
                codes::E_VALUE_RANGE,
                "Set max_iterations to at least 1 (the default is 10).",
            ),
            stop_on_tool_error: self.boolean(map, path, "stop_on_tool_error"),
            parallel_tool_calls: self.boolean(map, path, "parallel_tool_calls"),
        })
    }

    fn runtime_preferences(&mut self, value: &Value, path: &str) -> Option<RuntimePreferences> {
        let map = self.mapping(value, path, &keys::RUNTIME_PREFERENCES)?;
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
            fallback_mode: self.enumeration(map, path, "fallback_mode"),
            native_provider: self.string(map, path, "native_provider"),
            adapter_ref: self.string(map, path, "adapter_ref"),
            bridge_provider: self.string(map, path, "bridge_provider"),
        })
    }

    fn tool_selection(&mut self, value: &Value, path: &str) -> Option<ToolSelection> {
        if !value.is_object() {
            self.schema_error(
                path.to_owned(),
                format!(
                    "{path} must be a list of tool names or a mapping with 'include', but it is {}.",
                    super::describe(value)
                ),
                "Write tools: [name, ...] or tools: {include: [name, ...], permissions: {...}}."
                    .to_owned(),
            );
            return None;
        }
        let map = self.mapping(value, path, &keys::TOOL_SELECTION)?;
        Some(ToolSelection {
            include: self.string_list(map, path, "include"),
            exclude: self.string_list(map, path, "exclude"),
            permissions: get(map, "permissions")
                .and_then(|permissions| self.permissions(permissions, &join(path, "permissions"))),
        })
    }

    fn permissions(&mut self, value: &Value, path: &str) -> Option<ToolPermissions> {
        let map = self.mapping(value, path, &keys::PERMISSIONS)?;
        // kneo's older spellings (`network`, `filesystem`, `shell`) fill the portable flags.
        let network = self.boolean(map, path, "network");
        let filesystem = self.boolean(map, path, "filesystem");
        let shell = self.boolean(map, path, "shell");
        let allow_network = self.permission_flag(map, path, "allow_network", ("network", network));
        let allow_filesystem_read = self.permission_flag(
            map,
            path,
            "allow_filesystem_read",
            ("filesystem", filesystem),
        );
        let allow_filesystem_write = self.permission_flag(
            map,
            path,
            "allow_filesystem_write",
            ("filesystem", filesystem),
        );
        let allow_shell = self.permission_flag(map, path, "allow_shell", ("shell", shell));
        Some(ToolPermissions {
            allow_network,
            allow_filesystem_read,
            allow_filesystem_write,
            allow_shell,
            allowed_domains: self.string_list(map, path, "allowed_domains"),
            denied_domains: self.string_list(map, path, "denied_domains"),
            allow: self.string_list(map, path, "allow"),
            deny: self.string_list(map, path, "deny"),
        })
    }

    /// A portable permission flag, or kneo's spelling of it; both and different is an error.
    fn permission_flag(
        &mut self,
        map: &Object,
        path: &str,
        portable: &str,
        (kneo, legacy): (&str, Option<bool>),
    ) -> Option<bool> {
        let written = self.boolean(map, path, portable);
        match (written, legacy) {
            (Some(a), Some(b)) if a != b => {
                self.schema_error(
                    join(path, kneo),
                    format!(
                        "{path}.{kneo} is {b} but {path}.{portable} is {a}; they name the same permission."
                    ),
                    format!("Keep only {portable}."),
                );
                written
            }
            (Some(a), _) => Some(a),
            (None, legacy) => legacy,
        }
    }

    fn policies(&mut self, value: &Value, path: &str) -> Option<Policies> {
        let map = self.mapping(value, path, &keys::POLICIES)?;
        Some(Policies {
            tool: get(map, "tool").and_then(|tool| self.permissions(tool, &join(path, "tool"))),
        })
    }

    fn guardrails(&mut self, value: &Value, path: &str, agent: &str) -> Option<Guardrails> {
        let map = self.mapping(value, path, &keys::GUARDRAILS)?;
        let stage = |reader: &mut Self, stage: GuardrailStage| -> Vec<GuardrailSpec> {
            let key = stage.as_str();
            let stage_path = join(path, key);
            reader
                .list(map, path, key)
                .into_iter()
                .enumerate()
                .filter_map(|(position, item)| {
                    let item_path = index(&stage_path, position);
                    let read = reader.guardrail(item, &item_path, stage, agent, position);
                    reader.guardrails_incomplete |= read.is_none();
                    read
                })
                .collect()
        };
        Some(Guardrails {
            input: stage(self, GuardrailStage::Input),
            output: stage(self, GuardrailStage::Output),
            tool: stage(self, GuardrailStage::Tool),
            workflow: stage(self, GuardrailStage::Workflow),
        })
    }

    /// One guardrail item, with kneo-serv's codes for its own rules: `E_GUARDRAIL_FIELDS` (no
    /// `id` or `type`), `E_GUARDRAIL_MODE_UNSUPPORTED`, `E_GUARDRAIL_ACTION_UNSUPPORTED`.
    fn guardrail(
        &mut self,
        value: &Value,
        path: &str,
        stage: GuardrailStage,
        agent: &str,
        position: usize,
    ) -> Option<GuardrailSpec> {
        let name = format!("Agent '{agent}' guardrail {}[{position}]", stage.as_str());
        if !value.is_object() {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_GUARDRAIL_FIELDS,
                    path,
                    format!("{name} must be a mapping with `id` and `type`."),
                )
                .suggest("Every guardrail item needs `id` and `type`."),
            );
            return None;
        }
        let map = self.mapping(value, path, &keys::GUARDRAIL)?;
        let mut complete = true;
        for required in ["id", "type"] {
            let present = match get(map, required) {
                Some(Value::String(text)) => !text.is_empty(),
                Some(_) => true,
                None => false,
            };
            if !present {
                complete = false;
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::E_GUARDRAIL_FIELDS,
                        join(path, required),
                        format!("{name} is missing `{required}`."),
                    )
                    .suggest("Every guardrail item needs `id` and `type`."),
                );
            }
        }
        if let Some(mode) = self.string(map, path, "mode")
            && mode != GUARDRAIL_MODE
        {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::E_GUARDRAIL_MODE_UNSUPPORTED,
                    join(path, "mode"),
                    format!(
                        "{name} declares mode '{mode}', which the runtime does not attach (only `middleware` is wired)."
                    ),
                )
                .suggest("Remove `mode` (defaults to `middleware`) or set it to `middleware`."),
            );
        }
        let action = self.guardrail_action(map, path, stage, &name);
        let guardrail_type = match get(map, "type") {
            Some(Value::String(text)) if !text.is_empty() => {
                let parsed = GuardrailType::from_name(text);
                if parsed.is_none() {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::E_GUARDRAIL_TYPE_UNSUPPORTED,
                            join(path, "type"),
                            format!("{name} has type '{text}', which is not a guardrail type."),
                        )
                        .suggest(format!(
                            "Use one of {}.",
                            quoted_list(GuardrailType::VARIANTS)
                        )),
                    );
                }
                parsed
            }
            Some(other) if !other.is_string() => {
                self.wrong_type(&join(path, "type"), other, Expected::String);
                None
            }
            _ => None,
        };
        let config = match get(map, "config") {
            Some(config) => {
                let config_path = join(path, "config");
                self.mapping(config, &config_path, &keys::GUARDRAIL_CONFIG)
                    .map(|config_map| GuardrailConfig {
                        patterns: self.string_list(config_map, &config_path, "patterns"),
                        keywords: self.string_list(config_map, &config_path, "keywords"),
                    })
                    .unwrap_or_default()
            }
            None => GuardrailConfig::default(),
        };
        let id = self.string(map, path, "id").unwrap_or_default();
        let reference = self.string(map, path, "ref");
        let target = self.string(map, path, "target");
        if !complete {
            return None;
        }
        Some(GuardrailSpec {
            id,
            guardrail_type: guardrail_type?,
            action: action?,
            reference,
            target,
            config,
        })
    }

    /// `action` (default `block`), refused where the stage does not honour it.
    fn guardrail_action(
        &mut self,
        map: &Object,
        path: &str,
        stage: GuardrailStage,
        name: &str,
    ) -> Option<GuardrailAction> {
        let Some(text) = self.string(map, path, "action") else {
            return get(map, "action")
                .is_none()
                .then_some(GuardrailAction::Block);
        };
        let action = GuardrailAction::from_name(&text);
        if let Some(action) = action
            && stage.honours(action)
        {
            return Some(action);
        }
        let mut valid: Vec<&str> = GuardrailAction::VARIANTS
            .iter()
            .copied()
            .filter(|candidate| {
                GuardrailAction::from_name(candidate).is_some_and(|action| stage.honours(action))
            })
            .collect();
        valid.sort_unstable();
        let stage = stage.as_str();
        self.diagnostics.push(
            Diagnostic::error(
                codes::E_GUARDRAIL_ACTION_UNSUPPORTED,
                join(path, "action"),
                format!(
                    "{name} declares action '{text}', which the '{stage}' stage does not honor (it would crash or silently degrade at runtime)."
                ),
            )
            .suggest(format!("Use one of {} on the '{stage}' stage.", quoted_list(&valid))),
        );
        None
    }

    fn memory(&mut self, value: &Value, path: &str, agent: &str) -> Option<MemorySpec> {
        let map = self.mapping(value, path, &keys::MEMORY)?;
        if map.values().all(Value::is_null) {
            // `memory: {}` declares nothing, as in kneo-serv.
            return None;
        }
        let summarizer = get(map, "summarizer")
            .and_then(|reference| self.component_ref(reference, &join(path, "summarizer")));
        let retriever = get(map, "retriever")
            .and_then(|reference| self.component_ref(reference, &join(path, "retriever")));
        let max_messages = self.count(
            map,
            path,
            "max_messages",
            "Set max_messages to how many recent messages the model sees (the default is 20).",
        );
        let preserve_system_messages = self.boolean(map, path, "preserve_system_messages");
        let top_k = self.count(
            map,
            path,
            "top_k",
            "Set top_k to how many notes the retriever returns (the default is 5).",
        );
        let policy = match get(map, "policy") {
            None => {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::E_MEMORY_POLICY_REQUIRED,
                        join(path, "policy"),
                        format!("Agent '{agent}' declares memory without `policy`."),
                    )
                    .suggest("Set memory.policy (e.g. summary, retrieval)."),
                );
                return None;
            }
            Some(Value::String(policy)) => match MemoryPolicy::from_name(policy) {
                Some(parsed) => parsed,
                None => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::E_MEMORY_POLICY_UNKNOWN,
                            join(path, "policy"),
                            format!("Unknown memory policy: {policy}"),
                        )
                        .suggest(format!(
                            "Use one of {}.",
                            quoted_list(MemoryPolicy::VARIANTS)
                        )),
                    );
                    return None;
                }
            },
            Some(other) => {
                self.wrong_type(&join(path, "policy"), other, Expected::String);
                return None;
            }
        };
        Some(MemorySpec {
            policy,
            max_messages,
            preserve_system_messages,
            summarizer,
            retriever,
            top_k,
        })
    }

    fn component_ref(&mut self, value: &Value, path: &str) -> Option<ComponentRef> {
        let map = self.mapping(value, path, &keys::COMPONENT_REF)?;
        Some(ComponentRef {
            reference: self.required_string(map, path, "ref"),
        })
    }
}
