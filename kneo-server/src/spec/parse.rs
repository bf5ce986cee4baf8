//! Bounded, strict parsing of spec documents (YAML files and inline JSON objects) into a
//! `serde_json::Value`, before any schema checking.
//!
//! Specs arrive from untrusted callers, so every resource the parser can be made to spend is
//! capped: input bytes, nesting depth, node count, aliases and alias replay. A hostile document
//! fails in milliseconds with an error that says which limit it hit and how to fix the spec.

use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError};
use std::fmt;
use thiserror::Error;

/// Resource limits applied to one spec document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecLimits {
    /// Largest accepted document, checked before parsing starts.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and sequences; real specs stay under 8.
    pub max_depth: usize,
    /// Most mappings, sequences and scalars in one document.
    pub max_nodes: usize,
    /// Most `*alias` uses (and `&anchor` definitions); aliases are the amplification vector of
    /// "billion laughs" documents, and specs rarely need more than a handful.
    pub max_aliases: usize,
}

impl Default for SpecLimits {
    fn default() -> Self {
        Self {
            max_bytes: 262_144,
            max_depth: 32,
            max_nodes: 20_000,
            max_aliases: 64,
        }
    }
}

impl SpecLimits {
    /// Cap on events replayed from aliases across the whole document. Each alias may expand to
    /// a modest subtree (32 events on average), which is generous for shared model or parameter
    /// blocks and keeps an exponential alias chain to a few milliseconds of work.
    fn max_replayed_events(&self) -> usize {
        self.max_aliases.saturating_mul(32)
    }

    /// Cap on raw parser events. Each node yields at most a start and an end event; comments
    /// are events too, so a third share leaves room for a well-commented spec.
    fn max_events(&self) -> usize {
        self.max_nodes.saturating_mul(3)
    }
}

/// Where in the YAML text a problem was found (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLocation {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for TextLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " at line {}, column {}", self.line, self.column)
    }
}

/// Renders an optional location as a message fragment (empty when unknown).
struct At(Option<TextLocation>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => location.fmt(f),
            None => Ok(()),
        }
    }
}

/// Which resource limit a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Depth,
    Nodes,
    Aliases,
    AliasExpansion,
    Documents,
    ScalarBytes,
    Other,
}

/// Why a spec document could not be turned into a value. Display texts name the problem and the
/// fix; they never contain a server file path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecParseError {
    #[error(
        "The spec is {size} bytes, which is over the {max}-byte limit. Reduce the spec below {max} bytes (move long prompts or schemas out of it)."
    )]
    TooLarge { size: usize, max: usize },

    #[error(
        "The spec is not valid UTF-8: the byte at offset {offset} does not start a valid character. Save the file with UTF-8 encoding."
    )]
    InvalidUtf8 { offset: usize },

    #[error("The spec has a duplicate key '{key}'{at}. Each key may appear only once per mapping; remove or rename one of them.", at = At(*.location))]
    DuplicateKey {
        key: String,
        location: Option<TextLocation>,
    },

    #[error("The spec contains more than one YAML document{at}. Keep a single document (remove the '---' separator and what follows).", at = At(*.location))]
    MultipleDocuments { location: Option<TextLocation> },

    #[error("{message}{at}. {fix}", at = At(*.location))]
    LimitExceeded {
        kind: LimitKind,
        message: String,
        fix: String,
        location: Option<TextLocation>,
    },

    #[error("The spec is not valid YAML{at}: {detail}. {fix}", at = At(*.location))]
    Syntax {
        detail: String,
        fix: String,
        location: Option<TextLocation>,
    },

    #[error(
        "The spec's top level must be a mapping of keys such as 'version' and 'agent', but it is {found}. Write the spec as 'key: value' pairs."
    )]
    NotAMapping { found: String },
}

/// Parses a YAML spec document under `limits`.
///
/// The result is always a JSON object (the top level must be a mapping). Duplicate keys,
/// multiple documents, unknown tags, non-finite floats and YAML 1.1 booleans such as `yes` are
/// rejected rather than silently interpreted.
pub fn parse_yaml(bytes: &[u8], limits: &SpecLimits) -> Result<Value, SpecParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(SpecParseError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    // Checked here rather than by the YAML crate so the error can name the offset.
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(SpecParseError::InvalidUtf8 {
            offset: error.valid_up_to(),
        });
    }
    let value: Value = serde_saphyr::from_slice_with_options(bytes, yaml_options(limits))
        .map_err(|error| classify_yaml_error(&error, limits))?;
    require_mapping(value)
}

