//! Every key the spec reader accepts, block by block, with where it takes effect or why it has
//! none. The reader takes its allowed keys from here (so a key cannot be accepted without an
//! entry) and draws the "no effect" and "kneo extension" diagnostics from here; the tests walk
//! the whole tree and check every entry against the engine's source and the reader.
//!
//! Adding an engine effect for a key: change its `ignored(...)` to `runs(file, symbol)`, where
//! `symbol` is text of `kneo-server/src/<file>` (a file, or a directory searched whole) that
//! implements it. The catalogue test fails when the symbol is not there.

/// What a key's value looks like, so the catalogue tests can write a sample and a wrong value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Flag,
    /// A whole number.
    Count,
    Number,
    /// A list of strings.
    Texts,
    /// A free mapping of data (a JSON Schema, an environment, headers).
    Mapping,
    /// Any value (checked where it is used, e.g. `temperature`, condition `value`).
    Any,
}

/// The shape of a key's value.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Value(Kind),
    /// A mapping with the keys of the block.
    Block(&'static Block),
    /// A mapping of free names, each value of the inner shape.
    Named(&'static Shape),
    /// A list, each item of the inner shape.
    ListOf(&'static Shape),
    /// The block depends on the mapping's `type`.
    ByType(&'static [(&'static str, &'static Block)]),
    /// An open mapping: the block's keys are read; any other key has `other`'s effect.
    Open(&'static Block, &'static Effect),
}

/// Where a key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes what a run does: implemented at `symbol` in `kneo-server/src/<file>`.
    Runs {
        file: &'static str,
        symbol: &'static str,
    },
    /// Shown back to callers (run records, traces, human tasks) at `symbol` in `file`.
    Shown {
        file: &'static str,
        symbol: &'static str,
    },
    /// Declares a governance posture: it raises the warning `code`; kneo does not sandbox tools.
    Governance { code: &'static str },
    /// Only checked: the one value it may take is the default (`mode: middleware`).
    Checked { why: &'static str },
    /// A container: its effect is its keys'.
    Structure,
    /// Part of an enclosing key that is ignored as a whole (the enclosing key warns).
    Part,
    /// Accepted for compatibility with kneo-serv 1.2 and without effect:
    /// `W_SPEC_KEY_NO_EFFECT` with this reason.
    Ignored { why: &'static str },
    /// Kept as information only: `I_SPEC_KEY_INFORMATIONAL` with this reason.
    Information { why: &'static str },
}

/// One accepted key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub shape: Shape,
    pub effect: Effect,
    /// `Some(note)` for a kneo extension that kneo-serv 1.2 refuses (`I_SPEC_KNEO_EXTENSION`);
    /// the note names the portable spelling when there is one.
    pub kneo: Option<&'static str>,
}

/// The keys of one mapping.
#[derive(Debug)]
pub struct Block {
    /// How diagnostics and the catalogue name the block.
    pub name: &'static str,
    pub keys: &'static [Key],
}

impl Block {
    pub fn get(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|key| key.name == name)
    }

    /// Key names in declaration order, for "allowed keys are ..." messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|key| key.name).collect()
    }
}

const fn key(name: &'static str, shape: Shape, effect: Effect) -> Key {
    Key {
        name,
        shape,
        effect,
        kneo: None,
    }
}

const fn kneo(name: &'static str, shape: Shape, effect: Effect, note: &'static str) -> Key {
    Key {
        name,
        shape,
        effect,
        kneo: Some(note),
    }
}

const fn runs(file: &'static str, symbol: &'static str) -> Effect {
    Effect::Runs { file, symbol }
}

const fn shown(file: &'static str, symbol: &'static str) -> Effect {
    Effect::Shown { file, symbol }
}

const fn ignored(why: &'static str) -> Effect {
    Effect::Ignored { why }
}

const fn value(kind: Kind) -> Shape {
    Shape::Value(kind)
}

const STRUCTURE: Effect = Effect::Structure;

use Kind::{Any, Count, Flag, Mapping, Number, Text, Texts};

pub static SPEC: Block = Block {
    name: "the spec",
    keys: &[
        key(
            "version",
            value(Text),
            runs("spec/migrate.rs", "fn migrate"),
        ),
        key(
            "metadata",
            value(Mapping),
            Effect::Information {
                why: "spec metadata is information for people and tools; runs do not read it",
            },
        ),
        key("agent", Shape::Block(&AGENT), STRUCTURE),
        key("workflow", WORKFLOW_SHAPE, STRUCTURE),
        key("components", Shape::Block(&COMPONENTS), STRUCTURE),
        key("tools", Shape::Named(&Shape::Block(&TOOL)), STRUCTURE),
        key(
            "mcp_servers",
            Shape::Named(&Shape::Block(&MCP_SERVER)),
            STRUCTURE,
        ),
        key(
            "skills",
            Shape::Named(&Shape::Block(&SKILL)),
            runs("engine/skills.rs", "pub fn freeze"),
        ),
        key(
            "policies",
            value(Mapping),
            Effect::Information {
                why: "top-level policies are information (kneo-serv's CLI records project defaults there); runs do not read them",
            },
        ),
    ],
};

const WORKFLOW_SHAPE: Shape = Shape::ByType(&[
    ("sequential", &SEQUENTIAL),
    ("graph", &GRAPH),
    ("concurrent", &CONCURRENT),
    ("handoff", &HANDOFF),
    ("group-chat", &GROUP_CHAT),
    ("group_chat", &GROUP_CHAT),
]);

pub static COMPONENTS: Block = Block {
    name: "components",
    keys: &[
        key("agents", Shape::Named(&Shape::Block(&AGENT)), STRUCTURE),
        key("workflows", Shape::Named(&WORKFLOW_SHAPE), STRUCTURE),
        key(
            "functions",
            Shape::Named(&Shape::Block(&FUNCTION)),
            STRUCTURE,
        ),
        key("humans", Shape::Named(&Shape::Block(&HUMAN)), STRUCTURE),
    ],
};

pub static AGENT: Block = Block {
    name: "agent",
    keys: &[
        key(
            "name",
            value(Text),
            runs("engine/plan.rs", "name: agent.name"),
        ),
        key(
            "description",
            value(Text),
            runs("engine/plan.rs", "fn agent_tool_description"),
        ),
        key(
            "system_prompt",
            value(Text),
            runs("engine/agent.rs", "system_prompt"),
        ),
        key("model", Shape::Block(&MODEL), STRUCTURE),
        key("strategy", Shape::Block(&STRATEGY), STRUCTURE),
        key(
            "runtime_preferences",
            Shape::Block(&RUNTIME_PREFERENCES),
            STRUCTURE,
        ),
        key("tools", Shape::Block(&TOOL_SELECTION), STRUCTURE),
        key(
            "skills",
            value(Texts),
            runs("engine/plan.rs", "skill_fragments"),
        ),
        key("guardrails", Shape::Block(&GUARDRAILS), STRUCTURE),
        kneo(
            "policies",
            Shape::Block(&POLICIES),
            STRUCTURE,
            "the portable place for tool permissions is tools.permissions",
        ),
        key(
            "memory",
            Shape::Block(&MEMORY),
            runs("engine/memory.rs", "pub async fn apply"),
        ),
        key(
            "history",
            value(Mapping),
            ignored(
                "history settings are read by nothing, in kneo-serv 1.2 as here; memory and defaults.append_mode decide what an agent keeps",
            ),
        ),
        key(
            "middleware",
            value(Texts),
            ignored(
                "middleware names are never loaded, in kneo-serv 1.2 as here; guardrails, memory and tools.permissions are the middleware a spec can declare",
            ),
        ),
        key(
            "defaults",
            Shape::Open(&AGENT_DEFAULTS, &AGENT_DEFAULTS_OTHER),
            STRUCTURE,
        ),
        key("as_agent", value(Text), runs("engine/plan.rs", "as_agent")),
    ],
};

/// Any `defaults` key but `append_mode`.
pub static AGENT_DEFAULTS_OTHER: Effect = ignored("only defaults.append_mode is read");

pub static AGENT_DEFAULTS: Block = Block {
    name: "defaults",
    keys: &[key(
        "append_mode",
        value(Text),
        runs("engine/memory.rs", "fn record_turn"),
    )],
};

pub static MODEL: Block = Block {
    name: "model",
    keys: &[
        key(
            "provider",
            value(Text),
            runs("engine/plan.rs", "fn runtime_for"),
        ),
        key("name", value(Text), runs("engine/agent.rs", "model_name")),
        key(
            "temperature",
            value(Number),
            runs("engine/openai.rs", "temperature"),
        ),
        key(
            "max_tokens",
            value(Count),
            runs("engine/openai.rs", "max_tokens"),
        ),
        key(
            "token_budget",
            value(Count),
            runs("engine/agent.rs", "TokenBudgetExceeded"),
        ),
        key(
            "timeout_seconds",
            value(Count),
            runs("engine/openai.rs", "request_timeout"),
        ),
        key(
            "extra",
            Shape::Open(&MODEL_EXTRA, &MODEL_EXTRA_OTHER),
            STRUCTURE,
        ),
    ],
};

/// Any `extra` key the OpenAI-compatible provider does not read.
pub static MODEL_EXTRA_OTHER: Effect =
    ignored("only extra.base_url, extra.api_key_ref and extra.api_key are read");

pub static MODEL_EXTRA: Block = Block {
    name: "extra",
    keys: &[
        key(
            "base_url",
            value(Text),
            runs("engine/openai.rs", "\"base_url\""),
        ),
        key(
            "api_key_ref",
            value(Text),
            runs("engine/openai.rs", "\"api_key_ref\""),
        ),
        key(
            "api_key",
            value(Text),
            runs("engine/openai.rs", "\"api_key\""),
        ),
    ],
};

pub static STRATEGY: Block = Block {
    name: "strategy",
    keys: &[
        key(
            "type",
            value(Text),
            runs("engine/agent.rs", "StrategyType::PlanAct"),
        ),
        key(
            "max_iterations",
            value(Count),
            runs("engine/agent.rs", "max_iterations"),
        ),
        key(
            "stop_on_tool_error",
            value(Flag),
            ignored(
                "read by nothing, in kneo-serv 1.2 as here: a failing tool's error goes back to the model",
            ),
        ),
        key(
            "parallel_tool_calls",
            value(Flag),
            ignored("read by nothing, in kneo-serv 1.2 as here: tool calls run one after another"),
        ),
    ],
};

pub static RUNTIME_PREFERENCES: Block = Block {
    name: "runtime_preferences",
    keys: &[
        key(
            "preferred_mode",
            value(Text),
            runs("engine/plan.rs", "fn runtime_for"),
        ),
        key(
            "allowed_modes",
            value(Texts),
            runs("spec/validate/components.rs", "allowed_modes"),
        ),
        key(
            "fallback_mode",
            value(Text),
            runs("engine/plan.rs", "fallback_mode"),
        ),
        key(
            "native_provider",
            value(Text),
            runs("engine/plan.rs", "native_provider"),
        ),
        key(
            "adapter_ref",
            value(Text),
            runs("engine/plan.rs", "adapter_ref"),
        ),
        key(
            "bridge_provider",
            value(Text),
            ignored(
                "read by nothing, in kneo-serv 1.2 as here: the bridge runs the provider model.provider names",
            ),
        ),
    ],
};

pub static TOOL_SELECTION: Block = Block {
    name: "tools",
    keys: &[
        key(
            "include",
            value(Texts),
            runs("engine/plan.rs", "tool_names()"),
        ),
        key(
            "exclude",
            value(Texts),
            ignored(
                "an agent is offered only the tools in include, so exclude never takes one away (a tool in both lists is E_TOOL_CONFLICT), in kneo-serv 1.2 as here",
            ),
        ),
        key("permissions", Shape::Block(&PERMISSIONS), STRUCTURE),
    ],
};

pub static PERMISSIONS: Block = Block {
    name: "permissions",
    keys: &[
        key(
            "allow_network",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_NETWORK_UNRESTRICTED",
            },
        ),
        key(
            "allow_filesystem_read",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_FILESYSTEM_READ_ALLOWED",
            },
        ),
        key(
            "allow_filesystem_write",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_FILESYSTEM_WRITE_ALLOWED",
            },
        ),
        key(
            "allow_shell",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_SHELL_ALLOWED",
            },
        ),
        key(
            "allowed_domains",
            value(Texts),
            runs("engine/tools.rs", "fn check_domains"),
        ),
        key(
            "denied_domains",
            value(Texts),
            runs("engine/tools.rs", "fn check_domains"),
        ),
        kneo(
            "allow",
            value(Texts),
            runs("spec/model.rs", "fn permits"),
            "the portable way to offer only some tools is tools.include",
        ),
        kneo(
            "deny",
            value(Texts),
            runs("spec/model.rs", "fn permits"),
            "the portable spelling is tools.exclude",
        ),
        kneo(
            "network",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_NETWORK_UNRESTRICTED",
            },
            "the portable spelling is allow_network",
        ),
        kneo(
            "filesystem",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_FILESYSTEM_WRITE_ALLOWED",
            },
            "the portable spellings are allow_filesystem_read and allow_filesystem_write",
        ),
        kneo(
            "shell",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_SHELL_ALLOWED",
            },
            "the portable spelling is allow_shell",
        ),
    ],
};

