//! Reading workflows: the keys of each `type` (fields of another type are unknown keys, as in
//! kneo-serv 1.2), steps, graph edges and their conditions, handoff selectors.

use super::{Expected, Reader, get};
use crate::spec::diagnostic::{Diagnostic, index, join};
use crate::spec::keys::{self, Block, Shape};
use crate::spec::model::{
    EdgeCondition, EdgeConditionType, EdgeSpec, SelectorSpec, SpecEnum, StepSpec, WorkflowSpec,
    WorkflowType,
};
use crate::spec::validate::codes;
use serde_json::Value;

/// The keys a workflow of `workflow_type` accepts.
fn block_for(workflow_type: WorkflowType) -> &'static Block {
    let Some(Shape::ByType(blocks)) = keys::SPEC.get("workflow").map(|key| key.shape) else {
        return &keys::SEQUENTIAL;
    };
    blocks
        .iter()
        .find(|(name, _)| *name == workflow_type.as_str())
        .map_or(&keys::SEQUENTIAL, |(_, block)| *block)
}

impl Reader {
    pub(super) fn workflow(&mut self, value: &Value, path: &str) -> Option<WorkflowSpec> {
        let Value::Object(raw) = value else {
            self.wrong_type(path, value, Expected::Mapping);
            return None;
        };
        if get(raw, "type").is_none() {
            self.required_enumeration::<WorkflowType>(raw, path, "type");
            return None;
        }
        let workflow_type: WorkflowType = self.enumeration(raw, path, "type")?;
        let map = self.mapping(value, path, block_for(workflow_type))?;
        let mut workflow = WorkflowSpec {
            workflow_type,
            name: self.string(map, path, "name"),
            description: self.string(map, path, "description"),
            ..WorkflowSpec::default()
        };
        match workflow_type {
            WorkflowType::Sequential => {
                let steps_path = join(path, "steps");
                workflow.steps = self
                    .required_list(map, path, "steps")
                    .into_iter()
                    .enumerate()
                    .filter_map(|(position, step)| self.step(step, &index(&steps_path, position)))
                    .collect();
            }
            WorkflowType::Graph => {
                workflow.start = Some(self.required_string(map, path, "start"));
                if get(map, "nodes").is_none() {
                    self.missing(path, "nodes", Expected::Mapping);
                }
                workflow.nodes = self.named_specs(map, path, "nodes", Self::step);
                let edges_path = join(path, "edges");
                workflow.edges = self
                    .required_list(map, path, "edges")
                    .into_iter()
                    .enumerate()
                    .filter_map(|(position, edge)| self.edge(edge, &index(&edges_path, position)))
                    .collect();
                workflow.max_steps = self.at_least_one(
                    map,
                    path,
                    "max_steps",
                    codes::E_GRAPH_MAX_STEPS,
                    "Graph max_steps must be at least 1.",
                    "Set max_steps to the most node visits a run may take (the default is 50).",
                );
            }
            WorkflowType::Concurrent | WorkflowType::Handoff | WorkflowType::GroupChat => {
                let participants_path = join(path, "participants");
                workflow.participants = self
                    .required_list(map, path, "participants")
                    .into_iter()
                    .enumerate()
                    .filter_map(|(position, step)| {
                        self.step(step, &index(&participants_path, position))
                    })
                    .collect();
                workflow.max_iterations = self.positive_u32(
                    map,
                    path,
                    "max_iterations",
                    codes::E_VALUE_RANGE,
                    "Set max_iterations to at least 1, or remove it.",
                );
                if workflow_type == WorkflowType::Handoff {
                    workflow.selector = get(map, "selector")
                        .and_then(|selector| self.selector(selector, &join(path, "selector")));
                }
                if workflow_type == WorkflowType::GroupChat {
                    workflow.rounds = self.at_least_one(
                        map,
                        path,
                        "rounds",
                        codes::E_GROUP_CHAT_ROUNDS,
                        "Group-chat rounds must be at least 1.",
                        "Set rounds to 1 or more; each round gives every participant one turn.",
                    );
                }
            }
        }
        Some(workflow)
    }

    /// A whole number that must be at least 1, with kneo-serv's code and message below that.
    fn at_least_one(
        &mut self,
        map: &super::Object,
        path: &str,
        key: &str,
        code: &str,
        message: &str,
        fix: &str,
    ) -> Option<u32> {
        let value = self.integer(map, path, key)?;
        if value < 1 {
            self.value_error(code, join(path, key), message.to_owned(), fix);
            return None;
        }
        match u32::try_from(value) {
            Ok(value) => Some(value),
            Err(_) => {
                self.value_error(
                    codes::E_VALUE_RANGE,
                    join(path, key),
                    format!("{} is {value}; it is too large.", join(path, key)),
                    fix,
                );
                None
            }
        }
    }

    pub(super) fn step(&mut self, value: &Value, path: &str) -> Option<StepSpec> {
        let map = self.mapping(value, path, &keys::STEP)?;
        let enabled = self.boolean(map, path, "enabled");
        let disabled = self.boolean(map, path, "disabled");
        if let (Some(enabled), Some(disabled)) = (enabled, disabled)
            && enabled == disabled
        {
            self.schema_error(
                join(path, "disabled"),
                format!("{path} sets enabled: {enabled} and disabled: {disabled}, which contradict each other."),
                "Keep only enabled (enabled: false turns the step off).".to_owned(),
            );
        }
        Some(StepSpec {
            id: self.required_string(map, path, "id"),
            kind: self.required_enumeration(map, path, "kind"),
            reference: self.required_string(map, path, "ref"),
            enabled: enabled.or(disabled.map(|disabled| !disabled)).unwrap_or(true),
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
        })
    }