/// Checks an inline spec that arrived as a JSON value (the `spec` field of a request) against
/// the same limits as a YAML file, and returns it.
pub fn parse_json_spec(value: &Value, limits: &SpecLimits) -> Result<Value, SpecParseError> {
    let mut counter = SizeCounter {
        written: 0,
        max: limits.max_bytes,
    };
    // The counter stops the serializer as soon as the limit is passed, so an oversized value
    // costs at most `max_bytes` of work and no allocation.
    if serde_json::to_writer(&mut counter, value).is_err() {
        return Err(SpecParseError::TooLarge {
            size: counter.written,
            max: limits.max_bytes,
        });
    }
    let mut nodes = 0usize;
    check_json_shape(value, 1, &mut nodes, limits)?;
    require_mapping(value.clone())
}

fn yaml_options(limits: &SpecLimits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    budget.max_depth = limits.max_depth;
    budget.flow_nesting_limit = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_events = limits.max_events();
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_merge_keys = limits.max_aliases;
    budget.max_recorded_anchor_events = limits.max_nodes;
    budget.max_recorded_anchor_bytes = limits.max_bytes;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = limits.max_bytes;
    budget.max_inclusion_depth = 0;

    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = limits.max_replayed_events();
    options.alias_limits.max_alias_expansions_per_anchor = limits.max_aliases;
    options.alias_limits.max_replay_stack_depth = limits.max_depth;
    // `yes`/`on` as booleans (YAML 1.1) would turn option lists like `[yes, no]` into
    // booleans; specs follow YAML 1.2 core.
    options.strict_booleans = true;
    // A tag like `!env FOO` would otherwise be dropped silently and read as the plain string.
    options.reject_unsupported_tags = true;
    // The snippet wrapper quotes the input back; our messages carry line and column instead.
    options.with_snippet = false;
    options
}

fn classify_yaml_error(error: &YamlError, limits: &SpecLimits) -> SpecParseError {
    let location = error.location().and_then(text_location);
    classify_at(error, limits, location)
}

fn text_location(location: serde_saphyr::Location) -> Option<TextLocation> {
    (location.line() > 0).then(|| TextLocation {
        line: location.line(),
        column: location.column(),
    })
}

/// Classifies `error`, reporting it at `location` (for alias errors: where the alias is used,
/// not where inside the replayed anchor the limit happened to trip).
fn classify_at(
    error: &YamlError,
    limits: &SpecLimits,
    location: Option<TextLocation>,
) -> SpecParseError {
    match error {
        YamlError::AliasError {
            error: inner,
            locations,
            ..
        } => {
            let use_site = text_location(locations.reference_location).or(location);
            classify_at(inner, limits, use_site)
        }
        YamlError::DuplicateMappingKey { key, .. } => SpecParseError::DuplicateKey {
            key: key.clone().unwrap_or_else(|| "(complex key)".to_owned()),
            location,
        },
        YamlError::MultipleDocuments { .. } => SpecParseError::MultipleDocuments { location },
        YamlError::Budget { breach, .. } => budget_error(breach, limits, location),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => alias_expansion_error(limits, location),
        YamlError::InvalidUtf8Input => SpecParseError::InvalidUtf8 { offset: 0 },
        YamlError::NonFiniteFloat { value, .. } => SpecParseError::Syntax {
            detail: format!("'{value}' is not a finite number"),
            fix: "Use a finite number, or quote it if it is meant as text.".to_owned(),
            location,
        },
        other => {
            let detail = strip_location_suffix(&other.to_string());
            // The parser reports flow-collection nesting past `flow_nesting_limit` this way.
            if detail.contains("recursion limit exceeded") {
                return depth_error(limits, location);
            }
            let fix = if detail.contains("tag") {
                "Remove the tag, or quote the value if the '!' is part of the text."
            } else if detail.contains("anchor") {
                "Define the '&anchor' before any '*alias' that uses it."
            } else {
                "Check the indentation, quoting and brackets there."
            };
            SpecParseError::Syntax {
                detail,
                fix: fix.to_owned(),
                location,
            }
        }
    }
}