pub static POLICIES: Block = Block {
    name: "policies",
    keys: &[key("tool", Shape::Block(&PERMISSIONS), STRUCTURE)],
};

const GUARDRAIL_LIST: Shape = Shape::ListOf(&Shape::Block(&GUARDRAIL));

pub static GUARDRAILS: Block = Block {
    name: "guardrails",
    keys: &[
        key(
            "input",
            GUARDRAIL_LIST,
            runs("engine/agent.rs", "Stage::Input"),
        ),
        key(
            "output",
            GUARDRAIL_LIST,
            runs("engine/agent.rs", "Stage::Output"),
        ),
        key(
            "tool",
            GUARDRAIL_LIST,
            runs("engine/agent.rs", "Stage::Tool"),
        ),
        key(
            "workflow",
            GUARDRAIL_LIST,
            runs("engine/executor/policy.rs", "Stage::Workflow"),
        ),
    ],
};

pub static GUARDRAIL: Block = Block {
    name: "guardrail",
    keys: &[
        key(
            "id",
            value(Text),
            runs("engine/guardrails.rs", "guardrail.id"),
        ),
        key(
            "type",
            value(Text),
            runs("engine/guardrails.rs", "GuardrailCheck::Keyword"),
        ),
        key(
            "action",
            value(Text),
            runs("engine/guardrails.rs", "GuardrailAction::Redact"),
        ),
        key(
            "ref",
            value(Text),
            runs("engine/guardrails.rs", "GuardrailCheck::Function"),
        ),
        key(
            "mode",
            value(Text),
            Effect::Checked {
                why: "only 'middleware' is accepted, and it is the default",
            },
        ),
        key(
            "target",
            value(Text),
            ignored("read by nothing, in kneo-serv 1.2 as here: the stage decides what is checked"),
        ),
        key("config", Shape::Block(&GUARDRAIL_CONFIG), STRUCTURE),
    ],
};