    fn edge(&mut self, value: &Value, path: &str) -> Option<EdgeSpec> {
        let map = self.mapping(value, path, &keys::EDGE)?;
        Some(EdgeSpec {
            from: self.required_string(map, path, "from"),
            to: self.required_string(map, path, "to"),
            condition: get(map, "condition")
                .and_then(|condition| self.condition(condition, &join(path, "condition"))),
            label: self.string(map, path, "label"),
        })
    }

    /// A condition and its children, with kneo-serv's `E_CONDITION_*` checks.
    fn condition(&mut self, value: &Value, path: &str) -> Option<EdgeCondition> {
        let map = self.mapping(value, path, &keys::CONDITION)?;
        let written_type = get(map, "type").cloned();
        let condition_type: EdgeConditionType = self.required_enumeration(map, path, "type");
        let type_known = written_type
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|name| EdgeConditionType::from_name(name).is_some());
        let conditions_path = join(path, "conditions");
        let conditions: Vec<EdgeCondition> = self
            .list(map, path, "conditions")
            .into_iter()
            .enumerate()
            .filter_map(|(position, child)| {
                self.condition(child, &index(&conditions_path, position))
            })
            .collect();
        let condition = get(map, "condition")
            .and_then(|child| self.condition(child, &join(path, "condition")))
            .map(Box::new);
        let read = EdgeCondition {
            condition_type,
            value: get(map, "value").cloned(),
            key: self.string(map, path, "key"),
            case_sensitive: self.boolean(map, path, "case_sensitive").unwrap_or(false),
            conditions,
            condition,
        };
        if type_known {
            self.condition_rules(&read, map, path);
        }
        Some(read)
    }

    fn condition_rules(&mut self, condition: &EdgeCondition, map: &super::Object, path: &str) {
        use EdgeConditionType::{
            AllOf, AnyOf, MetadataEquals, Not, OutputContains, OutputEquals, StatusIs,
            VariableEquals,
        };
        let kind = condition.condition_type.as_str();
        let needs_value = matches!(
            condition.condition_type,
            OutputContains | OutputEquals | StatusIs | MetadataEquals | VariableEquals
        );
        if matches!(condition.condition_type, MetadataEquals | VariableEquals)
            && condition.key.as_deref().is_none_or(str::is_empty)
        {
            self.value_error(
                codes::E_CONDITION_KEY,
                join(path, "key"),
                format!("Condition '{kind}' requires key."),
                "Add key: <the metadata or variable name to compare>.",
            );
        }
        if needs_value && condition.value.is_none() {
            self.value_error(
                codes::E_CONDITION_VALUE,
                join(path, "value"),
                format!("Condition '{kind}' requires value."),
                "Add value: <what to compare with>.",
            );
        }
        if matches!(
            condition.condition_type,
            OutputContains | OutputEquals | StatusIs
        ) && let Some(value) = get(map, "value")
            && (value.is_object() || value.is_array())
        {
            self.value_error(
                codes::E_CONDITION_VALUE,
                join(path, "value"),
                format!(
                    "Condition '{kind}' compares text, but its value is a {}.",
                    if value.is_array() { "list" } else { "mapping" }
                ),
                "Write value as text.",
            );
        }
        if matches!(condition.condition_type, AllOf | AnyOf)
            && get(map, "conditions").is_none_or(|c| c.as_array().is_some_and(Vec::is_empty))
        {
            self.value_error(
                codes::E_CONDITION_CHILDREN,
                join(path, "conditions"),
                format!("Condition '{kind}' requires at least one child condition."),
                "Add conditions: [{type: ...}, ...].",
            );
        }
        if condition.condition_type == Not && get(map, "condition").is_none() {
            self.value_error(
                codes::E_CONDITION_CHILD,
                join(path, "condition"),
                "Condition 'not' requires condition.".to_owned(),
                "Add condition: {type: ...} for 'not' to negate.",
            );
        }
        let unused: Vec<&str> = [
            ("value", condition.value.is_some() && !needs_value),
            (
                "key",
                condition.key.is_some()
                    && !matches!(condition.condition_type, MetadataEquals | VariableEquals),
            ),
            (
                "case_sensitive",
                get(map, "case_sensitive").is_some()
                    && !matches!(condition.condition_type, OutputContains | OutputEquals),
            ),
            (
                "conditions",
                get(map, "conditions").is_some()
                    && !matches!(condition.condition_type, AllOf | AnyOf),
            ),
            (
                "condition",
                get(map, "condition").is_some() && condition.condition_type != Not,
            ),
        ]
        .into_iter()
        .filter(|(_, unused)| *unused)
        .map(|(field, _)| field)
        .collect();
        for field in unused {
            self.diagnostics.push(
                Diagnostic::warning(
                    codes::W_CONDITION_FIELD_IGNORED,
                    join(path, field),
                    format!("A '{kind}' condition does not read {field}."),
                )
                .suggest(format!(
                    "Remove {field}, or use a condition type that reads it."
                )),
            );
        }
    }

    fn selector(&mut self, value: &Value, path: &str) -> Option<SelectorSpec> {
        let map = self.mapping(value, path, &keys::SELECTOR)?;
        Some(SelectorSpec {
            selector_type: self.enumeration(map, path, "type").unwrap_or_default(),
            sequence: self.string_list(map, path, "sequence"),
        })
    }
}