fn budget_error(
    breach: &BudgetBreach,
    limits: &SpecLimits,
    location: Option<TextLocation>,
) -> SpecParseError {
    let (kind, message, fix) = match breach {
        BudgetBreach::Depth { .. } => return depth_error(limits, location),
        BudgetBreach::Documents { .. } => return SpecParseError::MultipleDocuments { location },
        BudgetBreach::Nodes { .. } => (
            LimitKind::Nodes,
            format!(
                "The spec has more than {} values (mappings, lists and scalars)",
                limits.max_nodes
            ),
            "Split it into smaller specs.".to_owned(),
        ),
        // Comments count as parser events too, so a comment-heavy file can trip this first.
        BudgetBreach::Events { .. } => (
            LimitKind::Nodes,
            format!(
                "The spec has more than {} YAML events (values, comments and structure)",
                limits.max_events()
            ),
            "Split it into smaller specs or remove long comment blocks.".to_owned(),
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::MergeKeys { .. }
        | BudgetBreach::AliasAnchorRatio { .. } => (
            LimitKind::Aliases,
            format!(
                "The spec uses more than {} YAML anchors, aliases or merge keys",
                limits.max_aliases
            ),
            "Write the repeated values out instead of using '&anchor' / '*alias'.".to_owned(),
        ),
        BudgetBreach::RecordedAnchorEvents { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            return alias_expansion_error(limits, location);
        }
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => (
            LimitKind::ScalarBytes,
            format!("The spec's text exceeds {} bytes", limits.max_bytes),
            format!("Reduce the spec below {} bytes.", limits.max_bytes),
        ),
        _ => (
            LimitKind::Other,
            "The spec exceeds a YAML parser safety limit".to_owned(),
            "Simplify the document (fewer anchors, less nesting, shorter text).".to_owned(),
        ),
    };
    SpecParseError::LimitExceeded {
        kind,
        message,
        fix,
        location,
    }
}

fn depth_error(limits: &SpecLimits, location: Option<TextLocation>) -> SpecParseError {
    SpecParseError::LimitExceeded {
        kind: LimitKind::Depth,
        message: format!(
            "The spec nests mappings or lists deeper than {} levels",
            limits.max_depth
        ),
        fix: "Flatten the structure; specs need only a few levels.".to_owned(),
        location,
    }
}

fn alias_expansion_error(limits: &SpecLimits, location: Option<TextLocation>) -> SpecParseError {
    SpecParseError::LimitExceeded {
        kind: LimitKind::AliasExpansion,
        message: format!(
            "The spec's YAML aliases expand to more than {} values",
            limits.max_replayed_events()
        ),
        fix: "Write the repeated values out instead of nesting '*alias' references.".to_owned(),
        location,
    }
}

/// serde-saphyr appends " at line N, column M" (and alias use sites) to its messages; we report
/// the location ourselves, once.
fn strip_location_suffix(text: &str) -> String {
    match text.find(" at line ") {
        Some(position) => text[..position].to_owned(),
        None => text.to_owned(),
    }
}

fn require_mapping(value: Value) -> Result<Value, SpecParseError> {
    let found = match &value {
        Value::Object(_) => return Ok(value),
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
    };
    Err(SpecParseError::NotAMapping {
        found: found.to_owned(),
    })
}

fn check_json_shape(
    value: &Value,
    depth: usize,
    nodes: &mut usize,
    limits: &SpecLimits,
) -> Result<(), SpecParseError> {
    *nodes += 1;
    if *nodes > limits.max_nodes {
        return Err(SpecParseError::LimitExceeded {
            kind: LimitKind::Nodes,
            message: format!(
                "The spec has more than {} values (objects, arrays and scalars)",
                limits.max_nodes
            ),
            fix: "Split it into smaller specs.".to_owned(),
            location: None,
        });
    }
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(map) => Box::new(map.values()),
        Value::Array(items) => Box::new(items.iter()),
        _ => return Ok(()),
    };
    if depth > limits.max_depth {
        return Err(depth_error(limits, None));
    }
    for child in children {
        check_json_shape(child, depth + 1, nodes, limits)?;
    }
    Ok(())
}