pub static GUARDRAIL_CONFIG: Block = Block {
    name: "config",
    keys: &[
        key(
            "patterns",
            value(Texts),
            runs("engine/guardrails.rs", "GuardrailCheck::Regex"),
        ),
        key(
            "keywords",
            value(Texts),
            runs("engine/guardrails.rs", "GuardrailCheck::Keyword"),
        ),
    ],
};

pub static MEMORY: Block = Block {
    name: "memory",
    keys: &[
        key(
            "policy",
            value(Text),
            runs("engine/memory.rs", "MemoryPolicy::SlidingWindow"),
        ),
        key(
            "max_messages",
            value(Count),
            runs("engine/memory.rs", "self.max_messages"),
        ),
        key(
            "preserve_system_messages",
            value(Flag),
            runs("engine/memory.rs", "self.preserve_system_messages"),
        ),
        key(
            "summarizer",
            Shape::Block(&COMPONENT_REF),
            runs("engine/memory.rs", "&self.summarizer"),
        ),
        key(
            "retriever",
            Shape::Block(&COMPONENT_REF),
            runs("engine/memory.rs", "&self.retriever"),
        ),
        key(
            "top_k",
            value(Count),
            runs("engine/memory.rs", "self.top_k"),
        ),
    ],
};

pub static COMPONENT_REF: Block = Block {
    name: "component reference",
    keys: &[key(
        "ref",
        value(Text),
        runs("engine/component.rs", "pub async fn call"),
    )],
};