/// An `io::Write` that only counts, and fails once the count passes `max`.
struct SizeCounter {
    written: usize,
    max: usize,
}

impl std::io::Write for SizeCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.max {
            return Err(std::io::Error::other("spec size limit exceeded"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hostile documents are refused by a budget, and these tests prove it without a clock: the
    // error names the limit, and its location shows the parser stopped at the limit, early in
    // the text, instead of expanding or reading the whole document.

    fn line_of(error: &SpecParseError) -> u64 {
        match error {
            SpecParseError::LimitExceeded {
                location: Some(location),
                ..
            } => location.line,
            other => panic!("no location in {other:?}"),
        }
    }

    fn alias_bomb(width: usize, levels: usize) -> String {
        let names: Vec<String> = (0..levels).map(|level| format!("l{level}")).collect();
        let mut text = format!(
            "{}: &{} [{}]\n",
            names[0],
            names[0],
            vec!["\"x\""; width].join(",")
        );
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); width].join(",");
            text.push_str(&format!("{}: &{} [{}]\n", pair[1], pair[1], refs));
        }
        text
    }

    #[test]
    fn parses_a_small_spec() {
        let value = parse_yaml(b"version: v1\nagent: {name: x}\n", &SpecLimits::default()).unwrap();
        assert_eq!(value["agent"]["name"], "x");
    }

    #[test]
    fn billion_laughs_is_refused_by_the_alias_budget_before_it_expands() {
        // 10 levels of 10 aliases each would expand to 10^10 values.
        let error = parse_yaml(alias_bomb(10, 10).as_bytes(), &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::AliasExpansion,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("aliases expand to more than 2048 values"),
            "{error}"
        );
        // Refused while replaying the first levels (each level multiplies the work by 10).
        assert!(
            line_of(&error) <= 5,
            "refused only at line {}",
            line_of(&error)
        );
    }

    #[test]
    fn narrow_deep_alias_chain_is_rejected_by_the_expansion_cap() {
        // 4 aliases per level stays under the alias count limit but expands to 4^12 values.
        let error = parse_yaml(alias_bomb(4, 13).as_bytes(), &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::AliasExpansion,
                    ..
                }
            ),
            "{error:?}"
        );
        // Refused a few levels in, not after replaying all 13.
        assert!(
            line_of(&error) <= 7,
            "refused only at line {}",
            line_of(&error)
        );
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "shared: &model {provider: dummy, name: m}\nagent: {name: a, model: *model}\n";
        let value = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap();
        assert_eq!(value["agent"]["model"]["provider"], "dummy");
    }

    #[test]
    fn deeply_nested_flow_sequence_is_rejected_at_the_depth_limit() {
        let text = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let error = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::Depth,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("deeper than 32 levels"),
            "{error}"
        );
        // Refused at the 33rd bracket (after "a: "), not after reading all 5,000.
        match error {
            SpecParseError::LimitExceeded {
                location: Some(location),
                ..
            } => assert!(location.column <= 40, "refused only at {location}"),
            other => panic!("no location in {other:?}"),
        }
    }

    #[test]
    fn deeply_nested_block_mapping_is_rejected() {
        let text: String = (0..100)
            .map(|level| format!("{}k{level}:\n", "  ".repeat(level)))
            .collect();
        let error = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::Depth,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let error =
            parse_yaml(b"version: v1\nagent: \xff\xfe\n", &SpecLimits::default()).unwrap_err();
        assert_eq!(error, SpecParseError::InvalidUtf8 { offset: 19 });
        assert!(error.to_string().contains("offset 19"), "{error}");
    }

    #[test]
    fn duplicate_key_is_rejected_with_its_name_and_line() {
        let error = parse_yaml(
            b"version: v1\nagent: {name: a}\nagent: {name: b}\n",
            &SpecLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            SpecParseError::DuplicateKey {
                key: "agent".into(),
                location: Some(TextLocation { line: 3, column: 1 })
            }
        );
        assert!(
            error
                .to_string()
                .contains("duplicate key 'agent' at line 3"),
            "{error}"
        );
    }

    #[test]
    fn oversized_document_is_rejected_before_parsing() {
        // Also invalid UTF-8 and invalid YAML after the long prompt: had any parsing started,
        // one of those would be the error.
        let mut text = format!(
            "version: v1\nagent:\n  system_prompt: \"{}\"\n",
            "x".repeat(300 * 1024)
        )
        .into_bytes();
        text.extend_from_slice(b"agent: [unclosed\n\xff\n");
        let error = parse_yaml(&text, &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(error, SpecParseError::TooLarge { max: 262_144, size } if size == text.len()),
            "{error:?}"
        );
        assert!(error.to_string().contains("262144-byte limit"), "{error}");
    }

    #[test]
    fn too_many_nodes_is_rejected() {
        let limits = SpecLimits {
            max_nodes: 100,
            ..SpecLimits::default()
        };
        let text = format!("items: [{}]\n", vec!["1"; 200].join(","));
        let error = parse_yaml(text.as_bytes(), &limits).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::Nodes,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        for (text, found) in [
            ("- a\n- b\n", "a list"),
            ("", "empty"),
            ("just text\n", "a string"),
        ] {
            let error = parse_yaml(text.as_bytes(), &SpecLimits::default()).unwrap_err();
            assert_eq!(
                error,
                SpecParseError::NotAMapping {
                    found: found.into()
                }
            );
        }
    }

    #[test]
    fn multiple_documents_are_rejected() {
        let error =
            parse_yaml(b"version: v1\n---\nversion: v1\n", &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(error, SpecParseError::MultipleDocuments { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let error = parse_yaml(b"agent:\n\tname: x\n", &SpecLimits::default()).unwrap_err();
        let SpecParseError::Syntax { location, .. } = &error else {
            panic!("expected a syntax error, got {error:?}");
        };
        assert_eq!(location.map(|location| location.line), Some(2));
        assert!(
            error
                .to_string()
                .starts_with("The spec is not valid YAML at line 2"),
            "{error}"
        );
    }

    #[test]
    fn yaml_11_booleans_and_unknown_tags_are_not_reinterpreted() {
        let value = parse_yaml(b"options: [yes, no]\n", &SpecLimits::default()).unwrap();
        assert_eq!(value["options"], serde_json::json!(["yes", "no"]));
        assert!(parse_yaml(b"key: !env SECRET\n", &SpecLimits::default()).is_err());
    }

    #[test]
    fn json_spec_within_limits_is_returned() {
        let spec = serde_json::json!({"version": "v1", "agent": {"name": "x"}});
        assert_eq!(
            parse_json_spec(&spec, &SpecLimits::default()).unwrap(),
            spec
        );
    }

    #[test]
    fn json_spec_over_size_is_rejected() {
        let spec = serde_json::json!({"agent": {"system_prompt": "x".repeat(300_000)}});
        let error = parse_json_spec(&spec, &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(error, SpecParseError::TooLarge { max: 262_144, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn json_spec_too_deep_or_not_an_object_is_rejected() {
        let mut deep = serde_json::json!("leaf");
        for _ in 0..40 {
            deep = serde_json::json!([deep]);
        }
        let error =
            parse_json_spec(&serde_json::json!({ "a": deep }), &SpecLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                SpecParseError::LimitExceeded {
                    kind: LimitKind::Depth,
                    ..
                }
            ),
            "{error:?}"
        );

        let error = parse_json_spec(&serde_json::json!(["a"]), &SpecLimits::default()).unwrap_err();
        assert_eq!(
            error,
            SpecParseError::NotAMapping {
                found: "a list".into()
            }
        );
    }

    #[test]
    fn json_depth_matches_yaml_depth() {
        // 32 nested containers are allowed in both syntaxes; 33 are not.
        let limits = SpecLimits::default();
        let nested = |levels: usize| {
            let mut value = serde_json::json!(1);
            for _ in 0..levels - 1 {
                value = serde_json::json!([value]);
            }
            serde_json::json!({ "a": value })
        };
        assert!(parse_json_spec(&nested(32), &limits).is_ok());
        assert!(parse_json_spec(&nested(33), &limits).is_err());
        let yaml =
            |levels: usize| format!("a: {}1{}\n", "[".repeat(levels - 1), "]".repeat(levels - 1));
        assert!(parse_yaml(yaml(32).as_bytes(), &limits).is_ok());
        assert!(parse_yaml(yaml(33).as_bytes(), &limits).is_err());
    }
}