pub static TOOL: Block = Block {
    name: "tool",
    keys: &[
        key(
            "description",
            value(Text),
            runs("engine/plan.rs", "description: tool_description"),
        ),
        key(
            "parameters",
            value(Mapping),
            runs("engine/plan.rs", "parameters"),
        ),
        key(
            "implementation",
            value(Text),
            runs("engine/plan.rs", "implementation"),
        ),
        key("mcp", Shape::Block(&MCP_REF), STRUCTURE),
        key(
            "agent",
            value(Text),
            runs("engine/plan.rs", "ToolBacking::Agent"),
        ),
        kneo(
            "command",
            value(Any),
            runs("engine/plan.rs", "ToolBacking::Command"),
            "kneo-serv 1.2 backs tools with implementation, mcp or agent only",
        ),
        kneo(
            "env",
            value(Mapping),
            runs("engine/command.rs", "env"),
            "kneo-serv 1.2 has no command tools",
        ),
        kneo(
            "allowed_domains",
            value(Texts),
            runs("engine/tools.rs", "fn check_domains"),
            "the portable place is the agent's tools.permissions.allowed_domains",
        ),
        kneo(
            "network",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_NETWORK_UNRESTRICTED",
            },
            "the portable place is the agent's tools.permissions.allow_network",
        ),
        kneo(
            "shell",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_SHELL_ALLOWED",
            },
            "the portable place is the agent's tools.permissions.allow_shell",
        ),
        kneo(
            "filesystem_write",
            value(Flag),
            Effect::Governance {
                code: "W_TOOL_FILESYSTEM_WRITE_ALLOWED",
            },
            "the portable place is the agent's tools.permissions.allow_filesystem_write",
        ),
    ],
};

pub static MCP_REF: Block = Block {
    name: "mcp",
    keys: &[
        key(
            "server",
            value(Text),
            runs("engine/plan.rs", "reference.server"),
        ),
        key("name", value(Text), runs("engine/plan.rs", "remote_name")),
    ],
};

pub static MCP_SERVER: Block = Block {
    name: "MCP server",
    keys: &[
        key(
            "transport",
            value(Text),
            runs("engine/mcp.rs", "McpTransport::"),
        ),
        key("command", value(Text), runs("engine/mcp.rs", "command")),
        key("args", value(Texts), runs("engine/mcp.rs", "args")),
        key("env", value(Mapping), runs("engine/mcp.rs", "env")),
        key("cwd", value(Text), runs("engine/mcp.rs", "cwd")),
        key("url", value(Text), runs("engine/mcp_http.rs", "url")),
        key(
            "headers",
            value(Mapping),
            runs("engine/mcp_http.rs", "headers"),
        ),
        key(
            "timeout",
            value(Number),
            runs("engine/mcp.rs", "call_timeout"),
        ),
        key(
            "sse_url",
            value(Text),
            runs("engine/mcp_http.rs", "sse_url"),
        ),
        key(
            "message_url",
            value(Text),
            runs("engine/mcp_http.rs", "message_url"),
        ),
        key(
            "sse_read_timeout",
            value(Number),
            runs("engine/mcp_http.rs", "sse_read_timeout"),
        ),
        key(
            "max_response_bytes",
            value(Count),
            runs("engine/mcp.rs", "max_response_bytes"),
        ),
        key("verify", value(Flag), runs("engine/mcp_http.rs", "verify")),
        key(
            "ca_bundle",
            value(Text),
            runs("engine/mcp_http.rs", "ca_bundle"),
        ),
        key(
            "client_cert",
            value(Text),
            runs("engine/mcp_http.rs", "client_cert"),
        ),
        key(
            "client_key",
            value(Text),
            runs("engine/mcp_http.rs", "client_key"),
        ),
        key(
            "client_key_ref",
            value(Text),
            runs("engine/mcp_http.rs", "client_key_ref"),
        ),
    ],
};

pub static FUNCTION: Block = Block {
    name: "function",
    keys: &[
        key(
            "implementation",
            value(Text),
            runs("engine/plan.rs", "functions().build"),
        ),
        kneo(
            "command",
            value(Any),
            runs("engine/plan.rs", "Unit::Command"),
            "kneo-serv 1.2 backs functions with implementation only",
        ),
        kneo(
            "env",
            value(Mapping),
            runs("engine/command.rs", "env"),
            "kneo-serv 1.2 has no command functions",
        ),
        key(
            "input_schema",
            value(Mapping),
            ignored("read by nothing, in kneo-serv 1.2 as here: a function takes and returns text"),
        ),
        key(
            "output_schema",
            value(Mapping),
            ignored("read by nothing, in kneo-serv 1.2 as here: a function takes and returns text"),
        ),
    ],
};

pub static HUMAN: Block = Block {
    name: "human",
    keys: &[
        key(
            "description",
            value(Text),
            shown("engine/executor", "spec.title()"),
        ),
        key(
            "assignee",
            value(Text),
            shown("engine/executor", "assignee"),
        ),
        key(
            "timeout_seconds",
            value(Count),
            runs("platform/human.rs", "expires_at"),
        ),
        key(
            "on_timeout",
            value(Text),
            runs("platform/human.rs", "on_timeout"),
        ),
        key(
            "request_type",
            value(Text),
            shown("engine/executor", "spec.request_type"),
        ),
        key(
            "options",
            value(Texts),
            runs("platform/human.rs", "options"),
        ),
        key(
            "default_option",
            value(Text),
            shown("engine/executor", "default_option"),
        ),
        key(
            "context",
            value(Mapping),
            shown("engine/executor", "spec.context"),
        ),
        key(
            "response_role",
            value(Text),
            runs("platform/human.rs", "response_role"),
        ),
    ],
};

pub static SKILL: Block = Block {
    name: "skill",
    keys: &[
        key(
            "source",
            value(Text),
            runs("engine/skills.rs", "skill.source"),
        ),
        key(
            "description",
            value(Text),
            Effect::Information {
                why: "describes the skill to readers of the spec; runs use the bundle's own description",
            },
        ),
    ],
};

/// Keys every workflow type has.
macro_rules! workflow_keys {
    ($($extra:expr),* $(,)?) => {
        &[
            key("type", value(Text), runs("engine/plan.rs", "workflow_type")),
            key("name", value(Text), shown("engine/plan.rs", "workflow.name")),
            key(
                "description",
                value(Text),
                shown("engine/executor", "workflow_description"),
            ),
            $($extra),*
        ]
    };
}

const STEP_LIST: Shape = Shape::ListOf(&Shape::Block(&STEP));

pub static SEQUENTIAL: Block = Block {
    name: "sequential workflow",
    keys: workflow_keys![key("steps", STEP_LIST, STRUCTURE)],
};

pub static GRAPH: Block = Block {
    name: "graph workflow",
    keys: workflow_keys![
        key("start", value(Text), runs("engine/plan.rs", "start")),
        key("nodes", Shape::Named(&Shape::Block(&STEP)), STRUCTURE),
        key("edges", Shape::ListOf(&Shape::Block(&EDGE)), STRUCTURE),
        key(
            "max_steps",
            value(Count),
            runs("engine/plan.rs", "graph_max_steps")
        ),
    ],
};

pub static CONCURRENT: Block = Block {
    name: "concurrent workflow",
    keys: workflow_keys![
        key("participants", STEP_LIST, STRUCTURE),
        key(
            "max_iterations",
            value(Count),
            ignored("a concurrent workflow runs every participant once, in kneo-serv 1.2 as here"),
        ),
    ],
};

pub static HANDOFF: Block = Block {
    name: "handoff workflow",
    keys: workflow_keys![
        key("participants", STEP_LIST, STRUCTURE),
        key("selector", Shape::Block(&SELECTOR), STRUCTURE),
        key(
            "max_iterations",
            value(Count),
            runs("engine/plan.rs", "max_turns")
        ),
    ],
};

pub static GROUP_CHAT: Block = Block {
    name: "group-chat workflow",
    keys: workflow_keys![
        key("participants", STEP_LIST, STRUCTURE),
        key(
            "rounds",
            value(Count),
            runs("engine/plan.rs", "group_chat_rounds")
        ),
        key(
            "max_iterations",
            value(Count),
            ignored("a group chat runs rounds × participants turns, in kneo-serv 1.2 as here"),
        ),
    ],
};

pub static SELECTOR: Block = Block {
    name: "selector",
    keys: &[
        key("type", value(Text), runs("engine/plan.rs", "selector_type")),
        key("sequence", value(Texts), runs("engine/plan.rs", "sequence")),
    ],
};

pub static STEP: Block = Block {
    name: "step",
    keys: &[
        key(
            "id",
            value(Text),
            runs("engine/plan.rs", "id: id.to_string()"),
        ),
        key("kind", value(Text), runs("engine/plan.rs", "step.kind")),
        key("ref", value(Text), runs("engine/plan.rs", "step.reference")),
        key(
            "enabled",
            value(Flag),
            runs("engine/plan.rs", "step.enabled"),
        ),
        kneo(
            "disabled",
            value(Flag),
            runs("engine/plan.rs", "step.enabled"),
            "the portable spelling is enabled: false",
        ),
        key(
            "on_error",
            value(Text),
            runs("engine/executor", "OnError::"),
        ),
        key(
            "fallback_ref",
            value(Text),
            runs("engine/plan.rs", "fallback_ref"),
        ),
        key(
            "max_retries",
            value(Count),
            runs("engine/executor", "max_retries"),
        ),
        key(
            "timeout_seconds",
            value(Number),
            runs("engine/executor", "timeout"),
        ),
    ],
};

pub static EDGE: Block = Block {
    name: "edge",
    keys: &[
        key("from", value(Text), runs("engine/plan.rs", "edge.from")),
        key("to", value(Text), runs("engine/plan.rs", "edge.to")),
        key("condition", Shape::Block(&CONDITION), STRUCTURE),
        key(
            "label",
            value(Text),
            ignored(
                "edge labels are for graph views (GET /runs/{id}/graph, POST /specs/graph), which this build does not serve yet; the compiled plan keeps them",
            ),
        ),
    ],
};

pub static CONDITION: Block = Block {
    name: "condition",
    keys: &[
        key(
            "type",
            value(Text),
            runs("engine/graph.rs", "ConditionPlan::"),
        ),
        key("value", value(Any), runs("engine/graph.rs", "value")),
        key("key", value(Text), runs("engine/graph.rs", "key")),
        key(
            "case_sensitive",
            value(Flag),
            runs("engine/graph.rs", "case_sensitive"),
        ),
        key(
            "conditions",
            Shape::ListOf(&Shape::Block(&CONDITION)),
            runs("engine/graph.rs", "AllOf"),
        ),
        key(
            "condition",
            Shape::Block(&CONDITION),
            runs("engine/graph.rs", "Not"),
        ),
    ],
};

#[cfg(test)]
mod tests;
